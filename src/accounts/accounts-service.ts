import type { Actor, Deps } from '../context';
import { recordChange } from '../audit/record-change';
import { readStatements, toBigInt, type Conn, type Tx } from '../db/knex';
import { currency as currencyOf } from '../domain/currency';
import { conflict, invalid, notAllowed, notFound } from '../domain/errors';
import { countryCode, email, oneOf, optionalText, paging, positiveId, requiredText } from '../domain/fields';
import { idempotent } from '../idempotency';
import { scopedAccount, type AccountRow } from './scope';
import { recordSignInChange } from './sign-in-changes';

export const CONTACT_KINDS = ['admin', 'billing', 'technical', 'personal'] as const;
export type ContactKind = (typeof CONTACT_KINDS)[number];
export const RESELLER_KINDS = ['affiliate', 'basic', 'advanced'] as const;
export type ResellerKind = (typeof RESELLER_KINDS)[number];
export const ACCOUNT_STATUSES = ['active', 'suspended', 'closed'] as const;
export type AccountStatus = (typeof ACCOUNT_STATUSES)[number];

export interface Contact {
  firstName: string;
  middleName: string;
  lastName: string;
  email: string;
  phone: string;
  phoneCountryCode: string;
  phoneAreaCode: string;
  phoneExtension: string;
  fax: string;
  faxCountryCode: string;
  faxAreaCode: string;
  faxExtension: string;
  birthday: string;
  passport: string;
}

export interface Address {
  address1?: string;
  address2?: string;
  city?: string;
  state?: string;
  zip?: string;
  country?: string;
  postalAddress?: string;
}

export interface AccountInput {
  type: 'reseller' | 'customer';
  /** PBA's AccountWithIDAdd_API chooses the id; otherwise the database does. */
  accountId?: number;
  vendorAccountId?: number;
  resellerKind?: ResellerKind;
  companyName?: string;
  currency?: string;
  taxStatus?: 'taxable' | 'exempt';
  externalId?: string;
  address?: Address;
  contacts: Partial<Record<ContactKind, Partial<Contact>>> & { admin: Partial<Contact> };
  idempotencyKey?: string;
}

export interface AccountUpdate {
  companyName?: string;
  currency?: string;
  taxStatus?: 'taxable' | 'exempt';
  externalId?: string;
  resellerKind?: ResellerKind;
  status?: AccountStatus;
  address?: Address;
  contacts?: Partial<Record<ContactKind, Partial<Contact>>>;
}

export interface Account {
  accountId: number;
  vendorAccountId: number | null;
  type: 'provider' | 'reseller' | 'customer';
  resellerKind: ResellerKind | null;
  status: AccountStatus;
  companyName: string;
  currency: string;
  taxStatus: 'taxable' | 'exempt';
  externalId: string | null;
  address: Required<Address>;
  contacts: Partial<Record<ContactKind, Contact>>;
  balance: bigint;
  createdAt: Date;
}

const EMPTY_CONTACT: Contact = {
  firstName: '',
  middleName: '',
  lastName: '',
  email: '',
  phone: '',
  phoneCountryCode: '',
  phoneAreaCode: '',
  phoneExtension: '',
  fax: '',
  faxCountryCode: '',
  faxAreaCode: '',
  faxExtension: '',
  birthday: '',
  passport: '',
};

function cleanContact(c: Partial<Contact>, field: string, strict: boolean): Contact {
  const out: Contact = { ...EMPTY_CONTACT };
  for (const key of Object.keys(EMPTY_CONTACT) as (keyof Contact)[]) {
    out[key] = optionalText(c[key], `${field}.${key}`, key === 'email' ? 255 : 128) ?? '';
  }
  if (strict) {
    requiredText(out.firstName, `${field}.firstName`);
    requiredText(out.lastName, `${field}.lastName`);
    email(out.email, `${field}.email`);
  } else if (out.email) {
    email(out.email, `${field}.email`);
  }
  return out;
}

function cleanAddress(a: Address | undefined, field: string): Address {
  if (!a) return {};
  const out: Address = {};
  for (const key of ['address1', 'address2', 'city', 'state', 'zip', 'postalAddress'] as const) {
    const v = optionalText(a[key], `${field}.${key}`, key === 'postalAddress' ? 512 : key === 'zip' ? 32 : 255);
    if (v !== undefined) out[key] = v;
  }
  if (a.country !== undefined && a.country !== null && a.country !== '') out.country = countryCode(a.country, `${field}.country`);
  return out;
}

const ADDRESS_COLUMNS = {
  address1: 'address1',
  address2: 'address2',
  city: 'city',
  state: 'state',
  zip: 'zip',
  country: 'country',
  postalAddress: 'postal_address',
} as const;

function contactRow(accountId: number, kind: ContactKind, c: Contact) {
  return {
    account_id: accountId,
    kind,
    first_name: c.firstName,
    middle_name: c.middleName,
    last_name: c.lastName,
    email: c.email,
    phone: c.phone,
    phone_country_code: c.phoneCountryCode,
    phone_area_code: c.phoneAreaCode,
    phone_extension: c.phoneExtension,
    fax: c.fax,
    fax_country_code: c.faxCountryCode,
    fax_area_code: c.faxAreaCode,
    fax_extension: c.faxExtension,
    birthday: c.birthday,
    passport: c.passport,
  };
}

interface ContactRow {
  kind: ContactKind;
  first_name: string;
  middle_name: string;
  last_name: string;
  email: string;
  phone: string;
  phone_country_code: string;
  phone_area_code: string;
  phone_extension: string;
  fax: string;
  fax_country_code: string;
  fax_area_code: string;
  fax_extension: string;
  birthday: string;
  passport: string;
}

const ACCOUNT_COLUMNS = [
  'id', 'vendor_id', 'type', 'reseller_kind', 'status', 'company_name', 'currency', 'tax_status', 'external_id', 'path',
  'address1', 'address2', 'city', 'state', 'zip', 'country', 'postal_address', 'time_zone', 'created_at', 'updated_at',
] as const satisfies readonly (keyof AccountRow)[];
const CONTACT_COLUMNS = [
  'kind', 'first_name', 'middle_name', 'last_name', 'email', 'phone', 'phone_country_code', 'phone_area_code', 'phone_extension',
  'fax', 'fax_country_code', 'fax_area_code', 'fax_extension', 'birthday', 'passport',
] as const satisfies readonly (keyof ContactRow)[];
// The hot read selects these columns by name: a field added to AccountRow or ContactRow and not listed above
// fails the typecheck here instead of arriving undefined in GetAccount.
const ALL_ACCOUNT_COLUMNS: [Exclude<keyof AccountRow, (typeof ACCOUNT_COLUMNS)[number]>] extends [never] ? true : 'list the new AccountRow column in ACCOUNT_COLUMNS' = true;
const ALL_CONTACT_COLUMNS: [Exclude<keyof ContactRow, (typeof CONTACT_COLUMNS)[number]>] extends [never] ? true : 'list the new ContactRow column in CONTACT_COLUMNS' = true;
void ALL_ACCOUNT_COLUMNS;
void ALL_CONTACT_COLUMNS;
/**
 * Bindings: id (for the balance), id, the actor's path length, the actor's path. Contacts in kind order, as the
 * unique index keeps them; the balance (the given scalar expression) last, the same on every row.
 */
function accountWithContactsSql(balanceExpression: string): string {
  return (
    `SELECT ${ACCOUNT_COLUMNS.map((c) => `a.${c}`).join(', ')}, ${CONTACT_COLUMNS.map((c) => `c.${c}`).join(', ')}, ${balanceExpression} ` +
    'FROM accounts a LEFT JOIN account_contacts c ON c.account_id = a.id WHERE a.id = ? AND SUBSTR(a.path, 1, ?) = ? ORDER BY c.kind'
  );
}
const BALANCE_COLUMN = ACCOUNT_COLUMNS.length + CONTACT_COLUMNS.length;

function toContact(r: ContactRow): Contact {
  return {
    firstName: r.first_name,
    middleName: r.middle_name,
    lastName: r.last_name,
    email: r.email,
    phone: r.phone,
    phoneCountryCode: r.phone_country_code,
    phoneAreaCode: r.phone_area_code,
    phoneExtension: r.phone_extension,
    fax: r.fax,
    faxCountryCode: r.fax_country_code,
    faxAreaCode: r.fax_area_code,
    faxExtension: r.fax_extension,
    birthday: r.birthday,
    passport: r.passport,
  };
}

/**
 * Balance source: a scalar SQL expression with one `?` parameter, the account id, giving the account's balance in
 * minor units (NULL for none), read in the same statement as the account. Without one (until billing documents
 * exist) every balance is zero; the billing context passes its expression.
 */
export type BalanceExpression = string;

export class AccountsService {
  /** The hot read's statement and the balance read of list(): built once, with the balance expression in them. */
  private readonly readSql: string;
  private readonly balanceSql: string;
  private readonly statusListeners: ((accountId: number) => void)[] = [];

  constructor(
    private readonly deps: Deps,
    balanceExpression: BalanceExpression = '(0 * ?)',
  ) {
    this.readSql = accountWithContactsSql(balanceExpression);
    this.balanceSql = `SELECT ${balanceExpression}`;
  }

  /**
   * Called after an update that changed an account's status commits (the authenticator forgets its users' sign-ins;
   * the update wrote recordSignInChange in its transaction for the other server processes).
   */
  onStatusChanged(listener: (accountId: number) => void): void {
    this.statusListeners.push(listener);
  }

  private async balanceOf(conn: Conn, accountId: number): Promise<bigint> {
    const [rows] = (await readStatements(conn, [{ sql: this.balanceSql, bindings: [accountId], raw: true }])) as unknown[][][];
    return toBigInt(rows[0]?.[0]);
  }

  async create(actor: Actor, input: AccountInput): Promise<number> {
    const type = oneOf(input.type, 'type', ['reseller', 'customer'] as const);
    const vendorId = input.vendorAccountId === undefined || input.vendorAccountId === null ? actor.accountId : positiveId(input.vendorAccountId, 'vendorAccountId');
    const { db, clock } = this.deps;
    const vendor = await scopedAccount(db, actor, vendorId).catch(() => {
      throw invalid('vendorAccountId', `Vendor account ${vendorId} does not exist.`);
    });
    if (vendor.type === 'customer') throw notAllowed(`Account ${vendorId} is a customer and cannot own accounts.`, 'vendorAccountId');
    if (vendor.reseller_kind === 'affiliate' && type === 'customer') {
      throw notAllowed(`Account ${vendorId} is an affiliate: it earns commission on referrals but owns no customers.`, 'vendorAccountId');
    }
    const resellerKind = type === 'reseller' ? oneOf(input.resellerKind ?? 'basic', 'resellerKind', RESELLER_KINDS) : null;
    const currency = input.currency ? currencyOf(String(input.currency)).code : vendor.currency;
    if (resellerKind === 'basic' && currency !== vendor.currency) {
      throw invalid('currency', `A basic reseller sells its vendor's plans at its vendor's prices, in ${vendor.currency}.`);
    }
    const taxStatus = oneOf(input.taxStatus ?? 'taxable', 'taxStatus', ['taxable', 'exempt'] as const);
    const contacts: Partial<Record<ContactKind, Contact>> = {};
    if (!input.contacts || !input.contacts.admin) throw invalid('contact', 'An account needs an admin contact (first name, last name, e-mail).');
    for (const kind of CONTACT_KINDS) {
      const c = input.contacts[kind];
      if (c) contacts[kind] = cleanContact(c, kind === 'admin' ? 'contact' : `contacts.${kind}`, kind === 'admin');
    }
    const address = cleanAddress(input.address, 'contact');
    const companyName = optionalText(input.companyName, 'companyName') ?? '';
    const externalId = optionalText(input.externalId, 'externalId', 128) ?? null;

    const wantedId = input.accountId === undefined || input.accountId === null ? undefined : positiveId(input.accountId, 'accountId');
    if (wantedId !== undefined) {
      // Choosing ids is the provider's: anyone else could probe which ids exist, or push the sequence past what
      // PBA clients read as a 32-bit integer.
      if (actor.accountType !== 'provider') throw notAllowed('Only the provider may choose account ids; leave AccountID out.', 'accountId');
      if (wantedId > 2147483647) throw invalid('accountId', 'An account id must fit in 32 bits (at most 2147483647).');
    }
    return idempotent(this.deps, actor, input.idempotencyKey, 'CreateAccount', { ...input, idempotencyKey: undefined }, async (tx) => {
      const now = clock.now();
      if (wantedId !== undefined && (await tx('accounts').where({ id: wantedId }).first('id'))) {
        throw conflict(`Account ${wantedId} already exists.`, 'accountId');
      }
      const [insertedId] = (await tx('accounts').insert({
        ...(wantedId !== undefined ? { id: wantedId } : {}),
        vendor_id: vendor.id,
        type,
        reseller_kind: resellerKind,
        status: 'active',
        company_name: companyName,
        currency,
        tax_status: taxStatus,
        external_id: externalId,
        path: '',
        ...Object.fromEntries(Object.entries(address).map(([k, v]) => [ADDRESS_COLUMNS[k as keyof Address], v])),
        created_at: now.getTime(),
        updated_at: now.getTime(),
      })) as number[];
      const id = wantedId ?? insertedId;
      await tx('accounts').where({ id }).update({ path: `${vendor.path}${id}/` });
      for (const [kind, c] of Object.entries(contacts)) await tx('account_contacts').insert(contactRow(id, kind as ContactKind, c));
      await recordChange(tx, actor, now, {
        operation: 'CreateAccount',
        objectType: 'account',
        objectId: id,
        details: { type, vendorAccountId: vendor.id },
        event: { name: 'account.created', accountId: id, payload: { accountId: id, vendorAccountId: vendor.id, type, resellerKind } },
      });
      return id;
    });
  }

  /**
   * The API's hottest read (GetAccount, AccountDetailsGet_API): the scope check, the account and its contacts in
   * one statement by primary key (a LEFT JOIN: one row per contact, or one row with empty contact columns), run
   * through the thin executor with rows as arrays. The subtree test compares the path's prefix with SUBSTR
   * rather than LIKE: a LIKE pattern bound as a parameter makes SQLite re-prepare the statement on every run (its
   * LIKE optimisation depends on the value), which cost more than the rest of the read. Paths hold only digits
   * and '/', so the two tests agree.
   */
  async get(actor: Actor, accountId: number): Promise<Account> {
    const id = positiveId(accountId, 'accountId');
    const { db } = this.deps;
    const [rows] = (await readStatements(db, [{ sql: this.readSql, bindings: [id, id, actor.accountPath.length, actor.accountPath], raw: true }])) as unknown[][][];
    if (!rows.length) throw notFound('Account', id);
    const row: Record<string, unknown> = {};
    for (let i = 0; i < ACCOUNT_COLUMNS.length; i++) row[ACCOUNT_COLUMNS[i]] = rows[0][i];
    const contacts: Record<string, unknown>[] = [];
    for (const r of rows) {
      if (r[ACCOUNT_COLUMNS.length] === null) continue; // no contact at all
      const contact: Record<string, unknown> = {};
      for (let i = 0; i < CONTACT_COLUMNS.length; i++) contact[CONTACT_COLUMNS[i]] = r[ACCOUNT_COLUMNS.length + i];
      contacts.push(contact);
    }
    return this.toAccount(row as unknown as AccountRow, contacts as unknown as ContactRow[], toBigInt(rows[0][BALANCE_COLUMN]));
  }

  async update(actor: Actor, accountId: number, patch: AccountUpdate): Promise<Account> {
    const id = positiveId(accountId, 'accountId');
    const { db, clock } = this.deps;
    let statusChanged = false;
    const updated = await db.transaction(async (tx) => {
      const row = await scopedAccount(tx, actor, id);
      const changes: Record<string, unknown> = {};
      if (patch.companyName !== undefined) changes.company_name = optionalText(patch.companyName, 'companyName') ?? '';
      if (patch.currency !== undefined) {
        const code = currencyOf(String(patch.currency)).code;
        if (code !== row.currency) changes.currency = code;
      }
      if (patch.taxStatus !== undefined) changes.tax_status = oneOf(patch.taxStatus, 'taxStatus', ['taxable', 'exempt'] as const);
      if (patch.externalId !== undefined) changes.external_id = optionalText(patch.externalId, 'externalId', 128) ?? null;
      if (patch.resellerKind !== undefined) {
        if (row.type !== 'reseller') throw invalid('resellerKind', 'Only a reseller has a reseller kind.');
        const kind = oneOf(patch.resellerKind, 'resellerKind', RESELLER_KINDS);
        if (kind !== row.reseller_kind) {
          // The kind decides what a reseller may do (own customers, own prices): only its vendor sets it.
          if (row.id === actor.accountId) throw notAllowed('A reseller cannot change its own reseller kind; its vendor does.', 'resellerKind');
          if (kind === 'affiliate' && (await tx('accounts').where({ vendor_id: id, type: 'customer' }).first('id'))) {
            throw notAllowed(`Account ${id} owns customers; an affiliate owns none, so move them first.`, 'resellerKind');
          }
          changes.reseller_kind = kind;
        }
      }
      await this.checkBasicCurrency(tx, row, (changes.reseller_kind as ResellerKind | undefined) ?? row.reseller_kind, (changes.currency as string | undefined) ?? row.currency);
      if (patch.status !== undefined) {
        const status = oneOf(patch.status, 'status', ACCOUNT_STATUSES);
        if (row.id === actor.accountId && status !== row.status) throw notAllowed('An account cannot change its own status.', 'status');
        changes.status = status;
        statusChanged = status !== row.status;
      }
      for (const [k, v] of Object.entries(cleanAddress(patch.address, 'contact'))) changes[ADDRESS_COLUMNS[k as keyof Address]] = v;
      if (Object.keys(changes).length > 0) {
        changes.updated_at = clock.now().getTime();
        await tx('accounts').where({ id }).update(changes);
      }
      // Every server process forgets the cached sign-ins of the account's users (this one once committed, below).
      if (statusChanged) await recordSignInChange(tx, clock.now(), { accountId: id });
      const contactKinds: string[] = [];
      for (const kind of CONTACT_KINDS) {
        const c = patch.contacts?.[kind];
        if (!c) continue;
        const existing = (await tx('account_contacts').where({ account_id: id, kind }).first()) as ContactRow | undefined;
        const merged = cleanContact({ ...(existing ? toContact(existing) : {}), ...stripUndefined(c) }, kind === 'admin' ? 'contact' : `contacts.${kind}`, kind === 'admin');
        if (existing) await tx('account_contacts').where({ account_id: id, kind }).update(contactRow(id, kind, merged));
        else await tx('account_contacts').insert(contactRow(id, kind, merged));
        contactKinds.push(kind);
      }
      const changed = [...Object.keys(changes).filter((k) => k !== 'updated_at'), ...contactKinds.map((k) => `contact.${k}`)];
      if (changed.length > 0) {
        await recordChange(tx, actor, clock.now(), {
          operation: 'UpdateAccount',
          objectType: 'account',
          objectId: id,
          details: { changed },
          event: {
            name: changes.status && changes.status !== row.status ? `account.${changes.status === 'active' ? 'activated' : String(changes.status)}` : 'account.updated',
            accountId: id,
            payload: { accountId: id, changed },
          },
        });
      }
      return this.view(tx, (await tx('accounts').where({ id }).first()) as AccountRow);
    });
    if (statusChanged) for (const listener of this.statusListeners) listener(id);
    return updated;
  }

  /** A basic reseller sells its vendor's plans at its vendor's prices, so it keeps its vendor's currency, and so do the basic resellers below it. */
  private async checkBasicCurrency(tx: Tx, row: AccountRow, kind: ResellerKind | null, currency: string): Promise<void> {
    if (kind === 'basic' && row.vendor_id !== null && (kind !== row.reseller_kind || currency !== row.currency)) {
      const vendor = (await tx('accounts').where({ id: row.vendor_id }).first('currency')) as { currency: string };
      if (vendor.currency !== currency) throw invalid('currency', `A basic reseller sells its vendor's plans at its vendor's prices, in ${vendor.currency}.`);
    }
    if (currency !== row.currency && (await tx('accounts').where({ vendor_id: row.id, type: 'reseller', reseller_kind: 'basic' }).first('id'))) {
      throw invalid('currency', `Account ${row.id} has basic resellers, which sell in its currency ${row.currency}; it cannot change.`);
    }
  }

  async list(
    actor: Actor,
    filter: { vendorAccountId?: number; status?: string; search?: string; page?: number; pageSize?: number },
  ): Promise<{ items: Account[]; total: number }> {
    const { db } = this.deps;
    const { offset, pageSize } = paging(filter.page, filter.pageSize);
    const q = db('accounts').where('path', 'like', `${actor.accountPath}%`).andWhereNot('id', actor.accountId);
    if (filter.vendorAccountId !== undefined && filter.vendorAccountId !== null) {
      const vendor = await scopedAccount(db, actor, positiveId(filter.vendorAccountId, 'vendorAccountId'));
      q.andWhere('vendor_id', vendor.id);
    }
    if (filter.status) q.andWhere('status', oneOf(filter.status, 'status', ACCOUNT_STATUSES));
    if (filter.search) {
      // '!' escapes LIKE wildcards alike on SQLite (which has no default escape) and MariaDB.
      const term = `%${String(filter.search).replace(/[%_!]/g, (c) => `!${c}`)}%`;
      q.andWhere((w) =>
        w
          .whereRaw("company_name LIKE ? ESCAPE '!'", [term])
          .orWhereRaw("external_id LIKE ? ESCAPE '!'", [term])
          .orWhere('id', Number(filter.search) || -1),
      );
    }
    const [{ total }] = (await q.clone().count({ total: '*' })) as { total: number | string }[];
    const rows = (await q.orderBy('id').limit(pageSize).offset(offset)) as AccountRow[];
    return { items: await Promise.all(rows.map((r) => this.view(db, r))), total: Number(total) };
  }

  private async view(conn: Conn | Tx, row: AccountRow): Promise<Account> {
    const contacts = (await conn('account_contacts').where({ account_id: row.id })) as ContactRow[];
    return this.toAccount(row, contacts, await this.balanceOf(conn, row.id));
  }

  private toAccount(row: AccountRow, contacts: ContactRow[], balance: bigint): Account {
    return {
      accountId: row.id,
      vendorAccountId: row.vendor_id,
      type: row.type,
      resellerKind: row.reseller_kind,
      status: row.status,
      companyName: row.company_name ?? '',
      currency: row.currency,
      taxStatus: row.tax_status,
      externalId: row.external_id,
      address: {
        address1: row.address1 ?? '',
        address2: row.address2 ?? '',
        city: row.city ?? '',
        state: row.state ?? '',
        zip: row.zip ?? '',
        country: row.country ?? '',
        postalAddress: row.postal_address ?? '',
      },
      contacts: Object.fromEntries(contacts.map((c) => [c.kind, toContact(c)])),
      balance,
      createdAt: new Date(Number(row.created_at)),
    };
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
