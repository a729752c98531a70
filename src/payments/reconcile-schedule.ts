import cron, { type ScheduledTask } from 'node-cron';
import { systemActor, type Deps } from '../context';
import { toNumber } from '../db/knex';
import { safeErrorMessage } from '../logger';
import type { PaymentsService, ReconcileSummary } from './payments-service';

/** The node-cron task's name (cron.getTasks() lists it): one per server process. */
export const RECONCILER_TASK_NAME = 'payment-reconciler';

/**
 * One run of the payment reconciler over the whole tree: asks each gateway about unknown payments and pending
 * ones past the grace period (PaymentsService.reconcilePending), in batches until a batch settles nothing more.
 * Safe on several processes at once: a payment is settled at most once (a locked, state-guarded update).
 */
export async function runPaymentReconciler(deps: Deps, payments: Pick<PaymentsService, 'reconcilePending'>, opts: { batch?: number; maxBatches?: number } = {}): Promise<ReconcileSummary> {
  const provider = (await deps.db('accounts').whereNull('vendor_id').andWhere({ type: 'provider' }).orderBy('id').first('id', 'path')) as { id: number; path: string } | undefined;
  const total: ReconcileSummary = { checked: 0, settled: 0, stillOpen: 0, failed: 0 };
  if (!provider) return total;
  const actor = systemActor({ id: toNumber(provider.id), path: provider.path }, 'job');
  const batch = opts.batch ?? 100;
  for (let i = 0; i < (opts.maxBatches ?? 10); i++) {
    const s = await payments.reconcilePending(actor, batch);
    total.checked += s.checked;
    total.settled += s.settled;
    total.stillOpen += s.stillOpen;
    total.failed += s.failed;
    // A short batch was everything there was; a full one that settled nothing would only ask the same again.
    if (s.checked < batch || s.settled === 0) break;
  }
  if (total.checked > 0) deps.log.info('payment reconciler ran', { ...total });
  return total;
}

/**
 * Installs the reconciler on its cron expression (config paymentReconcileCron). Runs never overlap within a
 * process. Stop it with task.destroy() when the server closes.
 */
export function schedulePaymentReconciler(deps: Deps, payments: Pick<PaymentsService, 'reconcilePending'>, expression: string): ScheduledTask {
  return cron.schedule(
    expression,
    async () => {
      try {
        await runPaymentReconciler(deps, payments);
      } catch (e) {
        deps.log.warn('payment reconciler failed', { error: safeErrorMessage(e) });
      }
    },
    { name: RECONCILER_TASK_NAME, noOverlap: true },
  );
}
