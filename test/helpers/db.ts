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

/** Connection settings for the MariaDB server the suite uses, without a database. */
function mysqlServer(): { base: URL; connection: Record<string, unknown> } {
  const base = new URL(TEST_DATABASE_URL.startsWith('mysql') ? TEST_DATABASE_URL : MYSQL_URL);
  return {
    base,
    connection: { host: base.hostname, port: Number(base.port || 3306), user: decodeURIComponent(base.username), password: decodeURIComponent(base.password) },
  };
}

/**
 * A migrated MariaDB schema, captured once per test process: migrating takes ~1 s on MariaDB (dozens of
 * CREATE/ALTER TABLE), copying the finished schema ~0.1 s. The template database is migrated with the real
 * migrations (so every test still runs on exactly what they build); each fresh database then gets its tables
 * (SHOW CREATE TABLE, foreign keys included), the rows the migrations wrote (knex_migrations, so migrating again
 * is a no-op) and its triggers. test/helpers/hooks.ts drops the template when the run ends.
 */
interface SchemaCopy {
  template: string;
  tables: string[];
  tablesWithRows: string[];
  triggers: string[];
}
let schemaCopy: Promise<SchemaCopy> | undefined;
let templateName: string | undefined;

async function captureSchema(): Promise<SchemaCopy> {
  const { base, connection } = mysqlServer();
  const name = `hw_tpl_${Date.now().toString(36)}_${crypto.randomBytes(3).toString('hex')}`;
  templateName = name;
  const admin = knexFactory({ client: 'mysql2', connection });
  try {
    await admin.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    const url = new URL(base.toString());
    url.pathname = `/${name}`;
    const db = createDb(url.toString());
    try {
      await migrateLatest(db);
    } finally {
      await db.destroy();
    }
    const [tableRows] = (await admin.raw(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name`, [name])) as [{ t: string }[]];
    const tables: string[] = [];
    const tablesWithRows: string[] = [];
    for (const { t } of tableRows) {
      const [create] = (await admin.raw(`SHOW CREATE TABLE \`${name}\`.\`${t}\``)) as [Record<string, string>[]];
      tables.push(create[0]['Create Table']);
      const [count] = (await admin.raw(`SELECT COUNT(*) AS n FROM \`${name}\`.\`${t}\``)) as [{ n: number }[]];
      if (Number(count[0].n) > 0) tablesWithRows.push(t);
    }
    const [triggerRows] = (await admin.raw(`SELECT trigger_name AS n FROM information_schema.triggers WHERE trigger_schema = ? ORDER BY trigger_name`, [name])) as [{ n: string }[]];
    const triggers: string[] = [];
    for (const { n } of triggerRows) {
      const [create] = (await admin.raw(`SHOW CREATE TRIGGER \`${name}\`.\`${n}\``)) as [Record<string, string>[]];
      triggers.push(create[0]['SQL Original Statement']);
    }
    return { template: name, tables, tablesWithRows, triggers };
  } finally {
    await admin.destroy();
  }
}

/** Drops this process's template database, if one was made (called once when the test run ends). */
export async function dropSchemaTemplate(): Promise<void> {
  if (!templateName) return;
  const name = templateName;
  templateName = undefined;
  schemaCopy = undefined;
  const admin = knexFactory({ client: 'mysql2', connection: mysqlServer().connection });
  try {
    await dropMysqlDatabase(admin, name);
  } finally {
    await admin.destroy();
  }
}

/**
 * Drops a test database. MariaDB sometimes answers a DROP DATABASE under load with errno 39 ("Directory not
 * empty": a file of a just-closed table not yet removed); it is tried again a few times, then left with a warning:
 * tidying up after a test is not what the test asserts.
 */
async function dropMysqlDatabase(admin: ReturnType<typeof knexFactory>, name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await admin.raw(`DROP DATABASE IF EXISTS \`${name}\``);
      return;
    } catch (err) {
      const notEmpty = (err as { errno?: number; message?: string }).errno === 1010 || /errno: ?39|Directory not empty/i.test(String((err as Error).message));
      if (!notEmpty) throw err;
      if (attempt >= 5) {
        console.warn(`warning: test database ${name} could not be dropped (${(err as Error).message}); drop it by hand`);
        return;
      }
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

async function copySchemaInto(url: string): Promise<void> {
  schemaCopy ??= captureSchema();
  const copy = await schemaCopy;
  const target = knexFactory({ client: 'mysql2', connection: { ...mysqlServer().connection, database: new URL(url).pathname.slice(1), multipleStatements: true } });
  try {
    await target.raw(['SET FOREIGN_KEY_CHECKS = 0', ...copy.tables].join(';\n'));
    for (const t of copy.tablesWithRows) await target.raw(`INSERT INTO \`${t}\` SELECT * FROM \`${copy.template}\`.\`${t}\``);
    for (const trigger of copy.triggers) await target.raw(trigger);
  } finally {
    await target.destroy();
  }
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
      try {
        await dropMysqlDatabase(again, name);
      } finally {
        await again.destroy();
      }
    };
  }
  if (kind === 'mysql' && opts.migrate !== false) await copySchemaInto(url);
  const db = createDb(url);
  if (kind === 'sqlite' && opts.migrate !== false) await migrateLatest(db);
  return {
    url,
    db,
    async drop() {
      await db.destroy();
      await drop();
    },
  };
}
