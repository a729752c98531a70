import { isSqlite, writeSqlite, type Conn } from './knex';

/** SQLite's compound-select limit makes 500 rows the most one INSERT statement may carry. */
export const MAX_ROWS_PER_STATEMENT = 500;

export async function insertBatched(db: Conn, table: string, rows: readonly object[], size = MAX_ROWS_PER_STATEMENT): Promise<void> {
  const step = Math.min(size, MAX_ROWS_PER_STATEMENT);
  for (let i = 0; i < rows.length; i += step) {
    await insertRows(db, table, rows.slice(i, i + step));
  }
}

const sqlCache = new Map<string, string>();

/**
 * On SQLite, one multi-row `INSERT INTO t (..) VALUES (..), (..)` written here, at a fraction of knex's cost (knex
 * compiles every identifier and value anew and writes SQLite's as INSERT ... SELECT ... UNION ALL), with one SQL
 * text per (table, columns, row count), so the statement cache keeps it prepared. Rows with other columns than the
 * first row's, or an undefined value (knex's DEFAULT), go through knex, as everything does on MariaDB (there the
 * hand-made statement made a concurrent-issuing test deadlock past its retries; not investigated further).
 * The statement runs prepared without knex (writeSqlite): knex's raw-binding formatting scanned each of its
 * thousands of bindings.
 */
async function insertRows(db: Conn, table: string, rows: readonly object[]): Promise<void> {
  if (rows.length === 0) return;
  if (!isSqlite(db)) return void (await db(table).insert(rows));
  const cols = Object.keys(rows[0]!);
  const bindings: unknown[] = [];
  for (const row of rows) {
    const r = row as Record<string, unknown>;
    if (Object.keys(r).length !== cols.length) return void (await db(table).insert(rows));
    for (const c of cols) {
      const v = r[c];
      if (v === undefined || !(c in r)) return void (await db(table).insert(rows));
      bindings.push(v);
    }
  }
  const key = `${table}\u0000${cols.join(',')}\u0000${rows.length}`;
  let sql = sqlCache.get(key);
  if (!sql) {
    const tuple = `(${cols.map(() => '?').join(', ')})`;
    sql = `INSERT INTO \`${table}\` (${cols.map((c) => `\`${c}\``).join(', ')}) VALUES ${Array.from({ length: rows.length }, () => tuple).join(', ')}`;
    if (sqlCache.size >= 2000) sqlCache.delete(sqlCache.keys().next().value as string);
    sqlCache.set(key, sql);
  }
  await writeSqlite(db, sql, bindings);
}
