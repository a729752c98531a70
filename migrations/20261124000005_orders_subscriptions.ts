import type { Knex } from 'knex';

// Orders run through workflows kept as data; each service item becomes a subscription provisioned as one step of
// a saga. Money is BIGINT minor units, instants epoch milliseconds, as everywhere.

export async function up(knex: Knex): Promise<void> {
  // A vendor's workflow per order type, versioned: an order keeps the version it started with.
  await knex.schema.createTable('workflows', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('order_type', 16).notNullable(); // sales | renewal | change | cancellation | resource
    t.integer('version').notNullable();
    t.text('definition').notNullable(); // JSON WorkflowDefinition (src/domain/workflow.ts)
    t.boolean('active').notNullable().defaultTo(true); // the version new orders get
    t.bigInteger('created_at').notNullable();
    t.unique(['vendor_id', 'order_type', 'version']);
  });

  await knex.schema.createTable('promo_codes', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('code', 64).notNullable();
    t.string('kind', 8).notNullable(); // percent | fixed
    t.bigInteger('value').notNullable(); // percent: basis points; fixed: minor units
    t.string('currency', 3).nullable(); // fixed promos only
    t.string('applies_to', 16).notNullable(); // setup | first_period | both
    t.bigInteger('valid_from').nullable();
    t.bigInteger('valid_to').nullable();
    t.integer('max_uses').nullable();
    t.integer('uses').notNullable().defaultTo(0);
    t.bigInteger('created_at').notNullable();
    t.unique(['vendor_id', 'code']);
  });

  await knex.schema.createTable('orders', (t) => {
    t.bigIncrements('id').primary();
    t.string('order_number', 32).notNullable().unique(); // PBA OrderNumber, e.g. "SO000123"
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.bigInteger('account_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('type', 16).notNullable(); // sales | renewal | change | cancellation | resource
    t.string('status', 2).notNullable(); // PBA code: NP WP SS WA HL PR PF PC CP RJ
    t.bigInteger('workflow_id').unsigned().notNullable().references('id').inTable('workflows');
    t.string('step', 64).notNullable(); // the current workflow step
    t.string('currency', 3).notNullable();
    t.bigInteger('subtotal').notNullable();
    t.bigInteger('discount_total').notNullable().defaultTo(0);
    t.bigInteger('tax_total').notNullable().defaultTo(0);
    t.bigInteger('total').notNullable();
    t.bigInteger('promo_code_id').unsigned().nullable().references('id').inTable('promo_codes');
    t.bigInteger('pay_tool_id').unsigned().nullable(); // pay_tools.id (payments context)
    t.bigInteger('payment_id').unsigned().nullable(); // payments.id of the charge
    t.string('ip_address', 64).nullable();
    t.string('comment', 1024).notNullable().defaultTo('');
    t.string('failure_reason', 1024).nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.index(['account_id', 'id']);
    t.index(['vendor_id', 'status', 'id']);
    t.index(['status', 'updated_at']);
  });

  // One service of an order: it becomes one subscription.
  await knex.schema.createTable('order_items', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('order_id').unsigned().notNullable().references('id').inTable('orders');
    t.integer('position').notNullable(); // 1-based, provisioning order
    t.bigInteger('plan_id').unsigned().notNullable().references('id').inTable('plans');
    t.bigInteger('period_id').unsigned().notNullable().references('id').inTable('plan_periods');
    t.bigInteger('parent_item_id').unsigned().nullable(); // PBA ParentItemID (an add-on of another item)
    t.text('parameters').notNullable(); // JSON {name: value}
    t.text('resources').notNullable(); // JSON [{resourceId, quantity}]
    t.bigInteger('subscription_id').unsigned().nullable(); // set when the saga creates it
    t.unique(['order_id', 'position']);
  });

  // Priced lines (from the catalog only): they add up to the order's total.
  await knex.schema.createTable('order_lines', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('order_id').unsigned().notNullable().references('id').inTable('orders');
    t.bigInteger('item_id').unsigned().nullable().references('id').inTable('order_items');
    t.integer('position').notNullable();
    t.string('kind', 24).notNullable(); // setup | recurring | resource_setup | resource_recurring | discount
    t.string('description', 255).notNullable();
    t.bigInteger('resource_id').unsigned().nullable();
    t.decimal('quantity', 20, 4).notNullable();
    t.bigInteger('unit_price').notNullable();
    t.bigInteger('amount').notNullable();
    t.unique(['order_id', 'position']);
  });

  await knex.schema.createTable('order_history', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('order_id').unsigned().notNullable().references('id').inTable('orders');
    t.string('status', 2).notNullable();
    t.string('step', 64).notNullable();
    t.string('outcome', 32).nullable(); // the previous step's outcome that led here
    t.bigInteger('actor_user_id').nullable();
    t.string('comment', 1024).notNullable().defaultTo('');
    t.bigInteger('at').notNullable();
    t.index(['order_id', 'id']);
  });

  await knex.schema.createTable('subscriptions', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('account_id').unsigned().notNullable().references('id').inTable('accounts');
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.bigInteger('plan_id').unsigned().notNullable().references('id').inTable('plans');
    t.bigInteger('period_id').unsigned().notNullable().references('id').inTable('plan_periods');
    t.bigInteger('order_id').unsigned().nullable().references('id').inTable('orders');
    t.string('name', 255).notNullable();
    // PBA: 10 ordered, 15 trial, 30 active, 40 graced, 50 expired, 60 terminated, 70 canceled, 80 suspended
    t.integer('status').notNullable();
    // PBA: 10 not provisioned, 20 provisioning, 30 stopped, 40 starting, 50 running, 60 stopping, 70 removing,
    // 80 changing plan, 90 removed
    t.integer('service_status').notNullable();
    t.string('service_gate', 96).notNullable(); // the gate instance name, from the template
    t.string('gate_reference', 255).nullable(); // the gate's id for the service, once provisioned
    t.text('parameters').notNullable(); // JSON {name: value}
    t.bigInteger('start_date').nullable();
    t.bigInteger('expiration_date').nullable();
    t.bigInteger('last_bill_date').nullable();
    t.bigInteger('next_bill_date').nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.index(['account_id', 'id']);
    t.index(['vendor_id', 'status']);
    t.index(['status', 'expiration_date']);
  });

  await knex.schema.createTable('subscription_resources', (t) => {
    t.bigInteger('subscription_id').unsigned().notNullable().references('id').inTable('subscriptions');
    t.bigInteger('resource_id').unsigned().notNullable().references('id').inTable('resources');
    t.decimal('included', 20, 4).notNullable().defaultTo(0);
    t.decimal('additional', 20, 4).notNullable().defaultTo(0); // ordered above what the plan includes
    t.decimal('limit_value', 20, 4).nullable(); // null = unlimited
    t.decimal('usage', 20, 4).notNullable().defaultTo(0);
    t.primary(['subscription_id', 'resource_id']);
  });

  // The provisioning saga of an order: one row per item and direction, durable, so a restarted process resumes it.
  await knex.schema.createTable('saga_steps', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('order_id').unsigned().notNullable().references('id').inTable('orders');
    t.bigInteger('item_id').unsigned().notNullable().references('id').inTable('order_items');
    t.bigInteger('subscription_id').unsigned().nullable().references('id').inTable('subscriptions');
    t.integer('position').notNullable();
    t.string('action', 16).notNullable(); // provision | compensate
    t.string('status', 16).notNullable(); // pending | running | done | failed | skipped
    t.bigInteger('task_id').unsigned().nullable(); // the background task making the gate call
    t.string('last_error', 2000).nullable();
    t.bigInteger('updated_at').notNullable();
    t.unique(['order_id', 'item_id', 'action']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const t of ['saga_steps', 'subscription_resources', 'subscriptions', 'order_history', 'order_lines', 'order_items', 'orders', 'promo_codes', 'workflows']) {
    await knex.schema.dropTableIfExists(t);
  }
}
