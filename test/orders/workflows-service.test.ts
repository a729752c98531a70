import { expect } from 'chai';
import { ORDER_TYPES } from '../../src/domain/workflow';
import type { Actor } from '../../src/context';
import { DEFAULT_SALES_WORKFLOW, type WorkflowDefinition } from '../../src/domain/workflow';
import { ORDER_ADVANCE, startOrder, transition } from '../../src/orders/transitions';
import { failure } from '../helpers/assertions';
import { count, orderWorld, type OrderWorld } from '../subscriptions/order-world';

let w: OrderWorld;

/** A sales workflow that asks a person before anything else. */
const APPROVE_FIRST: WorkflowDefinition = {
  orderType: 'sales',
  start: 'approval',
  steps: {
    approval: { action: 'wait_for_approval', next: { approved: 'provision', rejected: 'rejected' } },
    provision: { action: 'provision', next: { success: 'done', failure: 'failed' } },
    done: { action: 'complete', next: {} },
    rejected: { action: 'reject', next: {} },
    failed: { action: 'fail', next: {} },
  },
};

async function orderRow(id: number) {
  return (await w.world.deps.db('orders').where({ id }).first()) as { id: number; account_id: number; vendor_id: number; workflow_id: number; step: string; status: string; failure_reason: string | null };
}

async function eventsOf(orderId: number): Promise<string[]> {
  return ((await w.world.deps.db('events').where({ object_type: 'order', object_id: String(orderId) }).orderBy('id')) as { name: string }[]).map((e) => e.name);
}

async function advanceTasks(orderId: number): Promise<{ orderId: number; step: string }[]> {
  const rows = (await w.world.deps.db('tasks').where({ kind: ORDER_ADVANCE, object_id: String(orderId) }).orderBy('id')) as { payload: string }[];
  return rows.map((r) => JSON.parse(r.payload) as { orderId: number; step: string });
}

describe('workflows', () => {
  beforeEach(async () => {
    w = await orderWorld();
  });
  afterEach(async () => {
    await w?.world.close();
  });

  it("gives every vendor the provider's version 1 of the default, created at start-up for every order type", async () => {
    expect(await count(w.world, 'workflows')).to.equal(ORDER_TYPES.length);
    const a = await w.workflows.activeFor(w.world.deps.db, w.otherReseller.accountId, 'sales');
    const b = await w.workflows.activeFor(w.world.deps.db, w.world.provider.accountId, 'sales');
    expect(a.workflowId).to.equal(b.workflowId);
    expect(a).to.deep.include({ vendorAccountId: w.world.provider.accountId, version: 1, active: true, orderType: 'sales' });
    expect(a.definition).to.deep.equal(DEFAULT_SALES_WORKFLOW);
    expect(await count(w.world, 'workflows')).to.equal(ORDER_TYPES.length);
    const renewal = await w.workflows.activeFor(w.world.deps.db, w.world.provider.accountId, 'renewal');
    expect(renewal.definition.start).to.equal('charge_card');
  });

  it("creates the provider's default once when several first uses race (a database that predates the start-up defaults)", async () => {
    await w.world.deps.db('workflows').where({ order_type: 'sales' }).del();
    const all = await Promise.all([0, 1, 2, 3].map(() => w.workflows.activeFor(w.world.deps.db, w.world.provider.accountId, 'sales')));
    expect(new Set(all.map((x) => x.workflowId)).size).to.equal(1);
    expect(await count(w.world, 'workflows', { order_type: 'sales' })).to.equal(1);
  });

  it('refuses a broken definition naming the field, and a definition of another order type', async () => {
    const before = await count(w.world, 'workflows');
    const broken = { ...APPROVE_FIRST, start: 'nowhere' };
    await failure(w.workflows.define(w.world.provider, { orderType: 'sales', definition: broken }), 'INVALID_ARGUMENT', 'definition.start');
    const missing = { ...APPROVE_FIRST, steps: { ...APPROVE_FIRST.steps, provision: { action: 'provision', next: { success: 'done' } } } };
    await failure(w.workflows.define(w.world.provider, { orderType: 'sales', definition: missing }), 'INVALID_ARGUMENT', 'definition.steps.provision.next.failure');
    await failure(w.workflows.define(w.world.provider, { orderType: 'renewal', definition: APPROVE_FIRST }), 'INVALID_ARGUMENT', 'definition.orderType');
    await failure(w.workflows.define(w.customer, { orderType: 'sales', definition: APPROVE_FIRST }), 'INVALID_ARGUMENT', 'vendorAccountId');
    expect(await count(w.world, 'workflows')).to.equal(before);
  });

  it('stores each definition as a new active version, keeping the earlier ones, with audit and a workflow.defined event', async () => {
    const v1 = await w.workflows.activeFor(w.world.deps.db, w.world.provider.accountId, 'sales');
    const v2 = await w.workflows.define(w.world.provider, { orderType: 'sales', definition: APPROVE_FIRST });
    expect(v2).to.deep.include({ version: 2, active: true, vendorAccountId: w.world.provider.accountId });
    expect((await w.workflows.get(w.world.provider, v1.workflowId)).active).to.equal(false);
    expect((await w.workflows.list(w.world.provider)).filter((x) => x.orderType === 'sales').map((x) => [x.version, x.active])).to.deep.equal([
      [2, true],
      [1, false],
    ]);
    expect(await count(w.world, 'events', { name: 'workflow.defined', object_id: String(v2.workflowId) })).to.equal(1);
    expect(await count(w.world, 'audit_log', { operation: 'DefineWorkflow', object_id: String(v2.workflowId) })).to.equal(1);
  });

  it("pins an order to the version it was placed with: a version defined later changes new orders only", async () => {
    const before = await w.place(w.customer, { accountId: w.customer.accountId });
    const v2 = await w.workflows.define(w.world.provider, { orderType: 'sales', definition: APPROVE_FIRST });
    const after = await w.place(w.customer, { accountId: w.customer.accountId });
    expect(before.workflowId).to.not.equal(v2.workflowId);
    expect((await w.orders.get(w.world.provider, before.orderId)).workflowId).to.equal(before.workflowId);
    expect(after).to.deep.include({ workflowId: v2.workflowId, step: 'approval', status: 'WA' });
    // A manual start step waits for a person: no advance task.
    expect(await advanceTasks(after.orderId)).to.deep.equal([]);
    // The earlier order still steps along the default workflow.
    const row = await orderRow(before.orderId);
    await w.world.deps.db.transaction((tx) => transition(tx, w.world.deps, w.world.services.tasks, row, 'pass', w.world.provider));
    expect((await orderRow(before.orderId)).step).to.equal('charge_card');
  });

  it("gives a reseller's customers the reseller's own workflow, and everyone else the provider's", async () => {
    const own = await w.workflows.define(w.reseller, { orderType: 'sales', definition: APPROVE_FIRST });
    expect(own).to.deep.include({ vendorAccountId: w.reseller.accountId, version: 1 });
    const theirs = await w.orders.place(w.reseller, { accountId: w.resellerCustomer.accountId, items: [{ planId: w.euroPlan, periodId: w.euroMonthly, parameters: { domain: 'r.example' } }] });
    expect(theirs).to.deep.include({ workflowId: own.workflowId, step: 'approval', status: 'WA' });
    const providers = await w.place(w.customer, { accountId: w.customer.accountId });
    expect(providers).to.deep.include({ step: 'fraud_screening', status: 'NP' });
    expect(providers.workflowId).to.not.equal(own.workflowId);
    // Another reseller's customers inherit the provider's.
    const other = await w.workflows.activeFor(w.world.deps.db, w.otherReseller.accountId, 'sales');
    expect(other.workflowId).to.equal(providers.workflowId);
  });

  it("scopes get and list: another reseller's workflow answers NOT_FOUND", async () => {
    const own = await w.workflows.define(w.reseller, { orderType: 'sales', definition: APPROVE_FIRST });
    await failure(w.workflows.get(w.otherReseller, own.workflowId), 'NOT_FOUND');
    expect(await w.workflows.list(w.otherReseller)).to.deep.equal([]);
    expect((await w.workflows.list(w.world.provider, w.reseller.accountId)).map((x) => x.workflowId)).to.deep.equal([own.workflowId]);
    await failure(w.workflows.list(w.otherReseller, w.reseller.accountId), 'NOT_FOUND');
  });
});

describe('transitions', () => {
  let system: Actor;
  beforeEach(async () => {
    w = await orderWorld();
    system = { ...w.world.provider, channel: 'job' };
  });
  afterEach(async () => {
    await w?.world.close();
  });

  const step = async (orderId: number, outcome: Parameters<typeof transition>[4], comment?: string) =>
    w.world.deps.db.transaction(async (tx) => {
      const row = (await tx('orders').where({ id: orderId }).first()) as Awaited<ReturnType<typeof orderRow>>;
      return transition(tx, w.world.deps, w.world.services.tasks, row, outcome, system, comment);
    });

  it('moves a suspect order to mark_suspect and on to wait_for_approval, with history, audit and the right events; only the automatic step gets a task', async () => {
    const order = await w.place(w.customer, { accountId: w.customer.accountId });
    expect(await step(order.orderId, 'suspect', 'IP country mismatch')).to.deep.equal({ step: 'mark_suspect', status: 'SS' });
    expect(await step(order.orderId, 'done')).to.deep.equal({ step: 'wait_for_approval', status: 'WA' });
    expect(await eventsOf(order.orderId)).to.deep.equal(['order.placed', 'order.fraud_suspected', 'order.waiting_approval']);
    expect((await advanceTasks(order.orderId)).map((t) => t.step)).to.deep.equal(['fraud_screening', 'mark_suspect']);
    const view = await w.orders.get(w.world.provider, order.orderId);
    expect(view.history.map((h) => [h.status, h.step, h.outcome, h.comment])).to.deep.equal([
      ['NP', 'fraud_screening', null, ''],
      ['SS', 'mark_suspect', 'suspect', 'IP country mismatch'],
      ['WA', 'wait_for_approval', 'done', ''],
    ]);
    expect(await count(w.world, 'audit_log', { object_type: 'order', object_id: String(order.orderId), operation: 'order.fraud_suspected' })).to.equal(1);
  });

  it('runs a clean order through charge and provisioning to completion: step_changed, provisioned, completed', async () => {
    const order = await w.place(w.customer, { accountId: w.customer.accountId });
    expect(await step(order.orderId, 'pass')).to.deep.equal({ step: 'charge_card', status: 'WP' });
    expect(await step(order.orderId, 'success')).to.deep.equal({ step: 'provision_services', status: 'PR' });
    expect(await step(order.orderId, 'success')).to.deep.equal({ step: 'notify_customer', status: 'PC' });
    expect(await step(order.orderId, 'done')).to.deep.equal({ step: 'completed', status: 'CP' });
    expect(await eventsOf(order.orderId)).to.deep.equal(['order.placed', 'order.step_changed', 'order.step_changed', 'order.provisioned', 'order.completed']);
    expect((await advanceTasks(order.orderId)).map((t) => t.step)).to.deep.equal(['fraud_screening', 'charge_card', 'provision_services', 'notify_customer']);
  });

  it('ends a failed provisioning at fail with the reason and order.provisioning_failed, and no task', async () => {
    const order = await w.place(w.customer, { accountId: w.customer.accountId });
    await step(order.orderId, 'pass');
    await step(order.orderId, 'success');
    expect(await step(order.orderId, 'failure', 'Gate sandbox: disk quota exceeded')).to.deep.equal({ step: 'provisioning_failed', status: 'PF' });
    expect((await orderRow(order.orderId)).failure_reason).to.equal('Gate sandbox: disk quota exceeded');
    expect((await w.orders.get(w.customer, order.orderId)).failureReason).to.equal('Gate sandbox: disk quota exceeded');
    expect((await eventsOf(order.orderId)).at(-1)).to.equal('order.provisioning_failed');
    expect((await advanceTasks(order.orderId)).map((t) => t.step)).to.deep.equal(['fraud_screening', 'charge_card', 'provision_services']);
  });

  it('sends a declined charge to reject with order.rejected, and refuses an outcome the step does not have', async () => {
    const order = await w.place(w.customer, { accountId: w.customer.accountId });
    await step(order.orderId, 'pass');
    await failure(step(order.orderId, 'approved'), 'INVALID_ARGUMENT', 'outcome');
    expect(await step(order.orderId, 'declined')).to.deep.equal({ step: 'reject_order', status: 'RJ' });
    expect((await eventsOf(order.orderId)).at(-1)).to.equal('order.rejected');
  });

  it('refuses a transition from a step the order has already left (CONFLICT), changing nothing', async () => {
    const order = await w.place(w.customer, { accountId: w.customer.accountId });
    const stale = await orderRow(order.orderId);
    await step(order.orderId, 'pass');
    await failure(
      w.world.deps.db.transaction((tx) => transition(tx, w.world.deps, w.world.services.tasks, stale, 'pass', system)),
      'CONFLICT',
      'step',
    );
    expect(await count(w.world, 'order_history', { order_id: order.orderId })).to.equal(2);
  });

  it('startOrder enqueues the start step once (the task is deduplicated on the first history row)', async () => {
    const order = await w.place(w.customer, { accountId: w.customer.accountId });
    await w.world.deps.db.transaction((tx) => startOrder(tx, w.world.deps, w.world.services.tasks, order.orderId));
    expect(await advanceTasks(order.orderId)).to.deep.equal([{ orderId: order.orderId, step: 'fraud_screening' }]);
  });
});
