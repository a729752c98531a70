import fs from 'node:fs';
import { expect } from 'chai';
import { readSandboxStateFile } from '../../plugins/provisioning/sandbox';
import { toNumber } from '../../src/db/knex';
import { transition } from '../../src/orders/transitions';
import { SAGA_COMPENSATE, SAGA_FINISH, SAGA_PROVISION } from '../../src/orders/engine';
import { makeWorld, type World } from '../helpers/world';
import { drive, eventNames, journal, makeCatalog, makeEngine, orderRow, placeOrder, type Catalog, type Engine } from './fixtures';

describe('order engine and provisioning saga', () => {
  let world: World;
  let engine: Engine;
  let cat: Catalog;

  const subscriptionsOf = async (orderId: number) =>
    (await world.deps.db('subscriptions').where({ order_id: orderId }).orderBy('id').select('id', 'status', 'service_status', 'gate_reference')) as {
      id: number;
      status: number;
      service_status: number;
      gate_reference: string | null;
    }[];

  beforeEach(async () => {
    world = await makeWorld();
    engine = makeEngine(world.deps, world.services);
    cat = await makeCatalog(world.deps, world.services, world.provider, engine);
  });
  afterEach(async () => {
    await world?.close();
    if (cat) fs.rmSync(cat.dir, { recursive: true, force: true });
  });

  it('runs a clean 3-item order to CP: fraud pass, card charged, each item provisioned once in order, subscriptions active', async () => {
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }, { plan: 1 }, { plan: 2 }]);
    await drive(world.deps, world.clock, engine.worker);

    const order = await orderRow(world.deps.db, orderId);
    expect(order).to.include({ status: 'CP', step: 'completed', failure_reason: null });
    const payment = (await world.deps.db('payments').where({ id: order.payment_id }).first()) as { status: string; amount: unknown };
    expect(payment.status).to.equal('success');
    expect(toNumber(payment.amount)).to.equal(6000);

    const subs = await subscriptionsOf(orderId);
    expect(subs.map((s) => [toNumber(s.status), toNumber(s.service_status)])).to.deep.equal([[30, 50], [30, 50], [30, 50]]);
    const log = journal(cat);
    expect(log.map((e) => e.action)).to.deep.equal(['provision', 'provision', 'provision']);
    expect(log.map((e) => e.reference)).to.deep.equal(subs.map((s) => s.gate_reference));

    const history = (await world.deps.db('order_history').where({ order_id: orderId }).orderBy('id').select('status')) as { status: string }[];
    expect(history.map((h) => h.status)).to.deep.equal(['NP', 'WP', 'PR', 'PC', 'CP']);
    const orderEvents = (await eventNames(world.deps.db)).filter((e) => e.name.startsWith('order.')).map((e) => e.name);
    expect(orderEvents).to.deep.equal(['order.step_changed', 'order.step_changed', 'order.provisioned', 'order.completed']);
    // Nothing is left over: every task done.
    const open = (await world.deps.db('tasks').whereNot({ status: 'done' }).select('kind', 'status', 'last_error')) as unknown[];
    expect(open).to.deep.equal([]);
  });

  it('rolls a bundle back when the third gate refuses: items 2 then 1 terminated, payment voided, order PF with the reason, events in order', async () => {
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }, { plan: 1 }, { plan: 2, parameters: { sandbox_fail: 'provision' } }]);
    await drive(world.deps, world.clock, engine.worker);

    const order = await orderRow(world.deps.db, orderId);
    expect(order.status).to.equal('PF');
    expect(order.step).to.equal('provisioning_failed');
    expect(order.failure_reason).to.contain("Item 3 (DNS) could not be provisioned: service gate 'sandbox' failed: The sandbox was told to refuse provision.");
    expect(order.failure_reason).to.contain('voided');

    const subs = await subscriptionsOf(orderId);
    expect(subs.map((s) => [toNumber(s.status), toNumber(s.service_status)])).to.deep.equal([[60, 90], [60, 90], [60, 90]]);

    // The gate's own log: 1 and 2 provisioned, then undone in reverse (2 first), nothing else.
    const log = journal(cat);
    expect(log.map((e) => `${e.action} ${e.reference}`)).to.deep.equal([`provision ${subs[0].gate_reference}`, `provision ${subs[1].gate_reference}`, `terminate ${subs[1].gate_reference}`, `terminate ${subs[0].gate_reference}`]);
    const state = readSandboxStateFile(cat.stateFile);
    expect(Object.values(state.services).map((s) => s.status)).to.deep.equal(['terminated', 'terminated']);
    expect(new Set(log.map((e) => e.operationId)).size).to.equal(4);

    const charge = (await world.deps.db('payments').where({ id: order.payment_id }).first()) as { status: string };
    expect(charge.status).to.equal('voided');

    const saga = (await world.deps.db('saga_steps').where({ order_id: orderId }).orderBy('id').select('position', 'action', 'status')) as { position: number; action: string; status: string }[];
    expect(saga.map((s) => `${s.action} ${s.position} ${s.status}`)).to.deep.equal(['provision 1 done', 'provision 2 done', 'provision 3 failed', 'compensate 2 done', 'compensate 1 done']);

    const sub = (id: number) => String(id);
    const events = (await eventNames(world.deps.db)).map((e) => (e.name.startsWith('subscription.') ? `${e.name} ${e.object_id}` : e.name));
    const fromProvision = events.slice(events.indexOf('order.step_changed', events.indexOf('payment.succeeded')));
    expect(fromProvision).to.deep.equal([
      'order.step_changed',
      `subscription.created ${sub(subs[0].id)}`,
      `subscription.created ${sub(subs[1].id)}`,
      `subscription.created ${sub(subs[2].id)}`,
      `subscription.service_provisioned ${sub(subs[0].id)}`,
      `subscription.service_provisioned ${sub(subs[1].id)}`,
      `subscription.terminated ${sub(subs[2].id)}`,
      `subscription.terminated ${sub(subs[1].id)}`,
      `subscription.terminated ${sub(subs[0].id)}`,
      'payment.created',
      'payment.voided',
      'order.provisioning_failed',
    ]);
    const kinds = (await world.deps.db('tasks').where('kind', 'like', 'saga.%').orderBy('id').select('kind', 'status')) as { kind: string; status: string }[];
    expect(kinds).to.deep.equal([
      { kind: SAGA_PROVISION, status: 'done' },
      { kind: SAGA_PROVISION, status: 'done' },
      { kind: SAGA_PROVISION, status: 'done' },
      { kind: SAGA_COMPENSATE, status: 'done' },
      { kind: SAGA_COMPENSATE, status: 'done' },
      { kind: SAGA_FINISH, status: 'done' },
    ]);
  });

  it('retries a retryable gate failure after the backoff and succeeds on the second attempt with the same operation id', async () => {
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }, { plan: 1, parameters: { sandbox_fail: 'provision:retryable:1' } }]);
    await drive(world.deps, world.clock, engine.worker);

    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    const tasks = (await world.deps.db('tasks').where({ kind: SAGA_PROVISION }).orderBy('id').select('attempts', 'operation_id', 'status')) as { attempts: number; operation_id: string; status: string }[];
    expect(tasks.map((t) => toNumber(t.attempts))).to.deep.equal([1, 2]);
    const state = readSandboxStateFile(cat.stateFile);
    expect(state.retries).to.deep.equal({ [tasks[1].operation_id]: 1 });
    expect(state.journal.map((e) => [e.action, e.operationId])).to.deep.equal([
      ['provision', tasks[0].operation_id],
      ['provision', tasks[1].operation_id],
    ]);
  });

  it('holds a suspect order at WA until it is approved, then charges and provisions it', async () => {
    await world.services.pluginInstances.create(world.provider, { kind: 'fraud', plugin: 'rules', name: 'screen', settings: { amountThreshold: { amount: '1500', currency: 'USD' } } });
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }, { plan: 1 }]);
    await drive(world.deps, world.clock, engine.worker);

    let order = await orderRow(world.deps.db, orderId);
    expect(order).to.include({ status: 'WA', step: 'wait_for_approval', payment_id: null });
    expect(journal(cat)).to.deep.equal([]);
    const checks = (await world.deps.db('fraud_checks').where({ order_id: orderId }).select('verdict')) as { verdict: string }[];
    expect(checks.map((c) => c.verdict)).to.deep.equal(['suspect']);

    await world.deps.db.transaction(async (tx) => {
      const row = (await tx('orders').where({ id: orderId }).first()) as { id: number; account_id: number; vendor_id: number; workflow_id: number; step: string };
      await transition(tx, world.deps, world.services.tasks, row, 'approved', world.provider, 'looks fine');
    });
    await drive(world.deps, world.clock, engine.worker);

    order = await orderRow(world.deps.db, orderId);
    expect(order.status).to.equal('CP');
    expect(journal(cat).map((e) => e.action)).to.deep.equal(['provision', 'provision']);
    const history = (await world.deps.db('order_history').where({ order_id: orderId }).orderBy('id').select('status')) as { status: string }[];
    expect(history.map((h) => h.status)).to.deep.equal(['NP', 'SS', 'WA', 'WP', 'PR', 'PC', 'CP']);
    const names = (await eventNames(world.deps.db)).map((e) => e.name).filter((n) => n.startsWith('order.'));
    expect(names.slice(0, 3)).to.deep.equal(['order.fraud_suspected', 'order.waiting_approval', 'order.approved']);
  });
});
