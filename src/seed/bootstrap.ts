import crypto from 'node:crypto';
import { systemActor, type Actor, type Deps } from '../context';
import { recordChange } from '../audit/record-change';
import { hashPassword } from '../accounts/passwords';
import type { AccountRow } from '../accounts/scope';

export const PROVIDER_NAME = 'Demo Hosting';
export const ADMIN_LOGIN = 'admin';

export interface Bootstrap {
  provider: AccountRow;
  actor: Actor;
  /** Set only when this start created the administrator with a generated password: print it once. */
  generatedPassword?: string;
  createdAdmin: boolean;
}

/** Ensures the provider (root vendor) and its administrator exist. Idempotent. */
export async function bootstrapProvider(deps: Deps): Promise<Bootstrap> {
  const { db, clock, config } = deps;
  let provider = (await db('accounts').whereNull('vendor_id').andWhere({ type: 'provider' }).orderBy('id').first()) as AccountRow | undefined;
  if (!provider) {
    await db.transaction(async (tx) => {
      const now = clock.now();
      const [id] = (await tx('accounts').insert({
        vendor_id: null,
        type: 'provider',
        status: 'active',
        company_name: PROVIDER_NAME,
        currency: 'USD',
        tax_status: 'taxable',
        path: '',
        country: 'US',
        created_at: now.getTime(),
        updated_at: now.getTime(),
      })) as number[];
      await tx('accounts').where({ id }).update({ path: `/${id}/` });
      await tx('account_contacts').insert({ account_id: id, kind: 'admin', first_name: 'Demo', last_name: 'Operator', email: 'ops@demo-hosting.example' });
      const row = { id, path: `/${id}/` };
      await recordChange(tx, systemActor(row), now, {
        operation: 'CreateProvider',
        objectType: 'account',
        objectId: id,
        event: { name: 'account.created', accountId: id, payload: { accountId: id, type: 'provider' } },
      });
    });
    provider = (await db('accounts').whereNull('vendor_id').andWhere({ type: 'provider' }).orderBy('id').first()) as AccountRow;
  }
  const actor = systemActor(provider);
  const admin = await db('users').where({ login_scope_id: provider.id, login: ADMIN_LOGIN }).first('id');
  if (admin) return { provider, actor, createdAdmin: false };
  const generated = config.adminPassword ? undefined : crypto.randomBytes(12).toString('base64url');
  const password = config.adminPassword || generated!;
  const hash = await hashPassword(password);
  await db.transaction(async (tx) => {
    const now = clock.now();
    const [id] = (await tx('users').insert({
      account_id: provider!.id,
      login_scope_id: provider!.id,
      login: ADMIN_LOGIN,
      password_hash: hash,
      email: 'admin@demo-hosting.example',
      first_name: 'Provider',
      last_name: 'Administrator',
      roles: 'admin,api',
      api_secret_enc: deps.secrets.seal(password),
      status: 'enabled',
      created_at: now.getTime(),
      updated_at: now.getTime(),
    })) as number[];
    await recordChange(tx, actor, now, {
      operation: 'CreateUser',
      objectType: 'user',
      objectId: id,
      details: { login: ADMIN_LOGIN },
      event: { name: 'user.created', accountId: provider!.id, payload: { userId: id, accountId: provider!.id, login: ADMIN_LOGIN } },
    });
  });
  return { provider, actor, generatedPassword: generated, createdAdmin: true };
}
