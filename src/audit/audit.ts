import type { Actor } from '../context';
import type { Conn } from '../db/knex';
import { redact } from '../logger';

export interface AuditEntry {
  operation: string;
  objectType?: string;
  objectId?: string | number | null;
  outcome: 'ok' | 'error';
  errorCode?: string;
  details?: Record<string, unknown>;
}

/** Appends one record to the audit trail (append-only: the table refuses UPDATE and DELETE). */
export async function writeAudit(conn: Conn, actor: Actor, at: Date, entry: AuditEntry): Promise<void> {
  await conn('audit_log').insert(auditRow(actor, at, entry));
}

/** The audit_log row of an entry (writeAudit; recordChanges inserts many in batches). */
export function auditRow(actor: Actor, at: Date, entry: AuditEntry): Record<string, unknown> {
  return {
    at: at.getTime(),
    channel: actor.channel,
    actor_user_id: actor.userId,
    actor_account_id: actor.accountId,
    remote_addr: actor.remoteAddr ?? null,
    request_id: actor.requestId ?? null,
    operation: entry.operation,
    object_type: entry.objectType ?? null,
    object_id: entry.objectId === undefined || entry.objectId === null ? null : String(entry.objectId),
    outcome: entry.outcome,
    error_code: entry.errorCode ?? null,
    details: entry.details ? JSON.stringify(redact(entry.details), bigintReplacer) : null,
  };
}

export function bigintReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
