import type { Knex } from 'knex';

/**
 * Orders on existing subscriptions (renewal, cancellation; change and resource later): an order item may name the
 * subscription it acts on, with what the order does to it, and when.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('order_items', (t) => {
    t.bigInteger('target_subscription_id').unsigned().nullable(); // the existing subscription this item acts on
    t.string('cancel_type', 8).nullable(); // cancellation: refund | credit | none
    t.string('effective', 16).nullable(); // immediate | end_of_term
    t.text('details').nullable(); // JSON: what the order computed and did (reason, refund, credit, period extended ...)
    t.index(['target_subscription_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('order_items', (t) => {
    t.dropIndex(['target_subscription_id']);
    t.dropColumn('details');
    t.dropColumn('effective');
    t.dropColumn('cancel_type');
    t.dropColumn('target_subscription_id');
  });
}
