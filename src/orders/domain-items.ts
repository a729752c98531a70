import crypto from 'node:crypto';
import type { Deps } from '../context';
import { recordChange } from '../audit/record-change';
import type { AccountRow } from '../accounts/scope';
import { isSqlite, toNumber, toOptionalNumber, type Conn, type Tx } from '../db/knex';
import { AppError, invalid, isAppError } from '../domain/errors';
import { DomainsService } from '../domains/domains-service';
import { MAX_YEARS, TldCatalogService, type Tld, type TldAction } from '../domains/tld-catalog';
import { lateCompletionSchedule } from '../jobs/late-completion';
import type { Task } from '../jobs/task-queue';
import type { TaskContext, TaskOutcome } from '../jobs/worker';
import { safeErrorMessage } from '../logger';
import type { PluginInstancesService } from '../plugins/instances-service';
import { checkDomainContacts, parseDomainName, parseNameservers, type DomainContact, type Outcome, type Registrar } from '../plugins/sdk';
import { actionOf, loadOrder, loadWorkflowDefinition, lockOrder, writeTx, type Ctx, type OrderRow } from './step-handlers';
import { ORDERS_QUEUE } from './transitions';

/**
 * Domain items of orders (issue #7): register, transfer or renew one name, priced from the seller's TLD offer, kept
 * in order_domains and worked by the order's saga after its hosting items (saga.ts hands over with startDomains):
 *
 *   hosting 1..n provisioned -> domain 1 -> ... -> domain m -> the order's success
 *        domain k fails for good: domains k+1.. skipped; registered domains 1..k-1 deleted at their registrar
 *        (last first; allowed in the add grace period) -> the hosting items undone -> saga.finish
 *   A registered domain its registrar will not delete is `kept`: saga.finish puts the order on hold for an
 *   operator (status HL, event order.manual_review) instead of failing it.
 *
 * Every registrar call carries the operation id stored on the row when the order was placed (a repeated call after
 * a crash or a retry is the same operation: no second registration or renewal).
 */

export const SAGA_DOMAIN = 'saga.domain_item';
export const SAGA_DOMAIN_UNDO = 'saga.domain_undo';

export const DOMAIN_ITEM_ACTIONS = ['register', 'transfer', 'renew'] as const;
export type DomainItemAction = (typeof DOMAIN_ITEM_ACTIONS)[number];

/** A domain line of an order as the caller gives it. */
export interface DomainItemInput {
  action: DomainItemAction;
  name: string;
  /** 1-10; default 1. */
  years?: number;
  nameservers?: string[];
  /** transfer: the EPP auth code (sealed at once; never logged nor returned). */
  eppCode?: string;
}

/** A domain item as an order shows it (never the auth code). */
export interface OrderDomain {
  position: number;
  /** The hosting item (its itemId) it came with, for an in-line registration. */
  itemId: number | null;
  action: DomainItemAction;
  name: string;
  years: number;
  nameservers: string[];
  amount: bigint;
  status: string;
  domainId: number | null;
  lastError: string | null;
}

export interface PreparedDomain {
  action: DomainItemAction;
  name: string;
  tldId: number;
  registrarInstanceId: number;
  years: number;
  nameservers: string[];
  authCodeEnc: string | null;
  amount: bigint;
  currency: string;
  domainId: number | null;
  /** 1-based position of the hosting item it came with (in-line), else null. */
  itemPosition: number | null;
}

interface OrderDomainRow {
  id: number;
  order_id: number;
  position: number;
  item_id: number | null;
  action: DomainItemAction;
  name: string;
  tld_id: number;
  registrar_instance_id: number;
  years: number;
  nameservers: string;
  auth_code_enc: string | null;
  amount: unknown;
  status: string;
  operation_id: string;
  domain_id: number | null;
  last_error: string | null;
}

/** Item parameters of a hosting item that order a domain with it (in-line registration). */
export const INLINE_PARAMETERS = { name: 'domain', action: 'domain_action', years: 'domain_years', nameservers: 'domain_nameservers', eppCode: 'domain_epp_code' } as const;

/**
 * The domain a hosting item's parameters order with it, or undefined: `domain_action` (register | transfer) asks
 * for one, named by `domain`, for `domain_years` (default 1), with `domain_nameservers` (comma or space separated)
 * and, for a transfer, `domain_epp_code`. The auth code is taken out of the parameters (they are stored as given).
 */
export function inlineDomain(parameters: Record<string, string>, field: string): DomainItemInput | undefined {
  const action = parameters[INLINE_PARAMETERS.action];
  const code = parameters[INLINE_PARAMETERS.eppCode];
  delete parameters[INLINE_PARAMETERS.eppCode];
  if (action === undefined || action.trim() === '') {
    if (code !== undefined) throw invalid(`${field}.parameters.${INLINE_PARAMETERS.action}`, `${INLINE_PARAMETERS.eppCode} is given without ${INLINE_PARAMETERS.action}=transfer.`);
    return undefined;
  }
  const a = action.trim().toLowerCase();
  if (a !== 'register' && a !== 'transfer') throw invalid(`${field}.parameters.${INLINE_PARAMETERS.action}`, `${INLINE_PARAMETERS.action} must be register or transfer (renew a domain with RenewDomain).`);
  const name = parameters[INLINE_PARAMETERS.name];
  if (!name) throw invalid(`${field}.parameters.${INLINE_PARAMETERS.name}`, `${INLINE_PARAMETERS.action}=${a} needs the domain name in the parameter '${INLINE_PARAMETERS.name}'.`);
  const yearsText = parameters[INLINE_PARAMETERS.years];
  const years = yearsText === undefined || yearsText.trim() === '' ? 1 : Number(yearsText);
  const ns = parameters[INLINE_PARAMETERS.nameservers];
  return {
    action: a,
    name,
    years,
    nameservers: ns ? ns.split(/[\s,]+/).filter(Boolean) : undefined,
    eppCode: code,
  };
}

async function offerForName(conn: Conn, tlds: TldCatalogService, seller: AccountRow, name: string): Promise<Tld | undefined> {
  const labels = name.split('.');
  for (let i = 1; i < labels.length; i++) {
    const offer = await tlds.offerFor(conn, seller, labels.slice(i).join('.'));
    if (offer) return offer;
  }
  return undefined;
}

/** The registrant the registry gets for an account: its admin contact (else any) and its address. */
export async function registrantOf(conn: Conn, accountId: number): Promise<DomainContact> {
  const account = (await conn('accounts').where({ id: accountId }).first()) as Record<string, string | null>;
  const contacts = (await conn('account_contacts').where({ account_id: accountId }).orderByRaw("CASE kind WHEN 'admin' THEN 0 WHEN 'billing' THEN 1 ELSE 2 END")) as Record<string, string>[];
  const c = contacts[0] ?? {};
  const digits = (s: string | undefined) => String(s ?? '').replace(/\D/g, '');
  const phone = digits(c.phone_country_code) && digits(c.phone) ? `+${digits(c.phone_country_code)}.${digits(c.phone_area_code)}${digits(c.phone)}` : String(c.phone ?? '');
  const person = [c.first_name, c.last_name].filter(Boolean).join(' ');
  const contact: DomainContact = {
    name: person || account.company_name || '',
    email: c.email ?? '',
    phone,
    street: [account.address1, account.address2].filter((s): s is string => !!s && s.trim() !== ''),
    city: account.city ?? '',
    countryCode: (account.country ?? '').toUpperCase(),
  };
  if (account.company_name) contact.organization = account.company_name;
  if (account.state) contact.state = account.state;
  if (account.zip) contact.postalCode = account.zip;
  return contact;
}

/** Validates and prices one domain item for `account` (its seller's TLD offer), in the placing transaction. */
export async function prepareDomainItem(
  conn: Conn,
  deps: Deps,
  tlds: TldCatalogService,
  account: AccountRow,
  input: DomainItemInput,
  field: string,
  itemPosition: number | null,
  paramField?: (what: keyof typeof INLINE_PARAMETERS) => string,
): Promise<PreparedDomain> {
  const f = (what: keyof typeof INLINE_PARAMETERS) => (paramField ? paramField(what) : `${field}.${what}`);
  if (!input || typeof input !== 'object') throw invalid(field, `${field} must be {action, name, years}.`);
  const action = input.action;
  if (!DOMAIN_ITEM_ACTIONS.includes(action)) throw invalid(f('action'), `The domain action must be one of ${DOMAIN_ITEM_ACTIONS.join(', ')}.`);
  const parsed = parseDomainName(input.name);
  if (!parsed.ok) throw invalid(f('name'), parsed.message);
  const name = parsed.name;
  const years = input.years === undefined || input.years === null ? 1 : typeof input.years === 'string' ? Number(input.years) : input.years;
  if (!Number.isInteger(years) || years < 1 || years > MAX_YEARS) throw invalid(f('years'), `years must be a whole number from 1 to ${MAX_YEARS}.`);
  const ns = parseNameservers(input.nameservers ?? []);
  if (!ns.ok) throw invalid(f('nameservers'), ns.message);
  const seller = await tlds.sellerOf(conn, account);
  const offer = await offerForName(conn, tlds, seller, name);
  if (!offer) throw invalid(f('name'), `.${parsed.tld} is not sold here.`);
  const price = offer.prices.find((p) => p.action === (action as TldAction) && p.years === years);
  if (!price) throw invalid(f('years'), `.${offer.tld} has no ${action} price for ${years} year(s); ask for a year count it is sold for.`);
  // Every vendor's offer of the TLD is locked (MariaDB; SQLite has one writer) before the checks below, until the
  // placing transaction ends: two orders of one name placed at once would otherwise both find no open order and no
  // domain, and both be charged and sent to the registrar (4 RenewDomain at once renewed and charged 4 times).
  if (!isSqlite(conn)) await conn('tlds').where({ tld: offer.tld }).forUpdate().select('id');
  const open = (await conn('order_domains').where({ name }).whereIn('status', ['pending', 'running']).first('order_id')) as { order_id: number } | undefined;
  if (open) throw new AppError('CONFLICT', `${name} is already in order ${toNumber(open.order_id)}, which is still running.`, f('name'));
  const held = (await conn('domains').where({ name }).whereNotIn('status', ['deleted', 'transferred_away']).first('id', 'account_id', 'registrar_instance_id')) as
    | { id: number; account_id: number; registrar_instance_id: number }
    | undefined;
  let authCodeEnc: string | null = null;
  let registrarInstanceId = offer.registrarInstanceId;
  let domainId: number | null = null;
  if (action === 'renew') {
    if (!held || toNumber(held.account_id) !== toNumber(account.id)) throw new AppError('NOT_FOUND', `Account ${account.id} holds no domain ${name}.`, f('name'));
    registrarInstanceId = toNumber(held.registrar_instance_id);
    domainId = toNumber(held.id);
  } else {
    if (held) throw new AppError('CONFLICT', `${name} is already held here (domain ${toNumber(held.id)}).`, f('name'));
    if (action === 'transfer') {
      const code = typeof input.eppCode === 'string' ? input.eppCode.trim() : '';
      if (code === '' && offer.transferAuthRequired) throw invalid(f('eppCode'), `A transfer of .${offer.tld} needs the EPP auth code the current registrar gave the registrant.`);
      if (code.length > 255) throw invalid(f('eppCode'), 'The EPP auth code is at most 255 characters.');
      authCodeEnc = code === '' ? null : deps.secrets.seal(code);
    } else {
      const problem = checkDomainContacts({ registrant: await registrantOf(conn, toNumber(account.id)) });
      if (problem) throw invalid('accountId', `Account ${account.id} cannot hold a domain yet: its details make an incomplete registrant (${problem.replace('contacts.registrant.', '')}). Complete its admin contact and address first.`);
    }
  }
  return { action, name, tldId: offer.tldId, registrarInstanceId, years, nameservers: ns.hosts, authCodeEnc, amount: price.amount, currency: offer.currency, domainId, itemPosition };
}

/** Inserts the prepared domain items of an order (after its hosting items) with their order lines. */
export async function insertDomainItems(tx: Tx, deps: Deps, orderId: number, prepared: PreparedDomain[], itemIds: number[], linePosition: number): Promise<void> {
  const now = deps.clock.now().getTime();
  for (let i = 0; i < prepared.length; i++) {
    const d = prepared[i]!;
    await tx('order_domains').insert({
      order_id: orderId,
      position: i + 1,
      item_id: d.itemPosition === null ? null : itemIds[d.itemPosition - 1],
      action: d.action,
      name: d.name,
      tld_id: d.tldId,
      registrar_instance_id: d.registrarInstanceId,
      years: d.years,
      nameservers: JSON.stringify(d.nameservers),
      auth_code_enc: d.authCodeEnc,
      amount: d.amount.toString(),
      status: 'pending',
      operation_id: `hw-${d.action}-${crypto.randomUUID()}`,
      domain_id: d.domainId,
      last_error: null,
      created_at: now,
      updated_at: now,
    });
    const verb = d.action === 'register' ? 'Registration' : d.action === 'transfer' ? 'Transfer' : 'Renewal';
    await tx('order_lines').insert({
      order_id: orderId,
      item_id: null,
      position: linePosition + i + 1,
      kind: 'domain',
      description: `${verb} of ${d.name}, ${d.years} year${d.years === 1 ? '' : 's'}`.slice(0, 255),
      resource_id: null,
      quantity: 1,
      unit_price: d.amount.toString(),
      amount: d.amount.toString(),
    });
  }
}

/** The domain items of orders, for their views. */
export async function domainItemsOf(conn: Conn, orderIds: number[]): Promise<Map<number, OrderDomain[]>> {
  const rows = (await conn('order_domains').whereIn('order_id', orderIds).orderBy([{ column: 'order_id' }, { column: 'position' }])) as OrderDomainRow[];
  const by = new Map<number, OrderDomain[]>();
  for (const r of rows) {
    const list = by.get(toNumber(r.order_id)) ?? [];
    list.push({
      position: toNumber(r.position),
      itemId: toOptionalNumber(r.item_id),
      action: r.action,
      name: r.name,
      years: toNumber(r.years),
      nameservers: JSON.parse(r.nameservers) as string[],
      amount: BigInt(String(r.amount)),
      status: r.status,
      domainId: toOptionalNumber(r.domain_id),
      lastError: r.last_error,
    });
    by.set(toNumber(r.order_id), list);
  }
  return by;
}

// ---- the saga's domain phase ----

const done = (result?: unknown): TaskOutcome => ({ status: 'done', result });
const clip = (s: string, n = 2000) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);

async function rowsOf(conn: Conn, orderId: number): Promise<OrderDomainRow[]> {
  return (await conn('order_domains').where({ order_id: orderId }).orderBy('position')) as OrderDomainRow[];
}

async function enqueueDomain(ctx: Ctx, tx: Tx, order: OrderRow, row: OrderDomainRow, kind: typeof SAGA_DOMAIN | typeof SAGA_DOMAIN_UNDO): Promise<void> {
  await ctx.svc.tasks.enqueue(tx, {
    kind,
    queue: ORDERS_QUEUE,
    // action: what ListTasks shows (ProvisioningService TaskAction).
    payload: { orderId: toNumber(order.id), domainItemId: toNumber(row.id), name: row.name, action: kind === SAGA_DOMAIN ? `${row.action}_domain` : 'terminate' },
    accountId: toNumber(order.account_id),
    objectType: 'order',
    objectId: toNumber(order.id),
    maxAttempts: ctx.opts.sagaMaxAttempts,
    dedupeKey: `saga:${toNumber(order.id)}:domain:${toNumber(row.id)}:${kind === SAGA_DOMAIN ? 'provision' : 'undo'}`,
  });
}

/** Starts the first pending domain item of the order, in the caller's transaction; false when there is none. */
export async function startDomains(ctx: Ctx, tx: Tx, order: OrderRow): Promise<boolean> {
  const next = (await rowsOf(tx, toNumber(order.id))).find((r) => r.status === 'pending');
  if (!next) return false;
  await enqueueDomain(ctx, tx, order, next, SAGA_DOMAIN);
  return true;
}

/** Hosting failed before any domain was touched: every domain item of the order is skipped. */
export async function skipDomains(ctx: Ctx, tx: Tx, orderId: number, reason: string): Promise<void> {
  await tx('order_domains')
    .where({ order_id: orderId, status: 'pending' })
    .update({ status: 'skipped', last_error: clip(`Not done: ${reason}`), updated_at: ctx.deps.clock.now().getTime() });
}

/** What the saga hands the domain phase: how to finish a fully provisioned order and how to undo its hosting. */
export interface DomainPhaseHooks {
  /** All items done: subscriptions active, the order's success (in the caller's transaction). */
  complete(ctx: Ctx, tx: Tx, order: OrderRow): Promise<void>;
  /** The hosting items undone (compensate rows), then saga.finish (in the caller's transaction). */
  undoHosting(ctx: Ctx, tx: Tx, order: OrderRow): Promise<void>;
}

interface DomainTarget {
  order: OrderRow;
  row: OrderDomainRow;
}

async function loadDomainTarget(ctx: Ctx, task: Task, statuses: string[]): Promise<DomainTarget | null> {
  const { db } = ctx.deps;
  const row = (await db('order_domains').where({ id: toNumber(task.payload.domainItemId), order_id: toNumber(task.payload.orderId) }).first()) as OrderDomainRow | undefined;
  if (!row || !statuses.includes(row.status)) return null;
  const order = await loadOrder(db, toNumber(row.order_id));
  if (!order) return null;
  const def = await loadWorkflowDefinition(db, toNumber(order.workflow_id));
  if (actionOf(def, order.step) !== 'provision') return null;
  return { order, row };
}

async function registrarOf(ctx: Ctx, instanceId: number): Promise<Registrar | Outcome<never>> {
  try {
    const row = (await ctx.deps.db('plugin_instances').where({ id: instanceId }).first('name', 'status')) as { name: string; status: string } | undefined;
    if (row && row.status !== 'active') return { status: 'failure', retryable: true, message: `Registrar instance '${row.name}' is disabled.`, code: 'REGISTRAR_DISABLED' };
    return await ctx.svc.pluginInstances.instantiate<Registrar>(instanceId);
  } catch (e) {
    const missing = isAppError(e) && e.code === 'NOT_FOUND';
    return { status: 'failure', retryable: !missing, message: isAppError(e) ? e.message : safeErrorMessage(e), code: missing ? 'REGISTRAR_NOT_FOUND' : 'REGISTRAR_UNAVAILABLE' };
  }
}

async function guarded<T>(f: () => Promise<Outcome<T>>): Promise<Outcome<T>> {
  try {
    return await f();
  } catch (e) {
    return { status: 'failure', retryable: true, message: `The registrar failed: ${safeErrorMessage(e)}`, code: 'PLUGIN_ERROR' };
  }
}

const isoOrNull = (v: unknown) => (v === null || v === undefined ? undefined : new Date(toNumber(v)).toISOString());
const dateOf = (iso: string | undefined) => (iso && !Number.isNaN(Date.parse(iso)) ? new Date(iso) : null);
const exhausted = (task: Task, tc: TaskContext) => tc.attempt >= task.maxAttempts;

function domainsService(ctx: Ctx): DomainsService {
  return new DomainsService(ctx.deps, { tlds: new TldCatalogService(ctx.deps), pluginInstances: ctx.svc.pluginInstances as PluginInstancesService, ledger: ctx.ledger });
}

type RegistrarAnswer = Outcome<{ expiresAt?: string; createdAt?: string }>;

/**
 * Registers, transfers or renews the item's name at its registrar under the operation id stored on the row: the
 * first call and every later one (a retry, the late-completion sweep) are the same operation, which the registrar
 * performs once and answers again with its outcome (or pending while it is still at it).
 */
async function callRegistrar(ctx: Ctx, t: DomainTarget): Promise<RegistrarAnswer> {
  const { row } = t;
  const registrar = await registrarOf(ctx, toNumber(row.registrar_instance_id));
  if ('status' in registrar) return registrar;
  if (row.action === 'register') {
    const contacts = { registrant: await registrantOf(ctx.deps.db, toNumber(t.order.account_id)) };
    return guarded(() => registrar.register({ operationId: row.operation_id, name: row.name, years: toNumber(row.years), nameservers: JSON.parse(row.nameservers) as string[], contacts }));
  }
  if (row.action === 'transfer') {
    const authCode = row.auth_code_enc ? ctx.deps.secrets.open(row.auth_code_enc) : '';
    return guarded(() => registrar.transfer({ operationId: row.operation_id, name: row.name, authCode, years: toNumber(row.years) }));
  }
  const domain = (await ctx.deps.db('domains').where({ id: row.domain_id }).first('expires_at')) as { expires_at: unknown } | undefined;
  return guarded(() => registrar.renew({ operationId: row.operation_id, name: row.name, years: toNumber(row.years), currentExpiresAt: isoOrNull(domain?.expires_at) }));
}

const pendingNote = (outcome: RegistrarAnswer) => (outcome.status === 'pending' ? `Pending: ${outcome.message ?? 'the registrar will finish later.'}` : `Retrying: ${(outcome as { message: string }).message}`);
const pastTense = (row: OrderDomainRow) => (row.action === 'register' ? 'registered' : row.action === 'transfer' ? 'transferred' : 'renewed');

/** saga.domain_item {orderId, domainItemId}: registers, transfers or renews the name at its TLD's registrar. */
export async function provisionDomainItem(ctx: Ctx, hooks: DomainPhaseHooks, task: Task, tc: TaskContext): Promise<TaskOutcome> {
  const t = await loadDomainTarget(ctx, task, ['pending', 'running']);
  if (!t) return done({ skipped: true });
  const { row } = t;
  const outcome = await callRegistrar(ctx, t);
  // A transfer the registry accepted finishes later: the domain is held as transfer_pending (polled elsewhere).
  if (outcome.status === 'success' || (outcome.status === 'pending' && row.action === 'transfer')) return domainDone(ctx, hooks, t, outcome);
  if ((outcome.status === 'pending' || outcome.retryable) && !exhausted(task, tc)) {
    const note = pendingNote(outcome);
    await writeTx(ctx.deps, async (tx) => {
      await tx('order_domains').where({ id: row.id }).whereIn('status', ['pending', 'running']).update({ status: 'running', last_error: clip(note), updated_at: ctx.deps.clock.now().getTime() });
    });
    return { status: 'retry', error: note, retryable: true };
  }
  // The registrar accepted the registration or renewal and is still at it: the late-completion sweep takes it over.
  if (outcome.status === 'pending') return handOverDomainLate(ctx, t, task);
  return domainFailed(ctx, hooks, t, clip(`Domain ${row.name} could not be ${pastTense(row)}: the registrar refused it${outcome.code ? ` (${outcome.code})` : ''}: ${outcome.message}`));
}

/** The late-completion sweep of a domain item whose registrar still answered pending at the task's last attempt. */
export const SAGA_DOMAIN_LATE = 'saga.domain_late_completion';

/**
 * The row stays `running` (the order waits at its provision step) with a note, and a late-completion task asks the
 * registrar again with the row's operation id on the shared schedule (jobs/late-completion.ts), in one transaction.
 */
async function handOverDomainLate(ctx: Ctx, t: DomainTarget, task: Task): Promise<TaskOutcome> {
  const { row } = t;
  const note = clip(`Still pending after ${task.maxAttempts} attempts; the late-completion sweep asks the registrar again later.`);
  await writeTx(ctx.deps, async (tx) => {
    const order = await lockedOpen(tx, t, ['pending', 'running']);
    if (!order) return;
    await tx('order_domains').where({ id: row.id }).update({ status: 'running', last_error: note, updated_at: ctx.deps.clock.now().getTime() });
    await ctx.svc.tasks.enqueue(tx, {
      kind: SAGA_DOMAIN_LATE,
      queue: ORDERS_QUEUE,
      payload: { orderId: toNumber(order.id), domainItemId: toNumber(row.id), name: row.name, action: `${row.action}_domain`, operationId: row.operation_id, taskId: task.taskId },
      accountId: toNumber(order.account_id),
      objectType: 'order',
      objectId: toNumber(order.id),
      ...lateCompletionSchedule(ctx.deps.clock.now(), row.operation_id),
    });
  });
  return done({ late: true, note });
}

/**
 * saga.domain_late_completion {orderId, domainItemId, operationId}: asks the registrar about the original operation
 * until it is known; then the order goes on exactly as if the first task had heard the answer (domainDone), or the
 * item fails and the order is rolled back (domainFailed) on a refusal or when still pending at the last check.
 */
export async function lateDomainItemCompletion(ctx: Ctx, hooks: DomainPhaseHooks, task: Task, tc: TaskContext): Promise<TaskOutcome> {
  const t = await loadDomainTarget(ctx, task, ['running']);
  if (!t) return done({ skipped: true });
  const { row } = t;
  const outcome = await callRegistrar(ctx, t);
  if (outcome.status === 'success') return domainDone(ctx, hooks, t, outcome);
  if ((outcome.status === 'pending' || outcome.retryable) && !exhausted(task, tc)) return { status: 'retry', error: pendingNote(outcome), retryable: true };
  const why =
    outcome.status === 'pending'
      ? `was still pending after its task's attempts and ${task.maxAttempts} late checks (${outcome.message ?? 'pending'})`
      : `refused it${outcome.code ? ` (${outcome.code})` : ''}: ${outcome.message}`;
  return domainFailed(ctx, hooks, t, clip(`Domain ${row.name} could not be ${pastTense(row)}: the registrar ${why}`));
}

async function lockedOpen(tx: Tx, t: DomainTarget, statuses: string[]): Promise<OrderRow | null> {
  const order = await lockOrder(tx, toNumber(t.order.id));
  if (!order || order.step !== t.order.step) return null;
  const row = (await tx('order_domains').where({ id: t.row.id }).first('status')) as { status: string } | undefined;
  return row && statuses.includes(row.status) ? order : null;
}

async function domainDone(ctx: Ctx, hooks: DomainPhaseHooks, t: DomainTarget, outcome: Outcome<{ expiresAt?: string; createdAt?: string }>): Promise<TaskOutcome> {
  const { row } = t;
  const result = outcome.status === 'success' ? outcome.result : undefined;
  const expiresAt = dateOf(result?.expiresAt);
  let domainId: number | null = toOptionalNumber(row.domain_id);
  let clash: string | null = null;
  await writeTx(ctx.deps, async (tx) => {
    const order = await lockedOpen(tx, t, ['pending', 'running']);
    if (!order) return;
    const held = row.action === 'renew' ? undefined : ((await tx('domains').where({ name: row.name }).whereNotIn('status', ['deleted', 'transferred_away']).first('id', 'order_id')) as { id: number; order_id: unknown } | undefined);
    if (held && toNumber(held.order_id) !== toNumber(order.id)) {
      clash = `Domain ${row.name} was ${row.action === 'register' ? 'registered' : 'transferred'} at the registrar, but domain ${toNumber(held.id)} here already holds the name; an operator must reconcile them.`;
      return;
    }
    const actor = await ctx.actor(tx);
    const now = ctx.deps.clock.now();
    if (row.action === 'renew') {
      const before = (await tx('domains').where({ id: row.domain_id }).first('expires_at', 'account_id')) as { expires_at: unknown; account_id: number } | undefined;
      await tx('domains').where({ id: row.domain_id }).update({ expires_at: expiresAt ? expiresAt.getTime() : before?.expires_at ?? null, status: 'active', updated_at: now.getTime() });
      await recordChange(tx, actor, now, {
        operation: 'RenewDomain',
        objectType: 'domain',
        objectId: toNumber(row.domain_id),
        details: { name: row.name, years: toNumber(row.years), orderId: toNumber(order.id), expiresAt: { before: isoOrNull(before?.expires_at) ?? null, after: expiresAt?.toISOString() ?? null } },
        event: { name: 'domain.renewed', accountId: toNumber(order.account_id), payload: { domainId: toNumber(row.domain_id), name: row.name, years: toNumber(row.years), orderId: toNumber(order.id), expiresAt: expiresAt?.toISOString() ?? null } },
      });
    } else if (held && toNumber(held.order_id) === toNumber(order.id)) {
      domainId = toNumber(held.id); // recorded by an earlier run of this step
    } else {
      const item = row.item_id === null ? undefined : ((await tx('order_items').where({ id: row.item_id }).first('subscription_id')) as { subscription_id: number | null } | undefined);
      domainId = await domainsService(ctx).recordRegisteredDomain(tx, actor, {
        accountId: toNumber(order.account_id),
        name: row.name,
        registrarInstanceId: toNumber(row.registrar_instance_id),
        vendorAccountId: toNumber(order.vendor_id),
        tldId: toNumber(row.tld_id),
        registeredAt: row.action === 'register' ? (dateOf(result?.createdAt) ?? now) : null,
        expiresAt,
        nameservers: JSON.parse(row.nameservers) as string[],
        status: outcome.status === 'success' ? 'active' : 'transfer_pending',
        // The transfer poller (src/domains/lifecycle.ts) asks the registrar about this operation until it ends.
        transferOperationId: outcome.status === 'success' ? null : row.operation_id,
        orderId: toNumber(order.id),
        subscriptionId: toOptionalNumber(item?.subscription_id ?? null),
      });
      // The sealed auth code goes with the domain (transfers); the order keeps none.
      if (row.auth_code_enc) await tx('domains').where({ id: domainId }).update({ auth_code_enc: row.auth_code_enc });
    }
    await tx('order_domains')
      .where({ id: row.id })
      .update({ status: 'done', domain_id: domainId, auth_code_enc: null, last_error: outcome.status === 'pending' ? clip(`Transfer pending: ${outcome.message ?? 'the registry finishes it later.'}`) : null, updated_at: now.getTime() });
    if (!(await startDomains(ctx, tx, order))) await hooks.complete(ctx, tx, order);
  });
  if (clash) return domainFailed(ctx, hooks, t, clash);
  return done({ domainId });
}

async function domainFailed(ctx: Ctx, hooks: DomainPhaseHooks, t: DomainTarget, reason: string): Promise<TaskOutcome> {
  await writeTx(ctx.deps, async (tx) => {
    const order = await lockedOpen(tx, t, ['pending', 'running']);
    if (!order) return;
    const now = ctx.deps.clock.now().getTime();
    await tx('order_domains').where({ id: t.row.id }).update({ status: 'failed', last_error: reason, updated_at: now });
    await skipDomains(ctx, tx, toNumber(order.id), reason);
    // The domains already done are undone, the last one first; then the hosting.
    await tx('order_domains').where({ order_id: order.id, status: 'done' }).update({ status: 'undoing', updated_at: now });
    await nextUndo(ctx, hooks, tx, order);
  });
  return done({ failed: reason });
}

async function nextUndo(ctx: Ctx, hooks: DomainPhaseHooks, tx: Tx, order: OrderRow): Promise<void> {
  const next = (await rowsOf(tx, toNumber(order.id))).filter((r) => r.status === 'undoing').sort((a, b) => b.position - a.position)[0];
  if (next) await enqueueDomain(ctx, tx, order, next, SAGA_DOMAIN_UNDO);
  else await hooks.undoHosting(ctx, tx, order);
}

/**
 * saga.domain_undo {orderId, domainItemId}: deletes a domain the order registered (registries allow it in the add
 * grace period). One the registrar will not delete, or a transfer or renewal (which no registry takes back), is
 * `kept`: the order then goes to manual review instead of failing.
 */
export async function undoDomainItem(ctx: Ctx, hooks: DomainPhaseHooks, task: Task, tc: TaskContext): Promise<TaskOutcome> {
  const t = await loadDomainTarget(ctx, task, ['undoing']);
  if (!t) return done({ skipped: true });
  const { row } = t;
  let outcome: Outcome<unknown>;
  if (row.action !== 'register') {
    outcome = { status: 'failure', retryable: false, message: `a ${row.action === 'transfer' ? 'transfer' : 'renewal'} cannot be taken back at the registry`, code: 'NOT_REVERSIBLE' };
  } else {
    const registrar = await registrarOf(ctx, toNumber(row.registrar_instance_id));
    outcome = 'status' in registrar ? registrar : await guarded(() => registrar.delete({ operationId: `${row.operation_id}-del`, name: row.name }));
  }
  if (outcome.status !== 'success' && (outcome.status === 'pending' || outcome.retryable) && !exhausted(task, tc)) {
    const note = outcome.status === 'pending' ? `Deletion pending: ${outcome.message ?? ''}` : `Retrying the deletion: ${outcome.message}`;
    await ctx.deps.db('order_domains').where({ id: row.id, status: 'undoing' }).update({ last_error: clip(note), updated_at: ctx.deps.clock.now().getTime() });
    return { status: 'retry', error: note, retryable: true };
  }
  const kept =
    outcome.status === 'success'
      ? null
      : clip(`Domain ${row.name} stays registered: the registrar would not delete it${outcome.status === 'failure' && outcome.code ? ` (${outcome.code})` : ''}: ${outcome.status === 'failure' ? outcome.message : 'still pending'}.`);
  await writeTx(ctx.deps, async (tx) => {
    const order = await lockedOpen(tx, t, ['undoing']);
    if (!order) return;
    const now = ctx.deps.clock.now();
    await tx('order_domains').where({ id: row.id }).update({ status: kept ? 'kept' : 'undone', last_error: kept, updated_at: now.getTime() });
    if (!kept && row.domain_id !== null) {
      await tx('domains').where({ id: row.domain_id }).update({ status: 'deleted', updated_at: now.getTime() });
      await recordChange(tx, await ctx.actor(tx), now, {
        operation: 'DeleteDomain',
        objectType: 'domain',
        objectId: toNumber(row.domain_id),
        details: { name: row.name, orderId: toNumber(order.id), reason: 'order rolled back' },
        event: { name: 'domain.deleted', accountId: toNumber(order.account_id), payload: { domainId: toNumber(row.domain_id), name: row.name, orderId: toNumber(order.id), reason: 'order rolled back' } },
      });
    }
    await nextUndo(ctx, hooks, tx, order);
  });
  return done(kept ? { kept } : { deleted: row.name });
}

/** The reasons saga.finish reports for the domain phase: the refusal, and each domain kept registered. */
export async function domainOutcome(conn: Conn, orderId: number): Promise<{ failed: string | null; kept: string[] }> {
  const rows = await rowsOf(conn, orderId);
  return {
    failed: rows.find((r) => r.status === 'failed')?.last_error ?? null,
    kept: rows.filter((r) => r.status === 'kept').map((r) => r.last_error ?? `Domain ${r.name} stays registered.`),
  };
}

/** The order goes to manual review (status HL, on_hold) with the reason, at its provision step. */
export async function holdForReview(ctx: Ctx, tx: Tx, order: OrderRow, reason: string): Promise<boolean> {
  const locked = await lockOrder(tx, toNumber(order.id));
  if (!locked || locked.step !== order.step || locked.status === 'HL') return false;
  const now = ctx.deps.clock.now();
  const text = reason.slice(0, 1024);
  await tx('orders').where({ id: order.id }).update({ status: 'HL', failure_reason: text, updated_at: now.getTime() });
  const actor = await ctx.actor(tx);
  await tx('order_history').insert({ order_id: order.id, status: 'HL', step: order.step, outcome: 'manual_review', actor_user_id: actor.userId, comment: text, at: now.getTime() });
  await recordChange(tx, actor, now, {
    operation: 'order.manual_review',
    objectType: 'order',
    objectId: toNumber(order.id),
    details: { step: order.step, status: 'HL', reason: text },
    event: {
      name: 'order.manual_review',
      accountId: toNumber(order.account_id),
      payload: { orderId: toNumber(order.id), accountId: toNumber(order.account_id), vendorAccountId: toNumber(order.vendor_id), step: order.step, status: 'HL', reason: text },
    },
  });
  return true;
}
