import cron from 'node-cron';
import { systemActor, type Deps } from '../context';
import { isUniqueViolation } from '../idempotency';
import { safeErrorMessage } from '../logger';
import type { Services } from '../services';

const CLAIM = 'domain_sync.last_run';

/**
 * Claims one firing of a schedule for this process: true for the first process to claim the firing `firing` (the
 * cron's scheduled instant, the same in every process that fires it), false for the others. The row `claim` keeps
 * the last firing claimed, as epoch milliseconds; a firing is claimed by moving it forward, so each firing runs once
 * however many processes fire it and however late, and a schedule of any frequency runs at every firing. (Before,
 * a run claimed a 10-minute window, so a schedule more frequent than that silently skipped firings.)
 */
export async function claimFiring(deps: Deps, claim: string, firing: Date): Promise<boolean> {
  const slot = Math.floor(firing.getTime() / 1000) * 1000;
  try {
    await deps.db('system_settings').insert({ name: claim, value: String(slot) });
    return true;
  } catch (e) {
    if (!isUniqueViolation(e)) throw e;
  }
  // Epoch milliseconds are 13 digits until the year 2286, so the text comparison orders them.
  const taken = await deps.db('system_settings').where({ name: claim }).andWhere('value', '<', String(slot)).update({ value: String(slot) });
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
    async (ctx) => {
      try {
        if (!(await claimFiring(services.deps, CLAIM, ctx.date))) return;
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
