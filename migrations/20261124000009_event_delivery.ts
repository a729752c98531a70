import type { Knex } from 'knex';

// Event delivery (issue #6): per-vendor actions on events, notification templates, the mail spool, the
// attempts of each delivery, and the notification schedules with the sends that make each reminder go once.

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('event_actions', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('name', 128).notNullable();
    t.string('event_pattern', 96).notNullable(); // an event name, "order.*" or "*"
    t.string('type', 16).notNullable(); // notification | webhook | script
    t.text('config').notNullable(); // JSON, secrets never here
    t.text('secret_enc').nullable(); // the webhook's signing secret, sealed with the server's key
    t.boolean('enabled').notNullable().defaultTo(true);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.index(['vendor_id', 'id']);
  });

  // One row per (event, action) the dispatcher matched: the delivery and its task.
  await knex.schema.createTable('event_deliveries', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('event_id').unsigned().notNullable();
    t.bigInteger('action_id').unsigned().notNullable();
    t.bigInteger('task_id').unsigned().notNullable();
    // "<action>:<object type>:<object id>": deliveries of one chain go out in event order.
    t.string('chain', 191).notNullable();
    t.bigInteger('created_at').notNullable();
    t.unique(['event_id', 'action_id']);
    t.index(['chain', 'id']);
    t.index(['task_id']);
  });

  await knex.schema.createTable('delivery_attempts', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('task_id').unsigned().notNullable();
    t.integer('attempt').notNullable();
    t.bigInteger('at').notNullable();
    t.string('outcome', 16).notNullable(); // ok | failed
    t.integer('duration_ms').notNullable();
    t.text('detail').nullable(); // HTTP status, exit code, error (never a secret)
    t.index(['task_id', 'id']);
  });

  await knex.schema.createTable('notification_templates', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('name', 96).notNullable(); // usually an event name, e.g. order.placed
    t.string('language', 16).notNullable();
    t.string('subject', 998).notNullable();
    t.text('html', 'mediumtext').notNullable();
    t.text('text', 'mediumtext').notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.unique(['vendor_id', 'name', 'language'], { indexName: 'notification_templates_key' });
  });

  await knex.schema.createTable('mail_spool', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().notNullable();
    t.bigInteger('account_id').unsigned().nullable();
    t.bigInteger('event_id').unsigned().nullable();
    t.string('template', 96).notNullable();
    t.string('to_address', 255).notNullable();
    t.string('subject', 998).notNullable();
    t.text('html', 'mediumtext').notNullable();
    t.text('text', 'mediumtext').notNullable();
    t.string('status', 16).notNullable(); // spooled | sent
    t.string('dedupe_key', 191).notNullable().unique(); // one message per delivery, however often it is retried
    t.bigInteger('created_at').notNullable();
    t.index(['vendor_id', 'id']);
    t.index(['account_id', 'id']);
  });

  await knex.schema.createTable('notification_schedules', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('basis', 32).notNullable(); // expiration
    t.integer('days_before').notNullable();
    t.boolean('enabled').notNullable().defaultTo(true);
    t.bigInteger('created_at').notNullable();
    t.unique(['vendor_id', 'basis', 'days_before'], { indexName: 'notification_schedules_offset' });
  });

  // A reminder goes once per (subscription, offset, expiration date): a renewed subscription is reminded again.
  await knex.schema.createTable('schedule_sends', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('subscription_id').unsigned().notNullable();
    t.integer('days_before').notNullable();
    t.bigInteger('expiration_date').notNullable();
    t.bigInteger('event_id').unsigned().nullable();
    t.bigInteger('created_at').notNullable();
    t.unique(['subscription_id', 'days_before', 'expiration_date'], { indexName: 'schedule_sends_once' });
  });

  await knex.schema.createTable('event_dispatch_lock', (t) => {
    t.integer('id').primary();
    t.bigInteger('last_run_at').notNullable();
  });
  await knex('event_dispatch_lock').insert({ id: 1, last_run_at: 0 });
}

export async function down(knex: Knex): Promise<void> {
  for (const t of ['event_dispatch_lock', 'schedule_sends', 'notification_schedules', 'mail_spool', 'notification_templates', 'delivery_attempts', 'event_deliveries', 'event_actions']) {
    await knex.schema.dropTableIfExists(t);
  }
}
