import { recordChange } from '../audit/record-change';
import { toBigInt, toNumber, type Tx } from '../db/knex';
import { isAppError } from '../domain/errors';
import type { Task } from '../jobs/task-queue';
import type { TaskContext, TaskOutcome } from '../jobs/worker';
import { callSubscriptionGate, terminatedOrGone } from '../subscriptions/gate-call';
import type { Outcome } from '../plugins/sdk';
import { describeForGate } from '../subscriptions/gate-request';
import { extendSubscriptionByPeriod, isExtended } from '../subscriptions/renewal';
import { addPeriod, type PeriodUnit } from '../domain/period';
import { SERVICE_STATUS, SUBSCRIPTION_STATUS, type SubscriptionRow } from '../subscriptions/subscriptions-service';
import { closeWaitingRenewals, creditClosedRenewals } from '../billing/run/renewal-closing';
import { issueOrderCredit } from './credit-hook';
import { withPaidTax } from '../billing/invoice-share';
import { enqueueFinish } from './saga';
import { actionOf, loadOrder, loadWorkflowDefinition, lockOrder, transitionIfAt, writeTx, type Ctx, type OrderRow } from './step-handlers';
import { amountText, termPayment } from './subscription-orders';
import { ORDERS_QUEUE } from './transitions';
import { orderRefundKey } from '../payments/payment-records';

/**
 * The provision step of orders on existing subscriptions (subscription-orders.ts): one task per order (order.renewal,
 * order.cancellation) applies it. A renewal extends the subscription by a period (and resumes an expired, stopped service); an
 * immediate cancellation terminates the service through its gate (the task's operation id; polled when pending),
 * then refunds or credits; an end-of-term cancellation schedules `subscription.scheduled_cancel` at the
 * expiration date. Each database change commits together with the order's transition, so a repeated task finds
 * the order moved on and does nothing twice; the gate's terminate is skipped once the service is removed.
 */

/** The task kind per order type: order.renewal, order.cancellation (one handler, runLifecycle). */
export const LIFECYCLE_KINDS = { renewal: 'order.renewal', cancellation: 'order.cancellation', change: 'order.change', resource: 'order.resource' } as const;
export const SCHEDULED_CANCEL = 'subscription.scheduled_cancel';
export const SCHEDULED_CHANGE = 'subscription.scheduled_change';

interface ItemRow {
  id: number;
  plan_id: number;
  resources: string;
  target_subscription_id: number | null;
  period_id: number;
  cancel_type: string | null;
  effective: string | null;
  details: string | null;
}

const done = (result?: unknown): TaskOutcome => ({ status: 'done', result });
const clip = (s: string, n = 1000) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);

/** From startSaga, for every order type but sales: the lifecycle task, or a failure for what is not built. */
export async function startLifecycle(ctx: Ctx, tx: Tx, order: OrderRow): Promise<void> {
  const orderId = toNumber(order.id);
  const item = (await tx('order_items').where({ order_id: orderId }).orderBy('position').first()) as ItemRow | undefined;
  if (!item || item.target_subscription_id === null || item.target_subscription_id === undefined) {
    await enqueueFinish(ctx, tx, order, `This ${order.type} order names no subscription to act on; nothing was changed.`);
    return;
  }
  await ctx.svc.tasks.enqueue(tx, {
    kind: LIFECYCLE_KINDS[order.type as keyof typeof LIFECYCLE_KINDS],
    queue: ORDERS_QUEUE,
    payload: { orderId, subscriptionId: toNumber(item.target_subscription_id) },
    accountId: toNumber(order.account_id),
    objectType: 'order',
    objectId: orderId,
    maxAttempts: ctx.opts.sagaMaxAttempts,
    dedupeKey: `lifecycle:${orderId}`,
  });
}

async function itemOf(conn: Tx | Ctx['deps']['db'], orderId: number): Promise<ItemRow | undefined> {
  return (await conn('order_items').where({ order_id: orderId }).orderBy('position').first()) as ItemRow | undefined;
}

async function subOf(conn: Tx | Ctx['deps']['db'], id: number): Promise<SubscriptionRow | undefined> {
  return (await conn('subscriptions').where({ id }).first()) as SubscriptionRow | undefined;
}

/** order.renewal / order.cancellation {orderId, subscriptionId}. */
export async function runLifecycle(ctx: Ctx, task: Task, tc: TaskContext): Promise<TaskOutcome> {
  const { db } = ctx.deps;
  const orderId = toNumber(task.payload.orderId);
  const order = await loadOrder(db, orderId);
  if (!order) return done({ skipped: true });
  const def = await loadWorkflowDefinition(db, toNumber(order.workflow_id));
  if (actionOf(def, order.step) !== 'provision') return done({ skipped: true });
  const item = await itemOf(db, orderId);
  const subId = toNumber(item?.target_subscription_id ?? 0);
  const sub = subId ? await subOf(db, subId) : undefined;
  if (!item || !sub) {
    // Through saga.finish: a charge the order took is given back.
    await writeTx(ctx.deps, async (tx) => {
      const locked = await lockOrder(tx, orderId);
      if (locked && locked.step === order.step) await enqueueFinish(ctx, tx, locked, `Subscription ${subId} of this order no longer exists; nothing was changed.`);
    });
    return done({ failed: true });
  }
  if (order.type === 'renewal') return applyRenewal(ctx, order, item, sub);
  if (order.type === 'cancellation') {
    if (item.effective === 'end_of_term') return scheduleCancellation(ctx, order, sub);
    return applyCancellation(ctx, task, tc, order, item, sub);
  }
  if (order.type === 'change') {
    if (item.effective === 'end_of_term') return scheduleChange(ctx, order, item, sub);
    return applyChange(ctx, task, tc, order, item, sub);
  }
  if (order.type === 'resource') return applyChange(ctx, task, tc, order, item, sub, extraOf(item));
  await writeTx(ctx.deps, (tx) => transitionIfAt(ctx, tx, orderId, order.step, 'failure', `Provisioning ${order.type} orders is not supported yet; no service was changed.`));
  return done({ failed: true });
}

async function applyRenewal(ctx: Ctx, order: OrderRow, item: ItemRow, sub: SubscriptionRow): Promise<TaskOutcome> {
  let result: unknown;
  await writeTx(ctx.deps, async (tx) => {
    const locked = await lockOrder(tx, toNumber(order.id));
    if (!locked || locked.step !== order.step) return;
    const actor = await ctx.actor(tx);
    const now = ctx.deps.clock.now();
    const before = (await subOf(tx, toNumber(sub.id)))!;
    const details = parse(item.details);
    // A billing run's RN order renews the period its invoice billed: extended only from that period's start.
    const billed = typeof details.periodStart === 'string' && typeof details.periodEnd === 'string' ? { from: new Date(details.periodStart), to: new Date(details.periodEnd) } : {};
    const ext = await extendSubscriptionByPeriod(tx, actor, toNumber(sub.id), now, { periodId: toNumber(item.period_id), orderId: toNumber(order.id), ...billed });
    if (!isExtended(ext)) {
      result = { notExtended: ext.skipped };
      if (ext.skipped === 'already_extended') await transitionIfAt(ctx, tx, toNumber(order.id), order.step, 'success', ext.message);
      // Through saga.finish, so that the renewal's charge is voided (or refunded): a subscription terminated or
      // canceled since the order was charged is not renewed, and not paid for either.
      else await enqueueFinish(ctx, tx, locked, ext.message);
      return;
    }
    let resumed = '';
    // An expired subscription whose service was stopped runs again: the resume goes through its gate as a
    // subscription action (its task sets the subscription active and running once the gate has resumed it).
    if (toNumber(before.status) === SUBSCRIPTION_STATUS.expired && toNumber(before.service_status) === SERVICE_STATUS.stopped) {
      await tx('subscriptions').where({ id: sub.id }).update({ status: SUBSCRIPTION_STATUS.expired, service_status: SERVICE_STATUS.starting, updated_at: now.getTime() });
      const taskId = await ctx.svc.tasks.enqueue(tx, {
        kind: 'subscription.resume',
        queue: ORDERS_QUEUE,
        payload: { subscriptionId: toNumber(sub.id), action: 'resume', previousServiceStatus: SERVICE_STATUS.stopped, reason: `Renewed by order ${order.order_number}` },
        accountId: toNumber(sub.account_id),
        objectType: 'subscription',
        objectId: toNumber(sub.id),
      });
      resumed = ` The expired service is being resumed (task ${taskId}).`;
    }
    await tx('order_items').where({ id: item.id }).update({ details: JSON.stringify({ ...details, from: ext.from.toISOString(), to: ext.to.toISOString() }) });
    result = { expirationDate: ext.to.toISOString() };
    await transitionIfAt(ctx, tx, toNumber(order.id), order.step, 'success', `Subscription ${sub.id} renewed until ${ext.to.toISOString()}.${resumed}`);
  });
  return done(result ?? { stale: true });
}

async function scheduleCancellation(ctx: Ctx, order: OrderRow, sub: SubscriptionRow): Promise<TaskOutcome> {
  const at = new Date(toNumber(sub.expiration_date));
  await writeTx(ctx.deps, async (tx) => {
    const locked = await lockOrder(tx, toNumber(order.id));
    if (!locked || locked.step !== order.step) return;
    const taskId = await ctx.svc.tasks.enqueue(tx, {
      kind: SCHEDULED_CANCEL,
      queue: ORDERS_QUEUE,
      payload: { orderId: toNumber(order.id), subscriptionId: toNumber(sub.id), action: 'terminate' },
      accountId: toNumber(sub.account_id),
      objectType: 'subscription',
      objectId: toNumber(sub.id),
      runAt: at,
      maxAttempts: ctx.opts.sagaMaxAttempts,
      dedupeKey: `cancel-at-term:${toNumber(order.id)}`,
    });
    const now = ctx.deps.clock.now();
    await recordChange(tx, await ctx.actor(tx), now, {
      operation: 'ScheduleCancellation',
      objectType: 'subscription',
      objectId: toNumber(sub.id),
      details: { orderId: toNumber(order.id), at: at.toISOString(), taskId },
      event: { name: 'subscription.cancellation_scheduled', accountId: toNumber(sub.account_id), payload: { subscriptionId: toNumber(sub.id), orderId: toNumber(order.id), at: at.toISOString() } },
    });
    // A renewal already billed for the term after this one will not be delivered: closed and credited now, so
    // that dunning does not chase its invoice meanwhile.
    await closeRenewalsOnCancel(ctx, tx, sub, at);
    await transitionIfAt(ctx, tx, toNumber(order.id), order.step, 'success', `Subscription ${sub.id} will be canceled at the end of its term, ${at.toISOString()} (task ${taskId}).`);
  });
  return done({ scheduledFor: at.toISOString() });
}

/** Terminates the service through its gate under `operationId` (polled first on a repeat); removed already, or a gate that has no such service (NOT_FOUND): success. */
async function terminateThroughGate(ctx: Ctx, sub: SubscriptionRow, operationId: string, poll: boolean): Promise<Outcome<unknown>> {
  if (toNumber(sub.service_status) === SERVICE_STATUS.removed) return { status: 'success', result: {} };
  const described = await describeForGate(ctx.deps.db, toNumber(sub.id));
  if (!described) return { status: 'failure', retryable: false, message: `Subscription ${sub.id} has no plan or template to describe it to its gate.` };
  return callSubscriptionGate(ctx.svc.pluginInstances, sub, operationId, poll, async (gate) => terminatedOrGone(await gate.terminate({ ...described.request, operationId })));
}


/**
 * The service is gone for a cancellation: status canceled (70), service removed (90), in the caller's transaction;
 * with it, the subscription's renewal orders still waiting for their invoice are closed and what they billed from
 * `serviceEnd` on is credited (closeRenewalsOnCancel).
 */
async function markCanceled(ctx: Ctx, tx: Tx, sub: SubscriptionRow, orderId: number | null, reason: string, serviceEnd: Date): Promise<boolean> {
  const row = (await subOf(tx, toNumber(sub.id)))!;
  if (toNumber(row.status) === SUBSCRIPTION_STATUS.canceled) return false;
  const now = ctx.deps.clock.now();
  await tx('subscriptions').where({ id: sub.id }).update({ status: SUBSCRIPTION_STATUS.canceled, service_status: SERVICE_STATUS.removed, next_bill_date: null, updated_at: now.getTime() });
  await recordChange(tx, await ctx.actor(tx), now, {
    operation: 'CancelSubscription',
    objectType: 'subscription',
    objectId: toNumber(sub.id),
    details: { orderId, reason },
    event: { name: 'subscription.canceled', accountId: toNumber(sub.account_id), payload: { subscriptionId: toNumber(sub.id), accountId: toNumber(sub.account_id), orderId, status: SUBSCRIPTION_STATUS.canceled, serviceStatus: SERVICE_STATUS.removed } },
  });
  await closeRenewalsOnCancel(ctx, tx, sub, serviceEnd);
  return true;
}

/**
 * A customer's cancellation closes the subscription's renewal orders waiting for their invoice and credits what
 * they billed for a period from `serviceEnd` on (never delivered), whatever the cancelType: cancelType says what
 * of the money paid is given back, and an unpaid renewal of a period not served was never owed.
 */
async function closeRenewalsOnCancel(ctx: Ctx, tx: Tx, sub: SubscriptionRow, serviceEnd: Date): Promise<void> {
  const actor = await ctx.actor(tx);
  const now = ctx.deps.clock.now();
  const why = `Subscription ${sub.id} was canceled before this renewal's invoice was paid; the renewal from ${serviceEnd.toISOString()} on is not delivered and its charge is credited.`;
  const closed = await closeWaitingRenewals(tx, actor, now, toNumber(sub.id), why);
  if (closed.length) await creditClosedRenewals(tx, ctx.ledger, actor, now, closed, serviceEnd, `subscription ${sub.id} canceled`);
}

async function applyCancellation(ctx: Ctx, task: Task, tc: TaskContext, order: OrderRow, item: ItemRow, sub: SubscriptionRow): Promise<TaskOutcome> {
  const orderId = toNumber(order.id);
  const outcome = await terminateThroughGate(ctx, sub, tc.operationId, tc.attempt > 1);
  const last = tc.attempt >= task.maxAttempts;
  if (outcome.status !== 'success') {
    if ((outcome.status === 'pending' || outcome.retryable) && !last) {
      return { status: 'retry', error: outcome.status === 'pending' ? `Pending: ${outcome.message ?? 'the gate is terminating the service.'}` : `Retrying: ${outcome.message}`, retryable: true };
    }
    const why = outcome.status === 'pending' ? `did not finish terminating it within ${task.maxAttempts} attempts` : `failed: ${outcome.message}`;
    await writeTx(ctx.deps, (tx) => transitionIfAt(ctx, tx, orderId, order.step, 'failure', clip(`Subscription ${sub.id} could not be canceled: service gate '${sub.service_gate}' ${why}. The subscription is unchanged.`)));
    return done({ failed: why });
  }
  const details = parse(item.details);
  await writeTx(ctx.deps, async (tx) => {
    const locked = await lockOrder(tx, orderId);
    if (!locked || locked.step !== order.step) return;
    await markCanceled(ctx, tx, sub, orderId, String(details.reason ?? ''), ctx.deps.clock.now());
  });
  // What the customer gets back, after the service is gone: per payment of the term (cancellationAmount's parts).
  const amount = toBigInt(String(details.amount ?? '0'));
  const parts = cancellationParts(details, amount);
  let note = 'Nothing is given back.';
  const refunded: { paymentId: number; refundPaymentId: number; amount: bigint }[] = [];
  if (amount > 0n && item.cancel_type === 'refund') {
    const payments = ctx.svc.payments;
    const notes: string[] = [];
    const refundPaymentIds: number[] = [];
    for (const part of parts) {
      const paymentId = part.paymentId;
      if (!payments || !paymentId) {
        notes.push(`A refund of ${amountText(part.amount, order.currency)} is due but no payment service or payment is there to refund it: refund it by hand.`);
        continue;
      }
      try {
        // One key per payment (orders placed before there were several keep the one key they were placed with).
        const idempotencyKey = part.legacy ? orderRefundKey(orderId) : orderRefundKey(orderId, paymentId);
        const r = await payments.refund(await ctx.actor(), paymentId, { amount: part.amount, idempotencyKey, reason: `Cancellation ${order.order_number}` });
        if (r.status === 'pending' || r.status === 'unknown') return { status: 'retry', error: `The refund of payment ${paymentId} is ${r.status}.`, retryable: true };
        notes.push(r.status === 'success' ? `Refunded ${amountText(part.amount, order.currency)} of payment ${paymentId} (refund ${r.paymentId}).` : `The refund of payment ${paymentId} was ${r.status}${r.message ? `: ${r.message}` : ''}; refund it by hand.`);
        refundPaymentIds.push(r.paymentId);
        if (r.status === 'success') refunded.push({ paymentId, refundPaymentId: r.paymentId, amount: r.amount });
      } catch (e) {
        // Refused (already refunded meanwhile, ...): the cancellation stands and an operator settles the money.
        // Anything else (the gateway unreachable, ...) is retried by the task.
        if (!isAppError(e) || e.code === 'UNAVAILABLE' || e.code === 'INTERNAL') throw e;
        notes.push(`Payment ${paymentId} could not be refunded (${e.message}); refund it by hand.`);
      }
    }
    if (notes.length) note = notes.join(' ');
    if (refundPaymentIds.length) Object.assign(details, { refundPaymentId: refundPaymentIds[0], refundPaymentIds });
  } else if (amount > 0n && item.cancel_type === 'credit') {
    note = `A credit of ${amountText(amount, order.currency)} is due to the account.`;
  }
  await writeTx(ctx.deps, async (tx) => {
    const locked = await lockOrder(tx, orderId);
    if (!locked || locked.step !== order.step) return;
    const creditMemoIds: number[] = [];
    const refundDocumentIds: number[] = [];
    for (const one of refunded) {
      // Each refund into the ledger: a credit memo of the invoice its payment paid and a refund document of that payment.
      const docs = await ctx.ledger.refundOnCancellationTx(tx, await ctx.actor(tx), ctx.deps.clock.now(), {
        orderId,
        orderNumber: order.order_number,
        paymentId: one.paymentId,
        refundPaymentId: one.refundPaymentId,
        amount: one.amount,
        reason: `refund on cancellation of subscription ${sub.id}`,
      });
      if (docs) {
        creditMemoIds.push(docs.creditMemoId);
        refundDocumentIds.push(docs.refundDocumentId);
      }
    }
    if (creditMemoIds.length) Object.assign(details, { creditMemoId: creditMemoIds[0], refundDocumentId: refundDocumentIds[0], creditMemoIds, refundDocumentIds });
    if (amount > 0n && item.cancel_type === 'credit') {
      // A credit memo per payment, against the invoice that payment paid (so each carries its own share of tax).
      for (const part of parts) {
        await creditOrderTx(ctx, tx, order, sub, part.amount, `Cancellation of subscription ${sub.id}`, { paymentId: part.paymentId || undefined });
      }
    }
    await tx('order_items').where({ id: item.id }).update({ details: JSON.stringify({ ...details, result: note }) });
    await transitionIfAt(ctx, tx, orderId, order.step, 'success', clip(`Subscription ${sub.id} canceled. ${note}`));
  });
  return done({ canceled: true, note });
}

/** issueOrderCredit for an order on subscription `sub`: `amount` owed to the order's account, its memo against `where`'s invoice. */
async function creditOrderTx(ctx: Ctx, tx: Tx, order: OrderRow, sub: SubscriptionRow, amount: bigint, reason: string, where: { invoiceId?: number; paymentId?: number }): Promise<void> {
  await issueOrderCredit(tx, await ctx.actor(tx), ctx.deps.clock.now(), {
    orderId: toNumber(order.id),
    orderNumber: order.order_number,
    accountId: toNumber(order.account_id),
    vendorAccountId: toNumber(order.vendor_id),
    subscriptionId: toNumber(sub.id),
    amount,
    currency: order.currency,
    reason,
    ...where,
  }, ctx.ledger);
}

/**
 * A cancellation order's amount per payment (its details.refunds, written by CancelSubscription); an order placed
 * before there were several has one payment (details.paymentId) with the whole amount, refunded with the one key
 * `order-N-refund` it may already have used.
 */
function cancellationParts(details: Record<string, unknown>, amount: bigint): { paymentId: number; amount: bigint; legacy: boolean }[] {
  if (Array.isArray(details.refunds)) {
    return (details.refunds as { paymentId: unknown; amount: unknown }[]).map((r) => ({ paymentId: toNumber(r.paymentId ?? 0), amount: toBigInt(String(r.amount ?? '0')), legacy: false })).filter((r) => r.amount > 0n);
  }
  return amount > 0n ? [{ paymentId: toNumber(details.paymentId ?? 0), amount, legacy: true }] : [];
}

/** subscription.scheduled_cancel {orderId, subscriptionId}: the end-of-term cancellation, at the expiration date. */
export async function runScheduledCancel(ctx: Ctx, task: Task, tc: TaskContext): Promise<TaskOutcome> {
  const sub = await subOf(ctx.deps.db, toNumber(task.payload.subscriptionId));
  if (!sub || [SUBSCRIPTION_STATUS.canceled, SUBSCRIPTION_STATUS.terminated].includes(toNumber(sub.status) as 60 | 70)) return done({ skipped: true });
  const outcome = await terminateThroughGate(ctx, sub, tc.operationId, tc.attempt > 1);
  if (outcome.status === 'success') {
    // The service ends at the end of its term: a renewal billed from then on is not delivered.
    const end = sub.expiration_date === null || sub.expiration_date === undefined ? ctx.deps.clock.now() : new Date(Math.min(toNumber(sub.expiration_date), ctx.deps.clock.now().getTime()));
    await writeTx(ctx.deps, (tx) => markCanceled(ctx, tx, sub, toNumber(task.payload.orderId), 'Canceled at the end of its term.', end));
    return done({ canceled: true });
  }
  if ((outcome.status === 'pending' || outcome.retryable) && tc.attempt < task.maxAttempts) {
    return { status: 'retry', error: outcome.status === 'pending' ? `Pending: ${outcome.message ?? 'terminating'}` : `Retrying: ${outcome.message}`, retryable: true };
  }
  return { status: 'retry', error: `Service gate '${sub.service_gate}' could not terminate subscription ${sub.id} at the end of its term: ${outcome.status === 'pending' ? 'still pending' : outcome.message}. Retry the task once the gate is fixed.`, retryable: false };
}

// ---- change: plan and/or period ----

interface NewResource {
  resource_id: number;
  included: number;
  additional: number;
  limit_value: number | null;
  code: string;
}

/** The subscription's resources on the new plan: the new template's limits and plan's included amounts; what was bought above the plan is kept. */
async function resourcesOnPlan(conn: Tx | Ctx['deps']['db'], sub: SubscriptionRow, planId: number, extra: Map<number, number> = new Map()): Promise<NewResource[]> {
  const template = (await conn('template_resources as tr')
    .join('plans as p', 'p.template_id', 'tr.template_id')
    .join('resources as r', 'r.id', 'tr.resource_id')
    .where('p.id', planId)
    .select('tr.resource_id', 'tr.limit_value', 'r.code', 'r.name')) as { resource_id: number; limit_value: unknown; code: string | null; name: string }[];
  const rates = (await conn('resource_rates').where({ plan_id: planId }).select('resource_id', 'included')) as { resource_id: number; included: unknown }[];
  const current = (await conn('subscription_resources').where({ subscription_id: sub.id }).select('resource_id', 'additional')) as { resource_id: number; additional: unknown }[];
  return template.map((t) => {
    const included = Number(rates.find((r) => toNumber(r.resource_id) === toNumber(t.resource_id))?.included ?? 0);
    const additional = Number(current.find((c) => toNumber(c.resource_id) === toNumber(t.resource_id))?.additional ?? 0) + (extra.get(toNumber(t.resource_id)) ?? 0);
    const limit = t.limit_value === null ? null : Math.max(Number(t.limit_value), included + additional);
    return { resource_id: toNumber(t.resource_id), included, additional, limit_value: limit, code: t.code || t.name };
  });
}

/** Calls the gate's changeLimits with the new plan's limits under `operationId` (polled first on a repeat). */
async function changeLimitsThroughGate(ctx: Ctx, sub: SubscriptionRow, planId: number, operationId: string, poll: boolean, extra?: Map<number, number>): Promise<Outcome<unknown>> {
  const described = await describeForGate(ctx.deps.db, toNumber(sub.id));
  if (!described) return { status: 'failure', retryable: false, message: `Subscription ${sub.id} has no plan or template to describe it to its gate.` };
  const tmpl = (await ctx.deps.db('plans as p').join('service_templates as t', 't.id', 'p.template_id').where('p.id', planId).first('t.name')) as { name: string } | undefined;
  const limits = (await resourcesOnPlan(ctx.deps.db, sub, planId, extra)).map((r) => ({ resource: r.code, limit: r.limit_value }));
  return callSubscriptionGate(ctx.svc.pluginInstances, sub, operationId, poll, (gate) => gate.changeLimits({ ...described.request, template: tmpl?.name ?? described.request.template, limits, operationId }));
}

/** In the caller's transaction: the subscription is on the new plan and period, with the new resource limits (usage kept). */
async function moveToPlan(ctx: Ctx, tx: Tx, sub: SubscriptionRow, planId: number, periodId: number, newTerm: boolean, orderId: number, extra?: Map<number, number>): Promise<void> {
  const now = ctx.deps.clock.now();
  const resources = await resourcesOnPlan(tx, sub, planId, extra);
  const usage = (await tx('subscription_resources').where({ subscription_id: sub.id }).select('resource_id', 'usage')) as { resource_id: number; usage: unknown }[];
  await tx('subscription_resources').where({ subscription_id: sub.id }).del();
  if (resources.length) {
    await tx('subscription_resources').insert(
      resources.map((r) => ({ subscription_id: sub.id, resource_id: r.resource_id, included: r.included, additional: r.additional, limit_value: r.limit_value, usage: Number(usage.find((u) => toNumber(u.resource_id) === r.resource_id)?.usage ?? 0) })),
    );
  }
  const update: Record<string, unknown> = { plan_id: planId, period_id: periodId, updated_at: now.getTime() };
  if (newTerm) {
    const p = (await tx('plan_periods').where({ id: periodId }).first('duration', 'unit')) as { duration: unknown; unit: PeriodUnit };
    const to = addPeriod(now, toNumber(p.duration), p.unit).getTime();
    Object.assign(update, { last_bill_date: now.getTime(), expiration_date: to, next_bill_date: to });
  }
  await tx('subscriptions').where({ id: sub.id }).update(update);
  if (extra) {
    const added = Object.fromEntries([...extra].map(([k, v]) => [String(k), v]));
    await recordChange(tx, await ctx.actor(tx), now, {
      operation: 'AddSubscriptionResources',
      objectType: 'subscription',
      objectId: toNumber(sub.id),
      details: { orderId, added },
      event: { name: 'subscription.resources_added', accountId: toNumber(sub.account_id), payload: { subscriptionId: toNumber(sub.id), orderId, added, limits: resources.map((r) => ({ resourceId: r.resource_id, additional: r.additional, limit: r.limit_value })) } },
    });
    return;
  }
  await recordChange(tx, await ctx.actor(tx), now, {
    operation: 'ChangeSubscriptionPlan',
    objectType: 'subscription',
    objectId: toNumber(sub.id),
    details: { orderId, fromPlanId: toNumber(sub.plan_id), fromPeriodId: toNumber(sub.period_id), planId, periodId, newTerm },
    event: { name: 'subscription.plan_changed', accountId: toNumber(sub.account_id), payload: { subscriptionId: toNumber(sub.id), orderId, fromPlanId: toNumber(sub.plan_id), planId, fromPeriodId: toNumber(sub.period_id), periodId } },
  });
}

/** A resource order's added quantities, by resource id. */
function extraOf(item: ItemRow): Map<number, number> {
  const list = (() => {
    try {
      return JSON.parse(item.resources || '[]') as { resourceId: number; quantity: number }[];
    } catch {
      return [];
    }
  })();
  return new Map(list.map((r) => [toNumber(r.resourceId), Number(r.quantity)]));
}

/** A change order (extra undefined) or a resource order (extra: the quantities added, plan and period unchanged). */
async function applyChange(ctx: Ctx, task: Task, tc: TaskContext, order: OrderRow, item: ItemRow, sub: SubscriptionRow, extra?: Map<number, number>): Promise<TaskOutcome> {
  const orderId = toNumber(order.id);
  const planId = toNumber(item.plan_id);
  const periodId = toNumber(item.period_id);
  const details = parse(item.details);
  const outcome = await changeLimitsThroughGate(ctx, sub, planId, tc.operationId, tc.attempt > 1, extra);
  if (outcome.status !== 'success') {
    if ((outcome.status === 'pending' || outcome.retryable) && tc.attempt < task.maxAttempts) {
      return { status: 'retry', error: outcome.status === 'pending' ? `Pending: ${outcome.message ?? 'the gate is changing the limits.'}` : `Retrying: ${outcome.message}`, retryable: true };
    }
    // Through saga.finish, so that the change's charge is voided like after any failed provisioning.
    const why = outcome.status === 'pending' ? `did not finish changing the limits within ${task.maxAttempts} attempts` : `failed: ${outcome.message}`;
    const what = extra ? 'could not get the added resources' : 'could not change plan';
    await writeTx(ctx.deps, async (tx) => {
      const locked = await lockOrder(tx, orderId);
      if (locked && locked.step === order.step) await enqueueFinish(ctx, tx, locked, clip(`Subscription ${sub.id} ${what}: service gate '${sub.service_gate}' ${why}. The subscription is unchanged.`));
    });
    return done({ failed: why });
  }
  const total = toBigInt(order.total);
  await writeTx(ctx.deps, async (tx) => {
    const locked = await lockOrder(tx, orderId);
    if (!locked || locked.step !== order.step) return;
    await moveToPlan(ctx, tx, sub, planId, periodId, details.newTerm === true, orderId, extra);
    let note = '';
    if (total < 0n) {
      // The credit (a negative total carries no tax of its own: priceOrderTaxTx) with the tax paid on it: the current term's invoice's share
      // of tax, as an upgrade's charge gets its tax on its invoice.
      const term = await termPayment(tx, sub);
      const amount = await withPaidTax(tx, term?.invoiceId ?? null, -total);
      await creditOrderTx(ctx, tx, order, sub, amount, `Plan change of subscription ${sub.id}`, { invoiceId: term?.invoiceId ?? undefined });
      note = ` A credit of ${amountText(amount, order.currency)}${amount !== -total ? ` (${amountText(-total, order.currency)} and its tax)` : ''} is due to the account.`;
    }
    const text = extra ? `Subscription ${sub.id} has its added resources.` : `Subscription ${sub.id} moved to plan ${planId}, period ${periodId}.`;
    await transitionIfAt(ctx, tx, orderId, order.step, 'success', `${text}${note}`);
  });
  return done({ changed: true });
}

async function scheduleChange(ctx: Ctx, order: OrderRow, item: ItemRow, sub: SubscriptionRow): Promise<TaskOutcome> {
  const at = new Date(toNumber(sub.expiration_date));
  await writeTx(ctx.deps, async (tx) => {
    const locked = await lockOrder(tx, toNumber(order.id));
    if (!locked || locked.step !== order.step) return;
    const planId = toNumber(item.plan_id);
    const taskId = await ctx.svc.tasks.enqueue(tx, {
      kind: SCHEDULED_CHANGE,
      queue: ORDERS_QUEUE,
      payload: { orderId: toNumber(order.id), subscriptionId: toNumber(sub.id), planId, periodId: toNumber(item.period_id), action: 'change_limits' },
      accountId: toNumber(sub.account_id),
      objectType: 'subscription',
      objectId: toNumber(sub.id),
      runAt: at,
      maxAttempts: ctx.opts.sagaMaxAttempts,
      dedupeKey: `change-at-term:${toNumber(order.id)}`,
    });
    await transitionIfAt(ctx, tx, toNumber(order.id), order.step, 'success', `Subscription ${sub.id} moves to plan ${planId} at the end of its term, ${at.toISOString()} (task ${taskId}).`);
  });
  return done({ scheduledFor: at.toISOString() });
}

/** subscription.scheduled_change {orderId, subscriptionId, planId, periodId}: the end-of-term change, at the expiration date. */
export async function runScheduledChange(ctx: Ctx, task: Task, tc: TaskContext): Promise<TaskOutcome> {
  const sub = await subOf(ctx.deps.db, toNumber(task.payload.subscriptionId));
  const planId = toNumber(task.payload.planId);
  const periodId = toNumber(task.payload.periodId);
  if (!sub || ![SUBSCRIPTION_STATUS.active, SUBSCRIPTION_STATUS.graced, SUBSCRIPTION_STATUS.suspended].includes(toNumber(sub.status) as 30)) return done({ skipped: true, reason: 'The subscription is no longer active.' });
  if (toNumber(sub.plan_id) === planId && toNumber(sub.period_id) === periodId) return done({ skipped: true });
  const outcome = await changeLimitsThroughGate(ctx, sub, planId, tc.operationId, tc.attempt > 1);
  if (outcome.status === 'success') {
    await writeTx(ctx.deps, (tx) => moveToPlan(ctx, tx, sub, planId, periodId, false, toNumber(task.payload.orderId)));
    return done({ changed: true });
  }
  if ((outcome.status === 'pending' || outcome.retryable) && tc.attempt < task.maxAttempts) {
    return { status: 'retry', error: outcome.status === 'pending' ? `Pending: ${outcome.message ?? 'changing limits'}` : `Retrying: ${outcome.message}`, retryable: true };
  }
  return { status: 'retry', error: `Service gate '${sub.service_gate}' could not change subscription ${sub.id}'s limits at the end of its term: ${outcome.status === 'pending' ? 'still pending' : outcome.message}. Retry the task once the gate is fixed.`, retryable: false };
}

function parse(text: string | null): Record<string, unknown> {
  try {
    return text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
