import { expect } from 'chai';
import * as soap from 'soap';
import { XmlRpcDouble, type XmlRpcValue } from '../../../src/api/xmlrpc/codec';
import type { Actor } from '../../../src/context';
import { ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../../helpers/api';
import { APPROVE_FIRST, soapReads, textsOf } from '../../orders/fixtures';
import { bm, result } from '../xmlrpc/client';

/**
 * An order charges its tax at checkout (the demo: Bluebird Bakery, in the US, its vendor taxing the US 8.875 %;
 * a plan of 10.00 a month, no setup fee), placed over SOAP: the order's total is what the card is charged once,
 * its invoice carries the same tax and is paid by that charge, and a billing run afterwards charges nothing more.
 */
describe('orders charge their tax at checkout (SOAP PlaceOrder / GetOrder, XML-RPC GetOrder_API)', function () {
  this.timeout(120_000);
  let world: ApiWorld;
  let billing: soap.Client;
  let provider: Actor;
  let customerId: number;
  let vendorId: number;
  let payToolId: number;
  let planId: number;
  let periodId: number;
  let taxRuleId: number;
  /** The order of the first test (its subscription is renewed in the second). */
  let hostingOrderId: number;

  const db = () => world.fresh.db;
  const n = (v: unknown) => BigInt(String(v));
  const { untilStatus, balance: balanceOf } = soapReads(() => billing);
  const balance = () => balanceOf(customerId);
  const placeOrder = async (domain: string): Promise<{ orderId: number; total: string; status: string }> => {
    const [r] = await billing.PlaceOrderAsync({ accountId: customerId, payToolId, items: { item: [{ planId, periodId, parameters: { parameter: [{ name: 'domain', value: domain }] } }] } });
    return { orderId: Number(r.orderId), total: textsOf(billing.lastResponse as string, 'total')[0]!, status: r.status as string };
  };
  /** GetOrder's <total> as the bytes say it. */
  const wireTotal = async (orderId: number) => {
    await billing.GetOrderAsync({ orderId });
    return textsOf(billing.lastResponse as string, 'total')[0];
  };
  /** GetOrder_API's Total, TaxTotal, DiscountTotal, MerchTotal (positions 8..11), as <double> text. */
  const rpcMoney = async (orderId: number) => {
    const row = result(await bm(`${world.url}/RPC2`, 'GetOrder_API', [orderId])) as XmlRpcValue[];
    return row.slice(8, 12).map((v) => (v instanceof XmlRpcDouble ? v.text : v));
  };
  /** The order's gateway transactions: [kind, status, amount]. */
  const charges = async (orderId: number) =>
    ((await db()('payments').where({ order_id: orderId }).orderBy('id').select('kind', 'status', 'amount')) as { kind: string; status: string; amount: unknown }[]).map((p) => [p.kind, p.status, n(p.amount)]);
  /** The order's invoice: [subtotal, tax, total, open, status]. */
  const invoice = async (orderId: number) =>
    ((await db()('documents').where({ order_id: orderId, type: 'invoice' }).orderBy('id').select('subtotal', 'tax_total', 'total', 'open_amount', 'status')) as Record<string, unknown>[]).map((d) => [n(d.subtotal), n(d.tax_total), n(d.total), n(d.open_amount), d.status]);
  const accountPayments = async () => Number(((await db()('payments').where({ account_id: customerId }).count({ c: '*' })) as { c: unknown }[])[0]!.c);

  before(async () => {
    world = await startApiWorld({ demo: true });
    provider = await providerActor(world);
    const customer = (await db()('accounts').where({ company_name: 'Bluebird Bakery' }).first('id', 'vendor_id')) as { id: number; vendor_id: number };
    customerId = customer.id;
    vendorId = Number(customer.vendor_id);
    const { catalog, payments, taxRules } = world.server.services;
    taxRuleId = (await taxRules.create(provider, vendorId, { name: 'Sales tax 8.875%', country: 'US', ratePpm: 88_750 })).taxRuleId;
    const templateId = (await db()('plans').where({ name: 'Shared Hosting Basic' }).first('template_id')).template_id as number;
    planId = await catalog.createPlan(provider, { templateId: Number(templateId), name: 'Hosting 10', published: true, resellable: true, periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    periodId = (await db()('plan_periods').where({ plan_id: planId }).first('id')).id;
    const gatewayId = (await db()('plugin_instances').where({ name: 'sandbox-payments' }).first('id')).id;
    payToolId = (await payments.storePayTool(provider, customerId, gatewayId, { number: '4242424242424242', expMonth: 12, expYear: 2040, cvv: '123' })).payToolId;
    billing = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    billing.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
  });
  after(() => world?.close());

  it('exclusive 8.875 %: hosting 10.00 totals 10.89 (tax 0.89), charged 10.89 once; the invoice is paid; a billing run charges nothing more', async () => {
    const placed = await placeOrder('tax-excl.example');
    hostingOrderId = placed.orderId;
    // 10.00 x 8.875 % = 0.8875 -> 0.89 (half-up, as the invoice's line): total 10.00 + 0.89 = 10.89.
    expect(placed.total).to.equal('10.89');
    await untilStatus(placed.orderId, ['completed']);
    expect(await wireTotal(placed.orderId)).to.equal('10.89');
    // Total, TaxTotal, DiscountTotal, MerchTotal.
    expect(await rpcMoney(placed.orderId)).to.deep.equal(['10.89', '0.89', '0.00', '10.00']);
    expect(await charges(placed.orderId)).to.deep.equal([['purchase', 'success', 1089n]]);
    // The invoice: 10.00 + 0.89 tax = 10.89, all paid by the charge.
    expect(await invoice(placed.orderId)).to.deep.equal([[1000n, 89n, 1089n, 0n, 'paid']]);
    expect(await balance()).to.equal('0'); // 10.89 - 10.89
    const before = await accountPayments();
    await world.server.services.billingRun.run({ asOf: new Date(), startedBy: 'test' });
    expect(await accountPayments()).to.equal(before);
    expect(await charges(placed.orderId)).to.deep.equal([['purchase', 'success', 1089n]]);
    expect(await invoice(placed.orderId)).to.deep.equal([[1000n, 89n, 1089n, 0n, 'paid']]);
    expect(await balance()).to.equal('0');
  });

  it('a subscription order charges its tax too: RenewSubscription of that hosting totals 10.89, charged 10.89; its invoice is paid', async () => {
    const subscriptionId = Number((await db()('subscriptions').where({ order_id: hostingOrderId }).first('id')).id);
    const [r] = await billing.RenewSubscriptionAsync({ subscriptionId });
    const orderId = Number(r.orderId);
    await untilStatus(orderId, ['completed']);
    // The renewal fee 10.00 + 0.89 tax.
    expect(await wireTotal(orderId)).to.equal('10.89');
    expect(await rpcMoney(orderId)).to.deep.equal(['10.89', '0.89', '0.00', '10.00']);
    expect(await charges(orderId)).to.deep.equal([['purchase', 'success', 1089n]]);
    expect(await invoice(orderId)).to.deep.equal([[1000n, 89n, 1089n, 0n, 'paid']]);
    expect(await balance()).to.equal('0');
  });

  it('a cancellation refund gives back the tax paid at checkout: 10.00 - 2.00 not refundable = 8.00 -> 8.71 with its tax; balance 0', async () => {
    const subscriptionId = Number((await db()('subscriptions').where({ order_id: hostingOrderId }).first('id')).id);
    await db()('plan_periods').where({ id: periodId }).update({ refund_period_days: 14, non_refundable_amount: 200 });
    try {
      const [r] = await billing.CancelSubscriptionAsync({ subscriptionId, cancelType: 'refund', when: 'immediate' });
      const orderId = Number(r.orderId);
      await untilStatus(orderId, ['completed']);
      // The term's payment is the renewal's 10.89 (10.00 + 0.89, all of its tax paid): 8.00 x 10.89 / 10.00 =
      // 8.712 -> 8.71 refunded (before, with the tax left open, 8.00 only).
      const renewal = (await db()('orders').where({ type: 'renewal' }).whereIn('id', db()('order_items').where({ target_subscription_id: subscriptionId }).select('order_id')).first('id')) as { id: number };
      expect(await charges(Number(renewal.id))).to.deep.equal([
        ['purchase', 'success', 1089n],
        ['refund', 'success', 871n],
      ]);
      // Its credit memo carries the paid invoice's share of tax: 8.71 x 0.89 / 10.89 = 0.7118 -> 0.71, net 8.00; the
      // refund document takes it back. The renewal's invoice stays paid; nothing is open.
      const memos = (await db()('documents').where({ order_id: orderId, type: 'credit_memo' }).select('subtotal', 'tax_total', 'total', 'open_amount')) as Record<string, unknown>[];
      expect(memos.map((m) => [n(m.subtotal), n(m.tax_total), n(m.total), n(m.open_amount)])).to.deep.equal([[800n, 71n, 871n, 0n]]);
      expect(await invoice(Number(renewal.id))).to.deep.equal([[1000n, 89n, 1089n, 0n, 'paid']]);
      expect(await balance()).to.equal('0'); // 10.89 - 10.89 - 8.71 + 8.71
    } finally {
      await db()('plan_periods').where({ id: periodId }).update({ refund_period_days: 0, non_refundable_amount: 0 });
    }
  });

  it('inclusive 8.875 %: hosting 10.00 totals 10.00 with 0.82 of tax inside, charged 10.00; the invoice is paid', async () => {
    await world.server.services.taxRules.update(provider, taxRuleId, { inclusive: true });
    try {
      const placed = await placeOrder('tax-incl.example');
      // 10.00 / 1.08875 = 9.1848 -> 9.18 net, tax 0.82 inside the price: total 10.00.
      expect(placed.total).to.equal('10.00');
      await untilStatus(placed.orderId, ['completed']);
      expect(await rpcMoney(placed.orderId)).to.deep.equal(['10.00', '0.82', '0.00', '10.00']);
      expect(await charges(placed.orderId)).to.deep.equal([['purchase', 'success', 1000n]]);
      expect(await invoice(placed.orderId)).to.deep.equal([[918n, 82n, 1000n, 0n, 'paid']]);
      expect(await balance()).to.equal('0');
    } finally {
      await world.server.services.taxRules.update(provider, taxRuleId, { inclusive: false });
    }
  });

  it('a rule changed between placing and charging: the invoice carries the tax the order was priced with, so the charge pays it', async () => {
    await world.server.services.workflows.define(provider, { vendorAccountId: vendorId, orderType: 'sales', definition: APPROVE_FIRST });
    const placed = await placeOrder('tax-changed.example');
    expect(placed.status).to.equal('waiting_approval');
    expect(placed.total).to.equal('10.89');
    // 10 % now: the invoice would say 1.00 of tax, the order charged 0.89.
    await world.server.services.taxRules.update(provider, taxRuleId, { ratePpm: 100_000 });
    await billing.ApproveOrderAsync({ orderId: placed.orderId });
    await untilStatus(placed.orderId, ['completed']);
    expect(await charges(placed.orderId)).to.deep.equal([['purchase', 'success', 1089n]]);
    expect(await invoice(placed.orderId)).to.deep.equal([[1000n, 89n, 1089n, 0n, 'paid']]);
    expect(await balance()).to.equal('0');
  });
});
