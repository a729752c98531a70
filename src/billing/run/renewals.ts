import { toNumber, type Tx } from '../../db/knex';
import { extendSubscriptions } from '../../subscriptions/renewal';
import { billingActor, type InvoicePaidListener } from '../documents-service';
import type { InvoicePaidEvent } from '../types';

/**
 * PBA's renewal semantics: a subscription's expiration moves forward when its renewal invoice is paid. Registered
 * on DocumentsService.onInvoicePaid, so it runs in the transaction that marks the invoice paid. For each renewal
 * or trial_conversion charge on the invoice, the subscription is extended by the one "extend by a period"
 * (src/subscriptions/renewal.ts) from the charge's period start to its end, guarded by that start: a second
 * delivery of the same payment changes nothing. A trial moves to its plan's paid period and becomes active.
 */
export function extendPaidRenewals(): InvoicePaidListener {
  return async (tx: Tx, e: InvoicePaidEvent) => {
    const charges = (await tx('billing_charges')
      .where({ document_id: e.documentId })
      .whereIn('kind', ['renewal', 'trial_conversion'])
      .whereNotNull('subscription_id')
      .orderBy('id')
      .select('subscription_id', 'kind', 'period_start', 'period_end')) as { subscription_id: number; kind: string; period_start: unknown; period_end: unknown }[];
    if (charges.length === 0) return;
    await extendSubscriptions(
      tx,
      billingActor(e.vendorId),
      e.paidAt,
      charges.map((c) => ({ subscriptionId: toNumber(c.subscription_id), from: new Date(toNumber(c.period_start)), to: new Date(toNumber(c.period_end)), trialConversion: c.kind === 'trial_conversion', invoiceId: e.documentId })),
      // Graced subscriptions are made active by dunning's listener (liftDunning), which knows about other dunned invoices.
      { operation: 'billing.renewed', reactivateGraced: false },
    );
  };
}
