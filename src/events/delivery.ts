import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import type { Deps } from '../context';
import { toBool, toNumber } from '../db/knex';
import type { Task } from '../jobs/task-queue';
import type { TaskContext, TaskHandler, TaskOutcome } from '../jobs/worker';
import { safeErrorMessage } from '../logger';
import type { NotificationsService } from '../notifications/notifications-service';
import { DEFAULT_TIMEOUT_MS, type ActionRow, type NotificationConfig, type ScriptConfig, type WebhookConfig } from './actions-service';
import { envelope, type EventDispatcher, type EventEnvelope, type EventRow } from './dispatcher';
import { postOnce, resolvesInternal, type PostResult } from './network';

export const SIGNATURE_HEADER = 'X-Hostwright-Signature';
/** Shown of a failing receiver's answer or a script's stderr in the task's last error. */
export const MAX_DETAIL_CHARS = 1000;
/** How long a script's output is still read after it exited (a background job it started may hold the pipes). */
export const SCRIPT_OUTPUT_GRACE_MS = 200;

/** `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const v1 = crypto.createHmac('sha256', secret).update(`${unixSeconds}.${body}`, 'utf8').digest('hex');
  return `t=${unixSeconds},v1=${v1}`;
}

function truncate(s: string, max = MAX_DETAIL_CHARS): string {
  const t = s.trim();
  return t.length <= max ? t : `${t.slice(0, max - 1)}…`;
}

interface Attempt {
  outcome: 'ok' | 'failed';
  detail: string;
}

/**
 * The task handlers of the events queue: event.webhook, event.script, event.notification (one delivery of one
 * event to one action), and notification.send (a message rendered by a caller, e.g. SendSubscriptionNotification).
 */
export function deliveryHandlers(deps: Deps, parts: { dispatcher: EventDispatcher; notifications: NotificationsService }): Record<string, TaskHandler> {
  const { db, clock } = deps;

  async function record(task: Task, startedAt: number, a: Attempt): Promise<void> {
    const now = clock.now().getTime();
    await db('delivery_attempts').insert({
      task_id: task.taskId,
      attempt: task.attempts,
      at: now,
      outcome: a.outcome,
      duration_ms: Math.max(0, Date.now() - startedAt),
      detail: truncate(a.detail, 2000),
    });
  }

  /** Loads what a delivery needs; an action deleted or disabled since dispatch ends the delivery as skipped. */
  function deliver(run: (event: EventEnvelope, action: ActionRow, task: Task, ctx: TaskContext) => Promise<Attempt>): TaskHandler {
    return async (task, ctx) => {
      const { eventId, actionId } = task.payload as { eventId: number; actionId: number };
      const earlier = await parts.dispatcher.waitsFor(task.taskId);
      if (earlier !== null) {
        return { status: 'retry', error: `Waiting for the delivery of an earlier event of ${task.objectType} ${task.objectId} (task ${earlier}).`, retryable: true };
      }
      const action = (await db('event_actions').where({ id: actionId }).first()) as ActionRow | undefined;
      if (!action || !toBool(action.enabled)) return { status: 'done', result: { skipped: action ? 'the action is disabled' : 'the action was deleted' } };
      const row = (await db('events').where({ id: eventId }).first()) as EventRow | undefined;
      if (!row) return { status: 'retry', error: `Event ${eventId} no longer exists.`, retryable: false };
      const started = Date.now();
      let attempt: Attempt;
      try {
        attempt = await run(envelope(row), action, task, ctx);
      } catch (e) {
        attempt = { outcome: 'failed', detail: safeErrorMessage(e) };
      }
      await record(task, started, attempt);
      ctx.log.info('event delivery attempt', { eventId, actionId, type: action.type, outcome: attempt.outcome, detail: truncate(attempt.detail, 300), ms: Date.now() - started });
      if (attempt.outcome === 'ok') {
        // The next delivery of the same object to this action may go now that this one is done.
        setTimeout(() => parts.dispatcher.nudge(), 20).unref();
        return { status: 'done', result: { detail: attempt.detail } };
      }
      return { status: 'retry', error: attempt.detail, retryable: true };
    };
  }

  const webhook = deliver(async (event, action, _task, ctx) => {
    const config = JSON.parse(action.config) as WebhookConfig;
    if (!action.secret_enc) return { outcome: 'failed', detail: `Webhook action ${action.id} has no signing secret; set config.secret.` };
    // A reseller's webhook may not reach into the provider's own network (the answer would show in its last error).
    let publicOnly = false;
    if (!deps.config.webhookAllowPrivateNetworks) {
      const vendor = (await db('accounts').where({ id: action.vendor_id }).first('type')) as { type: string } | undefined;
      publicOnly = vendor?.type !== 'provider';
    }
    if (publicOnly) {
      const inside = await resolvesInternal(new URL(config.url)).catch((e: Error) => `unresolvable (${e.message})`);
      if (inside) return { outcome: 'failed', detail: `Refused: ${new URL(config.url).hostname} resolves to ${inside}, a local or private address; a reseller's webhook must reach a public host.` };
    }
    const secret = deps.secrets.open(action.secret_enc);
    const body = JSON.stringify(event);
    const t = Math.floor(clock.now().getTime() / 1000);
    const timeoutMs = config.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let res: PostResult;
    try {
      // The name is resolved again when connecting, and checked again there (publicOnly): DNS may answer otherwise now.
      res = await postOnce(
        new URL(config.url),
        {
          'Content-Type': 'application/json',
          'User-Agent': 'Hostwright-Webhook/1',
          [SIGNATURE_HEADER]: signatureHeader(secret, body, t),
          'X-Hostwright-Event': event.name,
          'X-Hostwright-Delivery': ctx.operationId,
        },
        body,
        { timeoutMs, signal: ctx.signal, publicOnly },
      );
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'EINTERNALADDRESS') return { outcome: 'failed', detail: `Refused: ${err.message}; a reseller's webhook must reach a public host.` };
      const why = err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : err.code ?? err.message;
      return { outcome: 'failed', detail: `POST ${config.url} failed: ${why}` };
    }
    const text = res.text;
    if (res.status >= 200 && res.status < 300) return { outcome: 'ok', detail: `HTTP ${res.status} from ${config.url}` };
    return { outcome: 'failed', detail: `HTTP ${res.status} from ${config.url}${text ? `: ${truncate(text, 300)}` : ''}` };
  });

  const script = deliver(async (event, action, _task, ctx) => {
    const config = JSON.parse(action.config) as ScriptConfig;
    return runScript(config, event, ctx.signal);
  });

  const notification = deliver(async (event, action, task) => {
    const config = JSON.parse(action.config) as NotificationConfig;
    const vendorId = toNumber(action.vendor_id);
    if (event.accountId === null) return { outcome: 'ok', detail: 'skipped: the event concerns no account, so there is no one to write to' };
    const name = config.template ?? event.name;
    const context = await notificationContext(deps, vendorId, event.accountId, config.recipient, { event: { ...event, payload: undefined }, payload: event.payload });
    if (!context.contact.email) return { outcome: 'failed', detail: `Account ${event.accountId} has no ${config.recipient} or admin contact e-mail to send '${name}' to.` };
    const template = await parts.notifications.resolveTemplate(db, vendorId, name, config.language);
    if (!template) return { outcome: 'failed', detail: `No notification template '${name}' (language ${config.language}) for account ${vendorId}, its vendors, or built in; create one.` };
    const rendered = parts.notifications.render(template, context);
    const sent = await parts.notifications.send({
      vendorAccountId: vendorId,
      accountId: event.accountId,
      eventId: event.id,
      template: name,
      to: context.contact.email,
      ...rendered,
      dedupeKey: `task:${task.taskId}`,
    });
    return { outcome: 'ok', detail: `mail ${sent.mailId} ${sent.status} to ${context.contact.email}${sent.duplicate ? ' (already, on an earlier attempt)' : ''}` };
  });

  const send: TaskHandler = async (task): Promise<TaskOutcome> => {
    const p = task.payload as { vendorAccountId: number; accountId: number | null; template: string; to: string; subject: string; html: string; text: string };
    const sent = await parts.notifications.send({ ...p, eventId: null, dedupeKey: `task:${task.taskId}` });
    return { status: 'done', result: { mailId: sent.mailId, status: sent.status } };
  };

  return { 'event.webhook': webhook, 'event.script': script, 'event.notification': notification, 'notification.send': send };
}

export interface NotificationContext extends Record<string, unknown> {
  account: { id: number; companyName: string };
  contact: { firstName: string; lastName: string; email: string };
  vendor: { id: number; companyName: string };
}

/** What a template sees besides the event: the account, the contact written to, the vendor writing. */
export async function notificationContext(deps: Deps, vendorId: number, accountId: number, recipient: string, extra: Record<string, unknown>): Promise<NotificationContext> {
  const { db } = deps;
  const account = (await db('accounts').where({ id: accountId }).first('id', 'company_name')) as { id: number; company_name: string | null } | undefined;
  const vendor = (await db('accounts').where({ id: vendorId }).first('id', 'company_name')) as { id: number; company_name: string | null } | undefined;
  const contacts = (await db('account_contacts').where({ account_id: accountId }).whereIn('kind', [recipient, 'admin'])) as { kind: string; first_name: string; last_name: string; email: string }[];
  const c = contacts.find((x) => x.kind === recipient && x.email) ?? contacts.find((x) => x.kind === 'admin' && x.email);
  return {
    ...extra,
    account: { id: accountId, companyName: account?.company_name ?? '' },
    contact: { firstName: c?.first_name ?? '', lastName: c?.last_name ?? '', email: c?.email ?? '' },
    vendor: { id: vendorId, companyName: vendor?.company_name ?? '' },
  };
}

/**
 * Runs the script with the event JSON on stdin; a non-zero exit, a signal or the timeout is a failed attempt. The
 * script's own exit decides: a background job it leaves behind (holding its stdout or stderr) is not waited for.
 */
export function runScript(config: ScriptConfig, event: EventEnvelope, signal?: AbortSignal): Promise<Attempt> {
  return new Promise<Attempt>((resolve) => {
    const timeoutMs = config.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let stderr = '';
    let stdout = '';
    let timedOut = false;
    let settled = false;
    let grace: NodeJS.Timeout | undefined;
    const finish = (a: Attempt) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(grace);
      signal?.removeEventListener('abort', kill);
      // A background job may still hold the pipes: our ends close now, the job is left alone.
      child.stdout.destroy();
      child.stderr.destroy();
      resolve(a);
    };
    const child = spawn(config.path, config.args ?? [], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOSTWRIGHT_EVENT: event.name, HOSTWRIGHT_EVENT_ID: String(event.id) },
      detached: true,
    });
    const kill = () => {
      try {
        // The whole process group: a shell script's children go too.
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    signal?.addEventListener('abort', kill, { once: true });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 64 * 1024) stderr += d.toString('utf8');
    });
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < 4096) stdout += d.toString('utf8');
    });
    child.stdin.on('error', () => undefined); // a script that does not read its stdin closes it early
    child.on('error', (e) => finish({ outcome: 'failed', detail: `${config.path} could not run: ${e.message}` }));
    const conclude = (code: number | null, sig: NodeJS.Signals | null) => {
      if (timedOut) return finish({ outcome: 'failed', detail: `${config.path} did not finish within ${timeoutMs} ms and was killed.${stderr ? ` stderr: ${truncate(stderr)}` : ''}` });
      if (code === 0) return finish({ outcome: 'ok', detail: `${config.path} exited 0${stdout.trim() ? `: ${truncate(stdout, 200)}` : ''}` });
      finish({ outcome: 'failed', detail: `${config.path} ${code === null ? `was killed by ${sig}` : `exited ${code}`}${stderr.trim() ? `: ${truncate(stderr)}` : ' (no stderr)'}` });
    };
    // 'close' comes once the pipes are closed too; after the exit, their last output gets a moment, not more.
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      grace = setTimeout(() => conclude(code, sig), SCRIPT_OUTPUT_GRACE_MS);
    });
    child.on('close', conclude);
    child.stdin.end(JSON.stringify(event));
  });
}
