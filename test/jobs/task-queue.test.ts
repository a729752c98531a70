import { expect } from 'chai';
import type { Actor } from '../../src/context';
import { createDb, type Db } from '../../src/db/knex';
import { jitterOf } from '../../src/jobs/backoff';
import { MAX_ERROR_LENGTH, TaskQueue, type Task } from '../../src/jobs/task-queue';
import { Worker, type TaskHandler } from '../../src/jobs/worker';
import { dialect } from '../helpers/db';
import { accountActor, makeWorld, type World } from '../helpers/world';
import { count, eventually, failure, gate, sleep } from './helpers';

const LEASE = { limit: 10, leaseMs: 30_000 };

let world: World;
let queue: TaskQueue;
let db: Db;

async function row(id: number): Promise<Record<string, unknown>> {
  return (await db('tasks').where({ id }).first()) as Record<string, unknown>;
}

const ids = (tasks: Task[]) => tasks.map((t) => t.taskId);

describe('task queue', () => {
  beforeEach(async () => {
    world = await makeWorld();
    db = world.deps.db;
    queue = new TaskQueue(world.deps);
  });
  afterEach(async () => {
    await world?.close();
  });

  describe('enqueue', () => {
    it('adds nothing when the transaction that enqueued the task rolls back', async () => {
      await db
        .transaction(async (tx) => {
          await queue.enqueue(tx, { kind: 'gate.provision', queue: 'provisioning', payload: { subscriptionId: 7 } });
          expect(await count(tx, 'tasks')).to.equal(1);
          throw new Error('the order could not be placed');
        })
        .catch(() => undefined);
      expect(await count(db, 'tasks')).to.equal(0);
      expect(await queue.lease('node-a', LEASE)).to.deep.equal([]);
    });

    it('stores a task as pending, due now, with its owner, object, payload and an operation id of its own', async () => {
      const a = await accountActor(world, world.provider, 'customer', 'Bluebird');
      const id = await queue.enqueue(db, { kind: 'gate.provision', queue: 'provisioning', accountId: a.accountId, objectType: 'subscription', objectId: 42, payload: { plan: 'Basic', amount: 12345678901234567n } });
      const other = await queue.enqueue(db, { kind: 'gate.provision' });
      const task = await queue.get(world.provider, id);
      expect(task).to.deep.include({ taskId: id, kind: 'gate.provision', queue: 'provisioning', accountId: a.accountId, objectType: 'subscription', objectId: '42', status: 'pending', attempts: 0, maxAttempts: 10, leaseOwner: null, leaseUntil: null, lastError: null, dedupeKey: null, finishedAt: null });
      expect(task.payload).to.deep.equal({ plan: 'Basic', amount: '12345678901234567' });
      expect(task.runAt).to.deep.equal(world.clock.now());
      expect(task.operationId).to.match(/^[0-9a-f-]{36}$/);
      expect((await queue.get(world.provider, other)).queue).to.equal('default');
      expect((await queue.get(world.provider, other)).operationId).not.to.equal(task.operationId);
    });

    it('makes one task of a dedupe key enqueued twice, in one transaction or in two at once', async () => {
      const first = await queue.enqueue(db, { kind: 'gate.provision', dedupeKey: 'provision:sub:1', payload: { n: 1 } });
      const again = await queue.enqueue(db, { kind: 'gate.provision', dedupeKey: 'provision:sub:1', payload: { n: 2 } });
      const together = await Promise.all([1, 2, 3].map((n) => db.transaction((tx) => queue.enqueue(tx, { kind: 'gate.suspend', dedupeKey: 'suspend:sub:1', payload: { n } }))));
      expect(again).to.equal(first);
      expect(new Set(together).size).to.equal(1);
      expect(await count(db, 'tasks')).to.equal(2);
      expect((await queue.get(world.provider, first)).payload).to.deep.equal({ n: 1 });
    });

    it('refuses a task without a kind (on kind), and a payload that is not an object (on payload)', async () => {
      await failure(queue.enqueue(db, { kind: ' ' }), 'INVALID_ARGUMENT', 'kind');
      await failure(queue.enqueue(db, { kind: 'x', payload: [1, 2] as unknown as Record<string, unknown> }), 'INVALID_ARGUMENT', 'payload');
      await failure(queue.enqueue(db, { kind: 'x', maxAttempts: 0 }), 'INVALID_ARGUMENT', 'maxAttempts');
      expect(await count(db, 'tasks')).to.equal(0);
    });
  });

  describe('leasing', () => {
    it('leases due tasks by run_at then id, up to the limit, never one not yet due', async () => {
      const now = world.clock.now().getTime();
      const late = await queue.enqueue(db, { kind: 'k', runAt: new Date(now - 1_000) });
      const early = await queue.enqueue(db, { kind: 'k', runAt: new Date(now - 60_000) });
      const sameA = await queue.enqueue(db, { kind: 'k', runAt: new Date(now - 5_000) });
      const sameB = await queue.enqueue(db, { kind: 'k', runAt: new Date(now - 5_000) });
      const future = await queue.enqueue(db, { kind: 'k', runAt: new Date(now + 1) });
      const first = await queue.lease('node-a', { limit: 3, leaseMs: 30_000 });
      expect(ids(first)).to.deep.equal([early, sameA, sameB]);
      expect(first[0]).to.deep.include({ status: 'running', attempts: 1, leaseOwner: 'node-a' });
      expect(first[0].leaseUntil).to.deep.equal(new Date(now + 30_000));
      expect(ids(await queue.lease('node-a', LEASE))).to.deep.equal([late]);
      world.clock.advance(1);
      expect(ids(await queue.lease('node-a', LEASE))).to.deep.equal([future]);
    });

    it('leases only from the queues asked for', async () => {
      const provisioning = await queue.enqueue(db, { kind: 'gate.provision', queue: 'provisioning' });
      const delivery = await queue.enqueue(db, { kind: 'webhook.deliver', queue: 'delivery' });
      expect(ids(await queue.lease('node-a', { ...LEASE, queues: ['delivery'] }))).to.deep.equal([delivery]);
      expect(ids(await queue.lease('node-a', { ...LEASE, queues: ['delivery'] }))).to.deep.equal([]);
      expect(ids(await queue.lease('node-a', LEASE))).to.deep.equal([provisioning]);
    });

    it('does not lease a leased task again until its lease passes, then gives it to another worker (its first one died)', async () => {
      const id = await queue.enqueue(db, { kind: 'gate.provision' });
      const [held] = await queue.lease('node-a', LEASE);
      expect(await queue.lease('node-b', LEASE)).to.deep.equal([]);
      world.clock.advance(29_999);
      expect(await queue.lease('node-b', LEASE)).to.deep.equal([]);
      world.clock.advance(1);
      const [taken] = await queue.lease('node-b', LEASE);
      expect(taken).to.deep.include({ taskId: id, leaseOwner: 'node-b', attempts: 2, operationId: held.operationId });
      expect(taken.lastError).to.match(/lease of worker node-a expired during attempt 1/);
      expect(await queue.lease('node-c', LEASE)).to.deep.equal([]);
    });

    it('refuses completion by a worker whose lease passed to another, and accepts the new holder', async () => {
      const id = await queue.enqueue(db, { kind: 'gate.provision' });
      await queue.lease('node-a', LEASE);
      world.clock.advance(30_000);
      await queue.lease('node-b', LEASE);
      const err = await failure(queue.complete(id, 'node-a'), 'CONFLICT');
      expect(err.message).to.match(/not leased by node-a/);
      await failure(queue.fail(id, 'node-a', 'late', { retryable: true }), 'CONFLICT');
      expect(await queue.extendLease(id, 'node-a', 30_000)).to.equal(false);
      await queue.complete(id, 'node-b', { accountRef: 'panel-77' });
      expect(await row(id)).to.include({ status: 'done', lease_owner: null, finished_at: world.clock.now().getTime() });
      expect((await queue.get(world.provider, id)).result).to.deep.equal({ accountRef: 'panel-77' });
      await failure(queue.complete(id, 'node-b'), 'CONFLICT');
    });

    it('moves a lease on for its holder only, so the task is not taken while its worker is alive', async () => {
      const id = await queue.enqueue(db, { kind: 'gate.provision' });
      await queue.lease('node-a', LEASE);
      world.clock.advance(20_000);
      expect(await queue.extendLease(id, 'node-a', 30_000)).to.equal(true);
      expect(Number((await row(id)).lease_until)).to.equal(world.clock.now().getTime() + 30_000);
      world.clock.advance(20_000);
      expect(await queue.lease('node-b', LEASE)).to.deep.equal([]);
      expect(await queue.extendLease(id, 'node-b', 30_000)).to.equal(false);
    });

    it('fails for good a task whose worker died during its last attempt, with a task.failed event', async () => {
      const id = await queue.enqueue(db, { kind: 'gate.provision', maxAttempts: 1 });
      await queue.lease('node-a', LEASE);
      world.clock.advance(30_000);
      expect(await queue.lease('node-b', LEASE)).to.deep.equal([]);
      const task = await queue.get(world.provider, id);
      expect(task).to.deep.include({ status: 'failed', attempts: 1, leaseOwner: null });
      expect(task.lastError).to.match(/lease of worker node-a expired during attempt 1 of 1/);
      expect(await count(db, 'events', { name: 'task.failed', object_type: 'task', object_id: String(id) })).to.equal(1);
    });
  });

  describe('failures and backoff', () => {
    it('retries a failing task after 5 s, 10 s, 20 s ... doubling up to 1 h, each less the task’s own jitter, and not a millisecond earlier', async () => {
      const id = await queue.enqueue(db, { kind: 'gate.provision', maxAttempts: 14 });
      const waits: number[] = [];
      for (let attempt = 1; attempt <= 13; attempt++) {
        const [t] = await queue.lease('node-a', LEASE);
        expect(t).to.deep.include({ taskId: id, attempts: attempt });
        const next = await queue.fail(id, 'node-a', `panel unreachable (${attempt})`, { retryable: true });
        expect(next.status).to.equal('pending');
        waits.push(next.runAt.getTime() - world.clock.now().getTime());
        expect(Number((await row(id)).run_at)).to.equal(next.runAt.getTime());
        world.clock.set(new Date(next.runAt.getTime() - 1));
        expect(await queue.lease('node-a', LEASE)).to.deep.equal([]);
        world.clock.advance(1);
      }
      const nominal = [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600, 3600].map((s) => s * 1000);
      expect(waits).to.deep.equal(nominal.map((n) => n - Math.floor(n * jitterOf(id))));
      expect((await queue.get(world.provider, id)).lastError).to.equal('panel unreachable (13)');
    });

    it('fails a task for good at its last attempt, keeping the last error, with an audit record and a task.failed event', async () => {
      const a = await accountActor(world, world.provider, 'customer', 'Bluebird');
      const id = await queue.enqueue(db, { kind: 'gate.provision', accountId: a.accountId, objectType: 'subscription', objectId: 9, maxAttempts: 2 });
      await queue.lease('node-a', LEASE);
      expect((await queue.fail(id, 'node-a', 'timeout', { retryable: true })).status).to.equal('pending');
      world.clock.advance(60_000);
      await queue.lease('node-a', LEASE);
      const last = await queue.fail(id, 'node-a', new Error('panel said: quota exceeded'), { retryable: true });
      expect(last).to.deep.include({ status: 'failed', attempts: 2 });
      expect(await row(id)).to.include({ status: 'failed', last_error: 'panel said: quota exceeded', lease_owner: null, finished_at: world.clock.now().getTime() });
      const event = (await db('events').where({ name: 'task.failed', object_id: String(id) }).first()) as { account_id: number; payload: string; created_at: number };
      expect(Number(event.account_id)).to.equal(a.accountId);
      expect(JSON.parse(event.payload)).to.deep.include({ taskId: id, kind: 'gate.provision', objectType: 'subscription', objectId: '9', attempts: 2, lastError: 'panel said: quota exceeded' });
      const audit = (await db('audit_log').where({ operation: 'FailTask', object_type: 'task', object_id: String(id) }).first()) as { channel: string; at: number };
      expect(audit.channel).to.equal('job');
      expect(Number(audit.at)).to.equal(Number(event.created_at));
      expect(await queue.lease('node-a', LEASE)).to.deep.equal([]);
    });

    it('fails a task for good at once when its failure is not retryable, and keeps at most the start of a long error', async () => {
      const id = await queue.enqueue(db, { kind: 'gate.provision' });
      await queue.lease('node-a', LEASE);
      const next = await queue.fail(id, 'node-a', 'x'.repeat(10_000), { retryable: false });
      expect(next).to.deep.include({ status: 'failed', attempts: 1 });
      const lastError = (await queue.get(world.provider, id)).lastError as string;
      expect(lastError).to.have.length(MAX_ERROR_LENGTH);
      expect(lastError.endsWith('…')).to.equal(true);
    });

    it('writes a final failure, its audit record and its event in one transaction: when the event cannot be written, the task stays running', async () => {
      const id = await queue.enqueue(db, { kind: 'gate.provision', maxAttempts: 1 });
      await queue.lease('node-a', LEASE);
      await db.schema.renameTable('events', 'events_away');
      try {
        let caught: unknown;
        await queue.fail(id, 'node-a', 'boom', { retryable: true }).catch((e: unknown) => (caught = e));
        expect(caught, 'the failure should not be recorded without its event').to.be.instanceOf(Error);
      } finally {
        await db.schema.renameTable('events_away', 'events');
      }
      expect(await row(id)).to.include({ status: 'running', lease_owner: 'node-a', last_error: null });
      expect(await count(db, 'audit_log', { operation: 'FailTask' })).to.equal(0);
      await queue.fail(id, 'node-a', 'boom', { retryable: true });
      expect(await count(db, 'audit_log', { operation: 'FailTask' })).to.equal(1);
      expect(await count(db, 'events', { name: 'task.failed' })).to.equal(1);
    });
  });

  describe('operators', () => {
    async function failedTask(): Promise<number> {
      const id = await queue.enqueue(db, { kind: 'gate.provision', maxAttempts: 1 });
      await queue.lease('node-a', LEASE);
      await queue.fail(id, 'node-a', 'panel down', { retryable: true });
      return id;
    }

    it('retries a failed task now, keeping its attempts, last error and operation id, audited with a task.retried event; it gets one more attempt', async () => {
      const id = await failedTask();
      const before = await queue.get(world.provider, id);
      world.clock.advance(3_600_000);
      const retried = await queue.retry(world.provider, id);
      expect(retried).to.deep.include({ status: 'pending', attempts: 1, lastError: 'panel down', operationId: before.operationId, finishedAt: null });
      expect(retried.runAt).to.deep.equal(world.clock.now());
      expect(await count(db, 'audit_log', { operation: 'RetryTask', object_id: String(id), actor_account_id: world.provider.accountId })).to.equal(1);
      expect(await count(db, 'events', { name: 'task.retried', object_id: String(id) })).to.equal(1);
      const [again] = await queue.lease('node-b', LEASE);
      expect(again).to.deep.include({ taskId: id, attempts: 2, operationId: before.operationId });
      expect((await queue.fail(id, 'node-b', 'still down', { retryable: true })).status).to.equal('failed');
      expect(await count(db, 'events', { name: 'task.failed', object_id: String(id) })).to.equal(2);
    });

    it('refuses to retry a task that is pending, running or done (NOT_ALLOWED on taskId: its state forbids it)', async () => {
      const id = await queue.enqueue(db, { kind: 'gate.provision' });
      await failure(queue.retry(world.provider, id), 'NOT_ALLOWED', 'taskId');
      await queue.lease('node-a', LEASE);
      await failure(queue.retry(world.provider, id), 'NOT_ALLOWED', 'taskId');
      await queue.complete(id, 'node-a');
      await failure(queue.retry(world.provider, id), 'NOT_ALLOWED', 'taskId');
      expect(await count(db, 'events', { name: 'task.retried' })).to.equal(0);
    });

    it('cancels a pending task so no worker leases it, audited with a task.canceled event; a canceled task can be retried', async () => {
      const id = await queue.enqueue(db, { kind: 'gate.provision' });
      const canceled = await queue.cancel(world.provider, id);
      expect(canceled).to.deep.include({ status: 'canceled' });
      expect(canceled.finishedAt).to.deep.equal(world.clock.now());
      expect(await queue.lease('node-a', LEASE)).to.deep.equal([]);
      expect(await count(db, 'audit_log', { operation: 'CancelTask', object_id: String(id) })).to.equal(1);
      expect(await count(db, 'events', { name: 'task.canceled', object_id: String(id) })).to.equal(1);
      await queue.retry(world.provider, id);
      expect(ids(await queue.lease('node-a', LEASE))).to.deep.equal([id]);
    });

    it('refuses to cancel a running task (NOT_ALLOWED on taskId): it cannot be stopped mid-attempt', async () => {
      const id = await queue.enqueue(db, { kind: 'gate.provision' });
      await queue.lease('node-a', LEASE);
      await failure(queue.cancel(world.provider, id), 'NOT_ALLOWED', 'taskId');
      expect((await row(id)).status).to.equal('running');
    });
  });

  describe('scoping', () => {
    let alpha: Actor;
    let alphaCustomer: Actor;
    let beta: Actor;
    let tasks: { system: number; alpha: number; alphaCustomer: number; beta: number };

    beforeEach(async () => {
      alpha = await accountActor(world, world.provider, 'reseller', 'Alpha');
      alphaCustomer = await accountActor(world, alpha, 'customer', 'Alpha Customer');
      beta = await accountActor(world, world.provider, 'reseller', 'Beta');
      tasks = {
        system: await queue.enqueue(db, { kind: 'billing.run', queue: 'billing' }),
        alpha: await queue.enqueue(db, { kind: 'webhook.deliver', queue: 'delivery', accountId: alpha.accountId }),
        alphaCustomer: await queue.enqueue(db, { kind: 'gate.provision', queue: 'provisioning', accountId: alphaCustomer.accountId, objectType: 'subscription', objectId: 5 }),
        beta: await queue.enqueue(db, { kind: 'gate.provision', queue: 'provisioning', accountId: beta.accountId, objectType: 'subscription', objectId: 6 }),
      };
    });

    it("lists to a reseller its own subtree's tasks only, newest first; to a customer its own; to the provider all, system tasks too", async () => {
      const mine = await queue.list(alpha, {});
      expect(ids(mine.items)).to.deep.equal([tasks.alphaCustomer, tasks.alpha]);
      expect(mine.total).to.equal(2);
      expect(ids((await queue.list(alphaCustomer, {})).items)).to.deep.equal([tasks.alphaCustomer]);
      expect(ids((await queue.list(world.provider, {})).items)).to.deep.equal([tasks.beta, tasks.alphaCustomer, tasks.alpha, tasks.system]);
    });

    it('filters a list by status, kind, queue and object, and pages it', async () => {
      const p = world.provider;
      expect(ids((await queue.list(p, { kind: 'gate.provision' })).items)).to.deep.equal([tasks.beta, tasks.alphaCustomer]);
      expect(ids((await queue.list(p, { queue: 'billing' })).items)).to.deep.equal([tasks.system]);
      expect(ids((await queue.list(p, { objectType: 'subscription', objectId: 5 })).items)).to.deep.equal([tasks.alphaCustomer]);
      await queue.cancel(p, tasks.alpha);
      expect(ids((await queue.list(p, { status: 'canceled' })).items)).to.deep.equal([tasks.alpha]);
      const page2 = await queue.list(p, { page: 2, pageSize: 3 });
      expect({ items: ids(page2.items), total: page2.total }).to.deep.equal({ items: [tasks.system], total: 4 });
      await failure(queue.list(p, { status: 'stuck' }), 'INVALID_ARGUMENT', 'status');
    });

    it("answers another reseller's task, and a system task, like a missing one, for get, retry and cancel", async () => {
      const missing = await failure(queue.get(alpha, 999_999), 'NOT_FOUND');
      for (const hidden of [tasks.beta, tasks.system]) {
        for (const call of [queue.get, queue.retry, queue.cancel]) {
          const err = await failure(call.call(queue, alpha, hidden), 'NOT_FOUND');
          expect(err.message.replace(String(hidden), '#')).to.equal(missing.message.replace('999999', '#'));
        }
      }
      await failure(queue.get(alphaCustomer, tasks.alpha), 'NOT_FOUND');
      expect((await row(tasks.beta)).status).to.equal('pending');
      expect((await queue.get(alpha, tasks.alphaCustomer)).taskId).to.equal(tasks.alphaCustomer);
      expect((await queue.cancel(alpha, tasks.alphaCustomer)).status).to.equal('canceled');
    });
  });

  describe('several workers on one database', () => {
    const extra: Db[] = [];
    afterEach(async () => {
      await Promise.all(extra.splice(0).map((d) => d.destroy()));
    });

    /** Runs `workers` workers, each on its own connection, until every one of `n` tasks is done; returns runs per task id and tasks per worker. */
    async function runConcurrently(n: number, workers: number, prepare: (db: Db) => Promise<void>) {
      await db.transaction(async (tx) => {
        for (let i = 0; i < n; i++) await queue.enqueue(tx, { kind: 'count', payload: { i } });
      });
      const runs = new Map<number, number>();
      const byWorker = new Map<string, number>();
      const handler: TaskHandler = async (task) => {
        runs.set(task.taskId, (runs.get(task.taskId) ?? 0) + 1);
        await sleep(Math.random() * 3);
        return { status: 'done' };
      };
      const pool: Worker[] = [];
      for (let w = 0; w < workers; w++) {
        const own = createDb(world.fresh.url);
        extra.push(own);
        await prepare(own);
        const deps = { ...world.deps, db: own };
        const owner = `node-${w}`;
        pool.push(new Worker(deps, new TaskQueue(deps), { count: (t, ctx) => (byWorker.set(owner, (byWorker.get(owner) ?? 0) + 1), handler(t, ctx)) }, { owner, concurrency: 5, pollMs: 5, leaseMs: 60_000 }));
      }
      pool.forEach((w) => w.start());
      const finished = await eventually(async () => (await count(db, 'tasks', { status: 'done' })) === n, 60_000, 25);
      await Promise.all(pool.map((w) => w.stop()));
      expect(finished, 'every task should be done').to.equal(true);
      return { runs, byWorker };
    }

    if (dialect === 'mysql') {
      it('skips a task another transaction has locked instead of waiting for it, and leases the next one', async () => {
        const busy = await queue.enqueue(db, { kind: 'count' });
        const free = await queue.enqueue(db, { kind: 'count' });
        const locked = gate();
        const release = gate();
        const holding = db.transaction(async (tx) => {
          await tx('tasks').where({ id: busy }).forUpdate().first();
          locked.open();
          await release.promise;
        });
        await locked.promise;
        try {
          const other = createDb(world.fresh.url);
          extra.push(other);
          const leased = await Promise.race([new TaskQueue({ ...world.deps, db: other }).lease('node-a', LEASE), sleep(3_000).then(() => 'waited' as const)]);
          expect(leased === 'waited' ? leased : ids(leased)).to.deep.equal([free]);
        } finally {
          release.open();
          await holding;
        }
        expect(ids(await queue.lease('node-b', LEASE))).to.deep.equal([busy]);
      });

      it('runs each of 200 tasks exactly once with 4 workers on 4 connection pools leasing at once (FOR UPDATE SKIP LOCKED)', async () => {
        const { runs, byWorker } = await runConcurrently(200, 4, async () => undefined);
        expect(runs.size).to.equal(200);
        expect([...runs.values()].filter((r) => r !== 1)).to.deep.equal([]);
        expect(byWorker.size, 'more than one worker should have taken part').to.be.above(1);
        expect(await count(db, 'tasks', { attempts: 1 })).to.equal(200);
      });
    } else {
      it('waits out a write lock another connection holds (SQLITE_BUSY), then leases the task once', async () => {
        const id = await queue.enqueue(db, { kind: 'count' });
        const mine = createDb(world.fresh.url);
        extra.push(mine);
        await mine.raw('PRAGMA busy_timeout = 0'); // so the wait is the queue's own, not SQLite's busy handler
        const locked = gate();
        const release = gate();
        const holding = db.transaction(async (tx) => {
          await tx('tasks').where({ id }).update({ updated_at: 1 });
          locked.open();
          await release.promise;
        });
        await locked.promise;
        let settled = false;
        const leasing = new TaskQueue({ ...world.deps, db: mine }).lease('node-a', LEASE).finally(() => (settled = true));
        leasing.catch(() => undefined); // awaited below; a rejection must not go unhandled meanwhile
        try {
          await sleep(100);
          expect(settled, 'the lease should wait while another connection writes').to.equal(false);
        } finally {
          release.open();
          await holding;
        }
        expect(ids(await leasing)).to.deep.equal([id]);
        expect(await queue.lease('node-b', LEASE)).to.deep.equal([]);
      });

      it('runs each of 100 tasks exactly once with 2 workers on 2 connections to one SQLite file, waiting out each other’s write lock', async () => {
        // busy_timeout 0: in one process a blocking busy wait would freeze the thread the other connection needs,
        // so every collision surfaces as SQLITE_BUSY, which the queue itself must absorb.
        const { runs, byWorker } = await runConcurrently(100, 2, async (own) => {
          await own.raw('PRAGMA busy_timeout = 0');
        });
        expect(runs.size).to.equal(100);
        expect([...runs.values()].filter((r) => r !== 1)).to.deep.equal([]);
        expect(byWorker.size, 'both workers should have taken part').to.equal(2);
        expect(await count(db, 'tasks', { attempts: 1 })).to.equal(100);
      });
    }
  });
});
