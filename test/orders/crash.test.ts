import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { toNumber } from '../../src/db/knex';
import { makeWorld, type World } from '../helpers/world';
import { journal, makeCatalog, makeEngine, orderRow, placeOrder, type Catalog } from './fixtures';

/**
 * The engine runs in a child process that is killed (SIGKILL) at a chosen moment; a second child takes over. The
 * order must end as it would have without the crash, and the sandbox gate's own log (its state file) must show
 * every action done once: no operation id twice, no service provisioned or terminated twice.
 */

type Message = { stopped?: string; status?: string; error?: string };

function run(url: string, orderId: number, crashAt?: string): { child: ChildProcess; message: Promise<Message> } {
  const child = fork(path.join(__dirname, 'crash-child.ts'), [url, String(orderId), ...(crashAt ? [crashAt] : [])], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const message = new Promise<Message>((resolve, reject) => {
    child.once('message', (m) => resolve(m as Message));
    child.once('exit', (code, signal) => reject(new Error(`The child exited (${code ?? signal}) without a word.`)));
  });
  return { child, message };
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

describe('order engine: a process killed mid-order, then restarted', function () {
  this.timeout(60_000);
  let world: World;
  let cat: Catalog;

  beforeEach(async () => {
    world = await makeWorld();
    cat = await makeCatalog(world.deps, world.services, world.provider, makeEngine(world.deps, world.services));
  });
  afterEach(async () => {
    await world?.close();
    if (cat) fs.rmSync(cat.dir, { recursive: true, force: true });
  });

  async function crashThenFinish(orderId: number, crashAt: string): Promise<string> {
    const first = run(world.fresh.url, orderId, crashAt);
    const m1 = await first.message;
    expect(m1, `first child: ${m1.error ?? ''}`).to.deep.equal({ stopped: crashAt });
    first.child.kill('SIGKILL');
    await exited(first.child);
    const second = run(world.fresh.url, orderId);
    const m2 = await second.message;
    await exited(second.child);
    expect(m2.error, 'second child').to.equal(undefined);
    // The task the first child was running when it died ran once more, in the second child.
    const rerun = (await world.deps.db('tasks').where('attempts', '>', 1).select('kind', 'attempts')) as { kind: string; attempts: number }[];
    expect(rerun.map((t) => toNumber(t.attempts))).to.deep.equal([2]);
    return m2.status as string;
  }

  function expectNothingTwice(): void {
    const log = journal(cat);
    const ops = log.map((e) => e.operationId);
    expect(new Set(ops).size, `operation ids in ${JSON.stringify(log)}`).to.equal(ops.length);
    const acts = log.map((e) => `${e.action} ${e.reference}`);
    expect(new Set(acts).size, `actions in ${JSON.stringify(acts)}`).to.equal(acts.length);
  }

  for (const crashAt of ['gate:provision:1', 'gate:provision:2', 'task:3', 'task:5']) {
    it(`completes a 3-item order killed at ${crashAt}, provisioning each item once`, async () => {
      const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }, { plan: 1 }, { plan: 2 }]);
      expect(await crashThenFinish(orderId, crashAt)).to.equal('CP');
      expectNothingTwice();
      expect(journal(cat).map((e) => e.action)).to.deep.equal(['provision', 'provision', 'provision']);
      const subs = (await world.deps.db('subscriptions').where({ order_id: orderId }).select('status')) as { status: number }[];
      expect(subs.map((s) => toNumber(s.status))).to.deep.equal([30, 30, 30]);
      expect((await world.deps.db('payments').where({ order_id: orderId }).count({ n: '*' }))[0]).to.deep.include({ n: 1 });
    });
  }

  for (const crashAt of ['gate:provision:2', 'gate:provision:3', 'gate:terminate:1', 'gate:terminate:2', 'task:6', 'task:7', 'task:8', 'task:9']) {
    it(`rolls back a bundle whose third item fails, killed at ${crashAt}: 2 then 1 terminated once each, payment voided, PF`, async () => {
      const orderId = await placeOrder(world.deps, world.services, cat, [{ plan: 0 }, { plan: 1 }, { plan: 2, parameters: { sandbox_fail: 'provision' } }]);
      expect(await crashThenFinish(orderId, crashAt)).to.equal('PF');
      expectNothingTwice();
      const subs = (await world.deps.db('subscriptions').where({ order_id: orderId }).orderBy('id').select('gate_reference', 'status')) as { gate_reference: string | null; status: number }[];
      expect(journal(cat).map((e) => `${e.action} ${e.reference}`)).to.deep.equal([
        `provision ${subs[0].gate_reference}`,
        `provision ${subs[1].gate_reference}`,
        `terminate ${subs[1].gate_reference}`,
        `terminate ${subs[0].gate_reference}`,
      ]);
      expect(subs.map((s) => toNumber(s.status))).to.deep.equal([60, 60, 60]);
      const order = await orderRow(world.deps.db, orderId);
      expect(order.failure_reason).to.contain('Item 3 (DNS) could not be provisioned');
      const charge = (await world.deps.db('payments').where({ id: order.payment_id }).first('status')) as { status: string };
      expect(charge.status).to.equal('voided');
    });
  }
});
