import type { Knex } from 'knex';

// The domain catalog and the domains held for accounts (issue #7).
// tlds: a vendor's offer of one top-level domain, served by one registrar plugin instance (the vendor's own or an
// ancestor's); tld_prices: what a vendor charges per action and year count, in minor units of the TLD's currency.
// domains: one row per domain an account holds; the EPP auth code is never kept in clear (auth_code_enc is sealed).

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('tlds', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('tld', 63).notNullable(); // punycode, lower case, without the dot: "com", "co.uk"
    t.bigInteger('registrar_instance_id').unsigned().notNullable().references('id').inTable('plugin_instances');
    t.string('currency', 3).notNullable();
    t.boolean('enabled').notNullable().defaultTo(true);
    t.boolean('transfer_auth_required').notNullable().defaultTo(true);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.unique(['vendor_id', 'tld']);
    t.index(['tld']);
  });

  await knex.schema.createTable('tld_prices', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('tld_id').unsigned().notNullable().references('id').inTable('tlds');
    t.string('action', 16).notNullable(); // register | transfer | renew
    t.integer('years').notNullable(); // 1-10
    t.bigInteger('amount').notNullable(); // minor units
    t.unique(['tld_id', 'action', 'years']);
  });

  await knex.schema.createTable('domains', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('account_id').unsigned().notNullable().references('id').inTable('accounts');
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('name', 253).notNullable().unique(); // punycode, lower case
    t.string('tld', 63).notNullable();
    t.bigInteger('tld_id').unsigned().nullable().references('id').inTable('tlds');
    t.bigInteger('registrar_instance_id').unsigned().notNullable().references('id').inTable('plugin_instances');
    t.string('status', 24).notNullable(); // pending | active | transfer_pending | expired | redemption | suspended | transferred_away | deleted
    t.bigInteger('registered_at').nullable();
    t.bigInteger('expires_at').nullable();
    t.text('nameservers').notNullable(); // JSON array of host names
    t.boolean('locked').notNullable().defaultTo(false);
    t.text('auth_code_enc').nullable(); // sealed with the secret box, never clear
    t.bigInteger('subscription_id').unsigned().nullable();
    t.bigInteger('order_id').unsigned().nullable();
    t.bigInteger('synced_at').nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.index(['account_id']);
    t.index(['registrar_instance_id', 'id']);
    t.index(['expires_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('domains');
  await knex.schema.dropTableIfExists('tld_prices');
  await knex.schema.dropTableIfExists('tlds');
}
