import crypto from 'node:crypto';
import type { Actor, Deps } from '../context';
import { recordChange } from '../audit/record-change';
import type { OrderLedger } from '../billing/documents-service';
import { declineUnpaidDomainRenewals } from '../billing/run/domain-renewals';
import { idempotent } from '../idempotency';
import { scopedAccount, type AccountRow } from '../accounts/scope';
import { likeTerm, toBool, toNumber, toOptionalNumber, type Conn, type Tx } from '../db/knex';
import { AppError, invalid, notAllowed, notFound } from '../domain/errors';
import { paging, positiveId } from '../domain/fields';
import type { PluginInstancesService } from '../plugins/instances-service';
import { MAX_NAMES_PER_CALL, parseDomainName, parseNameservers, type DomainState, type Outcome, type Registrar } from '../plugins/sdk';
import type { TldCatalogService } from './tld-catalog';

/** The statuses a domain shows (the WSDL's DomainStatus). */
export const DOMAIN_STATUSES = ['pending', 'active', 'transfer_pending', 'expired', 'redemption', 'suspended', 'transferred_away', 'deleted'] as const;
export type DomainStatus = (typeof DOMAIN_STATUSES)[number];

/** The registrar SDK's state -> our status. */
export const STATUS_FROM_REGISTRAR: Record<DomainState, DomainStatus> = {
  active: 'active',
  pending: 'pending',
  transferring: 'transfer_pending',
  expired: 'expired',
  suspended: 'suspended',
  deleting: 'redemption',
};

export interface Domain {
  domainId: number;
  name: string;
  tld: string;
  accountId: number;
  vendorAccountId: number;
  registrarInstanceId: number;
  status: DomainStatus;
  registeredAt: Date | null;
  expiresAt: Date | null;
  nameservers: string[];
  locked: boolean;
  /** The billing run invoices a renewal ahead of expiry (billing settings' domainRenewDaysBefore). */
  autoRenew: boolean;
  subscriptionId: number | null;
  orderId: number | null;
}

export interface DomainCheck {
  name: string;
  available: boolean;
  reason?: string;
  /** The caller's 1-year registration price in minor units, when the name is available and priced. */
  price?: bigint;
  currency?: string;
}

/** A domain by id or by name (either may be given; both must then agree). */
export interface DomainRef {
  domainId?: number;
  name?: string;
}

export interface RegisteredDomainInput {
  accountId: number;
  name: string;
  registrarInstanceId: number;
  /** The seller (the account's vendor for a customer, else the account itself) unless given. */
  vendorAccountId?: number;
  tldId?: number | null;
  registeredAt?: Date | null;
  expiresAt: Date | null;
  nameservers?: string[];
  status?: DomainStatus;
  subscriptionId?: number | null;
  orderId?: number | null;
  /** Default true: the billing run invoices its renewals. */
  autoRenew?: boolean;
  /** A transfer in still pending (status transfer_pending): the operation id it was started with, for pollTransfer. */
  transferOperationId?: string | null;
}

/** A domain in a list, with the company name of the account holding it. */
export interface DomainListItem extends Domain {
  accountName: string | null;
}

/** What a domain list may be sorted by (name -> column; nothing else reaches the SQL). */
export const DOMAIN_SORTS = { id: 'd.id', name: 'd.name', account: 'a.company_name', status: 'd.status', expires: 'd.expires_at', autoRenew: 'd.auto_renew' } as const;
export type DomainSort = keyof typeof DOMAIN_SORTS;

export interface DomainListFilter {
  /** Only this account's domains (inside the caller's subtree, else NOT_FOUND). */
  accountId?: number;
  status?: string;
  /** A part of the name, e.g. "bakery". */
  nameContains?: string;
  sort?: DomainSort;
  dir?: 'asc' | 'desc';
  page?: number;
  pageSize?: number;
}

interface DomainRow {
  id: number;
  account_id: number;
  vendor_id: number;
  name: string;
  tld: string;
  tld_id: number | null;
  registrar_instance_id: number;
  status: DomainStatus;
  registered_at: unknown;
  expires_at: unknown;
  nameservers: string;
  locked: unknown;
  auto_renew: unknown;
  subscription_id: unknown;
  order_id: unknown;
}

export const SYNC_BATCH = 100;

/**
 * Sets a domain's auto-renewal in the caller's transaction: audited `SetDomainAutoRenew`, event
 * `domain.auto_renew_changed` (SetDomainAutoRenew; RejectOrder of a held order turns it off for the domain it kept,
 * giving its `reason`).
 */
export async function setAutoRenewTx(tx: Tx, actor: Actor, now: Date, row: Pick<DomainRow, 'id' | 'name' | 'account_id'>, autoRenew: boolean, reason?: string): Promise<boolean> {
  // Only the call that flips the value writes (a concurrent twin finds it done): answers whether it changed.
  const n = await tx('domains').where({ id: row.id, auto_renew: !autoRenew }).update({ auto_renew: autoRenew, updated_at: now.getTime() });
  if (n !== 1) return false;
  await recordChange(tx, actor, now, {
    operation: 'SetDomainAutoRenew',
    objectType: 'domain',
    objectId: toNumber(row.id),
    details: { name: row.name, autoRenew, reason },
    event: { name: 'domain.auto_renew_changed', accountId: toNumber(row.account_id), payload: { domainId: toNumber(row.id), name: row.name, autoRenew } },
  });
  return true;
}

/** An operation id for one registrar call (3-64 printable characters, unique per call). */
/** The field a domain was named by: `domainId` if given, else `name`. */
const refField = (ref: DomainRef): string => (ref.domainId !== undefined && ref.domainId !== null ? 'domainId' : 'name');

const operationId = (action: string) => `hw-${action}-${crypto.randomUUID()}`;

/** A registrar refusal or outage as our error: retryable ones are UNAVAILABLE, the rest PROVIDER_ERROR. */
export function registrarError(outcome: Outcome<unknown>, what: string): AppError {
  if (outcome.status === 'pending') return new AppError('UNAVAILABLE', `The registrar has not finished ${what} yet; try again later.`);
  if (outcome.status !== 'failure') return new AppError('INTERNAL', `Unexpected registrar answer to ${what}.`);
  const code = outcome.code ? ` (${outcome.code})` : '';
  return new AppError(outcome.retryable ? 'UNAVAILABLE' : 'PROVIDER_ERROR', `The registrar refused ${what}${code}: ${outcome.message}`);
}

/**
 * The domains accounts hold: availability checks with the caller's price, reading a domain, changing its
 * nameservers and reading its EPP auth code through its registrar, and the daily sync of status and expiry.
 * Registration, transfer and renewal come through orders (their saga calls recordRegisteredDomain).
 */
export class DomainsService {
  constructor(
    private readonly deps: Deps,
    private readonly parts: { tlds: TldCatalogService; pluginInstances: PluginInstancesService; ledger: Pick<OrderLedger, 'memoTx' | 'invoiceCreditTx'> },
  ) {}

  /** Availability of up to 100 names at once, through each TLD's registrar, with the price the caller pays for 1 year. */
  async check(actor: Actor, names: unknown, opts: { vendorAccountId?: number } = {}): Promise<DomainCheck[]> {
    if (!Array.isArray(names) || names.length === 0) throw invalid('names', 'names must list at least one domain name.');
    if (names.length > MAX_NAMES_PER_CALL) throw invalid('names', `At most ${MAX_NAMES_PER_CALL} names per check.`);
    const parsed = names.map((n, i) => {
      const p = parseDomainName(n);
      if (!p.ok) throw invalid(`names[${i}]`, p.message);
      return p;
    });
    const seller = await this.parts.tlds.sellerFor(actor, opts.vendorAccountId);
    const results = new Map<string, DomainCheck>();
    const byInstance = new Map<number, { names: string[]; price: Map<string, { amount?: bigint; currency: string }> }>();
    for (const p of parsed) {
      if (results.has(p.name) || [...byInstance.values()].some((g) => g.names.includes(p.name))) continue;
      const tld = await this.tldOf(this.deps.db, seller, p.name);
      if (!tld) {
        results.set(p.name, { name: p.name, available: false, reason: `.${p.tld} is not sold here.` });
        continue;
      }
      const group = byInstance.get(tld.offer.registrarInstanceId) ?? { names: [] as string[], price: new Map<string, { amount?: bigint; currency: string }>() };
      group.names.push(p.name);
      group.price.set(p.name, { amount: tld.offer.prices.find((x) => x.action === 'register' && x.years === 1)?.amount, currency: tld.offer.currency });
      byInstance.set(tld.offer.registrarInstanceId, group);
    }
    for (const [instanceId, group] of byInstance) {
      const registrar = await this.registrar(instanceId);
      const outcome = await registrar.checkAvailability({ operationId: operationId('check'), names: group.names });
      if (outcome.status !== 'success') throw registrarError(outcome, 'the availability check');
      for (const r of outcome.result.results) {
        const price = group.price.get(r.name);
        results.set(r.name, r.available && price?.amount !== undefined ? { name: r.name, available: true, price: price.amount, currency: price.currency } : { name: r.name, available: r.available, reason: r.reason });
      }
    }
    // In the order asked, each name once.
    const seen = new Set<string>();
    return parsed.filter((p) => !seen.has(p.name) && seen.add(p.name)).map((p) => results.get(p.name) ?? { name: p.name, available: false, reason: 'The registrar did not answer for this name.' });
  }

  async get(actor: Actor, ref: DomainRef): Promise<Domain> {
    return this.view(await this.scopedRow(actor, ref));
  }

  /**
   * The domains held by accounts in the caller's subtree (the provider: all; a reseller: its own and those of the
   * accounts below it), filtered by account, status and a part of the name, sorted, one page.
   */
  async list(actor: Actor, filter: DomainListFilter = {}): Promise<{ items: DomainListItem[]; total: number }> {
    const { offset, pageSize } = paging(filter.page, filter.pageSize);
    const q = this.deps.db('domains as d').join('accounts as a', 'a.id', 'd.account_id').where('a.path', 'like', `${actor.accountPath}%`);
    if (filter.accountId !== undefined && filter.accountId !== null) q.andWhere('d.account_id', (await scopedAccount(this.deps.db, actor, positiveId(filter.accountId, 'accountId'))).id);
    if (filter.status !== undefined && filter.status !== null && filter.status !== '') {
      if (!(DOMAIN_STATUSES as readonly string[]).includes(filter.status)) throw invalid('status', `status must be one of ${DOMAIN_STATUSES.join(', ')}.`);
      q.andWhere('d.status', filter.status);
    }
    const part = (filter.nameContains ?? '').trim().toLowerCase();
    if (part) q.andWhereRaw("d.name LIKE ? ESCAPE '!'", [likeTerm(part)]);
    const [{ total }] = (await q.clone().count({ total: '*' })) as { total: number | string }[];
    const sort = filter.sort !== undefined && Object.hasOwn(DOMAIN_SORTS, filter.sort) ? DOMAIN_SORTS[filter.sort] : DOMAIN_SORTS.name;
    const dir = filter.dir === 'desc' ? 'desc' : 'asc';
    const rows = (await q.select('d.*', 'a.company_name').orderBy(sort, dir).orderBy('d.id', dir).limit(pageSize).offset(offset)) as (DomainRow & { company_name: string | null })[];
    return { items: rows.map((r) => ({ ...this.view(r), accountName: r.company_name })), total: Number(total) };
  }

  /** Replaces the nameservers at the registrar, then here; audited, event domain.nameservers_changed. */
  async setNameservers(actor: Actor, ref: DomainRef, nameservers: unknown): Promise<Domain> {
    const row = await this.scopedRow(actor, ref);
    const ns = parseNameservers(nameservers);
    if (!ns.ok) throw invalid('nameservers', ns.message);
    this.refuseGone(row, ref);
    const registrar = await this.registrar(toNumber(row.registrar_instance_id));
    const outcome = await registrar.setNameservers({ operationId: operationId('ns'), name: row.name, nameservers: ns.hosts });
    if (outcome.status !== 'success') throw registrarError(outcome, `the nameserver change of ${row.name}`);
    const hosts = outcome.result.nameservers;
    await this.deps.db.transaction(async (tx) => {
      const now = this.deps.clock.now();
      await tx('domains').where({ id: row.id }).update({ nameservers: JSON.stringify(hosts), updated_at: now.getTime() });
      await recordChange(tx, actor, now, {
        operation: 'SetNameservers',
        objectType: 'domain',
        objectId: row.id,
        details: { name: row.name, before: JSON.parse(row.nameservers) as string[], after: hosts },
        event: { name: 'domain.nameservers_changed', accountId: toNumber(row.account_id), payload: { domainId: toNumber(row.id), name: row.name, nameservers: hosts } },
      });
    });
    return this.get(actor, { domainId: toNumber(row.id) });
  }

  /**
   * Switches an active domain's auto-renewal on or off: with it off the billing run no longer invoices its renewals,
   * and a renewal it already put on an unpaid invoice is credited (declineUnpaidDomainRenewals); a paid one stays.
   * The value it already has: nothing written, the domain answered. Audited `SetDomainAutoRenew`, event
   * `domain.auto_renew_changed`, in the transaction of the change (and of the idempotency key, when given).
   */
  async setAutoRenew(actor: Actor, ref: DomainRef, autoRenew: unknown, opts: { idempotencyKey?: string } = {}): Promise<Domain> {
    const row = await this.scopedRow(actor, ref);
    if (typeof autoRenew !== 'boolean') throw invalid('autoRenew', 'autoRenew must be true or false.');
    if (row.status !== 'active') {
      throw notAllowed(`${row.name} is ${row.status.replace('_', ' ')}: auto-renew can be changed only on an active domain.`, refField(ref));
    }
    // The value it already has: nothing to write (with a key, the key is still claimed, so its reuse is checked).
    if (toBool(row.auto_renew) === autoRenew && !opts.idempotencyKey) return this.view(row);
    const domainId = toNumber(row.id);
    return idempotent(this.deps, actor, opts.idempotencyKey, 'SetDomainAutoRenew', { domainId, autoRenew }, async (tx) => {
      const now = this.deps.clock.now();
      if ((await setAutoRenewTx(tx, actor, now, row, autoRenew)) && !autoRenew) await declineUnpaidDomainRenewals(tx, this.parts.ledger, actor, now, domainId, row.name);
      return this.view((await tx('domains').where({ id: domainId }).first()) as DomainRow);
    });
  }

  /** The EPP auth code from the registrar. Audited (without the code); never logged, never stored in clear. */
  async getEppCode(actor: Actor, ref: DomainRef): Promise<string> {
    const row = await this.scopedRow(actor, ref);
    this.refuseGone(row, ref);
    const registrar = await this.registrar(toNumber(row.registrar_instance_id));
    const outcome = await registrar.getAuthCode({ operationId: operationId('auth'), name: row.name });
    if (outcome.status !== 'success') throw registrarError(outcome, `the auth code of ${row.name}`);
    await this.deps.db.transaction(async (tx) => {
      const now = this.deps.clock.now();
      await recordChange(tx, actor, now, {
        operation: 'GetEppCode',
        objectType: 'domain',
        objectId: row.id,
        details: { name: row.name },
        event: { name: 'domain.auth_code_read', accountId: toNumber(row.account_id), payload: { domainId: toNumber(row.id), name: row.name } },
      });
    });
    return outcome.result.authCode;
  }

  /** Does a transfer of this name (or of names under this TLD) need the EPP auth code, for the caller's seller? */
  async transferKeyRequired(actor: Actor, nameOrTld: string): Promise<boolean> {
    const raw = String(nameOrTld ?? '').trim().replace(/^\./, '');
    const parsed = parseDomainName(raw.includes('.') ? raw : `example.${raw}`);
    if (!parsed.ok) throw invalid('name', parsed.message);
    const seller = await this.parts.tlds.sellerFor(actor);
    const tld = await this.tldOf(this.deps.db, seller, parsed.name);
    if (!tld) throw invalid('name', `.${parsed.tld} is not sold here.`);
    return tld.offer.transferAuthRequired;
  }

  /**
   * Records a domain the registrar has registered (or transferred in) for an account: called by the order saga
   * once the registrar confirmed it. `actor` is who acts (the saga's system actor).
   */
  async recordRegisteredDomain(conn: Conn, actor: Actor, input: RegisteredDomainInput): Promise<number> {
    const parsed = parseDomainName(input.name);
    if (!parsed.ok) throw invalid('name', parsed.message);
    const account = (await conn('accounts').where({ id: positiveId(input.accountId, 'accountId') }).first()) as AccountRow | undefined;
    if (!account) throw notFound('Account', input.accountId);
    const vendorId = input.vendorAccountId ?? toNumber((await this.parts.tlds.sellerOf(conn, account)).id);
    const ns = parseNameservers(input.nameservers ?? []);
    if (!ns.ok) throw invalid('nameservers', ns.message);
    const status = input.status ?? 'active';
    if (!DOMAIN_STATUSES.includes(status)) throw invalid('status', `status must be one of ${DOMAIN_STATUSES.join(', ')}.`);
    const run = async (tx: Conn) => {
      const now = this.deps.clock.now();
      const existing = (await tx('domains').where({ name: parsed.name }).first('id', 'status')) as { id: number; status: DomainStatus } | undefined;
      if (existing && !['deleted', 'transferred_away'].includes(existing.status)) throw new AppError('CONFLICT', `${parsed.name} is already held here (domain ${toNumber(existing.id)}).`, 'name');
      if (existing) await tx('domains').where({ id: existing.id }).del();
      const [id] = (await tx('domains').insert({
        account_id: toNumber(account.id),
        vendor_id: vendorId,
        name: parsed.name,
        tld: input.tldId ? (((await tx('tlds').where({ id: input.tldId }).first('tld')) as { tld: string } | undefined)?.tld ?? parsed.tld) : parsed.tld,
        tld_id: input.tldId ?? null,
        registrar_instance_id: positiveId(input.registrarInstanceId, 'registrarInstanceId'),
        status,
        registered_at: input.registeredAt ? input.registeredAt.getTime() : null,
        expires_at: input.expiresAt ? input.expiresAt.getTime() : null,
        nameservers: JSON.stringify(ns.hosts),
        locked: false,
        auto_renew: input.autoRenew ?? true,
        transfer_operation_id: input.transferOperationId ?? null,
        subscription_id: input.subscriptionId ?? null,
        order_id: input.orderId ?? null,
        created_at: now.getTime(),
        updated_at: now.getTime(),
      })) as number[];
      await recordChange(tx as never, actor, now, {
        operation: 'RecordDomain',
        objectType: 'domain',
        objectId: id,
        details: { name: parsed.name, accountId: toNumber(account.id), status, registrarInstanceId: input.registrarInstanceId },
        event: { name: 'domain.registered', accountId: toNumber(account.id), payload: { domainId: id, name: parsed.name, expiresAt: input.expiresAt?.toISOString() ?? null } },
      });
      return toNumber(id);
    };
    return 'isTransaction' in conn && conn.isTransaction ? run(conn) : this.deps.db.transaction((tx) => run(tx));
  }

  /**
   * Brings status and expiry from the registrars, in batches of SYNC_BATCH names per registrar call. A registrar
   * failure for one batch is logged and the batch skipped (the next run tries again). Returns counts.
   */
  async sync(actor: Actor, batchSize = SYNC_BATCH): Promise<{ checked: number; changed: number; failedBatches: number }> {
    batchSize = Math.max(1, Math.min(Math.floor(batchSize) || SYNC_BATCH, MAX_NAMES_PER_CALL));
    let checked = 0;
    let changed = 0;
    let failedBatches = 0;
    let afterId = 0;
    for (;;) {
      const rows = (await this.deps.db('domains')
        .whereNotIn('status', ['deleted', 'transferred_away'])
        .andWhere('id', '>', afterId)
        .orderBy('id')
        .limit(batchSize)) as DomainRow[];
      if (rows.length === 0) break;
      afterId = toNumber(rows[rows.length - 1].id);
      const byInstance = new Map<number, DomainRow[]>();
      for (const r of rows) {
        const k = toNumber(r.registrar_instance_id);
        byInstance.set(k, [...(byInstance.get(k) ?? []), r]);
      }
      for (const [instanceId, group] of byInstance) {
        let outcome: Outcome<{ domains: { name: string; found: boolean; state?: DomainState; expiresAt?: string }[] }>;
        try {
          const registrar = await this.registrar(instanceId);
          outcome = await registrar.sync({ operationId: operationId('sync'), names: group.map((r) => r.name) });
        } catch (e) {
          outcome = { status: 'failure', retryable: true, message: (e as Error).message };
        }
        if (outcome.status !== 'success') {
          failedBatches++;
          this.deps.log.warn('domain sync batch failed', { registrarInstanceId: instanceId, names: group.length, error: outcome.status === 'failure' ? outcome.message : 'pending' });
          continue;
        }
        const answers = new Map(outcome.result.domains.map((d) => [d.name, d]));
        for (const row of group) {
          const a = answers.get(row.name);
          if (!a) continue;
          checked++;
          const now = this.deps.clock.now();
          const oldExpiry = toOptionalNumber(row.expires_at);
          let status: DomainStatus = row.status;
          let expiresAt = oldExpiry;
          // A transfer in under way: the registrar holds the name only once the transfer completes.
          if (!a.found && row.status === 'transfer_pending') {
            await this.deps.db('domains').where({ id: row.id }).update({ synced_at: now.getTime() });
            continue;
          }
          if (!a.found) status = oldExpiry !== null && oldExpiry < now.getTime() ? 'deleted' : 'transferred_away';
          else {
            if (a.state) status = STATUS_FROM_REGISTRAR[a.state] ?? row.status;
            if (a.expiresAt && !Number.isNaN(Date.parse(a.expiresAt))) expiresAt = Date.parse(a.expiresAt);
          }
          if (status === row.status && expiresAt === oldExpiry) {
            await this.deps.db('domains').where({ id: row.id }).update({ synced_at: now.getTime() });
            continue;
          }
          changed++;
          await this.deps.db.transaction(async (tx) => {
            await tx('domains').where({ id: row.id }).update({ status, expires_at: expiresAt, synced_at: now.getTime(), updated_at: now.getTime() });
            await recordChange(tx, actor, now, {
              operation: 'SyncDomain',
              objectType: 'domain',
              objectId: row.id,
              details: { name: row.name, status: { before: row.status, after: status }, expiresAt: { before: oldExpiry, after: expiresAt } },
              event: {
                name: 'domain.synced',
                accountId: toNumber(row.account_id),
                payload: { domainId: toNumber(row.id), name: row.name, status, previousStatus: row.status, expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString() },
              },
            });
          });
        }
      }
      if (rows.length < batchSize) break;
    }
    return { checked, changed, failedBatches };
  }

  /** The registrar instance's plugin object; a disabled instance is UNAVAILABLE (never silently another registrar). */
  private async registrar(instanceId: number): Promise<Registrar> {
    const row = (await this.deps.db('plugin_instances').where({ id: instanceId }).first('name', 'status')) as { name: string; status: string } | undefined;
    if (row && row.status !== 'active') throw new AppError('UNAVAILABLE', `Registrar instance '${row.name}' is disabled; domain operations through it wait until it is enabled again.`);
    return this.parts.pluginInstances.instantiate<Registrar>(instanceId);
  }

  /** A domain deleted or transferred away: its state forbids the call (NOT_ALLOWED, as api-contract.md defines it). */
  private refuseGone(row: DomainRow, ref: DomainRef): void {
    if (row.status === 'deleted' || row.status === 'transferred_away') throw notAllowed(`${row.name} is ${row.status.replace('_', ' ')}: it is no longer held here.`, refField(ref));
  }

  /** The seller's offer for the longest TLD suffix of the name it sells ("co.uk" before "uk"). */
  private async tldOf(conn: Conn, seller: AccountRow, name: string) {
    const labels = name.split('.');
    for (let i = 1; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.');
      const offer = await this.parts.tlds.offerFor(conn, seller, suffix);
      if (offer) return { suffix, offer };
    }
    return undefined;
  }

  private async scopedRow(actor: Actor, ref: DomainRef): Promise<DomainRow> {
    const q = this.deps.db('domains as d').join('accounts as a', 'a.id', 'd.account_id').where('a.path', 'like', `${actor.accountPath}%`).first('d.*');
    let label: string | number;
    if (ref.domainId !== undefined && ref.domainId !== null) {
      label = positiveId(ref.domainId, 'domainId');
      q.andWhere('d.id', label);
      if (ref.name !== undefined && ref.name !== null && ref.name !== '') {
        const p = parseDomainName(ref.name);
        if (!p.ok) throw invalid('name', p.message);
        q.andWhere('d.name', p.name);
      }
    } else if (ref.name !== undefined && ref.name !== null && ref.name !== '') {
      const p = parseDomainName(ref.name);
      if (!p.ok) throw invalid('name', p.message);
      label = p.name;
      q.andWhere('d.name', p.name);
    } else {
      throw invalid('domainId', 'Give the domainId or the name of the domain.');
    }
    const row = (await q) as DomainRow | undefined;
    if (!row) throw notFound('Domain', label);
    return row;
  }

  private view(row: DomainRow): Domain {
    return {
      domainId: toNumber(row.id),
      name: row.name,
      tld: row.tld,
      accountId: toNumber(row.account_id),
      vendorAccountId: toNumber(row.vendor_id),
      registrarInstanceId: toNumber(row.registrar_instance_id),
      status: row.status,
      registeredAt: row.registered_at === null || row.registered_at === undefined ? null : new Date(toNumber(row.registered_at)),
      expiresAt: row.expires_at === null || row.expires_at === undefined ? null : new Date(toNumber(row.expires_at)),
      nameservers: JSON.parse(row.nameservers) as string[],
      locked: toBool(row.locked),
      autoRenew: row.auto_renew === undefined ? true : toBool(row.auto_renew),
      subscriptionId: toOptionalNumber(row.subscription_id),
      orderId: toOptionalNumber(row.order_id),
    };
  }
}
