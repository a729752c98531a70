import type { Knex } from 'knex';

// The durable task queue: gate calls, deliveries and other background work, leased by one worker at a time.

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('tasks', (t) => {
    t.bigIncrements('id').primary();
    t.string('kind', 96).notNullable(); // handler name, e.g. gate.provision
    t.string('queue', 48).notNullable(); // e.g. provisioning, delivery
    t.bigInteger('account_id').unsigned().nullable().references('id').inTable('accounts'); // null = a system task
    t.string('object_type', 48).nullable();
    t.string('object_id', 64).nullable();
    t.text('payload', 'mediumtext').notNullable(); // JSON
    t.string('status', 16).notNullable(); // pending | running | done | failed | canceled
    t.integer('attempts').notNullable().defaultTo(0);
    t.integer('max_attempts').notNullable();
    t.bigInteger('run_at').notNullable();
    t.string('lease_owner', 128).nullable();
    t.bigInteger('lease_until').nullable();
    t.text('last_error').nullable();
    t.text('result', 'mediumtext').nullable(); // JSON a handler returned when done
    // Handed to plugins as the operation id: a retried task repeats the same operation, never a new one.
    t.string('operation_id', 64).notNullable().unique();
    t.string('dedupe_key', 191).nullable().unique();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.bigInteger('finished_at').nullable();
    t.index(['status', 'run_at', 'id']); // leasing: due pending tasks in order
    t.index(['status', 'lease_until']); // reclaiming the expired leases of dead workers
    t.index(['account_id', 'id']);
    t.index(['object_type', 'object_id']);
    t.index(['kind', 'status']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('tasks');
}
