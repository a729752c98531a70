import type { Knex } from 'knex';

// Instants are epoch milliseconds (BIGINT), money is BIGINT minor units: the same bytes on SQLite and MariaDB.

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('accounts', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().nullable().references('id').inTable('accounts');
    t.string('type', 16).notNullable(); // provider | reseller | customer
    t.string('reseller_kind', 16).nullable(); // affiliate | basic | advanced
    t.string('status', 16).notNullable().defaultTo('active');
    t.string('company_name', 255).nullable();
    t.string('currency', 3).notNullable();
    t.string('tax_status', 16).notNullable().defaultTo('taxable');
    t.string('external_id', 128).nullable();
    // Materialized path "/1/4/9/": "is B inside A's subtree" is one indexed prefix match.
    t.string('path', 512).notNullable().defaultTo('');
    t.string('address1', 255).nullable();
    t.string('address2', 255).nullable();
    t.string('city', 128).nullable();
    t.string('state', 128).nullable();
    t.string('zip', 32).nullable();
    t.string('country', 2).nullable();
    t.string('postal_address', 512).nullable();
    t.string('time_zone', 64).notNullable().defaultTo('UTC');
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.index(['vendor_id']);
    t.index(['path']);
    t.index(['external_id']);
  });

  await knex.schema.createTable('account_contacts', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('account_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('kind', 16).notNullable(); // admin | billing | technical | personal
    t.string('first_name', 128).notNullable().defaultTo('');
    t.string('middle_name', 128).notNullable().defaultTo('');
    t.string('last_name', 128).notNullable().defaultTo('');
    t.string('email', 255).notNullable().defaultTo('');
    t.string('phone', 64).notNullable().defaultTo('');
    t.string('phone_country_code', 8).notNullable().defaultTo('');
    t.string('phone_area_code', 16).notNullable().defaultTo('');
    t.string('phone_extension', 16).notNullable().defaultTo('');
    t.string('fax', 64).notNullable().defaultTo('');
    t.string('fax_country_code', 8).notNullable().defaultTo('');
    t.string('fax_area_code', 16).notNullable().defaultTo('');
    t.string('fax_extension', 16).notNullable().defaultTo('');
    t.string('birthday', 16).notNullable().defaultTo(''); // personal contact only (PBA's Pers block)
    t.string('passport', 64).notNullable().defaultTo('');
    t.unique(['account_id', 'kind']);
  });

  await knex.schema.createTable('users', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('account_id').unsigned().notNullable().references('id').inTable('accounts');
    // Logins are unique per vendor (PBA's rule): the account's vendor, or the provider itself.
    t.bigInteger('login_scope_id').unsigned().notNullable();
    t.string('login', 128).notNullable();
    t.string('password_hash', 255).notNullable();
    t.string('email', 255).notNullable().defaultTo('');
    t.string('first_name', 128).notNullable().defaultTo('');
    t.string('middle_name', 128).notNullable().defaultTo('');
    t.string('last_name', 128).notNullable().defaultTo('');
    t.string('roles', 255).notNullable().defaultTo('');
    t.string('status', 16).notNullable().defaultTo('enabled');
    t.string('external_id', 128).nullable();
    t.string('phone', 64).notNullable().defaultTo('');
    t.text('profile').nullable(); // JSON: address and phone/fax parts PBA's UserAdd_API carries
    // WS-Security PasswordDigest needs the secret itself: API users keep it encrypted with the server's key.
    t.text('api_secret_enc').nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.unique(['login_scope_id', 'login']);
    t.index(['account_id']);
    t.index(['login']);
  });

  await knex.schema.createTable('audit_log', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('at').notNullable();
    t.string('channel', 16).notNullable(); // soap | xmlrpc | console | job | system
    t.bigInteger('actor_user_id').nullable();
    t.bigInteger('actor_account_id').nullable();
    t.string('remote_addr', 64).nullable();
    t.string('request_id', 64).nullable();
    t.string('operation', 96).notNullable();
    t.string('object_type', 48).nullable();
    t.string('object_id', 64).nullable();
    t.string('outcome', 16).notNullable(); // ok | error
    t.string('error_code', 32).nullable();
    t.text('details').nullable();
    t.index(['at']);
    t.index(['actor_account_id', 'at']);
    t.index(['object_type', 'object_id']);
  });

  await knex.schema.createTable('events', (t) => {
    t.bigIncrements('id').primary();
    t.string('name', 96).notNullable();
    t.string('object_type', 48).notNullable();
    t.string('object_id', 64).notNullable();
    t.bigInteger('account_id').nullable();
    t.text('payload').notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('dispatched_at').nullable();
    t.index(['dispatched_at', 'id']);
    t.index(['object_type', 'object_id', 'id']);
  });

  await knex.schema.createTable('idempotency_keys', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('account_id').notNullable(); // the caller's account: keys are private to it
    t.string('key', 128).notNullable();
    t.string('operation', 96).notNullable();
    t.string('request_hash', 64).notNullable();
    t.text('response').nullable();
    t.bigInteger('created_at').notNullable();
    t.unique(['account_id', 'key']);
    t.index(['created_at']);
  });

  await knex.schema.createTable('ws_nonces', (t) => {
    t.string('nonce_hash', 64).primary(); // a PasswordDigest nonce is accepted once
    t.bigInteger('expires_at').notNullable();
    t.index(['expires_at']);
  });

  await knex.schema.createTable('auth_failures', (t) => {
    t.string('credential', 191).primary(); // sha-256 of the login, never the login itself
    t.integer('failures').notNullable();
    t.bigInteger('window_start').notNullable();
    t.bigInteger('locked_until').nullable();
  });

  await knex.schema.createTable('resources', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('name', 128).notNullable();
    t.string('unit', 32).notNullable();
    t.string('code', 64).nullable();
    t.string('description', 512).notNullable().defaultTo('');
    t.bigInteger('created_at').notNullable();
    t.unique(['vendor_id', 'name']);
  });

  await knex.schema.createTable('service_templates', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('name', 128).notNullable();
    t.string('service_gate', 96).notNullable();
    t.string('description', 512).notNullable().defaultTo('');
    t.bigInteger('created_at').notNullable();
    t.unique(['vendor_id', 'name']);
  });

  await knex.schema.createTable('template_resources', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('template_id').unsigned().notNullable().references('id').inTable('service_templates');
    t.bigInteger('resource_id').unsigned().notNullable().references('id').inTable('resources');
    t.decimal('limit_value', 20, 4).nullable(); // null = unlimited
    t.unique(['template_id', 'resource_id']);
  });

  await knex.schema.createTable('template_parameters', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('template_id').unsigned().notNullable().references('id').inTable('service_templates');
    t.string('name', 64).notNullable();
    t.string('title', 128).notNullable();
    t.string('kind', 16).notNullable().defaultTo('string'); // string | domain | login | password | email
    t.boolean('required').notNullable().defaultTo(true);
    t.unique(['template_id', 'name']);
  });

  await knex.schema.createTable('plans', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.bigInteger('template_id').unsigned().notNullable().references('id').inTable('service_templates');
    t.string('name', 128).notNullable();
    t.string('category', 64).notNullable().defaultTo('');
    t.text('description').nullable();
    t.boolean('published').notNullable().defaultTo(false);
    t.boolean('trial').notNullable().defaultTo(false);
    // A resellable plan may be sold by every reseller below its vendor; plan_reseller_grants allows single ones.
    t.boolean('resellable').notNullable().defaultTo(false);
    t.string('currency', 3).notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.index(['vendor_id', 'published']);
  });

  await knex.schema.createTable('plan_reseller_grants', (t) => {
    t.bigInteger('plan_id').unsigned().notNullable().references('id').inTable('plans');
    t.bigInteger('reseller_id').unsigned().notNullable().references('id').inTable('accounts');
    t.primary(['plan_id', 'reseller_id']);
  });

  await knex.schema.createTable('plan_periods', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('plan_id').unsigned().notNullable().references('id').inTable('plans');
    t.integer('duration').notNullable();
    t.string('unit', 8).notNullable(); // hour | day | month | year
    t.boolean('trial').notNullable().defaultTo(false);
    t.bigInteger('setup_fee').notNullable().defaultTo(0);
    t.bigInteger('recurring_fee').notNullable().defaultTo(0);
    t.bigInteger('renewal_fee').notNullable().defaultTo(0);
    t.bigInteger('transfer_fee').notNullable().defaultTo(0);
    t.bigInteger('non_refundable_amount').notNullable().defaultTo(0);
    t.integer('refund_period_days').notNullable().defaultTo(0);
    t.boolean('enabled').notNullable().defaultTo(true);
    t.integer('sort_order').notNullable().defaultTo(0);
    t.unique(['plan_id', 'duration', 'unit', 'trial']);
  });

  await knex.schema.createTable('resource_rates', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('plan_id').unsigned().notNullable().references('id').inTable('plans');
    t.bigInteger('resource_id').unsigned().notNullable().references('id').inTable('resources');
    t.decimal('included', 20, 4).notNullable().defaultTo(0);
    t.decimal('min_quantity', 20, 4).notNullable().defaultTo(0);
    t.decimal('max_quantity', 20, 4).nullable(); // null = unlimited
    t.bigInteger('setup_fee').notNullable().defaultTo(0);
    t.bigInteger('recurring_fee').notNullable().defaultTo(0);
    t.bigInteger('overage_fee').notNullable().defaultTo(0);
    t.text('tiers').nullable(); // JSON [{"upTo": number|null, "fee": "minor units"}]
    t.unique(['plan_id', 'resource_id']);
  });

  await knex.schema.createTable('system_settings', (t) => {
    t.string('name', 96).primary();
    t.text('value').notNullable();
  });

  // The audit trail is append-only at the database too, so no code path (or hand) can rewrite history.
  if (knex.client.config.client === 'mysql2' || knex.client.config.client === 'mysql') {
    await knex.raw(
      "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_log is append-only'",
    );
    await knex.raw(
      "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_log is append-only'",
    );
  } else {
    await knex.raw("CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END");
    await knex.raw("CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END");
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const t of [
    'system_settings',
    'resource_rates',
    'plan_periods',
    'plan_reseller_grants',
    'plans',
    'template_parameters',
    'template_resources',
    'service_templates',
    'resources',
    'auth_failures',
    'ws_nonces',
    'idempotency_keys',
    'events',
    'audit_log',
    'users',
    'account_contacts',
    'accounts',
  ]) {
    await knex.schema.dropTableIfExists(t);
  }
}
