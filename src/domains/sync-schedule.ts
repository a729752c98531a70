import cron from 'node-cron';
import { systemActor } from '../context';
import { safeErrorMessage } from '../logger';
import type { Services } from '../services';

/**
 * The daily domain sync (config domainSyncCron, default "30 3 * * *", UTC): status and expiry from the registrars,
 * in batches. Returns a stop function; "" in the config starts nothing. Each server process schedules it; a run
 * that finds another one still going in this process is skipped (noOverlap).
 */
export function startDomainSync(services: Services): () => Promise<void> {
  const { config, db, log } = services.deps;
  if (!config.domainSyncCron) return async () => {};
  const task = cron.schedule(
    config.domainSyncCron,
    async () => {
      try {
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
