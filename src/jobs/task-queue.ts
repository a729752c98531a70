import crypto from 'node:crypto';
import { bigintReplacer } from '../audit/audit';
import { recordChange } from '../audit/record-change';
import { systemActor, type Actor, type Deps } from '../context';
import { isSqlite, toNumber, toOptionalDate, type Conn, type Tx } from '../db/knex';
import { conflict, invalid, notAllowed, notFound } from '../domain/errors';
import { oneOf, optionalText, paging, positiveId, requiredText } from '../domain/fields';
import { isUniqueViolation } from '../idempotency';
import { safeErrorMessage } from '../logger';
import { retryDelay } from './backoff';
import { takeWriteLock } from '../db/transaction';

export const TASK_STATUSES = ['pending', 'running', 'done', 'failed', 'canceled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const DEFAULT_QUEUE = 'default';
export const DEFAULT_MAX_ATTEMPTS = 10;
export const MAX_ATTEMPTS_LIMIT = 100;
/** last_error keeps the start of a message: enough to act on, never a whole stack or response body. */
export const MAX_ERROR_LENGTH = 2000;
const MAX_PAYLOAD_CHARS = 1_000_000;
const MAX_LEASE_BATCH = 500;
/** Lock contention (SQLite's single writer, MariaDB deadlocks) is retried this many times before it is reported. */
const CONTENTION_RETRIES = 100;

export interface Task {
  taskId: number;
  kind: string;
  queue: string;
  accountId: number | null;
  objectType: string | null;
  objectId: string | null;
  payload: Record<string, unknown>;
  status: TaskStatus;
  attempts: number;
  maxAttempts: number;
  runAt: Date;
  leaseOwner: string | null;
  leaseUntil: Date | null;
  lastError: string | null;
  /** The id handed to plugins: the same on every attempt, so repeating a call has no extra effect. */
  operationId: string;
  dedupeKey: string | null;
  result: unknown;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

export interface EnqueueInput {
  kind: string;
  queue?: string;
  payload?: Record<string, unknown>;
  /** The owning account (scopes who may see and retry the task); none for a system task. */
  accountId?: number | null;
  objectType?: string;
  objectId?: string | number;
  runAt?: Date;
  maxAttempts?: number;
  /** At most one task ever exists per key: enqueueing it again returns the first task's id. */
  dedupeKey?: string;
}

export interface LeaseOptions {
  queues?: readonly string[];
  limit: number;
  leaseMs: number;
  /** Ids the caller is running already (a worker whose own lease lapsed must not run a task twice). */
  exclude?: readonly number[];
}

export interface TaskFilter {
  status?: string;
  kind?: string;
  queue?: string;
  objectType?: string;
  objectId?: string | number;
  /** Tasks on any of these queues or of any of these kinds (ANDed with the other filters). */
  anyOf?: { queues?: readonly string[]; kinds?: readonly string[] };
  page?: number;
  pageSize?: number;
}

export interface FailOutcome {
  status: 'pending' | 'failed';
  attempts: number;
  /** When a pending task runs next. */
  runAt: Date;
}

interface TaskRow {
  id: number;
  kind: string;
  queue: string;
  account_id: number | null;
  object_type: string | null;
  object_id: string | null;
  payload: string;
  status: TaskStatus;
  attempts: number;
  max_attempts: number;
  run_at: number;
  lease_owner: string | null;
  lease_until: number | null;
  last_error: string | null;
  result: string | null;
  operation_id: string;
  dedupe_key: string | null;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

export function truncateError(message: string): string {
  return message.length <= MAX_ERROR_LENGTH ? message : `${message.slice(0, MAX_ERROR_LENGTH - 1)}…`;
}

function isContention(e: unknown): boolean {
  const err = e as { code?: string; errno?: number };
  return (
    (typeof err?.code === 'string' && /^SQLITE_(BUSY|LOCKED)/.test(err.code)) ||
    err?.code === 'ER_LOCK_DEADLOCK' ||
    err?.code === 'ER_LOCK_WAIT_TIMEOUT' ||
    err?.errno === 1213 ||
    err?.errno === 1205
  );
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The durable task queue. Tasks are enqueued in the caller's transaction (so they exist exactly when the change
 * that needs them commits), leased by one worker at a time (FOR UPDATE SKIP LOCKED on MariaDB, the single writer
 * on SQLite), retried with backoff, and kept with their last error for operators to see and retry.
 */
export class TaskQueue {
  private readonly enqueueListeners = new Set<() => void>();
  private provider: { id: number; path: string } | undefined;

  constructor(private readonly deps: Deps) {}

  /** Adds a task in the caller's transaction (conn may be a Tx) and returns its id. */
  /** Called when a task enqueued in this process is committed: in-process workers start on it without waiting to poll. */
  onEnqueue(listener: () => void): () => void {
    this.enqueueListeners.add(listener);
    return () => this.enqueueListeners.delete(listener);
  }

  private notifyAfterCommit(conn: Conn): void {
    if (this.enqueueListeners.size === 0) return;
    const notify = () => {
      for (const listener of this.enqueueListeners) listener();
    };
    const committed = (conn as { executionPromise?: Promise<unknown> }).executionPromise;
    if (committed) committed.then(notify, () => undefined);
    else setImmediate(notify);
  }

  async enqueue(conn: Conn, input: EnqueueInput): Promise<number> {
    const row = this.newRow(input);
    if (row.dedupe_key !== null) {
      const existing = (await conn('tasks').where({ dedupe_key: row.dedupe_key }).first('id')) as { id: number } | undefined;
      if (existing) return toNumber(existing.id);
    }
    try {
      const [id] = (await conn('tasks').insert(row)) as number[];
      this.notifyAfterCommit(conn);
      return toNumber(id);
    } catch (e) {
      if (row.dedupe_key === null || !isUniqueViolation(e)) throw e;
      // A concurrent enqueue of the same key committed first; a locking read sees it past our snapshot.
      const q = conn('tasks').where({ dedupe_key: row.dedupe_key }).first('id');
      const twin = (await (isSqlite(conn) ? q : q.forShare())) as { id: number } | undefined;
      if (!twin) throw e;
      return toNumber(twin.id);
    }
  }

  /**
   * Leases up to `limit` due tasks to `owner` for `leaseMs`: first running tasks whose lease passed (their worker
   * died), then pending ones by run_at and id. Each leased task counts one more attempt.
   */
  async lease(owner: string, opts: LeaseOptions): Promise<Task[]> {
    const who = requiredText(owner, 'owner', 128);
    const limit = positiveId(opts.limit, 'limit');
    if (limit > MAX_LEASE_BATCH) throw invalid('limit', `limit may be at most ${MAX_LEASE_BATCH}.`);
    const leaseMs = positiveId(opts.leaseMs, 'leaseMs');
    return this.write(async (tx) => {
      const now = this.deps.clock.now().getTime();
      const expired = await this.due(tx, 'running', now, limit, opts);
      const reclaimed: TaskRow[] = [];
      for (const row of expired) {
        if (row.attempts >= row.max_attempts) {
          await this.failForGood(tx, row, `The lease of worker ${row.lease_owner} expired during attempt ${row.attempts} of ${row.max_attempts}: the worker stopped or lost the database, and no attempt is left.`, now);
        } else {
          reclaimed.push(row);
          await tx('tasks')
            .where({ id: row.id })
            .update({ last_error: truncateError(`The lease of worker ${row.lease_owner} expired during attempt ${row.attempts}: the worker stopped or lost the database.`) });
        }
      }
      const pending = reclaimed.length < limit ? await this.due(tx, 'pending', now, limit - reclaimed.length, opts) : [];
      const ids = [...reclaimed, ...pending].map((r) => toNumber(r.id));
      if (ids.length === 0) return [];
      await tx('tasks')
        .whereIn('id', ids)
        .update({ status: 'running', lease_owner: who, lease_until: now + leaseMs, attempts: tx.raw('attempts + 1'), updated_at: now });
      const rows = (await tx('tasks').whereIn('id', ids)) as TaskRow[];
      const byId = new Map(rows.map((r) => [toNumber(r.id), r]));
      return ids.map((id) => toTask(byId.get(id) as TaskRow));
    });
  }

  /** Moves a running task's lease on to now + leaseMs; false when the lease is no longer the owner's. */
  async extendLease(taskId: number, owner: string, leaseMs: number): Promise<boolean> {
    const id = positiveId(taskId, 'taskId');
    const ms = positiveId(leaseMs, 'leaseMs');
    return this.write(async (tx) => {
      const now = this.deps.clock.now().getTime();
      const n = await tx('tasks').where({ id, status: 'running', lease_owner: owner }).update({ lease_until: now + ms, updated_at: now });
      return n === 1;
    });
  }

  /** Marks a task done; CONFLICT when its lease is no longer the owner's (another worker has it, or it was settled). */
  async complete(taskId: number, owner: string, result?: unknown): Promise<void> {
    const id = positiveId(taskId, 'taskId');
    const json = result === undefined ? null : JSON.stringify(result, bigintReplacer);
    await this.write(async (tx) => {
      const now = this.deps.clock.now().getTime();
      const n = await tx('tasks')
        .where({ id, status: 'running', lease_owner: owner })
        .update({ status: 'done', result: json, lease_owner: null, lease_until: null, finished_at: now, updated_at: now });
      if (n !== 1) throw leaseLost(id, owner);
    });
  }

  /**
   * Records a failed attempt. A retryable failure with attempts left goes back to pending after the backoff;
   * otherwise the task fails for good, with an audit record and a task.failed event in the same transaction.
   */
  async fail(taskId: number, owner: string, error: string | Error, opts: { retryable: boolean }): Promise<FailOutcome> {
    const id = positiveId(taskId, 'taskId');
    const lastError = truncateError(typeof error === 'string' ? error : safeErrorMessage(error));
    return this.write(async (tx) => {
      const row = await this.lockRow(tx, id);
      if (!row || row.status !== 'running' || row.lease_owner !== owner) throw leaseLost(id, owner);
      const now = this.deps.clock.now().getTime();
      const attempts = toNumber(row.attempts);
      if (opts.retryable && attempts < toNumber(row.max_attempts)) {
        const runAt = now + retryDelay(attempts, id);
        await tx('tasks').where({ id }).update({ status: 'pending', run_at: runAt, last_error: lastError, lease_owner: null, lease_until: null, updated_at: now });
        return { status: 'pending', attempts, runAt: new Date(runAt) };
      }
      await this.failForGood(tx, row, lastError, now);
      return { status: 'failed', attempts, runAt: new Date(toNumber(row.run_at)) };
    });
  }

  /** Operator: a failed or canceled task runs again now, keeping its attempts (so it gets one more) and operation id. */
  async retry(actor: Actor, taskId: number): Promise<Task> {
    const id = positiveId(taskId, 'taskId');
    return this.write(async (tx) => {
      const row = await this.scopedRow(tx, actor, id, true);
      if (row.status !== 'failed' && row.status !== 'canceled') {
        throw notAllowed(`Task ${id} is ${row.status}; only a failed or canceled task can be retried.`, 'taskId');
      }
      const now = this.deps.clock.now();
      await tx('tasks').where({ id }).update({ status: 'pending', run_at: now.getTime(), finished_at: null, lease_owner: null, lease_until: null, updated_at: now.getTime() });
      await recordChange(tx, actor, now, {
        operation: 'RetryTask',
        objectType: 'task',
        objectId: id,
        details: { kind: row.kind, previousStatus: row.status, attempts: toNumber(row.attempts) },
        event: { name: 'task.retried', accountId: row.account_id, payload: eventPayload(row) },
      });
      return toTask((await tx('tasks').where({ id }).first()) as TaskRow);
    });
  }

  /** Operator: a pending or failed task will not run (again). A running task cannot be canceled mid-attempt. */
  async cancel(actor: Actor, taskId: number): Promise<Task> {
    const id = positiveId(taskId, 'taskId');
    return this.write(async (tx) => {
      const row = await this.scopedRow(tx, actor, id, true);
      if (row.status !== 'pending' && row.status !== 'failed') {
        throw notAllowed(`Task ${id} is ${row.status}; only a pending or failed task can be canceled.`, 'taskId');
      }
      const now = this.deps.clock.now();
      await tx('tasks').where({ id }).update({ status: 'canceled', finished_at: now.getTime(), updated_at: now.getTime() });
      await recordChange(tx, actor, now, {
        operation: 'CancelTask',
        objectType: 'task',
        objectId: id,
        details: { kind: row.kind, previousStatus: row.status },
        event: { name: 'task.canceled', accountId: row.account_id, payload: eventPayload(row) },
      });
      return toTask((await tx('tasks').where({ id }).first()) as TaskRow);
    });
  }

  async get(actor: Actor, taskId: number): Promise<Task> {
    return toTask(await this.scopedRow(this.deps.db, actor, positiveId(taskId, 'taskId'), false));
  }

  /** Tasks of the actor's subtree, newest first; system tasks (no account) only for the provider. */
  async list(actor: Actor, filter: TaskFilter = {}): Promise<{ items: Task[]; total: number }> {
    const { db } = this.deps;
    const { offset, pageSize } = paging(filter.page, filter.pageSize);
    const q = this.scoped(db, actor);
    if (filter.status !== undefined && filter.status !== null) q.andWhere('status', oneOf(filter.status, 'status', TASK_STATUSES));
    const kind = optionalText(filter.kind, 'kind', 96);
    if (kind) q.andWhere('kind', kind);
    const queue = optionalText(filter.queue, 'queue', 48);
    if (queue) q.andWhere('queue', queue);
    const objectType = optionalText(filter.objectType, 'objectType', 48);
    if (objectType) q.andWhere('object_type', objectType);
    const objectId = optionalText(filter.objectId, 'objectId', 64);
    if (objectId) q.andWhere('object_id', objectId);
    if (filter.anyOf) {
      const queues = [...(filter.anyOf.queues ?? [])];
      const kinds = [...(filter.anyOf.kinds ?? [])];
      q.andWhere((w) => {
        w.whereIn('queue', queues.length ? queues : ['']);
        if (kinds.length) w.orWhereIn('kind', kinds);
      });
    }
    const [{ total }] = (await q.clone().count({ total: '*' })) as { total: number | string }[];
    const rows = (await q.orderBy('id', 'desc').limit(pageSize).offset(offset)) as TaskRow[];
    return { items: rows.map(toTask), total: Number(total) };
  }

  private newRow(input: EnqueueInput) {
    const now = this.deps.clock.now().getTime();
    const payload = input.payload ?? {};
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw invalid('payload', 'payload must be an object.');
    const json = JSON.stringify(payload, bigintReplacer);
    if (json.length > MAX_PAYLOAD_CHARS) throw invalid('payload', `payload may be at most ${MAX_PAYLOAD_CHARS} characters of JSON; keep large data elsewhere and refer to it.`);
    const runAt = input.runAt ?? new Date(now);
    if (!(runAt instanceof Date) || Number.isNaN(runAt.getTime())) throw invalid('runAt', 'runAt must be a valid instant.');
    const maxAttempts = input.maxAttempts === undefined ? DEFAULT_MAX_ATTEMPTS : positiveId(input.maxAttempts, 'maxAttempts');
    if (maxAttempts > MAX_ATTEMPTS_LIMIT) throw invalid('maxAttempts', `maxAttempts may be at most ${MAX_ATTEMPTS_LIMIT}.`);
    return {
      kind: requiredText(input.kind, 'kind', 96),
      queue: optionalText(input.queue, 'queue', 48) || DEFAULT_QUEUE,
      account_id: input.accountId === undefined || input.accountId === null ? null : positiveId(input.accountId, 'accountId'),
      object_type: optionalText(input.objectType, 'objectType', 48) || null,
      object_id: optionalText(input.objectId, 'objectId', 64) || null,
      payload: json,
      status: 'pending' as const,
      attempts: 0,
      max_attempts: maxAttempts,
      run_at: runAt.getTime(),
      operation_id: crypto.randomUUID(),
      dedupe_key: optionalText(input.dedupeKey, 'dedupeKey', 191) || null,
      created_at: now,
      updated_at: now,
    };
  }

  /**
   * Runs fn in a transaction of its own, retried when it lost a lock race. On SQLite the transaction first takes
   * the single write lock: a deferred transaction that read first could not upgrade once another connection wrote
   * (SQLITE_BUSY_SNAPSHOT), and what it read could be stale. On MariaDB, READ COMMITTED takes no gap locks, so
   * workers leasing and settling side by side do not deadlock on the leasing index.
   */
  private async write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const { db } = this.deps;
    const sqlite = isSqlite(db);
    for (let attempt = 1; ; attempt++) {
      try {
        return await db.transaction(
          async (tx) => {
            await takeWriteLock(tx);
            return fn(tx);
          },
          sqlite ? undefined : { isolationLevel: 'read committed' },
        );
      } catch (e) {
        if (!isContention(e) || attempt >= CONTENTION_RETRIES) throw e;
        await sleep(Math.min(50, attempt * 2) + Math.random() * 10);
      }
    }
  }

  /** Due tasks of one status, locked for this transaction; rows other workers hold are skipped, not waited for. */
  private async due(tx: Tx, status: 'pending' | 'running', now: number, limit: number, opts: LeaseOptions): Promise<TaskRow[]> {
    const q = tx('tasks').where('status', status);
    if (status === 'pending') q.andWhere('run_at', '<=', now).orderBy([{ column: 'run_at' }, { column: 'id' }]);
    else q.andWhere('lease_until', '<=', now).orderBy([{ column: 'lease_until' }, { column: 'id' }]);
    if (opts.queues && opts.queues.length) q.whereIn('queue', [...opts.queues]);
    if (opts.exclude && opts.exclude.length) q.whereNotIn('id', [...opts.exclude]);
    q.limit(limit);
    if (!isSqlite(tx)) q.forUpdate().skipLocked();
    return (await q) as TaskRow[];
  }

  private async lockRow(tx: Tx, id: number): Promise<TaskRow | undefined> {
    const q = tx('tasks').where({ id }).first();
    return (await (isSqlite(tx) ? q : q.forUpdate())) as TaskRow | undefined;
  }

  /** Tasks the actor may see: its subtree's; the provider also sees system tasks. */
  private scoped(conn: Conn, actor: Actor) {
    const q = conn('tasks');
    if (actor.accountType !== 'provider') q.whereIn('account_id', conn('accounts').select('id').where('path', 'like', `${actor.accountPath}%`));
    return q;
  }

  /** A task the actor may see; anything outside its subtree answers exactly like a missing one. */
  private async scopedRow(conn: Conn, actor: Actor, id: number, lock: boolean): Promise<TaskRow> {
    const visible = (await this.scoped(conn, actor).where('id', id).first('id')) as { id: number } | undefined;
    const row = visible && (lock ? await this.lockRow(conn as Tx, id) : ((await conn('tasks').where({ id }).first()) as TaskRow | undefined));
    if (!row) throw notFound('Task', id);
    return row;
  }

  private async failForGood(tx: Tx, row: TaskRow, lastError: string, now: number): Promise<void> {
    const id = toNumber(row.id);
    const error = truncateError(lastError);
    await tx('tasks').where({ id }).update({ status: 'failed', last_error: error, lease_owner: null, lease_until: null, finished_at: now, updated_at: now });
    await recordChange(tx, await this.jobActor(tx), new Date(now), {
      operation: 'FailTask',
      objectType: 'task',
      objectId: id,
      details: { kind: row.kind, attempts: toNumber(row.attempts), error },
      event: { name: 'task.failed', accountId: row.account_id, payload: { ...eventPayload(row), lastError: error } },
    });
  }

  /** The system acting at the provider's level through the job channel: who fails a task that ran out of attempts. */
  private async jobActor(conn: Conn): Promise<Actor> {
    if (!this.provider) {
      const row = (await conn('accounts').whereNull('vendor_id').andWhere({ type: 'provider' }).orderBy('id').first('id', 'path')) as { id: number; path: string } | undefined;
      if (!row) throw new Error('The provider account does not exist yet; start the server once to create it.');
      this.provider = { id: toNumber(row.id), path: row.path };
    }
    return systemActor(this.provider, 'job');
  }
}

function leaseLost(id: number, owner: string) {
  return conflict(`Task ${id} is not leased by ${owner}: its lease passed to another worker, or the task was settled already.`);
}

function eventPayload(row: TaskRow): Record<string, unknown> {
  return {
    taskId: toNumber(row.id),
    kind: row.kind,
    queue: row.queue,
    accountId: row.account_id === null ? null : toNumber(row.account_id),
    objectType: row.object_type,
    objectId: row.object_id,
    attempts: toNumber(row.attempts),
    operationId: row.operation_id,
  };
}

function toTask(r: TaskRow): Task {
  return {
    taskId: toNumber(r.id),
    kind: r.kind,
    queue: r.queue,
    accountId: r.account_id === null ? null : toNumber(r.account_id),
    objectType: r.object_type,
    objectId: r.object_id,
    payload: JSON.parse(r.payload) as Record<string, unknown>,
    status: r.status,
    attempts: toNumber(r.attempts),
    maxAttempts: toNumber(r.max_attempts),
    runAt: new Date(toNumber(r.run_at)),
    leaseOwner: r.lease_owner,
    leaseUntil: toOptionalDate(r.lease_until),
    lastError: r.last_error,
    operationId: r.operation_id,
    dedupeKey: r.dedupe_key,
    result: r.result === null ? null : (JSON.parse(r.result) as unknown),
    createdAt: new Date(toNumber(r.created_at)),
    updatedAt: new Date(toNumber(r.updated_at)),
    finishedAt: toOptionalDate(r.finished_at),
  };
}
