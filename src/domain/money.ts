import { invalid } from './errors';
import { currency } from './currency';

// Plain decimal only: exponent notation and spaces are ambiguous on the wire, so they are refused.
const DECIMAL = /^([+-]?)(\d+)(?:\.(\d+))?$/;
const MAX_INTEGER_DIGITS = 30;

interface Decimal {
  readonly negative: boolean;
  readonly integer: string;
  readonly fraction: string;
}

function parseDecimal(text: string, field: string): Decimal {
  const m = typeof text === 'string' ? DECIMAL.exec(text) : null;
  if (!m) {
    throw invalid(field, `${field} must be a plain decimal number such as 12.34 (no spaces or exponent); got '${String(text)}'.`);
  }
  const integer = m[2]!.replace(/^0+(?=\d)/, '');
  if (integer.length > MAX_INTEGER_DIGITS) {
    throw invalid(field, `${field} has more than ${MAX_INTEGER_DIGITS} integer digits; got '${text}'.`);
  }
  return { negative: m[1] === '-', integer, fraction: m[3] ?? '' };
}

const pow10 = (n: number): bigint => 10n ** BigInt(n);
const signed = (negative: boolean, v: bigint): bigint => (negative ? -v : v);

/** Exact decimal text -> minor units; any digit that the currency cannot hold is an error, not a rounding. */
export function parseAmount(text: string, currencyCode: string, field = 'amount'): bigint {
  const { exponent, code } = currency(currencyCode);
  const d = parseDecimal(text, field);
  const kept = d.fraction.slice(0, exponent);
  if (/[^0]/.test(d.fraction.slice(exponent))) {
    throw invalid(field, `${code} has ${exponent} decimals; ${text} has more.`);
  }
  return signed(d.negative, BigInt(d.integer + kept.padEnd(exponent, '0')));
}

export function formatAmount(minor: bigint, currencyCode: string): string {
  const { exponent } = currency(currencyCode);
  const sign = minor < 0n ? '-' : '';
  const digits = (minor < 0n ? -minor : minor).toString().padStart(exponent + 1, '0');
  if (exponent === 0) return sign + digits;
  return `${sign}${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
}

/** Rounds half away from zero: -2.5 -> -3, 2.5 -> 3. */
export function divideHalfUp(numerator: bigint, denominator: bigint): bigint {
  if (denominator === 0n) throw invalid('denominator', 'Cannot divide by zero; the denominator must be non-zero.');
  const q = numerator / denominator;
  const r = numerator % denominator;
  const absR = r < 0n ? -r : r;
  const absD = denominator < 0n ? -denominator : denominator;
  if (2n * absR < absD) return q;
  // bigint division truncates toward zero, so step one further away from zero in the quotient's sign.
  return (numerator < 0n) !== (denominator < 0n) ? q - 1n : q + 1n;
}

export function mulDivHalfUp(a: bigint, b: bigint, c: bigint): bigint {
  return divideHalfUp(a * b, c);
}

/** Largest-remainder split: parts sum exactly to total, leftover units go to the largest remainders, ties to the earliest. */
export function allocate(total: bigint, weights: readonly bigint[]): bigint[] {
  if (weights.some((w) => w < 0n)) throw invalid('weights', 'Allocation weights must not be negative.');
  const sum = weights.reduce((a, w) => a + w, 0n);
  if (sum === 0n) throw invalid('weights', 'Allocation needs at least one positive weight.');
  // Split the magnitude and restore the sign, so negative totals mirror positive ones exactly.
  const magnitude = total < 0n ? -total : total;
  const parts = weights.map((w) => (magnitude * w) / sum);
  const remainders = weights.map((w, i) => ({ i, r: (magnitude * w) % sum }));
  let leftover = magnitude - parts.reduce((a, p) => a + p, 0n);
  // Array.prototype.sort is stable, so equal remainders keep index order: ties go to the earliest part.
  remainders.sort((x, y) => (x.r === y.r ? 0 : x.r > y.r ? -1 : 1));
  for (const { i } of remainders) {
    if (leftover === 0n) break;
    parts[i]! += 1n;
    leftover -= 1n;
  }
  return total < 0n ? parts.map((p) => -p) : parts;
}

/** Decimal text of any precision -> minor units, rounded half away from zero at the currency exponent. */
export function fromDecimalText(text: string, currencyCode: string, field = 'amount'): bigint {
  const { exponent } = currency(currencyCode);
  const d = parseDecimal(text, field);
  const scale = d.fraction.length;
  const scaled = BigInt(d.integer + d.fraction);
  const minor = scale <= exponent ? scaled * pow10(exponent - scale) : divideHalfUp(scaled, pow10(scale - exponent));
  return signed(d.negative, minor);
}

// Rewrites String(x) output such as 1e+21 or -1.5e-7 as plain decimal digits.
function expandExponent(s: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const digits = m[2]! + (m[3] ?? '');
  const point = m[2]!.length + Number(m[4]);
  if (point <= 0) return `${m[1]}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return m[1]! + digits + '0'.repeat(point - digits.length);
  return `${m[1]}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** Rounds the shortest decimal form of a double, so 1.005 USD is 101 rather than float-multiplied 100. */
export function fromDouble(x: number, currencyCode: string, field = 'amount'): bigint {
  if (typeof x !== 'number' || !Number.isFinite(x)) {
    throw invalid(field, `${field} must be a finite number; got ${String(x)}.`);
  }
  return fromDecimalText(expandExponent(String(x)), currencyCode, field);
}

export function toDouble(minor: bigint, currencyCode: string): number {
  return Number(formatAmount(minor, currencyCode));
}

export function sumAmounts(list: readonly bigint[]): bigint {
  return list.reduce((a, b) => a + b, 0n);
}
