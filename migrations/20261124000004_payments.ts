import type { Knex } from 'knex';

// Payments, stored pay tools and fraud screenings. Money is BIGINT minor units, instants epoch milliseconds.
// No column ever holds a card number or CVV: a card is a gateway token with brand, last 4 digits and expiry.

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('pay_tools', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('account_id').unsigned().notNullable().references('id').inTable('accounts');
    // Plain column: plugin instances live in another context's table.
    t.bigInteger('gateway_instance_id').unsigned().notNullable();
    t.string('token', 255).notNullable();
    t.string('brand', 32).notNullable();
    t.string('last4', 4).notNullable();
    t.integer('exp_month').notNullable();
    t.integer('exp_year').notNullable();
    t.boolean('is_default').notNullable().defaultTo(false);
    t.bigInteger('created_at').notNullable();
    t.unique(['gateway_instance_id', 'token']);
    t.index(['account_id']);
  });

  await knex.schema.createTable('payments', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('account_id').unsigned().notNullable().references('id').inTable('accounts');
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.bigInteger('gateway_instance_id').unsigned().nullable(); // null: an offline payment (check, wire, cash)
    t.string('kind', 16).notNullable(); // purchase | authorize | capture | void | refund
    t.bigInteger('parent_payment_id').unsigned().nullable().references('id').inTable('payments');
    t.bigInteger('order_id').unsigned().nullable(); // plain column: orders live in another context
    t.bigInteger('amount').notNullable();
    t.string('currency', 3).notNullable();
    t.string('status', 16).notNullable(); // pending | success | declined | plugin_failure | unknown | voided
    // The key the core hands the gateway: unique, so the same request twice creates one row and one call.
    t.string('idempotency_key', 128).notNullable().unique();
    t.string('request_hash', 64).notNullable(); // what the key was first used for: other arguments are a CONFLICT
    t.string('gateway_reference', 255).nullable();
    t.bigInteger('pay_tool_id').unsigned().nullable().references('id').inTable('pay_tools');
    t.string('description', 255).notNullable().defaultTo('');
    t.string('failure_code', 64).nullable();
    t.boolean('retryable').notNullable().defaultTo(false);
    t.string('message', 512).nullable();
    t.bigInteger('checked_at').nullable(); // last time the reconciler asked the gateway
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.index(['account_id', 'id']);
    t.index(['status', 'checked_at']);
    t.index(['parent_payment_id']);
    t.index(['order_id']);
  });

  await knex.schema.createTable('fraud_checks', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('order_id').unsigned().notNullable(); // plain column: orders live in another context
    t.bigInteger('account_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('instance_name', 96).notNullable();
    t.string('verdict', 16).notNullable(); // pass | suspect | reject
    t.text('reasons').notNullable(); // JSON array of one-line reasons
    t.double('score').nullable();
    t.string('ip_address', 64).nullable(); // kept for the per-IP velocity count
    t.bigInteger('created_at').notNullable();
    t.index(['account_id', 'created_at']);
    t.index(['ip_address', 'created_at']);
    t.index(['order_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const t of ['fraud_checks', 'payments', 'pay_tools']) await knex.schema.dropTableIfExists(t);
}
