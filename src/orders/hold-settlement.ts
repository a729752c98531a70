import { withInvoiceTax } from '../billing/invoice-share';
import type { Actor } from '../context';
import { toBigInt, toNumber, type Conn, type Tx } from '../db/knex';
import { AppError, notAllowed } from '../domain/errors';
import { setAutoRenewTx } from '../domains/domains-service';
import { failOrderTx, MANUAL_REVIEW, PAYMENT_LEFT, rollBackPayment } from './saga';
import { lockOrder, transitionIfAt, writeTx, type Ctx, type OrderRow } from './step-handlers';
import { amountText } from './subscription-orders';
import { orderHoldRefundKey } from '../payments/payment-records';

/**
 * An operator settles an order on hold (HL: its saga rolled back, but a domain it registered, transferred or renewed
 * could not be taken back at the registry and is `kept`; domain-items.ts holdForReview). ApproveOrder and
 * RejectOrder call it for an HL order (OrdersService.decide):
 *
 *   approved: the customer keeps the kept domain(s) and pays their price with the invoice's tax on it; the rest of
 *     what was paid is refunded (approvalShares); the order moves on by `success` (PC, then CP once notify_customer
 *     ran), the kept items become `done`. Ledger: a credit memo of the rest of the order's invoice (the undelivered
 *     items with their tax, so its tax share is theirs and any tax open on the invoice is paid) and a refund document of
 *     the refunded amount (DocumentsService.refundOnCancellationTx): the invoice ends paid and the balance unchanged.
 *   rejected: the order fails as saga.finish fails an order (rollBackPayment, then failOrderTx: PF with the reason,
 *     refund document and credit memo); each kept domain stays registered with its auto-renewal off (it lapses).
 *
 * The gateway is called before the transaction (never inside one) with the order's idempotency keys, so a call
 * repeated after a crash is the same void or refund. Before it, the decision claims the order (orders.settling,
 * under the order's lock): the other decision is refused while it holds it, so two operators deciding differently
 * at the same moment cannot both move money. The claim is released when the gateway refuses (the operator may then
 * decide otherwise) and kept while its answer is pending (the same decision finishes it). The final transaction
 * re-reads the order under its lock: a second settlement finds it no longer on hold and is refused (NOT_ALLOWED).
 */

interface KeptRow {
  name: string;
  amount: unknown;
  domain_id: number | null;
}

async function keptOf(conn: Conn, orderId: number): Promise<KeptRow[]> {
  return (await conn('order_domains').where({ order_id: orderId, status: 'kept' }).orderBy('position').select('name', 'amount', 'domain_id')) as KeptRow[];
}

/**
 * What an approval settles, from the order's invoice (recordOrderChargeTx): `kept`, the kept domains' price with the
 * invoice's share of tax on it (withInvoiceTax: an exclusive tax added, an inclusive one already in the price);
 * `paid`, what of the invoice was paid (its total less its credit memos and what is still open: the charge paid the
 * order's total, its tax included, so nothing is open unless the invoice was issued before orders priced their tax);
 * `credit`, the rest of the invoice (the undelivered items with their tax). Without an invoice: the kept domains'
 * price and the order's total, no credit.
 */
async function approvalShares(ctx: Ctx, conn: Conn, order: OrderRow, keptNet: bigint): Promise<{ invoiceId: number | null; kept: bigint; paid: bigint; credit: bigint }> {
  const inv = (await conn('documents').where({ type: 'invoice', order_id: order.id }).orderBy('id').first('id', 'open_amount')) as { id: number; open_amount: unknown } | undefined;
  const room = inv ? await ctx.ledger.invoiceCreditTx(conn, toNumber(inv.id)) : undefined;
  if (!inv || !room) return { invoiceId: null, kept: keptNet, paid: toBigInt(order.total), credit: 0n };
  const kept = keptNet > 0n ? (await withInvoiceTax(conn, room.id, keptNet)).gross : 0n;
  const credit = room.left - kept;
  return { invoiceId: room.id, kept, paid: room.left - toBigInt(inv.open_amount), credit: credit > 0n ? credit : 0n };
}

type Decision = 'approved' | 'rejected';

/**
 * The held order under its lock, still on hold at the same step and not claimed by the other decision; else
 * NOT_ALLOWED (settled, or being settled the other way, meanwhile).
 */
async function lockHeld(tx: Tx, order: OrderRow, outcome: Decision): Promise<OrderRow> {
  const locked = await lockOrder(tx, toNumber(order.id));
  if (!locked || locked.status !== 'HL' || locked.step !== order.step) {
    throw notAllowed(`Order ${order.order_number} is ${locked?.status ?? 'gone'}, no longer on hold; it was settled meanwhile.`, 'status');
  }
  // lockOrder reads the whole row: the claim (orders.settling) is in it.
  const settling = (locked as OrderRow & { settling?: string | null }).settling;
  if (settling && settling !== outcome) {
    throw notAllowed(`Order ${order.order_number} is being ${settling} by another call (its payment is with the gateway); it cannot be ${outcome} now.`, 'status');
  }
  return locked;
}

/** Claims the held order for this decision before its gateway call (see above). */
async function claim(ctx: Ctx, order: OrderRow, outcome: Decision): Promise<void> {
  await writeTx(ctx.deps, async (tx) => {
    await lockHeld(tx, order, outcome);
    await tx('orders').where({ id: order.id }).update({ settling: outcome });
  });
}

/** Runs the decision's gateway part; a definitive refusal releases the claim, a pending answer keeps it. */
async function withClaim<T>(ctx: Ctx, order: OrderRow, outcome: Decision, gateway: () => Promise<T>): Promise<T> {
  await claim(ctx, order, outcome);
  try {
    return await gateway();
  } catch (e) {
    // A refusal (the gateway's or ours) released; a pending answer or an unexpected error keeps the claim.
    if (e instanceof AppError && e.code !== 'UNAVAILABLE' && e.code !== 'INTERNAL') await ctx.deps.db('orders').where({ id: order.id, status: 'HL', settling: outcome }).update({ settling: null });
    throw e;
  }
}

/** A gateway answer not known yet: nothing changed here; the same call later finishes it (same idempotency key). */
function stillOpen(note: string, verb: string): AppError {
  return new AppError('UNAVAILABLE', `${note} The order stays on hold; call ${verb} again once the gateway has answered.`, 'orderId');
}

/** "Rejected on review: <the operator's comment>." */
const onReview = (verb: string, comment: string) => `${verb} on review${comment ? `: ${comment}` : ''}${/[.!?]$/.test(comment) ? '' : '.'}`;

export async function settleHeldOrder(ctx: Ctx, actor: Actor, order: OrderRow, outcome: Decision, comment: string): Promise<void> {
  if (outcome === 'rejected') return rejectHeld(ctx, actor, order, comment);
  return approveHeld(ctx, actor, order, comment);
}

async function rejectHeld(ctx: Ctx, actor: Actor, order: OrderRow, comment: string): Promise<void> {
  const money = await withClaim(ctx, order, 'rejected', async () => {
    const m = await rollBackPayment(ctx, order, actor);
    if (m.retry) throw stillOpen(m.note, 'RejectOrder');
    return m;
  });
  await writeTx(ctx.deps, async (tx) => {
    const locked = await lockHeld(tx, order, 'rejected');
    await tx('orders').where({ id: order.id }).update({ settling: null });
    const kept = await keptOf(tx, toNumber(order.id));
    const held = (locked.failure_reason ?? '').replace(MANUAL_REVIEW, '').replace(PAYMENT_LEFT, '');
    const names = kept.map((k) => k.name).join(', ');
    const reason = [held, onReview('Rejected', comment), money.note, names ? `Kept domain(s) ${names} stay registered with auto-renewal off.` : ''].filter(Boolean).join(' ');
    await failOrderTx(ctx, tx, locked, reason, actor);
    const now = ctx.deps.clock.now();
    const ids = kept.map((k) => k.domain_id).filter((id): id is number => id !== null);
    const domains = (await tx('domains').whereIn('id', ids).where({ auto_renew: true }).select('id', 'name', 'account_id')) as { id: number; name: string; account_id: number }[];
    for (const d of domains) await setAutoRenewTx(tx, actor, now, d, false, `order ${order.order_number} rejected after manual review`);
  });
}

async function approveHeld(ctx: Ctx, actor: Actor, order: OrderRow, comment: string): Promise<void> {
  const orderId = toNumber(order.id);
  const kept = await keptOf(ctx.deps.db, orderId);
  const keptNet = kept.reduce((s, k) => s + toBigInt(k.amount), 0n);
  const shares = await approvalShares(ctx, ctx.deps.db, order, keptNet);
  const keptAmount = shares.kept;
  const payments = ctx.svc.payments;
  const refund = await withClaim(ctx, order, 'approved', async (): Promise<{ paymentId: number; refundPaymentId: number; amount: bigint } | null> => {
    if (order.payment_id === null || order.payment_id === undefined || !payments) return null;
    const paymentId = toNumber(order.payment_id);
    const p = await payments.get(actor, paymentId);
    if (p.status === 'pending' || p.status === 'unknown') throw stillOpen(`Payment ${paymentId} is ${p.status}.`, 'ApproveOrder');
    // Voided by hand meanwhile: nothing pays for the kept domains; RejectOrder records the void and fails the order.
    if (p.status !== 'success') throw notAllowed(`Payment ${paymentId} is ${p.status}: nothing pays for the kept domain(s) any more; reject the order instead.`, 'orderId');
    const rest = shares.paid - keptAmount;
    const back = rest < p.amount ? rest : p.amount;
    if (back <= 0n) return null;
    let r;
    try {
      r = await payments.refund(actor, paymentId, { amount: back, idempotencyKey: orderHoldRefundKey(orderId), reason: `Order ${order.order_number}: items not delivered` });
    } catch (e) {
      // Refunded (in part) by hand before, or not refundable at all: the operator settles the money another way.
      if (e instanceof AppError && (e.code === 'NOT_ALLOWED' || e.code === 'INVALID_ARGUMENT')) {
        throw notAllowed(`${amountText(back, order.currency)} of payment ${paymentId} cannot be refunded (${e.message}); the order stays on hold.`, 'orderId');
      }
      throw e;
    }
    if (r.status === 'pending' || r.status === 'unknown') throw stillOpen(`The refund of ${amountText(back, order.currency)} of payment ${paymentId} is ${r.status}.`, 'ApproveOrder');
    if (r.status !== 'success') throw new AppError('PROVIDER_ERROR', `The gateway refused the refund of ${amountText(back, order.currency)} of payment ${paymentId} (${r.message ?? r.status}); the order stays on hold.`, 'orderId');
    return { paymentId, refundPaymentId: r.paymentId, amount: r.amount };
  });
  const note = refund ? `Refunded ${amountText(refund.amount, order.currency)} of payment ${refund.paymentId} (refund ${refund.refundPaymentId}) for what was not delivered.` : '';
  await writeTx(ctx.deps, async (tx) => {
    const locked = await lockHeld(tx, order, 'approved');
    const names = kept.map((k) => k.name).join(', ');
    const price = keptAmount === keptNet ? amountText(keptAmount, order.currency) : `${amountText(keptAmount, order.currency)}: ${amountText(keptNet, order.currency)} and its tax`;
    const text = [onReview('Approved', comment), names ? `The customer keeps ${names} (${price}).` : '', note].filter(Boolean).join(' ');
    const now = ctx.deps.clock.now();
    await tx('order_domains').where({ order_id: orderId, status: 'kept' }).update({ status: 'done', last_error: null, updated_at: now.getTime() });
    await tx('orders').where({ id: orderId }).update({ failure_reason: null, settling: null });
    await transitionIfAt(ctx, tx, orderId, locked.step, 'success', text, actor);
    // The undelivered items with their tax credited on the invoice (figured again under the lock), the refund taking
    // back what of that credit the invoice did not need.
    const { invoiceId, credit } = await approvalShares(ctx, tx, order, keptNet);
    const reason = 'refund of the items not delivered';
    if (refund) {
      await ctx.ledger.refundOnCancellationTx(tx, actor, now, { orderId, orderNumber: order.order_number, paymentId: refund.paymentId, refundPaymentId: refund.refundPaymentId, amount: refund.amount, reason, credit: credit > refund.amount ? credit : refund.amount });
    } else if (invoiceId !== null && credit > 0n) {
      await ctx.ledger.memoTx(tx, actor, now, 'credit_memo', { accountId: toNumber(order.account_id), amount: credit, description: `Order ${order.order_number}: credit of the items not delivered`, invoiceId, orderId, applyUpTo: true });
    }
  });
}
