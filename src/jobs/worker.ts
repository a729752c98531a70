import crypto from 'node:crypto';
import os from 'node:os';
import type { Deps } from '../context';
import { isAppError } from '../domain/errors';
import { safeErrorMessage, type Logger } from '../logger';
import type { Task, TaskQueue } from './task-queue';

export type TaskOutcome = { status: 'done'; result?: unknown } | { status: 'retry'; error: string; retryable: boolean };

export interface TaskContext {
  /** The id to hand a plugin: the same on every attempt of this task. */
  operationId: string;
  /** 1 on the first attempt. */
  attempt: number;
  /** Aborted when this worker lost the task's lease: stop and let the new holder finish it. */
  signal: AbortSignal;
  /** Moves the lease on now (the worker also does so on its own every heartbeatMs); false when it was lost. */
  extendLease(): Promise<boolean>;
  log: Logger;
}

export type TaskHandler = (task: Task, ctx: TaskContext) => Promise<TaskOutcome>;

export interface WorkerOptions {
  /** Unique per worker across every process: the lease is held in this name. */
  owner: string;
  queues?: readonly string[];
  /** How long to wait for new tasks when none were due (real time). */
  pollMs?: number;
  /** Tasks run at once. */
  concurrency?: number;
  /** How long a lease lasts without being extended (clock time): a dead worker's tasks run elsewhere after it. */
  leaseMs?: number;
  /** How often a running task's lease is extended (real time); a third of leaseMs unless told. */
  heartbeatMs?: number;
}

/** A worker name unique to this process: host, pid and a random suffix. */
export function defaultOwner(): string {
  return `${os.hostname()}:${process.pid}:${crypto.randomBytes(3).toString('hex')}`;
}

/**
 * Leases tasks from the queue and runs them with their kind's handler, at most `concurrency` at a time. A handler
 * that throws is a retryable failure with its message; a kind without a handler fails for good. All instants come
 * from deps.clock; only the polling and heartbeat intervals are real time.
 */
export class Worker {
  readonly owner: string;
  private readonly handlers: Map<string, TaskHandler>;
  private readonly queues?: readonly string[];
  private readonly pollMs: number;
  private readonly concurrency: number;
  private readonly leaseMs: number;
  private readonly heartbeatMs: number;
  private readonly inFlight = new Map<number, Promise<void>>();
  private loop: Promise<void> | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly deps: Deps,
    private readonly queue: TaskQueue,
    handlers: Record<string, TaskHandler>,
    opts: WorkerOptions,
  ) {
    // A Map, so a task kind such as "constructor" or "__proto__" never finds an Object.prototype member.
    this.handlers = new Map(Object.entries(handlers));
    this.owner = opts.owner;
    this.queues = opts.queues;
    this.pollMs = opts.pollMs ?? 1000;
    this.concurrency = opts.concurrency ?? 4;
    this.leaseMs = opts.leaseMs ?? 5 * 60_000;
    this.heartbeatMs = opts.heartbeatMs ?? Math.max(1, Math.floor(this.leaseMs / 3));
  }

  /** Starts polling; returns at once. */
  start(): void {
    if (this.loop) return;
    this.stopping = false;
    this.unsubscribe = this.queue.onEnqueue(() => this.wake?.());
    this.loop = this.poll();
  }

  /** Stops leasing and waits for the tasks running now to finish and be settled. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    this.wake?.();
    await this.loop;
    this.loop = undefined;
    await Promise.all(this.inFlight.values());
  }

  /** Leases what fits in the free slots, runs it and settles it; returns how many tasks ran. For tests and cron. */
  async runOnce(): Promise<number> {
    const runs = await this.leaseFree();
    await Promise.all(runs);
    return runs.length;
  }

  get running(): number {
    return this.inFlight.size;
  }

  private async poll(): Promise<void> {
    while (!this.stopping) {
      let leased = 0;
      try {
        leased = (await this.leaseFree()).length;
      } catch (e) {
        this.deps.log.error('task lease failed', { owner: this.owner, error: safeErrorMessage(e) });
      }
      // Lease again at once while work keeps coming and slots are free; else wait for a slot or the poll interval.
      if (!this.stopping && (leased === 0 || this.inFlight.size >= this.concurrency)) await this.idle();
    }
  }

  /** Waits for the poll interval, or less when a slot frees up or stop() is called. */
  private idle(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.pollMs);
      this.wake = done;
    });
  }

  /** Leases what fits in the free slots and starts each task; returns the runs (each settles its task). */
  private async leaseFree(): Promise<Promise<void>[]> {
    const free = this.concurrency - this.inFlight.size;
    if (free <= 0) return [];
    const tasks = await this.queue.lease(this.owner, { queues: this.queues, limit: free, leaseMs: this.leaseMs, exclude: [...this.inFlight.keys()] });
    return tasks.map((task) => {
      const run = this.execute(task).finally(() => {
        this.inFlight.delete(task.taskId);
        this.wake?.();
      });
      this.inFlight.set(task.taskId, run);
      return run;
    });
  }

  private async execute(task: Task): Promise<void> {
    const log = this.deps.log.child({ taskId: task.taskId, kind: task.kind, attempt: task.attempts, owner: this.owner });
    const handler = this.handlers.get(task.kind);
    if (!handler) {
      await this.settle(task, log, { status: 'retry', error: `No handler for task kind '${task.kind}' on worker ${this.owner}.`, retryable: false });
      return;
    }
    const lease = new AbortController();
    const extendLease = async (): Promise<boolean> => {
      const ours = await this.queue.extendLease(task.taskId, this.owner, this.leaseMs);
      if (!ours && !lease.signal.aborted) lease.abort(new Error(`The lease of task ${task.taskId} passed to another worker.`));
      return ours;
    };
    let beating = false;
    const heartbeat = setInterval(() => {
      if (beating || lease.signal.aborted) return;
      beating = true;
      extendLease()
        .catch((e: unknown) => log.warn('task lease extension failed', { error: safeErrorMessage(e) }))
        .finally(() => (beating = false));
    }, this.heartbeatMs);
    heartbeat.unref();
    let outcome: TaskOutcome;
    try {
      outcome = checkOutcome(await handler(task, { operationId: task.operationId, attempt: task.attempts, signal: lease.signal, extendLease, log }));
    } catch (e) {
      outcome = { status: 'retry', error: safeErrorMessage(e), retryable: true };
    } finally {
      clearInterval(heartbeat);
    }
    if (lease.signal.aborted) {
      log.warn('task lease lost while running; its new holder settles it');
      return;
    }
    await this.settle(task, log, outcome);
  }

  private async settle(task: Task, log: Logger, outcome: TaskOutcome): Promise<void> {
    try {
      if (outcome.status === 'done') {
        await this.queue.complete(task.taskId, this.owner, outcome.result);
      } else {
        const next = await this.queue.fail(task.taskId, this.owner, outcome.error, { retryable: outcome.retryable });
        if (next.status === 'failed') log.warn('task failed for good', { error: outcome.error });
        else log.info('task attempt failed; will retry', { error: outcome.error, runAt: next.runAt.toISOString() });
      }
    } catch (e) {
      // The lease expires and another worker runs the task again: its operation id keeps that harmless.
      if (isAppError(e) && e.code === 'CONFLICT') log.warn('task lease lost before settling', { error: e.message });
      else log.error('task could not be settled', { error: safeErrorMessage(e) });
    }
  }
}

function checkOutcome(o: unknown): TaskOutcome {
  const v = o as Partial<TaskOutcome> | undefined;
  if (v?.status === 'done') return v as TaskOutcome;
  if (v?.status === 'retry') {
    const r = v as { error?: unknown; retryable?: unknown };
    return { status: 'retry', error: typeof r.error === 'string' && r.error ? r.error : 'The handler asked for a retry without saying why.', retryable: r.retryable !== false };
  }
  return { status: 'retry', error: `The handler returned neither {status:'done'} nor {status:'retry'}.`, retryable: false };
}
