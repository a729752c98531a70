import path from 'node:path';
import type { Db } from './knex';

export const MIGRATIONS_DIR = path.resolve(__dirname, '..', '..', 'migrations');

export function migrationConfig() {
  return { directory: MIGRATIONS_DIR, loadExtensions: ['.ts', '.js'], tableName: 'knex_migrations' };
}

/** Applies every pending migration; returns the names applied. */
export async function migrateLatest(db: Db): Promise<string[]> {
  const [, applied] = (await db.migrate.latest(migrationConfig())) as [number, string[]];
  return applied;
}
