import crypto from 'node:crypto';
import { systemActor, type Actor, type Deps } from '../context';
import { recordChange } from '../audit/record-change';
import { UsersService } from '../accounts/users-service';
import { AppError } from '../domain/errors';
import type { AccountRow } from '../accounts/scope';
import { isUniqueViolation } from '../idempotency';
import { ORDER_TYPES, defaultWorkflow } from '../domain/workflow';

export const PROVIDER_NAME = 'Demo Hosting';
export const ADMIN_LOGIN = 'admin';

export interface Bootstrap {
  provider: AccountRow;
  actor: Actor;
  /** Set only when this start created the administrator with a generated password: print it once. */
  generatedPassword?: string;
  createdAdmin: boolean;
}

const findProvider = (deps: Deps) => deps.db('accounts').whereNull('vendor_id').andWhere({ type: 'provider' }).orderBy('id').first() as Promise<AccountRow | undefined>;

/**
 * Ensures the provider (root vendor) and its administrator exist. Idempotent, and safe when several processes
 * start at once: the first to insert the claim row creates them; the others wait on it and then find them.
 */
export async function bootstrapProvider(deps: Deps): Promise<Bootstrap> {
  const { db, clock, config } = deps;
  let provider = await findProvider(deps);
  if (!provider) {
    await db.transaction(async (tx) => {
      await tx('system_settings').insert({ name: 'provider_claimed', value: clock.now().toISOString() });
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
    }).catch((e: unknown) => {
      if (!isUniqueViolation(e)) throw e;
    });
    provider = await findProvider(deps);
    if (!provider) throw new Error('The provider account could not be created.');
  }
  const actor = systemActor(provider);
  await ensureDefaultWorkflows(deps, provider.id);
  const admin = await db('users').where({ login_scope_id: provider.id, login: ADMIN_LOGIN }).first('id');
  if (admin) return { provider, actor, createdAdmin: false };
  const generated = config.adminPassword ? undefined : crypto.randomBytes(12).toString('base64url');
  const password = config.adminPassword || generated!;
  const created = await new UsersService(deps)
    .create(actor, {
      accountId: provider.id,
      login: ADMIN_LOGIN,
      password,
      email: 'admin@demo-hosting.example',
      firstName: 'Provider',
      lastName: 'Administrator',
      roles: ['admin', 'api'],
    })
    .then(() => true)
    .catch((e: unknown) => {
      // Another process created the administrator a moment ago; its password, not ours, is the one in force.
      if (e instanceof AppError && e.code === 'CONFLICT') return false;
      throw e;
    });
  return { provider, actor, generatedPassword: created ? generated : undefined, createdAdmin: created };
}

/**
 * The provider's default workflow of every order type, version 1, created at start-up. Creating them on the first
 * order instead would race between concurrent first orders, each creating the same workflows.
 */
async function ensureDefaultWorkflows(deps: Deps, providerId: number): Promise<void> {
  for (const orderType of ORDER_TYPES) {
    if (await deps.db('workflows').where({ vendor_id: providerId, order_type: orderType }).first('id')) continue;
    await deps.db('workflows')
      .insert({ vendor_id: providerId, order_type: orderType, version: 1, definition: JSON.stringify(defaultWorkflow(orderType)), active: true, created_at: deps.clock.now().getTime() })
      .catch((e: unknown) => {
        if (!isUniqueViolation(e)) throw e;
      });
  }
}
