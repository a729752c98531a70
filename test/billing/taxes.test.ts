import { expect } from 'chai';
import type { Actor } from '../../src/context';
import { inTransaction } from '../../src/db/transaction';
import { lineTax } from '../../src/billing/taxes';
import type { IssueInvoiceInput } from '../../src/billing/types';
import { failure } from '../helpers/assertions';
import { makeWorld, type World } from '../helpers/world';
import { dialect } from '../helpers/db';

const AT = new Date('2026-02-01T00:00:00Z');

async function customer(world: World, name: string, opts: { currency: string; country: string; state?: string; taxStatus?: 'taxable' | 'exempt' }): Promise<Actor> {
  const id = await world.services.accounts.create(world.provider, {
    type: 'customer',
    companyName: name,
    currency: opts.currency,
    taxStatus: opts.taxStatus,
    address: { address1: '1 Main St', city: 'Town', zip: '12345', country: opts.country, state: opts.state ?? '' },
    contacts: { admin: { firstName: name, lastName: 'Admin', email: `${name.toLowerCase()}@example.com` } },
  });
  const row = (await world.deps.db('accounts').where({ id }).first()) as { path: string };
  return { userId: null, accountId: id, accountPath: row.path, accountType: 'customer', roles: ['admin'], channel: 'system' };
}

const lines = (...amounts: bigint[]): IssueInvoiceInput['lines'] => amounts.map((a) => ({ kind: 'renewal', description: 'Hosting', quantity: '1', unitPrice: a, amount: a }));

describe(`billing taxes (${dialect})`, function () {
  this.timeout(60_000);
  let world: World;
  let vendorId: number;

  before(async () => {
    world = await makeWorld({ start: AT.toISOString() });
    vendorId = world.provider.accountId;
    const rules = world.services.taxRules;
    await rules.create(world.provider, vendorId, { name: 'US sales tax 5%', country: 'US', ratePpm: 50_000 });
    await rules.create(world.provider, vendorId, { name: 'NY sales tax 8.875%', country: 'US', state: 'NY', ratePpm: 88_750 });
    await rules.create(world.provider, vendorId, { name: 'JCT 10%', country: 'JP', ratePpm: 100_000 });
    await rules.create(world.provider, vendorId, { name: 'VAT 5%', country: 'KW', ratePpm: 50_000, inclusive: true });
    await rules.create(world.provider, vendorId, { name: 'MwSt 19%', country: 'DE', ratePpm: 190_000, inclusive: true });
  });
  after(async () => world.close());

  const invoice = async (c: Actor, currency: string, amounts: bigint[]) => {
    const [inv] = await inTransaction(world.deps.db, (tx) => world.services.documents.issueInvoices(tx, AT, [{ vendorId, accountId: c.accountId, currency, issueDate: AT, lines: lines(...amounts) }]));
    return world.services.documents.getDocument(world.provider, inv!.documentId);
  };

  it('exclusive tax per line, half-up, the state rule before the country rule (USD)', async () => {
    const ny = await customer(world, 'Newyork', { currency: 'USD', country: 'US', state: 'NY' });
    // 19.99 x 8.875% = 1.7741125 -> 1.77; 10.01 x 8.875% = 0.8883875 -> 0.89
    const doc = await invoice(ny, 'USD', [1999n, 1001n]);
    expect(doc.lines.map((l) => [l.kind, l.amount, l.taxAmount])).to.deep.equal([['renewal', 1999n, 177n], ['renewal', 1001n, 89n], ['tax', 266n, 0n]]);
    expect(doc.lines[2]!.description).to.equal('NY sales tax 8.875%');
    expect([doc.subtotal, doc.taxTotal, doc.total]).to.deep.equal([3000n, 266n, 3266n]);
    const ca = await customer(world, 'California', { currency: 'USD', country: 'US', state: 'CA' });
    // 0.50 x 5% = 0.025 -> 0.03 (half-up); 0.49 x 5% = 0.0245 -> 0.02
    const d2 = await invoice(ca, 'USD', [50n, 49n]);
    expect(d2.lines.map((l) => l.taxAmount)).to.deep.equal([3n, 2n, 0n]);
    expect([d2.subtotal, d2.taxTotal, d2.total]).to.deep.equal([99n, 5n, 104n]);
  });

  it('JPY has no minor unit: 10% of 1005 yen is 101 (100.5 half-up), of 333 yen 33', async () => {
    const jp = await customer(world, 'Tokyo', { currency: 'JPY', country: 'JP' });
    const doc = await invoice(jp, 'JPY', [1005n, 333n]);
    expect(doc.lines.map((l) => l.taxAmount)).to.deep.equal([101n, 33n, 0n]);
    expect([doc.subtotal, doc.taxTotal, doc.total]).to.deep.equal([1338n, 134n, 1472n]);
  });

  it('inclusive tax is extracted from the price (KWD, 3 decimals; EUR)', async () => {
    const kw = await customer(world, 'Kuwait', { currency: 'KWD', country: 'KW' });
    // 10.500 / 1.05 = 10.000 net, 0.500 tax; 1.001 / 1.05 = 0.95333 -> 0.953 net, 0.048 tax
    const doc = await invoice(kw, 'KWD', [10_500n, 1_001n]);
    expect(doc.lines.map((l) => [l.amount, l.taxAmount])).to.deep.equal([[10_500n, 500n], [1_001n, 48n], [548n, 0n]]);
    expect(doc.lines[2]!.description).to.equal('VAT 5% (included)');
    expect([doc.subtotal, doc.taxTotal, doc.total]).to.deep.equal([10_953n, 548n, 11_501n]);
    const de = await customer(world, 'Berlin', { currency: 'EUR', country: 'DE' });
    // 10.00 / 1.19 = 8.4034 -> 8.40 net, 1.60 tax: the customer pays the printed price
    const d2 = await invoice(de, 'EUR', [1000n]);
    expect([d2.subtotal, d2.taxTotal, d2.total]).to.deep.equal([840n, 160n, 1000n]);
  });

  it('an exempt account pays no tax, nor does a country without a rule', async () => {
    const ex = await customer(world, 'Exempt', { currency: 'USD', country: 'US', state: 'NY', taxStatus: 'exempt' });
    const doc = await invoice(ex, 'USD', [1999n]);
    expect([doc.subtotal, doc.taxTotal, doc.total, doc.lines.length]).to.deep.equal([1999n, 0n, 1999n, 1]);
    const fr = await customer(world, 'Paris', { currency: 'EUR', country: 'FR' });
    expect((await invoice(fr, 'EUR', [1000n])).taxTotal).to.equal(0n);
  });

  it('line taxes always add up: random amounts, both kinds', () => {
    for (let i = 0; i < 500; i++) {
      const amount = BigInt(Math.floor(Math.random() * 1_000_000));
      const ratePpm = Math.floor(Math.random() * 300_000);
      for (const inclusive of [false, true]) {
        const t = lineTax(amount, { ratePpm, inclusive });
        expect(t.net + t.tax).to.equal(t.gross);
        expect(inclusive ? t.gross : t.net).to.equal(amount);
      }
    }
  });

  it('rules are validated, unique per (vendor, country, state), changed and deleted with an audit record', async () => {
    const rules = world.services.taxRules;
    await failure(rules.create(world.provider, vendorId, { name: 'Bad', country: 'USA', ratePpm: 1 }), 'INVALID_ARGUMENT', 'country');
    await failure(rules.create(world.provider, vendorId, { name: 'Bad', country: 'FR', ratePpm: 2_000_000 }), 'INVALID_ARGUMENT', 'ratePpm');
    await failure(rules.create(world.provider, vendorId, { name: 'Bad', country: 'FR', ratePpm: 1.5 }), 'INVALID_ARGUMENT', 'ratePpm');
    await failure(rules.create(world.provider, vendorId, { name: 'Again', country: 'US', state: 'NY', ratePpm: 1 }), 'CONFLICT', 'country');
    const fr = await rules.create(world.provider, vendorId, { name: 'TVA 20%', country: 'fr', ratePpm: 200_000, inclusive: true });
    expect(fr.country).to.equal('FR');
    const changed = await rules.update(world.provider, fr.taxRuleId, { ratePpm: 55_000, name: 'TVA 5.5%' });
    expect([changed.name, changed.ratePpm, changed.inclusive]).to.deep.equal(['TVA 5.5%', 55_000, true]);
    const outsider = await customer(world, 'Outsider', { currency: 'USD', country: 'US' });
    await failure(rules.update(outsider, fr.taxRuleId, { ratePpm: 1 }), 'NOT_FOUND');
    await failure(rules.list(outsider, outsider.accountId), 'NOT_ALLOWED', 'vendorId');
    await rules.delete(world.provider, fr.taxRuleId);
    expect((await rules.list(world.provider, vendorId)).map((r) => r.country)).to.not.include('FR');
    const ops = (await world.deps.db('audit_log').where('operation', 'like', 'tax_rule.%').orderBy('id').pluck('operation')) as string[];
    expect(ops.slice(-3)).to.deep.equal(['tax_rule.create', 'tax_rule.update', 'tax_rule.delete']);
  });
});
