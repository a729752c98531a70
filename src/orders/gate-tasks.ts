import type { Task } from '../jobs/task-queue';

/**
 * Every kind of task that calls a service gate, wherever it runs (the order saga and subscription actions run on
 * the 'orders' queue), with the gate action it performs as the API shows it (ProvisioningService TaskAction).
 * ListTasks lists these and everything on the 'provisioning' queue. Add a kind here when a new task calls a gate.
 */
export const GATE_TASK_ACTIONS: Readonly<Record<string, string>> = Object.freeze({
  'saga.provision_item': 'provision',
  'saga.compensate_item': 'terminate',
  'saga.change_item': 'change_limits',
  'subscription.provision': 'provision',
  'subscription.suspend': 'suspend',
  'subscription.resume': 'resume',
  'subscription.terminate': 'terminate',
  'saga.late_completion': 'provision',
  'order.cancellation': 'terminate',
  'subscription.scheduled_cancel': 'terminate',
  'order.change': 'change_limits',
  'order.resource': 'change_limits',
  'subscription.scheduled_change': 'change_limits',
  'subscription.late_completion': 'provision',
  'subscription.provision_undo': 'terminate',
  // Domain items of orders (domain-items.ts): the payload's action says register_domain, transfer_domain or renew_domain.
  'saga.domain_item': 'register_domain',
  'saga.domain_undo': 'terminate',
  // Registrar operations still pending at their task's last attempt (late completion): register_domain or renew_domain.
  'saga.domain_late_completion': 'register_domain',
  'domain.renew_late_completion': 'renew_domain',
  // A paid domain renewal (billing's domain.renew task, src/domains/lifecycle.ts).
  'domain.renew': 'renew_domain',
});

export const GATE_TASK_KINDS: readonly string[] = Object.keys(GATE_TASK_ACTIONS);

/** The gate action of a task: its payload's (late completions, domain items), else from the table above, else its kind without a gate./domain. prefix. */
export function gateTaskAction(task: Pick<Task, 'kind' | 'payload'>): string {
  if ((task.kind.endsWith('late_completion') || task.kind === 'saga.domain_item') && typeof task.payload?.action === 'string') return task.payload.action;
  return GATE_TASK_ACTIONS[task.kind] ?? task.kind.replace(/^(gate|domain)\./, '');
}

/** The subscription a gate task acts on: its object, or (saga tasks, whose object is the order) its payload's. */
export function gateTaskSubscriptionId(task: Pick<Task, 'objectType' | 'objectId' | 'payload'>): number | undefined {
  if (task.objectType === 'subscription' && task.objectId) return Number(task.objectId);
  const fromPayload = Number(task.payload?.subscriptionId);
  return Number.isInteger(fromPayload) && fromPayload > 0 ? fromPayload : undefined;
}
