import { expect } from 'chai';
import { AppError } from '../../../src/domain/errors';
import { priceItem, type PricedRate } from '../../../src/domain/pricing';

const disk: PricedRate = { resourceId: 2, name: 'Disk space', unit: 'GB', included: 10, min: 10, max: 50, setupFee: 100n, recurringFee: 50n };
const mailboxes: PricedRate = { resourceId: 1, name: 'Mailboxes', unit: 'mailbox', included: 10, min: 10, max: null, setupFee: 0n, recurringFee: 75n };
const basic = { planName: 'Shared Hosting Basic', period: { setupFee: 999n, recurringFee: 499n, trial: false }, rates: [disk, mailboxes] };

function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (e) {
    return e as AppError;
  }
  throw new Error('expected a refusal');
}

describe('domain/pricing', () => {
  it('charges the setup fee and the first period of the plan period', () => {
    const p = priceItem({ ...basic, resources: [] });
    expect(p.lines.map((l) => [l.kind, l.amount])).to.deep.equal([
      ['setup', 999n],
      ['recurring', 499n],
    ]);
    expect(p.total).to.equal(1498n);
  });

  it('charges only resources ordered above what the plan includes, setup and recurring', () => {
    const p = priceItem({ ...basic, resources: [{ resourceId: 2, quantity: 15 }, { resourceId: 1, quantity: 10 }] });
    const extra = p.lines.filter((l) => l.resourceId === 2);
    expect(extra.map((l) => [l.kind, l.quantity, l.amount])).to.deep.equal([
      ['resource_setup', 5, 500n],
      ['resource_recurring', 5, 250n],
    ]);
    expect(p.lines.some((l) => l.resourceId === 1)).to.equal(false);
    expect(p.total).to.equal(1498n + 750n);
  });

  it('prices fractional quantities exactly and rounds each line half-up: 2.5 GB at 0.33 per GB is 0.83', () => {
    const p = priceItem({ ...basic, rates: [{ ...disk, setupFee: 0n, recurringFee: 33n }], resources: [{ resourceId: 2, quantity: 12.5 }] });
    expect(p.lines.find((l) => l.kind === 'resource_recurring')?.amount).to.equal(83n); // 2.5 * 33 = 82.5 -> 83
  });

  it('makes a trial free, whatever resources it carries', () => {
    const p = priceItem({ ...basic, period: { setupFee: 0n, recurringFee: 0n, trial: true }, resources: [{ resourceId: 2, quantity: 20 }] });
    expect(p.lines).to.deep.equal([]);
    expect(p.total).to.equal(0n);
  });

  it('applies a percent promo to the first period only, rounded half-up', () => {
    const p = priceItem({ ...basic, resources: [], promo: { code: 'SPRING15', kind: 'percent', value: 1500n, appliesTo: 'first_period' } });
    expect(p.discount).to.equal(75n); // 15 % of 4.99 = 0.7485 -> 0.75
    expect(p.total).to.equal(1498n - 75n);
    expect(p.lines.at(-1)).to.include({ kind: 'discount', amount: -75n });
  });

  it('caps a fixed promo at what it applies to: never a negative total', () => {
    const p = priceItem({ ...basic, resources: [], promo: { code: 'FREESETUP', kind: 'fixed', value: 5000n, appliesTo: 'setup' } });
    expect(p.discount).to.equal(999n);
    expect(p.total).to.equal(499n);
  });

  it('lines always add up to the total', () => {
    const p = priceItem({ ...basic, resources: [{ resourceId: 2, quantity: 33.3333 }], promo: { code: 'X', kind: 'percent', value: 3333n, appliesTo: 'both' } });
    expect(p.lines.reduce((s, l) => s + l.amount, 0n)).to.equal(p.total);
  });

  it('refuses quantities outside the rate: below min, above max, too many decimals, unknown resource, twice', () => {
    expect(refusal(() => priceItem({ ...basic, resources: [{ resourceId: 2, quantity: 5 }] })).field).to.equal('item.resources[0].quantity');
    expect(refusal(() => priceItem({ ...basic, resources: [{ resourceId: 2, quantity: 51 }] })).message).to.contain('at most 50 GB');
    expect(refusal(() => priceItem({ ...basic, resources: [{ resourceId: 2, quantity: 12.00001 }] })).message).to.contain('4 decimals');
    expect(refusal(() => priceItem({ ...basic, resources: [{ resourceId: 9, quantity: 1 }] })).field).to.equal('item.resources[0].resourceId');
    expect(refusal(() => priceItem({ ...basic, resources: [{ resourceId: 2, quantity: 12 }, { resourceId: 2, quantity: 13 }] })).field).to.equal('item.resources[1].resourceId');
  });
});
