import type { Deps } from '../context';
import { toBool, toNumber, type Tx } from '../db/knex';
import { retryOnDeadlock } from '../db/transaction';
import type { TaskQueue } from '../jobs/task-queue';
import { safeErrorMessage } from '../logger';
import { patternMatches, type ActionRow } from './actions-service';
import { onEventsCommitted } from './outbox';

export const EVENTS_QUEUE = 'events';
/** The run_at of a delivery that waits for an earlier delivery of the same object to the same action (9999-12-31). */
export const PARKED_AT = 253402214400000;
export const DELIVERY_MAX_ATTEMPTS = 10;
const UNFINISHED = ['pending', 'running', 'failed'];

export interface EventRow {
  id: number;
  name: string;
  object_type: string;
  object_id: string;
  account_id: number | null;
  payload: string;
  created_at: number;
  dispatched_at: number | null;
}

/** The JSON a webhook receives and a script reads on stdin. */
export interface EventEnvelope {
  id: number;
  name: string;
  occurredAt: string;
  objectType: string;
  objectId: string;
  accountId: number | null;
  payload: Record<string, unknown>;
}

export function envelope(r: EventRow): EventEnvelope {
  return {
    id: toNumber(r.id),
    name: r.name,
    occurredAt: new Date(toNumber(r.created_at)).toISOString(),
    objectType: r.object_type,
    objectId: r.object_id,
    accountId: r.account_id === null ? null : toNumber(r.account_id),
    payload: JSON.parse(r.payload) as Record<string, unknown>,
  };
}

/** The prefix of the events a caller posts (TASKMAN PostEvent): they can never pose as the system's own. */
export const EXTERNAL_PREFIX = 'external.';

/**
 * The deliveries that go out in order, one after the other: those of one object to one action. A posted event
 * names its object as the caller pleases, so its chain is apart (per posting account): it must not hold the
 * system's events of that object, nor another account's posted ones, behind a delivery that fails.
 */
export function chainOf(actionId: number, e: Pick<EventRow, 'name' | 'object_type' | 'object_id' | 'account_id'>): string {
  const posted = e.name.startsWith(EXTERNAL_PREFIX) ? `external:${e.account_id === null ? '' : toNumber(e.account_id)}:` : '';
  return `${actionId}:${posted}${e.object_type}:${e.object_id}`.slice(0, 191);
}

/**
 * Events about delivery tasks themselves (a delivery that failed for good, an operator's retry) are not delivered
 * again: a dead webhook subscribed to "*" would otherwise feed itself a new delivery for each failure, forever.
 */
function aboutDelivery(e: EventRow): boolean {
  if (!e.name.startsWith('task.')) return false;
  try {
    return (JSON.parse(e.payload) as { queue?: unknown }).queue === EVENTS_QUEUE;
  } catch {
    return false;
  }
}

export interface DispatcherOptions {
  batchSize?: number;
  /** How often undispatched events and waiting deliveries are looked at when nothing woke the dispatcher (real time). */
  intervalMs?: number;
  /**
   * The least time between two dispatch transactions that were not full batches (real time): commits in a burst
   * share one dispatch instead of each taking the database (on SQLite, its only connection) for their own.
   */
  minGapMs?: number;
}

/**
 * Moves outbox events to delivery tasks: one task per (event, matching action), in the same transaction that marks
 * the events dispatched, so a crash between the two never loses nor doubles a delivery (the task's dedupe key is
 * the event and the action). Deliveries of one object to one action go out in event order: a later one waits
 * (parked) until the earlier one is done or canceled, then the dispatcher releases it.
 */
export class EventDispatcher {
  private readonly batchSize: number;
  private readonly intervalMs: number;
  private readonly minGapMs: number;
  private loop: Promise<void> | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  private pendingWake = false;
  private unsubscribe: Array<() => void> = [];

  constructor(
    private readonly deps: Deps,
    private readonly tasks: TaskQueue,
    opts: DispatcherOptions = {},
  ) {
    this.batchSize = opts.batchSize ?? 200;
    this.intervalMs = opts.intervalMs ?? 1000;
    this.minGapMs = opts.minGapMs ?? 200;
  }

  start(): void {
    if (this.loop) return;
    this.stopping = false;
    this.unsubscribe = [onEventsCommitted(() => this.nudge())];
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    this.wake?.();
    await this.loop;
    this.loop = undefined;
  }

  /** Look again now: events were committed, or a delivery finished (its successor may be released). */
  nudge(): void {
    this.pendingWake = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let full = false;
      const started = Date.now();
      this.pendingWake = false;
      try {
        const r = await this.dispatchOnce();
        full = r.events >= this.batchSize;
      } catch (e) {
        this.deps.log.error('event dispatch failed', { error: safeErrorMessage(e) });
      }
      if (this.stopping || full) continue;
      if (!this.pendingWake) await this.idle();
      const gap = started + this.minGapMs - Date.now();
      if (gap > 0 && !this.stopping) await new Promise<void>((resolve) => setTimeout(resolve, gap));
    }
  }

  private idle(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.intervalMs);
      this.wake = done;
    });
  }

  /** One batch: undispatched events to delivery tasks, then waiting deliveries whose turn came. For tests and cron. */
  async dispatchOnce(): Promise<{ events: number; deliveries: number; released: number }> {
    const { db, clock } = this.deps;
    return retryOnDeadlock(() =>
      db.transaction(async (tx) => {
        const now = clock.now().getTime();
        // One dispatcher at a time across processes: the lock row (the write lock itself on SQLite).
        await tx('event_dispatch_lock').where({ id: 1 }).update({ last_run_at: now });
        const events = (await tx('events').whereNull('dispatched_at').orderBy('id').limit(this.batchSize)) as EventRow[];
        let deliveries = 0;
        if (events.length) {
          const actions = await this.enabledActions(tx);
          const paths = await this.accountPaths(tx, events);
          // Chains that have an unfinished delivery (known after the first look, or made so by this batch).
          const blockedChains = new Set<string>();
          for (const e of events) {
            if (aboutDelivery(e)) continue;
            const path = e.account_id === null ? null : (paths.get(toNumber(e.account_id)) ?? null);
            for (const a of actions) {
              if (!patternMatches(a.event_pattern, e.name)) continue;
              // The provider's actions see every event; a reseller's, the events of its subtree.
              if (!(a.vendor_type === 'provider' || (path !== null && path.startsWith(a.vendor_path)))) continue;
              if (await this.enqueue(tx, e, a, now, blockedChains)) deliveries++;
            }
          }
          await tx('events').whereIn('id', events.map((e) => toNumber(e.id))).update({ dispatched_at: now });
        }
        const released = await this.release(tx, now);
        return { events: events.length, deliveries, released };
      }),
    );
  }

  private async enqueue(tx: Tx, e: EventRow, a: ActionRow & { vendor_path: string }, now: number, blockedChains: Set<string>): Promise<boolean> {
    const eventId = toNumber(e.id);
    const actionId = toNumber(a.id);
    const existing = await tx('event_deliveries').where({ event_id: eventId, action_id: actionId }).first('id');
    if (existing) return false;
    const chain = chainOf(actionId, e);
    const blocked = blockedChains.has(chain) || (await this.unfinishedIn(tx, chain));
    blockedChains.add(chain); // this delivery is unfinished now: later events of the chain wait for it
    const taskId = await this.tasks.enqueue(tx, {
      kind: `event.${a.type}`,
      queue: EVENTS_QUEUE,
      payload: { eventId, actionId, event: e.name },
      accountId: toNumber(a.vendor_id),
      objectType: e.object_type,
      objectId: e.object_id,
      runAt: new Date(blocked ? PARKED_AT : now),
      maxAttempts: DELIVERY_MAX_ATTEMPTS,
      dedupeKey: `event:${eventId}:action:${actionId}`,
    });
    await tx('event_deliveries').insert({ event_id: eventId, action_id: actionId, task_id: taskId, chain, created_at: now });
    return true;
  }

  /** Is a delivery of this chain (before `beforeId`, when given) still unfinished? */
  private async unfinishedIn(tx: Tx, chain: string, beforeId?: number): Promise<boolean> {
    const q = tx('event_deliveries as d').join('tasks as t', 't.id', 'd.task_id').where('d.chain', chain).whereIn('t.status', UNFINISHED);
    if (beforeId !== undefined) q.andWhere('d.id', '<', beforeId);
    return (await q.first('d.id')) !== undefined;
  }

  /**
   * Waiting deliveries whose earlier deliveries are all done or canceled run now: one query finds them (the first
   * waiting delivery of each chain whose predecessors finished), one update releases them.
   */
  private async release(tx: Tx, now: number): Promise<number> {
    const rows = (await tx('tasks as t')
      .join('event_deliveries as d', 'd.task_id', 't.id')
      .where({ 't.status': 'pending', 't.queue': EVENTS_QUEUE, 't.run_at': PARKED_AT })
      .whereNotExists(function () {
        this.select(tx.raw('1'))
          .from('event_deliveries as d2')
          .join('tasks as t2', 't2.id', 'd2.task_id')
          .whereRaw('d2.chain = d.chain')
          .andWhereRaw('d2.id < d.id')
          .whereIn('t2.status', UNFINISHED);
      })
      .orderBy('d.id')
      .limit(1000)
      .select('t.id')) as { id: number }[];
    if (rows.length === 0) return 0;
    const ids = rows.map((r) => toNumber(r.id));
    return tx('tasks').whereIn('id', ids).andWhere({ status: 'pending', run_at: PARKED_AT }).update({ run_at: now, updated_at: now });
  }

  private async enabledActions(tx: Tx): Promise<(ActionRow & { vendor_path: string; vendor_type: string })[]> {
    const rows = (await tx('event_actions as e').join('accounts as a', 'a.id', 'e.vendor_id').orderBy('e.id').select('e.*', 'a.path as vendor_path', 'a.type as vendor_type')) as (ActionRow & {
      vendor_path: string;
      vendor_type: string;
    })[];
    return rows.filter((r) => toBool(r.enabled));
  }

  private async accountPaths(tx: Tx, events: EventRow[]): Promise<Map<number, string>> {
    const ids = [...new Set(events.filter((e) => e.account_id !== null).map((e) => toNumber(e.account_id)))];
    const map = new Map<number, string>();
    for (let i = 0; i < ids.length; i += 500) {
      const rows = (await tx('accounts').whereIn('id', ids.slice(i, i + 500)).select('id', 'path')) as { id: number; path: string }[];
      for (const r of rows) map.set(toNumber(r.id), r.path);
    }
    return map;
  }

  /** Is an earlier delivery of the same chain as this task still unfinished? (The handler's own guard.) */
  async waitsFor(taskId: number): Promise<number | null> {
    const db = this.deps.db;
    const d = (await db('event_deliveries').where({ task_id: taskId }).first('id', 'chain')) as { id: number; chain: string } | undefined;
    if (!d) return null;
    const earlier = (await db('event_deliveries as d')
      .join('tasks as t', 't.id', 'd.task_id')
      .where('d.chain', d.chain)
      .andWhere('d.id', '<', toNumber(d.id))
      .whereIn('t.status', UNFINISHED)
      .orderBy('d.id')
      .first('t.id')) as { id: number } | undefined;
    return earlier ? toNumber(earlier.id) : null;
  }
}
