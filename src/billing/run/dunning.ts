import { recordChange } from '../../audit/record-change';
import type { Deps } from '../../context';
import { isSqlite, toNumber, type Conn, type Tx } from '../../db/knex';
import { isAppError } from '../../domain/errors';
import { isUniqueViolation } from '../../idempotency';
import type { TaskQueue } from '../../jobs/task-queue';
import { SubscriptionActionsService } from '../../subscriptions/service-actions';
import { SUBSCRIPTION_STATUS } from '../../subscriptions/subscriptions-service';
import { billingActor } from '../documents-service';
import type { BillingSettings } from '../settings';
import type { InvoicePaidEvent } from '../types';
import { addTo } from '../../domain/group';

const DAY_MS = 86_400_000;

export type DunningStep = 'grace' | 'suspend' | 'terminate';
/** dunning_steps also records auto-pay retries (`autopay:<n>`); these are the steps that dun. */
const DUNNING_STEPS: readonly DunningStep[] = ['grace', 'suspend', 'terminate'];

export interface OverdueInvoice {
  id: number;
  number: string;
  vendorId: number;
  accountId: number;
  dueDate: number;
}

/** The dunning steps due for an invoice past due by (asOf - due date), per the vendor's days, in order. */
export function dueSteps(s: BillingSettings, dueDate: number, asOf: number): DunningStep[] {
  const past = asOf - dueDate;
  const steps: DunningStep[] = [];
  if (past >= s.graceDays * DAY_MS) steps.push('grace');
  if (past >= s.terminateDays * DAY_MS) steps.push('terminate');
  else if (past >= s.suspendDays * DAY_MS) steps.push('suspend');
  return steps;
}

/** Subscriptions billed on each invoice (through its charges). */
export async function subscriptionsOn(conn: Conn, documentIds: number[]): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>();
  for (let i = 0; i < documentIds.length; i += 500) {
    const rows = (await conn('billing_charges').whereIn('document_id', documentIds.slice(i, i + 500)).whereNotNull('subscription_id').distinct('document_id', 'subscription_id')) as { document_id: number; subscription_id: number }[];
    for (const r of rows) {
      const list = out.get(toNumber(r.document_id)) ?? [];
      if (!list.includes(toNumber(r.subscription_id))) list.push(toNumber(r.subscription_id));
      out.set(toNumber(r.document_id), list);
    }
  }
  return out;
}

/**
 * Dunning of one overdue invoice: each step happens once per invoice (a dunning_steps row, primary key
 * (document, step), claimed before acting). Grace: the invoice's active subscriptions become graced (40).
 * Suspend / terminate: requested through the service gate (SubscriptionActionsService) with an idempotency key per
 * (invoice, step, subscription), so a step claimed by a run that then died is done again safely by the next run.
 * Only the subscriptions billed on the overdue invoice are touched: a customer's other, paid-up subscriptions never
 * are. Answers how many suspensions and terminations were requested.
 */
export async function dunInvoice(deps: Deps, tasks: TaskQueue, inv: OverdueInvoice, steps: DunningStep[], subs: number[], at: Date): Promise<{ suspensions: number; terminations: number }> {
  const out = { suspensions: 0, terminations: 0 };
  if (subs.length === 0) return out;
  const actor = billingActor(inv.vendorId);
  for (const step of steps) {
    // Claim (or find an unfinished claim of an earlier run).
    let claimed = false;
    try {
      await deps.db('dunning_steps').insert({ document_id: inv.id, step, outcome: 'pending', at: at.getTime() });
      claimed = true;
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
      const row = (await deps.db('dunning_steps').where({ document_id: inv.id, step }).first('outcome')) as { outcome: string } | undefined;
      claimed = row?.outcome === 'pending';
    }
    if (!claimed) continue;
    if (step === 'grace') {
      await deps.db.transaction(async (tx) => {
        if (!(await stillOpen(tx, inv))) {
          await tx('dunning_steps').where({ document_id: inv.id, step }).update({ outcome: 'paid' });
          return;
        }
        const n = await tx('subscriptions').whereIn('id', subs).where('status', SUBSCRIPTION_STATUS.active).update({ status: SUBSCRIPTION_STATUS.graced, updated_at: at.getTime() });
        if (n) {
          await recordChange(tx, actor, at, {
            operation: 'billing.dunning.grace',
            objectType: 'document',
            objectId: inv.id,
            details: { invoice: inv.number, subscriptions: subs },
            event: { name: 'subscription.graced', accountId: inv.accountId, payload: { invoiceId: inv.id, invoiceNumber: inv.number, subscriptionIds: subs } },
          });
        }
        await tx('dunning_steps').where({ document_id: inv.id, step }).update({ outcome: 'done' });
      });
      continue;
    }
    const outcomes: string[] = [];
    for (const subscriptionId of subs) {
      try {
        // Paid meanwhile (the run listed it open a while ago): no suspension nor termination for a settled debt.
        const requested = await deps.db.transaction(async (tx) => {
          if (!(await stillOpen(tx, inv))) return false;
          await new SubscriptionActionsService({ ...deps, db: tx }, { tasks }).request(actor, subscriptionId, step, { reason: `non-payment of invoice ${inv.number}`, idempotencyKey: `dunning:${inv.id}:${step}:${subscriptionId}`, hold: 'credit' });
          return true;
        });
        if (!requested) {
          outcomes.push('paid');
          break;
        }
        if (step === 'suspend') out.suspensions++;
        else out.terminations++;
        outcomes.push('requested');
      } catch (e) {
        if (!isAppError(e) || e.code !== 'NOT_ALLOWED') throw e;
        outcomes.push('refused'); // e.g. already suspended or terminated
      }
    }
    const outcome = outcomes.includes('requested') ? 'requested' : outcomes.includes('paid') ? 'paid' : 'refused';
    await deps.db('dunning_steps').where({ document_id: inv.id, step }).update({ outcome });
  }
  return out;
}

/**
 * Whether the invoice is still open, read under its account's lock (a payment locks the account first too), so a
 * payment committing now either is seen here or waits for this step's transaction and then lifts what it did.
 */
async function stillOpen(tx: Tx, inv: OverdueInvoice): Promise<boolean> {
  if (!isSqlite(tx)) await tx('accounts').where({ id: inv.accountId }).forUpdate().first('id');
  const row = (await tx('documents').where({ id: inv.id }).first('status')) as { status: string } | undefined;
  return row?.status === 'open';
}

/**
 * On payment in full of an invoice that had been dunned: its graced subscriptions are active again, and those
 * suspended for it are resumed through the gate, unless another unpaid invoice of theirs is suspended too.
 * Runs in the paying transaction (DocumentsService.onInvoicePaid).
 */
export function liftDunning(deps: Deps, tasks: TaskQueue) {
  return async (tx: Tx, events: readonly InvoicePaidEvent[]): Promise<void> => {
    // One read for all the invoices paid: most were never dunned.
    const dunned = new Map<number, { step: string }[]>();
    for (let i = 0; i < events.length; i += 500) {
      const rows = (await tx('dunning_steps').whereIn('document_id', events.slice(i, i + 500).map((e) => e.documentId)).whereIn('step', DUNNING_STEPS).select('document_id', 'step')) as { document_id: number; step: string }[];
      for (const r of rows) addTo(dunned, toNumber(r.document_id), r);
    }
    for (const e of events) if (dunned.has(e.documentId)) await liftOne(deps, tasks, tx, e);
  };
}

async function liftOne(deps: Deps, tasks: TaskQueue, tx: Tx, e: InvoicePaidEvent): Promise<void> {
  const subs = (await subscriptionsOn(tx, [e.documentId])).get(e.documentId) ?? [];
  const at = e.paidAt;
  for (const subscriptionId of subs) {
    // Another open invoice of this subscription that is also being dunned keeps it where it is (an auto-pay retry
    // of an invoice not yet overdue is no dunning).
    const other = await tx('billing_charges as c')
      .join('documents as d', 'd.id', 'c.document_id')
      .join('dunning_steps as s', 's.document_id', 'd.id')
      .where('c.subscription_id', subscriptionId)
      .whereNot('d.id', e.documentId)
      .where('d.status', 'open')
      .whereIn('s.step', DUNNING_STEPS)
      .first('d.id');
    if (other) continue;
    await tx('subscriptions').where({ id: subscriptionId, status: SUBSCRIPTION_STATUS.graced }).update({ status: SUBSCRIPTION_STATUS.active, updated_at: at.getTime() });
    // Suspended for any of its invoices (not necessarily this one: paid last, it may only have been graced), all of
    // them now paid.
    const suspendedForDebt = await tx('billing_charges as c').join('dunning_steps as s', 's.document_id', 'c.document_id').where({ 'c.subscription_id': subscriptionId, 's.step': 'suspend' }).first('s.document_id');
    if (!suspendedForDebt) continue;
    // Only a suspension for non-payment (a credit hold) is lifted: one an operator made stays, even when dunning's own
    // suspend step found the subscription already suspended.
    const row = (await tx('subscriptions').where({ id: subscriptionId }).first('status', 'hold_reason')) as { status: number; hold_reason: string | null } | undefined;
    if (!row || toNumber(row.status) !== SUBSCRIPTION_STATUS.suspended || row.hold_reason !== 'credit') continue;
    try {
      await new SubscriptionActionsService({ ...deps, db: tx }, { tasks }).request(billingActor(e.vendorId), subscriptionId, 'resume', { reason: `invoice ${e.number} paid in full` });
    } catch (err) {
      // The suspension has not reached the gate yet (service still stopping): leave it to an operator.
      if (!isAppError(err) || err.code !== 'NOT_ALLOWED') throw err;
      deps.log.warn('could not resume a subscription suspended for non-payment', { subscriptionId, invoiceId: e.documentId, error: err.message });
    }
  }
}
