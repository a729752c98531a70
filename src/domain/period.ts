import { invalid } from './errors';
import { mulDivHalfUp } from './money';

export const PERIOD_UNITS = ['hour', 'day', 'month', 'year'] as const;
export type PeriodUnit = (typeof PERIOD_UNITS)[number];

/** PBA PeriodType codes: 0 hours, 1 days, 2 months, 3 years. */
export type PbaPeriodType = 0 | 1 | 2 | 3;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export function isPeriodUnit(unit: unknown): unit is PeriodUnit {
  return typeof unit === 'string' && (PERIOD_UNITS as readonly string[]).includes(unit);
}

export function periodUnitFromPba(n: PbaPeriodType): PeriodUnit {
  const unit = PERIOD_UNITS[n];
  // The type is only a promise: wire values arrive unchecked.
  if (!Number.isInteger(n) || unit === undefined) {
    throw invalid('periodType', `PBA PeriodType must be 0 (hours), 1 (days), 2 (months) or 3 (years); got ${String(n)}.`);
  }
  return unit;
}

export function periodUnitToPba(unit: PeriodUnit): PbaPeriodType {
  const n = PERIOD_UNITS.indexOf(unit);
  if (n < 0) throw invalid('unit', `Period unit must be one of ${PERIOD_UNITS.join(', ')}; got '${String(unit)}'.`);
  return n as PbaPeriodType;
}

function requireDate(d: Date, field: string): number {
  const t = d instanceof Date ? d.getTime() : NaN;
  if (Number.isNaN(t)) throw invalid(field, `${field} must be a valid date.`);
  return t;
}

function requireCount(n: number, field: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw invalid(field, `${field} must be a whole number of 0 or more; got ${String(n)}.`);
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  return month === 1 && isLeapYear(year) ? 29 : MONTH_DAYS[month]!;
}

export function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** Adds whole units in UTC; months and years clamp to the target month's last day and keep the time of day. */
export function addPeriod(start: Date, count: number, unit: PeriodUnit): Date {
  return shiftPeriod(requireDate(start, 'start'), count, unit, 1, 'ends beyond');
}

/**
 * The start of the period of `count` units that ends at `end` (addPeriod backwards, with the same clamping: one
 * month before 03-31 is 02-28). Used for the current term of a subscription from its expiration date.
 */
export function subtractPeriod(end: Date, count: number, unit: PeriodUnit): Date {
  return shiftPeriod(requireDate(end, 'end'), count, unit, -1, 'starts before');
}

/** `count` units forward (sign 1) or back (sign -1) from the instant `t`; months and years clamp to the month's end. */
function shiftPeriod(t: number, count: number, unit: PeriodUnit, sign: 1 | -1, beyond: string): Date {
  requireCount(count, 'duration');
  const from = new Date(t);
  let result: Date;
  if (unit === 'hour' || unit === 'day') {
    result = new Date(t + sign * count * (unit === 'hour' ? HOUR_MS : DAY_MS));
  } else if (unit === 'month' || unit === 'year') {
    const months = from.getUTCFullYear() * 12 + from.getUTCMonth() + sign * count * (unit === 'year' ? 12 : 1);
    const year = Math.floor(months / 12);
    const month = months - year * 12;
    result = new Date(t);
    // setUTCFullYear, unlike Date.UTC, does not map years 0..99 onto 1900..1999.
    result.setUTCFullYear(year, month, Math.min(from.getUTCDate(), daysInMonth(year, month)));
  } else {
    throw invalid('unit', `Period unit must be one of ${PERIOD_UNITS.join(', ')}; got '${String(unit)}'.`);
  }
  if (Number.isNaN(result.getTime())) throw invalid('duration', `A period of ${count} ${unit}s ${beyond} the supported date range.`);
  return result;
}

export function periodEnd(start: Date, duration: number, unit: PeriodUnit): Date {
  return addPeriod(start, duration, unit);
}

/** Start of the index-th period, always measured from the anchor so month-end anchors never drift. */
export function periodIndexStart(anchor: Date, index: number, duration: number, unit: PeriodUnit): Date {
  requireCount(index, 'index');
  requireCount(duration, 'duration');
  return addPeriod(anchor, index * duration, unit);
}

/** Share of [start, end) still ahead at `at`, as an exact millisecond fraction. */
export function remainingShare(start: Date, end: Date, at: Date): { numerator: bigint; denominator: bigint } {
  const s = requireDate(start, 'start');
  const e = requireDate(end, 'end');
  const a = requireDate(at, 'at');
  if (e <= s) throw invalid('end', 'A period must end after it starts.');
  const denominator = BigInt(e - s);
  if (a <= s) return { numerator: denominator, denominator };
  if (a >= e) return { numerator: 0n, denominator };
  return { numerator: BigInt(e - a), denominator };
}

export function prorate(amount: bigint, start: Date, end: Date, at: Date): bigint {
  const { numerator, denominator } = remainingShare(start, end, at);
  return mulDivHalfUp(amount, numerator, denominator);
}

/** Checks a plan's billing period: a whole number of units, 1..1000 (hours up to 8760, one year). */
export function validatePeriod(duration: number, unit: string): asserts unit is PeriodUnit {
  if (!isPeriodUnit(unit)) {
    throw invalid('unit', `A plan period unit must be one of ${PERIOD_UNITS.join(', ')}; got '${String(unit)}'.`);
  }
  const max = unit === 'hour' ? 8760 : 1000;
  if (typeof duration !== 'number' || !Number.isInteger(duration)) {
    throw invalid('duration', `A plan period must be a whole number of ${unit}s; got ${String(duration)}.`);
  }
  if (duration < 1) throw invalid('duration', `A plan period must last at least 1 ${unit}.`);
  if (duration > max) throw invalid('duration', `A plan period can last at most ${max} ${unit}s.`);
}
