import { addPeriod, type PeriodUnit } from '../../domain/period';

const APPROX_MS: Record<PeriodUnit, number> = { hour: 3_600_000, day: 86_400_000, month: 2_629_746_000, year: 31_556_952_000 };

/**
 * The billing period of a subscription that contains `at`: periods are counted from the anchor (the
 * subscription's start date) so month-end anchors never drift. Instants before the anchor belong to period 0.
 */
export function periodContaining(anchor: Date, duration: number, unit: PeriodUnit, at: Date): { start: Date; end: Date } {
  const a = anchor.getTime();
  const t = at.getTime();
  if (t <= a) return { start: anchor, end: addPeriod(anchor, duration, unit) };
  let k = Math.max(0, Math.floor((t - a) / (APPROX_MS[unit] * duration)));
  const startOf = (i: number) => addPeriod(anchor, i * duration, unit);
  while (k > 0 && startOf(k).getTime() > t) k--;
  while (startOf(k + 1).getTime() <= t) k++;
  return { start: startOf(k), end: startOf(k + 1) };
}
