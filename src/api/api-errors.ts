import { AppError, isAppError, type ErrorCode } from '../domain/errors';
import { safeErrorMessage, type Logger } from '../logger';

/** Any thrown thing as an AppError; unexpected ones become INTERNAL with a generic message (details go to the log only). */
export function toAppError(e: unknown, log: Logger, context: Record<string, unknown>): AppError {
  if (isAppError(e)) return e;
  log.error('unexpected error in API call', { ...context, error: safeErrorMessage(e), stack: (e as { sql?: string })?.sql ? undefined : (e as Error)?.stack });
  return new AppError('INTERNAL', 'An internal error occurred; the operator can find it in the log by its request id.');
}

/** Client faults are the caller's to fix; Server faults are ours (or a remote system's). */
export function isClientFault(code: ErrorCode): boolean {
  return ['INVALID_ARGUMENT', 'UNAUTHENTICATED', 'NOT_FOUND', 'NOT_ALLOWED', 'CONFLICT', 'PAYMENT_DECLINED'].includes(code);
}

/** XML-RPC faultCode per error kind: stable numbers, documented in docs/api/xmlrpc.md. */
export const XMLRPC_FAULT_CODES: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 1001,
  UNAUTHENTICATED: 1002,
  NOT_FOUND: 1003,
  NOT_ALLOWED: 1004,
  CONFLICT: 1005,
  PAYMENT_DECLINED: 1006,
  PROVIDER_ERROR: 1007,
  UNAVAILABLE: 1008,
  INTERNAL: 1009,
};

export function unavailable(operation: string, capability: string): AppError {
  return new AppError('UNAVAILABLE', `${operation} is not available yet: it arrives with ${capability}.`);
}
