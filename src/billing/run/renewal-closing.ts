import { recordChange } from '../../audit/record-change';
import type { Actor } from '../../context';
import { isSqlite, toBigInt, toNumber, type Tx } from '../../db/knex';
import { FINISHED_ORDER_STATUSES } from '../../domain/workflow';
import { withInvoiceTax } from '../invoice-share';
import type { OrderLedger } from '../documents-service';

/**
 * A billing run's renewal order (RN, renewal-orders.ts) waits for its invoice. When its subscription is canceled or
 * terminated first, the renewal will never be delivered: the order is closed here, in the transaction of the
 * subscription's change, with status `CA` (canceled) at step `_canceled` (no workflow step can have that name, so
 * the engine and the invoice-paid listener leave it alone), a history row, an audit record and `order.canceled`.
 * A payment arriving later on its invoice is just applied: the listener finds no order at a charge step.
 */

/** The step of a closed renewal order: outside any workflow (step names start with a letter). */
export const CLOSED_RENEWAL_STEP = '_canceled';

export interface ClosedRenewal {
  orderId: number;
  orderNumber: string;
  accountId: number;
  /** The invoice that billed it (null: not invoiced, e.g. a dry run's leftovers). */
  invoiceId: number | null;
  /** Its charges on that invoice: price (as on the invoice's lines) and the start of the period billed. */
  charges: { amount: bigint; periodStart: number }[];
}

/**
 * Closes the subscription's billing-run renewal orders still waiting for an unpaid invoice (any unfinished status:
 * `WP` at the charge step, or `WA` before it in a vendor's workflow), in the caller's transaction. `why` is the
 * status text (history comment and failure reason). Answers the closed orders with their charges, for a credit.
 */
export async function closeWaitingRenewals(tx: Tx, actor: Actor, at: Date, subscriptionId: number, why: string): Promise<ClosedRenewal[]> {
  const read = tx('orders as o')
    .join('order_items as i', 'i.order_id', 'o.id')
    .where({ 'o.type': 'renewal', 'i.target_subscription_id': subscriptionId, 'i.position': 1 })
    .whereNotIn('o.status', FINISHED_ORDER_STATUSES)
    .whereExists((q) => q.select(tx.raw('1')).from('billing_charges as c').whereRaw('c.order_id = o.id'))
    .orderBy('o.id')
    .select('o.id', 'o.order_number', 'o.account_id', 'o.vendor_id', 'o.status', 'o.step');
  const orders = (await (isSqlite(tx) ? read : read.forUpdate())) as { id: number; order_number: string; account_id: number; vendor_id: number; status: string; step: string }[];
  const closed: ClosedRenewal[] = [];
  const text = why.slice(0, 1024);
  for (const o of orders) {
    const orderId = toNumber(o.id);
    const charges = (await tx('billing_charges as c').leftJoin('documents as d', 'd.id', 'c.document_id').where('c.order_id', orderId).orderBy('c.id').select('c.document_id', 'c.amount', 'c.period_start', 'd.status')) as {
      document_id: number | null;
      amount: unknown;
      period_start: unknown;
      status: string | null;
    }[];
    // Paid already: the invoice-paid listener has moved (or is moving) it on.
    if (charges.length > 0 && charges.every((c) => c.status === 'paid')) continue;
    const n = await tx('orders').where({ id: orderId, step: o.step }).update({ status: 'CA', step: CLOSED_RENEWAL_STEP, failure_reason: text, updated_at: at.getTime() });
    if (n !== 1) continue;
    await tx('order_history').insert({ order_id: orderId, status: 'CA', step: CLOSED_RENEWAL_STEP, outcome: null, actor_user_id: actor.userId, comment: text, at: at.getTime() });
    const accountId = toNumber(o.account_id);
    await recordChange(tx, actor, at, {
      operation: 'order.canceled',
      objectType: 'order',
      objectId: orderId,
      details: { from: o.step, to: CLOSED_RENEWAL_STEP, status: 'CA', subscriptionId, comment: text },
      event: { name: 'order.canceled', accountId, payload: { orderId, accountId, vendorAccountId: toNumber(o.vendor_id), from: o.step, step: CLOSED_RENEWAL_STEP, status: 'CA', subscriptionId } },
    });
    const invoiced = charges.find((c) => c.document_id !== null && c.document_id !== undefined);
    closed.push({
      orderId,
      orderNumber: o.order_number,
      accountId,
      invoiceId: invoiced ? toNumber(invoiced.document_id) : null,
      charges: charges.filter((c) => c.status === 'open').map((c) => ({ amount: toBigInt(c.amount), periodStart: toNumber(c.period_start) })),
    });
  }
  return closed;
}

/**
 * A customer's cancellation: the closed renewals' charges for a period starting at or after `serviceEnd` (the
 * service is gone by then: never delivered) are credited on their invoice, one credit memo per order of those
 * charges with the invoice's tax on them (withInvoiceTax, so the memo's tax share is the lines' tax), at most what
 * of the invoice is not yet credited; applied to the invoice, which is then paid if nothing else is open on it.
 * A renewal whose period had started (a graced subscription canceled) stays owed. Answers the memo ids.
 */
export async function creditClosedRenewals(tx: Tx, ledger: Pick<OrderLedger, 'memoTx' | 'invoiceCreditTx'>, actor: Actor, at: Date, closed: readonly ClosedRenewal[], serviceEnd: Date, reason: string): Promise<number[]> {
  const memos: number[] = [];
  for (const c of closed) {
    if (c.invoiceId === null) continue;
    const net = c.charges.filter((x) => x.periodStart >= serviceEnd.getTime()).reduce((s, x) => s + x.amount, 0n);
    const memo = await creditInvoiceShare(tx, ledger, actor, at, { invoiceId: c.invoiceId, accountId: c.accountId, net, orderId: c.orderId }, (number) => `Order ${c.orderNumber}: renewal not delivered, ${reason} (credit of ${number})`);
    if (memo !== null) memos.push(memo);
  }
  return memos;
}

/**
 * Credits `net` (priced like the invoice's lines) of an open invoice: one credit memo with the invoice's tax on it
 * (withInvoiceTax), at most what of the invoice is not yet credited, applied to it. Nothing (null) when the invoice
 * is not open or nothing is left to credit. `description` gets the invoice's number.
 */
export async function creditInvoiceShare(
  tx: Tx,
  ledger: Pick<OrderLedger, 'memoTx' | 'invoiceCreditTx'>,
  actor: Actor,
  at: Date,
  share: { invoiceId: number; accountId: number; net: bigint; orderId?: number },
  description: (invoiceNumber: string) => string,
): Promise<number | null> {
  if (share.net <= 0n) return null;
  const inv = await ledger.invoiceCreditTx(tx, share.invoiceId);
  if (!inv || inv.status !== 'open') return null;
  const { gross } = await withInvoiceTax(tx, share.invoiceId, share.net);
  const amount = gross < inv.left ? gross : inv.left;
  if (amount <= 0n) return null;
  return ledger.memoTx(tx, actor, at, 'credit_memo', {
    accountId: share.accountId,
    amount,
    description: description(inv.number).slice(0, 1024),
    invoiceId: share.invoiceId,
    orderId: share.orderId,
    applyUpTo: true,
  });
}
