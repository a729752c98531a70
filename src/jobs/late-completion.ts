/**
 * The schedule of every late-completion task: a remote system (service gate, registrar) accepted an operation but
 * still answered pending at its task's last attempt, so a late-completion task takes the operation over and asks
 * again with the SAME operation id. It first looks LATE_FIRST_DELAY_MS later, then backs off like any task
 * (backoff.ts: 5 s doubling to at most 1 hour) for LATE_MAX_ATTEMPTS checks (about a day). Kinds: saga.late_completion,
 * subscription.late_completion, saga.domain_late_completion, domain.renew_late_completion.
 */
export const LATE_FIRST_DELAY_MS = 10 * 60_000;
export const LATE_MAX_ATTEMPTS = 30;

/** The enqueue options of the late-completion task of `operationId`, handed over at `now` (one task per operation). */
export function lateCompletionSchedule(now: Date, operationId: string): { runAt: Date; maxAttempts: number; dedupeKey: string } {
  return { runAt: new Date(now.getTime() + LATE_FIRST_DELAY_MS), maxAttempts: LATE_MAX_ATTEMPTS, dedupeKey: `late:${operationId}` };
}
