import { invalid } from './errors';

/**
 * Order workflows kept as data: named steps, each running one action, and transitions that are automatic (on
 * the action's outcome: a decision) or manual (an operator's approve/reject). Pure: validation and stepping only.
 */

export const ORDER_TYPES = ['sales', 'renewal', 'change', 'cancellation', 'resource'] as const;
export type OrderType = (typeof ORDER_TYPES)[number];

/** What a step does, and the outcomes it can end with. */
export const STEP_ACTIONS = {
  fraud_screen: ['pass', 'suspect', 'reject'],
  mark_suspect: ['done'],
  wait_for_approval: ['approved', 'rejected'],
  charge_payment: ['success', 'declined', 'unknown'],
  provision: ['success', 'failure'],
  notify_customer: ['done'],
  complete: [],
  reject: [],
  fail: [],
} as const satisfies Record<string, readonly string[]>;

export type StepAction = keyof typeof STEP_ACTIONS;
export type Outcome = (typeof STEP_ACTIONS)[StepAction][number];

/** PBA order status codes (legacy-xmlrpc.md): NP new, WP waiting payment, SS suspected fraud, WA waiting approval,
 * HL hold, PF provisioning failed, PC provisioned, CP completed, RJ rejected, CA canceled (closed outside its
 * workflow: a billing run's renewal order whose subscription was canceled or terminated before its invoice was paid). */
export type PbaOrderStatus = 'NP' | 'WP' | 'SS' | 'WA' | 'HL' | 'PR' | 'PF' | 'PC' | 'CP' | 'RJ' | 'CA';
/** Statuses an order is finished in: any other means it is still under way. */
export const FINISHED_ORDER_STATUSES: readonly PbaOrderStatus[] = ['CP', 'PC', 'PF', 'RJ', 'CA'];

/** The status an order shows while it is in (or has ended at) a step of this action. */
export const STATUS_OF_ACTION: Record<StepAction, PbaOrderStatus> = {
  fraud_screen: 'NP',
  mark_suspect: 'SS',
  wait_for_approval: 'WA',
  charge_payment: 'WP',
  provision: 'PR',
  notify_customer: 'PC',
  complete: 'CP',
  reject: 'RJ',
  fail: 'PF',
};

const TERMINAL: readonly StepAction[] = ['complete', 'reject', 'fail'];
/** Steps that wait for a person: their outcome comes from ApproveOrder / RejectOrder, not from running. */
const MANUAL: readonly StepAction[] = ['wait_for_approval'];

export interface WorkflowStep {
  action: StepAction;
  /** outcome -> next step name. A step with one outcome `done` moves on automatically. */
  next: Partial<Record<Outcome, string>>;
}

export interface WorkflowDefinition {
  orderType: OrderType;
  start: string;
  steps: Record<string, WorkflowStep>;
}

const STEP_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/** Checks a definition completely, naming the field at fault: a broken workflow must never reach an order. */
export function validateWorkflow(def: unknown): WorkflowDefinition {
  if (def === null || typeof def !== 'object' || Array.isArray(def)) throw invalid('definition', 'A workflow definition is an object with orderType, start and steps.');
  const d = def as Record<string, unknown>;
  if (!ORDER_TYPES.includes(d.orderType as OrderType)) throw invalid('definition.orderType', `orderType must be one of ${ORDER_TYPES.join(', ')}.`);
  if (d.steps === null || typeof d.steps !== 'object' || Array.isArray(d.steps)) throw invalid('definition.steps', 'steps is an object of named steps.');
  const steps = d.steps as Record<string, unknown>;
  const names = Object.keys(steps);
  if (names.length === 0) throw invalid('definition.steps', 'A workflow needs at least one step.');
  if (names.length > 100) throw invalid('definition.steps', 'A workflow may have at most 100 steps.');
  if (typeof d.start !== 'string' || !Object.prototype.hasOwnProperty.call(steps, d.start)) {
    throw invalid('definition.start', `start must name one of the steps (${names.join(', ')}).`);
  }
  const out: Record<string, WorkflowStep> = {};
  for (const name of names) {
    const field = `definition.steps.${name}`;
    if (!STEP_NAME.test(name)) throw invalid(field, `Step name '${name}' must be lower-case letters, digits and _ (starting with a letter).`);
    const raw = steps[name] as Record<string, unknown> | null;
    if (raw === null || typeof raw !== 'object') throw invalid(field, 'A step is an object with action and next.');
    const action = raw.action as StepAction;
    if (typeof action !== 'string' || !Object.prototype.hasOwnProperty.call(STEP_ACTIONS, action)) {
      throw invalid(`${field}.action`, `action must be one of ${Object.keys(STEP_ACTIONS).join(', ')}.`);
    }
    const outcomes: readonly string[] = STEP_ACTIONS[action];
    const next = (raw.next ?? {}) as Record<string, unknown>;
    if (next === null || typeof next !== 'object' || Array.isArray(next)) throw invalid(`${field}.next`, 'next maps each outcome to a step name.');
    for (const [outcome, target] of Object.entries(next)) {
      if (!outcomes.includes(outcome)) {
        throw invalid(`${field}.next.${outcome}`, `A ${action} step has no outcome '${outcome}'${outcomes.length ? ` (its outcomes: ${outcomes.join(', ')})` : ' (it ends the order)'}.`);
      }
      if (typeof target !== 'string' || !Object.prototype.hasOwnProperty.call(steps, target)) {
        throw invalid(`${field}.next.${outcome}`, `'${String(target)}' is not a step of this workflow.`);
      }
    }
    for (const outcome of outcomes) {
      if (!(outcome in next)) throw invalid(`${field}.next.${outcome}`, `A ${action} step must say where the '${outcome}' outcome goes.`);
    }
    out[name] = { action, next: next as WorkflowStep['next'] };
  }
  // Every step reachable from start, and every path ends at a terminal step.
  const seen = new Set<string>();
  const walk = (n: string) => {
    if (seen.has(n)) return;
    seen.add(n);
    for (const t of Object.values(out[n].next)) walk(t as string);
  };
  walk(d.start);
  const unreachable = names.filter((n) => !seen.has(n));
  if (unreachable.length) throw invalid(`definition.steps.${unreachable[0]}`, `Step '${unreachable[0]}' cannot be reached from '${d.start}'.`);
  const canEnd = new Set(names.filter((n) => TERMINAL.includes(out[n].action)));
  if (canEnd.size === 0) throw invalid('definition.steps', 'A workflow needs a step that ends it (complete, reject or fail).');
  for (let changed = true; changed; ) {
    changed = false;
    for (const n of names) {
      if (!canEnd.has(n) && Object.values(out[n].next).some((t) => canEnd.has(t as string))) {
        canEnd.add(n);
        changed = true;
      }
    }
  }
  // A loop is allowed only through a manual step (an operator breaks it); an automatic loop would never end.
  const trapped = names.filter((n) => !canEnd.has(n));
  if (trapped.length) throw invalid(`definition.steps.${trapped[0]}`, `From step '${trapped[0]}' the order can never end.`);
  for (const n of names) {
    const stack = new Set<string>();
    const cycle = (x: string): boolean => {
      if (MANUAL.includes(out[x].action)) return false;
      if (stack.has(x)) return true;
      stack.add(x);
      const found = Object.values(out[x].next).some((t) => cycle(t as string));
      stack.delete(x);
      return found;
    };
    if (cycle(n)) throw invalid(`definition.steps.${n}`, `Step '${n}' is on a loop with no manual step: the order would never stop moving.`);
  }
  return { orderType: d.orderType as OrderType, start: d.start, steps: out };
}

export function isTerminal(def: WorkflowDefinition, step: string): boolean {
  return TERMINAL.includes(def.steps[step].action);
}

export function isManual(def: WorkflowDefinition, step: string): boolean {
  return MANUAL.includes(def.steps[step].action);
}

/** The step after `step` when its action ended with `outcome`. */
export function nextStep(def: WorkflowDefinition, step: string, outcome: Outcome): string {
  const s = def.steps[step];
  if (!s) throw invalid('step', `The workflow has no step '${step}'.`);
  const target = s.next[outcome];
  if (!target) throw invalid('outcome', `Step '${step}' (${s.action}) has no outcome '${outcome}'.`);
  return target;
}

/** The deck's sales workflow: fraud screening -> suspect? wait for approval -> charge -> provision -> notify, or reject. */
export const DEFAULT_SALES_WORKFLOW: WorkflowDefinition = {
  orderType: 'sales',
  start: 'fraud_screening',
  steps: {
    fraud_screening: { action: 'fraud_screen', next: { pass: 'charge_card', suspect: 'mark_suspect', reject: 'reject_order' } },
    mark_suspect: { action: 'mark_suspect', next: { done: 'wait_for_approval' } },
    wait_for_approval: { action: 'wait_for_approval', next: { approved: 'charge_card', rejected: 'reject_order' } },
    charge_card: { action: 'charge_payment', next: { success: 'provision_services', declined: 'reject_order', unknown: 'wait_for_approval' } },
    provision_services: { action: 'provision', next: { success: 'notify_customer', failure: 'provisioning_failed' } },
    notify_customer: { action: 'notify_customer', next: { done: 'completed' } },
    completed: { action: 'complete', next: {} },
    reject_order: { action: 'reject', next: {} },
    provisioning_failed: { action: 'fail', next: {} },
  },
};

/** Renewals, changes and resource orders skip fraud screening: the customer is already known. */
export function defaultWorkflow(orderType: OrderType): WorkflowDefinition {
  if (orderType === 'sales') return DEFAULT_SALES_WORKFLOW;
  if (orderType === 'cancellation') {
    return {
      orderType,
      start: 'provision_changes',
      steps: {
        provision_changes: { action: 'provision', next: { success: 'notify_customer', failure: 'failed' } },
        notify_customer: { action: 'notify_customer', next: { done: 'completed' } },
        completed: { action: 'complete', next: {} },
        failed: { action: 'fail', next: {} },
      },
    };
  }
  return {
    orderType,
    start: 'charge_card',
    steps: {
      charge_card: { action: 'charge_payment', next: { success: 'provision_changes', declined: 'reject_order', unknown: 'wait_for_approval' } },
      wait_for_approval: { action: 'wait_for_approval', next: { approved: 'provision_changes', rejected: 'reject_order' } },
      provision_changes: { action: 'provision', next: { success: 'notify_customer', failure: 'failed' } },
      notify_customer: { action: 'notify_customer', next: { done: 'completed' } },
      completed: { action: 'complete', next: {} },
      reject_order: { action: 'reject', next: {} },
      failed: { action: 'fail', next: {} },
    },
  };
}
