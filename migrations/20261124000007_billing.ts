import type { Knex } from 'knex';

// Accounts receivable: documents (invoices, memos, payments, refunds) with their lines and applications, the
// billing run's charges (its idempotency key), usage reports, per-vendor billing settings and tax rules.
// Money is BIGINT minor units, instants epoch milliseconds, as everywhere.
// Part A (documents) added invoice_payment_attempts (additive, before shipping): links a gateway charge to the
// invoice it pays, written before the gateway is called, so a pending/unknown payment is applied once settled.
// Part A also added triggers (end of up()): an issued document keeps its amounts and parties, its lines and
// applications are never changed or deleted (corrections only by memo).

export async function up(knex: Knex): Promise<void> {
  // Per-vendor billing policy; a vendor without a row gets the defaults of src/billing (documented there).
  await knex.schema.createTable('billing_settings', (t) => {
    t.bigInteger('vendor_id').unsigned().primary().references('id').inTable('accounts');
    t.integer('renew_days_before').notNullable(); // renewal invoices this many days before expiration
    t.integer('invoice_due_days').notNullable(); // due date = issue date + this
    t.integer('grace_days').notNullable(); // unpaid past due: graced after this many days
    t.integer('suspend_days').notNullable(); // ... suspended after this many days past due
    t.integer('terminate_days').notNullable(); // ... terminated after this many days past due
    t.text('autopay_retry_days').notNullable(); // JSON [1, 3, 7]: auto-pay retries, days after the first try
    t.bigInteger('late_fee').nullable(); // minor units of the invoice's currency; null = no late fee
    t.integer('late_fee_days').nullable(); // days past due before the late fee
    t.string('time_zone', 64).notNullable().defaultTo('UTC');
    t.bigInteger('updated_at').notNullable();
  });

  await knex.schema.createTable('tax_rules', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('name', 64).notNullable(); // printed on the tax line, e.g. "VAT 20%"
    t.string('country', 2).notNullable(); // ISO 3166 alpha-2 of the customer's address
    t.string('state', 64).nullable(); // null: the whole country
    t.integer('rate_ppm').notNullable(); // parts per million: 8.875% = 88750
    t.boolean('inclusive').notNullable().defaultTo(false); // prices already include the tax
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.unique(['vendor_id', 'country', 'state']);
  });

  // Gapless numbers: the counter is incremented in the transaction that issues the document.
  await knex.schema.createTable('document_sequences', (t) => {
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('type', 16).notNullable();
    t.bigInteger('last_number').notNullable();
    t.primary(['vendor_id', 'type']);
  });

  await knex.schema.createTable('documents', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.bigInteger('account_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('type', 16).notNullable(); // invoice | credit_memo | debit_memo | payment | refund
    t.string('number', 32).notNullable(); // e.g. INV-000001, gapless per vendor and type
    t.string('status', 16).notNullable(); // invoice/debit memo: open | paid | void; others: issued
    t.string('currency', 3).notNullable();
    t.bigInteger('subtotal').notNullable();
    t.bigInteger('tax_total').notNullable().defaultTo(0);
    t.bigInteger('total').notNullable(); // always >= 0; the sign comes from the type
    // What this document adds to the account's balance (what the customer owes): + invoice, debit memo, refund;
    // - payment, credit memo. The balance is the sum of this column.
    t.bigInteger('balance_effect').notNullable();
    // Invoices and debit memos: what is still to pay; payments and credit memos: what is still to apply.
    t.bigInteger('open_amount').notNullable();
    t.bigInteger('issue_date').notNullable();
    t.bigInteger('due_date').nullable();
    t.bigInteger('paid_at').nullable();
    t.bigInteger('related_document_id').unsigned().nullable(); // a memo's corrected invoice, a refund's payment
    t.bigInteger('payment_id').unsigned().nullable().references('id').inTable('payments'); // gateway transaction
    t.bigInteger('order_id').unsigned().nullable().references('id').inTable('orders');
    t.string('method', 16).nullable(); // payments: gateway | check | wire | cash | external
    t.string('reference', 255).nullable();
    t.string('description', 1024).notNullable().defaultTo('');
    t.bigInteger('created_by_user_id').nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.unique(['vendor_id', 'type', 'number']);
    t.index(['account_id', 'type', 'id']);
    t.index(['type', 'status', 'due_date']); // auto-pay and dunning: open invoices by due date
    t.index(['order_id']);
    t.index(['payment_id']);
  });

  // The billing run's unit of idempotency: one row per (subscription, charge kind, period), by a unique key.
  await knex.schema.createTable('billing_charges', (t) => {
    t.bigIncrements('id').primary();
    // "<subscriptionId>:<kind>:<periodStart>" (or "doc:<documentId>:late_fee"): unique, so a second run,
    // a concurrent run or a restarted run inserts nothing new.
    t.string('charge_key', 128).notNullable().unique();
    t.bigInteger('subscription_id').unsigned().nullable().references('id').inTable('subscriptions');
    t.bigInteger('account_id').unsigned().notNullable().references('id').inTable('accounts');
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('kind', 24).notNullable(); // renewal | trial_conversion | overage | resource | late_fee
    t.bigInteger('period_start').nullable();
    t.bigInteger('period_end').nullable();
    t.bigInteger('resource_id').unsigned().nullable();
    t.decimal('quantity', 20, 4).notNullable();
    t.bigInteger('unit_price').notNullable();
    t.bigInteger('amount').notNullable();
    t.string('currency', 3).notNullable();
    t.string('description', 255).notNullable();
    t.bigInteger('document_id').unsigned().nullable().references('id').inTable('documents'); // the invoice it is on
    t.bigInteger('order_id').unsigned().nullable().references('id').inTable('orders'); // a renewal order
    t.bigInteger('run_id').unsigned().nullable();
    t.bigInteger('created_at').notNullable();
    t.index(['document_id']);
    t.index(['account_id', 'document_id']);
    t.index(['subscription_id', 'kind']);
  });

  await knex.schema.createTable('document_lines', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('document_id').unsigned().notNullable().references('id').inTable('documents');
    t.integer('position').notNullable();
    t.string('kind', 24).notNullable(); // setup | recurring | renewal | overage | resource | late_fee | proration | adjustment | tax
    t.string('description', 255).notNullable();
    t.bigInteger('subscription_id').unsigned().nullable();
    t.bigInteger('resource_id').unsigned().nullable();
    t.bigInteger('period_start').nullable();
    t.bigInteger('period_end').nullable();
    t.decimal('quantity', 20, 4).notNullable();
    t.bigInteger('unit_price').notNullable();
    t.bigInteger('amount').notNullable(); // before tax for exclusive tax, as printed
    t.bigInteger('tax_amount').notNullable().defaultTo(0);
    t.bigInteger('charge_id').unsigned().nullable().unique(); // billing_charges.id: a charge lands on one invoice
    t.unique(['document_id', 'position']);
  });

  // A payment or credit memo applied to an invoice or debit memo (and a refund to its payment).
  await knex.schema.createTable('document_applications', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('source_document_id').unsigned().notNullable().references('id').inTable('documents');
    t.bigInteger('target_document_id').unsigned().notNullable().references('id').inTable('documents');
    t.bigInteger('amount').notNullable();
    t.bigInteger('created_at').notNullable();
    t.index(['source_document_id']);
    t.index(['target_document_id']);
  });

  // PayInvoice: one row per gateway charge meant for an invoice, keyed by the payment's gateway idempotency key and
  // written before the call; outcome stays null until the payment settles (applied | declined | failed).
  await knex.schema.createTable('invoice_payment_attempts', (t) => {
    t.string('gateway_key', 128).primary();
    t.bigInteger('document_id').unsigned().notNullable().references('id').inTable('documents');
    t.bigInteger('account_id').unsigned().notNullable().references('id').inTable('accounts');
    t.bigInteger('amount').notNullable();
    t.string('currency', 3).notNullable();
    t.bigInteger('payment_id').unsigned().nullable().references('id').inTable('payments');
    t.string('outcome', 16).nullable();
    t.bigInteger('payment_document_id').unsigned().nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('settled_at').nullable();
    t.index(['document_id']);
    t.index(['outcome', 'created_at']);
    t.index(['payment_id']);
  });

  // Every run, on demand or scheduled, with its summary; a dry run is not recorded.
  await knex.schema.createTable('billing_runs', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('as_of').notNullable();
    t.string('status', 16).notNullable(); // running | done | failed
    t.string('started_by', 128).notNullable(); // "cron", "cli", or the API user
    t.text('summary').nullable(); // JSON
    t.bigInteger('started_at').notNullable();
    t.bigInteger('finished_at').nullable();
  });

  // Reported usage, idempotent by the reporter's usage id.
  await knex.schema.createTable('usage_reports', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('subscription_id').unsigned().notNullable().references('id').inTable('subscriptions');
    t.bigInteger('resource_id').unsigned().notNullable().references('id').inTable('resources');
    t.string('usage_id', 128).notNullable();
    t.string('mode', 16).notNullable(); // increment | set
    t.decimal('quantity', 20, 4).notNullable();
    t.decimal('usage_after', 20, 4).notNullable(); // the period's usage after this report
    t.bigInteger('period_start').notNullable(); // the usage period it counted towards
    t.bigInteger('at').notNullable(); // when the usage happened (reporter's time, defaults to now)
    t.bigInteger('created_at').notNullable();
    t.unique(['subscription_id', 'usage_id']);
    t.index(['subscription_id', 'resource_id', 'period_start']);
  });

  // Usage per (subscription, resource, usage period): overage is billed from the closed periods.
  await knex.schema.createTable('usage_periods', (t) => {
    t.bigInteger('subscription_id').unsigned().notNullable().references('id').inTable('subscriptions');
    t.bigInteger('resource_id').unsigned().notNullable().references('id').inTable('resources');
    t.bigInteger('period_start').notNullable();
    t.bigInteger('period_end').notNullable();
    t.decimal('usage', 20, 4).notNullable();
    t.integer('threshold_pct_sent').nullable(); // the highest threshold event already emitted this period
    t.bigInteger('updated_at').notNullable();
    t.primary(['subscription_id', 'resource_id', 'period_start']);
    t.index(['period_end']);
  });

  // Dunning and notices: each step once per document, by its primary key.
  await knex.schema.createTable('dunning_steps', (t) => {
    t.bigInteger('document_id').unsigned().notNullable().references('id').inTable('documents');
    t.string('step', 32).notNullable(); // autopay:<n> | notice:<name> | grace | suspend | terminate | late_fee
    t.string('outcome', 32).notNullable();
    t.bigInteger('at').notNullable();
    t.primary(['document_id', 'step']);
  });

  await immutabilityTriggers(knex);
}

/** Columns of an issued document that never change; open_amount, status, paid_at and updated_at do. */
const FIXED = ['vendor_id', 'account_id', 'type', 'number', 'currency', 'subtotal', 'tax_total', 'total', 'balance_effect', 'issue_date', 'due_date', 'related_document_id', 'payment_id'];

async function immutabilityTriggers(knex: Knex): Promise<void> {
  const mysql = knex.client.config.client === 'mysql2' || knex.client.config.client === 'mysql';
  const msg = 'issued documents are immutable: correct them with a credit or debit memo';
  if (mysql) {
    const changed = FIXED.map((c) => `NOT (NEW.${c} <=> OLD.${c})`).join(' OR ');
    await knex.raw(`CREATE TRIGGER documents_fixed BEFORE UPDATE ON documents FOR EACH ROW BEGIN IF ${changed} THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '${msg}'; END IF; END`);
    for (const t of ['documents', 'document_lines', 'document_applications']) {
      await knex.raw(`CREATE TRIGGER ${t}_no_delete BEFORE DELETE ON ${t} FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '${msg}'`);
    }
    for (const t of ['document_lines', 'document_applications']) {
      await knex.raw(`CREATE TRIGGER ${t}_no_update BEFORE UPDATE ON ${t} FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '${msg}'`);
    }
  } else {
    const changed = FIXED.map((c) => `NEW.${c} IS NOT OLD.${c}`).join(' OR ');
    await knex.raw(`CREATE TRIGGER documents_fixed BEFORE UPDATE ON documents WHEN ${changed} BEGIN SELECT RAISE(ABORT, '${msg}'); END`);
    for (const t of ['documents', 'document_lines', 'document_applications']) {
      await knex.raw(`CREATE TRIGGER ${t}_no_delete BEFORE DELETE ON ${t} BEGIN SELECT RAISE(ABORT, '${msg}'); END`);
    }
    for (const t of ['document_lines', 'document_applications']) {
      await knex.raw(`CREATE TRIGGER ${t}_no_update BEFORE UPDATE ON ${t} BEGIN SELECT RAISE(ABORT, '${msg}'); END`);
    }
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const t of ['invoice_payment_attempts', 'dunning_steps', 'usage_periods', 'usage_reports', 'billing_runs', 'document_applications', 'document_lines', 'billing_charges', 'documents', 'document_sequences', 'tax_rules', 'billing_settings']) {
    await knex.schema.dropTableIfExists(t);
  }
}
