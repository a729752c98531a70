import { scopedAccount } from '../accounts/scope';
import { recordChange } from '../audit/record-change';
import type { Actor, Deps } from '../context';
import { toBool, toNumber, type Conn } from '../db/knex';
import { inTransaction } from '../db/transaction';
import { conflict, invalid, notAllowed, notFound } from '../domain/errors';
import { countryCode, optionalText, positiveId, requiredText } from '../domain/fields';
import { divideHalfUp, mulDivHalfUp } from '../domain/money';
import { isUniqueViolation } from '../idempotency';

/**
 * Taxes: a vendor's rules by the customer's country (and optionally state), a rate in parts per million, tax
 * added on top of the price (exclusive) or already inside it (inclusive). Exempt accounts pay none.
 * Each line's tax is rounded half-up to the currency's minor unit on its own, and the invoice's tax is the sum of
 * its lines' taxes: the lines always add up exactly to the totals.
 */

export const PPM = 1_000_000n;
/** 100% in ppm: no rule may tax more than the price. */
export const MAX_RATE_PPM = 1_000_000;

export interface TaxRule {
  taxRuleId: number;
  vendorId: number;
  name: string;
  country: string;
  /** null: the whole country. */
  state: string | null;
  ratePpm: number;
  inclusive: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface TaxRuleInput {
  name: string;
  country: string;
  state?: string | null;
  ratePpm: number;
  inclusive?: boolean;
}

export interface LineTax {
  /** The line's amount without tax. */
  net: bigint;
  tax: bigint;
  /** net + tax. */
  gross: bigint;
}

/** The tax of one line: exclusive adds rate × amount; inclusive extracts it: net = amount / (1 + rate). */
export function lineTax(amount: bigint, rule: Pick<TaxRule, 'ratePpm' | 'inclusive'> | null): LineTax {
  if (!rule || rule.ratePpm === 0) return { net: amount, tax: 0n, gross: amount };
  const ppm = BigInt(rule.ratePpm);
  if (rule.inclusive) {
    const net = divideHalfUp(amount * PPM, PPM + ppm);
    return { net, tax: amount - net, gross: amount };
  }
  const tax = divideHalfUp(amount * ppm, PPM);
  return { net: amount, tax, gross: amount + tax };
}

/** An order's tax as priced at checkout and charged with it (orders/order-tax.ts): its invoice carries exactly it. */
export interface FixedTax {
  tax: bigint;
  inclusive: boolean;
}

/**
 * The taxes of an invoice's lines: each line's own (lineTax), the invoice's tax their sum. With `fixed` (an order's
 * tax, already charged): the same when the rule still gives it; else, the rule having changed since, `fixed.tax` is
 * shared out over the lines by amount (the last line taking the rounding), so the invoice still equals the charge.
 */
export function linesTax(amounts: readonly bigint[], rule: Pick<TaxRule, 'ratePpm' | 'inclusive'> | null, fixed?: FixedTax): LineTax[] {
  const own = amounts.map((a) => lineTax(a, rule));
  if (!fixed) return own;
  const sum = own.reduce((s, t) => s + t.tax, 0n);
  if (sum === fixed.tax && (sum === 0n || rule?.inclusive === fixed.inclusive)) return own;
  const base = amounts.reduce((s, a) => s + a, 0n);
  let left = fixed.tax;
  return amounts.map((a, i) => {
    const tax = i === amounts.length - 1 ? left : base === 0n ? 0n : mulDivHalfUp(a, fixed.tax, base);
    left -= tax;
    return fixed.inclusive ? { net: a - tax, tax, gross: a } : { net: a, tax, gross: a + tax };
  });
}

interface TaxRuleRow {
  id: number;
  vendor_id: number;
  name: string;
  country: string;
  state: string | null;
  rate_ppm: number;
  inclusive: unknown;
  created_at: number;
  updated_at: number;
}

function toRule(row: TaxRuleRow): TaxRule {
  return {
    taxRuleId: toNumber(row.id),
    vendorId: toNumber(row.vendor_id),
    name: row.name,
    country: row.country,
    state: row.state ?? null,
    ratePpm: toNumber(row.rate_ppm),
    inclusive: toBool(row.inclusive),
    createdAt: new Date(toNumber(row.created_at)),
    updatedAt: new Date(toNumber(row.updated_at)),
  };
}

/** What decides a customer's tax: its vendor's rules, its address and its tax status. */
export interface TaxSubject {
  vendorId: number;
  country: string | null;
  state: string | null;
  taxStatus: string;
}

/** The rules of several vendors, loaded once; picks the rule of a customer (state rule first, then the country's). */
export class TaxTable {
  private constructor(private readonly byVendor: Map<number, TaxRule[]>) {}

  static async load(conn: Conn, vendorIds: readonly number[]): Promise<TaxTable> {
    const byVendor = new Map<number, TaxRule[]>();
    const unique = [...new Set(vendorIds)];
    for (let i = 0; i < unique.length; i += 500) {
      const rows = (await conn('tax_rules').whereIn('vendor_id', unique.slice(i, i + 500))) as TaxRuleRow[];
      for (const row of rows) {
        const rule = toRule(row);
        const list = byVendor.get(rule.vendorId) ?? [];
        list.push(rule);
        byVendor.set(rule.vendorId, list);
      }
    }
    return new TaxTable(byVendor);
  }

  ruleFor(subject: TaxSubject): TaxRule | null {
    if (subject.taxStatus === 'exempt' || !subject.country) return null;
    const rules = this.byVendor.get(subject.vendorId);
    if (!rules) return null;
    const country = subject.country.toUpperCase();
    const state = subject.state ? subject.state.trim().toUpperCase() : null;
    if (state) {
      const exact = rules.find((r) => r.country === country && r.state !== null && r.state.toUpperCase() === state);
      if (exact) return exact;
    }
    return rules.find((r) => r.country === country && r.state === null) ?? null;
  }
}

function ratePpm(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_RATE_PPM) {
    throw invalid('ratePpm', `ratePpm must be a whole number of parts per million from 0 to ${MAX_RATE_PPM} (8.875% is 88750).`);
  }
  return value;
}

/** Creates, lists, changes and deletes a vendor's tax rules (validated, audited). */
export class TaxRulesService {
  constructor(private readonly deps: Deps) {}

  private async vendor(conn: Conn, actor: Actor, vendorId: number): Promise<void> {
    positiveId(vendorId, 'vendorId');
    const account = await scopedAccount(conn, actor, vendorId);
    if (account.type === 'customer') throw notAllowed(`Account ${vendorId} is a customer; tax rules belong to a provider or reseller.`, 'vendorId');
  }

  async list(actor: Actor, vendorId: number): Promise<TaxRule[]> {
    await this.vendor(this.deps.db, actor, vendorId);
    const rows = (await this.deps.db('tax_rules').where({ vendor_id: vendorId }).orderBy(['country', 'state', 'id'])) as TaxRuleRow[];
    return rows.map(toRule);
  }

  async create(actor: Actor, vendorId: number, input: TaxRuleInput): Promise<TaxRule> {
    const name = requiredText(input.name, 'name', 64);
    const country = countryCode(input.country, 'country');
    const state = optionalText(input.state, 'state', 64) || null;
    const rate = ratePpm(input.ratePpm);
    const inclusive = input.inclusive === undefined ? false : input.inclusive;
    if (typeof inclusive !== 'boolean') throw invalid('inclusive', 'inclusive must be true or false.');
    try {
      return await inTransaction(this.deps.db, async (tx) => {
        await this.vendor(tx, actor, vendorId);
        const dup = await tx('tax_rules').where({ vendor_id: vendorId, country }).andWhere((q) => (state === null ? q.whereNull('state') : q.where({ state }))).first('id');
        if (dup) throw conflict(`Vendor ${vendorId} already has a tax rule for ${country}${state ? `/${state}` : ''} (rule ${String(dup.id)}); change that one.`, 'country');
        const at = this.deps.clock.now().getTime();
        const [id] = await tx('tax_rules').insert({ vendor_id: vendorId, name, country, state, rate_ppm: rate, inclusive, created_at: at, updated_at: at });
        const ruleId = toNumber(id);
        await recordChange(tx, actor, new Date(at), {
          operation: 'tax_rule.create',
          objectType: 'tax_rule',
          objectId: ruleId,
          details: { vendorId, name, country, state, ratePpm: rate, inclusive },
          event: { name: 'tax_rule.created', accountId: vendorId, payload: { taxRuleId: ruleId, vendorId, country, state, ratePpm: rate, inclusive } },
        });
        const row = (await tx('tax_rules').where({ id: ruleId }).first()) as TaxRuleRow;
        return toRule(row);
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Vendor ${vendorId} already has a tax rule for ${country}${state ? `/${state}` : ''}.`, 'country');
      throw e;
    }
  }

  private async scopedRule(conn: Conn, actor: Actor, taxRuleId: number): Promise<TaxRuleRow> {
    positiveId(taxRuleId, 'taxRuleId');
    const row = (await conn('tax_rules').where({ id: taxRuleId }).first()) as TaxRuleRow | undefined;
    if (!row) throw notFound('Tax rule', taxRuleId);
    try {
      await this.vendor(conn, actor, toNumber(row.vendor_id));
    } catch {
      throw notFound('Tax rule', taxRuleId);
    }
    return row;
  }

  /** Changes name, rate or inclusiveness. Invoices already issued keep their tax (they are immutable). */
  async update(actor: Actor, taxRuleId: number, patch: Partial<Pick<TaxRuleInput, 'name' | 'ratePpm' | 'inclusive'>>): Promise<TaxRule> {
    return inTransaction(this.deps.db, async (tx) => {
      const row = await this.scopedRule(tx, actor, taxRuleId);
      const change: Record<string, unknown> = {};
      if (patch.name !== undefined) change.name = requiredText(patch.name, 'name', 64);
      if (patch.ratePpm !== undefined) change.rate_ppm = ratePpm(patch.ratePpm);
      if (patch.inclusive !== undefined) {
        if (typeof patch.inclusive !== 'boolean') throw invalid('inclusive', 'inclusive must be true or false.');
        change.inclusive = patch.inclusive;
      }
      const at = this.deps.clock.now();
      await tx('tax_rules').where({ id: taxRuleId }).update({ ...change, updated_at: at.getTime() });
      await recordChange(tx, actor, at, {
        operation: 'tax_rule.update',
        objectType: 'tax_rule',
        objectId: taxRuleId,
        details: { before: toRule(row), change: patch },
        event: { name: 'tax_rule.updated', accountId: toNumber(row.vendor_id), payload: { taxRuleId, ...patch } },
      });
      return toRule((await tx('tax_rules').where({ id: taxRuleId }).first()) as TaxRuleRow);
    });
  }

  async delete(actor: Actor, taxRuleId: number): Promise<void> {
    await inTransaction(this.deps.db, async (tx) => {
      const row = await this.scopedRule(tx, actor, taxRuleId);
      await tx('tax_rules').where({ id: taxRuleId }).delete();
      await recordChange(tx, actor, this.deps.clock.now(), {
        operation: 'tax_rule.delete',
        objectType: 'tax_rule',
        objectId: taxRuleId,
        details: { rule: toRule(row) },
        event: { name: 'tax_rule.deleted', accountId: toNumber(row.vendor_id), payload: { taxRuleId } },
      });
    });
  }
}
