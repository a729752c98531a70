import { recordChange } from '../audit/record-change';
import { ancestorIds } from '../accounts/scope';
import { systemActor, type Actor, type Deps } from '../context';
import { isSqlite, toBigInt, toNumber, type Conn, type Tx } from '../db/knex';
import { writeTx } from '../db/transaction';
import { isAppError } from '../domain/errors';
import type { Outcome as StepOutcome, StepAction, WorkflowDefinition } from '../domain/workflow';
import type { CatalogService, Plan, ServiceTemplate } from '../catalog/catalog-service';
import { ledgerWithoutListeners, type OrderLedger } from '../billing/documents-service';
import type { FraudService } from '../fraud/fraud-service';
import type { TaskQueue } from '../jobs/task-queue';
import type { PaymentsService } from '../payments/payments-service';
import type { PluginInstancesService } from '../plugins/instances-service';
import type { FraudScreen } from '../plugins/sdk';
import { loadWorkflowDefinition, transition } from './transitions';
import { invoicePaidForOrder } from '../billing/run/renewal-orders';
import type { OrderRow as FullOrderRow } from './orders-service';

/**
 * Shared machinery of the order engine (engine.ts) and the provisioning saga (saga.ts), and the actions of the
 * order's automatic workflow steps. Rule everywhere: no database transaction is open across a gate, gateway or
 * fraud screen call; each state change commits together with the task that carries the order on.
 */

/** What the subscriptions context does for the saga, each in the caller's transaction. */
export interface SubscriptionHooks {
  /** Creates the (not yet provisioned) subscription of an order item; returns its id. */
  createForItem(tx: Tx, actor: Actor, order: OrderRow, item: OrderItemRow): Promise<number>;
  /** The gate provisioned the service: its reference is kept, the service runs. */
  setProvisioned(tx: Tx, actor: Actor, subscriptionId: number, reference: string): Promise<void>;
  /** Every item of the order is provisioned: the subscription becomes active. */
  markProvisioned(tx: Tx, actor: Actor, subscriptionId: number): Promise<void>;
  /** Undone by the saga (or never provisioned): the subscription is removed. */
  markRemoved(tx: Tx, actor: Actor, subscriptionId: number, reason: string): Promise<void>;
}

/** The services the engine uses; the optional ones degrade as documented on each step. */
export interface EngineServices {
  tasks: TaskQueue;
  pluginInstances: Pick<PluginInstancesService, 'resolveGate' | 'instantiate'>;
  /** Without it, an order with a total above 0 is declined at its charge step. */
  payments?: Pick<PaymentsService, 'charge' | 'get' | 'void' | 'refund'>;
  /** Without it, fraud screening passes. */
  fraud?: Pick<FraudService, 'screen'>;
  /** Without it, sqlSubscriptions (below) keeps the subscriptions. */
  subscriptions?: SubscriptionHooks;
  /**
   * The billing documents (services.documents): a charged order's invoice and payment, their reversal, order
   * credits. Without it the same documents are written by a ledger without invoice-paid listeners.
   */
  documents?: OrderLedger;
}

export interface EngineOptions {
  /** Attempts of each saga task (gate calls answering pending or failing retryably count one each). */
  sagaMaxAttempts?: number;
}

/** The orders row as the engine reads it (the orders service owns the table's shape). */
export type OrderRow = Pick<
  FullOrderRow,
  'id' | 'order_number' | 'vendor_id' | 'account_id' | 'type' | 'status' | 'workflow_id' | 'step' | 'currency' | 'total' | 'pay_tool_id' | 'payment_id' | 'ip_address' | 'failure_reason'
>;

export interface OrderItemRow {
  id: number;
  order_id: number;
  position: number;
  plan_id: number;
  period_id: number;
  parameters: string;
  resources: string;
  subscription_id: number | null;
}

export interface Ctx {
  deps: Deps;
  svc: EngineServices;
  subs: SubscriptionHooks;
  opts: Required<EngineOptions>;
  /** Pass the transaction when inside one (SQLite has a single connection). */
  actor(conn?: Conn): Promise<Actor>;
  /** Where orders' invoices, payments, refunds and credit memos are written. */
  ledger: OrderLedger;
}

/** The system acting through the job channel at the provider's level. */
export function makeCtx(deps: Deps, svc: EngineServices, opts: EngineOptions = {}): Ctx {
  let cached: Actor | undefined;
  return {
    deps,
    svc,
    subs: svc.subscriptions ?? sqlSubscriptions(deps),
    ledger: svc.documents ?? ledgerWithoutListeners(),
    opts: { sagaMaxAttempts: opts.sagaMaxAttempts ?? 10 },
    async actor(conn: Conn = deps.db) {
      if (!cached) {
        const row = (await conn('accounts').whereNull('vendor_id').andWhere({ type: 'provider' }).orderBy('id').first('id', 'path')) as { id: number; path: string } | undefined;
        if (!row) throw new Error('The provider account does not exist yet; start the server once to create it.');
        cached = systemActor({ id: toNumber(row.id), path: row.path }, 'job');
      }
      return cached;
    },
  };
}

export { writeTx };

/** The order, locked for the transaction on MariaDB (every saga change of an order is serialised by it). */
export async function lockOrder(tx: Tx, orderId: number): Promise<OrderRow | undefined> {
  const q = tx('orders').where({ id: orderId }).first();
  return (await (isSqlite(tx) ? q : q.forUpdate())) as OrderRow | undefined;
}

export async function loadOrder(conn: Conn, orderId: number): Promise<OrderRow | undefined> {
  return (await conn('orders').where({ id: orderId }).first()) as OrderRow | undefined;
}

export function actionOf(def: WorkflowDefinition, step: string): StepAction | undefined {
  return def.steps[step]?.action;
}

/**
 * Moves the order on from `step` by `outcome` if it is still there (a repeated task finds it moved: no-op), as the
 * system unless `by` (an operator settling a held order) is given.
 */
export async function transitionIfAt(ctx: Ctx, tx: Tx, orderId: number, step: string, outcome: StepOutcome, comment: string, by?: Actor): Promise<boolean> {
  const order = await lockOrder(tx, orderId);
  if (!order || order.step !== step) return false;
  await transition(tx, ctx.deps, ctx.svc.tasks, order, outcome, by ?? (await ctx.actor(tx)), comment);
  return true;
}

// ---- the automatic steps' actions (not provision: saga.ts) ----

/** fraud_screen: the vendor's fraud instance (its own, else its nearest ancestor's); none configured passes. */
export async function runFraudScreen(ctx: Ctx, order: OrderRow): Promise<{ outcome: StepOutcome; comment: string }> {
  const { db } = ctx.deps;
  // A screening recorded by an earlier attempt of this step stands (the step is not screened twice).
  const earlier = (await db('fraud_checks').where({ order_id: order.id }).orderBy('id', 'desc').first('verdict', 'reasons')) as { verdict: StepOutcome; reasons: string } | undefined;
  if (earlier) return { outcome: earlier.verdict, comment: (JSON.parse(earlier.reasons) as string[]).join('; ') };
  if (!ctx.svc.fraud) return { outcome: 'pass', comment: 'No fraud screening is configured.' };
  const vendor = (await db('accounts').where({ id: order.vendor_id }).first('id', 'path')) as { id: number; path: string } | undefined;
  const chain = vendor ? [toNumber(vendor.id), ...ancestorIds(vendor.path)] : [toNumber(order.vendor_id)];
  const rows = (await db('plugin_instances').whereIn('vendor_id', chain).andWhere({ kind: 'fraud', status: 'active' }).orderBy('id')) as { id: number; vendor_id: number; name: string }[];
  const instance = chain.map((id) => rows.find((r) => toNumber(r.vendor_id) === id)).find((r) => r !== undefined);
  if (!instance) return { outcome: 'pass', comment: 'No fraud screen instance is configured for the vendor.' };
  let screen: FraudScreen;
  try {
    screen = await ctx.svc.pluginInstances.instantiate<FraudScreen>(toNumber(instance.id));
  } catch (e) {
    // Like a screen that fails (FraudService): the order waits for an operator rather than going on unscreened.
    if (!isAppError(e)) throw e;
    return { outcome: 'suspect', comment: `Fraud screen '${instance.name}' cannot run (${e.message}); an operator should review the order.` };
  }
  const contact = (await db('account_contacts').where({ account_id: order.account_id }).orderByRaw("CASE kind WHEN 'billing' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END").first('email')) as { email: string } | undefined;
  const check = await ctx.svc.fraud.screen(await ctx.actor(), { instanceName: instance.name, screen }, {
    orderId: toNumber(order.id),
    accountId: toNumber(order.account_id),
    amount: toBigInt(order.total),
    currency: order.currency,
    email: contact?.email ?? '',
    ipAddress: order.ip_address ?? undefined,
  });
  return { outcome: check.verdict, comment: check.reasons.join('; ') };
}

/**
 * charge_payment: a total of 0 succeeds; otherwise the order's pay tool is charged through its gateway under a
 * key derived from the order, so a repeated step answers the first payment and never charges twice.
 */
export async function runCharge(ctx: Ctx, order: OrderRow): Promise<{ outcome: StepOutcome; comment: string; paymentId?: number; waiting?: boolean }> {
  // A renewal order of the billing run is paid by its invoice (auto-pay, any payment or credit), never charged here.
  const billed = await invoicePaidForOrder(ctx.deps.db, toNumber(order.id));
  if (billed) {
    if (billed.paid) return { outcome: 'success', comment: `Invoice ${billed.numbers.join(', ')} paid.` };
    return { outcome: 'success', comment: '', waiting: true };
  }
  const total = toBigInt(order.total);
  // A negative total (a credit or refund the order gives back) charges nothing either.
  if (total <= 0n) return { outcome: 'success', comment: 'Nothing to charge.' };
  const payments = ctx.svc.payments;
  if (!payments) return { outcome: 'declined', comment: 'No payment service is configured to charge the order.' };
  const actor = await ctx.actor();
  let payment;
  if (order.payment_id !== null && order.payment_id !== undefined) {
    payment = await payments.get(actor, toNumber(order.payment_id));
  } else {
    const payToolId =
      order.pay_tool_id ??
      ((await ctx.deps.db('pay_tools').where({ account_id: order.account_id }).orderBy([{ column: 'is_default', order: 'desc' }, { column: 'id' }]).first('id')) as { id: number } | undefined)?.id ??
      null;
    if (payToolId === null) return { outcome: 'declined', comment: 'The order has no pay tool and the account has none stored.' };
    try {
      payment = await payments.charge(actor, {
        accountId: toNumber(order.account_id),
        orderId: toNumber(order.id),
        amount: total,
        currency: order.currency,
        payTool: { payToolId: toNumber(payToolId) },
        description: `Order ${order.order_number}`,
        idempotencyKey: `order-${toNumber(order.id)}-charge`,
      });
    } catch (e) {
      // A refused request (bad pay tool, ...) declines the order; anything else is retried by the task.
      if (isAppError(e) && e.code !== 'UNAVAILABLE' && e.code !== 'INTERNAL') return { outcome: 'declined', comment: e.message };
      throw e;
    }
  }
  const id = payment.paymentId;
  switch (payment.status) {
    case 'success':
      return { outcome: 'success', comment: `Payment ${id} succeeded.`, paymentId: id };
    case 'pending':
    case 'unknown':
      return { outcome: 'unknown', comment: `Payment ${id} is ${payment.status}: the gateway's answer is not known yet.`, paymentId: id };
    default:
      return { outcome: 'declined', comment: `Payment ${id} was ${payment.status}${payment.message ? `: ${payment.message}` : ''}.`, paymentId: id };
  }
}

/** Runs a non-provision automatic step and moves the order on by its outcome (charge keeps the payment id). */
export async function runSimpleStep(ctx: Ctx, order: OrderRow, action: StepAction): Promise<void> {
  let result: { outcome: StepOutcome; comment: string; paymentId?: number; waiting?: boolean };
  if (action === 'fraud_screen') result = await runFraudScreen(ctx, order);
  else if (action === 'charge_payment') result = await runCharge(ctx, order);
  else result = { outcome: 'done', comment: '' };
  // Waiting for its invoice to be paid: the invoice-paid listener moves the order on (renewal-orders.ts).
  if (result.waiting) return;
  await writeTx(ctx.deps, async (tx) => {
    if (result.paymentId !== undefined) await tx('orders').where({ id: order.id, step: order.step }).update({ payment_id: result.paymentId });
    // The charge into the ledger (invoice + payment document), with the transition: a repeated step finds the order
    // moved on and writes nothing twice.
    if (action === 'charge_payment' && result.outcome === 'success' && result.paymentId !== undefined) {
      const locked = await lockOrder(tx, toNumber(order.id));
      if (locked && locked.step === order.step) await ctx.ledger.recordOrderChargeTx(tx, await ctx.actor(tx), ctx.deps.clock.now(), toNumber(order.id), result.paymentId);
    }
    await transitionIfAt(ctx, tx, toNumber(order.id), order.step, result.outcome, result.comment);
  });
}

// ---- subscriptions kept directly (until the subscriptions service is wired in) ----

const SUB = { ordered: 10, active: 30, terminated: 60 } as const;
const SERVICE = { notProvisioned: 10, provisioning: 20, running: 50, removed: 90 } as const;

function addPeriod(start: number, duration: number, unit: string): number | null {
  const d = new Date(start);
  switch (unit) {
    case 'hour':
      return start + duration * 3_600_000;
    case 'day':
      return start + duration * 86_400_000;
    case 'month':
      d.setUTCMonth(d.getUTCMonth() + duration);
      return d.getTime();
    case 'year':
      d.setUTCFullYear(d.getUTCFullYear() + duration);
      return d.getTime();
    default:
      return null;
  }
}

async function subscriptionEvent(tx: Tx, actor: Actor, at: Date, subscriptionId: number, name: string, operation: string, details: Record<string, unknown>): Promise<void> {
  const row = (await tx('subscriptions').where({ id: subscriptionId }).first('account_id', 'order_id', 'status', 'service_status')) as
    | { account_id: number; order_id: number | null; status: number; service_status: number }
    | undefined;
  await recordChange(tx, actor, at, {
    operation,
    objectType: 'subscription',
    objectId: subscriptionId,
    details,
    event: {
      name,
      accountId: row ? toNumber(row.account_id) : null,
      payload: { subscriptionId, orderId: row?.order_id === null || row?.order_id === undefined ? null : toNumber(row.order_id), status: row ? toNumber(row.status) : null, serviceStatus: row ? toNumber(row.service_status) : null, ...details },
    },
  });
}

/** Subscriptions written with SQL in the caller's transaction: the saga's fallback when no SubscriptionHooks are given. */
export function sqlSubscriptions(deps: Deps): SubscriptionHooks {
  return {
    async createForItem(tx, actor, order, item) {
      const plan = (await tx('plans as p').join('service_templates as t', 't.id', 'p.template_id').where('p.id', item.plan_id).first('p.name', 't.service_gate', 'p.vendor_id')) as
        | { name: string; service_gate: string; vendor_id: number }
        | undefined;
      if (!plan) throw new Error(`Plan ${item.plan_id} of order item ${item.id} does not exist.`);
      const now = deps.clock.now();
      const [id] = (await tx('subscriptions').insert({
        account_id: order.account_id,
        vendor_id: order.vendor_id,
        plan_id: item.plan_id,
        period_id: item.period_id,
        order_id: order.id,
        name: plan.name,
        status: SUB.ordered,
        service_status: SERVICE.notProvisioned,
        service_gate: plan.service_gate,
        gate_reference: null,
        parameters: item.parameters,
        created_at: now.getTime(),
        updated_at: now.getTime(),
      })) as number[];
      const subscriptionId = toNumber(id);
      const ordered = new Map<number, number>();
      for (const r of JSON.parse(item.resources || '[]') as { resourceId: number; quantity: number | string }[]) ordered.set(toNumber(r.resourceId), Number(r.quantity));
      const rates = (await tx('resource_rates').where({ plan_id: item.plan_id })) as { resource_id: number; included: unknown }[];
      for (const rate of rates) {
        const included = Number(rate.included);
        const additional = ordered.get(toNumber(rate.resource_id)) ?? 0;
        await tx('subscription_resources').insert({ subscription_id: subscriptionId, resource_id: rate.resource_id, included, additional, limit_value: included + additional, usage: 0 });
      }
      await subscriptionEvent(tx, actor, now, subscriptionId, 'subscription.created', 'CreateSubscription', { planId: toNumber(item.plan_id), itemId: toNumber(item.id) });
      return subscriptionId;
    },
    async setProvisioned(tx, actor, subscriptionId, reference) {
      const now = deps.clock.now();
      await tx('subscriptions').where({ id: subscriptionId }).update({ service_status: SERVICE.running, gate_reference: reference, updated_at: now.getTime() });
      await subscriptionEvent(tx, actor, now, subscriptionId, 'subscription.service_provisioned', 'ProvisionSubscription', { reference });
    },
    async markProvisioned(tx, actor, subscriptionId) {
      const now = deps.clock.now();
      const row = (await tx('subscriptions as s').join('plan_periods as pp', 'pp.id', 's.period_id').where('s.id', subscriptionId).first('pp.duration', 'pp.unit')) as { duration: number; unit: string } | undefined;
      const start = now.getTime();
      const expiration = row ? addPeriod(start, toNumber(row.duration), row.unit) : null;
      await tx('subscriptions').where({ id: subscriptionId }).update({ status: SUB.active, service_status: SERVICE.running, start_date: start, expiration_date: expiration, next_bill_date: expiration, updated_at: start });
      await subscriptionEvent(tx, actor, now, subscriptionId, 'subscription.activated', 'ActivateSubscription', {});
    },
    async markRemoved(tx, actor, subscriptionId, reason) {
      const now = deps.clock.now();
      await tx('subscriptions').where({ id: subscriptionId }).update({ status: SUB.terminated, service_status: SERVICE.removed, updated_at: now.getTime() });
      await subscriptionEvent(tx, actor, now, subscriptionId, 'subscription.terminated', 'TerminateSubscription', { reason });
    },
  };
}

/** What the saga needs of SubscriptionsService (src/subscriptions/subscriptions-service.ts). */
export interface SubscriptionsServiceLike {
  createForItem(tx: Tx, order: { id: number; account_id: number; vendor_id: number }, item: { id: number; period_id: number; parameters: string; resources: string }, plan: Plan, template: ServiceTemplate): Promise<number>;
  markProvisioned(tx: Tx, subscriptionId: number, reference: string | null, now: Date): Promise<void>;
  markRemoved(tx: Tx, subscriptionId: number, now: Date): Promise<void>;
  setServiceStatus(tx: Tx, subscriptionId: number, serviceStatus: number): Promise<void>;
}

const CATALOG_READER: Actor = { userId: null, accountId: 0, accountPath: '/', accountType: 'provider', roles: ['admin'], channel: 'system' };

/** SubscriptionHooks backed by the subscriptions service (and the catalog for the plan and its template). */
export function subscriptionHooks(deps: Deps, subscriptions: SubscriptionsServiceLike, catalog: Pick<CatalogService, 'getPlanForOrder' | 'getTemplate'>): SubscriptionHooks {
  return {
    async createForItem(tx, _actor, order, item) {
      const plan = await catalog.getPlanForOrder(tx, toNumber(item.plan_id));
      if (!plan) throw new Error(`Plan ${item.plan_id} of order item ${item.id} does not exist.`);
      const template = await catalog.getTemplate(CATALOG_READER, plan.templateId, tx);
      return subscriptions.createForItem(tx, { id: toNumber(order.id), account_id: toNumber(order.account_id), vendor_id: toNumber(order.vendor_id) }, { id: toNumber(item.id), period_id: toNumber(item.period_id), parameters: item.parameters, resources: item.resources }, plan, template);
    },
    async setProvisioned(tx, _actor, subscriptionId, reference) {
      await tx('subscriptions').where({ id: subscriptionId }).update({ gate_reference: reference });
      await subscriptions.setServiceStatus(tx, subscriptionId, SERVICE.running);
    },
    async markProvisioned(tx, _actor, subscriptionId) {
      const row = (await tx('subscriptions').where({ id: subscriptionId }).first('gate_reference')) as { gate_reference: string | null } | undefined;
      await subscriptions.markProvisioned(tx, subscriptionId, row?.gate_reference ?? null, deps.clock.now());
    },
    async markRemoved(tx, _actor, subscriptionId) {
      await subscriptions.markRemoved(tx, subscriptionId, deps.clock.now());
    },
  };
}

export { loadWorkflowDefinition, SERVICE as SERVICE_STATUS, SUB as SUBSCRIPTION_STATUS };
