import type { Knex } from 'knex';

// The shared signal behind the sign-in cache (src/accounts/sign-in-changes.ts): every change that must end cached
// sign-ins (an account's status, a login's users, a sign-in lock) writes a row here in its own transaction, and
// every server process polls the rows after the last id it saw and evicts the cached sign-ins they name. A row
// names a login (sha-256 of the lower-cased login), a client address (sha-256), both, or an account; never a
// login or an address in clear. Rows are pruned by created_at (epoch ms) after an hour.

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('sign_in_changes', (t) => {
    t.bigIncrements('id').primary();
    t.string('login_hash', 64).nullable();
    t.string('address_hash', 64).nullable();
    t.bigInteger('account_id').unsigned().nullable();
    t.bigInteger('created_at').notNullable();
    t.index(['created_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('sign_in_changes');
}
