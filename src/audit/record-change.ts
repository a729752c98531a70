import type { Actor } from '../context';
import type { Tx } from '../db/knex';
import { emitEvent, type DomainEvent } from '../events/outbox';
import { writeAudit } from './audit';

/** Every change of state: one audit record and its event, in the same transaction as the change. */
export async function recordChange(
  tx: Tx,
  actor: Actor,
  at: Date,
  change: { operation: string; objectType: string; objectId: string | number; details?: Record<string, unknown>; event: Omit<DomainEvent, 'objectType' | 'objectId'> & Partial<Pick<DomainEvent, 'objectType' | 'objectId'>> },
): Promise<void> {
  await writeAudit(tx, actor, at, {
    operation: change.operation,
    objectType: change.objectType,
    objectId: change.objectId,
    outcome: 'ok',
    details: change.details,
  });
  await emitEvent(tx, at, {
    objectType: change.objectType,
    objectId: change.objectId,
    ...change.event,
  });
}
