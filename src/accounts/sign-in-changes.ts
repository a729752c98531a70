import crypto from 'node:crypto';
import type { Clock } from '../clock';
import type { Conn, Db } from '../db/knex';

/**
 * The shared signal behind the sign-in cache. Each server process caches verified sign-ins for a minute
 * (src/accounts/authenticator.ts); a change that must end them (an account's status, the users a login names, a
 * sign-in lock) writes a row of sign_in_changes in the transaction that makes the change, so the signal commits
 * with the change or not at all. Every process reads the rows it has not seen yet every authInvalidationPollMs and
 * evicts the cached sign-ins they name.
 */
export interface SignInChange {
  /** The login (any letter case): every cached sign-in of it. */
  login?: string;
  /** A client address: with login, that login's sign-ins from that address; alone, every sign-in from it. */
  address?: string;
  /** Every cached sign-in of the account's users. */
  accountId?: number;
}

/** What a row of sign_in_changes names: hashes only, as the cache keeps them. */
export interface SignInChangeRow {
  id: number;
  login_hash: string | null;
  address_hash: string | null;
  account_id: number | null;
}

export const sha256 = (text: string) => crypto.createHash('sha256').update(text).digest('hex');

/** The hash a login is cached and signalled under: letter case does not make another login. */
export const loginHash = (login: string) => sha256(login.toLowerCase());

/** Records, in the caller's transaction, that the cached sign-ins `change` names must end in every process. */
export async function recordSignInChange(tx: Conn, now: Date, change: SignInChange): Promise<void> {
  await recordSignInChanges(tx, now, [change]);
}

export async function recordSignInChanges(tx: Conn, now: Date, changes: SignInChange[]): Promise<void> {
  if (changes.length === 0) return;
  await tx('sign_in_changes').insert(
    changes.map((c) => ({
      login_hash: c.login === undefined ? null : loginHash(c.login),
      address_hash: c.address === undefined ? null : sha256(c.address),
      account_id: c.accountId ?? null,
      created_at: now.getTime(),
    })),
  );
}

/** Rows older than this are pruned by the hourly housekeeping (a process reads rows within seconds of their commit). */
export const SIGN_IN_CHANGE_RETENTION_MS = 3_600_000;
/**
 * An id below the last one seen that has not shown up yet belongs to a transaction still open (MariaDB hands out
 * auto-increment ids at insert, not at commit) or one rolled back. It is looked for on every poll for this long:
 * longer than any transaction that could still commit it (client-held XML-RPC transactions end within
 * xmlrpcTransactionTimeoutSeconds, at most an hour is allowed), then given up.
 */
const GAP_RETENTION_MS = 3_600_000;
/** At most this many missing ids are looked for at once (the oldest are given up first). */
const MAX_GAPS = 500;
/** A process starting up takes the last this many rows as seen, and looks for the ids missing among them. */
const START_ROWS = 1000;
const PRUNE_BATCH = 500;

/**
 * One process's reader of sign_in_changes: each read returns the rows committed since the previous one, in id
 * order, including rows whose id was handed out earlier but committed late.
 */
export class SignInChangeFeed {
  /** The highest id seen; null until the first read (which only takes its bearings). */
  private last: number | null = null;
  /** Ids below `last` not seen yet, with when they were first missed (epoch ms). */
  private readonly gaps = new Map<number, number>();

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
  ) {}

  /** The rows committed since the last read. The first read returns none: a process starting has nothing cached. */
  async read(): Promise<SignInChangeRow[]> {
    const now = this.clock.now().getTime();
    const columns = ['id', 'login_hash', 'address_hash', 'account_id'];
    if (this.last === null) {
      const recent = ((await this.db('sign_in_changes').orderBy('id', 'desc').limit(START_ROWS).select(columns)) as SignInChangeRow[]).map(numericId).reverse();
      this.last = recent.length ? recent[0].id - 1 : 0;
      this.advance(recent, now);
      return [];
    }
    const last = this.last;
    const missing = [...this.gaps.keys()];
    const q = this.db('sign_in_changes').where('id', '>', last);
    if (missing.length) q.orWhereIn('id', missing);
    const rows = ((await q.orderBy('id').select(columns)) as SignInChangeRow[]).map(numericId);
    this.advance(rows, now);
    return rows;
  }

  private advance(rows: SignInChangeRow[], now: number): void {
    for (const row of rows) {
      if (this.gaps.delete(row.id) || row.id <= (this.last as number)) continue;
      for (let id = Math.max((this.last as number) + 1, row.id - MAX_GAPS); id < row.id; id++) this.gaps.set(id, now);
      this.last = row.id;
    }
    for (const [id, since] of this.gaps) if (now - since > GAP_RETENTION_MS) this.gaps.delete(id);
    // Map iteration follows insertion, which follows ids: the first ones are the oldest.
    for (const id of this.gaps.keys()) {
      if (this.gaps.size <= MAX_GAPS) break;
      this.gaps.delete(id);
    }
  }

  /** Deletes the rows older than SIGN_IN_CHANGE_RETENTION_MS (the server's hourly housekeeping calls it). */
  async prune(): Promise<void> {
    const before = this.clock.now().getTime() - SIGN_IN_CHANGE_RETENTION_MS;
    for (;;) {
      const ids = ((await this.db('sign_in_changes').where('created_at', '<', before).orderBy('created_at').limit(PRUNE_BATCH).select('id')) as { id: number }[]).map((r) => r.id);
      if (ids.length === 0) return;
      await this.db('sign_in_changes').whereIn('id', ids).del();
      if (ids.length < PRUNE_BATCH) return;
    }
  }
}

/** MariaDB answers BIGINT columns as numbers here, SQLite too; both are made plain numbers for the Map lookups. */
function numericId(row: SignInChangeRow): SignInChangeRow {
  return { ...row, id: Number(row.id), account_id: row.account_id === null ? null : Number(row.account_id) };
}
