import crypto from 'node:crypto';
import { bigintReplacer } from '../audit/audit';
import { toBigInt, toBool, toDate, toOptionalNumber } from '../db/knex';
import { invalid } from '../domain/errors';
import type { PaymentKind, PaymentStatus } from './payment-states';

/** A payment as services and transports see it. */
export interface Payment {
  paymentId: number;
  accountId: number;
  vendorAccountId: number;
  /** null: an offline payment (check, wire, cash). */
  gatewayInstanceId: number | null;
  kind: PaymentKind;
  parentPaymentId: number | null;
  orderId: number | null;
  amount: bigint;
  currency: string;
  status: PaymentStatus;
  /** The gateway's reference, once it gave one. */
  reference: string | null;
  payToolId: number | null;
  description: string;
  /** The gateway's code when declined (e.g. card_declined), or plugin_error. */
  failureCode: string | null;
  /** For a decline: whether trying again later may succeed. */
  retryable: boolean;
  message: string | null;
  /** The key the core handed the gateway. */
  idempotencyKey: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface PaymentRow {
  id: number;
  account_id: number;
  vendor_id: number;
  gateway_instance_id: number | null;
  kind: PaymentKind;
  parent_payment_id: number | null;
  order_id: number | null;
  amount: unknown;
  currency: string;
  status: PaymentStatus;
  idempotency_key: string;
  request_hash: string;
  gateway_reference: string | null;
  pay_tool_id: number | null;
  description: string;
  failure_code: string | null;
  retryable: unknown;
  message: string | null;
  checked_at: number | null;
  created_at: number;
  updated_at: number;
}

export function toPayment(r: PaymentRow): Payment {
  return {
    paymentId: Number(r.id),
    accountId: Number(r.account_id),
    vendorAccountId: Number(r.vendor_id),
    gatewayInstanceId: toOptionalNumber(r.gateway_instance_id),
    kind: r.kind,
    parentPaymentId: toOptionalNumber(r.parent_payment_id),
    orderId: toOptionalNumber(r.order_id),
    amount: toBigInt(r.amount),
    currency: r.currency,
    status: r.status,
    reference: r.gateway_reference,
    payToolId: toOptionalNumber(r.pay_tool_id),
    description: r.description,
    failureCode: r.failure_code,
    retryable: toBool(r.retryable),
    message: r.message,
    idempotencyKey: r.idempotency_key,
    createdAt: toDate(r.created_at),
    updatedAt: toDate(r.updated_at),
  };
}

/** What an event about a payment carries: never card data (the row holds none). */
export function eventPayload(p: Payment): Record<string, unknown> {
  return {
    paymentId: p.paymentId,
    kind: p.kind,
    status: p.status,
    accountId: p.accountId,
    orderId: p.orderId,
    parentPaymentId: p.parentPaymentId,
    amount: p.amount.toString(),
    currency: p.currency,
    reference: p.reference,
    failureCode: p.failureCode,
  };
}

// ---- idempotency keys: the core owns every key it hands a gateway ----

const MAX_CALLER_KEY = 128;

export function callerKey(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || value.length > MAX_CALLER_KEY) throw invalid('idempotencyKey', `idempotencyKey must be text of at most ${MAX_CALLER_KEY} characters.`);
  return value;
}

/**
 * The gateway key for a caller's key: private to the account paid for, so two accounts using the same key never
 * meet, and a hash so the caller's text never travels to a gateway.
 */
export function derivedGatewayKey(accountId: number, key: string): string {
  return `hw-${crypto.createHash('sha256').update(`${accountId}\0${key}`).digest('hex').slice(0, 48)}`;
}

/**
 * The caller keys of an order's own refunds: a cancellation's or a failed order's (`order-<id>-refund`) and a held
 * order's approval (`order-<id>-hold-refund`). The ledger entries of these refunds are the order's to write
 * (refundOnCancellationTx, reverseOrderChargeTx) when its task or decision runs again; the ledger's own refunds
 * (RefundPayment) use keys of another form (`refund:...`, `refund-payment:...`) or a random one, so they never meet.
 */
export const orderRefundKey = (orderId: number, paymentId?: number): string => (paymentId === undefined ? `order-${orderId}-refund` : `order-${orderId}-refund-${paymentId}`);
export const orderHoldRefundKey = (orderId: number): string => `order-${orderId}-hold-refund`;

/**
 * Whether a gateway key is one of an order's own refunds for one of `orderIds`: orderRefundKey (a failed order's, or
 * a cancellation's: one key per order, or per refunded payment `parentPaymentId` since cancellations give back
 * every payment of the term) or orderHoldRefundKey.
 */
export function isOrderRefundKey(gatewayKey: string, accountId: number, orderIds: readonly number[], parentPaymentId: number): boolean {
  return orderIds.some((id) => [orderRefundKey(id), orderRefundKey(id, parentPaymentId), orderHoldRefundKey(id)].some((k) => derivedGatewayKey(accountId, k) === gatewayKey));
}

export function randomGatewayKey(): string {
  return `hw-${crypto.randomBytes(24).toString('hex')}`;
}

/** Fingerprint of a request's arguments: the same key with another fingerprint is a CONFLICT. */
export function requestHash(args: Record<string, unknown>): string {
  return crypto.createHash('sha256').update(JSON.stringify(args, bigintReplacer)).digest('hex');
}

// Money columns are signed 64-bit.
const MAX_AMOUNT = 2n ** 63n - 1n;

export function positiveAmount(value: unknown, field: string): bigint {
  if (typeof value !== 'bigint') throw invalid(field, `${field} must be an amount in minor units (a bigint).`);
  if (value <= 0n) throw invalid(field, `${field} must be more than 0.`);
  if (value > MAX_AMOUNT) throw invalid(field, `${field} is larger than the largest amount kept (${MAX_AMOUNT} minor units).`);
  return value;
}
