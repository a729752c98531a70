import type { Conn } from './knex';

/** SQLite's compound-select limit makes 500 rows the most one INSERT statement may carry. */
export const MAX_ROWS_PER_STATEMENT = 500;

export async function insertBatched(db: Conn, table: string, rows: readonly object[], size = MAX_ROWS_PER_STATEMENT): Promise<void> {
  const step = Math.min(size, MAX_ROWS_PER_STATEMENT);
  for (let i = 0; i < rows.length; i += step) {
    await db(table).insert(rows.slice(i, i + step));
  }
}
