import fs from 'node:fs';
import { expect } from 'chai';
import { toNumber } from '../../src/db/knex';
import { SAGA_LATE_COMPLETION, SAGA_PROVISION } from '../../src/orders/engine';
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

  it('fails the item and rolls the order back when the gate is still pending after every late check', async () => {
    engine = makeEngine(world.deps, world.services, { sagaMaxAttempts: 2 });
    cat = await makeCatalog(world.deps, world.services, world.provider, engine, { gateSettings: { pendingFor: 1000 } });
    const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }]);
    await drive(world.deps, world.clock, engine.worker, 2000);

    const order = await orderRow(world.deps.db, orderId);
    expect(order.status).to.equal('PF');
    expect(order.failure_reason).to.match(/^Item 1 \(Web\) could not be provisioned: service gate 'sandbox' was still pending after its task's attempts and 30 late checks/);
    expect(order.failure_reason).to.contain('voided');
    const [late] = (await world.deps.db('tasks').where({ kind: SAGA_LATE_COMPLETION })) as { status: string; attempts: number }[];
    expect({ status: late!.status, attempts: toNumber(late!.attempts) }).to.deep.equal({ status: 'done', attempts: 30 });
    const sub = (await world.deps.db('subscriptions').where({ order_id: orderId }).first('status', 'service_status')) as { status: number; service_status: number };
    expect([toNumber(sub.status), toNumber(sub.service_status)]).to.deep.equal([60, 90]);
  });
});
