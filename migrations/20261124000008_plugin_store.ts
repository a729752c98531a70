import type { Knex } from 'knex';

// A small persistent key-value store per plugin instance (PluginContext.store): plugins import only the SDK, so
// this is how one keeps state in the core's database (the sandbox registrar's registry, the EPP registrar's record
// of operation ids). Keys compare exactly (binary collation on MariaDB, SQLite's default BINARY), values are JSON.

export async function up(knex: Knex): Promise<void> {
  const mysql = /mysql/i.test(String(knex.client.dialect));
  await knex.schema.createTable('plugin_store', (t) => {
    t.bigInteger('instance_id').unsigned().notNullable().references('id').inTable('plugin_instances').onDelete('CASCADE');
    const key = t.string('store_key', 255).notNullable();
    if (mysql) key.collate('utf8mb4_bin');
    t.text('store_value', 'mediumtext').notNullable(); // JSON, at most 1 MiB
    t.bigInteger('updated_at').notNullable();
    t.primary(['instance_id', 'store_key']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('plugin_store');
}
