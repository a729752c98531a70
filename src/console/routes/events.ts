import type { ConsoleRoutes } from '../app';
import type { Page } from '../page';
import { toNumber } from '../../db/knex';
import { invalid, notFound } from '../../domain/errors';
import { ACTION_TYPES, RECIPIENTS, SECRET_MASK, checkPattern, type ActionInput, type ActionType, type EventAction } from '../../events/actions-service';
import { EVENTS_QUEUE, PARKED_AT } from '../../events/dispatcher';
import { listPage } from '../lists';

const DELIVERY_STATUSES = ['pending', 'running', 'done', 'failed', 'canceled'] as const;

/** Accounts an operator may keep actions and templates for: its own, and the resellers below it. */
export async function vendorChoices(page: Page): Promise<{ id: number; name: string; type: string }[]> {
  const rows = (await page.services.deps.db('accounts')
    .whereIn('type', ['provider', 'reseller'])
    .andWhere('path', 'like', `${page.actor.accountPath}%`)
    .orderBy('path')
    .limit(500)
    .select('id', 'company_name', 'type')) as { id: number; company_name: string | null; type: string }[];
  return rows.map((r) => ({ id: toNumber(r.id), name: r.company_name ?? `account ${r.id}`, type: r.type }));
}

/** The events of the operator's subtree (the provider also sees events of no account): the rule of listEvents. */
function scopedEvents(page: Page) {
  const { db } = page.services.deps;
  const q = db('events as e').leftJoin('accounts as a', 'a.id', 'e.account_id');
  if (page.isProvider) q.where((w) => w.whereNull('e.account_id').orWhere('a.path', 'like', `${page.actor.accountPath}%`));
  else q.where('a.path', 'like', `${page.actor.accountPath}%`);
  return q;
}

/** The deliveries of the actions of the operator's subtree, with their task (the rule of listDeliveries). */
function scopedDeliveries(page: Page) {
  return page.services.deps.db('event_deliveries as d')
    .join('event_actions as ea', 'ea.id', 'd.action_id')
    .join('accounts as va', 'va.id', 'ea.vendor_id')
    .join('tasks as t', 't.id', 'd.task_id')
    .join('events as e', 'e.id', 'd.event_id')
    .where('va.path', 'like', `${page.actor.accountPath}%`)
    .select('d.id', 'd.event_id', 'e.name as event_name', 'e.object_type', 'e.object_id', 'd.action_id', 'ea.name as action_name', 'ea.type as action_type', 'd.task_id', 't.status', 't.attempts', 't.max_attempts', 't.last_error', 't.run_at', 't.updated_at');
}

interface DeliveryRow {
  id: number;
  task_id: number;
  run_at: number;
  attempts: number;
  [k: string]: unknown;
}

/** Adds each delivery's attempts (one query for the page) and whether it waits for an earlier one. */
async function withAttempts(page: Page, rows: DeliveryRow[]) {
  const ids = rows.map((r) => toNumber(r.task_id));
  const attempts = ids.length
    ? ((await page.services.deps.db('delivery_attempts').whereIn('task_id', ids).orderBy('id').select('task_id', 'attempt', 'at', 'outcome', 'duration_ms', 'detail')) as { task_id: number; attempt: number; at: number; outcome: string; duration_ms: number; detail: string | null }[])
    : [];
  return rows.map((r) => ({
    ...r,
    parked: toNumber(r.run_at) === PARKED_AT,
    attemptList: attempts.filter((a) => toNumber(a.task_id) === toNumber(r.task_id)).map((a) => ({ attempt: toNumber(a.attempt), at: toNumber(a.at), outcome: a.outcome, ms: toNumber(a.duration_ms), detail: a.detail })),
  }));
}

function eventsTabs(current: string) {
  return { tabs: [['events', '/console/events', 'Events'], ['deliveries', '/console/events/deliveries', 'Deliveries'], ['actions', '/console/events/actions', 'Actions']], tab: current };
}

/** What an action does, in a few words, for lists (never the secret). */
function target(a: { type: string; config: Record<string, unknown> }): string {
  if (a.type === 'webhook') return `POST ${String(a.config.url ?? '')}`;
  if (a.type === 'script') return [a.config.path, ...((a.config.args as string[] | undefined) ?? [])].join(' ');
  return `mail ${String(a.config.template ?? '(the event’s own template)')} in ${String(a.config.language ?? 'en')} to the ${String(a.config.recipient ?? 'billing')} contact`;
}

/** A number typed in a form; anything else goes to the service as typed, to be refused beside its field. */
function numberField(v: string | undefined): unknown {
  if (v === undefined) return undefined;
  return /^\d{1,15}$/.test(v) ? Number(v) : v;
}

/** The action form's config for a type; the secret only when typed (empty keeps the stored one). */
function configFrom(page: Page, type: ActionType): Record<string, unknown> {
  if (type === 'webhook') {
    const secret = page.form.secret ?? '';
    return { url: page.text('url') ?? '', ...(secret ? { secret } : {}), ...(page.text('timeoutMs') ? { timeoutMs: numberField(page.text('timeoutMs')) } : {}) };
  }
  if (type === 'script') {
    const args = (page.form.args ?? '').split(/\r?\n/).map((a) => a.trim()).filter(Boolean);
    return { path: page.text('path') ?? '', args, ...(page.text('timeoutMs') ? { timeoutMs: numberField(page.text('timeoutMs')) } : {}) };
  }
  return { ...(page.text('template') ? { template: page.text('template') } : {}), language: page.text('language') ?? 'en', recipient: page.text('recipient') ?? 'billing' };
}

/** Form values to show: what was posted (never a secret), else the action's own. */
function actionForm(page: Page, action: EventAction | null, type: ActionType) {
  const posted = Object.keys(page.form).length > 0;
  const c = action?.config ?? {};
  const pick = (name: string, fallback: unknown) => (posted ? (page.form[name] ?? '') : fallback === undefined || fallback === null ? '' : String(fallback));
  return {
    type,
    name: pick('name', action?.name),
    eventPattern: pick('eventPattern', action?.eventPattern),
    enabled: posted ? page.checkbox('enabled') : (action?.enabled ?? true),
    vendorAccountId: pick('vendorAccountId', action?.vendorAccountId),
    url: pick('url', c.url),
    timeoutMs: pick('timeoutMs', c.timeoutMs),
    path: pick('path', c.path),
    args: pick('args', Array.isArray(c.args) ? (c.args as string[]).join('\n') : ''),
    template: pick('template', c.template),
    language: pick('language', c.language ?? 'en'),
    recipient: pick('recipient', c.recipient ?? 'billing'),
    hasSecret: type === 'webhook' && c.secret === SECRET_MASK,
  };
}

/** Events, their deliveries (with attempts and Retry), and the event actions of the operator's vendors. */
export function eventPages(r: ConsoleRoutes): void {
  r.get('/events', async (page) => {
    const q = scopedEvents(page).select('e.id', 'e.name', 'e.object_type', 'e.object_id', 'e.account_id', 'e.created_at', 'e.dispatched_at', 'a.company_name');
    const name = page.query('name').trim();
    if (name) {
      try {
        const p = checkPattern(name, 'name');
        if (p === '*') {
          // every event
        } else if (p.endsWith('.*')) q.andWhere('e.name', 'like', `${p.slice(0, -1)}%`);
        else q.andWhere('e.name', p);
      } catch (e) {
        page.errors.name = (e as Error).message;
        q.andWhereRaw('1 = 0');
      }
    }
    if (page.query('objectType')) q.andWhere('e.object_type', page.query('objectType'));
    if (page.query('objectId')) q.andWhere('e.object_id', page.query('objectId'));
    const list = await listPage(page, q, {
      sorts: { id: 'e.id', name: 'e.name', object: 'e.object_type', occurred: 'e.created_at' },
      defaultSort: 'id',
      defaultDir: 'desc',
      filters: ['name', 'objectType', 'objectId'],
      tieBreaker: 'e.id',
    });
    // Of the operator's subtree only: a posted event's object type is another account's own words.
    const objectTypes = ((await scopedEvents(page).distinct('e.object_type').orderBy('e.object_type')) as { object_type: string }[]).map((x) => x.object_type);
    await page.render('events.njk', { title: 'Events', list, objectTypes, name, objectType: page.query('objectType'), objectId: page.query('objectId'), ...eventsTabs('events') });
  });

  r.get('/events/deliveries', async (page) => {
    const q = scopedDeliveries(page);
    const status = (DELIVERY_STATUSES as readonly string[]).includes(page.query('status')) ? page.query('status') : '';
    if (status) q.andWhere('t.status', status);
    const actionId = /^\d{1,15}$/.test(page.query('action')) ? Number(page.query('action')) : undefined;
    if (actionId) q.andWhere('d.action_id', actionId);
    if (/^\d{1,15}$/.test(page.query('event'))) q.andWhere('d.event_id', Number(page.query('event')));
    const list = await listPage<DeliveryRow>(page, q, {
      sorts: { id: 'd.id', event: 'e.name', action: 'ea.name', status: 't.status', attempts: 't.attempts', updated: 't.updated_at' },
      defaultSort: 'id',
      defaultDir: 'desc',
      filters: ['status', 'action', 'event'],
      tieBreaker: 'd.id',
    });
    const rows = await withAttempts(page, list.rows);
    const actions = await page.services.eventActions.list(page.actor);
    await page.render('deliveries.njk', { title: 'Deliveries', list: { ...list, rows }, statuses: DELIVERY_STATUSES, status, action: actionId ?? '', event: page.query('event'), actions, ...eventsTabs('deliveries') });
  });

  r.post('/events/deliveries/:taskId/retry', async (page) => {
    const taskId = page.param('taskId');
    // Only a delivery of an action the operator sees (the task's own scope is the action's vendor, the same).
    const delivery = (await scopedDeliveries(page).andWhere('d.task_id', taskId).first()) as DeliveryRow | undefined;
    if (!delivery) throw notFound('Delivery task', taskId);
    const back = page.text('back');
    const to = back && /^\/console\/events(\/[a-z0-9/]*)?(\?[A-Za-z0-9=&%._*-]*)?$/.test(back) ? back : '/console/events/deliveries';
    const done = await page.attempt(() => page.services.tasks.retry(page.actor, taskId));
    if (!done) return page.redirect(to, { kind: 'error', text: page.formError ?? `The delivery could not be retried.` });
    await page.redirect(to, { kind: 'ok', text: `Delivery of event ${toNumber(delivery.event_id as number)} (${String(delivery.event_name)}) to “${String(delivery.action_name)}” will be tried again now (task ${taskId}).` });
  });

  r.get('/events/actions', async (page) => {
    const actions = await page.services.eventActions.list(page.actor);
    const vendors = new Map((await vendorChoices(page)).map((v) => [v.id, v.name]));
    const type = (ACTION_TYPES as readonly string[]).includes(page.query('type')) ? page.query('type') : '';
    const items = actions.filter((a) => !type || a.type === type).map((a) => ({ ...a, target: target(a), vendorName: vendors.get(a.vendorAccountId) ?? `account ${a.vendorAccountId}` }));
    await page.render('event-actions.njk', { title: 'Event actions', items, types: ACTION_TYPES, type, ...eventsTabs('actions') });
  });

  const typeOf = (page: Page): ActionType => {
    const t = page.query('type') || page.form.type;
    if (!(ACTION_TYPES as readonly string[]).includes(t)) throw invalid('type', `The action type must be one of ${ACTION_TYPES.join(', ')}.`);
    return t as ActionType;
  };
  const editor = async (page: Page, action: EventAction | null, type: ActionType, status = 200) => {
    await page.render('event-action.njk', {
      title: action ? `Event action ${action.name}` : `New ${type} action`,
      action,
      f: actionForm(page, action, type),
      vendors: action ? [] : await vendorChoices(page),
      recipients: RECIPIENTS,
      ...eventsTabs('actions'),
    }, status);
  };

  r.get('/events/actions/new', (page) => editor(page, null, typeOf(page)));
  r.post('/events/actions/new', async (page) => {
    const type = typeOf(page);
    const input: ActionInput = {
      type,
      name: page.text('name') ?? '',
      eventPattern: page.text('eventPattern') ?? '',
      enabled: page.checkbox('enabled'),
      config: configFrom(page, type),
      ...(page.text('vendorAccountId') ? { vendorAccountId: numberField(page.text('vendorAccountId')) as number } : {}),
    };
    const created = await page.attempt(() => page.services.eventActions.create(page.actor, input));
    if (!created) return editor(page, null, type, 422);
    await page.redirect(`/console/events/actions/${created.actionId}`, { kind: 'ok', text: `Action “${created.name}” created; it acts on ${created.eventPattern} from now on.` });
  });

  r.get('/events/actions/:id', async (page) => {
    const action = await page.services.eventActions.get(page.actor, page.param('id'));
    await editor(page, action, action.type);
  });
  r.post('/events/actions/:id', async (page) => {
    const action = await page.services.eventActions.get(page.actor, page.param('id'));
    const input: ActionInput = {
      name: page.text('name') ?? '',
      eventPattern: page.text('eventPattern') ?? '',
      enabled: page.checkbox('enabled'),
      config: configFrom(page, action.type),
    };
    const saved = await page.attempt(() => page.services.eventActions.update(page.actor, action.actionId, input));
    if (!saved) return editor(page, action, action.type, 422);
    await page.redirect(`/console/events/actions/${saved.actionId}`, { kind: 'ok', text: `Action “${saved.name}” saved${saved.enabled ? '' : ' (disabled: it acts on nothing until enabled)'}.` });
  });
  for (const [verb, enabled] of [['enable', true], ['disable', false]] as const) {
    r.post(`/events/actions/:id/${verb}`, async (page) => {
      const action = await page.services.eventActions.get(page.actor, page.param('id'));
      await page.services.eventActions.update(page.actor, action.actionId, { enabled });
      await page.redirect('/console/events/actions', { kind: 'ok', text: enabled ? `Action “${action.name}” enabled.` : `Action “${action.name}” disabled; deliveries already queued for it finish as skipped.` });
    });
  }
  r.post('/events/actions/:id/delete', async (page) => {
    const action = await page.services.eventActions.get(page.actor, page.param('id'));
    if (!page.checkbox('confirm')) return page.redirect(`/console/events/actions/${action.actionId}`, { kind: 'error', text: 'Tick “I mean it” to delete the action.' });
    await page.services.eventActions.remove(page.actor, action.actionId);
    await page.redirect('/console/events/actions', { kind: 'ok', text: `Action “${action.name}” deleted.` });
  });

  // After the fixed paths above: /events/deliveries and /events/actions are not event ids.
  r.get('/events/:id', async (page) => {
    const id = page.param('id');
    const row = (await scopedEvents(page).andWhere('e.id', id).first('e.*', 'a.company_name')) as Record<string, unknown> | undefined;
    if (!row) throw notFound('Event', id);
    const event = {
      id: toNumber(row.id as number),
      name: String(row.name),
      objectType: String(row.object_type),
      objectId: String(row.object_id),
      accountId: row.account_id === null ? null : toNumber(row.account_id as number),
      companyName: row.company_name as string | null,
      occurredAt: toNumber(row.created_at as number),
      dispatchedAt: row.dispatched_at === null ? null : toNumber(row.dispatched_at as number),
      payload: JSON.parse(String(row.payload)) as unknown,
    };
    const deliveries = await withAttempts(page, (await scopedDeliveries(page).andWhere('d.event_id', id).orderBy('d.id')) as DeliveryRow[]);
    await page.render('event.njk', { title: `Event ${event.id} ${event.name}`, event, deliveries, queue: EVENTS_QUEUE, ...eventsTabs('events') });
  });
}
