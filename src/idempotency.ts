import crypto from 'node:crypto';
import type { Actor, Deps } from './context';
import type { Tx } from './db/knex';
import { inTransaction, retryOnDeadlock } from './db/transaction';
import { conflict } from './domain/errors';

const replacer = (_k: string, v: unknown) => (typeof v === 'bigint' ? { $bigint: v.toString() } : v);
const reviver = (_k: string, v: unknown) =>
  v !== null && typeof v === 'object' && '$bigint' in (v as object) ? BigInt((v as { $bigint: string }).$bigint) : v;
const dateReviver = (k: string, v: unknown) => {
  const r = reviver(k, v);
  return typeof r === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(r) ? new Date(r) : r;
};

function isUniqueViolation(e: unknown): boolean {
  const err = e as { code?: string; errno?: number; message?: string };
  return err.code === 'ER_DUP_ENTRY' || err.code === 'SQLITE_CONSTRAINT_UNIQUE' || /UNIQUE constraint failed/.test(err.message ?? '');
}

/**
 * Runs a state-changing operation once per (caller's account, key): the same key with the same arguments returns
 * the first answer without doing anything again; with other arguments it is a CONFLICT. The key is claimed in the
 * operation's own transaction, so a concurrent twin waits on the unique index and then reads the stored answer.
 */
export async function idempotent<T>(
  deps: Deps,
  actor: Actor,
  key: string | undefined,
  operation: string,
  args: unknown,
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  if (!key) return inTransaction(deps.db, fn);
  const hash = crypto.createHash('sha256').update(operation).update('\0').update(JSON.stringify(args, replacer)).digest('hex');
  const replay = async (): Promise<T | undefined> => {
    const row = (await deps.db('idempotency_keys').where({ account_id: actor.accountId, key }).first()) as
      | { operation: string; request_hash: string; response: string | null }
      | undefined;
    if (!row) return undefined;
    if (row.operation !== operation || row.request_hash !== hash) {
      throw conflict(`Idempotency key '${key}' was already used with other arguments.`, 'idempotencyKey');
    }
    return JSON.parse(row.response ?? 'null', dateReviver) as T;
  };
  const earlier = await replay();
  if (earlier !== undefined) return earlier;
  try {
    return await retryOnDeadlock(() => deps.db.transaction(async (tx) => {
      await tx('idempotency_keys').insert({
        account_id: actor.accountId,
        key,
        operation,
        request_hash: hash,
        response: null,
        created_at: deps.clock.now().getTime(),
      });
      const result = await fn(tx);
      await tx('idempotency_keys').where({ account_id: actor.accountId, key }).update({ response: JSON.stringify(result ?? null, replacer) });
      return result;
    }));
  } catch (e) {
    if (!isUniqueViolation(e)) throw e;
    const twin = await replay();
    if (twin === undefined) throw e;
    return twin;
  }
}

export { isUniqueViolation };
