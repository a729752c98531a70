import { recordChange } from '../audit/record-change';
import { systemActor, type Actor, type Deps } from '../context';
import { isSqlite, toNumber, type Conn, type Tx } from '../db/knex';
import { takeWriteLock, writeTx } from '../db/transaction';
import { notAllowed, notFound } from '../domain/errors';
import { positiveId } from '../domain/fields';
import { idempotent } from '../idempotency';
import { LATE_MAX_ATTEMPTS, lateCompletionSchedule } from '../jobs/late-completion';
import { TaskQueue, type Task } from '../jobs/task-queue';
import type { TaskHandler, TaskOutcome } from '../jobs/worker';
import type { PluginInstancesService } from '../plugins/instances-service';
import { callSubscriptionGate, recordProvisionUndone, terminatedOrGone, undoGivenUpProvision } from './gate-call';
import type { Outcome, ServiceRequest } from '../plugins/sdk';
import { SERVICE_STATUS, SUBSCRIPTION_STATUS, type SubscriptionsService } from './subscriptions-service';
import { describeForGate } from './gate-request';
import { closeWaitingRenewals } from '../billing/run/renewal-closing';

/**
 * Suspend, resume, terminate and provision a subscription through its service gate. A request changes the
 * service status to its in-between value and enqueues a task in the same transaction; the task (on the orders
 * queue) calls the gate and, in one transaction, sets the final state. A permanent gate failure puts the service
 * status back and fails the task with the gate's message.
 *
 * A terminate may be requested while another action is half-way (it saves that in-between status as its previous
 * one). The overlapped action's task still finishes: it records its result under `removing` and rewrites the open
 * terminate's saved previous status to what it left, so a terminate failing for good puts back the truth. A terminate
 * over a provision waits for the provision to settle, then removes what it made.
 */

export type ServiceAction = 'suspend' | 'resume' | 'terminate' | 'provision';
/** Why a subscription is suspended (subscriptions.hold_reason): for non-payment (PBA's credit hold) or by an operator. */
export type HoldReason = 'credit' | 'admin';
export const SERVICE_ACTIONS: readonly ServiceAction[] = ['suspend', 'resume', 'terminate', 'provision'];
export const SUBSCRIPTION_ACTIONS_QUEUE = 'orders';
/** The late-completion sweep of a subscription action whose gate still answered pending at the task's last attempt. */
export const ACTION_LATE_COMPLETION = 'subscription.late_completion';
/** Terminates what a provision action given up on may still leave at the gate (undoGivenUpProvision). */
export const PROVISION_UNDO = 'subscription.provision_undo';

const IN_BETWEEN: Record<ServiceAction, number> = {
  suspend: SERVICE_STATUS.stopping,
  resume: SERVICE_STATUS.starting,
  terminate: SERVICE_STATUS.removing,
  provision: SERVICE_STATUS.provisioning,
};

const STATUS_NAME = new Map<number, string>(Object.entries(SUBSCRIPTION_STATUS).map(([k, v]) => [v, k]));
const SERVICE_NAME = new Map<number, string>(Object.entries(SERVICE_STATUS).map(([k, v]) => [v, k]));

interface SubRow {
  id: number;
  account_id: number;
  order_id: number | null;
  vendor_id: number;
  status: number;
  service_status: number;
  service_gate: string;
  gate_reference: string | null;
  parameters: string;
  name: string;
  plan_id: number;
}

export interface ProvisioningStatus {
  serviceStatus: number;
  tasks: Task[];
}

function describe(row: SubRow): string {
  const s = toNumber(row.status);
  const ss = toNumber(row.service_status);
  return `status ${STATUS_NAME.get(s) ?? s} (${s}), service ${SERVICE_NAME.get(ss) ?? ss} (${ss})`;
}

/** Why the action may not run now; null when it may. */
function refusal(action: ServiceAction, row: SubRow): string | null {
  const s = toNumber(row.status);
  const ss = toNumber(row.service_status);
  const id = toNumber(row.id);
  switch (action) {
    case 'suspend':
      return ([SUBSCRIPTION_STATUS.active, SUBSCRIPTION_STATUS.trial, SUBSCRIPTION_STATUS.graced] as number[]).includes(s) && ss === SERVICE_STATUS.running
        ? null
        : `Subscription ${id} cannot be suspended: only an active, trial or graced subscription with its service running can be; it is ${describe(row)}.`;
    case 'resume':
      return s === SUBSCRIPTION_STATUS.suspended && ss === SERVICE_STATUS.stopped ? null : `Subscription ${id} cannot be resumed: only a suspended one can be; it is ${describe(row)}.`;
    case 'terminate':
      return s !== SUBSCRIPTION_STATUS.terminated && ss !== SERVICE_STATUS.removing && ss !== SERVICE_STATUS.removed ? null : `Subscription ${id} cannot be terminated: it is ${describe(row)}.`;
    case 'provision':
      return ss === SERVICE_STATUS.notProvisioned && s !== SUBSCRIPTION_STATUS.terminated ? null : `Subscription ${id} cannot be provisioned: only a not provisioned one can be; it is ${describe(row)}.`;
  }
}

export class SubscriptionActionsService {
  constructor(
    private readonly deps: Deps,
    private readonly svc: { tasks: TaskQueue },
  ) {}

  private async scopedRow(conn: Conn, actor: Actor, subscriptionId: number, lock: boolean): Promise<SubRow> {
    const q = conn('subscriptions as s').join('accounts as a', 'a.id', 's.account_id').where('s.id', subscriptionId).andWhere('a.path', 'like', `${actor.accountPath}%`).first('s.*');
    const row = (await (lock && !isSqlite(conn) ? q.forUpdate() : q)) as SubRow | undefined;
    if (!row) throw notFound('Subscription', subscriptionId);
    return row;
  }

  /**
   * `hold` (suspend only): why, kept in subscriptions.hold_reason: 'credit' when dunning suspends for non-payment
   * (lifted by payment in full or SubscriptionTakeFromCreditHold_API), else 'admin' (never lifted by a payment).
   */
  async request(actor: Actor, subscriptionId: number, action: ServiceAction, opts: { reason?: string; idempotencyKey?: string; hold?: HoldReason } = {}): Promise<{ taskId: number; serviceStatus: number }> {
    const id = positiveId(subscriptionId, 'subscriptionId');
    if (!SERVICE_ACTIONS.includes(action)) throw notAllowed(`Unknown action '${String(action)}'.`, 'action');
    const reason = opts.reason?.slice(0, 1000);
    // A refusal rolls the key's claim back with everything else; a repeated key answers the first request.
    return idempotent(this.deps, actor, opts.idempotencyKey, `subscription.${action}`, { id, reason }, async (tx) => {
      await takeWriteLock(tx);
      const row = await this.scopedRow(tx, actor, id, true);
      const refused = refusal(action, row);
      if (refused) throw notAllowed(refused, 'subscriptionId');
      // While its order's saga is still running, the saga provisions (or removes) the service: a second request
      // now could provision it twice.
      if (row.order_id !== null && row.order_id !== undefined) {
        const order = (await tx('orders').where({ id: row.order_id }).first('status', 'order_number')) as { status: string; order_number: string } | undefined;
        if (order && !['PC', 'CP', 'PF', 'RJ', 'CA'].includes(order.status)) {
          throw notAllowed(`Subscription ${id} belongs to order ${order.order_number}, which is still being processed (status ${order.status}); wait until it has finished.`, 'subscriptionId');
        }
      }
      const now = this.deps.clock.now();
      const serviceStatus = IN_BETWEEN[action];
      const previous = toNumber(row.service_status);
      await tx('subscriptions')
        .where({ id })
        .update({ service_status: serviceStatus, ...(action === 'suspend' ? { hold_reason: opts.hold ?? 'admin' } : {}), updated_at: now.getTime() });
      const taskId = await this.svc.tasks.enqueue(tx, {
        kind: `subscription.${action}`,
        queue: SUBSCRIPTION_ACTIONS_QUEUE,
        payload: { subscriptionId: id, action, previousServiceStatus: previous, ...(reason ? { reason } : {}) },
        accountId: toNumber(row.account_id),
        objectType: 'subscription',
        objectId: id,
      });
      await recordChange(tx, actor, now, {
        operation: `${action[0]!.toUpperCase()}${action.slice(1)}Subscription`,
        objectType: 'subscription',
        objectId: id,
        details: { taskId, ...(reason ? { reason } : {}) },
        event: { name: `subscription.${action}_requested`, accountId: toNumber(row.account_id), payload: { subscriptionId: id, action, taskId, serviceStatus, ...(reason ? { reason } : {}) } },
      });
      return { taskId, serviceStatus };
    });
  }

  async provisioningStatus(actor: Actor, subscriptionId: number): Promise<ProvisioningStatus> {
    const id = positiveId(subscriptionId, 'subscriptionId');
    const row = await this.scopedRow(this.deps.db, actor, id, false);
    const tasks = await this.svc.tasks.list(actor, { objectType: 'subscription', objectId: id, pageSize: 100 });
    return { serviceStatus: toNumber(row.service_status), tasks: tasks.items };
  }
}

// ---- the tasks ----

export interface ActionHandlerServices {
  pluginInstances: Pick<PluginInstancesService, 'resolveGate'>;
  subscriptions: Pick<SubscriptionsService, 'markRemoved' | 'markProvisioned'>;
  /** Where the late-completion task is enqueued (default: a TaskQueue on deps). */
  tasks?: Pick<TaskQueue, 'enqueue'>;
}

async function jobActor(conn: Conn): Promise<Actor> {
  const row = (await conn('accounts').whereNull('vendor_id').andWhere({ type: 'provider' }).orderBy('id').first('id', 'path')) as { id: number; path: string } | undefined;
  if (!row) throw new Error('The provider account does not exist yet; start the server once to create it.');
  return systemActor({ id: toNumber(row.id), path: row.path }, 'job');
}

async function lockSub(tx: Tx, id: number): Promise<SubRow | undefined> {
  const q = tx('subscriptions').where({ id }).first();
  return (await (isSqlite(tx) ? q : q.forUpdate())) as SubRow | undefined;
}

/** A task still to run or running (not done, failed or canceled). */
const OPEN_TASK = ['pending', 'running'];

interface OpenTask {
  id: number;
  kind: string;
  operationId: string;
  payload: Record<string, unknown>;
}

/** The subscription's open tasks of `action`: its `subscription.<action>` tasks and their late completions. */
async function openActionTasks(conn: Conn, id: number, action: ServiceAction): Promise<OpenTask[]> {
  const rows = (await conn('tasks')
    .where({ object_type: 'subscription', object_id: String(id) })
    .whereIn('kind', [`subscription.${action}`, ACTION_LATE_COMPLETION])
    .whereIn('status', OPEN_TASK)
    .orderBy('id')
    .select('id', 'kind', 'operation_id', 'payload')) as { id: number; kind: string; operation_id: string; payload: string }[];
  return rows
    .map((r) => ({ id: toNumber(r.id), kind: r.kind, operationId: r.operation_id, payload: JSON.parse(r.payload) as Record<string, unknown> }))
    .filter((t) => t.kind !== ACTION_LATE_COMPLETION || t.payload.action === action);
}

/**
 * The open terminates that `action` is overlapped by: a terminate requested while the action was half-way (its
 * saved previous status is the action's in-between one). The service status is then `removing`, and the action's
 * task still finishes its work at the gate.
 */
async function overlappingTerminates(conn: Conn, id: number, action: ServiceAction): Promise<OpenTask[]> {
  if (action === 'terminate') return [];
  return (await openActionTasks(conn, id, 'terminate')).filter((t) => toNumber(t.payload.previousServiceStatus) === IN_BETWEEN[action]);
}

/** Whether the task of `action` still has work to do on a subscription of service status `serviceStatus`. */
async function stillOurs(conn: Conn, id: number, action: ServiceAction, serviceStatus: number): Promise<boolean> {
  if (serviceStatus === IN_BETWEEN[action]) return true;
  return serviceStatus === SERVICE_STATUS.removing && (await overlappingTerminates(conn, id, action)).length > 0;
}

/**
 * An action overlapped by a terminate has settled (`restore`: the service status it left): the overlapping terminates
 * now put back that status, not the half-way one, if they fail for good. Answers their task ids.
 */
async function settleUnderTerminate(tx: Tx, id: number, action: ServiceAction, restore: number): Promise<number[]> {
  const terminates = await overlappingTerminates(tx, id, action);
  for (const t of terminates) await tx('tasks').where({ id: t.id }).update({ payload: JSON.stringify({ ...t.payload, previousServiceStatus: restore }) });
  return terminates.map((t) => t.id);
}

/** The task's payload as stored now (another action's task may have changed what a terminate restores). */
async function storedPayload(conn: Conn, task: Task): Promise<Record<string, unknown>> {
  const row = (await conn('tasks').where({ id: task.taskId }).first('payload')) as { payload: string } | undefined;
  return row ? (JSON.parse(row.payload) as Record<string, unknown>) : task.payload;
}

async function gateRequest(conn: Conn, sub: SubRow, operationId: string): Promise<ServiceRequest> {
  const described = await describeForGate(conn, toNumber(sub.id));
  if (!described) throw new Error(`Subscription ${sub.id} has no plan or template to describe it to its gate.`);
  return { ...described.request, operationId };
}


async function callActionGate(conn: Conn, svc: ActionHandlerServices, sub: SubRow, req: ServiceRequest, action: ServiceAction, poll: boolean, task: Task): Promise<Outcome<unknown>> {
  if (action === 'terminate') {
    // A terminate requested while a provision is under way waits for it (as for a pending gate), then removes what it
    // made; a service never provisioned (or whose provision failed meanwhile) leaves nothing to remove.
    const previous = toNumber((await storedPayload(conn, task)).previousServiceStatus);
    const provisions = previous === SERVICE_STATUS.provisioning ? await openActionTasks(conn, toNumber(sub.id), 'provision') : [];
    if (provisions.length > 0) return { status: 'pending', message: `waiting for the provision (task ${provisions.map((t) => t.id).join(', ')}) to finish before terminating what it makes.` };
    if (!sub.gate_reference && previous === SERVICE_STATUS.notProvisioned) return { status: 'success', result: { gone: true } };
  }
  // A terminate of a service the gate does not have (NOT_FOUND) leaves nothing to remove: done.
  return callSubscriptionGate(svc.pluginInstances, sub, req.operationId, poll, async (gate) => (action === 'provision' ? gate.provision(req) : action === 'terminate' ? terminatedOrGone(await gate.terminate(req)) : gate[action](req)));
}

async function subscriptionEvent(tx: Tx, actor: Actor, at: Date, row: SubRow, name: string, operation: string, details: Record<string, unknown>): Promise<void> {
  await recordChange(tx, actor, at, {
    operation,
    objectType: 'subscription',
    objectId: toNumber(row.id),
    details,
    event: { name, accountId: toNumber(row.account_id), payload: { subscriptionId: toNumber(row.id), accountId: toNumber(row.account_id), ...details } },
  });
}

async function runAction(deps: Deps, svc: ActionHandlerServices, action: ServiceAction, task: Task, operationId: string, attempt: number): Promise<TaskOutcome> {
  const id = toNumber(task.payload.subscriptionId);
  const sub = (await deps.db('subscriptions').where({ id }).first()) as SubRow | undefined;
  // Nothing to do when the subscription is gone or another run settled this request already (an action overlapped
  // by a terminate still finishes: the terminate puts back what it leaves if it fails).
  if (!sub || !(await stillOurs(deps.db, id, action, toNumber(sub.service_status)))) return { status: 'done', result: { stale: true } };
  const outcome = await callActionGate(deps.db, svc, sub, await gateRequest(deps.db, sub, operationId), action, attempt > 1, task);
  if (outcome.status === 'success') return actionSucceeded(deps, svc, action, task, id, outcome.result);
  const exhausted = attempt >= task.maxAttempts;
  if ((outcome.status === 'pending' || outcome.retryable) && !exhausted) {
    return { status: 'retry', error: outcome.status === 'pending' ? `Pending: ${outcome.message ?? 'the gate will finish later.'}` : `Retrying: ${outcome.message}`, retryable: true };
  }
  if (outcome.status === 'pending') {
    // The gate took the request and is still at it: the service keeps its in-between status and the
    // late-completion sweep polls the same operation later (lateActionCompletion).
    const note = `Still pending after ${task.maxAttempts} attempts; the late-completion sweep polls service gate '${sub.service_gate}' again later.`;
    await writeTx(deps, async (tx) => {
      await (svc.tasks ?? new TaskQueue(deps)).enqueue(tx, {
        kind: ACTION_LATE_COMPLETION,
        queue: SUBSCRIPTION_ACTIONS_QUEUE,
        payload: { ...(await storedPayload(tx, task)), subscriptionId: id, action, operationId, taskId: task.taskId },
        accountId: toNumber(sub.account_id),
        objectType: 'subscription',
        objectId: id,
        ...lateCompletionSchedule(deps.clock.now(), operationId),
      });
    });
    return { status: 'done', result: { late: true, note } };
  }
  // A provision whose outcome is not known (a retryable failure of a call that reached the gate) may still make a service.
  const undo = action === 'provision' && outcome.retryable && outcome.code !== 'GATE_UNAVAILABLE' ? operationId : null;
  return actionFailed(deps, svc, action, task, id, `Service gate '${sub.service_gate}' failed to ${action} subscription ${id}: ${outcome.message}`, undo);
}

/** subscription.late_completion {subscriptionId, action, operationId, previousServiceStatus}: polls the operation a task gave up waiting for. */
async function lateActionCompletion(deps: Deps, svc: ActionHandlerServices, task: Task, attempt: number): Promise<TaskOutcome> {
  const action = String(task.payload.action) as ServiceAction;
  if (!SERVICE_ACTIONS.includes(action)) return { status: 'retry', error: `Unknown action '${action}'.`, retryable: false };
  const id = toNumber(task.payload.subscriptionId);
  const operationId = String(task.payload.operationId);
  const sub = (await deps.db('subscriptions').where({ id }).first()) as SubRow | undefined;
  if (!sub || !(await stillOurs(deps.db, id, action, toNumber(sub.service_status)))) return { status: 'done', result: { stale: true } };
  const outcome = await callActionGate(deps.db, svc, sub, await gateRequest(deps.db, sub, operationId), action, true, task);
  if (outcome.status === 'success') return actionSucceeded(deps, svc, action, task, id, outcome.result);
  if ((outcome.status === 'pending' || outcome.retryable) && attempt < task.maxAttempts) {
    return { status: 'retry', error: outcome.status === 'pending' ? `Pending: ${outcome.message ?? 'the gate will finish later.'}` : `Retrying: ${outcome.message}`, retryable: true };
  }
  const message =
    outcome.status === 'pending'
      ? `Service gate '${sub.service_gate}' did not finish the ${action} of subscription ${id}, still pending after ${task.maxAttempts} late checks.`
      : `Service gate '${sub.service_gate}' failed to ${action} subscription ${id}: ${outcome.message}`;
  // The gate had accepted the provision (it answered pending): whatever it finishes later is terminated again.
  return actionFailed(deps, svc, action, task, id, message, action === 'provision' ? operationId : null);
}

async function actionSucceeded(deps: Deps, svc: ActionHandlerServices, action: ServiceAction, task: Task, id: number, result: unknown): Promise<TaskOutcome> {
  const taskId = toNumber(task.payload.taskId ?? task.taskId);
  await writeTx(deps, async (tx) => {
    const row = await lockSub(tx, id);
    if (!row || !(await stillOurs(tx, id, action, toNumber(row.service_status)))) return;
    const now = deps.clock.now();
    const actor = await jobActor(tx);
    // Overlapped by a terminate (status removing): the action's result is recorded, the service stays `removing`, and
    // the terminate now puts back the status this action left should it fail for good.
    const overlapped = toNumber(row.service_status) === SERVICE_STATUS.removing;
    const left = action === 'suspend' ? SERVICE_STATUS.stopped : SERVICE_STATUS.running;
    const under = overlapped && action !== 'terminate' ? { terminateTaskIds: await settleUnderTerminate(tx, id, action, left) } : {};
    const serviceStatus = overlapped ? SERVICE_STATUS.removing : left;
    if (action === 'suspend') {
      await tx('subscriptions').where({ id }).update({ status: SUBSCRIPTION_STATUS.suspended, service_status: serviceStatus, updated_at: now.getTime() });
      // The reason given with the request (dunning: "non-payment of invoice INV-..."), for the customer's notice.
      const reason = typeof task.payload.reason === 'string' ? task.payload.reason : undefined;
      await subscriptionEvent(tx, actor, now, row, 'subscription.suspended', 'SuspendSubscription', { taskId, ...(reason ? { reason } : {}), ...under });
    } else if (action === 'resume') {
      await tx('subscriptions').where({ id }).update({ status: SUBSCRIPTION_STATUS.active, service_status: serviceStatus, updated_at: now.getTime() });
      await subscriptionEvent(tx, actor, now, row, 'subscription.resumed', 'ResumeSubscription', { taskId, ...under });
    } else if (action === 'terminate') {
      await svc.subscriptions.markRemoved(tx, id, now);
      // Its renewal orders still waiting for their invoice will not be delivered: closed. The invoice stays owed
      // (a termination follows dunning: the service ran through the grace days); an operator may credit it.
      await closeWaitingRenewals(tx, actor, now, id, `Subscription ${id} was terminated before this renewal's invoice was paid; the renewal is not delivered. The invoice stays open (an operator may credit it).`);
    } else {
      const reference = String((result as { reference?: unknown } | undefined)?.reference ?? '');
      await tx('subscriptions').where({ id }).update({ gate_reference: reference || null });
      await svc.subscriptions.markProvisioned(tx, id, reference || null, now);
      if (overlapped) {
        await tx('subscriptions').where({ id }).update({ service_status: SERVICE_STATUS.removing });
        await subscriptionEvent(tx, actor, now, row, 'subscription.provisioned_while_removing', 'ProvisionSubscription', { taskId, reference: reference || null, ...under });
      }
    }
  });
  return { status: 'done' };
}

/**
 * A permanent failure: the service status goes back to what it was and the task fails with the message. A provision
 * given up while the gate may still finish it (`undoOperationId`, its operation id) gets a subscription.provision_undo
 * task in the same transaction.
 */
async function actionFailed(deps: Deps, svc: ActionHandlerServices, action: ServiceAction, task: Task, id: number, message: string, undoOperationId: string | null = null): Promise<TaskOutcome> {
  const taskId = toNumber(task.payload.taskId ?? task.taskId);
  await writeTx(deps, async (tx) => {
    const row = await lockSub(tx, id);
    if (!row || !(await stillOurs(tx, id, action, toNumber(row.service_status)))) return;
    // Read now, not when the task started: an action this terminate overlapped may have settled since, and what it
    // left is what to put back.
    const previous = toNumber((await storedPayload(tx, task)).previousServiceStatus ?? SERVICE_STATUS.running);
    const now = deps.clock.now();
    // Overlapped by a terminate: the service stays `removing`; the terminate puts back this action's previous status.
    let under = {};
    if (toNumber(row.service_status) === SERVICE_STATUS.removing && action !== 'terminate') under = { terminateTaskIds: await settleUnderTerminate(tx, id, action, previous) };
    else await tx('subscriptions').where({ id }).update({ service_status: previous, updated_at: now.getTime() });
    const undoTaskId = undoOperationId
      ? await (svc.tasks ?? new TaskQueue(deps)).enqueue(tx, {
          kind: PROVISION_UNDO,
          queue: SUBSCRIPTION_ACTIONS_QUEUE,
          payload: { subscriptionId: id, provisionOperationId: undoOperationId, taskId, action: 'terminate' },
          accountId: toNumber(row.account_id),
          objectType: 'subscription',
          objectId: id,
          maxAttempts: LATE_MAX_ATTEMPTS,
          dedupeKey: `undo:${undoOperationId}`,
        })
      : undefined;
    await subscriptionEvent(tx, await jobActor(tx), now, row, `subscription.${action}_failed`, `${action[0]!.toUpperCase()}${action.slice(1)}Subscription`, {
      taskId,
      error: message,
      ...(undoTaskId ? { undoTaskId } : {}),
      ...under,
    });
  });
  return { status: 'retry', error: message, retryable: false };
}

/**
 * subscription.provision_undo {subscriptionId, provisionOperationId}: asks the given-up provision's outcome and
 * terminates the service it made (under this task's own operation id), whatever the subscription became since.
 * Waits for a provision still pending with the queue's backoff; a permanent failure (or still pending after the
 * last attempt) is noted with the event subscription.provision_undo_failed and the task fails with the message.
 */
async function undoProvision(deps: Deps, svc: ActionHandlerServices, task: Task, operationId: string, attempt: number): Promise<TaskOutcome> {
  const id = toNumber(task.payload.subscriptionId);
  const provisionOperationId = String(task.payload.provisionOperationId);
  const sub = (await deps.db('subscriptions').where({ id }).first()) as SubRow | undefined;
  if (!sub) return { status: 'done', result: { stale: true } };
  const req = await gateRequest(deps.db, sub, operationId);
  const outcome = await callSubscriptionGate(svc.pluginInstances, sub, operationId, attempt > 1, (gate) => undoGivenUpProvision(gate, req, provisionOperationId));
  if (outcome.status === 'success') {
    await writeTx(deps, async (tx) => recordProvisionUndone(tx, await jobActor(tx), deps.clock.now(), sub, provisionOperationId, outcome.result));
    return { status: 'done', result: outcome.result };
  }
  if ((outcome.status === 'pending' || outcome.retryable) && attempt < task.maxAttempts) {
    return { status: 'retry', error: outcome.status === 'pending' ? `Pending: ${outcome.message ?? 'the provision is not finished yet.'}` : `Retrying: ${outcome.message}`, retryable: true };
  }
  const message = `Service gate '${sub.service_gate}' could not undo the given-up provision ${provisionOperationId} of subscription ${id}: ${outcome.status === 'pending' ? `still pending after ${task.maxAttempts} attempts` : outcome.message}. Check the gate for a service left behind.`;
  await writeTx(deps, async (tx) => subscriptionEvent(tx, await jobActor(tx), deps.clock.now(), sub, 'subscription.provision_undo_failed', 'UndoProvision', { operationId: provisionOperationId, taskId: task.taskId, error: message }));
  return { status: 'retry', error: message, retryable: false };
}

/** The workers' handlers of `subscription.<action>` tasks. */
export function subscriptionActionHandlers(deps: Deps, svc: ActionHandlerServices): Record<string, TaskHandler> {
  const out: Record<string, TaskHandler> = {};
  for (const action of SERVICE_ACTIONS) out[`subscription.${action}`] = (task, tc) => runAction(deps, svc, action, task, tc.operationId, tc.attempt);
  out[ACTION_LATE_COMPLETION] = (task, tc) => lateActionCompletion(deps, svc, task, tc.attempt);
  out[PROVISION_UNDO] = (task, tc) => undoProvision(deps, svc, task, tc.operationId, tc.attempt);
  return out;
}
