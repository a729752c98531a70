/**
 * The one error model shared by services and both API doors.
 * Codes are the contract's (api-contract.md); transports map them to SOAP faults and XML-RPC faultCodes.
 */
export const ERROR_CODES = [
  'INVALID_ARGUMENT',
  'UNAUTHENTICATED',
  'NOT_FOUND',
  'NOT_ALLOWED',
  'CONFLICT',
  'PAYMENT_DECLINED',
  'PROVIDER_ERROR',
  'UNAVAILABLE',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly field?: string;
  /** For NOT_FOUND: what was missing, so the legacy XML-RPC door can word it the way PBA clients expect. */
  entity?: string;
  entityId?: string;

  constructor(code: ErrorCode, message: string, field?: string) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    if (field !== undefined) this.field = field;
  }
}

export const invalid = (field: string, message: string): AppError => new AppError('INVALID_ARGUMENT', message, field);
export const notFound = (what: string, id: unknown): AppError => {
  const e = new AppError('NOT_FOUND', `${what} ${String(id)} does not exist.`);
  e.entity = what;
  e.entityId = String(id);
  return e;
};
export const notAllowed = (message: string, field?: string): AppError => new AppError('NOT_ALLOWED', message, field);
export const conflict = (message: string, field?: string): AppError => new AppError('CONFLICT', message, field);

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}
