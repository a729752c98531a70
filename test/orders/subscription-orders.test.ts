import fs from 'node:fs';
import { expect } from 'chai';
import { toBigInt, toNumber } from '../../src/db/knex';
import { Worker } from '../../src/jobs/worker';
import { orderHandlers, subscriptionHooks } from '../../src/orders/engine';
import { subscriptionActionHandlers } from '../../src/subscriptions/service-actions';
import { OrdersService } from '../../src/orders/orders-service';
import { PromoCodesService } from '../../src/orders/promo-codes-service';
import { SubscriptionOrdersService } from '../../src/orders/subscription-orders';
import { WorkflowsService } from '../../src/orders/workflows-service';
import { SubscriptionsService } from '../../src/subscriptions/subscriptions-service';
import { failure } from '../helpers/assertions';
import { derivedGatewayKey } from '../../src/payments/payment-records';
import { makeWorld, type World } from '../helpers/world';
import { readSandboxStateFile } from '../../plugins/provisioning/sandbox';
import { drive, journal, makeCatalog, makeEngine, orderRow, type Catalog, type Engine } from './fixtures';

const DAY = 86_400_000;

describe('renewal and cancellation orders on existing subscriptions (sandbox gate and card gateway)', () => {
  let world: World;
  let engine: Engine;
  let cat: Catalog;
  let orders: OrdersService;
  let lifecycle: SubscriptionOrdersService;

  /** An active subscription of the Web plan (10.00 USD a month), bought and provisioned through a sales order. */
  async function activeSubscription(domain: string): Promise<{ subscriptionId: number; orderId: number }> {
    const placed = await orders.place(world.provider, { accountId: cat.customer.accountId, payToolId: cat.payToolId, items: [{ planId: cat.plans[0]!.planId, periodId: cat.plans[0]!.periodId, parameters: { domain } }] });
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, placed.orderId)).status).to.equal('CP');
    const sub = (await world.deps.db('subscriptions').where({ order_id: placed.orderId }).first('id')) as { id: number };
    return { subscriptionId: toNumber(sub.id), orderId: placed.orderId };
  }
  /** Makes the sandbox gate answer the subscription's later calls as `sandbox_fail` says (docs/plugins.md). */
  const sandboxFail = async (id: number, spec: string) => {
    const row = (await world.deps.db('subscriptions').where({ id }).first('parameters')) as { parameters: string };
    await world.deps.db('subscriptions').where({ id }).update({ parameters: JSON.stringify({ ...JSON.parse(row.parameters), sandbox_fail: spec }) });
  };
  const subRow = async (id: number) => {
    const r = (await world.deps.db('subscriptions').where({ id }).first()) as Record<string, unknown>;
    return { status: toNumber(r.status), serviceStatus: toNumber(r.service_status), expiration: toNumber(r.expiration_date), periodId: toNumber(r.period_id) };
  };
  const docsOf = async (accountId: number) =>
    ((await world.deps.db('documents').where({ account_id: accountId }).orderBy('id').select('id', 'type', 'total', 'balance_effect', 'open_amount', 'status', 'order_id', 'related_document_id', 'payment_id')) as Record<string, unknown>[]).map((r) => ({
      id: toNumber(r.id),
      type: String(r.type),
      total: toBigInt(r.total),
      balance_effect: toBigInt(r.balance_effect),
      open_amount: toBigInt(r.open_amount),
      status: String(r.status),
      order_id: r.order_id === null ? null : toNumber(r.order_id),
      related_document_id: r.related_document_id === null ? null : toNumber(r.related_document_id),
      payment_id: r.payment_id === null ? null : toNumber(r.payment_id),
    }));
  /** What GetAccountBalance answers, against the sum of the documents' balance effects. */
  const balanceOf = async (accountId: number) => {
    const shown = (await world.services.documents.getBalance(world.provider, accountId)).balance;
    const sum = (await docsOf(accountId)).reduce((a, x) => a + x.balance_effect, 0n);
    expect(shown).to.equal(sum);
    return shown;
  };
  const paymentsOf = async (orderId: number) => (await world.deps.db('payments').where({ order_id: orderId }).orderBy('id').select('kind', 'status', 'amount')).map((p: Record<string, unknown>) => [p.kind, p.status, toBigInt(p.amount)]);

  beforeEach(async () => {
    world = await makeWorld({ start: '2026-03-01T10:00:00Z' });
    const subscriptions = new SubscriptionsService(world.deps);
    engine = makeEngine(world.deps, world.services, { subscriptions: subscriptionHooks(world.deps, subscriptions, world.services.catalog) });
    // As on the server, one worker also runs the subscription actions (a renewal resumes an expired service).
    const handlers = {
      ...orderHandlers(world.deps, { tasks: world.services.tasks, pluginInstances: world.services.pluginInstances, payments: engine.payments, fraud: engine.fraud, subscriptions: subscriptionHooks(world.deps, subscriptions, world.services.catalog) }),
      ...subscriptionActionHandlers(world.deps, { pluginInstances: world.services.pluginInstances, subscriptions }),
    };
    engine.worker = new Worker(world.deps, world.services.tasks, handlers, { owner: 'lifecycle-test', concurrency: 1, leaseMs: 60_000, pollMs: 20 });
    cat = await makeCatalog(world.deps, world.services, world.provider, engine);
    const workflows = new WorkflowsService(world.deps);
    orders = new OrdersService(world.deps, { catalog: world.services.catalog, tasks: world.services.tasks, workflows, promoCodes: new PromoCodesService(world.deps) });
    lifecycle = new SubscriptionOrdersService(world.deps, { catalog: world.services.catalog, tasks: world.services.tasks, workflows });
    // The Web plan: renewal 12.00 (recurring 10.00), refundable for 14 days less 2.00.
    await world.deps.db('plan_periods').where({ id: cat.plans[0]!.periodId }).update({ renewal_fee: 1200, refund_period_days: 14, non_refundable_amount: 200 });
  });
  afterEach(async () => {
    await world?.close();
    if (cat) fs.rmSync(cat.dir, { recursive: true, force: true });
  });

  it('renews: a RN order priced from the renewal fee is charged, and the expiration moves one month on, with no gate call', async () => {
    const { subscriptionId } = await activeSubscription('renew.example');
    const before = await subRow(subscriptionId);
    expect(new Date(before.expiration).toISOString()).to.equal('2026-04-01T10:00:00.000Z');
    const gateCalls = journal(cat).length;

    world.clock.set(new Date('2026-03-25T08:00:00Z'));
    const { orderId } = await lifecycle.renew(cat.customer, subscriptionId, { idempotencyKey: 'renew-1' });
    const again = await lifecycle.renew(cat.customer, subscriptionId, { idempotencyKey: 'renew-1' });
    expect(again.orderId).to.equal(orderId);
    const order = await orders.get(world.provider, orderId);
    expect(order).to.include({ type: 'renewal', total: 1200n, currency: 'USD' });
    expect(order.orderNumber).to.match(/^RN\d{6}$/);
    expect(order.lines.map((l) => [l.kind, l.amount])).to.deep.equal([['renewal', 1200n]]);
    // A second renewal while this one is under way is refused.
    await failure(lifecycle.renew(cat.customer, subscriptionId), 'NOT_ALLOWED', 'subscriptionId');

    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    expect(await paymentsOf(orderId)).to.deep.equal([['purchase', 'success', 1200n]]);
    const after = await subRow(subscriptionId);
    expect(new Date(after.expiration).toISOString()).to.equal('2026-05-01T10:00:00.000Z');
    expect(after.status).to.equal(30);
    expect(journal(cat)).to.have.length(gateCalls);
    const renewed = await world.deps.db('events').where({ name: 'subscription.renewed', object_id: String(subscriptionId) });
    expect(renewed).to.have.length(1);
  });

  it('renews an expired subscription whose service was stopped: extended, and resumed through the gate', async () => {
    const { subscriptionId } = await activeSubscription('expired.example');
    world.clock.set(new Date('2026-04-03T00:00:00Z'));
    await world.deps.db('subscriptions').where({ id: subscriptionId }).update({ status: 50, service_status: 30 });
    const { orderId } = await lifecycle.renew(world.provider, subscriptionId);
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    const after = await subRow(subscriptionId);
    expect({ status: after.status, serviceStatus: after.serviceStatus }).to.deep.equal({ status: 30, serviceStatus: 50 });
    expect(new Date(after.expiration).toISOString()).to.equal('2026-05-01T10:00:00.000Z');
    expect(journal(cat).map((e) => e.action)).to.deep.equal(['provision', 'resume']);
  });

  it('refuses to renew a canceled subscription, another account\'s, or with a period of another plan', async () => {
    const { subscriptionId } = await activeSubscription('refuse.example');
    await failure(lifecycle.renew(world.provider, subscriptionId, { periodId: cat.plans[1]!.periodId }), 'INVALID_ARGUMENT', 'periodId');
    const stranger = { ...cat.customer, accountId: 999999, accountPath: '/999999/' };
    await failure(lifecycle.renew(stranger, subscriptionId), 'NOT_FOUND');
    await world.deps.db('subscriptions').where({ id: subscriptionId }).update({ status: 70 });
    const e = await failure(lifecycle.renew(world.provider, subscriptionId), 'NOT_ALLOWED', 'subscriptionId');
    expect(e.message).to.contain('canceled (70)');
  });

  it('cancels immediately with a refund inside the refund period: terminated through the gate, 10.00 - 2.00 refunded to the original payment', async () => {
    const { subscriptionId, orderId: salesId } = await activeSubscription('refund.example');
    world.clock.set(new Date(world.clock.now().getTime() + 3 * DAY));
    const { orderId } = await lifecycle.cancel(cat.customer, subscriptionId, { cancelType: 'refund', when: 'immediate', reason: 'moving away' });
    const order = await orders.get(world.provider, orderId);
    expect(order).to.include({ type: 'cancellation', total: -800n, comment: 'moving away' });
    expect(order.orderNumber).to.match(/^CL/);
    expect(order.lines.map((l) => [l.kind, l.amount])).to.deep.equal([['refund', -800n]]);
    await drive(world.deps, world.clock, engine.worker);
    const row = await orderRow(world.deps.db, orderId);
    expect(row.status).to.equal('CP');
    expect(await subRow(subscriptionId)).to.include({ status: 70, serviceStatus: 90 });
    expect(journal(cat).map((e) => e.action)).to.deep.equal(['provision', 'terminate']);
    expect(await paymentsOf(salesId)).to.deep.equal([
      ['purchase', 'success', 1000n],
      ['refund', 'success', 800n],
    ]);
    const history = (await orders.get(world.provider, orderId)).history.map((h) => h.comment).join('\n');
    expect(history).to.match(/Subscription \d+ canceled\. Refunded 8\.00 USD of payment \d+/);
    // In the ledger: the sales order's invoice and payment, then a credit memo of 8.00 against the invoice (the
    // cancellation order's) and a refund document of the payment (the gateway's refund transaction), which takes
    // the credit back. Balance = sum of the documents = 1000 - 1000 - 800 + 800 = 0; nothing left open.
    const docs = await docsOf(cat.customer.accountId);
    expect(docs.map((x) => [x.type, x.total, x.balance_effect, x.open_amount, x.status])).to.deep.equal([
      ['invoice', 1000n, 1000n, 0n, 'paid'],
      ['payment', 1000n, -1000n, 0n, 'issued'],
      ['credit_memo', 800n, -800n, 0n, 'issued'],
      ['refund', 800n, 800n, 0n, 'issued'],
    ]);
    expect(docs[2]).to.include({ order_id: orderId, related_document_id: docs[0]!.id });
    const refundTx = (await world.deps.db('payments').where({ kind: 'refund' }).first('id')) as { id: number };
    expect(docs[3]).to.include({ related_document_id: docs[1]!.id, payment_id: toNumber(refundTx.id) });
    expect(await balanceOf(cat.customer.accountId)).to.equal(0n);
    // A repeat of the cancellation task writes nothing more.
    const task = (await world.deps.db('tasks').where({ kind: 'order.cancellation' }).first('id')) as { id: number };
    await world.deps.db('tasks').where({ id: task.id }).update({ status: 'pending', run_at: world.clock.now().getTime() });
    await drive(world.deps, world.clock, engine.worker);
    expect(await docsOf(cat.customer.accountId)).to.have.length(4);
    expect(await world.deps.db('events').where({ name: 'subscription.canceled', object_id: String(subscriptionId) })).to.have.length(1);
  });

  it('still cancels when the payment was refunded by hand meanwhile, and says the refund is for an operator to settle', async () => {
    const { subscriptionId, orderId: salesId } = await activeSubscription('manual.example');
    const { orderId } = await lifecycle.cancel(world.provider, subscriptionId, { cancelType: 'refund', when: 'immediate' });
    const payment = (await world.deps.db('orders').where({ id: salesId }).first('payment_id')) as { payment_id: number };
    await engine.payments.refund(world.provider, toNumber(payment.payment_id), { reason: 'by hand' });
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    expect(await subRow(subscriptionId)).to.include({ status: 70, serviceStatus: 90 });
    const history = (await orders.get(world.provider, orderId)).history.map((h) => h.comment).join('\n');
    expect(history).to.match(/could not be refunded \(.*already refunded in full.*\); refund it by hand/);
    expect(await paymentsOf(salesId)).to.deep.equal([
      ['purchase', 'success', 1000n],
      ['refund', 'success', 1000n],
    ]);
  });

  it('a cancellation order placed before refunds were per payment (no details.refunds) refunds its one payment with its one key order-N-refund', async () => {
    const { subscriptionId, orderId: salesId } = await activeSubscription('legacy.example');
    const { orderId } = await lifecycle.cancel(world.provider, subscriptionId, { cancelType: 'refund', when: 'immediate' });
    // As such an order was written: the amount and the payment, without the list of parts.
    const item = (await world.deps.db('order_items').where({ order_id: orderId }).first('id', 'details')) as { id: number; details: string };
    const { refunds, ...legacy } = JSON.parse(item.details) as Record<string, unknown>;
    expect(refunds).to.have.length(1);
    await world.deps.db('order_items').where({ id: item.id }).update({ details: JSON.stringify(legacy) });
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    expect(await paymentsOf(salesId)).to.deep.equal([
      ['purchase', 'success', 1000n],
      ['refund', 'success', 800n],
    ]);
    const refund = (await world.deps.db('payments').where({ order_id: salesId, kind: 'refund' }).first('idempotency_key')) as { idempotency_key: string };
    expect(refund.idempotency_key).to.equal(derivedGatewayKey(cat.customer.accountId, `order-${orderId}-refund`));
    expect(await balanceOf(cat.customer.accountId)).to.equal(0n);
  });

  it('gives nothing back after the refund period, and records a credit (order.credit_due, a credit line) for cancelType credit', async () => {
    const late = await activeSubscription('late.example');
    world.clock.set(new Date(world.clock.now().getTime() + 20 * DAY));
    const none = await lifecycle.cancel(world.provider, late.subscriptionId, { cancelType: 'refund', when: 'immediate' });
    expect((await orders.get(world.provider, none.orderId)).total).to.equal(0n);
    await drive(world.deps, world.clock, engine.worker);
    expect(await paymentsOf(late.orderId)).to.deep.equal([['purchase', 'success', 1000n]]);

    const credited = await activeSubscription('credit.example');
    const { orderId } = await lifecycle.cancel(world.provider, credited.subscriptionId, { cancelType: 'credit', when: 'immediate' });
    const order = await orders.get(world.provider, orderId);
    expect(order.lines.map((l) => [l.kind, l.amount])).to.deep.equal([['credit', -800n]]);
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    const due = (await world.deps.db('events').where({ name: 'order.credit_due', object_id: String(orderId) })) as { payload: string }[];
    expect(due).to.have.length(1);
    expect(JSON.parse(due[0]!.payload)).to.include({ amount: '800', currency: 'USD', subscriptionId: credited.subscriptionId });
    expect(await paymentsOf(credited.orderId)).to.deep.equal([['purchase', 'success', 1000n]]);
    // The credit is a credit memo left on the account: two paid invoices and payments, -8.00 of credit.
    const docs = await docsOf(cat.customer.accountId);
    expect(docs.map((x) => [x.type, x.total, x.open_amount])).to.deep.equal([
      ['invoice', 1000n, 0n],
      ['payment', 1000n, 0n],
      ['invoice', 1000n, 0n],
      ['payment', 1000n, 0n],
      ['credit_memo', 800n, 800n],
    ]);
    expect(await balanceOf(cat.customer.accountId)).to.equal(-800n); // 1000 - 1000 + 1000 - 1000 - 800
  });

  it('cancels at the end of the term: the order completes now, the service is terminated at the expiration date', async () => {
    const { subscriptionId } = await activeSubscription('term.example');
    const { orderId } = await lifecycle.cancel(world.provider, subscriptionId, { cancelType: 'refund', when: 'end_of_term' });
    expect((await orders.get(world.provider, orderId)).total).to.equal(0n);
    // Run what is due now only: the order completes and the cancellation waits for its date.
    for (let i = 0; i < 20; i++) await engine.worker.runOnce();
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    expect(await subRow(subscriptionId)).to.include({ status: 30, serviceStatus: 50 });
    const scheduled = (await world.deps.db('tasks').where({ kind: 'subscription.scheduled_cancel' }).first('run_at', 'status')) as { run_at: number; status: string };
    expect(new Date(toNumber(scheduled.run_at)).toISOString()).to.equal('2026-04-01T10:00:00.000Z');
    await drive(world.deps, world.clock, engine.worker);
    expect(await subRow(subscriptionId)).to.include({ status: 70, serviceStatus: 90 });
    expect(journal(cat).map((e) => e.action)).to.deep.equal(['provision', 'terminate']);
  });

  it('fails a cancellation whose gate refuses the terminate, leaving the subscription as it was', async () => {
    const { subscriptionId } = await activeSubscription('stuck.example');
    await sandboxFail(subscriptionId, 'terminate');
    const { orderId } = await lifecycle.cancel(world.provider, subscriptionId, { cancelType: 'none', when: 'immediate' });
    await drive(world.deps, world.clock, engine.worker);
    const order = await orderRow(world.deps.db, orderId);
    expect(order.status).to.equal('PF');
    expect(order.failure_reason).to.match(/could not be canceled: service gate 'sandbox' failed/);
    expect(await subRow(subscriptionId)).to.include({ status: 30, serviceStatus: 50 });
  });

  it('cancels when the gate answers the terminate NOT_FOUND (the service is gone there already): nothing is left to remove', async () => {
    const { subscriptionId } = await activeSubscription('gone.example');
    await sandboxFail(subscriptionId, 'terminate:not_found');
    const { orderId } = await lifecycle.cancel(world.provider, subscriptionId, { cancelType: 'none', when: 'immediate' });
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    expect(await subRow(subscriptionId)).to.include({ status: 70, serviceStatus: 90 });
    // The sandbox refused it (nothing performed): only the provision is in its journal.
    expect(journal(cat).map((e) => e.action)).to.deep.equal(['provision']);
  });
  it('changes plan immediately: prorated by the exact share of the term left (credit old, charge new, half-up per line), charged, changeLimits through the gate, then the subscription is on the new plan', async () => {
    const { subscriptionId } = await activeSubscription('upgrade.example');
    // 31-day term (03-01 10:00 to 04-01 10:00); 10 days later 21/31 of it is left.
    world.clock.set(new Date('2026-03-11T10:00:00Z'));
    const mail = cat.plans[1]!;
    const { orderId } = await lifecycle.change(cat.customer, subscriptionId, { planId: mail.planId, periodId: mail.periodId, when: 'immediate' });
    const order = await orders.get(world.provider, orderId);
    expect(order.orderNumber).to.match(/^CH/);
    // 1000 * 21/31 = 677.42 -> 677 credited; 2000 * 21/31 = 1354.84 -> 1355 charged.
    expect(order.lines.map((l) => [l.kind, l.amount])).to.deep.equal([
      ['credit', -677n],
      ['recurring', 1355n],
    ]);
    expect(order.total).to.equal(678n);
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    expect(await paymentsOf(orderId)).to.deep.equal([['purchase', 'success', 678n]]);
    expect(journal(cat).map((e) => e.action)).to.deep.equal(['provision', 'changeLimits']);
    const after = (await world.deps.db('subscriptions').where({ id: subscriptionId }).first('plan_id', 'period_id', 'expiration_date')) as Record<string, unknown>;
    expect([toNumber(after.plan_id), toNumber(after.period_id)]).to.deep.equal([mail.planId, mail.periodId]);
    expect(new Date(toNumber(after.expiration_date)).toISOString()).to.equal('2026-04-01T10:00:00.000Z');
    expect(await world.deps.db('events').where({ name: 'subscription.plan_changed', object_id: String(subscriptionId) })).to.have.length(1);

    // And back down: a negative total is a credit (order.credit_due), nothing is charged.
    world.clock.set(new Date('2026-03-21T10:00:00Z'));
    const web = cat.plans[0]!;
    const down = await lifecycle.change(cat.customer, subscriptionId, { planId: web.planId, periodId: web.periodId, when: 'immediate' });
    const downOrder = await orders.get(world.provider, down.orderId);
    // 11/31 left: 2000 * 11/31 = 709.68 -> 710 credited; 1000 * 11/31 = 354.84 -> 355 charged.
    expect(downOrder.lines.map((l) => [l.kind, l.amount])).to.deep.equal([
      ['credit', -710n],
      ['recurring', 355n],
    ]);
    expect(downOrder.total).to.equal(-355n);
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, down.orderId)).status).to.equal('CP');
    expect(await paymentsOf(down.orderId)).to.deep.equal([]);
    const due = (await world.deps.db('events').where({ name: 'order.credit_due', object_id: String(down.orderId) })) as { payload: string }[];
    expect(JSON.parse(due[0]!.payload)).to.include({ amount: '355' });
  });

  it('changes plan at the end of the term: nothing charged now, the gate and the subscription change at the expiration date', async () => {
    const { subscriptionId } = await activeSubscription('later.example');
    const dns = cat.plans[2]!;
    const { orderId } = await lifecycle.change(world.provider, subscriptionId, { planId: dns.planId, periodId: dns.periodId, when: 'end_of_term' });
    expect((await orders.get(world.provider, orderId)).total).to.equal(0n);
    for (let i = 0; i < 20; i++) await engine.worker.runOnce();
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    expect(toNumber(((await world.deps.db('subscriptions').where({ id: subscriptionId }).first('plan_id')) as { plan_id: number }).plan_id)).to.equal(cat.plans[0]!.planId);
    await drive(world.deps, world.clock, engine.worker);
    expect(toNumber(((await world.deps.db('subscriptions').where({ id: subscriptionId }).first('plan_id')) as { plan_id: number }).plan_id)).to.equal(dns.planId);
    expect(journal(cat).map((e) => e.action)).to.deep.equal(['provision', 'changeLimits']);
    expect(world.clock.now().toISOString()).to.equal('2026-04-01T10:00:00.000Z');
  });

  it('voids the change charge and leaves the subscription on its plan when the gate refuses the new limits', async () => {
    const { subscriptionId } = await activeSubscription('nochange.example');
    await sandboxFail(subscriptionId, 'changeLimits');
    world.clock.set(new Date('2026-03-11T10:00:00Z'));
    const { orderId } = await lifecycle.change(world.provider, subscriptionId, { planId: cat.plans[1]!.planId, periodId: cat.plans[1]!.periodId, when: 'immediate' });
    await drive(world.deps, world.clock, engine.worker);
    const order = await orderRow(world.deps.db, orderId);
    expect(order.status).to.equal('PF');
    expect(order.failure_reason).to.match(/could not change plan: service gate 'sandbox' failed/);
    expect(order.failure_reason).to.contain('voided');
    expect(await paymentsOf(orderId)).to.deep.equal([
      ['purchase', 'voided', 678n],
      ['void', 'success', 678n],
    ]);
    expect(toNumber(((await world.deps.db('subscriptions').where({ id: subscriptionId }).first('plan_id')) as { plan_id: number }).plan_id)).to.equal(cat.plans[0]!.planId);
  });
  it('buys more of a resource: setup fee plus the recurring fee for the rest of the term, charged, changeLimits through the gate with the raised limit, then the subscription has it', async () => {
    // Disk on the Web plan: 10 GB included, at most 50, 1.00 setup and 0.50 a month per extra GB; the template caps at 10.
    const now = world.clock.now().getTime();
    const [disk] = (await world.deps.db('resources').insert({ vendor_id: cat.vendorId, name: 'Disk', unit: 'GB', code: 'disk', created_at: now })) as number[];
    const web = (await world.deps.db('plans').where({ id: cat.plans[0]!.planId }).first('template_id')) as { template_id: number };
    await world.deps.db('template_resources').insert({ template_id: web.template_id, resource_id: disk, limit_value: 10 });
    await world.deps.db('resource_rates').insert({ plan_id: cat.plans[0]!.planId, resource_id: disk, included: 10, min_quantity: 0, max_quantity: 50, setup_fee: 100, recurring_fee: 50 });
    const { subscriptionId } = await activeSubscription('disk.example');
    world.clock.set(new Date('2026-03-11T10:00:00Z'));
    await failure(lifecycle.buyResources(world.provider, subscriptionId, { resources: [{ resourceId: toNumber(disk), quantity: 41 }] }), 'INVALID_ARGUMENT', 'resources[0].quantity');
    const { orderId } = await lifecycle.buyResources(world.provider, subscriptionId, { resources: [{ resourceId: toNumber(disk), quantity: 5 }] });
    const order = await orders.get(world.provider, orderId);
    expect(order.type).to.equal('resource');
    // 5 x 1.00 setup; 5 x 0.50 x 21/31 = 1.6935 -> 1.69.
    expect(order.lines.map((l) => [l.kind, l.amount])).to.deep.equal([
      ['resource_setup', 500n],
      ['resource_recurring', 169n],
    ]);
    expect(order.total).to.equal(669n);
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    expect(await paymentsOf(orderId)).to.deep.equal([['purchase', 'success', 669n]]);
    expect(journal(cat).map((e) => e.action)).to.deep.equal(['provision', 'changeLimits']);
    const r = (await world.deps.db('subscription_resources').where({ subscription_id: subscriptionId, resource_id: disk }).first()) as Record<string, unknown>;
    expect([Number(r.included), Number(r.additional), Number(r.limit_value)]).to.deep.equal([10, 5, 15]);
    // The control panel (the sandbox's state) has the raised limit too.
    const service = Object.values(readSandboxStateFile(cat.stateFile).services).find((x) => x.subscriptionId === subscriptionId)!;
    expect(service.limits).to.deep.include({ resource: 'disk', limit: 15 });
    expect(await world.deps.db('events').where({ name: 'subscription.resources_added', object_id: String(subscriptionId) })).to.have.length(1);
  });
});
