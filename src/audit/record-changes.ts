import { bigintReplacer } from './audit';
import type { Actor } from '../context';
import type { Tx } from '../db/knex';
import { insertBatched } from '../db/batch';
import type { DomainEvent } from '../events/outbox';
import { redact } from '../logger';

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
  const ms = at.getTime();
  await insertBatched(
    tx,
    'audit_log',
    changes.map((c) => ({
      at: ms,
      channel: actor.channel,
      actor_user_id: actor.userId,
      actor_account_id: actor.accountId,
      remote_addr: actor.remoteAddr ?? null,
      request_id: actor.requestId ?? null,
      operation: c.operation,
      object_type: c.objectType,
      object_id: String(c.objectId),
      outcome: 'ok',
      error_code: null,
      details: c.details ? JSON.stringify(redact(c.details), bigintReplacer) : null,
    })),
  );
  await insertBatched(
    tx,
    'events',
    changes.map((c) => ({
      name: c.event.name,
      object_type: c.event.objectType,
      object_id: String(c.event.objectId),
      account_id: c.event.accountId ?? null,
      payload: JSON.stringify(c.event.payload, bigintReplacer),
      created_at: ms,
      dispatched_at: null,
    })),
  );
}
