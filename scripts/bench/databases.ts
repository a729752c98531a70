import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';

/**
 * Runs a benchmark on each database `db` names (`sqlite`, `mysql` or `both`): a fresh SQLite file in a temporary
 * folder, then a fresh MariaDB database on the server `mysqlUrl` (without a database name); both are removed after.
 */
export async function onEachDatabase(db: string, mysqlUrl: string, tag: string, run: (label: string, url: string) => Promise<void>): Promise<void> {
  if (db === 'sqlite' || db === 'both') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `hostwright-bench-${tag}-`));
    try {
      await run('SQLite', `sqlite:${path.join(dir, 'bench.sqlite')}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  if (db === 'mysql' || db === 'both') {
    const server = mysqlUrl.replace(/\/$/, '');
    const name = `hw_bench_${crypto.randomBytes(3).toString('hex')}`;
    const admin = knexFactory({ client: 'mysql2', connection: `${server}/` });
    await admin.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    try {
      await run('MariaDB', `${server}/${name}`);
    } finally {
      await admin.raw(`DROP DATABASE IF EXISTS \`${name}\``);
      await admin.destroy();
    }
  }
}
