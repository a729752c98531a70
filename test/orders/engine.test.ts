import fs from 'node:fs';
import { expect } from 'chai';
import { readSandboxStateFile } from '../../plugins/provisioning/sandbox';
import { toNumber } from '../../src/db/knex';
import { subscriptionHooks, SAGA_PROVISION } from '../../src/orders/engine';
import { OrdersService } from '../../src/orders/orders-service';
import { PromoCodesService } from '../../src/orders/promo-codes-service';
import { ORDER_ADVANCE, ORDERS_QUEUE } from '../../src/orders/transitions';
import { WorkflowsService } from '../../src/orders/workflows-service';
import { SubscriptionsService } from '../../src/subscriptions/subscriptions-service';
import { makeWorld, type World } from '../helpers/world';
import { drive, journal, makeCatalog, makeEngine, orderRow, placeOrder, type Catalog, type Engine } from './fixtures';

describe('order engine: steps, gates and edge cases', () => {
  let world: World;
  let engine: Engine;
  let cat: Catalog;

  const setup = async (opts: { gateSettings?: Record<string, unknown>; sagaMaxAttempts?: number; theirSubscriptions?: boolean } = {}) => {
    const subscriptions = opts.theirSubscriptions ? subscriptionHooks(world.deps, new SubscriptionsService(world.deps), world.services.catalog) : undefined;
    engine = makeEngine(world.deps, world.services, { sagaMaxAttempts: opts.sagaMaxAttempts, subscriptions });
    cat = await makeCatalog(world.deps, world.services, world.provider, engine, { gateSettings: opts.gateSettings });
  };
  const subscriptionsOf = async (orderId: number) =>
    ((await world.deps.db('subscriptions').where({ order_id: orderId }).orderBy('id').select('status', 'service_status')) as { status: number; service_status: number }[]).map((s) => [
      toNumber(s.status),
      toNumber(s.service_status),
    ]);

  beforeEach(async () => {
    world = await makeWorld();
  });
  afterEach(async () => {
    await world?.close();
    if (cat) fs.rmSync(cat.dir, { recursive: true, force: true });
  });

  it('runs an order placed through OrdersService, approved through OrdersService.approve, with SubscriptionsService keeping the subscriptions', async () => {
    await setup({ theirSubscriptions: true });
    await world.services.pluginInstances.create(world.provider, { kind: 'fraud', plugin: 'rules', name: 'screen', settings: { amountThreshold: { amount: '100', currency: 'USD' } } });
    const orders = new OrdersService(world.deps, { catalog: world.services.catalog, tasks: world.services.tasks, workflows: new WorkflowsService(world.deps), promoCodes: new PromoCodesService(world.deps) });
    const placed = await orders.place(world.provider, {
      accountId: cat.customer.accountId,
      payToolId: cat.payToolId,
      items: cat.plans.map((p) => ({ planId: p.planId, periodId: p.periodId, parameters: { domain: `${p.name.toLowerCase()}.example.com` } })),
    });
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, placed.orderId)).status).to.equal('WA');

    await orders.approve(world.provider, placed.orderId, 'known customer');
    await drive(world.deps, world.clock, engine.worker);
    const order = await orderRow(world.deps.db, placed.orderId);
    expect(order.status).to.equal('CP');
    expect(await subscriptionsOf(placed.orderId)).to.deep.equal([[30, 50], [30, 50], [30, 50]]);
    const refs = (await world.deps.db('subscriptions').where({ order_id: placed.orderId }).orderBy('id').select('gate_reference')) as { gate_reference: string }[];
    expect(journal(cat).map((e) => e.reference)).to.deep.equal(refs.map((r) => r.gate_reference));
  });

  it('rolls back through SubscriptionsService too: subscriptions removed, order PF', async () => {
    await setup({ theirSubscriptions: true });
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }, { plan: 1, parameters: { sandbox_fail: 'provision' } }]);
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('PF');
    expect(await subscriptionsOf(orderId)).to.deep.equal([[60, 90], [60, 90]]);
    expect(journal(cat).map((e) => e.action)).to.deep.equal(['provision', 'terminate']);
  });

  it('rejects an order whose card is declined: RJ, nothing provisioned, no subscription', async () => {
    await setup();
    const declined = await engine.payments.storePayTool(world.provider, cat.customer.accountId, cat.gatewayInstanceId, { number: '4000000000000341', expMonth: 12, expYear: 2030, cvv: '123' });
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }]);
    await world.deps.db('orders').where({ id: orderId }).update({ pay_tool_id: declined.payToolId });
    await drive(world.deps, world.clock, engine.worker);
    const order = await orderRow(world.deps.db, orderId);
    expect(order.status).to.equal('RJ');
    expect(toNumber(order.payment_id)).to.be.greaterThan(0);
    expect(journal(cat)).to.deep.equal([]);
    expect(await subscriptionsOf(orderId)).to.deep.equal([]);
  });

  it('polls a gate that answers pending with status under the same operation id, and provisions each item once', async () => {
    await setup({ gateSettings: { pendingFor: 2 } });
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }, { plan: 1 }]);
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    const tasks = (await world.deps.db('tasks').where({ kind: SAGA_PROVISION }).orderBy('id').select('attempts', 'operation_id')) as { attempts: number; operation_id: string }[];
    expect(tasks.map((t) => toNumber(t.attempts))).to.deep.equal([3, 3]);
    expect(journal(cat).map((e) => [e.action, e.operationId])).to.deep.equal(tasks.map((t) => ['provision', t.operation_id]));
  });

  it('gives up on a gate that keeps failing retryably once the task has no attempts left, and rolls back', async () => {
    await setup({ sagaMaxAttempts: 3 });
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }, { plan: 1, parameters: { sandbox_fail: 'provision:retryable' } }]);
    await drive(world.deps, world.clock, engine.worker);
    const order = await orderRow(world.deps.db, orderId);
    expect(order.status).to.equal('PF');
    expect(order.failure_reason).to.match(/^Item 2 \(Mail\) could not be provisioned: service gate 'sandbox' failed: The sandbox was told to fail provision for now \(attempt 3\)/);
    const state = readSandboxStateFile(cat.stateFile);
    expect(state.journal.map((e) => e.action)).to.deep.equal(['provision', 'terminate']);
    const failed = (await world.deps.db('tasks').where({ status: 'failed' }).select('kind')) as unknown[];
    expect(failed).to.deep.equal([]);
    // Its outcome unknown (a retryable failure to the end), item 2 is undone first: the gate says it never got the
    // provision (status NOT_FOUND), so nothing is terminated for it.
    const saga = (await world.deps.db('saga_steps').where({ order_id: orderId }).orderBy('id').select('position', 'action', 'status')) as { position: number; action: string; status: string }[];
    expect(saga.map((r) => `${r.action} ${r.position} ${r.status}`)).to.deep.equal(['provision 1 done', 'provision 2 failed', 'compensate 2 done', 'compensate 1 done']);
    const undone = (await world.deps.db('events').where({ name: 'subscription.provision_undone' }).select('payload')) as { payload: string }[];
    expect(undone.map((e) => JSON.parse(e.payload) as { terminated: boolean; reference: string | null }).map((p) => [p.terminated, p.reference])).to.deep.equal([[false, null]]);
  });

  it('goes on undoing the other items when one cannot be undone, and says so in the reason', async () => {
    await setup();
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }, { plan: 1, parameters: { sandbox_fail: 'terminate' } }, { plan: 2, parameters: { sandbox_fail: 'provision' } }]);
    await drive(world.deps, world.clock, engine.worker);
    const order = await orderRow(world.deps.db, orderId);
    expect(order.status).to.equal('PF');
    expect(order.failure_reason).to.contain('Item 3 (DNS) could not be provisioned');
    expect(order.failure_reason).to.contain("Item 2 (Mail) could not be undone: service gate 'sandbox' failed: The sandbox was told to refuse terminate.");
    expect(journal(cat).map((e) => e.action)).to.deep.equal(['provision', 'provision', 'terminate']);
    const saga = (await world.deps.db('saga_steps').where({ order_id: orderId, action: 'compensate' }).orderBy('id').select('position', 'status')) as { position: number; status: string }[];
    expect(saga.map((s) => [toNumber(s.position), s.status])).to.deep.equal([[2, 'failed'], [1, 'done']]);
  });

  it('ignores a stale order.advance and a repeated one: the saga starts once, nothing is provisioned twice', async () => {
    await setup();
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }, { plan: 1 }]);
    // Run up to the provision step's first saga task, then repeat the provision advance and add a stale one.
    while (!(await world.deps.db('tasks').where({ kind: SAGA_PROVISION }).first('id'))) await engine.worker.runOnce();
    const order = await orderRow(world.deps.db, orderId);
    expect(order.step).to.equal('provision_services');
    for (const step of ['provision_services', 'charge_card']) {
      await world.services.tasks.enqueue(world.deps.db, { kind: ORDER_ADVANCE, queue: ORDERS_QUEUE, payload: { orderId, step }, objectType: 'order', objectId: orderId });
    }
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    expect(journal(cat).map((e) => e.action)).to.deep.equal(['provision', 'provision']);
    expect((await world.deps.db('saga_steps').where({ order_id: orderId }).count({ n: '*' }))[0]).to.deep.include({ n: 2 });
    expect((await world.deps.db('payments').where({ order_id: orderId }).count({ n: '*' }))[0]).to.deep.include({ n: 1 });
  });

  it("makes the order suspect when the vendor's fraud screen cannot run, rather than letting it through", async () => {
    await setup();
    const id = await world.services.pluginInstances.create(world.provider, { kind: 'fraud', plugin: 'rules', name: 'screen', settings: {} });
    await world.deps.db('plugin_instances').where({ id }).update({ settings: JSON.stringify({ windowSeconds: 1 }) });
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }]);
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('WA');
    const history = (await world.deps.db('order_history').where({ order_id: orderId, status: 'SS' }).first('comment')) as { comment: string };
    expect(history.comment).to.contain("Fraud screen 'screen' cannot run");
  });

  it('charges nothing for an order with a total of 0 and still provisions it', async () => {
    await setup();
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }]);
    await world.deps.db('orders').where({ id: orderId }).update({ subtotal: 0, total: 0 });
    await drive(world.deps, world.clock, engine.worker);
    const order = await orderRow(world.deps.db, orderId);
    expect(order).to.include({ status: 'CP', payment_id: null });
    expect((await world.deps.db('payments').where({ order_id: orderId }).count({ n: '*' }))[0]).to.deep.include({ n: 0 });
    expect(journal(cat).map((e) => e.action)).to.deep.equal(['provision']);
  });

  it('fails a renewal and a change order that name no subscription at their provision step (charge voided) instead of making new services', async () => {
    await setup();
    const renewal = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }]);
    const change = await placeOrder(world.deps, world.services, cat, [{ plan: 1 }]);
    await world.deps.db('orders').where({ id: renewal }).update({ type: 'renewal' });
    await world.deps.db('orders').where({ id: change }).update({ type: 'change' });
    await drive(world.deps, world.clock, engine.worker);
    const noTarget = await orderRow(world.deps.db, renewal);
    expect(noTarget.status).to.equal('PF');
    expect(noTarget.failure_reason).to.contain('This renewal order names no subscription to act on');
    const failed = await orderRow(world.deps.db, change);
    expect(failed.status).to.equal('PF');
    expect(failed.failure_reason).to.contain('This change order names no subscription to act on');
    expect(failed.failure_reason).to.contain('voided');
    expect(((await world.deps.db('payments').where({ id: failed.payment_id }).first('status')) as { status: string }).status).to.equal('voided');
    expect(journal(cat)).to.deep.equal([]);
    expect((await world.deps.db('subscriptions').count({ n: '*' }))[0]).to.deep.include({ n: 0 });
  });
});
