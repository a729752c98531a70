import type { Conn } from '../../src/db/knex';

/** The shared assertion, re-exported for the job tests. */
export { failure } from '../helpers/assertions';

export async function count(db: Conn, table: string, where: Record<string, unknown> = {}): Promise<number> {
  const [{ n }] = (await db(table).where(where).count({ n: '*' })) as { n: number | string }[];
  return Number(n);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls until check() holds or the time is up (real time); returns whether it held. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 15_000, everyMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
}

/** A promise a test resolves by hand: a handler waits on it to stay running. */
export function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}
