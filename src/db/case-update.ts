import type { Tx } from './knex';

/**
 * `UPDATE table SET column = CASE key WHEN k THEN v ... END WHERE key IN (...)`, 500 keys per statement: one
 * statement for many rows that each get their own value. `expr` wraps the CASE (e.g. "open_amount - (...)" for a
 * decrement); `also` sets the same value on every row.
 */
export async function updateByKey(
  tx: Tx,
  table: string,
  key: string,
  column: string,
  values: ReadonlyMap<number | string, unknown>,
  opts: { expr?: (caseSql: string) => string; also?: Record<string, unknown> } = {},
): Promise<void> {
  const entries = [...values];
  for (let i = 0; i < entries.length; i += 500) {
    const chunk = entries.slice(i, i + 500);
    const caseSql = `CASE ?? ${chunk.map(() => 'WHEN ? THEN ?').join(' ')} END`;
    await tx(table)
      .whereIn(key, chunk.map(([k]) => k))
      .update({ [column]: tx.raw(opts.expr ? opts.expr(caseSql) : caseSql, [key, ...chunk.flatMap(([k, v]) => [k, v])] as never[]), ...opts.also });
  }
}
