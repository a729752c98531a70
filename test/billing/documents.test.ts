import { expect } from 'chai';
import type { Actor } from '../../src/context';
import { toBigInt } from '../../src/db/knex';
import { inTransaction } from '../../src/db/transaction';
import type { IssueInvoiceInput } from '../../src/billing/types';
import { failure } from '../helpers/assertions';
import { makeWorld, type World } from '../helpers/world';
import { dialect } from '../helpers/db';

const AT = new Date('2026-02-01T00:00:00Z');

async function customer(world: World, name: string, opts: { currency?: string; country?: string; state?: string; taxStatus?: 'taxable' | 'exempt'; vendor?: number } = {}): Promise<Actor> {
  const id = await world.services.accounts.create(world.provider, {
    type: 'customer',
    vendorAccountId: opts.vendor,
    companyName: name,
    currency: opts.currency ?? 'USD',
    taxStatus: opts.taxStatus,
    address: { address1: '1 Main St', city: 'Town', zip: '12345', country: opts.country ?? 'US', state: opts.state ?? '' },
    contacts: { admin: { firstName: name, lastName: 'Admin', email: `${name.toLowerCase().replace(/\W+/g, '')}@example.com` } },
  });
  const row = (await world.deps.db('accounts').where({ id }).first()) as { path: string };
  return { userId: null, accountId: id, accountPath: row.path, accountType: 'customer', roles: ['admin'], channel: 'system' };
}

const line = (amount: bigint, extra: Partial<IssueInvoiceInput['lines'][number]> = {}): IssueInvoiceInput['lines'][number] => ({
  kind: 'renewal',
  description: 'Web hosting, 1 month',
  quantity: '1',
  unitPrice: amount,
  amount,
  ...extra,
});

describe(`billing documents: invoices (${dialect})`, function () {
  this.timeout(60_000);
  let world: World;
  let vendorId: number;

  beforeEach(async () => {
    world = await makeWorld({ start: AT.toISOString() });
    vendorId = world.provider.accountId;
  });
  afterEach(async () => world.close());

  const issue = (inputs: IssueInvoiceInput[]) => inTransaction(world.deps.db, (tx) => world.services.documents.issueInvoices(tx, AT, inputs));

  it('issues a batch with gapless numbers per vendor, lines, totals, events and due dates', async () => {
    const a = await customer(world, 'Alpha');
    const b = await customer(world, 'Beta');
    const out = await issue([
      { vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(1000n), line(250n, { kind: 'overage', quantity: '2.5', unitPrice: 100n })] },
      { vendorId, accountId: b.accountId, currency: 'USD', issueDate: AT, lines: [line(4999n)] },
    ]);
    expect(out.map((i) => i.number)).to.deep.equal(['INV-000001', 'INV-000002']);
    expect(out.map((i) => i.total)).to.deep.equal([1250n, 4999n]);
    expect(out[0]!.dueDate.toISOString()).to.equal('2026-02-08T00:00:00.000Z');
    const more = await issue([{ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(1n)] }]);
    expect(more[0]!.number).to.equal('INV-000003');
    const doc = await world.services.documents.getDocument(world.provider, out[0]!.documentId);
    expect(doc.lines.map((l) => [l.kind, l.quantity, l.amount])).to.deep.equal([['renewal', '1', 1000n], ['overage', '2.5', 250n]]);
    expect(doc.status).to.equal('open');
    expect(doc.openAmount).to.equal(1250n);
    const events = (await world.deps.db('events').where({ name: 'invoice.issued' }).orderBy('id')) as { object_id: string; payload: string }[];
    expect(events.map((e) => Number(e.object_id))).to.deep.equal([...out, ...more].map((i) => i.documentId));
    expect(JSON.parse(events[1]!.payload).total).to.equal('4999');
    const audit = await world.deps.db('audit_log').where({ operation: 'invoice.issue' }).count({ n: '*' });
    expect(Number(audit[0]!.n)).to.equal(3);
    const balance = await world.services.documents.getBalance(world.provider, a.accountId);
    expect(balance.balance).to.equal(1251n);
  });

  it('refuses a bad batch whole: nothing written, no number used', async () => {
    const a = await customer(world, 'Alpha');
    await failure(issue([
      { vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(1000n)] },
      { vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(-5000n)] },
    ]), 'INVALID_ARGUMENT', 'inputs[1].lines');
    expect(await world.deps.db('documents').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    const out = await issue([{ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(1000n)] }]);
    expect(out[0]!.number).to.equal('INV-000001');
    void toBigInt;
  });
});
