import { auditRow } from './audit';
import type { Actor } from '../context';
import type { Tx } from '../db/knex';
import { insertBatched } from '../db/batch';
import { eventRow, notifyAfterCommit, type DomainEvent } from '../events/outbox';

export interface BulkChange {
  operation: string;
  objectType: string;
  objectId: string | number;
  details?: Record<string, unknown>;
  event: DomainEvent;
}

/**
 * recordChange for many changes at once: the same audit records and outbox events, written with batched inserts
 * in the caller's transaction (the billing run issues thousands of invoices per transaction).
 */
export async function recordChanges(tx: Tx, actor: Actor, at: Date, changes: readonly BulkChange[]): Promise<void> {
  if (changes.length === 0) return;
  await insertBatched(
    tx,
    'audit_log',
    changes.map((c) => auditRow(actor, at, { operation: c.operation, objectType: c.objectType, objectId: c.objectId, outcome: 'ok', details: c.details })),
  );
  await insertBatched(
    tx,
    'events',
    changes.map((c) => eventRow(at, c.event)),
  );
  // The dispatcher wakes after commit, as for emitEvent (it used to wait for its next poll after a bulk write).
  notifyAfterCommit(tx);
}
