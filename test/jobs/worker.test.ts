import { expect } from 'chai';
import type { Db } from '../../src/db/knex';
import { TaskQueue, type Task } from '../../src/jobs/task-queue';
import { Worker, type TaskContext, type TaskHandler, type WorkerOptions } from '../../src/jobs/worker';
import { makeWorld, type World } from '../helpers/world';
import { count, eventually, gate, sleep } from './helpers';

let world: World;
let queue: TaskQueue;
let db: Db;

const OPTS: WorkerOptions = { owner: 'node-a', concurrency: 2, pollMs: 5, leaseMs: 30_000 };

function worker(handlers: Record<string, TaskHandler>, opts: Partial<WorkerOptions> = {}): Worker {
  return new Worker(world.deps, queue, handlers, { ...OPTS, ...opts });
}

async function task(id: number): Promise<Task> {
  return queue.get(world.provider, id);
}

describe('task worker', () => {
  beforeEach(async () => {
    world = await makeWorld();
    db = world.deps.db;
    queue = new TaskQueue(world.deps);
  });
  afterEach(async () => {
    await world?.close();
  });

  it("runs a task with its kind's handler, handing it the payload, operation id and attempt, and marks it done with the handler's result", async () => {
    const id = await queue.enqueue(db, { kind: 'gate.provision', payload: { domain: 'example.com' } });
    const seen: { payload: unknown; ctx: Pick<TaskContext, 'operationId' | 'attempt'> }[] = [];
    const w = worker({
      'gate.provision': async (t, ctx) => {
        seen.push({ payload: t.payload, ctx: { operationId: ctx.operationId, attempt: ctx.attempt } });
        return { status: 'done', result: { panelAccount: 'ex-1' } };
      },
    });
    expect(await w.runOnce()).to.equal(1);
    const done = await task(id);
    expect(seen).to.deep.equal([{ payload: { domain: 'example.com' }, ctx: { operationId: done.operationId, attempt: 1 } }]);
    expect(done).to.deep.include({ status: 'done', result: { panelAccount: 'ex-1' }, leaseOwner: null });
    expect(await w.runOnce()).to.equal(0);
  });

  it("treats a handler that throws as a retryable failure with the error's message", async () => {
    const id = await queue.enqueue(db, { kind: 'gate.provision' });
    await worker({ 'gate.provision': async () => Promise.reject(new Error('connect ECONNREFUSED 10.0.0.5:8443')) }).runOnce();
    expect(await task(id)).to.deep.include({ status: 'pending', attempts: 1, lastError: 'connect ECONNREFUSED 10.0.0.5:8443' });
  });

  it("follows a handler's retry outcome: a retryable one waits for the backoff, one that is not fails for good", async () => {
    const soft = await queue.enqueue(db, { kind: 'soft' });
    const hard = await queue.enqueue(db, { kind: 'hard' });
    await worker({
      soft: async () => ({ status: 'retry', error: 'panel busy', retryable: true }),
      hard: async () => ({ status: 'retry', error: 'plan not found on the panel', retryable: false }),
    }).runOnce();
    expect(await task(soft)).to.deep.include({ status: 'pending', lastError: 'panel busy' });
    expect((await task(soft)).runAt.getTime()).to.be.above(world.clock.now().getTime());
    expect(await task(hard)).to.deep.include({ status: 'failed', lastError: 'plan not found on the panel' });
    expect(await count(db, 'events', { name: 'task.failed', object_id: String(hard) })).to.equal(1);
  });

  it('fails for good, at once, a task of a kind it has no handler for (even one named like an Object member)', async () => {
    const unknown = await queue.enqueue(db, { kind: 'gate.teleport' });
    const proto = await queue.enqueue(db, { kind: 'constructor' });
    await worker({ 'gate.provision': async () => ({ status: 'done' }) }).runOnce();
    expect(await task(unknown)).to.deep.include({ status: 'failed', attempts: 1, lastError: "No handler for task kind 'gate.teleport' on worker node-a." });
    expect((await task(proto)).status).to.equal('failed');
  });

  it('runs at most `concurrency` tasks at once', async () => {
    for (let i = 0; i < 6; i++) await queue.enqueue(db, { kind: 'slow' });
    let active = 0;
    let most = 0;
    const w = worker(
      {
        slow: async () => {
          most = Math.max(most, ++active);
          await sleep(10);
          active--;
          return { status: 'done' };
        },
      },
      { concurrency: 2 },
    );
    expect(await w.runOnce()).to.equal(2);
    w.start();
    expect(await eventually(async () => (await count(db, 'tasks', { status: 'done' })) === 6)).to.equal(true);
    await w.stop();
    expect(most).to.equal(2);
  });

  it('extends the lease of a long task on its own, so no other worker takes it while it runs', async () => {
    const id = await queue.enqueue(db, { kind: 'long' });
    const started = gate();
    const finish = gate();
    const w = worker(
      {
        long: async () => {
          started.open();
          await finish.promise;
          return { status: 'done' };
        },
      },
      { heartbeatMs: 5 },
    );
    const run = w.runOnce();
    try {
      await started.promise;
      for (let i = 0; i < 3; i++) {
        world.clock.advance(20_000);
        const target = world.clock.now().getTime() + 30_000;
        expect(await eventually(async () => Number((await db('tasks').where({ id }).first('lease_until')).lease_until) === target, 2_000, 5)).to.equal(true);
      }
      expect(await queue.lease('node-b', { limit: 1, leaseMs: 30_000 })).to.deep.equal([]);
    } finally {
      finish.open();
      await run;
    }
    expect(await task(id)).to.deep.include({ status: 'done', attempts: 1 });
  });

  it("aborts the handler's signal when its lease passed to another worker, and leaves the task to the new holder", async () => {
    const id = await queue.enqueue(db, { kind: 'long' });
    let aborted: boolean | undefined;
    const w = worker(
      {
        long: async (_t, ctx) => {
          world.clock.advance(30_000); // this worker stalls past its lease ...
          await queue.lease('node-b', { limit: 1, leaseMs: 30_000 }); // ... and another takes the task
          expect(await ctx.extendLease()).to.equal(false);
          aborted = ctx.signal.aborted;
          return { status: 'done' };
        },
      },
      { heartbeatMs: 60_000 },
    );
    await w.runOnce();
    expect(aborted).to.equal(true);
    expect(await task(id)).to.deep.include({ status: 'running', leaseOwner: 'node-b', attempts: 2 });
  });

  it('picks up the tasks of a worker that died once their leases pass, running each once more with the same operation id', async () => {
    for (let i = 0; i < 3; i++) await queue.enqueue(db, { kind: 'gate.provision' });
    const orphaned = await queue.lease('dead-node', { limit: 3, leaseMs: 30_000 });
    const runs: string[] = [];
    const w = worker({ 'gate.provision': async (_t, ctx) => (runs.push(ctx.operationId), { status: 'done' }) }, { concurrency: 5 });
    expect(await w.runOnce()).to.equal(0);
    world.clock.advance(30_000);
    expect(await w.runOnce()).to.equal(3);
    expect(runs).to.deep.equal(orphaned.map((t) => t.operationId));
    expect(await count(db, 'tasks', { status: 'done', attempts: 2 })).to.equal(3);
  });

  it('stops leasing on stop(), and returns only once the tasks running then are done', async () => {
    const first = await queue.enqueue(db, { kind: 'long' });
    const started = gate();
    const finish = gate();
    const w = worker(
      {
        long: async () => {
          started.open();
          await finish.promise;
          return { status: 'done' };
        },
      },
      { concurrency: 1 },
    );
    w.start();
    await started.promise;
    const later = await queue.enqueue(db, { kind: 'long' });
    let stopped = false;
    const stopping = w.stop().then(() => (stopped = true));
    await sleep(30);
    expect(stopped, 'stop() should wait for the running task').to.equal(false);
    finish.open();
    await stopping;
    expect((await task(first)).status).to.equal('done');
    expect((await task(later)).status).to.equal('pending');
  });
});

describe('worker wake-up on enqueue', () => {
  it('starts on a task enqueued in this process as soon as its transaction commits, not at the next poll', async () => {
    const world = await makeWorld();
    const queue = new TaskQueue(world.deps);
    let ranAt = 0;
    const worker = new Worker(world.deps, queue, { 'test.wake': async () => ((ranAt = Date.now()), { status: 'done' }) }, { owner: 'wake-test', pollMs: 60_000 });
    worker.start();
    try {
      await new Promise((r) => setTimeout(r, 50)); // the first (empty) poll has happened; the next is a minute away
      const committedAt = Date.now();
      await world.deps.db.transaction((tx) => queue.enqueue(tx, { kind: 'test.wake' }));
      for (let i = 0; i < 100 && !ranAt; i++) await new Promise((r) => setTimeout(r, 10));
      expect(ranAt, 'the task ran').to.be.greaterThan(0);
      expect(ranAt - committedAt).to.be.lessThan(1000);
    } finally {
      await worker.stop();
      await world.close();
    }
  });
});
