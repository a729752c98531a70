import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import knexFactory from 'knex';
import { createDb, type Db } from '../../src/db/knex';
import { migrateLatest } from '../../src/db/migrate';

/**
 * Which database the suite runs on: TEST_DATABASE_URL (CI sets a MariaDB URL for its second run), else SQLite.
 * Each call makes a brand-new database (a temp file, or a uniquely named MariaDB database dropped afterwards).
 */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || 'sqlite:';
export const MYSQL_URL = process.env.TEST_MYSQL_URL || 'mysql://root:@127.0.0.1:3306/test';

export const dialect = TEST_DATABASE_URL.startsWith('mysql') ? 'mysql' : 'sqlite';

export interface FreshDb {
  url: string;
  db: Db;
  drop(): Promise<void>;
}

export async function freshDatabase(kind: 'sqlite' | 'mysql' = dialect, opts: { migrate?: boolean } = {}): Promise<FreshDb> {
  const name = `hw_t_${Date.now().toString(36)}_${crypto.randomBytes(3).toString('hex')}`;
  let url: string;
  let drop: () => Promise<void>;
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostwright-test-'));
    url = `sqlite:${path.join(dir, `${name}.sqlite`)}`;
    drop = async () => fs.rmSync(dir, { recursive: true, force: true });
  } else {
    const base = new URL(TEST_DATABASE_URL.startsWith('mysql') ? TEST_DATABASE_URL : MYSQL_URL);
    const admin = knexFactory({
      client: 'mysql2',
      connection: { host: base.hostname, port: Number(base.port || 3306), user: decodeURIComponent(base.username), password: decodeURIComponent(base.password) },
    });
    await admin.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    await admin.destroy();
    base.pathname = `/${name}`;
    url = base.toString();
    drop = async () => {
      const again = knexFactory({
        client: 'mysql2',
        connection: { host: base.hostname, port: Number(base.port || 3306), user: decodeURIComponent(base.username), password: decodeURIComponent(base.password) },
      });
      await again.raw(`DROP DATABASE IF EXISTS \`${name}\``);
      await again.destroy();
    };
  }
  const db = createDb(url);
  if (opts.migrate !== false) await migrateLatest(db);
  return {
    url,
    db,
    async drop() {
      await db.destroy();
      await drop();
    },
  };
}
