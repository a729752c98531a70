import type { Knex } from 'knex';

// Domain lifecycle (issue #7, section 5): renewals billed by the billing run, expiry reminders, transfers polled.
// domains.auto_renew: the billing run invoices a renewal ahead of expiry (default on).
// domains.transfer_operation_id: the operation id the transfer in was started with (pollTransfer needs it);
// domains.transfer_checked_at: when the poller last asked the registrar (bounds how often it asks).
// billing_charges.domain_id: the domain a `domain:<id>:renew:<expiry>` charge renews (subscription_id is null).
// billing_settings.domain_renew_days_before: domain renewals are invoiced this many days before expiry.
// domain_reminder_sends: one row per (domain, offset, expiry): each expiry reminder is sent once.

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('domains', (t) => {
    t.boolean('auto_renew').notNullable().defaultTo(true);
    t.string('transfer_operation_id', 64).nullable();
    t.bigInteger('transfer_checked_at').nullable();
    t.index(['status', 'id'], 'domains_status_id');
  });
  await knex.schema.alterTable('billing_charges', (t) => {
    t.bigInteger('domain_id').unsigned().nullable();
    t.index(['domain_id'], 'billing_charges_domain');
  });
  await knex.schema.alterTable('billing_settings', (t) => {
    t.integer('domain_renew_days_before').notNullable().defaultTo(30);
  });
  await knex.schema.createTable('domain_reminder_sends', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('domain_id').unsigned().notNullable();
    t.integer('days_before').notNullable();
    t.bigInteger('expires_at').notNullable();
    t.bigInteger('created_at').notNullable();
    t.unique(['domain_id', 'days_before', 'expires_at'], { indexName: 'domain_reminder_sends_once' });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('domain_reminder_sends');
  await knex.schema.alterTable('billing_settings', (t) => {
    t.dropColumn('domain_renew_days_before');
  });
  await knex.schema.alterTable('billing_charges', (t) => {
    t.dropIndex(['domain_id'], 'billing_charges_domain');
    t.dropColumn('domain_id');
  });
  await knex.schema.alterTable('domains', (t) => {
    t.dropIndex(['status', 'id'], 'domains_status_id');
    t.dropColumn('transfer_checked_at');
    t.dropColumn('transfer_operation_id');
    t.dropColumn('auto_renew');
  });
}
