import type { Knex } from 'knex';

// Operators' console sessions. The cookie carries a random 256-bit id; the table keeps only its SHA-256, so a
// read of the table does not hand out live sessions. Idle and absolute expiry are instants (epoch ms).

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('console_sessions', (t) => {
    t.string('id_hash', 64).primary();
    t.bigInteger('user_id').unsigned().notNullable().references('id').inTable('users');
    t.string('csrf_token', 64).notNullable(); // synchronizer token, one per session
    t.text('flash').nullable(); // JSON: the message shown once on the next page
    t.string('remote_addr', 64).nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('last_seen_at').notNullable();
    t.bigInteger('idle_expires_at').notNullable();
    t.bigInteger('absolute_expires_at').notNullable();
    t.index(['user_id']);
    t.index(['absolute_expires_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('console_sessions');
}
