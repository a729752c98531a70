import { recordChange } from '../audit/record-change';
import type { Actor, Deps } from '../context';
import { isSqlite, toBigInt, toNumber } from '../db/knex';
import { inTransaction, takeWriteLock } from '../db/transaction';
import { notAllowed, notFound } from '../domain/errors';
import { positiveId } from '../domain/fields';
import { formatAmount } from '../domain/money';
import type { TaskQueue } from '../jobs/task-queue';
import { SubscriptionActionsService } from '../subscriptions/service-actions';
import { SUBSCRIPTION_STATUS } from '../subscriptions/subscriptions-service';

export interface TakenFromCreditHold {
  subscriptionId: number;
  /** The subscription.resume task that resumes the service through its gate. */
  taskId: number;
  /** The invoices the subscription was suspended for (their dunning `suspend` step). */
  invoiceIds: number[];
}

/**
 * PBA "take from credit hold" (XML-RPC BM SubscriptionTakeFromCreditHold_API): a subscription that dunning
 * suspended for non-payment (status 80 with hold_reason 'credit', a `suspend` dunning step on an invoice billing it) is resumed through its
 * gate, once nothing on its account is overdue any more. The usual way off credit hold is automatic (payment in
 * full resumes it, src/billing/run/dunning.ts liftDunning); this is for an operator when that could not happen,
 * e.g. the payment arrived while the suspension was still reaching the gate.
 *
 * Refused (NOT_ALLOWED) when the subscription is not suspended, was suspended for another reason (resume it with
 * SubscriptionStatusUpdate_API), its service is not stopped yet, the account still has overdue invoices or debit
 * memos, or the caller is the subscription's own account (only its vendor or an account above it lifts a hold).
 * NOT_FOUND outside the caller's subtree. Audited (`TakeFromCreditHold`) with the event
 * `subscription.credit_hold_lifted`, in the transaction that enqueues the resume.
 */
export async function takeFromCreditHold(deps: Deps, tasks: TaskQueue, actor: Actor, subscriptionId: number, opts: { reason?: string } = {}): Promise<TakenFromCreditHold> {
  const id = positiveId(subscriptionId, 'subscriptionId');
  const reason = (opts.reason ?? '').trim().slice(0, 1000);
  return inTransaction(deps.db, async (tx) => {
    await takeWriteLock(tx);
    const q = tx('subscriptions as s').join('accounts as a', 'a.id', 's.account_id').where('s.id', id).andWhere('a.path', 'like', `${actor.accountPath}%`).first('s.id', 's.account_id', 's.status', 's.hold_reason');
    const sub = (await (isSqlite(tx) ? q : q.forUpdate())) as { id: number; account_id: number; status: number; hold_reason: string | null } | undefined;
    if (!sub) throw notFound('Subscription', id);
    const accountId = toNumber(sub.account_id);
    if (accountId === actor.accountId) throw notAllowed(`Account ${accountId} cannot take its own subscription from credit hold; its vendor does.`, 'subscriptionId');
    if (toNumber(sub.status) !== SUBSCRIPTION_STATUS.suspended) throw notAllowed(`Subscription ${id} is not on credit hold: it is not suspended (status ${toNumber(sub.status)}).`, 'subscriptionId');
    const held = (await tx('dunning_steps as d')
      .join('billing_charges as c', 'c.document_id', 'd.document_id')
      .where({ 'd.step': 'suspend', 'c.subscription_id': id })
      .distinct('d.document_id')
      .orderBy('d.document_id')) as { document_id: number }[];
    if (held.length === 0 || sub.hold_reason !== 'credit') {
      throw notAllowed(`Subscription ${id} is suspended, but not for non-payment; resume it with SubscriptionStatusUpdate_API (Status 30).`, 'subscriptionId');
    }
    const now = deps.clock.now();
    const overdue = (await tx('documents')
      .where({ account_id: accountId, status: 'open' })
      .whereIn('type', ['invoice', 'debit_memo'])
      .where('due_date', '<', now.getTime())
      .groupBy('currency')
      .select('currency')
      .sum({ s: 'open_amount' })) as { currency: string; s: unknown }[];
    const owed = overdue.filter((o) => toBigInt(o.s) > 0n);
    if (owed.length) {
      const text = owed.map((o) => `${formatAmount(toBigInt(o.s), o.currency)} ${o.currency}`).join(', ');
      throw notAllowed(`Account ${accountId} still has ${text} overdue; subscription ${id} stays on credit hold until that is paid (or credited).`, 'subscriptionId');
    }
    const { taskId } = await new SubscriptionActionsService({ ...deps, db: tx }, { tasks }).request(actor, id, 'resume', { reason: reason ? `Taken from credit hold: ${reason}` : 'Taken from credit hold' });
    const invoiceIds = held.map((h) => toNumber(h.document_id));
    await recordChange(tx, actor, now, {
      operation: 'TakeFromCreditHold',
      objectType: 'subscription',
      objectId: id,
      details: { invoiceIds, taskId, reason },
      event: { name: 'subscription.credit_hold_lifted', accountId, payload: { subscriptionId: id, accountId, invoiceIds, taskId, reason } },
    });
    return { subscriptionId: id, taskId, invoiceIds };
  });
}
