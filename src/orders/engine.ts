import type { Deps } from '../context';
import { toNumber } from '../db/knex';
import { isAppError } from '../domain/errors';
import { isManual, isTerminal } from '../domain/workflow';
import type { TaskHandler, TaskOutcome } from '../jobs/worker';
import { compensateItem, finishFailedSaga, lateDomain, lateSagaCompletion, provisionDomain, provisionItem, undoDomain, SAGA_COMPENSATE, SAGA_FINISH, SAGA_LATE_COMPLETION, SAGA_PROVISION, startSaga } from './saga';
import { actionOf, loadOrder, loadWorkflowDefinition, lockOrder, makeCtx, runSimpleStep, writeTx, type Ctx, type EngineOptions, type EngineServices } from './step-handlers';
import { ORDER_ADVANCE } from './transitions';
import { SAGA_DOMAIN, SAGA_DOMAIN_LATE, SAGA_DOMAIN_UNDO } from './domain-items';
import { LIFECYCLE_KINDS, runLifecycle, runScheduledCancel, runScheduledChange, SCHEDULED_CANCEL, SCHEDULED_CHANGE } from './lifecycle-steps';

export type { EngineOptions, EngineServices, SubscriptionHooks } from './step-handlers';
export { sqlSubscriptions, subscriptionHooks, type SubscriptionsServiceLike } from './step-handlers';
export { SAGA_COMPENSATE, SAGA_FINISH, SAGA_LATE_COMPLETION, SAGA_PROVISION } from './saga';
export { SAGA_DOMAIN, SAGA_DOMAIN_LATE, SAGA_DOMAIN_UNDO } from './domain-items';

/**
 * The order execution engine: worker handlers that run each order's automatic workflow steps and its
 * provisioning saga. Register them on a Worker (queue ORDERS_QUEUE, or all queues):
 *
 *   new Worker(deps, services.tasks, { ...orderHandlers(deps, services) }, { owner, queues: [ORDERS_QUEUE] })
 *
 * order.advance {orderId, step}: a task whose order has moved off `step` is stale and done. fraud_screen,
 * mark_suspect, charge_payment and notify_customer run and call transition() with their outcome; provision starts
 * the saga (saga.ts), which calls transition() when it ends; manual and terminal steps never run.
 */
export function orderHandlers(deps: Deps, services: EngineServices, options: EngineOptions = {}): Record<string, TaskHandler> {
  const ctx = makeCtx(deps, services, options);
  return {
    [ORDER_ADVANCE]: (task) => conflictIsDone(() => advance(ctx, toNumber(task.payload.orderId), String(task.payload.step))),
    [SAGA_PROVISION]: (task, tc) => conflictIsDone(() => provisionItem(ctx, task, tc)),
    [SAGA_COMPENSATE]: (task, tc) => conflictIsDone(() => compensateItem(ctx, task, tc)),
    [SAGA_FINISH]: (task) => conflictIsDone(() => finishFailedSaga(ctx, task)),
    [SAGA_LATE_COMPLETION]: (task, tc) => conflictIsDone(() => lateSagaCompletion(ctx, task, tc)),
    [SAGA_DOMAIN]: (task, tc) => conflictIsDone(() => provisionDomain(ctx, task, tc)),
    [SAGA_DOMAIN_UNDO]: (task, tc) => conflictIsDone(() => undoDomain(ctx, task, tc)),
    [SAGA_DOMAIN_LATE]: (task, tc) => conflictIsDone(() => lateDomain(ctx, task, tc)),
    [LIFECYCLE_KINDS.renewal]: (task, tc) => conflictIsDone(() => runLifecycle(ctx, task, tc)),
    [LIFECYCLE_KINDS.cancellation]: (task, tc) => conflictIsDone(() => runLifecycle(ctx, task, tc)),
    [LIFECYCLE_KINDS.change]: (task, tc) => conflictIsDone(() => runLifecycle(ctx, task, tc)),
    [LIFECYCLE_KINDS.resource]: (task, tc) => conflictIsDone(() => runLifecycle(ctx, task, tc)),
    [SCHEDULED_CANCEL]: (task, tc) => conflictIsDone(() => runScheduledCancel(ctx, task, tc)),
    [SCHEDULED_CHANGE]: (task, tc) => conflictIsDone(() => runScheduledChange(ctx, task, tc)),
  };
}

/** A CONFLICT means another run moved the order on first: this task's work is done. */
async function conflictIsDone(fn: () => Promise<TaskOutcome>): Promise<TaskOutcome> {
  try {
    return await fn();
  } catch (e) {
    if (isAppError(e) && e.code === 'CONFLICT') return { status: 'done', result: { stale: e.message } };
    throw e;
  }
}

async function advance(ctx: Ctx, orderId: number, step: string): Promise<TaskOutcome> {
  const order = await loadOrder(ctx.deps.db, orderId);
  if (!order || order.step !== step) return { status: 'done', result: { stale: true } };
  const def = await loadWorkflowDefinition(ctx.deps.db, toNumber(order.workflow_id));
  const action = actionOf(def, step);
  if (!action) return { status: 'retry', error: `Order ${orderId} is at step '${step}', which its workflow does not have.`, retryable: false };
  if (isTerminal(def, step) || isManual(def, step)) return { status: 'done', result: { waiting: action } };
  if (action === 'provision') {
    await writeTx(ctx.deps, async (tx) => {
      const locked = await lockOrder(tx, orderId);
      if (locked && locked.step === step) await startSaga(ctx, tx, locked);
    });
  } else {
    await runSimpleStep(ctx, order, action);
  }
  return { status: 'done', result: { ran: action } };
}
