/** How long a failed task waits before its next attempt: exponential, capped, with a jitter fixed per task. */

export const FIRST_RETRY_MS = 5_000;
export const BACKOFF_FACTOR = 2;
export const MAX_RETRY_MS = 60 * 60_000;
/** At most this share of a delay is taken off, so tasks that failed together do not all retry together. */
export const MAX_JITTER = 0.1;

/**
 * The task's own jitter in [0, MAX_JITTER), from its id alone (Knuth's multiplicative hash): the same task always
 * waits the same, so schedules are exact in tests, while neighbouring ids spread out.
 */
export function jitterOf(taskId: number): number {
  const h = Math.imul(taskId >>> 0, 2654435761) >>> 0;
  return (h / 2 ** 32) * MAX_JITTER;
}

/** The nominal delay after the n-th failed attempt (1-based): 5 s, 10 s, 20 s ... up to 1 h. */
export function nominalDelay(attempt: number): number {
  const n = Math.max(1, Math.floor(attempt));
  // Past 2^30 the power would stop being exact; by then the cap has long applied.
  return n > 30 ? MAX_RETRY_MS : Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * BACKOFF_FACTOR ** (n - 1));
}

/** The delay a task waits after its n-th failed attempt: the nominal delay less the task's jitter, never above the cap. */
export function retryDelay(attempt: number, taskId: number): number {
  const nominal = nominalDelay(attempt);
  return nominal - Math.floor(nominal * jitterOf(taskId));
}
