import type { Knex } from 'knex';

// Failed sign-ins are counted per (login, client address), per address and per login (src/accounts/authenticator.ts):
// auth_failures keeps one row per counter, keyed by a scope prefix and a hash. Rows are pruned once their window is
// over, by window_start. The rows counted per login alone (the old key, a bare sha-256) no longer mean anything.

export async function up(knex: Knex): Promise<void> {
  await knex('auth_failures').whereNot('credential', 'like', '%:%').del();
  await knex.schema.alterTable('auth_failures', (t) => {
    t.index(['window_start']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('auth_failures', (t) => {
    t.dropIndex(['window_start']);
  });
  await knex('auth_failures').where('credential', 'like', '%:%').del();
}
