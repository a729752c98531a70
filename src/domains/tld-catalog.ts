import type { Actor, Deps } from '../context';
import { recordChange } from '../audit/record-change';
import { ancestorIds, scopedAccount, type AccountRow } from '../accounts/scope';
import { money, toBigInt, toBool, toNumber, type Conn } from '../db/knex';
import { invalid, notAllowed, notFound } from '../domain/errors';
import { positiveId } from '../domain/fields';
import { parseDomainName } from '../plugins/sdk';

export const TLD_ACTIONS = ['register', 'transfer', 'renew'] as const;
export type TldAction = (typeof TLD_ACTIONS)[number];
export const MAX_YEARS = 10;
const MAX_AMOUNT = 2n ** 63n - 1n;

export interface TldPrice {
  action: TldAction;
  years: number;
  /** Minor units of the TLD's currency. */
  amount: bigint;
}

export interface Tld {
  tldId: number;
  vendorAccountId: number;
  /** Without the dot, punycode: "com", "co.uk". */
  tld: string;
  registrarInstanceId: number;
  currency: string;
  enabled: boolean;
  /** Does a transfer in need the EPP auth code (true for every gTLD). */
  transferAuthRequired: boolean;
  prices: TldPrice[];
}

export interface TldInput {
  vendorAccountId?: number;
  tld: string;
  registrarInstanceId: number;
  enabled?: boolean;
  transferAuthRequired?: boolean;
  prices?: { action: string; years: number; amount: bigint }[];
}

export interface TldPatch {
  registrarInstanceId?: number;
  enabled?: boolean;
  transferAuthRequired?: boolean;
  /** When given, replaces every price of the TLD. */
  prices?: { action: string; years: number; amount: bigint }[];
}

interface TldRow {
  id: number;
  vendor_id: number;
  tld: string;
  registrar_instance_id: number;
  currency: string;
  enabled: unknown;
  transfer_auth_required: unknown;
}

/** "com", ".com", "CO.UK" -> "com", "co.uk" (IDN labels to punycode). */
export function normalizeTld(value: unknown, field = 'tld'): string {
  if (typeof value !== 'string' || value.trim() === '') throw invalid(field, `${field} is required, e.g. com.`);
  const raw = value.trim().replace(/^\./, '');
  const parsed = parseDomainName(`example.${raw}`);
  if (!parsed.ok) throw invalid(field, `'${value}' is not a top-level domain such as com or co.uk.`);
  return parsed.name.slice('example.'.length);
}

function checkPrices(list: TldInput['prices'], field = 'prices'): TldPrice[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw invalid(field, `${field} must be a list of {action, years, amount}.`);
  const out: TldPrice[] = [];
  list.forEach((p, i) => {
    const f = `${field}[${i}]`;
    if (!p || typeof p !== 'object') throw invalid(f, `${f} must be {action, years, amount}.`);
    if (!TLD_ACTIONS.includes(p.action as TldAction)) throw invalid(`${f}.action`, `${f}.action must be one of ${TLD_ACTIONS.join(', ')}.`);
    const years = typeof p.years === 'string' ? Number(p.years) : p.years;
    if (!Number.isInteger(years) || years < 1 || years > MAX_YEARS) throw invalid(`${f}.years`, `${f}.years must be a whole number from 1 to ${MAX_YEARS}.`);
    if (typeof p.amount !== 'bigint') throw invalid(`${f}.amount`, `${f}.amount must be an amount in minor units.`);
    if (p.amount < 0n || p.amount > MAX_AMOUNT) throw invalid(`${f}.amount`, `${f}.amount must be from 0 to ${MAX_AMOUNT} minor units.`);
    if (out.some((q) => q.action === p.action && q.years === years)) throw invalid(f, `${f} repeats the ${p.action} price for ${years} year(s).`);
    out.push({ action: p.action as TldAction, years, amount: p.amount });
  });
  return out;
}

/**
 * The domain catalog: which TLDs a vendor sells, through which registrar instance, at which prices. A vendor sells
 * its own TLDs and its ancestors' (the nearest vendor's offer of a TLD wins, so a reseller may re-price the
 * provider's .com by adding its own .com row served by the provider's registrar).
 */
export class TldCatalogService {
  constructor(private readonly deps: Deps) {}

  async create(actor: Actor, input: TldInput): Promise<number> {
    const vendor = await this.vendor(actor, input.vendorAccountId);
    const tld = normalizeTld(input.tld);
    const instanceId = await this.registrarFor(vendor, input.registrarInstanceId);
    const prices = checkPrices(input.prices);
    return this.deps.db.transaction(async (tx) => {
      if (await tx('tlds').where({ vendor_id: vendor.id, tld }).first('id')) throw invalid('tld', `Account ${vendor.id} already sells .${tld}; update it instead.`);
      const now = this.deps.clock.now();
      const [id] = (await tx('tlds').insert({
        vendor_id: vendor.id,
        tld,
        registrar_instance_id: instanceId,
        currency: vendor.currency,
        enabled: input.enabled ?? true,
        transfer_auth_required: input.transferAuthRequired ?? true,
        created_at: now.getTime(),
        updated_at: now.getTime(),
      })) as number[];
      if (prices.length) await tx('tld_prices').insert(prices.map((p) => ({ tld_id: id, action: p.action, years: p.years, amount: money(p.amount) })));
      await recordChange(tx, actor, now, {
        operation: 'CreateTld',
        objectType: 'tld',
        objectId: id,
        details: { tld, registrarInstanceId: instanceId, prices: prices.length },
        event: { name: 'catalog.tld_created', accountId: vendor.id, payload: { tldId: id, tld, registrarInstanceId: instanceId } },
      });
      return id;
    });
  }

  async update(actor: Actor, tldId: number, patch: TldPatch): Promise<Tld> {
    const row = await this.ownedRow(actor, tldId);
    const vendor = await this.account(row.vendor_id);
    const changes: Record<string, unknown> = {};
    if (patch.registrarInstanceId !== undefined) changes.registrar_instance_id = await this.registrarFor(vendor, patch.registrarInstanceId);
    if (patch.enabled !== undefined) changes.enabled = !!patch.enabled;
    if (patch.transferAuthRequired !== undefined) changes.transfer_auth_required = !!patch.transferAuthRequired;
    const prices = patch.prices === undefined ? undefined : checkPrices(patch.prices);
    await this.deps.db.transaction(async (tx) => {
      const now = this.deps.clock.now();
      await tx('tlds').where({ id: row.id }).update({ ...changes, updated_at: now.getTime() });
      if (prices) {
        await tx('tld_prices').where({ tld_id: row.id }).del();
        if (prices.length) await tx('tld_prices').insert(prices.map((p) => ({ tld_id: row.id, action: p.action, years: p.years, amount: money(p.amount) })));
      }
      await recordChange(tx, actor, now, {
        operation: 'UpdateTld',
        objectType: 'tld',
        objectId: row.id,
        details: { fields: Object.keys(changes), prices: prices?.length },
        event: { name: 'catalog.tld_updated', accountId: row.vendor_id, payload: { tldId: toNumber(row.id), tld: row.tld } },
      });
    });
    return this.get(actor, row.id);
  }

  /** A TLD row owned inside the caller's subtree. */
  async get(actor: Actor, tldId: number): Promise<Tld> {
    return this.view(this.deps.db, await this.ownedRow(actor, tldId));
  }

  /** What a seller offers: its own enabled TLDs and its ancestors', nearest first wins per TLD. */
  async listSellable(actor: Actor, vendorAccountId?: number): Promise<Tld[]> {
    const seller = await this.sellerFor(actor, vendorAccountId);
    const offers = await this.sellableRows(this.deps.db, seller);
    return Promise.all([...offers.values()].sort((a, b) => a.tld.localeCompare(b.tld)).map((r) => this.view(this.deps.db, r)));
  }

  /** The seller's offer for one TLD (nearest vendor up the tree), or undefined when it does not sell it. */
  async offerFor(conn: Conn, seller: AccountRow, tld: string): Promise<Tld | undefined> {
    const row = (await this.sellableRows(conn, seller, [tld])).get(tld);
    return row ? this.view(conn, row) : undefined;
  }

  /** Whose catalog a caller sees: a customer its vendor's, a vendor its own or a sub-vendor's it names. */
  async sellerFor(actor: Actor, vendorAccountId?: number): Promise<AccountRow> {
    if (vendorAccountId) return scopedAccount(this.deps.db, actor, positiveId(vendorAccountId, 'vendorAccountId'));
    const own = await this.account(actor.accountId);
    return own.type === 'customer' && own.vendor_id !== null ? this.account(toNumber(own.vendor_id)) : own;
  }

  async sellerOf(conn: Conn, account: AccountRow): Promise<AccountRow> {
    return account.type === 'customer' && account.vendor_id !== null ? this.account(toNumber(account.vendor_id), conn) : account;
  }

  private async sellableRows(conn: Conn, seller: AccountRow, only?: string[]): Promise<Map<string, TldRow>> {
    const chain = [seller.id, ...ancestorIds(seller.path)].map(Number);
    const q = conn('tlds').whereIn('vendor_id', chain);
    if (only) q.whereIn('tld', only);
    const rows = (await q) as TldRow[];
    const best = new Map<string, TldRow>();
    // Nearest vendor first; a disabled nearer row hides the ancestor's offer (the vendor chose not to sell it).
    for (const vendorId of chain) {
      for (const r of rows) if (toNumber(r.vendor_id) === vendorId && !best.has(r.tld)) best.set(r.tld, r);
    }
    for (const [k, r] of best) if (!toBool(r.enabled)) best.delete(k);
    return best;
  }

  private async view(conn: Conn, row: TldRow): Promise<Tld> {
    const prices = (await conn('tld_prices').where({ tld_id: row.id }).orderBy(['action', 'years'])) as { action: TldAction; years: number; amount: unknown }[];
    return {
      tldId: toNumber(row.id),
      vendorAccountId: toNumber(row.vendor_id),
      tld: row.tld,
      registrarInstanceId: toNumber(row.registrar_instance_id),
      currency: row.currency,
      enabled: toBool(row.enabled),
      transferAuthRequired: toBool(row.transfer_auth_required),
      prices: prices.map((p) => ({ action: p.action, years: toNumber(p.years), amount: toBigInt(p.amount) })),
    };
  }

  private async ownedRow(actor: Actor, tldId: number): Promise<TldRow> {
    const id = positiveId(tldId, 'tldId');
    const row = (await this.deps.db('tlds as t')
      .join('accounts as a', 'a.id', 't.vendor_id')
      .where('t.id', id)
      .andWhere('a.path', 'like', `${actor.accountPath}%`)
      .first('t.*')) as TldRow | undefined;
    if (!row) throw notFound('TLD', id);
    return row;
  }

  private async vendor(actor: Actor, vendorAccountId?: number): Promise<AccountRow> {
    const vendor = await scopedAccount(this.deps.db, actor, vendorAccountId ? positiveId(vendorAccountId, 'vendorAccountId') : actor.accountId);
    if (vendor.type === 'customer') throw notAllowed('Only a provider or a reseller sells domains.', 'vendorAccountId');
    return vendor;
  }

  /** A registrar instance the vendor may use: its own or an ancestor's. */
  private async registrarFor(vendor: AccountRow, instanceId: unknown): Promise<number> {
    const id = positiveId(instanceId, 'registrarInstanceId');
    const row = (await this.deps.db('plugin_instances').where({ id }).first('kind', 'vendor_id')) as { kind: string; vendor_id: number } | undefined;
    const allowed = [vendor.id, ...ancestorIds(vendor.path)].map(Number);
    if (!row || row.kind !== 'registrar' || !allowed.includes(toNumber(row.vendor_id))) {
      throw invalid('registrarInstanceId', `Plugin instance ${id} is not a registrar instance of account ${vendor.id} or of its vendors.`);
    }
    return id;
  }

  private async account(id: number, conn: Conn = this.deps.db): Promise<AccountRow> {
    const row = (await conn('accounts').where({ id }).first()) as AccountRow | undefined;
    if (!row) throw notFound('Account', id);
    return { ...row, id: toNumber(row.id) };
  }
}
