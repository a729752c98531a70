import type { Knex } from 'knex';

// A plugin instance is one configured use of a plugin (a service gate, a payment gateway ...) owned by a vendor.
// Service templates name their gate by the instance name, so names are unique per vendor.

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('plugin_instances', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('vendor_id').unsigned().notNullable().references('id').inTable('accounts');
    t.string('kind', 16).notNullable(); // provisioning | payment | registrar | fraud
    t.string('plugin', 64).notNullable(); // the plugin's folder name under plugins/<kind>/
    t.string('name', 96).notNullable();
    t.text('settings').notNullable(); // JSON of the non-secret settings
    // SecretBox-sealed JSON of the manifest's secretSettings: never readable without the server's key.
    t.text('secrets_enc').nullable();
    t.string('status', 16).notNullable().defaultTo('active'); // active | disabled
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.unique(['vendor_id', 'name']);
    t.index(['kind', 'plugin']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('plugin_instances');
}
