import { writeAudit } from '../audit/audit';
import type { Actor } from '../context';
import type { AppError } from '../domain/errors';
import type { Services } from '../services';
import { toAppError } from './api-errors';
import { safeErrorMessage } from '../logger';

/**
 * Runs one API operation for an authenticated actor. Successful changes are audited by the services in their
 * own transaction; a failed state-changing call is audited here with its error code, so every attempt leaves a trace.
 */
export async function runOperation<T>(
  services: Services,
  actor: Actor,
  op: { name: string; mutating: boolean },
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const err: AppError = toAppError(e, services.deps.log, { operation: op.name, channel: actor.channel });
    if (op.mutating) {
      await writeAudit(services.deps.db, actor, services.deps.clock.now(), {
        operation: op.name,
        outcome: 'error',
        errorCode: err.code,
        details: { message: err.message, field: err.field },
      }).catch((auditError: Error) => services.deps.log.error('could not write the audit record of a failed call', { error: safeErrorMessage(auditError) }));
    }
    throw err;
  }
}
