import { expect } from 'chai';
import { AppError } from '../../src/domain/errors';
import type { Conn } from '../../src/db/knex';

/** Awaits p and checks it failed with this code (and field); returns the error. */
export async function failure(p: Promise<unknown>, code: string, field?: string): Promise<AppError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${code}${field ? ` on ${field}` : ''}, but the call succeeded`).to.be.instanceOf(AppError);
  const err = caught as AppError;
  expect({ code: err.code, field: err.field }).to.deep.equal({ code, field });
  return err;
}

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
