import { expect } from 'chai';
import * as soap from 'soap';
import { XmlRpcDouble, type XmlRpcValue } from '../../src/api/xmlrpc/codec';
import type { Actor } from '../../src/context';
import { ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { bm, result } from '../api/xmlrpc/client';
import { soapReads, textsOf } from './fixtures';

const DAY = 86_400_000;
const asText = (row: XmlRpcValue[]): XmlRpcValue[] => row.map((v) => (v instanceof XmlRpcDouble ? v.text : v));

/**
 * An order credited back (a failed order's voided charge, a cancellation's refund, a held order approved with the
 * rest refunded) on an account that also owes an unrelated invoice: the order's credit memo is matched against the
 * refund document of the order's own payment, and the unrelated invoice stays open with all of it due. Read through
 * SOAP GetInvoice / GetAccountBalance and XML-RPC AppliedDocsListGet_API / PaymentInfoGet_API on a running server
 * (demo catalog; a plan of 10.00 a month, no tax; .io domains of 20.00 from a sandbox registrar without grace period).
 */
describe('an order credit settles its own refund first; an unrelated open invoice stays open (SOAP, XML-RPC)', function () {
  this.timeout(120_000);
  let world: ApiWorld;
  let billing: soap.Client;
  let rpc: string;
  let provider: Actor;
  let gatewayId: number;
  let planId: number;
  let periodId: number;
  let seq = 0;
  const DOMAIN_PRICE = 2000n;

  const db = () => world.fresh.db;
  const { untilStatus, balance } = soapReads(() => billing);

  /** A new customer with a stored card and an unrelated invoice of 5.00 it has not paid (due `dueInDays` from now). */
  async function customerOwing(dueInDays: number): Promise<{ accountId: number; payToolId: number; unrelated: number }> {
    const n = ++seq;
    const { accounts, payments, documents } = world.server.services;
    const accountId = await accounts.create(provider, {
      type: 'customer',
      companyName: `Credit Order ${n}`,
      currency: 'USD',
      address: { address1: '1 Ledger St', city: 'Springfield', country: 'US' },
      contacts: { admin: { firstName: 'Credit', lastName: `Order ${n}`, email: `credit-order-${n}@example.com`, phone: '+1.5555550100' } },
    });
    const payToolId = (await payments.storePayTool(provider, accountId, gatewayId, { number: '4242424242424242', expMonth: 12, expYear: 2040, cvv: '123' }, { makeDefault: true })).payToolId;
    const now = world.server.services.deps.clock.now();
    const inv = await documents.issueInvoice(provider, {
      accountId,
      issueDate: new Date(now.getTime() - 20 * DAY),
      dueDate: new Date(now.getTime() + dueInDays * DAY),
      lines: [{ kind: 'adjustment', description: 'Extra work', quantity: '1', unitPrice: 500n, amount: 500n }],
    });
    return { accountId, payToolId, unrelated: inv.documentId };
  }

  const place = async (accountId: number, payToolId: number, parameters: Record<string, string>, domains?: { action: 'register'; name: string }[]) =>
    (await world.server.services.orders.place(provider, { accountId, payToolId, items: [{ planId, periodId, parameters }], domains })).orderId;

  /** The order's credit memo and the refund document of its payment: ids, numbers and totals. */
  async function creditAndRefund(orderId: number, paidByOrderId = orderId) {
    const memo = (await db()('documents').where({ order_id: orderId, type: 'credit_memo' }).first('id', 'number', 'total')) as { id: number; number: string; total: unknown };
    const order = (await db()('orders').where({ id: paidByOrderId }).first('payment_id')) as { payment_id: number };
    const pay = (await db()('documents').where({ payment_id: order.payment_id, type: 'payment' }).first('id')) as { id: number };
    const refund = (await db()('documents').where({ type: 'refund', related_document_id: pay.id }).first('id', 'number', 'total')) as { id: number; number: string; total: unknown };
    expect(memo, 'the order has a credit memo').to.not.equal(undefined);
    expect(refund, 'the order has a refund document').to.not.equal(undefined);
    return { memo: { id: Number(memo.id), number: memo.number }, refund: { id: Number(refund.id), number: refund.number } };
  }

  /** [DocID, DocNum, DocType, AppliedAmount] of what was applied to or from a document (AppliedDocsListGet_API, Kind 2). */
  const applied = async (documentId: number) => (result(await bm(rpc, 'AppliedDocsListGet_API', [documentId, 2, 0])) as XmlRpcValue[][]).map((r) => asText(r).slice(0, 4));
  /** A payment or refund document's open amount (PaymentInfoGet_API's AvailBal). */
  const availBal = async (documentId: number) => asText(result(await bm(rpc, 'PaymentInfoGet_API', [documentId])) as XmlRpcValue[])[8];
  /** SOAP GetInvoice: [status, balanceDue as the bytes say it]. */
  const invoiceState = async (invoiceId: number) => {
    const [r] = await billing.GetInvoiceAsync({ invoiceId });
    return [r.invoice.status, textsOf(billing.lastResponse as string, 'balanceDue')[0]];
  };

  /** The order's refund is paid by its credit memo (and nothing else); the unrelated invoice is untouched and open. */
  async function settledOwnRefund(orderId: number, customer: { accountId: number; unrelated: number }, amount: string, unrelatedStatus: string, paidByOrderId = orderId) {
    const { memo, refund } = await creditAndRefund(orderId, paidByOrderId);
    expect(await applied(refund.id)).to.deep.include([memo.id, memo.number, 80, amount]);
    expect((await applied(refund.id)).filter((r) => r[2] !== 50)).to.deep.equal([[memo.id, memo.number, 80, amount]]);
    expect(await availBal(refund.id)).to.equal('0.00');
    expect(await applied(memo.id)).to.deep.include([refund.id, refund.number, 70, amount]);
    expect(await applied(customer.unrelated)).to.deep.equal([]);
    expect(await invoiceState(customer.unrelated)).to.deep.equal([unrelatedStatus, '5.00']);
    expect(await balance(customer.accountId)).to.equal('5');
  }

  before(async () => {
    world = await startApiWorld({ demo: true });
    rpc = `${world.url}/RPC2`;
    provider = await providerActor(world);
    const { catalog, pluginInstances, tlds } = world.server.services;
    gatewayId = (await db()('plugin_instances').where({ name: 'sandbox-payments' }).first('id')).id;
    const templateId = (await db()('plans').where({ name: 'Shared Hosting Basic' }).first('template_id')).template_id as number;
    planId = await catalog.createPlan(provider, { templateId: Number(templateId), name: 'Hosting 10', published: true, resellable: true, periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    periodId = (await db()('plan_periods').where({ plan_id: planId }).first('id')).id;
    await db()('plan_periods').where({ id: periodId }).update({ refund_period_days: 14, non_refundable_amount: 0 });
    const registrarId = await pluginInstances.create(provider, { kind: 'registrar', plugin: 'sandbox', name: 'io-credit', settings: { graceDays: 0, failures: { 'held-refused.io': 'register' } } });
    await tlds.create(provider, { tld: 'io', registrarInstanceId: registrarId, prices: [{ action: 'register', years: 1, amount: DOMAIN_PRICE }] });
    billing = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    billing.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
  });
  after(() => world?.close());

  it('a failed order (charge voided): its credit memo pays its refund document; the overdue unrelated invoice keeps its 5.00 due', async () => {
    // Overdue: it sorts before the refund document among the account's open debits.
    const c = await customerOwing(-5);
    const orderId = await place(c.accountId, c.payToolId, { domain: 'failed-credit.example', sandbox_fail: 'provision' });
    await untilStatus(orderId, ['provisioning_failed']);
    await settledOwnRefund(orderId, c, '10.00', 'overdue');
  });

  it('a cancellation refunded: the cancellation credit memo pays the refund document; the unrelated invoice (not yet due) stays open', async () => {
    const c = await customerOwing(10);
    const saleId = await place(c.accountId, c.payToolId, { domain: 'cancel-credit.example' });
    await untilStatus(saleId, ['completed']);
    const subscriptionId = Number((await db()('subscriptions').where({ order_id: saleId }).first('id')).id);
    const [r] = await billing.CancelSubscriptionAsync({ subscriptionId, cancelType: 'refund', when: 'immediate' });
    const orderId = Number(r.orderId);
    await untilStatus(orderId, ['completed']);
    await settledOwnRefund(orderId, c, '10.00', 'open', saleId);
  });

  it('a held order approved: the credit of what was not delivered pays the refund document; the overdue unrelated invoice keeps its 5.00 due', async () => {
    const c = await customerOwing(-5);
    const orderId = await place(c.accountId, c.payToolId, { domain: 'held-credit.example' }, [
      { action: 'register', name: 'held-kept.io' },
      { action: 'register', name: 'held-refused.io' },
    ]);
    await untilStatus(orderId, ['on_hold']);
    const [r] = await billing.ApproveOrderAsync({ orderId, comment: 'keeps the domain' });
    expect(r.order.status).to.be.oneOf(['completed', 'provisioned']);
    // Paid 10.00 + 2 x 20.00; the kept domain's 20.00 stays paid, 30.00 goes back.
    await settledOwnRefund(orderId, c, '30.00', 'overdue');
  });
});
