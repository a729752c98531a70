import { bigintReplacer } from '../audit/audit';
import type { Conn } from '../db/knex';

export interface DomainEvent {
  name: string;
  objectType: string;
  objectId: string | number;
  accountId?: number | null;
  payload: Record<string, unknown>;
}

const listeners = new Set<() => void>();

/** Called after a transaction that wrote events commits (in this process): the dispatcher wakes without polling. */
export function onEventsCommitted(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function notifyAfterCommit(conn: Conn): void {
  if (listeners.size === 0) return;
  const notify = () => {
    for (const listener of listeners) listener();
  };
  const committed = (conn as { executionPromise?: Promise<unknown> }).executionPromise;
  if (committed) committed.then(notify, () => undefined);
  else setImmediate(notify);
}

/** Writes an event to the outbox in the caller's transaction; the dispatcher delivers it after commit. */
export async function emitEvent(conn: Conn, at: Date, event: DomainEvent): Promise<void> {
  await conn('events').insert(eventRow(at, event));
  notifyAfterCommit(conn);
}

/** The outbox row of an event (emitEvent; recordChanges inserts many in batches). */
export function eventRow(at: Date, event: DomainEvent): Record<string, unknown> {
  return {
    name: event.name,
    object_type: event.objectType,
    object_id: String(event.objectId),
    account_id: event.accountId ?? null,
    payload: JSON.stringify(event.payload, bigintReplacer),
    created_at: at.getTime(),
    dispatched_at: null,
  };
}
