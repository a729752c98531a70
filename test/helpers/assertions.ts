import { expect } from 'chai';
import { AppError } from '../../src/domain/errors';

/** Awaits a promise that must fail with an AppError of this code (and field, when given). */
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

/** Waits for what a running server's own background worker brings about (it polls about once a second). */
export async function eventually<T>(probe: () => Promise<T | undefined>, what: string, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
