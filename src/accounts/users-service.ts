import type { Actor, Deps, Role } from '../context';
import { ROLES } from '../context';
import { recordChange } from '../audit/record-change';
import type { Knex } from 'knex';
import { isSqlite, type Conn } from '../db/knex';
import { AppError, conflict, invalid, notFound } from '../domain/errors';
import { email as emailField, optionalText, paging, positiveId, requiredText } from '../domain/fields';
import { isUniqueViolation } from '../idempotency';
import { hashPassword, validatePasswordStrength, verifyPassword } from './passwords';
import { scopedAccount, type AccountRow } from './scope';
import { recordSignInChange } from './sign-in-changes';

export interface UserInput {
  accountId: number;
  login: string;
  password: string;
  email: string;
  firstName: string;
  middleName?: string;
  lastName: string;
  roles?: Role[];
  externalId?: string;
  phone?: string;
  profile?: UserProfile;
}

/** Address and phone parts PBA's UserAdd_API carries; kept as one JSON document per user. */
export interface UserProfile {
  address1?: string;
  address2?: string;
  city?: string;
  state?: string;
  zip?: string;
  country?: string;
  phoneCountryCode?: string;
  phoneAreaCode?: string;
  phoneNumber?: string;
  phoneExtension?: string;
  faxCountryCode?: string;
  faxAreaCode?: string;
  faxNumber?: string;
  faxExtension?: string;
}

const PROFILE_KEYS: (keyof UserProfile)[] = ['address1', 'address2', 'city', 'state', 'zip', 'country', 'phoneCountryCode', 'phoneAreaCode', 'phoneNumber', 'phoneExtension', 'faxCountryCode', 'faxAreaCode', 'faxNumber', 'faxExtension'];

function cleanProfile(p: UserProfile | undefined): UserProfile {
  const out: UserProfile = {};
  for (const k of PROFILE_KEYS) {
    const v = optionalText(p?.[k], `profile.${k}`, 255);
    if (v) out[k] = v;
  }
  return out;
}

export interface User {
  userId: number;
  accountId: number;
  login: string;
  email: string;
  firstName: string;
  middleName: string;
  lastName: string;
  roles: Role[];
  status: 'enabled' | 'disabled';
  externalId: string | null;
  phone: string;
  profile: UserProfile;
  createdAt: Date;
}

export interface UserRow {
  id: number;
  account_id: number;
  login_scope_id: number;
  login: string;
  password_hash: string;
  email: string;
  first_name: string;
  middle_name: string;
  last_name: string;
  roles: string;
  status: 'enabled' | 'disabled';
  external_id: string | null;
  phone: string;
  profile: string | null;
  created_at: number;
}

const LOGIN = /^[A-Za-z0-9._@+-]{1,128}$/;

export function toUser(r: UserRow): User {
  return {
    userId: r.id,
    accountId: r.account_id,
    login: r.login,
    email: r.email,
    firstName: r.first_name,
    middleName: r.middle_name,
    lastName: r.last_name,
    roles: r.roles ? (r.roles.split(',') as Role[]) : [],
    status: r.status,
    externalId: r.external_id,
    phone: r.phone,
    profile: r.profile ? (JSON.parse(r.profile) as UserProfile) : {},
    createdAt: new Date(Number(r.created_at)),
  };
}

/** Logins are unique per vendor: a customer's users share the namespace of its vendor; the provider has its own. */
export function loginScopeOf(account: Pick<AccountRow, 'id' | 'vendor_id' | 'type'>): number {
  return account.type === 'customer' && account.vendor_id !== null ? account.vendor_id : account.id;
}

/**
 * Logins compare without regard to letter case on both databases (MariaDB's collation does so natively and keeps
 * its index; SQLite is told NOCASE, which folds ASCII, the only letters a login may hold).
 */
export function sameLogin<Q extends Knex.QueryBuilder>(q: Q, column: string, login: string): Q {
  return (isSqlite(q as unknown as Conn) ? q.whereRaw('?? = ? COLLATE NOCASE', [column, login]) : q.where(column, login)) as Q;
}

export class UsersService {
  private readonly credentialListeners: ((login: string) => void)[] = [];

  constructor(private readonly deps: Deps) {}

  /**
   * Called with the login after an operation that changes a user's credentials or status (or gives a login its
   * first user) commits: the authenticator forgets that login's cached sign-ins. Every such operation calls it,
   * and writes recordSignInChange in its transaction so the other server processes forget them too.
   */
  onCredentialsChanged(listener: (login: string) => void): void {
    this.credentialListeners.push(listener);
  }

  private credentialsChanged(login: string): void {
    for (const listener of this.credentialListeners) listener(login);
  }

  async create(actor: Actor, input: UserInput): Promise<number> {
    const accountId = positiveId(input.accountId, 'accountId');
    const login = requiredText(input.login, 'login', 128);
    if (!LOGIN.test(login)) throw invalid('login', 'A login may use letters, digits and . _ @ + - only, up to 128 characters.');
    if (typeof input.password !== 'string') throw invalid('password', 'password is required.');
    const weak = validatePasswordStrength(input.password);
    if (weak) throw invalid('password', weak);
    const email = emailField(input.email, 'email');
    const firstName = requiredText(input.firstName, 'firstName', 128);
    const lastName = requiredText(input.lastName, 'lastName', 128);
    const roles = (input.roles && input.roles.length ? input.roles : (['admin'] as Role[])).map((r, i) => {
      if (!ROLES.includes(r)) throw invalid(`roles[${i}]`, `roles[${i}] must be one of ${ROLES.join(', ')}.`);
      return r;
    });
    const account = await scopedAccount(this.deps.db, actor, accountId);
    const hash = await hashPassword(input.password);
    try {
      const created = await this.deps.db.transaction(async (tx) => {
        const now = this.deps.clock.now();
        // MariaDB's unique index already ignores letter case; SQLite's does not, so ask first (its writes are serialised).
        if (await sameLogin(tx('users').where({ login_scope_id: loginScopeOf(account) }), 'login', login).first('id')) {
          throw conflict(`The login '${login}' is already taken under this vendor; choose another.`, 'login');
        }
        const [id] = (await tx('users').insert({
          account_id: account.id,
          login_scope_id: loginScopeOf(account),
          login,
          password_hash: hash,
          email,
          first_name: firstName,
          middle_name: optionalText(input.middleName, 'middleName', 128) ?? '',
          last_name: lastName,
          roles: [...new Set(roles)].join(','),
          status: 'enabled',
          external_id: optionalText(input.externalId, 'externalId', 128) ?? null,
          phone: optionalText(input.phone, 'phone', 64) ?? '',
          profile: JSON.stringify(cleanProfile(input.profile)),
          api_secret_enc: roles.includes('api') ? this.deps.secrets.seal(input.password) : null,
          created_at: now.getTime(),
          updated_at: now.getTime(),
        })) as number[];
        await recordChange(tx, actor, now, {
          operation: 'CreateUser',
          objectType: 'user',
          objectId: id,
          details: { accountId: account.id, login, roles },
          event: { name: 'user.created', accountId: account.id, payload: { userId: id, accountId: account.id, login } },
        });
        // ... in every server process (this one forgets it below, once committed).
        await recordSignInChange(tx, now, { login });
        return id;
      });
      // A login may name users under several vendors, and a cached sign-in resolved it before this one existed.
      this.credentialsChanged(login);
      return created;
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`The login '${login}' is already taken under this vendor; choose another.`, 'login');
      throw e;
    }
  }

  async get(actor: Actor, userId: number): Promise<User> {
    const id = positiveId(userId, 'userId');
    const row = (await this.deps.db('users as u')
      .join('accounts as a', 'a.id', 'u.account_id')
      .where('u.id', id)
      .andWhere('a.path', 'like', `${actor.accountPath}%`)
      .first('u.*')) as UserRow | undefined;
    if (!row) throw notFound('User', id);
    return toUser(row);
  }

  async listForAccount(actor: Actor, accountId: number, opts: { page?: number; pageSize?: number; sortBy?: 'id' | 'login' | 'name' } = {}): Promise<{ items: User[]; total: number }> {
    const account = await scopedAccount(this.deps.db, actor, positiveId(accountId, 'accountId'));
    const { offset, pageSize } = paging(opts.page, opts.pageSize);
    const q = this.deps.db('users').where({ account_id: account.id });
    const [{ total }] = (await q.clone().count({ total: '*' })) as { total: number | string }[];
    const order = opts.sortBy === 'login' ? ['login'] : opts.sortBy === 'name' ? ['last_name', 'first_name'] : ['id'];
    const rows = (await q.orderBy(order.map((c) => ({ column: c }))).limit(pageSize).offset(offset)) as UserRow[];
    return { items: rows.map(toUser), total: Number(total) };
  }

  /**
   * Checks a login and password; with vendorId, only among that vendor's users. A wrong login and a wrong
   * password answer alike. Returns the user and its account.
   */
  async verify(login: string, password: string, vendorId?: number): Promise<{ user: UserRow; account: AccountRow }> {
    const fail = () => new AppError('UNAUTHENTICATED', 'The login or password is wrong.', 'login');
    if (typeof login !== 'string' || typeof password !== 'string' || !login || !password) throw fail();
    const q = sameLogin(this.deps.db('users as u').join('accounts as a', 'a.id', 'u.account_id'), 'u.login', login).andWhere('u.status', 'enabled');
    if (vendorId !== undefined) q.andWhere('u.login_scope_id', vendorId);
    const rows = (await q.select('u.*', 'a.path as account_path').orderByRaw('LENGTH(a.path), u.id')) as (UserRow & { account_path: string })[];
    for (const row of rows) {
      if (await verifyPassword(password, row.password_hash)) {
        const account = (await this.deps.db('accounts').where({ id: row.account_id }).first()) as AccountRow;
        if (account.status === 'closed') break;
        return { user: row, account };
      }
    }
    // Spend the same time on an unknown login as on a known one.
    if (rows.length === 0) await verifyPassword(password, DUMMY_HASH);
    throw fail();
  }

  /** PBA's UserValidate_API / our ValidateUser: checks a user's password, but only for users inside the caller's subtree. */
  async validateInScope(actor: Actor, login: string, password: string, vendorId?: number): Promise<{ accountId: number; userId: number; vendorAccountId: number | null }> {
    const { user, account } = await this.verify(login, password, vendorId);
    if (!account.path.startsWith(actor.accountPath)) throw new AppError('UNAUTHENTICATED', 'The login or password is wrong.', 'login');
    return { accountId: account.id, userId: user.id, vendorAccountId: account.vendor_id };
  }

  async findRow(conn: Conn, userId: number): Promise<UserRow | undefined> {
    return (await conn('users').where({ id: userId }).first()) as UserRow | undefined;
  }
}

const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
