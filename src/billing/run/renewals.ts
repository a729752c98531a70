import { recordChange } from '../../audit/record-change';
import { toNumber, type Tx } from '../../db/knex';
import { SUBSCRIPTION_STATUS } from '../../subscriptions/subscriptions-service';
import { billingActor, type InvoicePaidListener } from '../documents-service';
import type { InvoicePaidEvent } from '../types';

/**
 * PBA's renewal semantics: a subscription's expiration moves forward when its renewal invoice is paid. Registered
 * on DocumentsService.onInvoicePaid, so it runs in the transaction that marks the invoice paid. For each renewal
 * or trial_conversion charge on the invoice, the subscription whose expiration is still the charge's period start
 * gets expiration = next bill date = the period's end (a trial also becomes active on the plan's paid period).
 * The guard on the old expiration makes a second delivery of the same payment change nothing.
 *
 * (The orders helper is building renewal orders with their own "extend by a period" in src/subscriptions; this
 * small equivalent lives here until the lead merges both.)
 */
export function extendPaidRenewals(): InvoicePaidListener {
  return async (tx: Tx, e: InvoicePaidEvent) => {
    const charges = (await tx('billing_charges')
      .where({ document_id: e.documentId })
      .whereIn('kind', ['renewal', 'trial_conversion'])
      .whereNotNull('subscription_id')
      .orderBy('id')
      .select('subscription_id', 'kind', 'period_start', 'period_end')) as { subscription_id: number; kind: string; period_start: unknown; period_end: unknown }[];
    for (const c of charges) {
      const subscriptionId = toNumber(c.subscription_id);
      const start = toNumber(c.period_start);
      const end = toNumber(c.period_end);
      const update: Record<string, unknown> = { expiration_date: end, next_bill_date: end, last_bill_date: e.paidAt.getTime(), updated_at: e.paidAt.getTime() };
      if (c.kind === 'trial_conversion') {
        const sub = (await tx('subscriptions').where({ id: subscriptionId }).first('plan_id')) as { plan_id: number } | undefined;
        const paid = sub
          ? ((await tx('plan_periods').where({ plan_id: sub.plan_id, trial: false, enabled: true }).orderBy(['sort_order', 'id']).first('id')) as { id: number } | undefined)
          : undefined;
        if (paid) update.period_id = toNumber(paid.id);
        update.status = SUBSCRIPTION_STATUS.active;
      }
      const n = await tx('subscriptions')
        .where({ id: subscriptionId, expiration_date: start })
        .whereIn('status', [SUBSCRIPTION_STATUS.active, SUBSCRIPTION_STATUS.graced, SUBSCRIPTION_STATUS.trial, SUBSCRIPTION_STATUS.suspended])
        .update(update);
      if (!n) continue;
      await recordChange(tx, billingActor(e.vendorId), e.paidAt, {
        operation: c.kind === 'trial_conversion' ? 'billing.trial_converted' : 'billing.renewed',
        objectType: 'subscription',
        objectId: subscriptionId,
        details: { invoiceId: e.documentId, invoiceNumber: e.number, periodStart: new Date(start).toISOString(), periodEnd: new Date(end).toISOString() },
        event: {
          name: 'subscription.renewed',
          accountId: e.accountId,
          payload: { subscriptionId, invoiceId: e.documentId, expirationDate: new Date(end).toISOString(), trialConverted: c.kind === 'trial_conversion' },
        },
      });
    }
  };
}
