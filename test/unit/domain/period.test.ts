import { expect } from 'chai';
import {
  AppError, PERIOD_UNITS, addPeriod, isLeapYear, periodEnd, periodIndexStart, periodUnitFromPba, periodUnitToPba,
  prorate, remainingShare, subtractPeriod, validatePeriod,
} from '../../../src/domain';

const utc = (iso: string): Date => new Date(iso);
const iso = (d: Date): string => d.toISOString();

function expectInvalid(fn: () => unknown, field: string, message?: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected an AppError').to.be.instanceOf(AppError);
  expect((caught as AppError).code).to.equal('INVALID_ARGUMENT');
  expect((caught as AppError).field).to.equal(field);
  if (message !== undefined) expect((caught as AppError).message).to.include(message);
}

describe('domain/period', () => {
  describe('PBA PeriodType mapping', () => {
    it('maps 0..3 to hour, day, month, year and back', () => {
      expect(PERIOD_UNITS).to.deep.equal(['hour', 'day', 'month', 'year']);
      expect([0, 1, 2, 3].map((n) => periodUnitFromPba(n as 0 | 1 | 2 | 3))).to.deep.equal(['hour', 'day', 'month', 'year']);
      for (const unit of PERIOD_UNITS) expect(periodUnitFromPba(periodUnitToPba(unit))).to.equal(unit);
    });

    it('rejects PeriodType values the wire may send outside 0..3', () => {
      for (const bad of [4, -1, 1.5]) expectInvalid(() => periodUnitFromPba(bad as 0), 'periodType');
      expectInvalid(() => periodUnitToPba('week' as 'day'), 'unit');
    });
  });

  describe('subtractPeriod', () => {
    it('goes one period back from an expiration, clamping like addPeriod', () => {
      expect(iso(subtractPeriod(utc('2026-06-01T00:00:00Z'), 1, 'month'))).to.equal('2026-05-01T00:00:00.000Z');
      expect(iso(subtractPeriod(utc('2026-01-15T10:00:00Z'), 1, 'month'))).to.equal('2025-12-15T10:00:00.000Z');
      expect(iso(subtractPeriod(utc('2026-03-31T00:00:00Z'), 1, 'month'))).to.equal('2026-02-28T00:00:00.000Z');
      expect(iso(subtractPeriod(utc('2025-02-28T00:00:00Z'), 1, 'year'))).to.equal('2024-02-28T00:00:00.000Z');
      expect(iso(subtractPeriod(utc('2026-02-05T00:00:00Z'), 30, 'day'))).to.equal('2026-01-06T00:00:00.000Z');
      expect(iso(subtractPeriod(utc('2026-02-05T00:00:00Z'), 2, 'hour'))).to.equal('2026-02-04T22:00:00.000Z');
    });
  });

  describe('addPeriod', () => {
    it('clamps Jan 31 + 1 month to Feb 28 in 2023 and Feb 29 in 2024', () => {
      expect(iso(addPeriod(utc('2023-01-31T00:00:00Z'), 1, 'month'))).to.equal('2023-02-28T00:00:00.000Z');
      expect(iso(addPeriod(utc('2024-01-31T00:00:00Z'), 1, 'month'))).to.equal('2024-02-29T00:00:00.000Z');
    });

    it('gives Apr 30 for a 1-month period starting Mar 31', () => {
      expect(iso(addPeriod(utc('2023-03-31T12:00:00Z'), 1, 'month'))).to.equal('2023-04-30T12:00:00.000Z');
    });

    it('computes Jan 31 + 2 months as Mar 31, from the start rather than chained through February', () => {
      const start = utc('2023-01-31T00:00:00Z');
      expect(iso(addPeriod(start, 2, 'month'))).to.equal('2023-03-31T00:00:00.000Z');
      expect(iso(addPeriod(addPeriod(start, 1, 'month'), 1, 'month'))).to.equal('2023-03-28T00:00:00.000Z');
    });

    it('turns Feb 29 2024 + 1 year into Feb 28 2025, and + 4 years into Feb 29 2028', () => {
      expect(iso(addPeriod(utc('2024-02-29T00:00:00Z'), 1, 'year'))).to.equal('2025-02-28T00:00:00.000Z');
      expect(iso(addPeriod(utc('2024-02-29T00:00:00Z'), 4, 'year'))).to.equal('2028-02-29T00:00:00.000Z');
    });

    it('treats 1900 as common, 2000 and 2024 as leap years when clamping', () => {
      expect([1900, 2000, 2024, 2023, 2100].map(isLeapYear)).to.deep.equal([false, true, true, false, false]);
      expect(iso(addPeriod(utc('1900-01-31T00:00:00Z'), 1, 'month'))).to.equal('1900-02-28T00:00:00.000Z');
      expect(iso(addPeriod(utc('2000-01-31T00:00:00Z'), 1, 'month'))).to.equal('2000-02-29T00:00:00.000Z');
      expect(iso(addPeriod(utc('1999-02-28T00:00:00Z'), 1, 'year'))).to.equal('2000-02-28T00:00:00.000Z');
      expect(iso(addPeriod(utc('2000-02-29T00:00:00Z'), 100, 'year'))).to.equal('2100-02-28T00:00:00.000Z');
    });

    it('preserves the time of day across month and year steps, including across year end', () => {
      expect(iso(addPeriod(utc('2023-11-30T23:59:59.999Z'), 3, 'month'))).to.equal('2024-02-29T23:59:59.999Z');
      expect(iso(addPeriod(utc('2023-12-15T08:30:00Z'), 1, 'month'))).to.equal('2024-01-15T08:30:00.000Z');
      expect(iso(addPeriod(utc('2023-06-15T08:30:00Z'), 18, 'month'))).to.equal('2024-12-15T08:30:00.000Z');
    });

    it('adds exact 24-hour days and 1-hour hours in UTC, with no DST shift on European or US change dates', () => {
      expect(iso(addPeriod(utc('2024-03-30T12:00:00Z'), 1, 'day'))).to.equal('2024-03-31T12:00:00.000Z');
      expect(iso(addPeriod(utc('2024-03-10T01:30:00Z'), 1, 'day'))).to.equal('2024-03-11T01:30:00.000Z');
      expect(iso(addPeriod(utc('2024-10-27T00:30:00Z'), 3, 'hour'))).to.equal('2024-10-27T03:30:00.000Z');
      expect(iso(addPeriod(utc('2024-12-31T23:00:00Z'), 2, 'hour'))).to.equal('2025-01-01T01:00:00.000Z');
      expect(iso(addPeriod(utc('2024-02-28T00:00:00Z'), 2, 'day'))).to.equal('2024-03-01T00:00:00.000Z');
    });

    it('returns the same instant for a count of zero without mutating the start', () => {
      const start = utc('2024-01-31T10:00:00Z');
      const result = addPeriod(start, 0, 'month');
      expect(iso(result)).to.equal('2024-01-31T10:00:00.000Z');
      addPeriod(start, 5, 'month');
      expect(iso(start)).to.equal('2024-01-31T10:00:00.000Z');
    });

    it('rejects a negative or fractional count on the duration field', () => {
      for (const bad of [-1, 1.5, NaN, Infinity]) expectInvalid(() => addPeriod(utc('2024-01-01T00:00:00Z'), bad, 'day'), 'duration');
    });

    it('rejects an invalid start date and an unknown unit', () => {
      expectInvalid(() => addPeriod(new Date('nope'), 1, 'day'), 'start');
      expectInvalid(() => addPeriod(utc('2024-01-01T00:00:00Z'), 1, 'week' as 'day'), 'unit');
    });

    it('has periodEnd behave as addPeriod', () => {
      expect(iso(periodEnd(utc('2023-01-31T00:00:00Z'), 1, 'month'))).to.equal('2023-02-28T00:00:00.000Z');
    });
  });

  describe('periodIndexStart', () => {
    it('keeps a Jan 31 monthly anchor from drifting: Feb 28, Mar 31, Apr 30', () => {
      const anchor = utc('2023-01-31T00:00:00Z');
      const starts = [0, 1, 2, 3].map((i) => iso(periodIndexStart(anchor, i, 1, 'month')).slice(0, 10));
      expect(starts).to.deep.equal(['2023-01-31', '2023-02-28', '2023-03-31', '2023-04-30']);
    });

    it('multiplies index by duration for multi-unit periods', () => {
      const anchor = utc('2023-08-31T00:00:00Z');
      expect(iso(periodIndexStart(anchor, 2, 3, 'month'))).to.equal('2024-02-29T00:00:00.000Z');
      expect(iso(periodIndexStart(utc('2024-01-01T00:00:00Z'), 3, 12, 'hour'))).to.equal('2024-01-02T12:00:00.000Z');
    });

    it('rejects a negative or fractional index', () => {
      expectInvalid(() => periodIndexStart(utc('2024-01-01T00:00:00Z'), -1, 1, 'month'), 'index');
      expectInvalid(() => periodIndexStart(utc('2024-01-01T00:00:00Z'), 0.5, 1, 'month'), 'index');
    });
  });

  describe('remainingShare and prorate', () => {
    const start = utc('2024-04-01T00:00:00Z');
    const end = addPeriod(start, 30, 'day');

    it('prorates 3000 to 1000 for a 30-day period with 10 days left', () => {
      expect(prorate(3000n, start, end, addPeriod(start, 20, 'day'))).to.equal(1000n);
    });

    it('gives the whole share at or before the start', () => {
      const at = remainingShare(start, end, start);
      expect(at.numerator).to.equal(at.denominator);
      expect(at.denominator).to.equal(30n * 86_400_000n);
      expect(prorate(3000n, start, end, utc('2024-03-01T00:00:00Z'))).to.equal(3000n);
    });

    it('gives zero at or after the end', () => {
      expect(remainingShare(start, end, end).numerator).to.equal(0n);
      expect(prorate(3000n, start, end, utc('2025-01-01T00:00:00Z'))).to.equal(0n);
    });

    it('counts the share in milliseconds and rounds half away from zero', () => {
      const s = utc('2024-01-01T00:00:00.000Z');
      const e = utc('2024-01-01T00:00:00.004Z');
      expect(remainingShare(s, e, utc('2024-01-01T00:00:00.001Z'))).to.deep.equal({ numerator: 3n, denominator: 4n });
      expect(prorate(2n, s, e, utc('2024-01-01T00:00:00.003Z'))).to.equal(1n); // 0.5 -> 1
      expect(prorate(-2n, s, e, utc('2024-01-01T00:00:00.003Z'))).to.equal(-1n); // -0.5 -> -1
    });

    it('rejects a period that does not end after it starts', () => {
      expectInvalid(() => remainingShare(end, start, start), 'end');
      expectInvalid(() => prorate(100n, start, start, start), 'end');
    });
  });

  describe('validatePeriod', () => {
    it('accepts 1..1000 of a day, month or year and up to 8760 hours', () => {
      for (const [d, u] of [[1, 'month'], [1000, 'year'], [1000, 'day'], [8760, 'hour']] as const) {
        expect(() => validatePeriod(d, u)).not.to.throw();
      }
    });

    it('rejects a period shorter than one unit with a message naming the unit', () => {
      expectInvalid(() => validatePeriod(0, 'month'), 'duration', 'A plan period must last at least 1 month');
    });

    it('rejects fractional or overly long durations', () => {
      expectInvalid(() => validatePeriod(1.5, 'month'), 'duration', 'whole number of months');
      expectInvalid(() => validatePeriod(1001, 'day'), 'duration', 'at most 1000 days');
      expectInvalid(() => validatePeriod(8761, 'hour'), 'duration', 'at most 8760 hours');
    });

    it('rejects an unknown unit on the unit field', () => {
      expectInvalid(() => validatePeriod(1, 'week'), 'unit', 'hour, day, month, year');
    });
  });
});
