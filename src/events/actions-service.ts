import fs from 'node:fs';
import path from 'node:path';
import { recordChange } from '../audit/record-change';
import { scopedVendor, type AccountRow } from '../accounts/scope';
import type { Actor, Deps } from '../context';
import { toBool, toNumber, type Conn } from '../db/knex';
import { inTransaction } from '../db/transaction';
import { invalid, notAllowed, notFound } from '../domain/errors';
import { literalInternalHost } from './network';
import { oneOf, optionalText, paging, positiveId, requiredText } from '../domain/fields';

export const ACTION_TYPES = ['notification', 'webhook', 'script'] as const;
export type ActionType = (typeof ACTION_TYPES)[number];

/** What a kept webhook secret looks like when shown; sending it back in an update keeps the secret. */
export const SECRET_MASK = '********';

export const DEFAULT_TIMEOUT_MS = 10_000;
export const MAX_TIMEOUT_MS = 120_000;
export const RECIPIENTS = ['billing', 'admin', 'technical'] as const;

export interface WebhookConfig {
  url: string;
  timeoutMs: number;
}
export interface ScriptConfig {
  path: string;
  args: string[];
  timeoutMs: number;
}
export interface NotificationConfig {
  /** The template to render; the event's own name unless told. */
  template?: string;
  language: string;
  /** Which contact of the account receives it (falling back to the admin contact). */
  recipient: (typeof RECIPIENTS)[number];
}

export interface EventAction {
  actionId: number;
  vendorAccountId: number;
  name: string;
  eventPattern: string;
  type: ActionType;
  /** For a webhook the secret shows as SECRET_MASK. */
  config: Record<string, unknown>;
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface ActionInput {
  vendorAccountId?: number;
  name?: string;
  eventPattern?: string;
  type?: string;
  /** webhook: {url, secret, timeoutMs?}; script: {path, args?, timeoutMs?}; notification: {template?, language?, recipient?} */
  config?: Record<string, unknown>;
  enabled?: boolean;
}

/** One outbox event as the console shows it. */
export interface EventView {
  eventId: number;
  name: string;
  objectType: string;
  objectId: string;
  accountId: number | null;
  payload: Record<string, unknown>;
  occurredAt: Date;
  dispatchedAt: Date | null;
}

/** One delivery: an event handed to an action, with its task's state. */
export interface DeliveryView {
  deliveryId: number;
  eventId: number;
  eventName: string;
  actionId: number;
  taskId: number;
  kind: string;
  status: string;
  attempts: number;
  maxAttempts: number;
  lastError: string | null;
  /** When it runs next; 9999-12-31 while it waits for an earlier delivery of its object. */
  runAt: Date;
  objectType: string;
  objectId: string;
}

export interface AttemptView {
  attempt: number;
  at: Date;
  outcome: 'ok' | 'failed';
  durationMs: number;
  detail: string | null;
}

export interface ActionRow {
  id: number;
  vendor_id: number;
  name: string;
  event_pattern: string;
  type: ActionType;
  config: string;
  secret_enc: string | null;
  enabled: unknown;
  created_at: number;
  updated_at: number;
}

const EVENT_NAME = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$/;

/** "order.placed", "order.*" (any event whose name starts with "order."), or "*" (every event). */
export function checkPattern(value: unknown, field = 'eventPattern'): string {
  const p = requiredText(value, field, 96);
  if (p === '*') return p;
  const base = p.endsWith('.*') ? p.slice(0, -2) : p;
  if (!EVENT_NAME.test(base)) throw invalid(field, `${field} '${p}' must be an event name such as order.placed, a prefix such as order.*, or *.`);
  return p;
}

export function patternMatches(pattern: string, eventName: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('.*')) return eventName.startsWith(pattern.slice(0, -1));
  return pattern === eventName;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function timeout(v: unknown, field: string): number {
  if (v === undefined || v === null) return DEFAULT_TIMEOUT_MS;
  const n = positiveId(v, field);
  if (n < 100 || n > MAX_TIMEOUT_MS) throw invalid(field, `${field} must be from 100 to ${MAX_TIMEOUT_MS} milliseconds.`);
  return n;
}

export function toAction(r: ActionRow): EventAction {
  const config = JSON.parse(r.config) as Record<string, unknown>;
  if (r.type === 'webhook') config.secret = SECRET_MASK;
  return {
    actionId: toNumber(r.id),
    vendorAccountId: toNumber(r.vendor_id),
    name: r.name,
    eventPattern: r.event_pattern,
    type: r.type,
    config,
    enabled: toBool(r.enabled),
    createdAt: new Date(toNumber(r.created_at)),
    updatedAt: new Date(toNumber(r.updated_at)),
  };
}

/**
 * Event actions per vendor: what happens when an event of the vendor's subtree occurs (a notification, a signed
 * webhook, a script). The provider's actions see every event; a reseller's see its own and its customers'.
 */
export class EventActionsService {
  constructor(private readonly deps: Deps) {}

  async create(actor: Actor, input: ActionInput): Promise<EventAction> {
    const vendor = await this.vendor(actor, input.vendorAccountId);
    const type = oneOf(input.type, 'type', ACTION_TYPES);
    const name = requiredText(input.name, 'name', 128);
    const eventPattern = checkPattern(input.eventPattern);
    if (type === 'script' && vendor.type !== 'provider') throw notAllowed('Only the provider may run scripts on the server; a reseller uses a webhook.', 'type');
    const { config, secret } = this.checkConfig(type, input.config ?? {}, undefined, vendor.type === 'provider');
    const enabled = input.enabled === undefined ? true : input.enabled === true;
    return inTransaction(this.deps.db, async (tx) => {
      const now = this.deps.clock.now();
      const [id] = (await tx('event_actions').insert({
        vendor_id: vendor.id,
        name,
        event_pattern: eventPattern,
        type,
        config: JSON.stringify(config),
        secret_enc: secret === undefined ? null : this.deps.secrets.seal(secret),
        enabled,
        created_at: now.getTime(),
        updated_at: now.getTime(),
      })) as number[];
      const actionId = toNumber(id);
      await recordChange(tx, actor, now, {
        operation: 'CreateEventAction',
        objectType: 'event_action',
        objectId: actionId,
        details: { name, eventPattern, type, enabled },
        event: { name: 'event_action.created', accountId: toNumber(vendor.id), payload: { actionId, vendorAccountId: toNumber(vendor.id), name, eventPattern, type, enabled } },
      });
      return toAction((await tx('event_actions').where({ id: actionId }).first()) as ActionRow);
    });
  }

  async update(actor: Actor, actionId: number, input: ActionInput): Promise<EventAction> {
    return inTransaction(this.deps.db, async (tx) => {
      const row = await this.scopedRow(tx, actor, actionId);
      const changes: Record<string, unknown> = {};
      if (input.vendorAccountId !== undefined) throw invalid('vendorAccountId', 'An action stays with its vendor; create a new one for another vendor.');
      if (input.type !== undefined && input.type !== row.type) throw invalid('type', 'The type of an action cannot change; create a new action.');
      if (input.name !== undefined) changes.name = requiredText(input.name, 'name', 128);
      if (input.eventPattern !== undefined) changes.event_pattern = checkPattern(input.eventPattern);
      if (input.enabled !== undefined) {
        if (typeof input.enabled !== 'boolean') throw invalid('enabled', 'enabled must be true or false.');
        changes.enabled = input.enabled;
      }
      if (input.config !== undefined) {
        const vendor = (await tx('accounts').where({ id: row.vendor_id }).first('type')) as { type: string };
        const { config, secret } = this.checkConfig(row.type, input.config, row.secret_enc, vendor.type === 'provider');
        changes.config = JSON.stringify(config);
        if (secret !== undefined) changes.secret_enc = this.deps.secrets.seal(secret);
      }
      const now = this.deps.clock.now();
      await tx('event_actions').where({ id: row.id }).update({ ...changes, updated_at: now.getTime() });
      const changed = Object.keys(changes).map((k) => (k === 'event_pattern' ? 'eventPattern' : k === 'secret_enc' ? 'secret' : k));
      await recordChange(tx, actor, now, {
        operation: 'UpdateEventAction',
        objectType: 'event_action',
        objectId: toNumber(row.id),
        details: { changed },
        event: { name: 'event_action.updated', accountId: toNumber(row.vendor_id), payload: { actionId: toNumber(row.id), changed } },
      });
      return toAction((await tx('event_actions').where({ id: row.id }).first()) as ActionRow);
    });
  }

  /** Removes an action; deliveries already queued for it finish as skipped. */
  async remove(actor: Actor, actionId: number): Promise<void> {
    await inTransaction(this.deps.db, async (tx) => {
      const row = await this.scopedRow(tx, actor, actionId);
      await tx('event_actions').where({ id: row.id }).del();
      await recordChange(tx, actor, this.deps.clock.now(), {
        operation: 'DeleteEventAction',
        objectType: 'event_action',
        objectId: toNumber(row.id),
        details: { name: row.name },
        event: { name: 'event_action.deleted', accountId: toNumber(row.vendor_id), payload: { actionId: toNumber(row.id), name: row.name } },
      });
    });
  }

  async get(actor: Actor, actionId: number): Promise<EventAction> {
    return toAction(await this.scopedRow(this.deps.db, actor, actionId));
  }

  /** Actions of the actor's subtree (or of one vendor in it), oldest first. */
  async list(actor: Actor, filter: { vendorAccountId?: number } = {}): Promise<EventAction[]> {
    const q = this.deps.db('event_actions as e').join('accounts as a', 'a.id', 'e.vendor_id').where('a.path', 'like', `${actor.accountPath}%`);
    if (filter.vendorAccountId !== undefined) q.andWhere('e.vendor_id', positiveId(filter.vendorAccountId, 'vendorAccountId'));
    const rows = (await q.orderBy('e.id').select('e.*')) as ActionRow[];
    return rows.map(toAction);
  }

  /** Events of the actor's subtree (the provider also sees events of no account), newest first. */
  async listEvents(actor: Actor, filter: { name?: string; objectType?: string; objectId?: string | number; page?: number; pageSize?: number } = {}): Promise<{ items: EventView[]; total: number }> {
    const { db } = this.deps;
    const { offset, pageSize } = paging(filter.page, filter.pageSize);
    const q = db('events as e');
    if (actor.accountType === 'provider') {
      q.where((w) => w.whereNull('e.account_id').orWhereIn('e.account_id', db('accounts').select('id').where('path', 'like', `${actor.accountPath}%`)));
    } else {
      q.whereIn('e.account_id', db('accounts').select('id').where('path', 'like', `${actor.accountPath}%`));
    }
    const name = optionalText(filter.name, 'name', 96);
    if (name) {
      if (name.endsWith('.*')) q.andWhere('e.name', 'like', `${checkPattern(name, 'name').slice(0, -1)}%`);
      else q.andWhere('e.name', name);
    }
    const objectType = optionalText(filter.objectType, 'objectType', 48);
    if (objectType) q.andWhere('e.object_type', objectType);
    const objectId = optionalText(filter.objectId, 'objectId', 64);
    if (objectId) q.andWhere('e.object_id', objectId);
    const [{ total }] = (await q.clone().count({ total: '*' })) as { total: number | string }[];
    const rows = (await q.orderBy('e.id', 'desc').limit(pageSize).offset(offset).select('e.*')) as {
      id: number; name: string; object_type: string; object_id: string; account_id: number | null; payload: string; created_at: number; dispatched_at: number | null;
    }[];
    return {
      total: Number(total),
      items: rows.map((r) => ({
        eventId: toNumber(r.id),
        name: r.name,
        objectType: r.object_type,
        objectId: r.object_id,
        accountId: r.account_id === null ? null : toNumber(r.account_id),
        payload: JSON.parse(r.payload) as Record<string, unknown>,
        occurredAt: new Date(toNumber(r.created_at)),
        dispatchedAt: r.dispatched_at === null ? null : new Date(toNumber(r.dispatched_at)),
      })),
    };
  }

  /** Deliveries of the actor's subtree's actions (optionally of one event, action or task status), newest first. */
  async listDeliveries(actor: Actor, filter: { eventId?: number; actionId?: number; status?: string; page?: number; pageSize?: number } = {}): Promise<{ items: DeliveryView[]; total: number }> {
    const { db } = this.deps;
    const { offset, pageSize } = paging(filter.page, filter.pageSize);
    const q = db('event_deliveries as d')
      .join('event_actions as ea', 'ea.id', 'd.action_id')
      .join('accounts as a', 'a.id', 'ea.vendor_id')
      .join('tasks as t', 't.id', 'd.task_id')
      .join('events as e', 'e.id', 'd.event_id')
      .where('a.path', 'like', `${actor.accountPath}%`);
    if (filter.eventId !== undefined) q.andWhere('d.event_id', positiveId(filter.eventId, 'eventId'));
    if (filter.actionId !== undefined) q.andWhere('d.action_id', positiveId(filter.actionId, 'actionId'));
    if (filter.status !== undefined) q.andWhere('t.status', oneOf(filter.status, 'status', ['pending', 'running', 'done', 'failed', 'canceled'] as const));
    const [{ total }] = (await q.clone().count({ total: '*' })) as { total: number | string }[];
    const rows = (await q
      .orderBy('d.id', 'desc')
      .limit(pageSize)
      .offset(offset)
      .select('d.id', 'd.event_id', 'e.name as event_name', 'd.action_id', 'd.task_id', 't.kind', 't.status', 't.attempts', 't.max_attempts', 't.last_error', 't.run_at', 'e.object_type', 'e.object_id')) as Record<string, unknown>[];
    return {
      total: Number(total),
      items: rows.map((r) => ({
        deliveryId: toNumber(r.id),
        eventId: toNumber(r.event_id),
        eventName: String(r.event_name),
        actionId: toNumber(r.action_id),
        taskId: toNumber(r.task_id),
        kind: String(r.kind),
        status: String(r.status),
        attempts: toNumber(r.attempts),
        maxAttempts: toNumber(r.max_attempts),
        lastError: (r.last_error as string | null) ?? null,
        runAt: new Date(toNumber(r.run_at)),
        objectType: String(r.object_type),
        objectId: String(r.object_id),
      })),
    };
  }

  /** The attempts of one delivery task (the actor must see the task), oldest first. */
  async attempts(actor: Actor, taskId: number): Promise<AttemptView[]> {
    const task = await this.deps.db('tasks as t')
      .join('accounts as a', 'a.id', 't.account_id')
      .where('t.id', positiveId(taskId, 'taskId'))
      .andWhere('a.path', 'like', `${actor.accountPath}%`)
      .first('t.id');
    if (!task) throw notFound('Task', taskId);
    const rows = (await this.deps.db('delivery_attempts').where({ task_id: toNumber((task as { id: number }).id) }).orderBy('id')) as Record<string, unknown>[];
    return rows.map((r) => ({ attempt: toNumber(r.attempt), at: new Date(toNumber(r.at)), outcome: r.outcome as 'ok' | 'failed', durationMs: toNumber(r.duration_ms), detail: (r.detail as string | null) ?? null }));
  }

  private checkConfig(type: ActionType, raw: unknown, keptSecret: string | null | undefined, byProvider: boolean): { config: Record<string, unknown>; secret?: string } {
    if (!isObject(raw)) throw invalid('config', 'config must be an object.');
    if (type === 'webhook') {
      const url = requiredText(raw.url, 'config.url', 2000);
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw invalid('config.url', `config.url '${url}' is not a URL.`);
      }
      if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw invalid('config.url', 'config.url must be an http or https URL.');
      if (parsed.username || parsed.password) throw invalid('config.url', 'config.url may not carry a user or password; the signature authenticates the request.');
      if (!byProvider && !this.deps.config.webhookAllowPrivateNetworks && literalInternalHost(parsed)) {
        throw invalid('config.url', `config.url '${parsed.hostname}' is a local or private address; a reseller's webhook must reach a public host.`);
      }
      const config: WebhookConfig = { url, timeoutMs: timeout(raw.timeoutMs, 'config.timeoutMs') };
      const given = raw.secret;
      if ((given === undefined || given === SECRET_MASK) && keptSecret) return { config: { ...config } };
      const secret = requiredText(given, 'config.secret', 512);
      if (secret === SECRET_MASK) throw invalid('config.secret', 'config.secret is the mask of a kept secret; give the secret itself.');
      if (secret.length < 16) throw invalid('config.secret', 'config.secret must have at least 16 characters (e.g. `openssl rand -hex 32`).');
      return { config: { ...config }, secret };
    }
    if (type === 'script') {
      const file = requiredText(raw.path, 'config.path', 1000);
      if (!path.isAbsolute(file)) throw invalid('config.path', `config.path '${file}' must be an absolute path.`);
      try {
        // A directory passes the X_OK check too (it can be searched), but cannot be run.
        fs.accessSync(file, fs.constants.X_OK);
        if (!fs.statSync(file).isFile()) throw new Error('not a file');
      } catch {
        throw invalid('config.path', `config.path '${file}' is not an executable file on this server.`);
      }
      const args = raw.args === undefined ? [] : raw.args;
      if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw invalid('config.args', 'config.args must be a list of strings.');
      const config: ScriptConfig = { path: file, args: args as string[], timeoutMs: timeout(raw.timeoutMs, 'config.timeoutMs') };
      return { config: { ...config } };
    }
    const template = raw.template === undefined || raw.template === null ? undefined : checkPattern(raw.template, 'config.template');
    if (template !== undefined && template.includes('*')) throw invalid('config.template', 'config.template must be a template name such as order.placed.');
    const language = optionalText(raw.language, 'config.language', 16) || 'en';
    if (!/^[a-z]{2}(-[A-Za-z]{2})?$/.test(language)) throw invalid('config.language', `config.language '${language}' must be a language code such as en or pt-BR.`);
    const recipient = raw.recipient === undefined ? 'billing' : oneOf(raw.recipient, 'config.recipient', RECIPIENTS);
    const config: NotificationConfig = { language, recipient, ...(template ? { template } : {}) };
    return { config: { ...config } };
  }

  private async vendor(actor: Actor, vendorAccountId?: number): Promise<AccountRow> {
    return scopedVendor(this.deps.db, actor, vendorAccountId, 'keep event actions');
  }

  private async scopedRow(conn: Conn, actor: Actor, actionId: number): Promise<ActionRow> {
    const id = positiveId(actionId, 'actionId');
    const row = (await conn('event_actions as e').join('accounts as a', 'a.id', 'e.vendor_id').where('e.id', id).andWhere('a.path', 'like', `${actor.accountPath}%`).first('e.*')) as ActionRow | undefined;
    if (!row) throw notFound('Event action', id);
    return row;
  }
}
