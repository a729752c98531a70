import type { Actor, Deps } from '../context';
import { recordChange } from '../audit/record-change';
import { toNumber, type Conn, type Tx } from '../db/knex';
import { conflict, notFound } from '../domain/errors';
import {
  STATUS_OF_ACTION,
  isManual,
  isTerminal,
  nextStep,
  validateWorkflow,
  type Outcome,
  type PbaOrderStatus,
  type WorkflowDefinition,
} from '../domain/workflow';
import type { TaskQueue } from '../jobs/task-queue';

/** The task that runs the current (automatic) step of an order. Payload: {orderId, step}. */
export const ORDER_ADVANCE = 'order.advance';
export const ORDERS_QUEUE = 'orders';

export interface TransitionOrder {
  id: number;
  account_id: number;
  vendor_id: number;
  workflow_id: number;
  step: string;
}

/** The pinned definition of a workflow version (orders.workflow_id). */
export async function loadWorkflowDefinition(conn: Conn, workflowId: number): Promise<WorkflowDefinition> {
  const row = (await conn('workflows').where({ id: workflowId }).first('definition')) as { definition: string } | undefined;
  if (!row) throw notFound('Workflow', workflowId);
  return validateWorkflow(JSON.parse(row.definition));
}

/** The event name for entering `newStep` by `outcome` from a step (pure, exported for tests and the engine). */
export function eventForTransition(def: WorkflowDefinition, fromStep: string, newStep: string, outcome: Outcome): string {
  const action = def.steps[newStep].action;
  if (action === 'mark_suspect') return 'order.fraud_suspected';
  if (action === 'wait_for_approval') return 'order.waiting_approval';
  if (def.steps[fromStep] && isManual(def, fromStep) && (outcome === 'approved' || outcome === 'rejected')) {
    return outcome === 'approved' ? 'order.approved' : 'order.rejected';
  }
  if (action === 'reject') return 'order.rejected';
  if (action === 'fail') return 'order.provisioning_failed';
  if (action === 'notify_customer') return 'order.provisioned';
  if (action === 'complete') return 'order.completed';
  return 'order.step_changed';
}

async function enqueueAdvance(tx: Tx, tasks: TaskQueue, order: Pick<TransitionOrder, 'id' | 'account_id'>, step: string, historyId: number): Promise<number> {
  return tasks.enqueue(tx, {
    kind: ORDER_ADVANCE,
    queue: ORDERS_QUEUE,
    payload: { orderId: toNumber(order.id), step },
    accountId: toNumber(order.account_id),
    objectType: 'order',
    objectId: toNumber(order.id),
    dedupeKey: `order:${toNumber(order.id)}:${historyId}`,
  });
}

/**
 * Moves an order from its current step by `outcome` along its pinned workflow, in the caller's transaction:
 * orders.step/status, an order_history row, audit + event, and (for an automatic next step) the next advance task.
 * The UPDATE is guarded by the step the caller saw: a concurrent transition makes this one a CONFLICT.
 */
export async function transition(
  tx: Tx,
  deps: Pick<Deps, 'clock'>,
  tasks: TaskQueue,
  order: TransitionOrder,
  outcome: Outcome,
  actor: Actor,
  comment = '',
): Promise<{ step: string; status: PbaOrderStatus }> {
  const def = await loadWorkflowDefinition(tx, toNumber(order.workflow_id));
  const step = nextStep(def, order.step, outcome);
  const action = def.steps[step].action;
  const status = STATUS_OF_ACTION[action];
  const now = deps.clock.now();
  const at = now.getTime();
  const text = (comment ?? '').slice(0, 1024);
  const update: Record<string, unknown> = { step, status, updated_at: at };
  if (action === 'fail' && text) update.failure_reason = text;
  const n = await tx('orders').where({ id: order.id, step: order.step }).update(update);
  if (n !== 1) throw conflict(`Order ${order.id} is no longer at step '${order.step}'.`, 'step');
  const [historyId] = (await tx('order_history').insert({
    order_id: order.id,
    status,
    step,
    outcome,
    actor_user_id: actor.userId,
    comment: text,
    at,
  })) as number[];
  const name = eventForTransition(def, order.step, step, outcome);
  await recordChange(tx, actor, now, {
    operation: name,
    objectType: 'order',
    objectId: toNumber(order.id),
    details: { from: order.step, to: step, outcome, status, comment: text || undefined },
    event: {
      name,
      accountId: toNumber(order.account_id),
      payload: { orderId: toNumber(order.id), accountId: toNumber(order.account_id), vendorAccountId: toNumber(order.vendor_id), from: order.step, step, outcome, status },
    },
  });
  if (!isManual(def, step) && !isTerminal(def, step)) await enqueueAdvance(tx, tasks, order, step, toNumber(historyId));
  return { step, status };
}

/** Enqueues the first advance of a freshly placed order (its start step), in the placing transaction. */
export async function startOrder(tx: Tx, _deps: Pick<Deps, 'clock'>, tasks: TaskQueue, orderId: number): Promise<number | null> {
  const order = (await tx('orders').where({ id: orderId }).first('id', 'account_id', 'workflow_id', 'step')) as
    | { id: number; account_id: number; workflow_id: number; step: string }
    | undefined;
  if (!order) throw notFound('Order', orderId);
  const def = await loadWorkflowDefinition(tx, toNumber(order.workflow_id));
  if (isManual(def, order.step) || isTerminal(def, order.step)) return null;
  const first = (await tx('order_history').where({ order_id: orderId }).orderBy('id', 'asc').first('id')) as { id: number } | undefined;
  return enqueueAdvance(tx, tasks, order, order.step, first ? toNumber(first.id) : 0);
}
