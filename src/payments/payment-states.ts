import type { Outcome, PaymentResult } from '../plugins/sdk';

/**
 * The payment state machine, as data. A payment row starts `pending`, is committed, then the gateway is called
 * outside any transaction and the row is settled from what came back:
 *
 *   pending --gateway success--------------------------> success
 *   pending --gateway failure (the processor refused)---> declined
 *   pending --plugin threw, or failure code plugin_error-> plugin_failure   (never reached the processor)
 *   pending --GatewayTimeoutError-----------------------> unknown           (may or may not have happened)
 *   pending --gateway pending---------------------------> pending           (the reconciler polls)
 *   pending | unknown --reconciler asks status(key)-----> success | declined | voided | plugin_failure (not found)
 *   success (purchase, authorize) --a void succeeds-----> voided
 *
 * Only the reconciler touches a pending or unknown payment; void, refund and capture refuse it.
 */

export const PAYMENT_KINDS = ['purchase', 'authorize', 'capture', 'void', 'refund'] as const;
export type PaymentKind = (typeof PAYMENT_KINDS)[number];

export const PAYMENT_STATUSES = ['pending', 'success', 'declined', 'plugin_failure', 'unknown', 'voided'] as const;
export type PaymentStatus = (typeof PAYMENT_STATUSES)[number];

/** Statuses whose truth only the gateway knows: the reconciler's, and nobody else's, to settle. */
export const OPEN_STATUSES: readonly PaymentStatus[] = ['pending', 'unknown'];
export const isOpen = (s: PaymentStatus): boolean => OPEN_STATUSES.includes(s);

/** A failure outcome with this code means the plugin refused before reaching the processor (bad settings ...). */
export const PLUGIN_ERROR_CODE = 'plugin_error';

export interface Settlement {
  status: PaymentStatus;
  reference?: string;
  failureCode?: string | null;
  retryable?: boolean;
  message?: string | null;
}

/** What a gateway call's outcome makes of a pending payment. */
export function settlementOf(outcome: Outcome<PaymentResult>): Settlement {
  if (outcome.status === 'success') return { status: 'success', reference: outcome.result.reference, failureCode: null, retryable: false, message: null };
  if (outcome.status === 'pending') return { status: 'pending', message: outcome.message ?? 'The gateway will finish the payment later.' };
  if (outcome.code === PLUGIN_ERROR_CODE) return { status: 'plugin_failure', failureCode: outcome.code, retryable: outcome.retryable, message: outcome.message };
  return { status: 'declined', failureCode: outcome.code ?? null, retryable: outcome.retryable, message: outcome.message };
}

export type GatewayState = 'succeeded' | 'declined' | 'voided' | 'refunded' | 'pending' | 'not_found';

/**
 * What the gateway's answer to status(key) makes of an open payment of this kind; null leaves it open.
 * `not_found` means the request never reached the processor: settled as plugin_failure once it is old enough
 * that no call can still be on its way (the caller decides that and passes `settleNotFound`).
 */
export function settlementOfState(kind: PaymentKind, state: GatewayState, reference: string, settleNotFound: boolean): Settlement | null {
  const ref = reference || undefined;
  switch (state) {
    case 'pending':
      return null;
    case 'not_found':
      return settleNotFound ? { status: 'plugin_failure', message: 'The gateway has no record of this payment: the request never reached it.' } : null;
    case 'declined':
      return { status: 'declined', reference: ref, message: 'The gateway reports the payment as declined.' };
    case 'voided':
      // A charge voided at the gateway did happen and was then reversed; for a void operation, voided is success.
      return kind === 'purchase' || kind === 'authorize' ? { status: 'voided', reference: ref, message: null } : { status: 'success', reference: ref, message: null };
    case 'succeeded':
    case 'refunded':
      // A refund recorded against a charge is its own row; the charge itself succeeded.
      return { status: 'success', reference: ref, message: null };
  }
}

/** The event each settled state announces. */
export function eventNameOf(kind: PaymentKind, status: PaymentStatus): string {
  if (status === 'success') {
    if (kind === 'void') return 'payment.voided';
    if (kind === 'refund') return 'payment.refunded';
    if (kind === 'capture') return 'payment.captured';
    return 'payment.succeeded';
  }
  return `payment.${status}`;
}
