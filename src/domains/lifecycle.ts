import cron from 'node-cron';
import { recordChange } from '../audit/record-change';
import { DOMAIN_RENEW_TASK, domainRenewalOperationId, type DomainRenewalTaskPayload } from '../billing/run/domain-renewals';
import { systemActor, type Actor, type Deps } from '../context';
import { toNumber, toOptionalNumber, type Conn } from '../db/knex';
import { lateCompletionSchedule } from '../jobs/late-completion';
import { TaskQueue, type Task } from '../jobs/task-queue';
import type { TaskHandler, TaskOutcome } from '../jobs/worker';
import { safeErrorMessage } from '../logger';
import type { PluginInstancesService } from '../plugins/instances-service';
import { MAX_NAMES_PER_CALL, type DomainTransfer, type Outcome, type Registrar, type SyncedDomain } from '../plugins/sdk';
import { writeTx } from '../orders/step-handlers';
import type { Services } from '../services';
import { STATUS_FROM_REGISTRAR, type DomainStatus } from './domains-service';
import { claimFiring } from './sync-schedule';

/** A transfer_pending domain is asked about at most this often (whatever the schedule). */
export const TRANSFER_POLL_MIN_INTERVAL_MS = 10 * 60_000;
export const TRANSFER_POLL_BATCH = 100;

interface LifecycleParts {
  pluginInstances: Pick<PluginInstancesService, 'instantiate'>;
}

async function jobActor(conn: Conn): Promise<Actor> {
  const row = (await conn('accounts').whereNull('vendor_id').andWhere({ type: 'provider' }).orderBy('id').first('id', 'path')) as { id: number; path: string } | undefined;
  if (!row) throw new Error('The provider account does not exist yet; start the server once to create it.');
  return systemActor({ id: toNumber(row.id), path: row.path }, 'job');
}

/** The registrar plugin of an instance; a disabled or missing instance is a retryable failure (it may come back). */
async function registrarOf(deps: Deps, parts: LifecycleParts, instanceId: number): Promise<Registrar | string> {
  const row = (await deps.db('plugin_instances').where({ id: instanceId }).first('name', 'status')) as { name: string; status: string } | undefined;
  if (!row) return `Registrar instance ${instanceId} does not exist.`;
  if (row.status !== 'active') return `Registrar instance '${row.name}' is disabled.`;
  return parts.pluginInstances.instantiate<Registrar>(instanceId);
}

/** The late-completion sweep of a paid renewal whose registrar still answered pending at the task's last attempt. */
export const DOMAIN_RENEW_LATE_TASK = 'domain.renew_late_completion';

/**
 * The `domain.renew` task (enqueued when a domain renewal invoice is paid): renews the domain for the paid years at
 * its registrar with the operation id `hw-renew-<domain>-<expiry>` (the same on every attempt: a retry after a
 * crash does not renew twice; EPP's curExpDate guards too), then sets the domain's expiry to the registrar's
 * (audited `RenewDomain`, event `domain.renewed`). A pending answer or a retryable failure retries the task with
 * backoff (its last error kept on the task); a refusal, or a retryable failure at the last attempt, fails it and
 * emits `domain.renewal_failed` with the registrar's code and message. The domain then expires at the registry and
 * the sync moves its status. Still pending at the last attempt (the registrar accepted the renewal), the task hands
 * it to `domain.renew_late_completion`, which asks again with the same operation id on the late-completion schedule
 * (jobs/late-completion.ts) and ends the same way: renewed once, or `domain.renewal_failed` (also when still pending
 * at its last check).
 */
export function domainLifecycleHandlers(deps: Deps, parts: LifecycleParts): Record<string, TaskHandler> {
  return {
    [DOMAIN_RENEW_TASK]: (task) => renewDomain(deps, parts, task, false),
    [DOMAIN_RENEW_LATE_TASK]: (task) => renewDomain(deps, parts, task, true),
  };
}

async function renewDomain(deps: Deps, parts: LifecycleParts, task: Task, late: boolean): Promise<TaskOutcome> {
  const p = task.payload as unknown as DomainRenewalTaskPayload;
  const row = (await deps.db('domains').where({ id: p.domainId }).first('id', 'name', 'account_id', 'status', 'expires_at', 'registrar_instance_id')) as
    | { id: number; name: string; account_id: number; status: DomainStatus; expires_at: unknown; registrar_instance_id: number }
    | undefined;
  if (!row) return { status: 'done', result: { skipped: `Domain ${p.domainId} no longer exists.` } };
  if (row.status === 'deleted' || row.status === 'transferred_away') {
    await renewalFailed(deps, task, row, 'NOT_HELD', `${row.name} is ${row.status.replace('_', ' ')}: it can no longer be renewed here.`);
    return { status: 'retry', error: `${row.name} is ${row.status}; not renewed.`, retryable: false };
  }
  const operationId = domainRenewalOperationId(p.domainId, p.expiresAt);
  const registrar = await registrarOf(deps, parts, toNumber(row.registrar_instance_id));
  let outcome: Outcome<{ name: string; expiresAt: string }>;
  if (typeof registrar === 'string') outcome = { status: 'failure', retryable: true, message: registrar, code: 'REGISTRAR_UNAVAILABLE' };
  else {
    try {
      outcome = await registrar.renew({ operationId, name: row.name, years: p.years, currentExpiresAt: new Date(p.expiresAt).toISOString() });
    } catch (e) {
      outcome = { status: 'failure', retryable: true, message: safeErrorMessage(e) };
    }
  }
  const last = task.attempts >= task.maxAttempts;
  if (outcome.status === 'pending') {
    const note = `The registrar has not finished renewing ${row.name} yet${outcome.message ? `: ${outcome.message}` : ''}.`;
    if (!last) return { status: 'retry', error: note, retryable: true };
    if (late) {
      const message = `The registrar did not finish renewing ${row.name}: still pending after the renewal task's attempts and ${task.maxAttempts} late checks${outcome.message ? ` (${outcome.message})` : ''}.`;
      await renewalFailed(deps, task, row, 'STILL_PENDING', message);
      return { status: 'retry', error: message, retryable: false };
    }
    await writeTx(deps, async (tx) => {
      await new TaskQueue(deps).enqueue(tx, {
        kind: DOMAIN_RENEW_LATE_TASK,
        queue: task.queue,
        payload: { ...p, name: row.name, action: 'renew_domain', operationId, taskId: task.taskId },
        accountId: toNumber(row.account_id),
        objectType: 'domain',
        objectId: toNumber(row.id),
        ...lateCompletionSchedule(deps.clock.now(), operationId),
      });
    });
    return { status: 'done', result: { late: true, note: `Still pending after ${task.maxAttempts} attempts; the late-completion sweep asks the registrar again later.` } };
  }
  if (outcome.status === 'failure') {
    const message = `The registrar refused to renew ${row.name}${outcome.code ? ` (${outcome.code})` : ''}: ${outcome.message}`;
    if (!outcome.retryable || last) await renewalFailed(deps, task, row, outcome.code ?? null, message);
    return { status: 'retry', error: message, retryable: outcome.retryable };
  }
  const newExpiry = Date.parse(outcome.result.expiresAt);
  await deps.db.transaction(async (tx) => {
    const now = deps.clock.now();
    const current = (await tx('domains').where({ id: row.id }).first('expires_at', 'status')) as { expires_at: unknown; status: DomainStatus };
    const before = toOptionalNumber(current.expires_at);
    const expiresAt = Number.isNaN(newExpiry) ? before : Math.max(before ?? 0, newExpiry);
    const status: DomainStatus = current.status === 'expired' ? 'active' : current.status;
    await tx('domains').where({ id: row.id }).update({ expires_at: expiresAt, status, updated_at: now.getTime() });
    await recordChange(tx, await jobActor(tx), now, {
      operation: 'RenewDomain',
      objectType: 'domain',
      objectId: toNumber(row.id),
      details: { name: row.name, years: p.years, invoiceId: p.invoiceId, chargeKey: p.chargeKey, expiresAt: { before, after: expiresAt }, taskId: task.taskId },
      event: {
        name: 'domain.renewed',
        accountId: toNumber(row.account_id),
        payload: { domainId: toNumber(row.id), name: row.name, years: p.years, invoiceId: p.invoiceId, previousExpiresAt: before === null ? null : new Date(before).toISOString(), expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString() },
      },
    });
  });
  return { status: 'done', result: { expiresAt: outcome.result.expiresAt } };
}

async function renewalFailed(deps: Deps, task: Task, row: { id: number; name: string; account_id: number }, code: string | null, message: string): Promise<void> {
  await deps.db.transaction(async (tx) => {
    await recordChange(tx, await jobActor(tx), deps.clock.now(), {
      operation: 'RenewDomainFailed',
      objectType: 'domain',
      objectId: toNumber(row.id),
      details: { name: row.name, taskId: task.taskId, code, message },
      event: { name: 'domain.renewal_failed', accountId: toNumber(row.account_id), payload: { domainId: toNumber(row.id), name: row.name, taskId: task.taskId, code, message } },
    });
  });
}

interface PendingTransferRow {
  id: number;
  name: string;
  account_id: number;
  registrar_instance_id: number;
  expires_at: unknown;
  transfer_operation_id: string | null;
}

/**
 * Asks the registrars about the domains in transfer_pending, in batches of `batchSize` (keyset over ids), each
 * domain at most every TRANSFER_POLL_MIN_INTERVAL_MS: with the transfer's operation id (pollTransfer) when it is
 * known, else through the registrar's batch `sync`. Approved (or the registrar now holds it active) -> `active`
 * with the registrar's expiry; refused (a non-retryable failure) -> `transferred_away` (the name is not held here);
 * still pending, or the registrar unreachable -> stays transfer_pending. Each change is audited `PollDomainTransfer`
 * with the event `domain.transfer_completed` or `domain.transfer_failed`.
 */
export async function pollDomainTransfers(deps: Deps, parts: LifecycleParts, batchSize = TRANSFER_POLL_BATCH): Promise<{ checked: number; completed: number; failed: number; pending: number }> {
  batchSize = Math.max(1, Math.min(Math.floor(batchSize) || TRANSFER_POLL_BATCH, MAX_NAMES_PER_CALL));
  const out = { checked: 0, completed: 0, failed: 0, pending: 0 };
  let after = 0;
  for (;;) {
    const now = deps.clock.now().getTime();
    const rows = (await deps.db('domains')
      .where('status', 'transfer_pending')
      .where('id', '>', after)
      .where((q) => q.whereNull('transfer_checked_at').orWhere('transfer_checked_at', '<=', now - TRANSFER_POLL_MIN_INTERVAL_MS))
      .orderBy('id')
      .limit(batchSize)
      .select('id', 'name', 'account_id', 'registrar_instance_id', 'expires_at', 'transfer_operation_id')) as PendingTransferRow[];
    if (rows.length === 0) break;
    after = toNumber(rows[rows.length - 1]!.id);
    const byInstance = new Map<number, PendingTransferRow[]>();
    for (const r of rows) byInstance.set(toNumber(r.registrar_instance_id), [...(byInstance.get(toNumber(r.registrar_instance_id)) ?? []), r]);
    for (const [instanceId, group] of byInstance) {
      const registrar = await registrarOf(deps, parts, instanceId).catch((e: unknown) => safeErrorMessage(e));
      if (typeof registrar === 'string') {
        deps.log.warn('domain transfer poll skipped', { registrarInstanceId: instanceId, error: registrar });
        out.pending += group.length;
        continue;
      }
      // Without the transfer's operation id, one sync call for the group says who the registrar holds now.
      const unknownOp = group.filter((r) => !r.transfer_operation_id);
      const synced = new Map<string, SyncedDomain>();
      if (unknownOp.length) {
        const s = await registrar.sync({ operationId: `hw-tpoll-${instanceId}-${now}`, names: unknownOp.map((r) => r.name) }).catch((e: unknown) => ({ status: 'failure', retryable: true, message: safeErrorMessage(e) }) as const);
        if (s.status === 'success') for (const d of s.result.domains) synced.set(d.name, d);
      }
      for (const r of group) {
        out.checked++;
        let verdict: { done: 'completed'; expiresAt: number | null } | { done: 'failed'; code: string | null; message: string } | null = null;
        if (r.transfer_operation_id) {
          let o: Outcome<DomainTransfer>;
          try {
            o = await registrar.pollTransfer({ operationId: r.transfer_operation_id, name: r.name });
          } catch (e) {
            o = { status: 'failure', retryable: true, message: safeErrorMessage(e) };
          }
          if (o.status === 'success') verdict = { done: 'completed', expiresAt: o.result.expiresAt ? Date.parse(o.result.expiresAt) : null };
          else if (o.status === 'failure' && !o.retryable) verdict = { done: 'failed', code: o.code ?? null, message: o.message };
        } else {
          const d = synced.get(r.name);
          if (d?.found && d.state && STATUS_FROM_REGISTRAR[d.state] === 'active') verdict = { done: 'completed', expiresAt: d.expiresAt ? Date.parse(d.expiresAt) : null };
        }
        await settleTransfer(deps, r, verdict);
        if (!verdict) out.pending++;
        else if (verdict.done === 'completed') out.completed++;
        else out.failed++;
      }
    }
    if (rows.length < batchSize) break;
  }
  return out;
}

async function settleTransfer(deps: Deps, r: PendingTransferRow, verdict: { done: 'completed'; expiresAt: number | null } | { done: 'failed'; code: string | null; message: string } | null): Promise<void> {
  const now = deps.clock.now();
  if (!verdict) {
    await deps.db('domains').where({ id: r.id, status: 'transfer_pending' }).update({ transfer_checked_at: now.getTime() });
    return;
  }
  await deps.db.transaction(async (tx) => {
    const before = toOptionalNumber(r.expires_at);
    const status: DomainStatus = verdict.done === 'completed' ? 'active' : 'transferred_away';
    const expiresAt = verdict.done === 'completed' && verdict.expiresAt !== null && !Number.isNaN(verdict.expiresAt) ? verdict.expiresAt : before;
    const n = await tx('domains').where({ id: r.id, status: 'transfer_pending' }).update({ status, expires_at: expiresAt, transfer_checked_at: now.getTime(), synced_at: now.getTime(), updated_at: now.getTime() });
    if (!n) return; // another process settled it
    const payload =
      verdict.done === 'completed'
        ? { domainId: toNumber(r.id), name: r.name, status, expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString() }
        : { domainId: toNumber(r.id), name: r.name, status, code: verdict.code, message: verdict.message };
    await recordChange(tx, await jobActor(tx), now, {
      operation: 'PollDomainTransfer',
      objectType: 'domain',
      objectId: toNumber(r.id),
      details: { ...payload, previousStatus: 'transfer_pending' },
      event: { name: verdict.done === 'completed' ? 'domain.transfer_completed' : 'domain.transfer_failed', accountId: toNumber(r.account_id), payload },
    });
  });
}

/**
 * Schedules the transfer poll (config domainTransferPollCron, default every 15 minutes, UTC); "" starts nothing.
 * Every server process schedules it; the first to claim a firing (row `domain_transfer_poll.last_run`) runs it.
 */
export function startDomainTransferPoll(services: Services): () => Promise<void> {
  const { config, log } = services.deps;
  if (!config.domainTransferPollCron) return async () => {};
  const task = cron.schedule(
    config.domainTransferPollCron,
    async (ctx) => {
      try {
        if (!(await claimFiring(services.deps, 'domain_transfer_poll.last_run', ctx.date))) return;
        const r = await pollDomainTransfers(services.deps, { pluginInstances: services.pluginInstances });
        if (r.checked) log.info('domain transfer poll done', r);
      } catch (e) {
        log.warn('domain transfer poll failed', { error: safeErrorMessage(e) });
      }
    },
    { timezone: 'UTC', noOverlap: true, name: 'domain-transfer-poll' },
  );
  return async () => {
    await task.stop();
  };
}
