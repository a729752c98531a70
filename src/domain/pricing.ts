import { invalid } from './errors';
import { mulDivHalfUp } from './money';

/**
 * Prices one order item from the catalog only (a client never sends an amount): setup fee, the first period,
 * and resources ordered above what the plan includes. Quantities may have up to 4 decimals (e.g. 2.5 GB);
 * every line is rounded half-up to the currency's minor unit, and the total is the sum of the lines.
 */

export interface PricedPeriod {
  setupFee: bigint;
  recurringFee: bigint;
  trial: boolean;
}

export interface PricedRate {
  resourceId: number;
  name: string;
  unit: string;
  included: number;
  min: number;
  max: number | null;
  setupFee: bigint;
  recurringFee: bigint;
}

export interface Promo {
  code: string;
  kind: 'percent' | 'fixed';
  /** percent: basis points (1500 = 15 %); fixed: minor units. */
  value: bigint;
  appliesTo: 'setup' | 'first_period' | 'both';
}

/** renewal: a period's renewal fee; refund and credit: negative lines of a cancellation (money back, or a credit); domain: a domain item's price. */
export type LineKind = 'setup' | 'recurring' | 'resource_setup' | 'resource_recurring' | 'discount' | 'renewal' | 'refund' | 'credit' | 'domain';

export interface PriceLine {
  kind: LineKind;
  description: string;
  resourceId?: number;
  /** Quantity with up to 4 decimals. */
  quantity: number;
  unitPrice: bigint;
  amount: bigint;
}

export interface ItemPrice {
  lines: PriceLine[];
  subtotal: bigint;
  discount: bigint;
  total: bigint;
}

const SCALE = 10_000n;

function scaled(q: number, field: string): bigint {
  const s = Math.round(q * 10_000);
  if (!Number.isFinite(q) || Math.abs(s / 10_000 - q) > 1e-9) throw invalid(field, `${field} may have at most 4 decimals.`);
  return BigInt(s);
}

export function priceItem(input: {
  planName: string;
  period: PricedPeriod;
  rates: readonly PricedRate[];
  /** Total quantity wanted per resource; absent resources get what the plan includes. */
  resources: readonly { resourceId: number; quantity: number }[];
  promo?: Promo;
  field?: string;
}): ItemPrice {
  const field = input.field ?? 'item';
  const lines: PriceLine[] = [];
  if (!input.period.trial) {
    if (input.period.setupFee > 0n) {
      lines.push({ kind: 'setup', description: `${input.planName}: setup`, quantity: 1, unitPrice: input.period.setupFee, amount: input.period.setupFee });
    }
    lines.push({ kind: 'recurring', description: `${input.planName}: first period`, quantity: 1, unitPrice: input.period.recurringFee, amount: input.period.recurringFee });
  }
  const byId = new Map(input.rates.map((r) => [r.resourceId, r]));
  const seen = new Set<number>();
  input.resources.forEach((want, i) => {
    const f = `${field}.resources[${i}]`;
    const rate = byId.get(want.resourceId);
    if (!rate) throw invalid(`${f}.resourceId`, `Resource ${want.resourceId} cannot be ordered with plan '${input.planName}'.`);
    if (seen.has(want.resourceId)) throw invalid(`${f}.resourceId`, `Resource ${want.resourceId} appears twice; order its total quantity once.`);
    seen.add(want.resourceId);
    if (typeof want.quantity !== 'number' || want.quantity < 0) throw invalid(`${f}.quantity`, 'quantity must be a number of 0 or more.');
    const q = scaled(want.quantity, `${f}.quantity`);
    if (q < scaled(rate.min, 'min')) throw invalid(`${f}.quantity`, `${rate.name}: at least ${rate.min} ${rate.unit} must be ordered.`);
    if (rate.max !== null && q > scaled(rate.max, 'max')) throw invalid(`${f}.quantity`, `${rate.name}: at most ${rate.max} ${rate.unit} can be ordered.`);
    const extra = q - scaled(rate.included, 'included');
    if (extra <= 0n || input.period.trial) return;
    const extraQty = Number(extra) / 10_000;
    if (rate.setupFee > 0n) {
      lines.push({ kind: 'resource_setup', description: `${rate.name}: ${extraQty} ${rate.unit} above the plan, setup`, resourceId: rate.resourceId, quantity: extraQty, unitPrice: rate.setupFee, amount: mulDivHalfUp(rate.setupFee, extra, SCALE) });
    }
    if (rate.recurringFee > 0n) {
      lines.push({ kind: 'resource_recurring', description: `${rate.name}: ${extraQty} ${rate.unit} above the plan, first period`, resourceId: rate.resourceId, quantity: extraQty, unitPrice: rate.recurringFee, amount: mulDivHalfUp(rate.recurringFee, extra, SCALE) });
    }
  });
  const subtotal = lines.reduce((s, l) => s + l.amount, 0n);
  let discount = 0n;
  if (input.promo) {
    const p = input.promo;
    const base = lines
      .filter((l) => (p.appliesTo !== 'first_period' && (l.kind === 'setup' || l.kind === 'resource_setup')) || (p.appliesTo !== 'setup' && (l.kind === 'recurring' || l.kind === 'resource_recurring')))
      .reduce((s, l) => s + l.amount, 0n);
    discount = p.kind === 'percent' ? mulDivHalfUp(base, p.value, 10_000n) : p.value;
    if (discount > base) discount = base;
    if (discount > 0n) lines.push({ kind: 'discount', description: `Promo code ${p.code}`, quantity: 1, unitPrice: -discount, amount: -discount });
  }
  return { lines, subtotal, discount, total: subtotal - discount };
}

/**
 * Prices the renewal of a subscription for one period from the catalog: the period's renewal fee, and the
 * recurring fee of every resource the subscription has above what the plan includes (additional quantity, up
 * to 4 decimals). Each line is rounded half-up; the total is the sum of the lines.
 */
export function priceRenewal(input: {
  planName: string;
  period: { renewalFee: bigint; duration: number; unit: string };
  rates: readonly Pick<PricedRate, 'resourceId' | 'name' | 'unit' | 'recurringFee'>[];
  additional: readonly { resourceId: number; quantity: number }[];
}): ItemPrice {
  const p = input.period;
  const lines: PriceLine[] = [
    { kind: 'renewal', description: `${input.planName}: renewal for ${p.duration} ${p.unit}${p.duration === 1 ? '' : 's'}`, quantity: 1, unitPrice: p.renewalFee, amount: p.renewalFee },
  ];
  const byId = new Map(input.rates.map((r) => [r.resourceId, r]));
  for (const a of input.additional) {
    const rate = byId.get(a.resourceId);
    if (!rate || rate.recurringFee <= 0n || !(a.quantity > 0)) continue;
    const extra = scaled(a.quantity, 'additional');
    lines.push({ kind: 'resource_recurring', description: `${rate.name}: ${a.quantity} ${rate.unit} above the plan, renewal`, resourceId: rate.resourceId, quantity: a.quantity, unitPrice: rate.recurringFee, amount: mulDivHalfUp(rate.recurringFee, extra, SCALE) });
  }
  const subtotal = lines.reduce((sum, l) => sum + l.amount, 0n);
  return { lines, subtotal, discount: 0n, total: subtotal };
}

/**
 * Prices an immediate plan or period change by the exact share of the current term still ahead
 * (share = remaining ms / term ms, from period.ts remainingShare): a credit line for the old recurring fee's share
 * and a charge for the new fee's share when the new period is as long as the old one (the term keeps its end);
 * with a period of another length a new term starts now and the new period is charged in full. Each line is
 * rounded half-up; the total (negative for a credit) is the sum of the lines.
 */
export function priceChange(input: {
  oldPlanName: string;
  newPlanName: string;
  oldFee: bigint;
  newFee: bigint;
  share: { numerator: bigint; denominator: bigint };
  sameLength: boolean;
}): ItemPrice {
  const { numerator, denominator } = input.share;
  const credit = mulDivHalfUp(input.oldFee, numerator, denominator);
  const charge = input.sameLength ? mulDivHalfUp(input.newFee, numerator, denominator) : input.newFee;
  const lines: PriceLine[] = [];
  if (credit > 0n) lines.push({ kind: 'credit', description: `${input.oldPlanName}: unused share of the current term`, quantity: 1, unitPrice: -credit, amount: -credit });
  lines.push({ kind: 'recurring', description: `${input.newPlanName}: ${input.sameLength ? 'rest of the current term' : 'first period'}`, quantity: 1, unitPrice: charge, amount: charge });
  const subtotal = lines.reduce((sum, l) => sum + l.amount, 0n);
  return { lines, subtotal, discount: 0n, total: subtotal };
}

/**
 * Prices more of a subscription's resources: per resource, the setup fee for the quantity added, and its recurring
 * fee for that quantity times the share of the current term still ahead. Each line is rounded half-up; the total is
 * the sum of the lines.
 */
export function priceResourceAddition(input: {
  rates: readonly Pick<PricedRate, 'resourceId' | 'name' | 'unit' | 'setupFee' | 'recurringFee'>[];
  added: readonly { resourceId: number; quantity: number }[];
  share: { numerator: bigint; denominator: bigint };
  field?: string;
}): ItemPrice {
  const lines: PriceLine[] = [];
  input.added.forEach((a, i) => {
    const rate = input.rates.find((r) => r.resourceId === a.resourceId);
    if (!rate) throw invalid(`${input.field ?? 'resources'}[${i}].resourceId`, `Resource ${a.resourceId} cannot be ordered with this plan.`);
    const q = scaled(a.quantity, `${input.field ?? 'resources'}[${i}].quantity`);
    if (rate.setupFee > 0n) {
      lines.push({ kind: 'resource_setup', description: `${rate.name}: ${a.quantity} ${rate.unit} more, setup`, resourceId: rate.resourceId, quantity: a.quantity, unitPrice: rate.setupFee, amount: mulDivHalfUp(rate.setupFee, q, SCALE) });
    }
    if (rate.recurringFee > 0n) {
      const amount = mulDivHalfUp(rate.recurringFee * q, input.share.numerator, SCALE * input.share.denominator);
      lines.push({ kind: 'resource_recurring', description: `${rate.name}: ${a.quantity} ${rate.unit} more, rest of the current term`, resourceId: rate.resourceId, quantity: a.quantity, unitPrice: rate.recurringFee, amount });
    }
  });
  const subtotal = lines.reduce((sum, l) => sum + l.amount, 0n);
  return { lines, subtotal, discount: 0n, total: subtotal };
}
