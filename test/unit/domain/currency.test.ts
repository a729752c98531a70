import { expect } from 'chai';
import { AppError, CURRENCY_CODES, currency, isCurrency } from '../../../src/domain';

describe('domain/currency', () => {
  it('gives each required currency its ISO 4217 exponent', () => {
    const expected: Record<string, number> = {
      USD: 2, EUR: 2, GBP: 2, JPY: 0, KWD: 3, BHD: 3, CAD: 2, AUD: 2, RUB: 2, BRL: 2,
      CHF: 2, SEK: 2, NOK: 2, DKK: 2, PLN: 2, CZK: 2, INR: 2, CNY: 2, ZAR: 2, MXN: 2, NZD: 2, SGD: 2, HKD: 2,
      KRW: 0, OMR: 3, JOD: 3, TND: 3, IQD: 3, CLP: 0, VND: 0, ISK: 0,
    };
    for (const [code, exponent] of Object.entries(expected)) {
      expect(currency(code), code).to.deep.equal({ code, exponent });
    }
  });

  it('lists every known code exactly once, sorted, and only codes that currency() accepts', () => {
    expect(CURRENCY_CODES).to.include.members(['USD', 'JPY', 'KWD']);
    expect(new Set(CURRENCY_CODES).size).to.equal(CURRENCY_CODES.length);
    expect([...CURRENCY_CODES].sort()).to.deep.equal(CURRENCY_CODES);
    for (const code of CURRENCY_CODES) expect(isCurrency(code), code).to.equal(true);
  });

  it('recognises known codes and rejects unknown, lowercase and prototype-property names', () => {
    expect(isCurrency('EUR')).to.equal(true);
    expect(isCurrency('XYZ')).to.equal(false);
    expect(isCurrency('usd')).to.equal(false);
    expect(isCurrency('toString')).to.equal(false);
  });

  it('rejects an unknown code with INVALID_ARGUMENT on the currency field and a helpful message', () => {
    expect(() => currency('XYZ'))
      .to.throw(AppError, "Unknown currency code 'XYZ'; use an ISO 4217 code such as USD.")
      .that.includes({ code: 'INVALID_ARGUMENT', field: 'currency' });
  });
});
