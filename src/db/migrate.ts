import path from 'node:path';
import type { Db } from './knex';

export const MIGRATIONS_DIR = path.resolve(__dirname, '..', '..', 'migrations');

export function migrationConfig() {
  return { directory: MIGRATIONS_DIR, loadExtensions: ['.ts', '.js'], tableName: 'knex_migrations' };
}

/**
 * Applies every pending migration; returns the names applied. When another process holds the migration lock
 * (several servers starting together), waits for it rather than failing.
 */
export async function migrateLatest(db: Db, waitMs = 120_000): Promise<string[]> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const [, applied] = (await db.migrate.latest(migrationConfig())) as [number, string[]];
      return applied;
    } catch (e) {
      if (!/Migration table is already locked/.test((e as Error).message) || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
