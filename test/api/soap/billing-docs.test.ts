/**
 * Billing documents through the SOAP door: a real server with the demo (sandbox payment gateway), node-soap's
 * client, and the raw response bytes for money and element order.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import * as soap from 'soap';
import { ManualClock } from '../../../src/clock';
import type { Actor } from '../../../src/context';
import { accountWithApiUser, ADMIN_PASSWORD, billedCustomer, issuedInvoice, providerActor, startApiWorld, type ApiWorld } from '../../helpers/api';

const WSDL = fs.readFileSync(path.resolve(__dirname, '..', '..', '..', 'wsdl', 'BillingService.wsdl'), 'utf8');
type Reply = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function xsdSequence(type: string): { name: string; optional: boolean }[] {
  const start = WSDL.indexOf(`<xsd:complexType name="${type}">`);
  expect(start, `complexType ${type}`).to.be.greaterThan(-1);
  const block = WSDL.slice(start, WSDL.indexOf('</xsd:complexType>', start));
  return [...block.matchAll(/<xsd:element name="(\w+)"([^>]*)>/g)].map((m) => ({ name: m[1]!, optional: /minOccurs="0"/.test(m[2]!) }));
}

function childOrder(xml: string, local: string): string[][] {
  const found: string[][] = [];
  const stack: { name: string; children: string[] }[] = [];
  const tag = /<(\/?)(?:[\w.-]+:)?([\w.-]+)\b[^>]*?(\/?)>/g;
  for (let m = tag.exec(xml); m; m = tag.exec(xml)) {
    const [, close, name, selfClosing] = m;
    if (close) {
      const done = stack.pop();
      if (done && done.name === local) found.push(done.children);
      continue;
    }
    stack[stack.length - 1]?.children.push(name!);
    if (selfClosing) {
      if (name === local) found.push([]);
    } else stack.push({ name: name!, children: [] });
  }
  return found;
}

function expectSequence(xml: string, element: string, type: string): void {
  const seq = xsdSequence(type);
  const occurrences = childOrder(xml, element);
  expect(occurrences, `<${element}> in the response`).to.not.be.empty;
  for (const children of occurrences) {
    expect(children, `<${element}> against ${type}`).to.deep.equal(seq.map((s) => s.name).filter((n) => children.includes(n)));
    for (const s of seq) if (!s.optional) expect(children, `required ${type}.${s.name}`).to.include(s.name);
  }
}

const textsOf = (xml: string, local: string): string[] => [...xml.matchAll(new RegExp(`<(?:[\\w.-]+:)?${local}>([^<]*)</(?:[\\w.-]+:)?${local}>`, 'g'))].map((m) => m[1]!);

describe('SOAP billing documents (ListInvoices, GetInvoice, PayInvoice, RecordPayment, RefundPayment, ListPayments, GetAccountBalance, AdjustBalance)', function () {
  this.timeout(60_000);
  const clock = new ManualClock('2026-03-01T10:00:00Z');
  let world: ApiWorld;
  let admin: soap.Client;
  let provider: Actor;
  let gatewayId: number;

  async function call(op: string, args: Record<string, unknown>): Promise<Reply> {
    const fn = (admin as unknown as Record<string, (a: unknown) => Promise<[Reply]>>)[`${op}Async`];
    const [r] = await fn.call(admin, args);
    return r ?? {};
  }
  async function faultOf(op: string, args: Record<string, unknown>): Promise<{ code: string; field?: string; message: string }> {
    try {
      await call(op, args);
    } catch (e) {
      const xml = (e as { body?: string }).body ?? '';
      return { code: textsOf(xml, 'code')[0]!, field: textsOf(xml, 'field')[0], message: textsOf(xml, 'message')[0]! };
    }
    throw new Error(`${op} succeeded`);
  }

  /** The text of every `local` element of the last response: money exactly as on the wire. */
  const raw = (local: string): string[] => textsOf(admin.lastResponse as string, local);
  const balanceOf = async (accountId: number) => {
    const r = await call('GetAccountBalance', { accountId });
    return { balance: raw('balance')[0], currency: r.currency as string };
  };
  const adjust = async (args: Record<string, unknown>) => {
    const r = await call('AdjustBalance', args);
    return { balance: raw('balance')[0], currency: r.currency as string };
  };

  const customer = (currency: string, country: string, card?: string) => billedCustomer(world, provider, { label: 'Soap Billing', currency, country, card, gatewayId });
  const invoice = (accountId: number, currency: string, amounts: bigint[], due?: string) => issuedInvoice(world, provider, accountId, currency, amounts, due);

  before(async () => {
    world = await startApiWorld({ demo: true, clock });
    provider = await providerActor(world);
    gatewayId = ((await world.fresh.db('plugin_instances').where({ kind: 'payment' }).orderBy('id').first('id')) as { id: number }).id;
    await world.server.services.taxRules.create(provider, provider.accountId, { name: 'VAT 5%', country: 'KW', ratePpm: 50_000 });
    admin = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    admin.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
  });
  after(() => world.close());

  it('an account cannot record a payment, refund, memo or balance adjustment for itself (only a vendor above it): NOT_ALLOWED, nothing written', async () => {
    const own = await accountWithApiUser(world, 'customer', 'Self Payer');
    const inv = await invoice(own.accountId, 'USD', [5000n]);
    const self = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    self.setSecurity(new soap.BasicAuthSecurity(own.login, own.password));
    const selfFault = async (op: string, args: Record<string, unknown>) => {
      try {
        await (self as unknown as Record<string, (a: unknown) => Promise<unknown>>)[`${op}Async`]!(args);
      } catch (e) {
        const xml = (e as { body?: string }).body ?? '';
        return { code: textsOf(xml, 'code')[0], field: textsOf(xml, 'field')[0] };
      }
      throw new Error(`${op} succeeded for the account itself`);
    };
    const documentsBefore = await world.fresh.db('documents').where({ account_id: own.accountId }).count({ n: '*' });
    expect(await selfFault('RecordPayment', { accountId: own.accountId, amount: '50.00', currency: 'USD', method: 'cash', reference: 'self' })).to.deep.equal({ code: 'NOT_ALLOWED', field: 'accountId' });
    expect(await selfFault('AdjustBalance', { accountId: own.accountId, amount: '-50.00', currency: 'USD', reason: 'self credit' })).to.deep.equal({ code: 'NOT_ALLOWED', field: 'accountId' });
    expect(await world.fresh.db('documents').where({ account_id: own.accountId }).count({ n: '*' })).to.deep.equal(documentsBefore);
    expect((await balanceOf(own.accountId)).balance).to.equal('50.00');
    // The vendor (here the provider) records it.
    await call('RecordPayment', { accountId: own.accountId, amount: '50.00', currency: 'USD', method: 'cash', reference: 'desk', invoiceId: inv });
    expect((await balanceOf(own.accountId)).balance).to.equal('0.00');
    const payment = (await world.fresh.db('payments').where({ account_id: own.accountId }).orderBy('id', 'desc').first('id')) as { id: number };
    expect(await selfFault('RefundPayment', { paymentId: Number(payment.id), amount: '50.00', reason: 'self refund' })).to.include({ code: 'NOT_ALLOWED' });
    expect((await balanceOf(own.accountId)).balance).to.equal('0.00');
  });

  it('GetInvoice: KWD amounts with 3 decimals, tax and lines, in the XSD order', async () => {
    const c = await customer('KWD', 'KW');
    const id = await invoice(c, 'KWD', [10_500n, 1_001n]);
    const r = await call('GetInvoice', { invoiceId: id });
    const xml = admin.lastResponse as string;
    expectSequence(xml, 'invoice', 'Invoice');
    expectSequence(xml, 'line', 'InvoiceLine');
    // 10.500 + 1.001 = 11.501 net; 5% per line: 0.525 + 0.050 (0.05005 half-up) = 0.575
    expect([r.invoice.status, r.invoice.currency, raw('subtotal')[0], raw('tax')[0], raw('total')[0], raw('balanceDue')[0]]).to.deep.equal(['open', 'KWD', '11.501', '0.575', '12.076', '12.076']);
    expect(textsOf(xml, 'amount')).to.deep.equal(['10.500', '1.001', '0.575']);
    expect(r.invoice.number).to.match(/^INV-\d{6}$/);
    expect(raw('periodStart')).to.deep.equal(['2026-03-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z']);
    expect(await faultOf('GetInvoice', { invoiceId: 987654321 })).to.include({ code: 'NOT_FOUND' });
  });

  it('GetInvoice without a usable invoiceId names its own request element (not the service\'s documentId)', async () => {
    for (const args of [{}, { invoiceId: 0 }, { invoiceId: -5 }]) {
      expect(await faultOf('GetInvoice', args), JSON.stringify(args)).to.deep.equal({ code: 'INVALID_ARGUMENT', field: 'invoiceId', message: 'invoiceId must be a positive whole number.' });
    }
    expect(await faultOf('GetInvoice', { invoiceId: 'x1' })).to.deep.equal({ code: 'INVALID_ARGUMENT', field: 'invoiceId', message: 'invoiceId must be a whole number.' });
  });

  it('ListInvoices: by status (open, overdue, paid), without lines, paged', async () => {
    const c = await customer('USD', 'US');
    const overdue = await invoice(c, 'USD', [100n], '2026-02-20T00:00:00Z');
    const open = await invoice(c, 'USD', [200n], '2026-03-20T00:00:00Z');
    const paid = await invoice(c, 'USD', [300n], '2026-03-20T00:00:00Z');
    await world.server.services.documents.recordPayment(provider, { accountId: c, amount: 300n, method: 'wire', invoiceId: paid });
    const all = await call('ListInvoices', { accountId: c });
    const xml = admin.lastResponse as string;
    expect(Number(all.total)).to.equal(3);
    expect(xml).to.not.contain('<lines>');
    expectSequence(xml, 'invoice', 'Invoice');
    const ids = async (status: string) => {
      const r = await call('ListInvoices', { accountId: c, status });
      return ([] as Reply[]).concat(r.invoices?.invoice ?? []).map((i) => Number(i.invoiceId));
    };
    expect(await ids('overdue')).to.deep.equal([overdue]);
    expect(await ids('open')).to.deep.equal([open]);
    expect(await ids('paid')).to.deep.equal([paid]);
    expect(await ids('draft')).to.deep.equal([]);
    const page = await call('ListInvoices', { accountId: c, page: 2, pageSize: 2 });
    expect([Number(page.total), ([] as Reply[]).concat(page.invoices.invoice).length]).to.deep.equal([3, 1]);
    expect(await faultOf('ListInvoices', { accountId: c, status: 'late' })).to.include({ code: 'INVALID_ARGUMENT', field: 'status' });
  });

  it('PayInvoice: paid with the default card in the Payment XSD order; the same key answers the same payment; a declined card is PAYMENT_DECLINED with nothing applied', async () => {
    const c = await customer('USD', 'US', '4242424242424242');
    const id = await invoice(c, 'USD', [1999n]);
    const r1 = await call('PayInvoice', { invoiceId: id, idempotencyKey: 'soap-pay-1' });
    const xml = admin.lastResponse as string;
    expectSequence(xml, 'payment', 'Payment');
    expect([r1.payment.status, r1.payment.kind, raw('amount')[0], r1.payment.currency, r1.payment.method, Number(r1.payment.invoiceId)]).to.deep.equal(['success', 'payment', '19.99', 'USD', 'card', id]);
    expect(r1.payment.gateway).to.be.a('string').and.not.equal('');
    const r2 = await call('PayInvoice', { invoiceId: id, idempotencyKey: 'soap-pay-1' });
    expect(r2.payment.paymentId).to.equal(r1.payment.paymentId);
    expect(await world.fresh.db('payments').where({ account_id: c, kind: 'purchase' }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);
    expect((await call('GetInvoice', { invoiceId: id })).invoice.status).to.equal('paid');

    const d = await customer('USD', 'US', '4000000000000341');
    const unpaid = await invoice(d, 'USD', [500n]);
    const f = await faultOf('PayInvoice', { invoiceId: unpaid });
    expect(f.code).to.equal('PAYMENT_DECLINED');
    expect(f.message).to.contain('declined');
    const after = (await call('GetInvoice', { invoiceId: unpaid })).invoice;
    expect([after.status, raw('balanceDue')[0]]).to.deep.equal(['open', '5.00']);
    expect((await balanceOf(d)).balance).to.equal('5.00');
  });

  it('PayInvoice with a gateway that times out answers status unknown and applies nothing until the payment is settled; RefundPayment of a card payment goes through the gateway', async () => {
    const c = await customer('USD', 'US', '4000000000000119');
    const id = await invoice(c, 'USD', [2500n]);
    const r = await call('PayInvoice', { invoiceId: id, idempotencyKey: 'soap-timeout-1' });
    expect([r.payment.status, Number(r.payment.invoiceId)]).to.deep.equal(['unknown', id]);
    expect((await call('GetInvoice', { invoiceId: id })).invoice.status).to.equal('open');
    expect(await faultOf('PayInvoice', { invoiceId: id })).to.include({ code: 'CONFLICT', field: 'invoiceId' });
    await world.server.services.payments.reconcilePending(provider);
    // Asking again with the same key applies the now settled payment, without charging again.
    const again = await call('PayInvoice', { invoiceId: id, idempotencyKey: 'soap-timeout-1' });
    expect([again.payment.status, again.payment.paymentId]).to.deep.equal(['success', r.payment.paymentId]);
    expect((await call('GetInvoice', { invoiceId: id })).invoice.status).to.equal('paid');
    expect(await world.fresh.db('payments').where({ account_id: c, kind: 'purchase' }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);

    const rf = await call('RefundPayment', { paymentId: r.payment.paymentId, amount: '10.00', reason: 'downgrade', idempotencyKey: 'soap-rf-1' });
    expect([rf.payment.kind, rf.payment.status, rf.payment.method, raw('amount')[0]]).to.deep.equal(['refund', 'success', 'card', '10.00']);
    expect(rf.payment.gateway).to.be.a('string');
    expect((await balanceOf(c)).balance).to.equal('10.00');
  });

  it('RecordPayment, ListPayments, RefundPayment, GetAccountBalance and AdjustBalance (JPY, no decimals)', async () => {
    const c = await customer('JPY', 'JP');
    await invoice(c, 'JPY', [5000n]);
    expect(await balanceOf(c)).to.deep.equal({ balance: '5000', currency: 'JPY' });
    const rec = await call('RecordPayment', { accountId: c, amount: '6000', currency: 'JPY', method: 'wire', reference: 'WIRE-77', idempotencyKey: 'soap-rec-1' });
    expectSequence(admin.lastResponse as string, 'payment', 'Payment');
    expect([rec.payment.status, rec.payment.method, raw('amount')[0], rec.payment.reference, rec.payment.gateway]).to.deep.equal(['success', 'wire', '6000', 'WIRE-77', undefined]);
    const again = await call('RecordPayment', { accountId: c, amount: '6000', currency: 'JPY', method: 'wire', reference: 'WIRE-77', idempotencyKey: 'soap-rec-1' });
    expect(again.payment.paymentId).to.equal(rec.payment.paymentId);
    expect(await faultOf('RecordPayment', { accountId: c, amount: '6000.5', currency: 'JPY', method: 'wire', reference: 'x' })).to.include({ code: 'INVALID_ARGUMENT', field: 'amount' });
    expect(await faultOf('RecordPayment', { accountId: c, amount: '1', currency: 'JPY', method: 'card', reference: 'x' })).to.include({ code: 'INVALID_ARGUMENT' });
    expect(await balanceOf(c)).to.deep.equal({ balance: '-1000', currency: 'JPY' });

    const rf = await call('RefundPayment', { paymentId: rec.payment.paymentId, amount: '400', reason: 'overpaid' });
    expect([rf.payment.kind, rf.payment.status, raw('amount')[0], rf.payment.method]).to.deep.equal(['refund', 'success', '400', 'wire']);
    expect(await faultOf('RefundPayment', { paymentId: rec.payment.paymentId, amount: '5601' })).to.include({ code: 'INVALID_ARGUMENT', field: 'amount' });
    expect(await balanceOf(c)).to.deep.equal({ balance: '-600', currency: 'JPY' });

    const list = await call('ListPayments', { accountId: c });
    expectSequence(admin.lastResponse as string, 'payment', 'Payment');
    expect(Number(list.total)).to.equal(2);
    expect(([] as Reply[]).concat(list.payments.payment).map((p) => p.kind)).to.deep.equal(['refund', 'payment']);

    // AdjustBalance: + raises what the customer owes (a debit memo), - lowers it (a credit memo).
    expect(await adjust({ accountId: c, amount: '1000', currency: 'JPY', reason: 'Setup work', idempotencyKey: 'soap-adj-1' })).to.deep.equal({ balance: '400', currency: 'JPY' });
    expect(await adjust({ accountId: c, amount: '1000', currency: 'JPY', reason: 'Setup work', idempotencyKey: 'soap-adj-1' })).to.deep.equal({ balance: '400', currency: 'JPY' });
    expect(await adjust({ accountId: c, amount: '-150', currency: 'JPY', reason: 'Goodwill' })).to.deep.equal({ balance: '250', currency: 'JPY' });
    expect(await faultOf('AdjustBalance', { accountId: c, amount: '0', currency: 'JPY', reason: 'Nothing' })).to.include({ code: 'INVALID_ARGUMENT', field: 'amount' });
    const types = (await world.fresh.db('documents').where({ account_id: c }).orderBy('id').pluck('type')) as string[];
    expect(types).to.deep.equal(['invoice', 'payment', 'refund', 'debit_memo', 'credit_memo']);
    // GetAccount shows the same balance.
    await call('GetAccount', { accountId: c });
    expect(raw('balance')).to.deep.equal(['250']);
  });
});
