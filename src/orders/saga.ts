import type { Actor } from '../context';
import { isSqlite, toNumber, type Tx } from '../db/knex';
import { isAppError } from '../domain/errors';
import type { Task } from '../jobs/task-queue';
import type { TaskContext, TaskOutcome } from '../jobs/worker';
import { lateCompletionSchedule } from '../jobs/late-completion';
import { safeErrorMessage } from '../logger';
import { isOutcome } from '../plugins/instances-service';
import type { Outcome, ProvisioningGate, ServiceRequest } from '../plugins/sdk';
import { ORDERS_QUEUE } from './transitions';
import { actionOf, loadOrder, loadWorkflowDefinition, lockOrder, transitionIfAt, writeTx, type Ctx, type OrderItemRow, type OrderRow } from './step-handlers';
import { describeForGate } from '../subscriptions/gate-request';
import { recordProvisionUndone, terminatedOrGone, undoGivenUpProvision } from '../subscriptions/gate-call';
import { startLifecycle } from './lifecycle-steps';
import { domainOutcome, holdForReview, lateDomainItemCompletion, provisionDomainItem, skipDomains, startDomains, undoDomainItem, type DomainPhaseHooks } from './domain-items';
import { orderRefundKey } from '../payments/payment-records';

/**
 * The provisioning saga of an order. Its state lives in saga_steps: one `provision` row per item (in position
 * order) and, once an item fails for good, one `compensate` row per item already provisioned. Each row is worked
 * by one task (dedupe key per row, so its operation id never changes and a gate call repeated after a crash or a
 * retry is the same operation). Every change of a row commits with the enqueue of the task that comes next:
 *
 *   provision 1 -> provision 2 -> ... -> provision n -> subscriptions active, order 'success'
 *        \ item k fails for good: items k+1.. skipped, compensate k-1 -> ... -> 1 -> saga.finish
 *          (k itself first when it was given up while the gate had accepted it: compensate k -> k-1 -> ...)
 *   saga.finish: void (or refund) the order's payment, then order 'failure' with the reason.
 */

export const SAGA_PROVISION = 'saga.provision_item';
export const SAGA_COMPENSATE = 'saga.compensate_item';
export const SAGA_FINISH = 'saga.finish';

type StepStatus = 'pending' | 'running' | 'done' | 'failed' | 'skipped';

interface SagaStepRow {
  id: number;
  order_id: number;
  item_id: number;
  subscription_id: number | null;
  position: number;
  action: 'provision' | 'compensate';
  status: StepStatus;
  task_id: number | null;
  last_error: string | null;
}

const done = (result?: unknown): TaskOutcome => ({ status: 'done', result });
const clip = (s: string, n = 2000) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);

async function enqueueStep(ctx: Ctx, tx: Tx, order: OrderRow, step: Pick<SagaStepRow, 'id' | 'item_id' | 'action' | 'subscription_id'>): Promise<void> {
  const kind = step.action === 'provision' ? SAGA_PROVISION : SAGA_COMPENSATE;
  const taskId = await ctx.svc.tasks.enqueue(tx, {
    kind,
    queue: ORDERS_QUEUE,
    // subscriptionId: for ListTasks (the task's object is the order); the handler reads the saga row.
    payload: { orderId: toNumber(order.id), itemId: toNumber(step.item_id), subscriptionId: step.subscription_id === null ? null : toNumber(step.subscription_id) },
    accountId: toNumber(order.account_id),
    objectType: 'order',
    objectId: toNumber(order.id),
    maxAttempts: ctx.opts.sagaMaxAttempts,
    dedupeKey: `saga:${toNumber(order.id)}:${toNumber(step.item_id)}:${step.action}`,
  });
  await tx('saga_steps').where({ id: step.id }).update({ task_id: taskId, updated_at: ctx.deps.clock.now().getTime() });
}

export async function enqueueFinish(ctx: Ctx, tx: Tx, order: OrderRow, reason?: string): Promise<void> {
  await ctx.svc.tasks.enqueue(tx, {
    kind: SAGA_FINISH,
    queue: ORDERS_QUEUE,
    payload: { orderId: toNumber(order.id), ...(reason ? { reason } : {}) },
    accountId: toNumber(order.account_id),
    objectType: 'order',
    objectId: toNumber(order.id),
    maxAttempts: ctx.opts.sagaMaxAttempts,
    dedupeKey: `saga:${toNumber(order.id)}:finish`,
  });
}

async function stepsOf(tx: Tx, orderId: number, action: 'provision' | 'compensate'): Promise<SagaStepRow[]> {
  return (await tx('saga_steps').where({ order_id: orderId, action }).orderBy('position')) as SagaStepRow[];
}

/**
 * Starts the saga of an order at its provision step, in the caller's transaction: a subscription and a saga row
 * per item, and the task of the first item. An order without items moves on at once. Idempotent.
 */
export async function startSaga(ctx: Ctx, tx: Tx, order: OrderRow): Promise<void> {
  const orderId = toNumber(order.id);
  if ((await stepsOf(tx, orderId, 'provision')).length > 0) return;
  const items = (await tx('order_items').where({ order_id: orderId }).orderBy('position')) as OrderItemRow[];
  // An order of domains only (RegisterDomain, TransferDomain: sales; RenewDomain: renewal) goes to its domain items.
  if (items.length === 0 && (await tx('order_domains').where({ order_id: orderId }).whereNot({ status: 'pending' }).first('id'))) return; // started before
  if (items.length === 0 && (await startDomains(ctx, tx, order))) return;
  // Only a sales order brings new services; the other types act on an existing subscription (lifecycle-steps.ts).
  if (order.type !== 'sales') {
    await startLifecycle(ctx, tx, order);
    return;
  }
  if (items.length === 0) {
    await transitionIfAt(ctx, tx, orderId, order.step, 'success', 'The order has no services to provision.');
    return;
  }
  const actor = await ctx.actor(tx);
  const now = ctx.deps.clock.now().getTime();
  let first: SagaStepRow | undefined;
  for (const item of items) {
    const subscriptionId = item.subscription_id ?? (await ctx.subs.createForItem(tx, actor, order, item));
    await tx('order_items').where({ id: item.id }).update({ subscription_id: subscriptionId });
    const row = { order_id: orderId, item_id: item.id, subscription_id: subscriptionId, position: item.position, action: 'provision' as const, status: 'pending' as const, updated_at: now };
    const [id] = (await tx('saga_steps').insert(row)) as number[];
    first ??= { ...row, id: toNumber(id), task_id: null, last_error: null };
  }
  await enqueueStep(ctx, tx, order, first!);
}

interface Target {
  order: OrderRow;
  step: SagaStepRow;
  gateName: string;
  request: Omit<ServiceRequest, 'operationId'>;
  itemLabel: string;
  /** A compensate row of an item whose provision was given up: that provision's operation id (its outcome is asked first). */
  givenUpOperationId?: string;
}

/** The saga row a task works, with its order and gate request; null when there is nothing (left) to do. */
async function loadTarget(ctx: Ctx, task: Task, action: 'provision' | 'compensate'): Promise<Target | null> {
  const { db } = ctx.deps;
  const orderId = toNumber(task.payload.orderId);
  const itemId = toNumber(task.payload.itemId);
  const step = (await db('saga_steps').where({ order_id: orderId, item_id: itemId, action }).first()) as SagaStepRow | undefined;
  if (!step || (step.status !== 'pending' && step.status !== 'running') || step.subscription_id === null) return null;
  const order = await loadOrder(db, orderId);
  if (!order) return null;
  const def = await loadWorkflowDefinition(db, toNumber(order.workflow_id));
  if (actionOf(def, order.step) !== 'provision') return null;
  const sub = await describeForGate(db, toNumber(step.subscription_id));
  if (!sub) return null;
  return {
    order,
    step,
    gateName: sub.serviceGate,
    itemLabel: `Item ${step.position} (${sub.name})`,
    request: sub.request,
    ...(action === 'compensate' ? { givenUpOperationId: await givenUpOperation(db, step) } : {}),
  };
}

/** The operation id of the item's provision when it failed (given up: see provisionFailed), else undefined. */
async function givenUpOperation(db: Ctx['deps']['db'], step: SagaStepRow): Promise<string | undefined> {
  const row = (await db('saga_steps as s')
    .join('tasks as t', 't.id', 's.task_id')
    .where({ 's.order_id': step.order_id, 's.item_id': step.item_id, 's.action': 'provision', 's.status': 'failed' })
    .first('t.operation_id')) as { operation_id: string } | undefined;
  return row?.operation_id;
}

/**
 * Whether a provision the saga gives up on may still leave a service at the gate, so the rollback must terminate
 * it too: the gate had accepted it (the row is running: it answered pending), or the outcome is not known (pending,
 * or a retryable failure of a call that reached the gate). A clean refusal (a non-retryable failure of a call the
 * gate had not accepted) left nothing.
 */
function mayHaveProvisioned(step: SagaStepRow, outcome: Outcome<unknown>): boolean {
  if (step.status === 'running' || outcome.status === 'pending') return true;
  return outcome.status === 'failure' && outcome.retryable && outcome.code !== 'GATE_UNAVAILABLE';
}

/**
 * Calls the gate for a saga row. A row already `running` made its call and heard pending: the gate is polled
 * with status (the same operation id); a gate that no longer knows the operation gets the call again.
 */
async function callGate(ctx: Ctx, t: Target, operationId: string, call: (gate: ProvisioningGate, req: ServiceRequest) => Promise<Outcome<unknown>>): Promise<Outcome<unknown>> {
  let gate: ProvisioningGate;
  try {
    gate = (await ctx.svc.pluginInstances.resolveGate(toNumber(t.order.vendor_id), t.gateName)).gate;
  } catch (e) {
    const missing = isAppError(e) && e.code === 'NOT_FOUND';
    return { status: 'failure', retryable: !missing, message: isAppError(e) ? e.message : safeErrorMessage(e), code: missing ? 'GATE_NOT_FOUND' : 'GATE_UNAVAILABLE' };
  }
  const req: ServiceRequest = { ...t.request, operationId };
  const guarded = async (f: () => Promise<Outcome<unknown>>): Promise<Outcome<unknown>> => {
    try {
      const o = await f();
      return isOutcome(o) ? o : { status: 'failure', retryable: false, message: `Service gate '${t.gateName}' answered with something that is not an outcome.`, code: 'PLUGIN_ERROR' };
    } catch (e) {
      return { status: 'failure', retryable: true, message: `Service gate '${t.gateName}' failed: ${safeErrorMessage(e)}`, code: 'PLUGIN_ERROR' };
    }
  };
  if (t.step.status === 'running') {
    const polled = await guarded(() => gate.status(operationId));
    if (!(polled.status === 'failure' && polled.code === 'NOT_FOUND')) return polled;
  }
  return guarded(() => call(gate, req));
}

/** Re-reads the row under the order's lock: false when another run settled it meanwhile. */
async function stillOpen(tx: Tx, step: SagaStepRow): Promise<boolean> {
  const q = tx('saga_steps').where({ id: step.id }).first('status');
  const row = (await (isSqlite(tx) ? q : q.forUpdate())) as { status: StepStatus } | undefined;
  return row !== undefined && (row.status === 'pending' || row.status === 'running');
}

/** A pending answer or a retryable failure: the row keeps its note and the task runs again after its backoff. */
async function later(ctx: Ctx, step: SagaStepRow, outcome: Outcome<unknown>): Promise<TaskOutcome> {
  const pendingNow = outcome.status === 'pending';
  const note = pendingNow ? `Pending: ${outcome.message ?? 'the gate will finish later.'}` : `Retrying: ${(outcome as { message: string }).message}`;
  await writeTx(ctx.deps, async (tx) => {
    if (!(await stillOpen(tx, step))) return;
    await tx('saga_steps')
      .where({ id: step.id })
      .update({ ...(pendingNow ? { status: 'running' } : {}), last_error: clip(note), updated_at: ctx.deps.clock.now().getTime() });
  });
  return { status: 'retry', error: note, retryable: true };
}

function exhausted(task: Task, tc: TaskContext): boolean {
  return tc.attempt >= task.maxAttempts;
}

/** saga.provision_item {orderId, itemId}. */
export async function provisionItem(ctx: Ctx, task: Task, tc: TaskContext): Promise<TaskOutcome> {
  const t = await loadTarget(ctx, task, 'provision');
  if (!t) return done({ skipped: true });
  const outcome = await callGate(ctx, t, tc.operationId, (gate, req) => gate.provision(req));
  if (outcome.status === 'success') return provisioned(ctx, t, outcome.result);
  if ((outcome.status === 'pending' || outcome.retryable) && !exhausted(task, tc)) return later(ctx, t.step, outcome);
  if (outcome.status === 'pending') return handOverLate(ctx, t, task, tc, 'provision');
  return provisionFailed(ctx, t, `service gate '${t.gateName}' failed: ${outcome.message}`, mayHaveProvisioned(t.step, outcome));
}

async function provisioned(ctx: Ctx, t: Target, result: unknown): Promise<TaskOutcome> {
  const reference = String((result as { reference?: unknown } | undefined)?.reference ?? '');
  await writeTx(ctx.deps, async (tx) => {
    const order = await lockOrder(tx, toNumber(t.order.id));
    if (!order || !(await stillOpen(tx, t.step))) return;
    const actor = await ctx.actor(tx);
    await tx('saga_steps').where({ id: t.step.id }).update({ status: 'done', last_error: null, updated_at: ctx.deps.clock.now().getTime() });
    await ctx.subs.setProvisioned(tx, actor, toNumber(t.step.subscription_id), reference);
    const steps = await stepsOf(tx, toNumber(order.id), 'provision');
    const next = steps.find((s) => s.status === 'pending' && s.position > t.step.position);
    if (next) {
      await enqueueStep(ctx, tx, order, next);
      return;
    }
    // The order's domain items come after its hosting; the order succeeds once they are done too.
    if (await startDomains(ctx, tx, order)) return;
    await DOMAIN_HOOKS.complete(ctx, tx, order);
  });
  return done({ reference });
}

/** How the domain phase (domain-items.ts) ends a saga: every item provisioned, or the hosting undone. */
export const DOMAIN_HOOKS: DomainPhaseHooks = {
  async complete(ctx, tx, order) {
    const actor = await ctx.actor(tx);
    const steps = await stepsOf(tx, toNumber(order.id), 'provision');
    for (const s of steps) await ctx.subs.markProvisioned(tx, actor, toNumber(s.subscription_id));
    const domains = toNumber(((await tx('order_domains').where({ order_id: order.id, status: 'done' }).count({ n: '*' })) as { n: number | string }[])[0]!.n);
    const what = [steps.length ? `${steps.length} service(s) provisioned` : '', domains ? `${domains} domain(s) done` : ''].filter(Boolean).join(', ');
    await transitionIfAt(ctx, tx, toNumber(order.id), order.step, 'success', `All ${what}.`);
  },
  async undoHosting(ctx, tx, order) {
    await compensateProvisioned(ctx, tx, order, ctx.deps.clock.now().getTime());
  },
};

/**
 * Compensate rows for every provisioned item (and `givenUp`, the item whose provision was given up while the gate
 * may still finish it), the last one first, and the first one's task; else saga.finish.
 */
async function compensateProvisioned(ctx: Ctx, tx: Tx, order: OrderRow, now: number, givenUp?: SagaStepRow): Promise<void> {
  const steps = await stepsOf(tx, toNumber(order.id), 'provision');
  const toUndo = steps.filter((s) => s.status === 'done' || s.id === givenUp?.id).sort((a, b) => b.position - a.position);
  let first: SagaStepRow | undefined;
  for (const s of toUndo) {
    const row = { order_id: s.order_id, item_id: s.item_id, subscription_id: s.subscription_id, position: s.position, action: 'compensate' as const, status: 'pending' as const, updated_at: now };
    const [id] = (await tx('saga_steps').insert(row)) as number[];
    first ??= { ...row, id: toNumber(id), task_id: null, last_error: null };
  }
  if (first) await enqueueStep(ctx, tx, order, first);
  else await enqueueFinish(ctx, tx, order);
}

/** saga.domain_item {orderId, domainItemId}. */
export const provisionDomain = (ctx: Ctx, task: Task, tc: TaskContext) => provisionDomainItem(ctx, DOMAIN_HOOKS, task, tc);
/** saga.domain_late_completion {orderId, domainItemId, operationId}. */
export const lateDomain = (ctx: Ctx, task: Task, tc: TaskContext) => lateDomainItemCompletion(ctx, DOMAIN_HOOKS, task, tc);
/** saga.domain_undo {orderId, domainItemId}. */
export const undoDomain = (ctx: Ctx, task: Task, tc: TaskContext) => undoDomainItem(ctx, DOMAIN_HOOKS, task, tc);

/** An item failed for good: later items skipped, the provisioned ones undone (and this one too when `undo`). */
async function provisionFailed(ctx: Ctx, t: Target, why: string, undo: boolean): Promise<TaskOutcome> {
  const reason = clip(`${t.itemLabel} could not be provisioned: ${why}`);
  await writeTx(ctx.deps, async (tx) => {
    const order = await lockOrder(tx, toNumber(t.order.id));
    if (!order || !(await stillOpen(tx, t.step))) return;
    const now = ctx.deps.clock.now().getTime();
    const actor = await ctx.actor(tx);
    await tx('saga_steps').where({ id: t.step.id }).update({ status: 'failed', last_error: reason, updated_at: now });
    await ctx.subs.markRemoved(tx, actor, toNumber(t.step.subscription_id), reason);
    const steps = await stepsOf(tx, toNumber(order.id), 'provision');
    for (const s of steps.filter((x) => x.status === 'pending' && x.id !== t.step.id)) {
      await tx('saga_steps').where({ id: s.id }).update({ status: 'skipped', updated_at: now });
      await ctx.subs.markRemoved(tx, actor, toNumber(s.subscription_id), `Not provisioned: ${reason}`);
    }
    await skipDomains(ctx, tx, toNumber(order.id), reason);
    // Every provisioned item is undone, the last one first; this one first when the gate may still finish it.
    await compensateProvisioned(ctx, tx, order, now, undo ? t.step : undefined);
  });
  return done({ failed: reason });
}

/**
 * The gate call undoing an item: terminate; for an item whose provision was given up, the provision's outcome first
 * (undoGivenUpProvision). A gate that has no such service answers NOT_FOUND: nothing is left, so it is done.
 */
function undoCall(t: Target): (gate: ProvisioningGate, req: ServiceRequest) => Promise<Outcome<unknown>> {
  const givenUp = t.givenUpOperationId;
  return async (gate, req) => (givenUp ? undoGivenUpProvision(gate, req, givenUp) : terminatedOrGone(await gate.terminate(req)));
}

/** saga.compensate_item {orderId, itemId}: terminates a provisioned item; a permanent failure is noted and the saga goes on. */
export async function compensateItem(ctx: Ctx, task: Task, tc: TaskContext): Promise<TaskOutcome> {
  const t = await loadTarget(ctx, task, 'compensate');
  if (!t) return done({ skipped: true });
  const outcome = await callGate(ctx, t, tc.operationId, undoCall(t));
  if (outcome.status !== 'success' && (outcome.status === 'pending' || outcome.retryable) && !exhausted(task, tc)) return later(ctx, t.step, outcome);
  if (outcome.status === 'pending') return handOverLate(ctx, t, task, tc, 'compensate');
  return outcome.status === 'success' ? compensated(ctx, t, null, outcome.result) : compensated(ctx, t, `failed: ${outcome.message}`);
}

/** The given-up provision of a compensate row is undone (its service terminated, or it had made none): audited. */
async function givenUpUndone(ctx: Ctx, tx: Tx, t: Target, result: unknown): Promise<void> {
  const sub = (await tx('subscriptions').where({ id: t.step.subscription_id }).first('id', 'account_id', 'order_id')) as { id: number; account_id: number; order_id: number | null } | undefined;
  if (sub) await recordProvisionUndone(tx, await ctx.actor(tx), ctx.deps.clock.now(), sub, t.givenUpOperationId!, result);
}

async function compensated(ctx: Ctx, t: Target, failure: string | null, result?: unknown): Promise<TaskOutcome> {
  const error = failure === null ? null : clip(`${t.itemLabel} could not be undone: service gate '${t.gateName}' ${failure}`);
  await writeTx(ctx.deps, async (tx) => {
    const order = await lockOrder(tx, toNumber(t.order.id));
    if (!order || !(await stillOpen(tx, t.step))) return;
    const now = ctx.deps.clock.now().getTime();
    await tx('saga_steps').where({ id: t.step.id }).update({ status: error ? 'failed' : 'done', last_error: error, updated_at: now });
    // A given-up item's subscription was removed when it failed; what its late provision left is gone now too.
    if (!error && t.givenUpOperationId) await givenUpUndone(ctx, tx, t, result);
    else if (!error) await ctx.subs.markRemoved(tx, await ctx.actor(tx), toNumber(t.step.subscription_id), 'Undone: another item of the order could not be provisioned.');
    const next = (await stepsOf(tx, toNumber(order.id), 'compensate')).filter((s) => s.status === 'pending' && s.position < t.step.position).sort((a, b) => b.position - a.position)[0];
    if (next) await enqueueStep(ctx, tx, order, next);
    else await enqueueFinish(ctx, tx, order);
  });
  return done(error ? { failed: error } : { terminated: true });
}

// ---- late completion: a gate still answering pending after the task's last attempt ----

/** The late-completion sweep of one saga gate operation (the subscription actions have subscription.late_completion). */
export const SAGA_LATE_COMPLETION = 'saga.late_completion';

/**
 * The gate accepted the operation but has not finished it within the task's attempts: the saga row stays
 * `running` (the order waits at its provision step) and a late-completion task takes the operation over, polling
 * the gate with the SAME operation id until it finishes, fails, or the sweep gives up; then the saga goes on
 * exactly as if the first task had heard the answer.
 */
async function handOverLate(ctx: Ctx, t: Target, task: Task, tc: TaskContext, action: 'provision' | 'compensate'): Promise<TaskOutcome> {
  const note = clip(`Still pending after ${task.maxAttempts} attempts; the late-completion sweep polls service gate '${t.gateName}' again later.`);
  await writeTx(ctx.deps, async (tx) => {
    if (!(await stillOpen(tx, t.step))) return;
    await tx('saga_steps').where({ id: t.step.id }).update({ status: 'running', last_error: note, updated_at: ctx.deps.clock.now().getTime() });
    await ctx.svc.tasks.enqueue(tx, {
      kind: SAGA_LATE_COMPLETION,
      queue: ORDERS_QUEUE,
      payload: { target: 'saga', sagaAction: action, orderId: toNumber(t.order.id), itemId: toNumber(t.step.item_id), subscriptionId: toNumber(t.step.subscription_id), action: action === 'provision' ? 'provision' : 'terminate', operationId: tc.operationId, taskId: task.taskId },
      accountId: toNumber(t.order.account_id),
      objectType: 'subscription',
      objectId: toNumber(t.step.subscription_id),
      ...lateCompletionSchedule(ctx.deps.clock.now(), tc.operationId),
    });
  });
  return done({ late: true, note });
}

/** A late-completion task of a saga row: polls the original operation and settles the row when it is known. */
export async function lateSagaCompletion(ctx: Ctx, task: Task, tc: TaskContext): Promise<TaskOutcome> {
  const sagaAction = task.payload.sagaAction === 'compensate' ? 'compensate' : 'provision';
  const t = await loadTarget(ctx, task, sagaAction);
  if (!t) return done({ skipped: true });
  const operationId = String(task.payload.operationId);
  const outcome = await callGate(ctx, { ...t, step: { ...t.step, status: 'running' } }, operationId, sagaAction === 'provision' ? (gate, req) => gate.provision(req) : undoCall(t));
  const last = exhausted(task, tc);
  if (outcome.status === 'success') return sagaAction === 'provision' ? provisioned(ctx, t, outcome.result) : compensated(ctx, t, null, outcome.result);
  if ((outcome.status === 'pending' || outcome.retryable) && !last) {
    return { status: 'retry', error: outcome.status === 'pending' ? `Pending: ${outcome.message ?? 'the gate will finish later.'}` : `Retrying: ${outcome.message}`, retryable: true };
  }
  const why = outcome.status === 'pending' ? `was still pending after its task's attempts and ${task.maxAttempts} late checks (${outcome.message ?? 'pending'})` : `failed: ${outcome.message}`;
  // The gate had accepted the provision (it answered pending): whatever it finishes later is undone with the order.
  return sagaAction === 'provision' ? provisionFailed(ctx, t, `service gate '${t.gateName}' ${why}`, true) : compensated(ctx, t, why);
}

/** saga.finish {orderId, reason?}: the order's payment is voided (or refunded), then the order fails with the reason. */
export async function finishFailedSaga(ctx: Ctx, task: Task): Promise<TaskOutcome> {
  const { db } = ctx.deps;
  const orderId = toNumber(task.payload.orderId);
  const order = await loadOrder(db, orderId);
  if (!order) return done({ skipped: true });
  const def = await loadWorkflowDefinition(db, toNumber(order.workflow_id));
  if (actionOf(def, order.step) !== 'provision') return done({ skipped: true });
  const failed = (await db('saga_steps').where({ order_id: orderId, action: 'provision', status: 'failed' }).orderBy('position').first('last_error')) as { last_error: string | null } | undefined;
  const undone = (await db('saga_steps').where({ order_id: orderId, action: 'compensate', status: 'failed' }).orderBy('position', 'desc').select('last_error')) as { last_error: string | null }[];
  const domains = await domainOutcome(db, orderId);
  if (domains.kept.length > 0) {
    // A domain the registrar would not delete is registered for good: an operator settles the order (and its payment).
    const why = [domains.failed ?? failed?.last_error ?? 'Provisioning failed.', ...undone.map((u) => u.last_error ?? ''), ...domains.kept].filter(Boolean).join(' ');
    const reason = `${MANUAL_REVIEW}${why}${PAYMENT_LEFT}`;
    await writeTx(ctx.deps, (tx) => holdForReview(ctx, tx, order, reason));
    return done({ review: reason });
  }
  const money = await rollBackPayment(ctx, order);
  if (money.retry) return { status: 'retry', error: money.note, retryable: true };
  const given = typeof task.payload.reason === 'string' ? task.payload.reason : undefined;
  const reason = [failed?.last_error ?? domains.failed ?? given ?? 'Provisioning failed.', ...undone.map((u) => u.last_error ?? ''), money.note].filter(Boolean).join(' ');
  await writeTx(ctx.deps, (tx) => failOrderTx(ctx, tx, order, reason));
  return done({ reason });
}

/** How a held order's reason starts and ends (finishFailedSaga; RejectOrder takes them off again). */
export const MANUAL_REVIEW = 'Manual review: ';
export const PAYMENT_LEFT = ' The payment is left as it is for an operator to settle.';

/**
 * The order fails from its provision step with the reason, in the caller's transaction, after rollBackPayment: the
 * voided or refunded charge leaves the ledger as it was (a refund document and a credit memo of the invoice).
 * `by`: the operator who rejects a held order; else the system. False when the order had moved on.
 */
export async function failOrderTx(ctx: Ctx, tx: Tx, order: OrderRow, reason: string, by?: Actor): Promise<boolean> {
  const orderId = toNumber(order.id);
  const moved = await transitionIfAt(ctx, tx, orderId, order.step, 'failure', reason, by);
  if (moved && order.payment_id !== null && order.payment_id !== undefined) {
    await ctx.ledger.reverseOrderChargeTx(tx, by ?? (await ctx.actor(tx)), ctx.deps.clock.now(), orderId, toNumber(order.payment_id), `order ${order.order_number} failed`);
  }
  return moved;
}

/**
 * Voids the order's successful charge, or refunds it when it cannot be voided; open payments wait for the reconciler.
 * `by`: the operator who rejects a held order; else the system. The idempotency keys are the order's: a repeat is the
 * same void or refund.
 */
export async function rollBackPayment(ctx: Ctx, order: OrderRow, by?: Actor): Promise<{ retry: boolean; note: string }> {
  const payments = ctx.svc.payments;
  if (order.payment_id === null || order.payment_id === undefined || !payments) return { retry: false, note: '' };
  const actor = by ?? (await ctx.actor());
  const id = toNumber(order.payment_id);
  const p = await payments.get(actor, id);
  if (p.status === 'voided') return { retry: false, note: `Payment ${id} was voided.` };
  if (p.status === 'pending' || p.status === 'unknown') return { retry: true, note: `Payment ${id} is ${p.status}; it is undone once the gateway's answer is known.` };
  if (p.status !== 'success') return { retry: false, note: '' };
  let voidError = '';
  try {
    const v = await payments.void(actor, id, { idempotencyKey: `order-${toNumber(order.id)}-void` });
    if (v.status === 'success') return { retry: false, note: `Payment ${id} was voided.` };
    if (v.status === 'pending' || v.status === 'unknown') return { retry: true, note: `The void of payment ${id} is ${v.status}.` };
    voidError = v.message ?? v.status;
  } catch (e) {
    if (!isAppError(e) || e.code !== 'NOT_ALLOWED') throw e;
    voidError = e.message;
  }
  try {
    const r = await payments.refund(actor, id, { idempotencyKey: orderRefundKey(toNumber(order.id)), reason: 'Provisioning failed' });
    if (r.status === 'success') return { retry: false, note: `Payment ${id} was refunded.` };
    if (r.status === 'pending' || r.status === 'unknown') return { retry: true, note: `The refund of payment ${id} is ${r.status}.` };
    return { retry: false, note: `Payment ${id} could not be voided (${voidError}) nor refunded (${r.message ?? r.status}): refund it by hand.` };
  } catch (e) {
    if (!isAppError(e) || e.code !== 'NOT_ALLOWED') throw e;
    return { retry: false, note: `Payment ${id} could not be voided (${voidError}) nor refunded (${e.message}): refund it by hand.` };
  }
}
