import { expect } from 'chai';
import {
  AppError, allocate, divideHalfUp, formatAmount, fromDecimalText, fromDouble, mulDivHalfUp, parseAmount,
  sumAmounts, toDouble,
} from '../../../src/domain';

// Asserts an INVALID_ARGUMENT AppError on the given field, optionally with a message fragment.
function expectInvalid(fn: () => unknown, field: string, message?: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected an AppError').to.be.instanceOf(AppError);
  const err = caught as AppError;
  expect(err.code).to.equal('INVALID_ARGUMENT');
  expect(err.field).to.equal(field);
  if (message !== undefined) expect(err.message).to.include(message);
}

// mulberry32: a tiny seeded PRNG so the property-style loops are repeatable.
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('domain/money', () => {
  describe('parseAmount', () => {
    it('parses USD text into cents', () => {
      expect(parseAmount('1234.50', 'USD')).to.equal(123450n);
      expect(parseAmount('1234.5', 'USD')).to.equal(123450n);
      expect(parseAmount('7', 'USD')).to.equal(700n);
      expect(parseAmount('-0.05', 'USD')).to.equal(-5n);
      expect(parseAmount('+3.10', 'USD')).to.equal(310n);
    });

    it('parses JPY as whole yen and KWD as thousandths', () => {
      expect(parseAmount('1500', 'JPY')).to.equal(1500n);
      expect(parseAmount('1.25', 'KWD')).to.equal(1250n);
      expect(parseAmount('0.001', 'KWD')).to.equal(1n);
    });

    it('accepts trailing zeros beyond the exponent', () => {
      expect(parseAmount('1.500', 'USD')).to.equal(150n);
      expect(parseAmount('1500.00', 'JPY')).to.equal(1500n);
    });

    it('rejects a non-zero digit beyond the exponent instead of rounding it', () => {
      expectInvalid(() => parseAmount('1.005', 'USD'), 'amount', 'USD has 2 decimals; 1.005 has more');
      expectInvalid(() => parseAmount('2.5', 'JPY', 'price'), 'price', 'JPY has 0 decimals');
      expectInvalid(() => parseAmount('0.0005', 'KWD'), 'amount', 'KWD has 3 decimals');
    });

    it('keeps 12345678901234567.89 USD exact and round-trips it through formatAmount', () => {
      const minor = parseAmount('12345678901234567.89', 'USD');
      expect(minor).to.equal(1234567890123456789n);
      expect(formatAmount(minor, 'USD')).to.equal('12345678901234567.89');
    });

    it('rejects empty text, exponent notation, spaces and malformed numbers on the named field', () => {
      for (const bad of ['', ' ', '1e3', '1E3', ' 1.00', '1.00 ', '1 000', '1,00', '.5', '5.', '--1', '0x10', 'abc', '1.2.3']) {
        expectInvalid(() => parseAmount(bad, 'USD', 'price'), 'price');
      }
    });

    it('accepts 30 integer digits but rejects 31', () => {
      expect(parseAmount('9'.repeat(30), 'JPY')).to.equal(10n ** 30n - 1n);
      expectInvalid(() => parseAmount('1' + '0'.repeat(30), 'JPY'), 'amount', '30 integer digits');
    });

    it('rejects an unknown currency on the currency field', () => {
      expectInvalid(() => parseAmount('1.00', 'XYZ'), 'currency');
    });
  });

  describe('formatAmount', () => {
    it('writes the currency exponent worth of decimals', () => {
      expect(formatAmount(123450n, 'USD')).to.equal('1234.50');
      expect(formatAmount(-5n, 'USD')).to.equal('-0.05');
      expect(formatAmount(0n, 'USD')).to.equal('0.00');
      expect(formatAmount(1500n, 'JPY')).to.equal('1500');
      expect(formatAmount(-1500n, 'JPY')).to.equal('-1500');
      expect(formatAmount(1250n, 'KWD')).to.equal('1.250');
      expect(formatAmount(1n, 'KWD')).to.equal('0.001');
    });

    it('round-trips what parseAmount reads', () => {
      for (const text of ['0.01', '-0.99', '100.00', '99999999.99']) {
        expect(formatAmount(parseAmount(text, 'USD'), 'USD')).to.equal(text);
      }
    });
  });

  describe('divideHalfUp and mulDivHalfUp', () => {
    it('rounds halves away from zero for every sign combination', () => {
      expect(divideHalfUp(5n, 2n)).to.equal(3n);
      expect(divideHalfUp(-5n, 2n)).to.equal(-3n);
      expect(divideHalfUp(5n, -2n)).to.equal(-3n);
      expect(divideHalfUp(-5n, -2n)).to.equal(3n);
    });

    it('rounds below-half down and above-half up in magnitude', () => {
      expect(divideHalfUp(14n, 10n)).to.equal(1n);
      expect(divideHalfUp(16n, 10n)).to.equal(2n);
      expect(divideHalfUp(-14n, 10n)).to.equal(-1n);
      expect(divideHalfUp(-16n, 10n)).to.equal(-2n);
      expect(divideHalfUp(9n, 3n)).to.equal(3n);
    });

    it('refuses to divide by zero', () => {
      expectInvalid(() => divideHalfUp(1n, 0n), 'denominator');
    });

    it('computes round(a*b/c) without losing precision', () => {
      expect(mulDivHalfUp(3000n, 10n, 30n)).to.equal(1000n);
      expect(mulDivHalfUp(1000n, 1n, 3n)).to.equal(333n);
      expect(mulDivHalfUp(1000n, 2n, 3n)).to.equal(667n);
      expect(mulDivHalfUp(10n ** 30n, 10n ** 30n, 10n ** 30n)).to.equal(10n ** 30n);
    });
  });

  describe('allocate', () => {
    it('splits 100.00 three ways as 33.34 + 33.33 + 33.33', () => {
      expect(allocate(10000n, [1n, 1n, 1n])).to.deep.equal([3334n, 3333n, 3333n]);
    });

    it('mirrors the split for a negative total', () => {
      expect(allocate(-10000n, [1n, 1n, 1n])).to.deep.equal([-3334n, -3333n, -3333n]);
    });

    it('gives leftover units to the largest remainders before earlier parts', () => {
      // Exact shares 1.4, 2.6, 1.0 (total 5, weights 7:13:5) -> the .6 remainder wins the one leftover unit.
      expect(allocate(5n, [7n, 13n, 5n])).to.deep.equal([1n, 3n, 1n]);
    });

    it('breaks equal remainders in favour of the earliest part', () => {
      expect(allocate(2n, [1n, 1n, 1n])).to.deep.equal([1n, 1n, 0n]);
      expect(allocate(-1n, [1n, 1n])).to.deep.equal([-1n, 0n]);
    });

    it('gives zero to a zero weight', () => {
      expect(allocate(100n, [0n, 1n, 0n])).to.deep.equal([0n, 100n, 0n]);
    });

    it('rejects negative weights and all-zero or empty weights', () => {
      expectInvalid(() => allocate(100n, [1n, -1n]), 'weights');
      expectInvalid(() => allocate(100n, [0n, 0n]), 'weights');
      expectInvalid(() => allocate(100n, []), 'weights');
    });

    it('always sums exactly to the total and keeps each part within one unit of its exact share (seeded random)', () => {
      const rand = prng(20240229);
      const int = (n: number): bigint => BigInt(Math.floor(rand() * n));
      for (let run = 0; run < 1000; run++) {
        const total = (int(2) === 0n ? -1n : 1n) * int(10 ** 9) * (int(4) === 0n ? 10n ** 12n : 1n);
        const weights: bigint[] = Array.from({ length: 1 + Number(int(7)) }, () => (int(3) === 0n ? 0n : int(10 ** 6)));
        if (!weights.some((w) => w > 0n)) weights.push(1n); // allocate needs one positive weight
        const parts = allocate(total, weights);
        const sum = sumAmounts(weights);
        expect(parts).to.have.length(weights.length);
        expect(sumAmounts(parts), `run ${run}`).to.equal(total);
        parts.forEach((p, i) => {
          const gap = p * sum - total * weights[i]!; // part minus exact share, scaled by sum
          expect(gap < sum && gap > -sum, `run ${run} part ${i}`).to.equal(true);
        });
      }
    });
  });

  describe('fromDouble and fromDecimalText', () => {
    it('rounds 1.005 USD to 101 cents from its decimal text, not float multiplication', () => {
      expect(Math.round(1.005 * 100)).to.equal(100); // the trap this function exists to avoid
      expect(fromDouble(1.005, 'USD')).to.equal(101n);
    });

    it('rounds 0.0005 KWD up to 1 fils and 2.5 JPY up to 3 yen', () => {
      expect(fromDouble(0.0005, 'KWD')).to.equal(1n);
      expect(fromDouble(2.5, 'JPY')).to.equal(3n);
    });

    it('rounds negative halves away from zero', () => {
      expect(fromDouble(-2.5, 'JPY')).to.equal(-3n);
      expect(fromDouble(-1.005, 'USD')).to.equal(-101n);
      expect(fromDouble(-0.0005, 'KWD')).to.equal(-1n);
    });

    it('rounds just-below-half down', () => {
      expect(fromDouble(1.0049, 'USD')).to.equal(100n);
      expect(fromDouble(2.4999, 'JPY')).to.equal(2n);
    });

    it('handles exponent notation from String(x)', () => {
      expect(String(1e21)).to.equal('1e+21');
      expect(fromDouble(1e21, 'USD')).to.equal(10n ** 23n);
      expect(fromDouble(1.5e-7, 'USD')).to.equal(0n);
      expect(fromDouble(5e-7, 'KWD')).to.equal(0n);
      expect(fromDouble(-1.25e21, 'JPY')).to.equal(-125n * 10n ** 19n);
    });

    it('treats whole numbers and negative zero plainly', () => {
      expect(fromDouble(42, 'USD')).to.equal(4200n);
      expect(fromDouble(-0, 'USD')).to.equal(0n);
    });

    it('rejects NaN and infinities', () => {
      expectInvalid(() => fromDouble(NaN, 'USD'), 'amount');
      expectInvalid(() => fromDouble(Infinity, 'USD', 'price'), 'price');
      expectInvalid(() => fromDouble(-Infinity, 'USD'), 'amount');
    });

    it('rounds decimal text the same way, at any precision', () => {
      expect(fromDecimalText('1.005', 'USD')).to.equal(101n);
      expect(fromDecimalText('-1.005', 'USD')).to.equal(-101n);
      expect(fromDecimalText('1.00499999999', 'USD')).to.equal(100n);
      expect(fromDecimalText('2.5', 'JPY')).to.equal(3n);
      expect(fromDecimalText('7', 'KWD')).to.equal(7000n);
      expectInvalid(() => fromDecimalText('1e3', 'USD'), 'amount');
    });
  });

  describe('toDouble and sumAmounts', () => {
    it('converts minor units to the wire double', () => {
      expect(toDouble(123450n, 'USD')).to.equal(1234.5);
      expect(toDouble(-5n, 'USD')).to.equal(-0.05);
      expect(toDouble(1500n, 'JPY')).to.equal(1500);
      expect(toDouble(1250n, 'KWD')).to.equal(1.25);
    });

    it('sums amounts exactly, with an empty list summing to zero', () => {
      expect(sumAmounts([])).to.equal(0n);
      expect(sumAmounts([1234567890123456789n, 1n, -90n])).to.equal(1234567890123456700n);
    });
  });
});
