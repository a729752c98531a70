import type { Knex } from 'knex';

// Domain items of orders (issue #7): register, transfer or renew one domain name, priced from the seller's TLD
// offer, worked by the order's saga after its hosting items. One row per domain item; order_lines carry its price
// (item_id null, kind 'domain'). The EPP auth code of a transfer is sealed with the secret box, never kept clear.
// status: pending | running | done | failed | skipped | undone | kept (kept: registered and could not be deleted
// on rollback; the order is on hold for an operator).

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('order_domains', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('order_id').unsigned().notNullable().references('id').inTable('orders');
    t.integer('position').notNullable(); // 1-based, after the order's hosting items
    t.bigInteger('item_id').unsigned().nullable(); // the hosting item it came with (in-line registration)
    t.string('action', 16).notNullable(); // register | transfer | renew
    t.string('name', 253).notNullable(); // punycode, lower case
    t.bigInteger('tld_id').unsigned().notNullable().references('id').inTable('tlds');
    t.bigInteger('registrar_instance_id').unsigned().notNullable().references('id').inTable('plugin_instances');
    t.integer('years').notNullable();
    t.text('nameservers').notNullable(); // JSON array of host names
    t.text('auth_code_enc').nullable(); // transfer: sealed EPP auth code
    t.bigInteger('amount').notNullable(); // minor units of the order's currency
    t.string('status', 16).notNullable().defaultTo('pending');
    t.string('operation_id', 64).notNullable(); // the registrar operation id (pollTransfer uses it)
    t.bigInteger('domain_id').unsigned().nullable(); // the domains row, once recorded (renew: the renewed one)
    t.text('last_error').nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.unique(['order_id', 'position']);
    t.index(['name']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('order_domains');
}
