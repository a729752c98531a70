import type { Actor, Deps } from '../context';
import { recordChange } from '../audit/record-change';
import { scopedAccount, scopedVendor } from '../accounts/scope';
import { money, toBigInt, toNumber, toOptionalNumber, type Conn, type Tx } from '../db/knex';
import { currency as currencyOf } from '../domain/currency';
import { conflict, invalid, notAllowed } from '../domain/errors';
import { oneOf, positiveId, requiredText } from '../domain/fields';
import type { Promo } from '../domain/pricing';
import { isUniqueViolation } from '../idempotency';

export const PROMO_KINDS = ['percent', 'fixed'] as const;
export const PROMO_APPLIES_TO = ['setup', 'first_period', 'both'] as const;

export interface PromoCode {
  promoCodeId: number;
  vendorAccountId: number;
  code: string;
  kind: (typeof PROMO_KINDS)[number];
  /** percent: basis points (1500 = 15 %); fixed: minor units of `currency`. */
  value: bigint;
  currency: string | null;
  appliesTo: (typeof PROMO_APPLIES_TO)[number];
  validFrom: Date | null;
  validTo: Date | null;
  maxUses: number | null;
  uses: number;
  createdAt: Date;
}

export interface PromoCodeInput {
  vendorAccountId?: number;
  code: string;
  kind: string;
  value: bigint | number | string;
  currency?: string;
  appliesTo?: string;
  validFrom?: Date | null;
  validTo?: Date | null;
  maxUses?: number | null;
}

interface PromoRow {
  id: number;
  vendor_id: number;
  code: string;
  kind: string;
  value: unknown;
  currency: string | null;
  applies_to: string;
  valid_from: unknown;
  valid_to: unknown;
  max_uses: unknown;
  uses: unknown;
  created_at: unknown;
}

const CODE = /^[A-Z0-9][A-Z0-9_-]{0,63}$/;

function view(r: PromoRow): PromoCode {
  const from = toOptionalNumber(r.valid_from);
  const to = toOptionalNumber(r.valid_to);
  return {
    promoCodeId: toNumber(r.id),
    vendorAccountId: toNumber(r.vendor_id),
    code: r.code,
    kind: r.kind as PromoCode['kind'],
    value: toBigInt(r.value),
    currency: r.currency,
    appliesTo: r.applies_to as PromoCode['appliesTo'],
    validFrom: from === null ? null : new Date(from),
    validTo: to === null ? null : new Date(to),
    maxUses: toOptionalNumber(r.max_uses),
    uses: toNumber(r.uses),
    createdAt: new Date(toNumber(r.created_at)),
  };
}

function bigintOf(v: unknown, field: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return BigInt(v.trim());
  throw invalid(field, `${field} must be a whole number.`);
}

function optionalDate(v: unknown, field: string): number | null {
  if (v === undefined || v === null) return null;
  const t = v instanceof Date ? v.getTime() : NaN;
  if (Number.isNaN(t)) throw invalid(field, `${field} must be a valid date.`);
  return t;
}

/** Promo codes of a vendor: percent (basis points) or fixed (minor units), on setup, first period or both. */
export class PromoCodesService {
  constructor(private readonly deps: Deps) {}

  async create(actor: Actor, input: PromoCodeInput): Promise<PromoCode> {
    const vendor = await scopedVendor(this.deps.db, actor, input.vendorAccountId, 'issue promo codes');
    if (!actor.roles.includes('admin') && !actor.roles.includes('billing')) throw notAllowed('Only an administrator or billing user may create promo codes.');
    const code = requiredText(input.code, 'code', 64).toUpperCase();
    if (!CODE.test(code)) throw invalid('code', 'A promo code uses letters, digits, - and _ only (at most 64).');
    const kind = oneOf(input.kind, 'kind', PROMO_KINDS);
    const value = bigintOf(input.value, 'value');
    let currency: string | null = null;
    if (kind === 'percent') {
      if (value < 1n || value > 10000n) throw invalid('value', 'A percent promo is 1..10000 basis points (0.01 % to 100 %).');
      if (input.currency) throw invalid('currency', 'A percent promo has no currency.');
    } else {
      if (value < 1n) throw invalid('value', 'A fixed promo takes off at least 1 minor unit.');
      if (!input.currency) throw invalid('currency', 'A fixed promo needs the currency of its amount.');
      currency = currencyOf(String(input.currency).trim().toUpperCase()).code;
    }
    const appliesTo = oneOf(input.appliesTo ?? 'both', 'appliesTo', PROMO_APPLIES_TO);
    const validFrom = optionalDate(input.validFrom, 'validFrom');
    const validTo = optionalDate(input.validTo, 'validTo');
    if (validFrom !== null && validTo !== null && validTo <= validFrom) throw invalid('validTo', 'validTo must be after validFrom.');
    const maxUses = input.maxUses === undefined || input.maxUses === null ? null : positiveId(input.maxUses, 'maxUses');
    try {
      return await this.deps.db.transaction(async (tx) => {
        const now = this.deps.clock.now();
        const [id] = (await tx('promo_codes').insert({
          vendor_id: vendor.id,
          code,
          kind,
          value: money(value),
          currency,
          applies_to: appliesTo,
          valid_from: validFrom,
          valid_to: validTo,
          max_uses: maxUses,
          uses: 0,
          created_at: now.getTime(),
        })) as number[];
        await recordChange(tx, actor, now, {
          operation: 'CreatePromoCode',
          objectType: 'promo_code',
          objectId: id,
          details: { code, kind, value: value.toString(), currency, appliesTo, maxUses },
          event: { name: 'promo_code.created', accountId: vendor.id, payload: { promoCodeId: id, vendorAccountId: vendor.id, code } },
        });
        return view((await tx('promo_codes').where({ id }).first()) as PromoRow);
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw invalid('code', `Promo code '${code}' already exists for this vendor.`);
      throw e;
    }
  }

  async list(actor: Actor, vendorAccountId?: number): Promise<PromoCode[]> {
    const vendorId = vendorAccountId === undefined || vendorAccountId === null ? actor.accountId : positiveId(vendorAccountId, 'vendorAccountId');
    const vendor = await scopedAccount(this.deps.db, actor, vendorId);
    const rows = (await this.deps.db('promo_codes').where({ vendor_id: vendor.id }).orderBy('id')) as PromoRow[];
    return rows.map(view);
  }

  /**
   * The vendor's code usable at `at` (the order's vendor only, never an ancestor's): INVALID_ARGUMENT on promoCode
   * when unknown, not yet valid or expired; CONFLICT when used up.
   */
  async find(conn: Conn, vendorId: number, code: string, at: Date): Promise<PromoCode> {
    const wanted = requiredText(code, 'promoCode', 64).toUpperCase();
    const row = (await conn('promo_codes').where({ vendor_id: vendorId, code: wanted }).first()) as PromoRow | undefined;
    if (!row) throw invalid('promoCode', `Promo code '${wanted}' does not exist.`);
    const p = view(row);
    const t = at.getTime();
    if (p.validFrom && t < p.validFrom.getTime()) throw invalid('promoCode', `Promo code '${wanted}' is valid from ${p.validFrom.toISOString()}.`);
    if (p.validTo && t >= p.validTo.getTime()) throw invalid('promoCode', `Promo code '${wanted}' expired on ${p.validTo.toISOString()}.`);
    if (p.maxUses !== null && p.uses >= p.maxUses) throw conflict(`Promo code '${wanted}' is used up.`, 'promoCode');
    return p;
  }

  /** Counts one use, atomically: CONFLICT when the last use was taken meanwhile. */
  async consume(tx: Tx, promoCodeId: number): Promise<void> {
    const n = await tx('promo_codes')
      .where({ id: promoCodeId })
      .andWhere((w) => w.whereNull('max_uses').orWhere('uses', '<', tx.ref('max_uses')))
      .update({ uses: tx.raw('uses + 1') });
    if (n !== 1) throw conflict(`Promo code ${promoCodeId} is used up.`, 'promoCode');
  }
}

/** The pricing view of a promo code. */
export function asPricingPromo(p: PromoCode): Promo {
  return { code: p.code, kind: p.kind, value: p.value, appliesTo: p.appliesTo };
}
