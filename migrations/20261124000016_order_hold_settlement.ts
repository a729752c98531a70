import type { Knex } from 'knex';

// Orders on hold (HL) settled by an operator (ApproveOrder / RejectOrder, src/orders/hold-settlement.ts):
// orders.settling holds the decision under way ('approved' | 'rejected') while its gateway call runs, so the other
// decision cannot move money for the same order at the same time. A lock, like a task's lease: null otherwise.

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('orders', (t) => {
    t.string('settling', 16).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('orders', (t) => {
    t.dropColumn('settling');
  });
}
