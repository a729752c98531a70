import cron from 'node-cron';
import { systemActor, type Deps } from '../context';
import { isUniqueViolation } from '../idempotency';
import { safeErrorMessage } from '../logger';
import type { Services } from '../services';

const CLAIM = 'domain_sync.last_run';
/** A run started this recently by any server process is not started again (the cron fires in every process). */
export const SYNC_CLAIM_WINDOW_MS = 10 * 60_000;

/** Claims this firing of the schedule for this process; false when another process ran it within the window. */
export async function claimSyncRun(deps: Deps, claim = CLAIM, windowMs = SYNC_CLAIM_WINDOW_MS): Promise<boolean> {
  const now = deps.clock.now().getTime();
  try {
    await deps.db('system_settings').insert({ name: claim, value: String(now) });
    return true;
  } catch (e) {
    if (!isUniqueViolation(e)) throw e;
  }
  // Epoch milliseconds are 13 digits until the year 2286, so the text comparison orders them.
  const taken = await deps.db('system_settings').where({ name: claim }).andWhere('value', '<', String(now - windowMs)).update({ value: String(now) });
  return Number(taken) === 1;
}

/**
 * The daily domain sync (config domainSyncCron, default "30 3 * * *", UTC): status and expiry from the registrars,
 * in batches. Returns a stop function; "" in the config starts nothing. Every server process schedules it; the
 * first to claim a firing runs it (claimSyncRun), the others skip it.
 */
export function startDomainSync(services: Services): () => Promise<void> {
  const { config, db, log } = services.deps;
  if (!config.domainSyncCron) return async () => {};
  const task = cron.schedule(
    config.domainSyncCron,
    async () => {
      try {
        if (!(await claimSyncRun(services.deps))) return;
        const provider = (await db('accounts').where({ type: 'provider' }).first('id', 'path')) as { id: number; path: string } | undefined;
        if (!provider) return;
        const r = await services.domains.sync(systemActor({ id: Number(provider.id), path: provider.path }, 'job'));
        log.info('domain sync done', r);
      } catch (e) {
        log.warn('domain sync failed', { error: safeErrorMessage(e) });
      }
    },
    { timezone: 'UTC', noOverlap: true, name: 'domain-sync' },
  );
  return async () => {
    await task.stop();
  };
}
