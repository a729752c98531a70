import type { Knex } from 'knex';

// Why a subscription was last asked to be suspended: 'credit' (dunning, for non-payment: PBA's credit hold) or
// 'admin' (an operator, an API caller, fraud). Payment in full and SubscriptionTakeFromCreditHold_API lift only a
// credit hold; a payment never resumes a subscription an operator suspended.
// Subscriptions suspended before this migration: a credit hold when dunning requested a suspension on an invoice
// billing them (an invoice-level record, so a subscription an operator suspended beside a dunned one on the same
// invoice counts as a credit hold too; the same rule the code applied before).

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('subscriptions', (t) => {
    t.string('hold_reason', 16).nullable();
  });
  await backfillHoldReasons(knex);
}

/** Suspended subscriptions get 'credit' when dunning's suspend step requested a suspension on an invoice billing them, else 'admin'. */
export async function backfillHoldReasons(knex: Knex): Promise<void> {
  const dunned = knex('billing_charges as c')
    .join('dunning_steps as d', 'd.document_id', 'c.document_id')
    .where('d.step', 'suspend')
    .whereIn('d.outcome', ['pending', 'requested'])
    .whereNotNull('c.subscription_id')
    .select('c.subscription_id');
  await knex('subscriptions').where('status', 80).whereIn('id', dunned).update({ hold_reason: 'credit' });
  await knex('subscriptions').where('status', 80).whereNull('hold_reason').update({ hold_reason: 'admin' });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('subscriptions', (t) => {
    t.dropColumn('hold_reason');
  });
}
