import { divideHalfUp, formatAmount } from '../../domain/money';
import { formatQuantity, QTY_SCALE } from '../usage-quantity';

export interface Tier {
  /** Upper bound of the tier in units of overage (usage above the allowance); null: no bound. */
  upTo: number | null;
  /** Minor units per unit in this tier. */
  fee: bigint;
}

/** resource_rates.tiers: JSON [{"upTo": number|null, "fee": "minor units"}], or null. */
export function parseTiers(raw: unknown): Tier[] {
  if (raw === null || raw === undefined || raw === '') return [];
  const list = JSON.parse(String(raw)) as { upTo: number | null; fee: string | number }[];
  return list.map((t) => ({ upTo: t.upTo === null || t.upTo === undefined ? null : Number(t.upTo), fee: BigInt(t.fee) }));
}

/**
 * Prices an overage quantity (scaled by 10,000). Without tiers: quantity x overage fee. With tiers, graduated:
 * the first `upTo` units of overage at the first tier's fee, the units up to the next `upTo` at the second's,
 * and so on (units beyond a last bounded tier at the last tier's fee). The amount is rounded half-up once, at
 * the end, to the currency's minor unit; the unit price shown is the amount divided by the quantity.
 */
export function overageAmount(over: bigint, overageFee: bigint, tiers: readonly Tier[], currency?: string): { amount: bigint; unitPrice: bigint; breakdown: string | null } {
  if (over <= 0n) return { amount: 0n, unitPrice: overageFee, breakdown: null };
  if (tiers.length === 0) return { amount: divideHalfUp(overageFee * over, QTY_SCALE), unitPrice: overageFee, breakdown: null };
  let left = over;
  let floor = 0n;
  let numerator = 0n;
  const parts: string[] = [];
  tiers.forEach((t, i) => {
    if (left <= 0n) return;
    const last = i === tiers.length - 1;
    const cap = t.upTo === null || last ? null : BigInt(Math.round(t.upTo * 10_000)) - floor;
    const q = cap === null || cap >= left ? left : cap < 0n ? 0n : cap;
    if (q > 0n) {
      numerator += t.fee * q;
      parts.push(`${formatQuantity(q)} x ${currency ? formatAmount(t.fee, currency) : t.fee.toString()}`);
    }
    left -= q;
    if (cap !== null) floor += cap;
  });
  const amount = divideHalfUp(numerator, QTY_SCALE);
  return { amount, unitPrice: divideHalfUp(amount * QTY_SCALE, over), breakdown: parts.join(' + ') };
}
