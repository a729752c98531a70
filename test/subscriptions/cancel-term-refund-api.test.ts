import { expect } from 'chai';
import sinon from 'sinon';
import * as soap from 'soap';
import { XmlRpcDouble, type XmlRpcValue } from '../../src/api/xmlrpc/codec';
import { ManualClock } from '../../src/clock';
import type { Actor } from '../../src/context';
import { toBigInt } from '../../src/db/knex';
import { derivedGatewayKey } from '../../src/payments/payment-records';
import { ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { eventually } from '../helpers/assertions';
import { bm, result } from '../api/xmlrpc/client';
import { soapReads } from '../orders/fixtures';

const asText = (row: XmlRpcValue[]): XmlRpcValue[] => row.map((v) => (v instanceof XmlRpcDouble ? v.text : v));

/**
 * A cancellation gives back every charge of the current term still in its refund period, not only the term's
 * sales (or renewal) charge: here an immediate upgrade's prorated charge too. On a running demo server with a
 * hand-moved clock, through SOAP (PlaceOrder, ChangeSubscriptionPlan, CancelSubscription, GetAccountBalance) and
 * XML-RPC (PlaceSubscriptionCancellationOrder_API, AppliedDocsListGet_API); the sandbox card gateway is real, a spy
 * counts the refunds that reach it. Tax: 8.875 % exclusive (the customer is in the US). Plans on the same template:
 * Hosting 10 (10.00 a month) and Hosting 20 (20.00 a month), each refundable for 14 days less 2.00.
 * Every term: [03-01 10:00, 04-01 10:00) = 31 days.
 */
describe('a cancellation refunds every payment of the current term in its refund period (SOAP, XML-RPC)', function () {
  this.timeout(120_000);
  const clock = new ManualClock('2026-03-01T10:00:00Z');
  let world: ApiWorld;
  let billing: soap.Client;
  let rpc: string;
  let provider: Actor;
  let gatewayId: number;
  let hosting10: { planId: number; periodId: number };
  let hosting20: { planId: number; periodId: number };
  /** Hosting 10 with mailboxes: 10 included, at most 100, 1.00 setup and 0.75 a month each above that. */
  let hosting10Mail: { planId: number; periodId: number };
  let mailboxes: number;
  /** The idempotency keys of the refunds that reached the gateway. */
  let gatewayRefunds: string[];
  let seq = 0;

  const db = () => world.fresh.db;
  const { untilStatus, balance } = soapReads(() => billing);
  const n = (v: unknown) => toBigInt(v);

  async function customer(): Promise<{ accountId: number; payToolId: number }> {
    const k = ++seq;
    const { accounts, payments } = world.server.services;
    const accountId = await accounts.create(provider, {
      type: 'customer',
      companyName: `Term Refund ${k}`,
      currency: 'USD',
      address: { address1: '1 Refund St', city: 'Springfield', country: 'US' },
      contacts: { admin: { firstName: 'Term', lastName: `Refund ${k}`, email: `term-refund-${k}@example.com`, phone: '+1.5555550100' } },
    });
    const payToolId = (await payments.storePayTool(provider, accountId, gatewayId, { number: '4242424242424242', expMonth: 12, expYear: 2040, cvv: '123' }, { makeDefault: true })).payToolId;
    return { accountId, payToolId };
  }

  /** A new customer buys `plan` on 03-01 over SOAP PlaceOrder (charged at once). */
  async function bought(domain: string, plan: { planId: number; periodId: number }) {
    const c = await customer();
    clock.set('2026-03-01T10:00:00Z');
    const [placed] = await billing.PlaceOrderAsync({ accountId: c.accountId, payToolId: c.payToolId, items: { item: [{ planId: plan.planId, periodId: plan.periodId, parameters: { parameter: [{ name: 'domain', value: domain }] } }] } });
    const saleId = Number(placed.orderId);
    await untilStatus(saleId, ['completed']);
    const subscriptionId = Number((await db()('subscriptions').where({ order_id: saleId }).first('id')).id);
    return { ...c, subscriptionId, saleId };
  }
  /** ChangeSubscriptionPlan (immediate) over SOAP on `at`, until the change order has completed. */
  async function changed(s: { subscriptionId: number; payToolId: number }, to: { planId: number; periodId: number }, at: string) {
    clock.set(at);
    const [r] = await billing.ChangeSubscriptionPlanAsync({ subscriptionId: s.subscriptionId, planId: to.planId, periodId: to.periodId, when: 'immediate', payToolId: s.payToolId });
    await untilStatus(Number(r.orderId), ['completed']);
    return Number(r.orderId);
  }
  /** Hosting 10 bought on 03-01 (10.00 + 0.89 tax = 10.89 charged), then upgraded to Hosting 20 on `upgradeAt`. */
  async function boughtAndUpgraded(domain: string, upgradeAt: string) {
    const s = await bought(domain, hosting10);
    return { ...s, changeId: await changed(s, hosting20, upgradeAt) };
  }

  /** The order's gateway transactions: [kind, status, amount]. */
  const charges = async (orderId: number) =>
    ((await db()('payments').where({ order_id: orderId }).orderBy('id').select('kind', 'status', 'amount')) as Record<string, unknown>[]).map((p) => [p.kind, p.status, n(p.amount)]);
  /** The account's documents: [type, total, open amount, status], in the order written. */
  const documents = async (accountId: number) =>
    ((await db()('documents').where({ account_id: accountId }).orderBy('id').select('id', 'number', 'type', 'total', 'open_amount', 'status', 'order_id', 'payment_id', 'related_document_id')) as Record<string, unknown>[]).map((d) => ({
      id: Number(d.id),
      number: String(d.number),
      type: String(d.type),
      total: n(d.total),
      open: n(d.open_amount),
      status: String(d.status),
      orderId: d.order_id === null ? null : Number(d.order_id),
      paymentId: d.payment_id === null ? null : Number(d.payment_id),
      related: d.related_document_id === null ? null : Number(d.related_document_id),
    }));
  /** [DocID, DocNum, DocType, AppliedAmount] of what was applied to or from a document (AppliedDocsListGet_API, Kind 2). */
  const applied = async (documentId: number) => (result(await bm(rpc, 'AppliedDocsListGet_API', [documentId, 2, 0])) as XmlRpcValue[][]).map((r) => asText(r).slice(0, 4));
  const paymentOf = async (orderId: number) => Number((await db()('orders').where({ id: orderId }).first('payment_id')).payment_id);

  /** Runs the cancellation's task again (as a retry after a crash would) and waits until it has finished. */
  async function rerunCancellationTask(orderId: number) {
    const task = (await db()('tasks').where({ kind: 'order.cancellation' }).whereRaw('payload like ?', [`%"orderId":${orderId}%`]).first('id')) as { id: number };
    expect(task, 'the cancellation task').to.not.equal(undefined);
    await db()('tasks').where({ id: task.id }).update({ status: 'pending', run_at: clock.now().getTime(), attempts: 0 });
    await eventually(async () => ((await db()('tasks').where({ id: task.id }).first('status')).status === 'done' ? true : undefined), `task ${task.id} done again`);
  }

  before(async () => {
    world = await startApiWorld({ demo: true, clock });
    rpc = `${world.url}/RPC2`;
    provider = await providerActor(world);
    const { catalog, taxRules } = world.server.services;
    gatewayId = Number((await db()('plugin_instances').where({ name: 'sandbox-payments' }).first('id')).id);
    const vendorId = Number((await db()('accounts').where({ type: 'provider' }).first('id')).id);
    await taxRules.create(provider, vendorId, { name: 'Sales tax 8.875%', country: 'US', ratePpm: 88_750 });
    const templateId = Number((await db()('plans').where({ name: 'Shared Hosting Basic' }).first('template_id')).template_id);
    mailboxes = Number((await db()('resources').where({ name: 'Mailboxes' }).first('id')).id);
    const plan = async (name: string, fee: bigint, rates: { resourceId: number; included: number; max: number; setupFee: bigint; recurringFee: bigint }[] = []) => {
      const planId = await catalog.createPlan(provider, { templateId, name, published: true, resellable: true, periods: [{ duration: 1, unit: 'month', recurringFee: fee }], rates });
      const periodId = Number((await db()('plan_periods').where({ plan_id: planId }).first('id')).id);
      await db()('plan_periods').where({ id: periodId }).update({ refund_period_days: 14, non_refundable_amount: 200 });
      return { planId, periodId };
    };
    hosting10 = await plan('Hosting 10', 1000n);
    hosting20 = await plan('Hosting 20', 2000n);
    hosting10Mail = await plan('Hosting 10 Mail', 1000n, [{ resourceId: mailboxes, included: 10, max: 100, setupFee: 100n, recurringFee: 75n }]);
    billing = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    billing.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
    // The gateway is the real sandbox plugin; the proxy sees every refund that reaches it.
    const instances = world.server.services.pluginInstances;
    const original = instances.instantiate.bind(instances);
    sinon.stub(instances, 'instantiate').callsFake(async (...args: Parameters<typeof original>) => {
      const plugin = (await original(...args)) as unknown as Record<string, unknown>;
      if (typeof plugin.refund !== 'function') return plugin as unknown as Awaited<ReturnType<typeof original>>;
      return new Proxy(plugin, {
        get(target, prop, recv) {
          const v = Reflect.get(target, prop, recv) as unknown;
          if (prop === 'refund') {
            return (req: { idempotencyKey: string }) => {
              gatewayRefunds.push(req.idempotencyKey);
              return (v as (r: unknown) => unknown).call(target, req);
            };
          }
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      }) as unknown as Awaited<ReturnType<typeof original>>;
    });
  });
  beforeEach(() => {
    gatewayRefunds = [];
  });
  after(async () => {
    sinon.restore();
    await world?.close();
  });

  it('bought 03-01, upgraded 03-04, canceled with refund 03-05: both payments refunded through the gateway, each once even when the task runs twice; the ledger balances', async () => {
    const s = await boughtAndUpgraded('both-refunded.example', '2026-03-04T10:00:00Z');
    // The upgrade on 03-04, 28 of 31 days left: credit 10.00 x 28/31 = 9.0322 -> -9.03, charge 20.00 x 28/31 =
    // 18.0645 -> 18.06; net 9.03, tax 9.03 x 8.875 % = 0.8014 -> 0.80: 9.83 charged.
    expect(await charges(s.saleId)).to.deep.equal([['purchase', 'success', 1089n]]);
    expect(await charges(s.changeId)).to.deep.equal([['purchase', 'success', 983n]]);
    expect(await balance(s.accountId)).to.equal('0');

    clock.set('2026-03-05T10:00:00Z');
    const [r] = await billing.CancelSubscriptionAsync({ subscriptionId: s.subscriptionId, cancelType: 'refund', when: 'immediate', reason: 'changed my mind' });
    const orderId = Number(r.orderId);
    await untilStatus(orderId, ['completed']);
    // Both payments are inside their 14 days. The sale: 10.00 less the 2.00 not refundable (taken once, from the
    // earliest payment) = 8.00, with its tax 8.00 x 10.89 / 10.00 = 8.712 -> 8.71. The upgrade: all of its 9.03 with
    // its tax 9.03 x 9.83 / 9.03 = 9.83. In all 8.71 + 9.83 = 18.54 (before: 8.71 only; the 9.83 was kept).
    expect(await charges(s.saleId)).to.deep.equal([
      ['purchase', 'success', 1089n],
      ['refund', 'success', 871n],
    ]);
    expect(await charges(s.changeId)).to.deep.equal([
      ['purchase', 'success', 983n],
      ['refund', 'success', 983n],
    ]);
    const [got] = await billing.GetOrderAsync({ orderId });
    expect(got.order).to.include({ type: 'cancellation', status: 'completed' });
    expect(billing.lastResponse).to.contain('<total>-18.54</total>');
    // One gateway refund per payment, each with its own key (order-N-refund-<payment>, hashed for the gateway).
    expect(gatewayRefunds).to.deep.equal([derivedGatewayKey(s.accountId, `order-${orderId}-refund-${await paymentOf(s.saleId)}`), derivedGatewayKey(s.accountId, `order-${orderId}-refund-${await paymentOf(s.changeId)}`)]);

    // The ledger: each refund has its credit memo (against the invoice its payment paid) and its refund document
    // (of that payment), the memo paying the refund. Balance: 10.89 - 10.89 + 9.83 - 9.83 - 8.71 + 8.71 - 9.83 +
    // 9.83 = 0; nothing open.
    const docs = await documents(s.accountId);
    expect(docs.map((d) => [d.type, d.total, d.open, d.status])).to.deep.equal([
      ['invoice', 1089n, 0n, 'paid'],
      ['payment', 1089n, 0n, 'issued'],
      ['invoice', 983n, 0n, 'paid'],
      ['payment', 983n, 0n, 'issued'],
      ['credit_memo', 871n, 0n, 'issued'],
      ['refund', 871n, 0n, 'issued'],
      ['credit_memo', 983n, 0n, 'issued'],
      ['refund', 983n, 0n, 'issued'],
    ]);
    const [saleInvoice, salePayment, changeInvoice, changePayment, memo1, refund1, memo2, refund2] = docs as [typeof docs[0], typeof docs[0], typeof docs[0], typeof docs[0], typeof docs[0], typeof docs[0], typeof docs[0], typeof docs[0]];
    expect([memo1.orderId, memo1.related, memo2.orderId, memo2.related]).to.deep.equal([orderId, saleInvoice.id, orderId, changeInvoice.id]);
    expect([refund1.related, refund2.related]).to.deep.equal([salePayment.id, changePayment.id]);
    expect(await applied(refund1.id)).to.deep.include([memo1.id, memo1.number, 80, '8.71']);
    expect(await applied(refund2.id)).to.deep.include([memo2.id, memo2.number, 80, '9.83']);
    expect(await balance(s.accountId)).to.equal('0');

    // The task again (a retry after a crash): the gateway is not asked again, nothing more is written.
    await rerunCancellationTask(orderId);
    expect(gatewayRefunds).to.have.length(2);
    expect(await charges(s.saleId)).to.have.length(2);
    expect(await charges(s.changeId)).to.have.length(2);
    expect(await documents(s.accountId)).to.have.length(8);
    expect(await balance(s.accountId)).to.equal('0');
  });

  it('bought 03-01, upgraded 03-12, canceled 03-20 (XML-RPC, CancelType 10): the sale is past its refund period, only the upgrade is refunded, in full', async () => {
    const s = await boughtAndUpgraded('one-refunded.example', '2026-03-12T10:00:00Z');
    // The upgrade on 03-12, 20 of 31 days left: credit 10.00 x 20/31 = 6.4516 -> -6.45, charge 20.00 x 20/31 =
    // 12.9032 -> 12.90; net 6.45, tax 6.45 x 8.875 % = 0.5724 -> 0.57: 7.02 charged.
    expect(await charges(s.changeId)).to.deep.equal([['purchase', 'success', 702n]]);

    clock.set('2026-03-20T10:00:00Z');
    const row = result(await bm(rpc, 'PlaceSubscriptionCancellationOrder_API', [s.subscriptionId, 10, 0, 'too late for the first'])) as XmlRpcValue[];
    const orderId = Number(row[1]);
    await untilStatus(orderId, ['completed']);
    // 19 days after the sale (past 14): its 10.89 is kept, and with it the 2.00 not refundable (kept once: 10.00 >=
    // 2.00). 8 days after the upgrade: all of its 6.45 with tax, 6.45 x 7.02 / 6.45 = 7.02.
    expect(await charges(s.saleId)).to.deep.equal([['purchase', 'success', 1089n]]);
    expect(await charges(s.changeId)).to.deep.equal([
      ['purchase', 'success', 702n],
      ['refund', 'success', 702n],
    ]);
    expect(gatewayRefunds).to.deep.equal([derivedGatewayKey(s.accountId, `order-${orderId}-refund-${await paymentOf(s.changeId)}`)]);
    const docs = await documents(s.accountId);
    expect(docs.map((d) => [d.type, d.total, d.open])).to.deep.equal([
      ['invoice', 1089n, 0n],
      ['payment', 1089n, 0n],
      ['invoice', 702n, 0n],
      ['payment', 702n, 0n],
      ['credit_memo', 702n, 0n],
      ['refund', 702n, 0n],
    ]);
    expect(docs[4]!.related).to.equal(docs[2]!.id);
    expect(await applied(docs[5]!.id)).to.deep.include([docs[4]!.id, docs[4]!.number, 80, '7.02']);
    // 10.89 - 10.89 + 7.02 - 7.02 - 7.02 + 7.02 = 0.
    expect(await balance(s.accountId)).to.equal('0');
    await rerunCancellationTask(orderId);
    expect(gatewayRefunds).to.have.length(1);
    expect(await documents(s.accountId)).to.have.length(6);
  });

  it('cancelType credit: the same 8.71 + 9.83 as credit memos against each invoice, no gateway refund; balance -18.54', async () => {
    const s = await boughtAndUpgraded('credited.example', '2026-03-04T10:00:00Z');
    clock.set('2026-03-05T10:00:00Z');
    const [r] = await billing.CancelSubscriptionAsync({ subscriptionId: s.subscriptionId, cancelType: 'credit', when: 'immediate' });
    const orderId = Number(r.orderId);
    await untilStatus(orderId, ['completed']);
    expect(gatewayRefunds).to.deep.equal([]);
    expect(await charges(s.saleId)).to.deep.equal([['purchase', 'success', 1089n]]);
    expect(await charges(s.changeId)).to.deep.equal([['purchase', 'success', 983n]]);
    // As the refund: 8.00 of the sale with its tax (8.71: 8.00 net + 8.71 x 0.89 / 10.89 = 0.7118 -> 0.71 tax) and
    // the upgrade's 9.83 (9.03 net + 0.80 tax), each written against the invoice its payment paid; both invoices
    // are paid, so the credit stays on the account: 10.89 - 10.89 + 9.83 - 9.83 - 8.71 - 9.83 = -18.54.
    const memos = (await db()('documents').where({ order_id: orderId, type: 'credit_memo' }).orderBy('id').select('subtotal', 'tax_total', 'total', 'open_amount', 'related_document_id')) as Record<string, unknown>[];
    const invoices = (await db()('documents').where({ type: 'invoice' }).whereIn('order_id', [s.saleId, s.changeId]).orderBy('id').select('id')) as { id: number }[];
    expect(memos.map((m) => [n(m.subtotal), n(m.tax_total), n(m.total), n(m.open_amount), Number(m.related_document_id)])).to.deep.equal([
      [800n, 71n, 871n, 871n, Number(invoices[0]!.id)],
      [903n, 80n, 983n, 983n, Number(invoices[1]!.id)],
    ]);
    expect(await balance(s.accountId)).to.equal('-18.54');
    const [got] = await billing.GetOrderAsync({ orderId });
    expect(got.order).to.include({ type: 'cancellation' });
    expect(billing.lastResponse).to.contain('<total>-18.54</total>');
  });

  it('resources bought mid-term: bought 03-01, 2 more mailboxes 03-04 (AddSubscriptionResources), canceled with refund 03-05: both payments refunded', async () => {
    const s = await bought('more-mail-refunded.example', hosting10Mail);
    clock.set('2026-03-04T10:00:00Z');
    const [added] = await billing.AddSubscriptionResourcesAsync({ subscriptionId: s.subscriptionId, resources: { resource: [{ resourceId: mailboxes, quantity: 2 }] }, payToolId: s.payToolId });
    const resourceId = Number(added.orderId);
    await untilStatus(resourceId, ['completed']);
    // 2 x 1.00 setup = 2.00 (tax 0.1775 -> 0.18), 2 x 0.75 x 28/31 = 1.3548 -> 1.35 (tax 0.1198 -> 0.12): 3.35 + 0.30 = 3.65.
    expect(await charges(resourceId)).to.deep.equal([['purchase', 'success', 365n]]);
    clock.set('2026-03-05T10:00:00Z');
    const [r] = await billing.CancelSubscriptionAsync({ subscriptionId: s.subscriptionId, cancelType: 'refund', when: 'immediate' });
    const orderId = Number(r.orderId);
    await untilStatus(orderId, ['completed']);
    // The sale: (10.00 - 2.00) x 10.89 / 10.00 = 8.712 -> 8.71. The mailboxes: 3.35 x 3.65 / 3.35 = 3.65 (the setup
    // fee too: the service is gone within the refund period). 8.71 + 3.65 = 12.36.
    expect(await charges(s.saleId)).to.deep.equal([
      ['purchase', 'success', 1089n],
      ['refund', 'success', 871n],
    ]);
    expect(await charges(resourceId)).to.deep.equal([
      ['purchase', 'success', 365n],
      ['refund', 'success', 365n],
    ]);
    expect(gatewayRefunds).to.have.length(2);
    await billing.GetOrderAsync({ orderId });
    expect(billing.lastResponse).to.contain('<total>-12.36</total>');
    const docs = await documents(s.accountId);
    expect(docs.filter((d) => d.orderId === orderId || d.type === 'refund').map((d) => [d.type, d.total, d.open])).to.deep.equal([
      ['credit_memo', 871n, 0n],
      ['refund', 871n, 0n],
      ['credit_memo', 365n, 0n],
      ['refund', 365n, 0n],
    ]);
    // 10.89 - 10.89 + 3.65 - 3.65 - 8.71 + 8.71 - 3.65 + 3.65 = 0.
    expect(await balance(s.accountId)).to.equal('0');
  });

  it("a downgrade's credit is not given twice: bought Hosting 20 03-01, downgraded 03-04 (credit 9.83), canceled with refund 03-05: 9.77 refunded", async () => {
    const s = await bought('downgraded.example', hosting20);
    // 20.00 + 1.78 tax = 21.78 charged.
    expect(await charges(s.saleId)).to.deep.equal([['purchase', 'success', 2178n]]);
    // The downgrade on 03-04, 28 of 31 days left: credit 20.00 x 28/31 = 18.0645 -> -18.06, charge 10.00 x 28/31 =
    // 9.0322 -> 9.03; -9.03, with the term invoice's tax 9.03 x 21.78 / 20.00 = 9.8336 -> 9.83: a credit memo of 9.83
    // (net 9.03), nothing charged.
    const changeId = await changed(s, hosting10, '2026-03-04T10:00:00Z');
    expect(await charges(changeId)).to.deep.equal([]);
    expect(await balance(s.accountId)).to.equal('-9.83');
    clock.set('2026-03-05T10:00:00Z');
    const [r] = await billing.CancelSubscriptionAsync({ subscriptionId: s.subscriptionId, cancelType: 'refund', when: 'immediate' });
    const orderId = Number(r.orderId);
    await untilStatus(orderId, ['completed']);
    // The sale's 20.00, less 2.00 not refundable, less the 9.03 already credited: 8.97, with its tax 8.97 x 21.78 /
    // 20.00 = 9.7683 -> 9.77 (before: 18.00 -> 19.60, the 9.03 given a second time).
    expect(await charges(s.saleId)).to.deep.equal([
      ['purchase', 'success', 2178n],
      ['refund', 'success', 977n],
    ]);
    expect(gatewayRefunds).to.have.length(1);
    // The downgrade's credit stays on the account: 21.78 - 21.78 - 9.83 - 9.77 + 9.77 = -9.83. Given back in all:
    // 9.83 + 9.77 = 19.60, what canceling Hosting 20 alone gives back ((20.00 - 2.00) x 21.78 / 20.00 = 19.602 -> 19.60).
    expect(await balance(s.accountId)).to.equal('-9.83');
    const memo = (await db()('documents').where({ order_id: orderId, type: 'credit_memo' }).first('subtotal', 'tax_total', 'total', 'open_amount')) as Record<string, unknown>;
    expect([n(memo.subtotal), n(memo.tax_total), n(memo.total), n(memo.open_amount)]).to.deep.equal([897n, 80n, 977n, 0n]);
  });
});
