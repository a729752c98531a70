import fs from 'node:fs';
import { expect } from 'chai';
import { toNumber } from '../../src/db/knex';
import { readSandboxStateFile } from '../../plugins/provisioning/sandbox';
import { SAGA_COMPENSATE, SAGA_LATE_COMPLETION, SAGA_PROVISION } from '../../src/orders/engine';
import { makeWorld, type World } from '../helpers/world';
import { drive, journal, makeCatalog, makeEngine, orderRow, placeOrder, type Catalog, type Engine } from './fixtures';

/**
 * A gate still answering pending when the saga task has used its last attempt: the late-completion sweep polls the
 * same operation later and finishes the saga (or fails it properly), instead of failing a service that may be
 * coming up or leaving the order stuck.
 */
describe('saga late completion (the sandbox gate answering pending for many polls)', () => {
  let world: World;
  let engine: Engine;
  let cat: Catalog;

  beforeEach(async () => {
    world = await makeWorld();
  });
  afterEach(async () => {
    await world?.close();
    if (cat) fs.rmSync(cat.dir, { recursive: true, force: true });
  });

  it('completes the order when the gate finishes after the task gave up: provisioned once, under the first operation id', async () => {
    engine = makeEngine(world.deps, world.services, { sagaMaxAttempts: 3 });
    // The provision happens on the 6th status poll: the task polls twice, the sweep the rest.
    cat = await makeCatalog(world.deps, world.services, world.provider, engine, { gateSettings: { pendingFor: 6 } });
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }]);
    const start = world.clock.now().getTime();
    await drive(world.deps, world.clock, engine.worker);

    const order = await orderRow(world.deps.db, orderId);
    expect(order.status).to.equal('CP');
    const [provision] = (await world.deps.db('tasks').where({ kind: SAGA_PROVISION })) as { status: string; attempts: number; operation_id: string; result: string }[];
    expect({ status: provision!.status, attempts: toNumber(provision!.attempts) }).to.deep.equal({ status: 'done', attempts: 3 });
    expect(JSON.parse(provision!.result)).to.include({ late: true });
    const [late] = (await world.deps.db('tasks').where({ kind: SAGA_LATE_COMPLETION })) as { status: string; attempts: number; created_at: number; object_type: string; object_id: string }[];
    expect({ status: late!.status, attempts: toNumber(late!.attempts), objectType: late!.object_type }).to.deep.equal({ status: 'done', attempts: 4, objectType: 'subscription' });
    // The sweep waited (10 minutes) before its first look.
    expect(world.clock.now().getTime() - start).to.be.greaterThan(10 * 60_000);
    expect(journal(cat).map((e) => [e.action, e.operationId])).to.deep.equal([['provision', provision!.operation_id]]);
    const sub = (await world.deps.db('subscriptions').where({ order_id: orderId }).first('status', 'service_status')) as { status: number; service_status: number };
    expect([toNumber(sub.status), toNumber(sub.service_status)]).to.deep.equal([30, 50]);
  });

  it('fails the item and rolls the order back when the gate is still pending after every late check; the undo waits as long, then is noted and the saga goes on', async () => {
    engine = makeEngine(world.deps, world.services, { sagaMaxAttempts: 2 });
    cat = await makeCatalog(world.deps, world.services, world.provider, engine, { gateSettings: { pendingFor: 1000 } });
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }]);
    await drive(world.deps, world.clock, engine.worker, 2000);

    const order = await orderRow(world.deps.db, orderId);
    expect(order.status).to.equal('PF');
    expect(order.failure_reason).to.match(/^Item 1 \(Web\) could not be provisioned: service gate 'sandbox' was still pending after its task's attempts and 30 late checks/);
    // The gate never finished, so there was nothing to terminate either: the undo's note is in the reason.
    expect(order.failure_reason).to.contain("Item 1 (Web) could not be undone: service gate 'sandbox' was still pending after its task's attempts and 30 late checks");
    expect(order.failure_reason).to.contain('voided');
    const lates = (await world.deps.db('tasks').where({ kind: SAGA_LATE_COMPLETION }).orderBy('id')) as { status: string; attempts: number; payload: string }[];
    expect(lates.map((l) => [l.status, toNumber(l.attempts), (JSON.parse(l.payload) as { sagaAction: string }).sagaAction])).to.deep.equal([
      ['done', 30, 'provision'],
      ['done', 30, 'compensate'],
    ]);
    const saga = (await world.deps.db('saga_steps').where({ order_id: orderId }).orderBy('id').select('action', 'status')) as { action: string; status: string }[];
    expect(saga.map((r) => `${r.action} ${r.status}`)).to.deep.equal(['provision failed', 'compensate failed']);
    expect(journal(cat)).to.deep.equal([]);
    const sub = (await world.deps.db('subscriptions').where({ order_id: orderId }).first('status', 'service_status')) as { status: number; service_status: number };
    expect([toNumber(sub.status), toNumber(sub.service_status)]).to.deep.equal([60, 90]);
  });

  it('terminates at the gate a service the gate finishes after the saga gave up on it; the order is rolled back and the payment voided', async () => {
    engine = makeEngine(world.deps, world.services, { sagaMaxAttempts: 2 });
    cat = await makeCatalog(world.deps, world.services, world.provider, engine);
    // Pending through the task's 2 attempts (1 poll) and the 30 late checks; the provision happens on the next poll,
    // the rollback's.
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0, parameters: { sandbox_pending: 'provision:32' } }]);
    await drive(world.deps, world.clock, engine.worker, 2000);

    const order = await orderRow(world.deps.db, orderId);
    expect(order.status).to.equal('PF');
    expect(order.failure_reason).to.match(/^Item 1 \(Web\) could not be provisioned: service gate 'sandbox' was still pending after its task's attempts and 30 late checks/);
    expect(order.failure_reason).to.not.contain('could not be undone');
    const charge = (await world.deps.db('payments').where({ id: order.payment_id }).first('status')) as { status: string };
    expect(charge.status).to.equal('voided');

    // The gate provisioned under the saga's operation id, then heard the rollback's terminate for that service.
    const [provision] = (await world.deps.db('tasks').where({ kind: SAGA_PROVISION })) as { operation_id: string }[];
    const [undo] = (await world.deps.db('tasks').where({ kind: SAGA_COMPENSATE })) as { operation_id: string; status: string }[];
    expect(undo!.status).to.equal('done');
    expect(journal(cat).map((e) => [e.action, e.operationId, e.reference])).to.deep.equal([
      ['provision', provision!.operation_id, 'sbx-1'],
      ['terminate', undo!.operation_id, 'sbx-1'],
    ]);
    expect(readSandboxStateFile(cat.stateFile).services['sbx-1']!.status).to.equal('terminated');

    const saga = (await world.deps.db('saga_steps').where({ order_id: orderId }).orderBy('id').select('action', 'status')) as { action: string; status: string }[];
    expect(saga.map((r) => `${r.action} ${r.status}`)).to.deep.equal(['provision failed', 'compensate done']);
    const sub = (await world.deps.db('subscriptions').where({ order_id: orderId }).first('id', 'status', 'service_status')) as { id: number; status: number; service_status: number };
    expect([toNumber(sub.status), toNumber(sub.service_status)]).to.deep.equal([60, 90]);
    const undone = (await world.deps.db('events').where({ name: 'subscription.provision_undone', object_id: String(sub.id) }).select('payload')) as { payload: string }[];
    expect(undone.map((e) => JSON.parse(e.payload) as Record<string, unknown>)).to.deep.equal([
      { subscriptionId: toNumber(sub.id), accountId: cat.customer.accountId, orderId, operationId: provision!.operation_id, terminated: true, reference: 'sbx-1' },
    ]);
  });

  it('counts a terminate the gate answers NOT_FOUND as done: the given-up item first, then the provisioned one, and the order rolls back without an undo failure', async () => {
    engine = makeEngine(world.deps, world.services, { sagaMaxAttempts: 2 });
    cat = await makeCatalog(world.deps, world.services, world.provider, engine);
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }, { plan: 1, parameters: { sandbox_pending: 'provision:32', sandbox_fail: 'terminate:not_found' } }]);
    await drive(world.deps, world.clock, engine.worker, 2000);

    const order = await orderRow(world.deps.db, orderId);
    expect(order.status).to.equal('PF');
    expect(order.failure_reason).to.match(/^Item 2 \(Mail\) could not be provisioned: service gate 'sandbox' was still pending/);
    expect(order.failure_reason).to.not.contain('could not be undone');
    expect(order.failure_reason).to.contain('voided');
    // Item 2's late service was made (sbx-2); its terminate was answered "no such service"; item 1 was terminated after it.
    expect(journal(cat).map((e) => `${e.action} ${e.reference}`)).to.deep.equal(['provision sbx-1', 'provision sbx-2', 'terminate sbx-1']);
    const saga = (await world.deps.db('saga_steps').where({ order_id: orderId }).orderBy('id').select('position', 'action', 'status')) as { position: number; action: string; status: string }[];
    expect(saga.map((r) => `${r.action} ${r.position} ${r.status}`)).to.deep.equal(['provision 1 done', 'provision 2 failed', 'compensate 2 done', 'compensate 1 done']);
    const undos = (await world.deps.db('tasks').where({ kind: SAGA_COMPENSATE }).orderBy('id').select('payload', 'status')) as { payload: string; status: string }[];
    const items = (await world.deps.db('order_items').where({ order_id: orderId }).orderBy('position').select('id')) as { id: number }[];
    expect(undos.map((u) => [(JSON.parse(u.payload) as { itemId: number }).itemId, u.status])).to.deep.equal([
      [toNumber(items[1]!.id), 'done'],
      [toNumber(items[0]!.id), 'done'],
    ]);
    const subs = (await world.deps.db('subscriptions').where({ order_id: orderId }).orderBy('id').select('status', 'service_status')) as { status: number; service_status: number }[];
    expect(subs.map((x) => [toNumber(x.status), toNumber(x.service_status)])).to.deep.equal([[60, 90], [60, 90]]);
  });
});
