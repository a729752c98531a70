import type { Knex } from 'knex';

// Renewal orders (RN) placed by the billing run: each renewal charge names its order (billing_charges.order_id).
// The order engine's charge step and GetOrder look the charges of an order up by it.

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('billing_charges', (t) => {
    t.index(['order_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('billing_charges', (t) => {
    t.dropIndex(['order_id']);
  });
}
