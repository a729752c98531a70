import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import sinon from 'sinon';
import type { PaymentGateway } from '../../src/plugins/sdk';
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

  it('a credit memo against a paid invoice stays as credit on the account and pays the next invoice', async () => {
    const docs = world.services.documents;
    const a = await customer(world, 'Paid Up');
    const [inv] = await issue([{ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(1000n)] }]);
    await docs.recordPayment(world.provider, { accountId: a.accountId, amount: 1000n, method: 'check', invoiceId: inv!.documentId });
    expect((await docs.getDocument(world.provider, inv!.documentId)).status).to.equal('paid');
    const cm = await docs.issueCreditMemo(world.provider, { accountId: a.accountId, amount: 300n, description: 'Goodwill', invoiceId: inv!.documentId });
    expect([cm.total, cm.balanceEffect, cm.openAmount]).to.deep.equal([300n, -300n, 300n]);
    expect((await docs.getBalance(world.provider, a.accountId)).balance).to.equal(-300n);
    const [next] = await issue([{ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(500n)] }]);
    expect((await docs.getDocument(world.provider, next!.documentId)).openAmount).to.equal(200n);
    expect((await docs.getBalance(world.provider, a.accountId)).balance).to.equal(200n);
  });

  it('memos correct an invoice without touching it; applications and the balance add up', async () => {
    const docs = world.services.documents;
    await world.services.taxRules.create(world.provider, vendorId, { name: 'Tax 10%', country: 'US', ratePpm: 100_000 });
    const a = await customer(world, 'Alpha');
    const [inv1, inv2] = await issue([
      { vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, dueDate: new Date('2026-02-10T00:00:00Z'), lines: [line(1000n)] },
      { vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, dueDate: new Date('2026-02-05T00:00:00Z'), lines: [line(2000n)] },
    ]);
    expect([inv1!.total, inv2!.total]).to.deep.equal([1100n, 2200n]);
    const before = await docs.getDocument(world.provider, inv1!.documentId);

    // A credit memo correcting invoice 1: it carries the invoice's share of tax (550 x 100/1100 = 50).
    const cm = await docs.issueCreditMemo(world.provider, { accountId: a.accountId, amount: 550n, description: 'Service outage', invoiceId: inv1!.documentId });
    expect([cm.number, cm.subtotal, cm.taxTotal, cm.total, cm.balanceEffect, cm.openAmount]).to.deep.equal(['CM-000001', 500n, 50n, 550n, -550n, 0n]);
    await failure(docs.issueCreditMemo(world.provider, { accountId: a.accountId, amount: 551n, description: 'Too much', invoiceId: inv1!.documentId }), 'INVALID_ARGUMENT', 'amount');
    const after = await docs.getDocument(world.provider, inv1!.documentId);
    expect({ ...after, openAmount: before.openAmount, status: before.status }).to.deep.equal(before);
    expect(after.openAmount).to.equal(550n);

    // A debit memo (AdjustBalance +) and an offline payment applied oldest due first.
    const dm = await docs.adjustBalance(world.provider, { accountId: a.accountId, amount: 300n, description: 'Extra support hour' });
    expect([dm.type, dm.number, dm.balanceEffect]).to.deep.equal(['debit_memo', 'DM-000001', 300n]);
    expect((await docs.getBalance(world.provider, a.accountId)).balance).to.equal(1100n + 2200n - 550n + 300n);

    const pay = await docs.recordPayment(world.provider, { accountId: a.accountId, amount: 2500n, method: 'check', reference: 'CHK 1001' });
    expect([pay.number, pay.balanceEffect, pay.openAmount]).to.deep.equal(['PAY-000001', -2500n, 0n]);
    const apps = await docs.listApplications(world.provider, pay.documentId);
    // Oldest due first: invoice 2 (due Feb 5), then the debit memo (due Feb 8, the vendor's 7 days); invoice 1 (Feb 10) waits.
    expect(apps.map((x) => [x.targetNumber, x.amount])).to.deep.equal([['INV-000002', 2200n], ['DM-000001', 300n]]);
    expect((await docs.getDocument(world.provider, inv2!.documentId)).status).to.equal('paid');
    expect((await docs.getDocument(world.provider, inv1!.documentId)).openAmount).to.equal(550n);

    // Overpaying invoice 1 leaves a credit, and the next invoice takes it at once.
    await docs.recordPayment(world.provider, { accountId: a.accountId, amount: 1000n, method: 'wire', invoiceId: inv1!.documentId });
    let bal = await docs.getBalance(world.provider, a.accountId);
    expect([bal.balance, bal.unappliedCredits, bal.openDebits]).to.deep.equal([-450n, 450n, 0n]);
    const [inv3] = await issue([{ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(100n)] }]);
    expect((await docs.getDocument(world.provider, inv3!.documentId)).status).to.equal('paid');
    bal = await docs.getBalance(world.provider, a.accountId);
    const [{ s }] = (await world.deps.db('documents').where({ account_id: a.accountId }).sum({ s: 'balance_effect' })) as { s: unknown }[];
    expect(bal.balance).to.equal(toBigInt(s));
    expect([bal.balance, bal.unappliedCredits, bal.openDebits]).to.deep.equal([-340n, 340n, 0n]);

    // A refund takes back unapplied credit first; invoices stay immutable; refunds are capped.
    const pays = await docs.listDocuments(world.provider, { accountId: a.accountId, types: ['payment'] });
    const wire = pays.documents.find((d) => d.method === 'wire')!;
    await failure(docs.refundPayment(world.provider, { paymentDocumentId: wire.documentId, amount: 1001n }), 'INVALID_ARGUMENT', 'amount');
    const r = await docs.refundPayment(world.provider, { paymentDocumentId: wire.documentId, amount: 400n, reason: 'Goodwill' });
    expect([r.outcome, r.refundNumber, r.amount]).to.deep.equal(['refunded', 'RF-000001', 400n]);
    // 340 of the wire payment was still unapplied: the refund takes it, and 60 is owed again.
    bal = await docs.getBalance(world.provider, a.accountId);
    expect([bal.balance, bal.unappliedCredits, bal.openDebits]).to.deep.equal([60n, 0n, 60n]);
    const evs = (await world.deps.db('events').whereIn('name', ['credit_memo.issued', 'debit_memo.issued', 'payment.received', 'invoice.paid', 'refund.issued']).pluck('name')) as string[];
    expect(new Set(evs)).to.deep.equal(new Set(['credit_memo.issued', 'debit_memo.issued', 'payment.received', 'invoice.paid', 'refund.issued']));
  });

  it('the database itself refuses to change an issued invoice, its lines or its applications, or to delete them', async () => {
    const a = await customer(world, 'Alpha');
    const [inv] = await issue([{ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(1000n)] }]);
    await world.services.documents.recordPayment(world.provider, { accountId: a.accountId, amount: 400n, method: 'cash' });
    const db = world.deps.db;
    const refused = async (what: string, p: Promise<unknown>) => {
      let err: unknown;
      await p.catch((e: unknown) => (err = e));
      expect(String((err as Error | undefined)?.message), what).to.contain('immutable');
    };
    await refused('total', db('documents').where({ id: inv!.documentId }).update({ total: '1', balance_effect: '1' }));
    await refused('account', db('documents').where({ id: inv!.documentId }).update({ account_id: world.provider.accountId }));
    await refused('line', db('document_lines').where({ document_id: inv!.documentId }).update({ amount: '1' }));
    await refused('delete', db('documents').where({ id: inv!.documentId }).del());
    await refused('application', db('document_applications').update({ amount: '1' }));
    const doc = await world.services.documents.getDocument(world.provider, inv!.documentId);
    expect([doc.total, doc.openAmount, doc.lines[0]!.amount]).to.deep.equal([1000n, 600n, 1000n]);
  });

  it('scoping: another customer sees no document of this one', async () => {
    const a = await customer(world, 'Alpha');
    const b = await customer(world, 'Beta');
    const [inv] = await issue([{ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(1000n)] }]);
    await failure(world.services.documents.getDocument(b, inv!.documentId), 'NOT_FOUND');
    await failure(world.services.documents.getBalance(b, a.accountId), 'NOT_FOUND');
    await failure(world.services.documents.recordPayment(b, { accountId: a.accountId, amount: 1n, method: 'cash' }), 'NOT_FOUND');
    expect((await world.services.documents.listDocuments(b)).total).to.equal(0);
    expect((await world.services.documents.listDocuments(a)).total).to.equal(1);
  });

  it('the same idempotency key records one payment', async () => {
    const a = await customer(world, 'Alpha');
    const docs = world.services.documents;
    const one = await docs.recordPayment(world.provider, { accountId: a.accountId, amount: 700n, method: 'cash', idempotencyKey: 'k1' });
    const two = await docs.recordPayment(world.provider, { accountId: a.accountId, amount: 700n, method: 'cash', idempotencyKey: 'k1' });
    expect(two.documentId).to.equal(one.documentId);
    await failure(docs.recordPayment(world.provider, { accountId: a.accountId, amount: 701n, method: 'cash', idempotencyKey: 'k1' }), 'CONFLICT', 'idempotencyKey');
    expect((await docs.listDocuments(world.provider, { types: ['payment'] })).total).to.equal(1);
  });

  if (dialect === 'mysql') {
    it('gapless numbers under concurrency: 8 transactions at once each issue 25 invoices', async () => {
      const a = await customer(world, 'Alpha');
      const runs = Array.from({ length: 8 }, (_, k) => issue(Array.from({ length: 25 }, () => ({ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(BigInt(100 + k))] }))));
      const out = (await Promise.all(runs)).flat();
      const numbers = out.map((i) => Number(i.number.slice(4))).sort((x, y) => x - y);
      expect(numbers).to.deep.equal(Array.from({ length: 200 }, (_, i) => i + 1));
      // Each transaction got one consecutive block.
      for (let k = 0; k < 8; k++) {
        const mine = out.slice(k * 25, k * 25 + 25).map((i) => Number(i.number.slice(4)));
        expect(mine[24]! - mine[0]!).to.equal(24);
      }
    });
  }

  // Two open transactions at once: MariaDB only (SQLite has one writer and one connection).
  if (dialect === 'mysql') it('a credit memo sees a memo committed while its transaction was already open: an invoice is never credited above its total', async () => {
    const docs = world.services.documents;
    const a = await customer(world, 'Credited Twice');
    const [inv] = await issue([{ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(1000n)] }]);
    // The second credit's transaction (a saga step, say) has read something already when the first credit commits.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const second = world.deps.db.transaction(async (tx) => {
      await tx('documents').where({ id: inv!.documentId }).first('id');
      await gate;
      return docs.memoTx(tx, world.provider, AT, 'credit_memo', { accountId: a.accountId, amount: 600n, description: 'Second credit', invoiceId: inv!.documentId });
    });
    await inTransaction(world.deps.db, (tx) => docs.memoTx(tx, world.provider, AT, 'credit_memo', { accountId: a.accountId, amount: 600n, description: 'First credit', invoiceId: inv!.documentId }));
    release();
    // 600 + 600 would credit 1200 of a 1000 invoice: the second is refused with what is left (4.00).
    const e = await failure(second, 'INVALID_ARGUMENT', 'amount');
    expect(e.message).to.contain('At most 4.00 USD');
    const [{ s }] = (await world.deps.db('documents').where({ related_document_id: inv!.documentId, type: 'credit_memo' }).sum({ s: 'total' })) as { s: unknown }[];
    expect(toBigInt(s)).to.equal(600n);
  });

  it('concurrent payments and invoices on one account never apply more than a document holds', async () => {
    const a = await customer(world, 'Alpha');
    const docs = world.services.documents;
    await issue(Array.from({ length: 6 }, () => ({ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(100n)] })));
    await Promise.all([
      ...Array.from({ length: 6 }, (_, k) => docs.recordPayment(world.provider, { accountId: a.accountId, amount: 150n, method: 'cash', reference: `c${k}` })),
      issue(Array.from({ length: 3 }, () => ({ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(100n)] }))),
    ]);
    const rows = (await world.deps.db('documents').where({ account_id: a.accountId }).select('type', 'total', 'open_amount', 'balance_effect')) as { type: string; total: unknown; open_amount: unknown; balance_effect: unknown }[];
    for (const r of rows) expect(toBigInt(r.open_amount) >= 0n && toBigInt(r.open_amount) <= toBigInt(r.total), `${r.type} open ${String(r.open_amount)}`).to.equal(true);
    // 9 invoices of 100 = 900 owed, 6 x 150 = 900 paid: everything applied, nothing open.
    expect(rows.filter((r) => toBigInt(r.open_amount) > 0n)).to.deep.equal([]);
    const [{ s }] = (await world.deps.db('document_applications').sum({ s: 'amount' })) as { s: unknown }[];
    expect(toBigInt(s)).to.equal(900n);
    expect((await docs.getBalance(world.provider, a.accountId)).balance).to.equal(0n);
  });

  it('gapless numbers: a rolled-back transaction leaves no hole', async () => {
    const a = await customer(world, 'Alpha');
    await issue([{ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(1n)] }]);
    await world.deps.db.transaction(async (tx) => {
      await world.services.documents.issueInvoices(tx, AT, [{ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(1n)] }]);
      throw new Error('crash');
    }).catch(() => undefined);
    const [next] = await issue([{ vendorId, accountId: a.accountId, currency: 'USD', issueDate: AT, lines: [line(1n)] }]);
    expect(next!.number).to.equal('INV-000002');
  });
});

describe(`billing documents: PayInvoice through the sandbox gateway (${dialect})`, function () {
  this.timeout(60_000);
  let world: World;
  let vendorId: number;
  let gatewayInstanceId: number;
  let purchases: string[];

  beforeEach(async () => {
    world = await makeWorld({ start: AT.toISOString() });
    vendorId = world.provider.accountId;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostwright-billing-'));
    gatewayInstanceId = await world.services.pluginInstances.create(world.provider, { kind: 'payment', plugin: 'sandbox', name: 'cards', settings: { stateFile: path.join(dir, 'cards.json') } });
    purchases = [];
    const instances = world.services.pluginInstances;
    const original = instances.instantiate.bind(instances);
    // Counts what reaches the gateway; the gateway itself is the real sandbox plugin.
    sinon.stub(instances, 'instantiate').callsFake(async (ref: Parameters<typeof original>[0]) => {
      const gw = (await original(ref)) as unknown as PaymentGateway;
      return new Proxy(gw, {
        get(target, prop, recv) {
          const v = Reflect.get(target, prop, recv) as unknown;
          if (prop === 'purchase' && typeof v === 'function') {
            return (req: { idempotencyKey: string }) => {
              purchases.push(req.idempotencyKey);
              return (v as (r: unknown) => unknown).call(target, req);
            };
          }
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      }) as unknown as Awaited<ReturnType<typeof original>>;
    });
  });
  afterEach(async () => {
    sinon.restore();
    await world.close();
  });

  async function payer(cardNumber: string): Promise<{ c: Actor; invoiceId: number }> {
    const c = await customer(world, `Payer${cardNumber.slice(-4)}`);
    await world.services.payments.storePayTool(world.provider, c.accountId, gatewayInstanceId, { number: cardNumber, expMonth: 12, expYear: 2030, cvv: '123' }, { makeDefault: true });
    const [inv] = await inTransaction(world.deps.db, (tx) => world.services.documents.issueInvoices(tx, AT, [{ vendorId, accountId: c.accountId, currency: 'USD', issueDate: AT, lines: [line(1999n)] }]));
    return { c, invoiceId: inv!.documentId };
  }

  it('4242...: paid, a payment document applied, invoice.paid and the onInvoicePaid hook; the same key reaches the gateway once', async () => {
    const paid: number[] = [];
    world.services.documents.onInvoicePaid(async (tx, e) => {
      paid.push(e.documentId);
      expect((await tx('documents').where({ id: e.documentId }).first('status')).status).to.equal('paid');
    });
    const { c, invoiceId } = await payer('4242424242424242');
    const r1 = await world.services.documents.payInvoice(c, { invoiceId, idempotencyKey: 'pay-1' });
    const r2 = await world.services.documents.payInvoice(c, { invoiceId, idempotencyKey: 'pay-1' });
    expect(r1.outcome).to.equal('paid');
    expect(r2).to.deep.equal(r1);
    expect(purchases).to.have.length(1);
    expect(paid).to.deep.equal([invoiceId]);
    const inv = await world.services.documents.getDocument(c, invoiceId);
    expect([inv.status, inv.openAmount]).to.deep.equal(['paid', 0n]);
    const pay = await world.services.documents.getDocument(c, r1.paymentDocumentId!);
    expect([pay.type, pay.method, pay.paymentId, pay.total, pay.openAmount]).to.deep.equal(['payment', 'gateway', r1.paymentId, 1999n, 0n]);
    expect((await world.services.documents.getBalance(c, c.accountId)).balance).to.equal(0n);
    await failure(world.services.documents.payInvoice(c, { invoiceId }), 'NOT_ALLOWED', 'invoiceId');
    expect(purchases).to.have.length(1);

    // A refund through the gateway.
    const rf = await world.services.documents.refundPayment(world.provider, { paymentDocumentId: r1.paymentDocumentId!, amount: 999n, reason: 'Downgrade', idempotencyKey: 'rf-1' });
    const rf2 = await world.services.documents.refundPayment(world.provider, { paymentDocumentId: r1.paymentDocumentId!, amount: 999n, reason: 'Downgrade', idempotencyKey: 'rf-1' });
    expect(rf.outcome).to.equal('refunded');
    expect(rf2.refundDocumentId).to.equal(rf.refundDocumentId);
    const refunds = await world.deps.db('payments').where({ kind: 'refund' });
    expect(refunds).to.have.length(1);
    expect((await world.services.documents.getBalance(c, c.accountId)).balance).to.equal(999n);
  });

  it('a gateway payment without a payment document (an order charge) is refunded through its gateway only', async () => {
    const { c } = await payer('4242424242424242');
    const tool = (await world.services.payments.listPayTools(c, c.accountId))[0]!;
    const p = await world.services.payments.charge(world.provider, { accountId: c.accountId, amount: 500n, currency: 'USD', payTool: { payToolId: tool.payToolId }, description: 'Order 1' });
    const r = await world.services.documents.refundPayment(world.provider, { paymentId: p.paymentId, amount: 200n, idempotencyKey: 'r1' });
    expect([r.outcome, r.refundDocumentId, r.amount]).to.deep.equal(['refunded', null, 200n]);
    expect((await world.services.documents.refundPayment(world.provider, { paymentId: p.paymentId, amount: 200n, idempotencyKey: 'r1' })).paymentId).to.equal(r.paymentId);
    expect(await world.deps.db('payments').where({ kind: 'refund' }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);
    expect(await world.deps.db('documents').where({ type: 'refund' }).count({ n: '*' })).to.deep.equal([{ n: 0 }]);
  });

  it('4000000000000341 (stored, then declined): declined, nothing applied, invoice.payment_failed', async () => {
    const { c, invoiceId } = await payer('4000000000000341');
    const r = await world.services.documents.payInvoice(c, { invoiceId });
    expect([r.outcome, r.paymentDocumentId, r.failureCode]).to.deep.equal(['declined', null, 'card_declined']);
    const inv = await world.services.documents.getDocument(c, invoiceId);
    expect([inv.status, inv.openAmount]).to.deep.equal(['open', 1999n]);
    expect(await world.deps.db('document_applications').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    expect(await world.deps.db('events').where({ name: 'invoice.payment_failed' }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);
    expect(await world.deps.db('events').where({ name: 'payment.declined' }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);
    // A second try is a new attempt (another key), declined again.
    expect((await world.services.documents.payInvoice(c, { invoiceId })).outcome).to.equal('declined');
    expect(new Set(purchases).size).to.equal(2);
  });

  it('4000000000000119: unknown, nothing applied; once the reconciler settles it, settlePayments applies it', async () => {
    const { c, invoiceId } = await payer('4000000000000119');
    const r = await world.services.documents.payInvoice(c, { invoiceId, idempotencyKey: 'k' });
    expect([r.outcome, r.paymentDocumentId]).to.deep.equal(['unknown', null]);
    expect((await world.services.documents.getDocument(c, invoiceId)).status).to.equal('open');
    await failure(world.services.documents.payInvoice(c, { invoiceId }), 'CONFLICT', 'invoiceId');
    expect(await world.services.documents.settlePayments(world.provider)).to.deep.equal({ paid: 0, declined: 0, stillOpen: 1 });
    const rec = await world.services.payments.reconcilePending(world.provider);
    expect(rec.settled).to.equal(1);
    expect(await world.services.documents.settlePayments(world.provider)).to.deep.equal({ paid: 1, declined: 0, stillOpen: 0 });
    const inv = await world.services.documents.getDocument(c, invoiceId);
    expect([inv.status, inv.openAmount]).to.deep.equal(['paid', 0n]);
    // Asking again with the same key answers paid, without another charge.
    expect((await world.services.documents.payInvoice(c, { invoiceId, idempotencyKey: 'k' })).outcome).to.equal('paid');
    expect(purchases).to.have.length(1);
    expect(await world.services.documents.settlePayments(world.provider)).to.deep.equal({ paid: 0, declined: 0, stillOpen: 0 });
    expect(await world.deps.db('documents').where({ type: 'payment' }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);
  });
});
