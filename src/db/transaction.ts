import type { Conn, Tx } from './knex';

/**
 * Runs fn in a transaction. When already inside one (conn is a transaction), joins it, so services compose:
 * an outer call (an XML-RPC transaction, a saga step) can hold several service calls in one unit of work.
 */
export async function inTransaction<T>(conn: Conn, fn: (tx: Tx) => Promise<T>): Promise<T> {
  if ((conn as Tx).isTransaction) return fn(conn as Tx);
  return conn.transaction(fn);
}
