import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { Knex } from 'knex';
import { validateDatabaseUrl } from '../config';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const BetterSqliteClient: new (config: Knex.Config) => unknown = require('knex/lib/dialects/better-sqlite3');

export type Db = Knex;
export type Tx = Knex.Transaction;
/** Anything a query can run on: the pool or an open transaction. */
export type Conn = Knex | Knex.Transaction;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);

function narrow(v: unknown): unknown {
  return typeof v === 'bigint' && v <= MAX_SAFE && v >= MIN_SAFE ? Number(v) : v;
}

/**
 * better-sqlite3 returns lossy doubles for integers beyond 2^53 unless asked for BigInt. We always ask, then
 * narrow the safe ones back to numbers: ids stay numbers, and a money amount beyond 2^53 stays exact.
 */
interface SqliteStatement {
  reader: boolean;
  safeIntegers(on: boolean): SqliteStatement;
  raw(on: boolean): SqliteStatement;
  all(bindings: unknown[]): Record<string, unknown>[];
  run(bindings: unknown[]): { lastInsertRowid: unknown; changes: number };
}
interface SqliteConnection {
  prepare(sql: string): SqliteStatement;
}
interface QueryObject {
  sql?: string;
  bindings?: unknown[];
  response?: unknown;
  context?: { lastID?: unknown; changes?: number };
}

const STATEMENT_CACHE_SIZE = 500;
const statementCaches = new WeakMap<SqliteConnection, Map<string, SqliteStatement>>();
/** Statements in raw mode (rows as arrays), cached apart from the same SQL answering objects. */
const rawStatementCaches = new WeakMap<SqliteConnection, Map<string, SqliteStatement>>();

function cachedStatement(connection: SqliteConnection, sql: string, raw = false): SqliteStatement {
  const caches = raw ? rawStatementCaches : statementCaches;
  let cache = caches.get(connection);
  if (!cache) caches.set(connection, (cache = new Map()));
  let statement = cache.get(sql);
  if (!statement) {
    statement = connection.prepare(sql).safeIntegers(true);
    if (raw) statement.raw(true);
    if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
    cache.set(sql, statement);
  }
  return statement;
}

function readAll(statement: SqliteStatement, bindings: unknown[]): Record<string, unknown>[] {
  const rows = statement.all(bindings);
  for (const row of rows) for (const key in row) row[key] = narrow(row[key]);
  return rows;
}

class ExactSqliteClient extends (BetterSqliteClient as unknown as new (config: Knex.Config) => {
  _formatBindings(bindings: unknown[] | undefined): unknown[];
}) {
  /** knex's own _query, plus a per-connection prepared-statement cache (knex would prepare every query anew). */
  async _query(connection: SqliteConnection, obj: QueryObject): Promise<QueryObject> {
    if (!obj.sql) throw new Error('The query is empty');
    const statement = cachedStatement(connection, obj.sql);
    const bindings = this._formatBindings(obj.bindings);
    if (statement.reader) {
      obj.response = readAll(statement, bindings);
      return obj;
    }
    const info = statement.run(bindings);
    obj.response = info;
    obj.context = { lastID: narrow(info.lastInsertRowid), changes: info.changes };
    return obj;
  }
}

/** One read for {@link readStatements}: plain SQL with `?` placeholders, written to run alike on SQLite and MariaDB. */
export interface ReadStatement {
  sql: string;
  bindings: readonly (string | number)[];
  /** Rows as arrays of the selected columns in order, not objects (cheaper; and a join's equal names stay apart). */
  raw?: boolean;
}

type Row = Record<string, unknown> | unknown[];

interface MysqlConnection {
  execute(options: { sql: string; rowsAsArray?: boolean }, values: readonly unknown[], cb: (err: Error | null, rows: unknown) => void): void;
}

interface PoolInternals {
  pool?: {
    numUsed(): number;
    numFree(): number;
    numPendingAcquires(): number;
    numPendingCreates(): number;
    free: { resource: unknown }[];
  };
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): Promise<unknown>;
}

/**
 * A thin executor for the API's hottest reads (GetAccount / AccountDetailsGet_API): hand-written SQL, run as
 * prepared statements cached per connection (on SQLite through the same cache as every knex query, on MariaDB
 * through mysql2's execute()), several statements on one connection checkout, without knex's query builder and
 * compiler (their cost was a large share of a one-row read). The rows come back as knex would give them: on
 * SQLite integers are exact (BigInt beyond 2^53, numbers otherwise), on MariaDB the connection's options apply.
 * Runs on the pool or inside an open transaction (its connection), like any knex query. Reads only. knex's
 * 'query' events and DEBUG=knex:query do not see these statements.
 */
export async function readStatements(conn: Conn, statements: readonly ReadStatement[]): Promise<Row[][]> {
  requireOpen(conn);
  if (isSqlite(conn)) return onSqliteConnection(conn, (connection) => runSqlite(connection, statements));
  const client = conn.client as unknown as PoolInternals;
  const connection = (await client.acquireConnection()) as MysqlConnection;
  try {
    const results: Row[][] = [];
    for (const s of statements) {
      results.push(
        await new Promise<Row[]>((resolve, reject) =>
          connection.execute({ sql: s.sql, rowsAsArray: s.raw === true }, s.bindings, (err, rows) => (err ? reject(err) : resolve(rows as Row[]))),
        ),
      );
    }
    return results;
  } finally {
    await client.releaseConnection(connection);
  }
}

function requireOpen(conn: Conn): void {
  const tx = conn as Partial<Tx>;
  if (tx.isTransaction && tx.isCompleted?.()) throw new Error('The transaction is already complete; this statement cannot run in it.');
}

/**
 * Runs `fn` on the SQLite connection `conn` stands for: the transaction's when `conn` is one, else the pool's one
 * connection. SQLite runs synchronously: when that connection is idle and nobody waits for it, it is used in place
 * (nothing else can run on it before `fn` returns); otherwise this queues for it like any knex query.
 */
async function onSqliteConnection<T>(conn: Conn, fn: (connection: SqliteConnection) => T): Promise<T> {
  const tx = conn as Partial<Tx>;
  const client = conn.client as unknown as PoolInternals;
  const pool = client.pool;
  if (!tx.isTransaction && pool && pool.numUsed() === 0 && pool.numPendingAcquires() === 0 && pool.numPendingCreates() === 0 && pool.numFree() > 0) {
    return fn(pool.free[0].resource as SqliteConnection);
  }
  const connection = (await client.acquireConnection()) as SqliteConnection;
  try {
    return fn(connection);
  } finally {
    await client.releaseConnection(connection);
  }
}

/**
 * One write statement on SQLite as a cached prepared statement, without knex's query builder and raw-binding
 * formatting (for the bulk inserts of src/db/batch.ts, whose thousands of bindings knex would scan one by one).
 * Bindings are converted as knex's better-sqlite3 client does (Date -> milliseconds, boolean -> 0/1). Emits knex's
 * 'query' event (not 'query-response').
 */
export async function writeSqlite(conn: Conn, sql: string, bindings: unknown[]): Promise<void> {
  requireOpen(conn);
  for (let i = 0; i < bindings.length; i++) {
    const b = bindings[i];
    if (typeof b === 'boolean') bindings[i] = b ? 1 : 0;
    else if (b instanceof Date) bindings[i] = b.valueOf();
  }
  // knex's 'query' event, as its own queries emit it (tests and tools count statements by it).
  (conn.client as unknown as { emit(event: string, obj: unknown): void }).emit('query', { sql, bindings, method: 'raw' });
  await onSqliteConnection(conn, (connection) => {
    const statement = cachedStatement(connection, sql);
    if (statement.reader) throw new Error('writeSqlite runs writes only.');
    statement.run(bindings);
  });
}

function runSqlite(connection: SqliteConnection, statements: readonly ReadStatement[]): Row[][] {
  return statements.map((s) => {
    const statement = cachedStatement(connection, s.sql, s.raw === true);
    if (!statement.reader) throw new Error('readStatements runs reads only.');
    if (!s.raw) return readAll(statement, s.bindings as unknown[]);
    const rows = statement.all(s.bindings as unknown[]) as unknown as unknown[][];
    for (const row of rows) for (let i = 0; i < row.length; i++) row[i] = narrow(row[i]);
    return rows;
  });
}

/** `%term%` for LIKE, with the term's own wildcards escaped by '!' (use with `ESCAPE '!'`; alike on SQLite and MariaDB). */
export function likeTerm(term: string): string {
  return `%${term.replace(/[%_!]/g, (c) => `!${c}`)}%`;
}

export function isSqlite(db: Conn): boolean {
  return db.client.config.client === ExactSqliteClient || /sqlite/.test(String(db.client.dialect));
}

export function createDb(databaseUrl: string): Db {
  validateDatabaseUrl(databaseUrl);
  if (databaseUrl.startsWith('sqlite:')) {
    const file = databaseUrl.slice('sqlite:'.length);
    if (file !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    return knexFactory({
      client: ExactSqliteClient as unknown as typeof Knex.Client,
      connection: { filename: file },
      useNullAsDefault: true,
      // One connection: SQLite has a single writer, and one connection serialises our transactions cleanly.
      pool: {
        min: 1,
        max: 1,
        afterCreate(conn: { pragma(s: string): unknown }, done: (err: Error | null, conn: unknown) => void) {
          try {
            conn.pragma('journal_mode = WAL');
            conn.pragma('foreign_keys = ON');
            conn.pragma('busy_timeout = 5000');
            conn.pragma('synchronous = NORMAL');
            done(null, conn);
          } catch (e) {
            done(e as Error, conn);
          }
        },
      },
    });
  }
  const url = new URL(databaseUrl);
  return knexFactory({
    client: 'mysql2',
    connection: {
      host: url.hostname,
      port: url.port ? Number(url.port) : 3306,
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      database: url.pathname.slice(1),
      charset: 'utf8mb4',
      timezone: 'Z',
      // Exact integers: BIGINT beyond 2^53 arrives as a string, never a rounded double.
      supportBigNumbers: true,
      bigNumberStrings: false,
      decimalNumbers: false,
    },
    pool: {
      min: 0,
      max: 10,
      // READ COMMITTED, not InnoDB's REPEATABLE READ: the code locks what it changes (the account, the invoice, the
      // subscription) and then reads; under REPEATABLE READ a read after the lock still sees the snapshot of the
      // transaction's first read, from before the lock holder committed (a second credit memo could credit an
      // invoice above its total). Each statement now sees what is committed; locks and unique keys do the rest.
      afterCreate(conn: { query(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) {
        conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', (err) => done(err, conn));
      },
    },
  });
}

/** Reads an integer column that may hold money beyond 2^53: number, bigint or decimal string, exactly. */
export function toBigInt(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'string') return BigInt(v.includes('.') ? v.slice(0, v.indexOf('.')) : v);
  if (v === null || v === undefined) return 0n;
  throw new TypeError(`not an integer: ${String(v)}`);
}

/** An aggregate (SUM) of integer columns as a bigint: null (no rows) is 0; a float some drivers answer is rounded. */
export function sumToBigInt(v: unknown): bigint {
  return toBigInt(typeof v === 'number' ? Math.round(v) : v);
}

/** Writes money to the database: a decimal string binds exactly on both SQLite (INTEGER affinity) and MySQL. */
export function money(v: bigint): string {
  return v.toString();
}

export function toNumber(v: unknown): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : Number(v);
}

export function toOptionalNumber(v: unknown): number | null {
  return v === null || v === undefined ? null : toNumber(v);
}

export function toBool(v: unknown): boolean {
  return v === true || v === 1 || v === '1' || v === 1n;
}

/** Instants are stored as epoch milliseconds (BIGINT) on both databases: exact, zone-free, comparable. */
export function toDate(v: unknown): Date {
  return new Date(toNumber(v));
}

export function toOptionalDate(v: unknown): Date | null {
  return v === null || v === undefined ? null : toDate(v);
}

export function ms(d: Date): number {
  return d.getTime();
}
