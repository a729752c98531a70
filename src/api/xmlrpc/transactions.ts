import crypto from 'node:crypto';
import type { Actor, Deps } from '../../context';
import { isSqlite, type Tx } from '../../db/knex';
import { AppError } from '../../domain/errors';
import { createServices, type Services } from '../../services';
import type { PluginRegistry } from '../../plugins/loader';

interface OpenTransaction {
  tx: Tx;
  services: Services;
  actor: Actor;
  credential: string;
  timer: NodeJS.Timeout;
  busy: Promise<unknown>;
  /** Calls queued or running: the idle clock runs only while there are none. */
  active: number;
}

/**
 * PBA's client-held transactions (AutoCommit "No"): calls that carry the TransactionID run in one database
 * transaction, which CommitTransaction or RollbackTransaction ends, or which rolls back by itself after sitting
 * idle for the configured timeout. Transactions live in this process: a load balancer must keep a transactional
 * client on one server (sticky sessions); on SQLite an open transaction holds the single connection.
 */
export class XmlRpcTransactions {
  private readonly open = new Map<string, OpenTransaction>();

  constructor(
    private readonly deps: Deps,
    private readonly plugins: PluginRegistry,
  ) {}

  async begin(actor: Actor, credential: string): Promise<string> {
    const limit = isSqlite(this.deps.db) ? Math.min(1, this.deps.config.xmlrpcMaxTransactions) : this.deps.config.xmlrpcMaxTransactions;
    if (this.open.size >= limit) {
      throw new AppError(
        'UNAVAILABLE',
        limit === 0
          ? 'Client-held transactions (AutoCommit "No") are switched off on this server.'
          : `${limit} client-held transaction(s) are already open; commit or roll back, or retry shortly.`,
        'AutoCommit',
      );
    }
    const tx = await this.deps.db.transaction();
    const id = crypto.randomUUID();
    const entry: OpenTransaction = {
      tx,
      services: createServices({ ...this.deps, db: tx as never }, this.plugins),
      actor,
      credential,
      timer: this.idleTimer(id),
      busy: Promise.resolve(),
      active: 0,
    };
    this.open.set(id, entry);
    return id;
  }

  /** Runs fn inside the transaction, one call at a time, after checking the caller is the one who opened it. */
  async run<T>(id: string, credential: string, fn: (services: Services, actor: Actor) => Promise<T>): Promise<T> {
    const entry = this.get(id, credential);
    clearTimeout(entry.timer);
    entry.active++;
    const result = entry.busy.then(() => fn(entry.services, entry.actor));
    entry.busy = result.catch(() => undefined);
    try {
      return await result;
    } finally {
      entry.active--;
      // Only the last call out restarts the idle clock: a timer started while another call of the same
      // transaction is still queued or running could roll it back under that call (or, overwritten, leak).
      if (this.open.get(id) === entry && entry.active === 0) {
        clearTimeout(entry.timer);
        entry.timer = this.idleTimer(id);
      }
    }
  }

  async commit(id: string, credential: string): Promise<void> {
    const entry = this.take(id, credential);
    await entry.busy;
    await entry.tx.commit();
  }

  async rollback(id: string, credential: string): Promise<void> {
    const entry = this.take(id, credential);
    await entry.busy;
    await entry.tx.rollback();
  }

  async closeAll(): Promise<void> {
    for (const [id, entry] of [...this.open]) {
      this.open.delete(id);
      clearTimeout(entry.timer);
      await entry.tx.rollback().catch(() => undefined);
    }
  }

  get size(): number {
    return this.open.size;
  }

  private get(id: string, credential: string): OpenTransaction {
    const entry = this.open.get(id);
    // Another caller's transaction id answers like an unknown one.
    if (!entry || entry.credential !== credential) {
      throw new AppError('NOT_FOUND', `Transaction ${id} is not open (it may have been committed, rolled back, or timed out).`, 'TransactionID');
    }
    return entry;
  }

  private take(id: string, credential: string): OpenTransaction {
    const entry = this.get(id, credential);
    this.open.delete(id);
    clearTimeout(entry.timer);
    return entry;
  }

  private idleTimer(id: string): NodeJS.Timeout {
    const t = setTimeout(() => {
      const entry = this.open.get(id);
      if (!entry) return;
      this.open.delete(id);
      this.deps.log.warn('XML-RPC transaction rolled back after its idle timeout', { transactionId: id });
      void entry.busy.then(() => entry.tx.rollback()).catch(() => undefined);
    }, this.deps.config.xmlrpcTransactionTimeoutSeconds * 1000);
    t.unref();
    return t;
  }
}
