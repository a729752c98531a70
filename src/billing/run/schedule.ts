import cron from 'node-cron';
import { safeErrorMessage } from '../../logger';
import type { Services } from '../../services';
import { isUniqueViolation } from '../../idempotency';
import { summaryJson } from './billing-run';

export interface BillingSchedule {
  stop(): Promise<void>;
}

/**
 * Runs the billing run on config.billingCron (UTC), as of the scheduled instant. Several server processes on one
 * database each have the schedule; the first to claim the tick (a system_settings row named after it, a primary
 * key) runs it, the others skip it. The run is idempotent anyway, so a process that dies mid-run loses nothing:
 * the next tick bills what is left. Answers null when the schedule is switched off.
 */
export function scheduleBilling(services: Services): BillingSchedule | null {
  const { config, log, db, clock } = services.deps;
  if (!config.billingCron) return null;
  const task = cron.schedule(
    config.billingCron,
    async (ctx) => {
      const asOf = new Date(Math.floor(ctx.date.getTime() / 60_000) * 60_000);
      try {
        await db('system_settings').insert({ name: `billing-cron:${asOf.toISOString()}`, value: String(clock.now().getTime()) });
      } catch (e) {
        if (isUniqueViolation(e)) return; // another process has this tick
        throw e;
      }
      try {
        const summary = await services.billingRun.run({ asOf, startedBy: 'cron' });
        log.info('billing run done', summaryJson(summary));
      } catch (e) {
        log.error('billing run failed', { asOf: asOf.toISOString(), error: safeErrorMessage(e) });
      }
    },
    { name: 'billing-run', timezone: 'Etc/UTC', noOverlap: true },
  );
  task.unref();
  return { stop: async () => void (await task.destroy()) };
}
