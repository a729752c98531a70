import { isSqlite, type Conn, type Tx } from './knex';

/**
 * Runs fn in a transaction. When already inside one (conn is a transaction), joins it, so services compose:
 * an outer call (an XML-RPC transaction, a saga step) can hold several service calls in one unit of work.
 */
export async function inTransaction<T>(conn: Conn, fn: (tx: Tx) => Promise<T>): Promise<T> {
  if ((conn as Tx).isTransaction) return fn(conn as Tx);
  return retryOnDeadlock(() => conn.transaction(fn));
}

/** InnoDB chose this transaction as a deadlock victim (or waited too long for a lock) and rolled it back whole. */
export function isDeadlock(e: unknown): boolean {
  const code = (e as { code?: string })?.code;
  return code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT';
}

/**
 * Runs a whole transaction again when the database rolled it back as a deadlock victim: nothing of it was kept,
 * so running it again is safe, and the caller sees the answer the serial order gives (e.g. "used up").
 */
export async function retryOnDeadlock<T>(run: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (e) {
      if (!isDeadlock(e) || attempt >= attempts) throw e;
      await new Promise((r) => setTimeout(r, 5 * attempt + Math.floor(Math.random() * 10)));
    }
  }
}

/**
 * On SQLite, takes the database's single write lock at the start of a transaction, so what the transaction reads
 * is what it changes (a deferred transaction that read first could not upgrade after another process wrote). A
 * no-op on MariaDB, where callers lock the rows they change.
 */
export async function takeWriteLock(tx: Tx): Promise<void> {
  if (isSqlite(tx)) await tx.raw('UPDATE tasks SET id = id WHERE 0');
}

/** A write transaction: on SQLite it takes the write lock first (takeWriteLock); on MariaDB callers lock their rows. */
export async function writeTx<T>(deps: { db: Conn }, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return deps.db.transaction(async (tx) => {
    await takeWriteLock(tx);
    return fn(tx);
  });
}
