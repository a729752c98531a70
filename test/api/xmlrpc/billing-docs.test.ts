import { expect } from 'chai';
import { XMLRPC_FAULT_CODES } from '../../../src/api/api-errors';
import { XmlRpcDouble, type XmlRpcValue } from '../../../src/api/xmlrpc/codec';
import type { Actor } from '../../../src/context';
import { toNumber } from '../../../src/db/knex';
import { inTransaction } from '../../../src/db/transaction';
import { providerActor, startApiWorld, type ApiWorld } from '../../helpers/api';
import { bm, fault, result } from './client';

const INT_NULL = -2147483648;
const asText = (row: XmlRpcValue[]): XmlRpcValue[] => row.map((v) => (v instanceof XmlRpcDouble ? v.text : v));

/** Billing document methods of the BM gate through real XML-RPC bytes. */
describe('XML-RPC billing document methods', function () {
  this.timeout(60_000);
  let world: ApiWorld;
  let rpc: string;
  let provider: Actor;
  let customer: number;
  let invoiceId: number;
  let seq = 0;

  async function newCustomer(currency: string): Promise<number> {
    return world.server.services.accounts.create(provider, {
      type: 'customer',
      companyName: `Rpc Billing ${++seq}`,
      currency,
      address: { country: 'US' },
      contacts: { admin: { firstName: 'Rpc', lastName: 'Billing', email: `rpc-billing-${seq}@example.com` } },
    });
  }

  before(async () => {
    world = await startApiWorld({ demo: true });
    rpc = `${world.url}/RPC2`;
    provider = await providerActor(world);
    customer = await newCustomer('KWD');
    const now = world.server.services.deps.clock.now();
    [{ documentId: invoiceId }] = (await inTransaction(world.fresh.db, (tx) =>
      world.server.services.documents.issueInvoices(tx, now, [{ vendorId: provider.accountId, accountId: customer, currency: 'KWD', issueDate: now, lines: [{ kind: 'recurring', description: 'Hosting', quantity: '1', unitPrice: 12_345n, amount: 12_345n }] }]),
    )) as unknown as [{ documentId: number }];
  });
  after(async () => {
    await world?.close();
  });

  it('AccountBalanceAdjust_API: + raises the balance (debit memo), - lowers it (credit memo); <double> amounts in KWD', async () => {
    const [dm] = result(await bm(rpc, 'AccountBalanceAdjust_API', [customer, new XmlRpcDouble('1.5')])) as number[];
    const [cm] = result(await bm(rpc, 'AccountBalanceAdjust_API', [customer, new XmlRpcDouble('-0.250')])) as number[];
    const types = (await world.fresh.db('documents').whereIn('id', [dm!, cm!]).orderBy('id').pluck('type')) as string[];
    expect(types).to.deep.equal(['debit_memo', 'credit_memo']);
    // 12.345 + 1.500 - 0.250
    expect((await world.server.services.documents.getBalance(provider, customer)).balance).to.equal(13_595n);
    const f = fault(await bm(rpc, 'AccountBalanceAdjust_API', [customer, new XmlRpcDouble('0.0001')]));
    expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
  });

  it('GetAccountBalanceList: [AccountID, CompanyName, CurrencyID, Balance] of the vendor\'s customers', async () => {
    const rows = (result(await bm(rpc, 'GetAccountBalanceList', [provider.accountId, 1])) as XmlRpcValue[][]).map(asText);
    expect(rows.find((r) => r[0] === customer)).to.deep.equal([customer, 'Rpc Billing 1', 'KWD', '13.595']);
  });

  it('PaymentInfoGet_API: the 27 fields of a recorded payment, then of its refund', async () => {
    const pay = await world.server.services.documents.recordPayment(provider, { accountId: customer, amount: 5_000n, method: 'wire', reference: 'WIRE-1' });
    const info = result(await bm(rpc, 'PaymentInfoGet_API', [pay.documentId])) as XmlRpcValue[];
    expect(info).to.have.length(27);
    const t = asText(info);
    expect(t.slice(0, 11)).to.deep.equal([pay.documentId, pay.number, 50, 3000, 'KWD', '5.000', '0.000', '-5.000', '0.000', provider.accountId, customer]);
    expect(t[13]).to.equal(Math.floor(pay.issueDate.getTime() / 1000));
    expect([t[17], t[18], t[21], t[22], t[25], t[26]]).to.deep.equal([INT_NULL, 0, 'WIRE-1', pay.paymentId, 0, 3]);
    const refund = await world.server.services.documents.refundPayment(provider, { paymentDocumentId: pay.documentId });
    expect(asText(result(await bm(rpc, 'PaymentInfoGet_API', [pay.documentId])) as XmlRpcValue[])[3]).to.equal(5000);
    const r = asText(result(await bm(rpc, 'PaymentInfoGet_API', [refund.refundDocumentId!])) as XmlRpcValue[]);
    expect(r.slice(0, 3)).to.deep.equal([refund.refundDocumentId, refund.refundNumber, 70]);
    expect(fault(await bm(rpc, 'PaymentInfoGet_API', [invoiceId]))).to.deep.equal({ faultCode: XMLRPC_FAULT_CODES.NOT_FOUND, faultString: `Table Payment does not contain row with ID ${invoiceId}.` });
  });

  it('AppliedDocsListGet_API: what was applied to an invoice (Kind 2), sorted by SortNo', async () => {
    const usd = await newCustomer('USD');
    const now = world.server.services.deps.clock.now();
    const [inv] = await inTransaction(world.fresh.db, (tx) =>
      world.server.services.documents.issueInvoices(tx, now, [{ vendorId: provider.accountId, accountId: usd, currency: 'USD', issueDate: now, lines: [{ kind: 'recurring', description: 'Hosting', quantity: '1', unitPrice: 1000n, amount: 1000n }] }]),
    );
    const p1 = await world.server.services.documents.recordPayment(provider, { accountId: usd, amount: 600n, method: 'cash' });
    const p2 = await world.server.services.documents.recordPayment(provider, { accountId: usd, amount: 400n, method: 'check' });
    const rows = (result(await bm(rpc, 'AppliedDocsListGet_API', [inv!.documentId, 2, 4])) as XmlRpcValue[][]).map(asText);
    expect(rows.map((r) => r.slice(0, 5))).to.deep.equal([
      [p2.documentId, p2.number, 50, '4.00', 'USD'],
      [p1.documentId, p1.number, 50, '6.00', 'USD'],
    ]);
    const fromPayment = (result(await bm(rpc, 'AppliedDocsListGet_API', [p1.documentId, 2, 0])) as XmlRpcValue[][]).map(asText);
    expect(fromPayment.map((r) => r.slice(0, 4))).to.deep.equal([[inv!.documentId, inv!.number, 20, '6.00']]);
    expect(fault(await bm(rpc, 'AppliedDocsListGet_API', [inv!.documentId, 3, 0])).faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
  });

  it('AppliedDocsListGet_API with Kind 1: what was applied to an order\'s invoice', async () => {
    const db = world.fresh.db;
    const demo = (await db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id', 'vendor_id', 'currency')) as { id: number; vendor_id: number; currency: string };
    const plan = ((await db('plans').where({ name: 'Shared Hosting Basic' }).first('id')) as { id: number }).id;
    const period = ((await db('plan_periods').where({ plan_id: plan, duration: 1, unit: 'month' }).first('id')) as { id: number }).id;
    const order = await world.server.services.orders.place(provider, { accountId: demo.id, items: [{ planId: plan, periodId: period, parameters: { domain: 'rpc-applied.example' } }] });
    // The server's worker charges the order with the account's stored card: an invoice of the order, paid by a
    // payment document for the charge (docs/billing.md, "Orders in the ledger").
    let invoiceId: number | null = null;
    for (let i = 0; i < 200 && invoiceId === null; i++) {
      invoiceId = await world.server.services.documents.orderInvoiceId(order.orderId);
      if (invoiceId === null) await new Promise((r) => setTimeout(r, 25));
    }
    expect(invoiceId, 'the order is charged and invoiced by the worker').to.be.a('number');
    const charge = (await db('orders').where({ id: order.orderId }).first('payment_id')) as { payment_id: number };
    const pay = (await db('documents').where({ payment_id: charge.payment_id, type: 'payment' }).first('id', 'number')) as { id: number; number: string };
    const rows = (result(await bm(rpc, 'AppliedDocsListGet_API', [order.orderId, 1, 0])) as XmlRpcValue[][]).map(asText);
    expect(rows.map((r) => r.slice(0, 3))).to.deep.equal([[toNumber(pay.id), pay.number, 50]]);
    expect(fault(await bm(rpc, 'AppliedDocsListGet_API', [987654321, 1, 0])).faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
  });

  it('PayToolListForAccountGet_API: stored cards as brand, masked number and expiry, never the number', async () => {
    const gateway = ((await world.fresh.db('plugin_instances').where({ kind: 'payment' }).orderBy('id').first('id')) as { id: number }).id;
    const tool = await world.server.services.payments.storePayTool(provider, customer, gateway, { number: '4242424242424242', expMonth: 3, expYear: 2031, cvv: '123' }, { makeDefault: true });
    const reply = await bm(rpc, 'PayToolListForAccountGet_API', [customer]);
    expect(result(reply)).to.deep.equal([[tool.payToolId, 0, tool.brand, '**** 4242', '03/2031', 1, gateway]]);
    expect(reply.body).to.not.contain('4242424242424242');
  });
});
