import type { Conn } from '../db/knex';
import { checkStoreEntry, type PluginStore } from './sdk';

/**
 * The database-backed PluginStore the core gives each plugin instance (table plugin_store, one row per key).
 * Prefix listing compares the key's first characters exactly (substr), never LIKE, which ignores case on SQLite.
 */
export class DbPluginStore implements PluginStore {
  constructor(
    private readonly db: Conn,
    private readonly instanceId: number,
    private readonly now: () => Date,
  ) {}

  async get<T = unknown>(key: string): Promise<T | undefined> {
    checkStoreEntry(key);
    const row = (await this.db('plugin_store').where({ instance_id: this.instanceId, store_key: key }).first('store_value')) as { store_value: string } | undefined;
    return row ? (JSON.parse(row.store_value) as T) : undefined;
  }

  async put(key: string, value: unknown): Promise<void> {
    const json = checkStoreEntry(key, value);
    await this.db('plugin_store')
      .insert({ instance_id: this.instanceId, store_key: key, store_value: json, updated_at: this.now().getTime() })
      .onConflict(['instance_id', 'store_key'])
      .merge(['store_value', 'updated_at']);
  }

  async delete(key: string): Promise<boolean> {
    checkStoreEntry(key);
    const n = await this.db('plugin_store').where({ instance_id: this.instanceId, store_key: key }).delete();
    return Number(n) > 0;
  }

  async list<T = unknown>(prefix = ''): Promise<{ key: string; value: T }[]> {
    if (typeof prefix !== 'string') throw new TypeError('A store prefix is text.');
    const q = this.db('plugin_store').where({ instance_id: this.instanceId });
    if (prefix) q.andWhereRaw('substr(store_key, 1, ?) = ?', [prefix.length, prefix]);
    const rows = (await q.select('store_key', 'store_value')) as { store_key: string; store_value: string }[];
    return rows
      .map((r) => ({ key: r.store_key, value: JSON.parse(r.store_value) as T }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}
