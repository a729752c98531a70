import type { Deps } from '../../context';
import { isSqlite, money, toNumber, type Tx } from '../../db/knex';
import { insertBatched } from '../../db/batch';
import { isTerminal, nextStep, STATUS_OF_ACTION, validateWorkflow, type Outcome, type PbaOrderStatus, type WorkflowDefinition } from '../../domain/workflow';
import type { TaskQueue } from '../../jobs/task-queue';
import { orderNumber } from '../../orders/order-numbers';
import { eventForTransition, startOrder, transition } from '../../orders/transitions';
import type { Workflow, WorkflowsService } from '../../orders/workflows-service';
import { extendSubscriptions, isExtended, type ExtensionRequest } from '../../subscriptions/renewal';
import { recordChanges, type BulkChange } from '../../audit/record-changes';
import { billingActor, type InvoicesPaidListener } from '../documents-service';
import type { InvoicePaidEvent } from '../types';
import { addTo } from '../../domain/group';
import { updateByKey } from '../../db/case-update';

/**
 * Renewals as PBA renewal orders (RN). The billing run places one renewal order per subscription it bills a
 * renewal (or trial conversion) for, in the transaction of its charges and invoice lines, with batched inserts;
 * the order's lines are the subscription's charges of that period, and its charges name it
 * (billing_charges.order_id). The order starts at its (vendor's) renewal workflow's first step; at the charge
 * step it waits for the invoice: no card is charged by the order, the invoice is the payment (auto-pay, a payment
 * recorded by an operator, a credit). When the invoice is paid, renewalOrdersPaid moves each of its orders on,
 * in the transaction that marks the invoice paid: through the charge step, the provision step (the one "extend by
 * a period", guarded by the billed period's start), notify_customer, to completed. A workflow of another shape
 * (say an approval after the charge) is handed to the order engine at the charge step's next step, whose renewal
 * task extends the subscription the same way.
 */

export interface RenewalOrderInput {
  subscriptionId: number;
  accountId: number;
  vendorId: number;
  planId: number;
  /** The period renewed: the subscription's, or for a trial its plan's paid period. */
  periodId: number;
  currency: string;
  parameters: string;
  name: string;
  periodStart: number;
  periodEnd: number;
  trialConversion: boolean;
  charges: { id: number; kind: string; description: string; resourceId: number | null; quantity: string; unitPrice: bigint; amount: bigint }[];
}

/** order_lines.kind of a charge (the kinds priceRenewal uses for RenewSubscription's orders). */
function lineKind(kind: string): string {
  if (kind === 'renewal') return 'renewal';
  if (kind === 'trial_conversion') return 'recurring';
  if (kind === 'resource') return 'resource_recurring';
  return kind;
}

/**
 * Places the renewal orders of one billing-run batch in the caller's transaction (the one that inserted the
 * charges): orders, items, lines, history, audit and order.placed events, each table in batched inserts; the
 * charges get their order. `workflows` caches each vendor's active renewal workflow for the run. Answers the
 * order ids, in the order of `inputs`.
 */
export async function placeRenewalOrders(
  tx: Tx,
  deps: Deps,
  svc: { workflows: Pick<WorkflowsService, 'activeFor'>; tasks: TaskQueue },
  workflows: Map<number, Workflow>,
  runId: number | null,
  at: Date,
  inputs: readonly RenewalOrderInput[],
): Promise<number[]> {
  if (inputs.length === 0) return [];
  for (const v of new Set(inputs.map((i) => i.vendorId))) if (!workflows.has(v)) workflows.set(v, await svc.workflows.activeFor(tx, v, 'renewal'));
  const ms = at.getTime();
  const day = (t: number) => new Date(t).toISOString().slice(0, 10);
  const planned = inputs.map((input) => {
    const wf = workflows.get(input.vendorId)!;
    const start = wf.definition.start;
    const total = input.charges.reduce((s, c) => s + c.amount, 0n);
    return {
      input,
      wf,
      start,
      status: STATUS_OF_ACTION[wf.definition.steps[start]!.action] as PbaOrderStatus,
      total,
      // Unique, and only until the id is known: the charge ids are unique across runs.
      temp: `tmp-rn-${input.charges[0]!.id}`,
      comment: `${input.trialConversion ? 'Trial conversion' : 'Renewal'} ${day(input.periodStart)} to ${day(input.periodEnd)}, billed by the billing run${runId === null ? '' : ` ${runId}`}; paid by its invoice.`,
    };
  });
  await insertBatched(
    tx,
    'orders',
    planned.map((p) => ({
      order_number: p.temp,
      vendor_id: p.input.vendorId,
      account_id: p.input.accountId,
      type: 'renewal',
      status: p.status,
      workflow_id: p.wf.workflowId,
      step: p.start,
      currency: p.input.currency,
      subtotal: money(p.total),
      discount_total: '0',
      tax_total: '0',
      total: money(p.total),
      promo_code_id: null,
      pay_tool_id: null,
      payment_id: null,
      ip_address: null,
      comment: p.comment,
      failure_reason: null,
      created_at: ms,
      updated_at: ms,
    })),
  );
  const idOf = new Map<string, number>();
  for (let i = 0; i < planned.length; i += 500) {
    const rows = (await tx('orders').whereIn('order_number', planned.slice(i, i + 500).map((p) => p.temp)).select('id', 'order_number')) as { id: number; order_number: string }[];
    for (const r of rows) idOf.set(r.order_number, toNumber(r.id));
  }
  const ids = planned.map((p) => idOf.get(p.temp)!);
  await updateByKey(tx, 'orders', 'id', 'order_number', new Map(ids.map((id) => [id, orderNumber('renewal', id)])));
  await insertBatched(
    tx,
    'order_items',
    planned.map((p, k) => ({
      order_id: ids[k],
      position: 1,
      plan_id: p.input.planId,
      period_id: p.input.periodId,
      parent_item_id: null,
      parameters: p.input.parameters || '{}',
      resources: '[]',
      subscription_id: null,
      target_subscription_id: p.input.subscriptionId,
      cancel_type: null,
      effective: null,
      details: JSON.stringify({ billingRunId: runId, periodStart: new Date(p.input.periodStart).toISOString(), periodEnd: new Date(p.input.periodEnd).toISOString(), trialConversion: p.input.trialConversion }),
    })),
  );
  const itemOf = new Map<number, number>();
  for (let i = 0; i < ids.length; i += 500) {
    const rows = (await tx('order_items').whereIn('order_id', ids.slice(i, i + 500)).select('id', 'order_id')) as { id: number; order_id: number }[];
    for (const r of rows) itemOf.set(toNumber(r.order_id), toNumber(r.id));
  }
  await insertBatched(
    tx,
    'order_lines',
    planned.flatMap((p, k) =>
      p.input.charges.map((c, n) => ({
        order_id: ids[k],
        item_id: itemOf.get(ids[k]!),
        position: n + 1,
        kind: lineKind(c.kind),
        description: c.description.slice(0, 255),
        resource_id: c.resourceId,
        quantity: c.quantity,
        unit_price: money(c.unitPrice),
        amount: money(c.amount),
      })),
    ),
  );
  await insertBatched(
    tx,
    'order_history',
    planned.map((p, k) => ({ order_id: ids[k], status: p.status, step: p.start, outcome: null, actor_user_id: null, comment: p.comment, at: ms })),
  );
  await updateByKey(tx, 'billing_charges', 'id', 'order_id', new Map(planned.flatMap((p, k) => p.input.charges.map((c) => [c.id, ids[k]!] as [number, number]))));
  const changes: BulkChange[] = planned.map((p, k) => {
    const number = orderNumber('renewal', ids[k]!);
    return {
      operation: 'PlaceRenewalOrder',
      objectType: 'order',
      objectId: ids[k]!,
      details: { orderNumber: number, accountId: p.input.accountId, type: 'renewal', subscriptionId: p.input.subscriptionId, total: p.total.toString(), currency: p.input.currency, billingRunId: runId },
      event: {
        name: 'order.placed',
        objectType: 'order',
        objectId: ids[k]!,
        accountId: p.input.accountId,
        payload: { orderId: ids[k]!, orderNumber: number, accountId: p.input.accountId, vendorAccountId: p.input.vendorId, type: 'renewal', status: p.status, step: p.start, total: p.total.toString(), currency: p.input.currency, subscriptionId: p.input.subscriptionId, billingRunId: runId },
      },
    };
  });
  // By vendor: each change is audited as done by the system at the vendor that bills it.
  const byVendor = new Map<number, BulkChange[]>();
  planned.forEach((p, k) => byVendor.set(p.input.vendorId, [...(byVendor.get(p.input.vendorId) ?? []), changes[k]!]));
  for (const [vendorId, list] of byVendor) await recordChanges(tx, billingActor(vendorId), at, list);
  // A workflow that does not start by charging (an approval first, say) is run by the order engine from its start.
  for (let k = 0; k < planned.length; k++) {
    const p = planned[k]!;
    if (p.wf.definition.steps[p.start]!.action !== 'charge_payment') await startOrder(tx, deps, svc.tasks, ids[k]!);
  }
  return ids;
}

interface WaitingOrder {
  id: number;
  order_number: string;
  account_id: number;
  vendor_id: number;
  workflow_id: number;
  step: string;
  target_subscription_id: number;
  details: string | null;
}

/** The steps an order goes through from `step` by `outcome`, then through notify_customer steps: null if that does not end the order. */
function pathToEnd(def: WorkflowDefinition, step: string, outcome: Outcome): { step: string; outcome: Outcome }[] | null {
  const path: { step: string; outcome: Outcome }[] = [];
  let s = nextStep(def, step, outcome);
  path.push({ step: s, outcome });
  while (def.steps[s]!.action === 'notify_customer') {
    s = nextStep(def, s, 'done');
    path.push({ step: s, outcome: 'done' });
  }
  return isTerminal(def, s) ? path : null;
}

/**
 * The invoice-paid listener (DocumentsService.onInvoicesPaid): the renewals on the paid invoices, all together.
 * Charges with a renewal order: each order waiting at a charge step moves on (see the top of this file), all the
 * invoices' orders together, in a few statements. Charges without one (billed before renewal orders): the
 * subscription is extended directly. Either way by extendSubscriptions, from the billed period's start to its end:
 * a second delivery of the same payment changes nothing.
 */
export function renewalOrdersPaid(deps: Deps, tasks: TaskQueue): InvoicesPaidListener {
  const definitions = new Map<number, WorkflowDefinition>();
  return async (tx: Tx, events: readonly InvoicePaidEvent[]) => {
    // One pass per (vendor, instant paid): the actor of the records and the instant of the extensions.
    const groups = new Map<string, InvoicePaidEvent[]>();
    for (const e of events) {
      const key = `${e.vendorId}:${e.paidAt.getTime()}`;
      addTo(groups, key, e);
    }
    for (const group of groups.values()) await renewalsPaid(tx, deps, tasks, definitions, group);
  };
}

/** The renewals of invoices of one vendor paid at one instant. */
async function renewalsPaid(tx: Tx, deps: Deps, tasks: TaskQueue, definitions: Map<number, WorkflowDefinition>, events: readonly InvoicePaidEvent[]): Promise<void> {
  const invoiceOf = new Map(events.map((e) => [e.documentId, e]));
  const ids = [...invoiceOf.keys()];
  type PaidCharge = { document_id: number; subscription_id: number; kind: string; period_start: unknown; period_end: unknown; order_id: number | null } & WaitingOrder;
  const charges: PaidCharge[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    // The invoices' renewals with their orders (if any), in one read; on MariaDB a locking read, so an order an
    // operator approves onto its charge step meanwhile is either seen there or waits for this payment to commit
    // (then the engine's charge step finds the invoice paid).
    const read = tx('billing_charges as c')
      .leftJoin('orders as o', 'o.id', 'c.order_id')
      .leftJoin('order_items as i', function () {
        this.on('i.order_id', '=', 'o.id').andOn('i.position', '=', tx.raw('1'));
      })
      .whereIn('c.document_id', ids.slice(i, i + 500))
      .whereIn('c.kind', ['renewal', 'trial_conversion'])
      .whereNotNull('c.subscription_id')
      .orderBy('c.id')
      .select('c.document_id', 'c.subscription_id', 'c.kind', 'c.period_start', 'c.period_end', 'c.order_id', 'o.id', 'o.order_number', 'o.account_id', 'o.vendor_id', 'o.workflow_id', 'o.step', 'i.target_subscription_id', 'i.details');
    charges.push(...((await (isSqlite(tx) ? read : read.forUpdate())) as PaidCharge[]));
  }
  if (charges.length === 0) return;
  const first = events[0]!;
  const actor = billingActor(first.vendorId);
  const paidAt = first.paidAt;
  const request = (c: PaidCharge, orderId?: number): ExtensionRequest => ({
    subscriptionId: toNumber(c.subscription_id),
    from: new Date(toNumber(c.period_start)),
    to: new Date(toNumber(c.period_end)),
    trialConversion: c.kind === 'trial_conversion',
    invoiceId: toNumber(c.document_id),
    orderId,
  });
  // Graced subscriptions are made active by dunning's listener (liftDunning), which knows about other dunned invoices.
  const direct = charges.filter((c) => c.order_id === null || c.order_id === undefined);
  if (direct.length) await extendSubscriptions(tx, actor, paidAt, direct.map((c) => request(c)), { operation: 'billing.renewed', reactivateGraced: false });

  const withOrder = charges.filter((c) => c.order_id !== null && c.order_id !== undefined);
  if (withOrder.length === 0) return;
  const orders = withOrder.filter((c) => c.id !== null && c.id !== undefined);
  const byId = new Map<number, WaitingOrder>(orders.map((o) => [toNumber(o.id), o]));
  for (const o of orders) {
    const wid = toNumber(o.workflow_id);
    if (!definitions.has(wid)) {
      const row = (await tx('workflows').where({ id: wid }).first('definition')) as { definition: string };
      definitions.set(wid, validateWorkflow(JSON.parse(row.definition)));
    }
  }
  const comment = (c: PaidCharge) => `Invoice ${invoiceOf.get(toNumber(c.document_id))!.number} paid.`;
  // Orders whose workflow goes charge -> provision -> (notify ->) end: extended and finished here, together.
  const inline: { order: WaitingOrder; charge: PaidCharge; def: WorkflowDefinition; provision: string }[] = [];
  for (const c of withOrder) {
    const o = byId.get(toNumber(c.order_id));
    if (!o) continue;
    const def = definitions.get(toNumber(o.workflow_id))!;
    // Not (or no longer) at a charge step: the engine's charge step finds the invoice paid when it gets there.
    if (def.steps[o.step]?.action !== 'charge_payment') continue;
    const provision = nextStep(def, o.step, 'success');
    if (def.steps[provision]!.action === 'provision' && pathToEnd(def, provision, 'success') && pathToEnd(def, provision, 'failure')) {
      inline.push({ order: o, charge: c, def, provision });
    } else {
      await transition(tx, deps, tasks, { id: toNumber(o.id), account_id: toNumber(o.account_id), vendor_id: toNumber(o.vendor_id), workflow_id: toNumber(o.workflow_id), step: o.step }, 'success', actor, comment(c));
    }
  }
  if (inline.length === 0) return;
  const results = await extendSubscriptions(tx, actor, paidAt, inline.map((x) => request(x.charge, toNumber(x.order.id))), { reactivateGraced: false });
  const at = paidAt.getTime();
  const history: Record<string, unknown>[] = [];
  const changes: BulkChange[] = [];
  const finals = new Map<string, { from: string; step: string; status: PbaOrderStatus; failure: string | null; ids: number[] }>();
  inline.forEach((x, k) => {
    const r = results[k]!;
    const ok = isExtended(r) || r.skipped === 'already_extended';
    const note = isExtended(r) ? `Subscription ${r.subscriptionId} renewed until ${r.to.toISOString()}.` : r.message;
    const steps = [{ step: x.provision, outcome: 'success' as Outcome, comment: comment(x.charge) }, ...pathToEnd(x.def, x.provision, ok ? 'success' : 'failure')!.map((s, n) => ({ ...s, comment: n === 0 ? note : '' }))];
    let from = x.order.step;
    const orderId = toNumber(x.order.id);
    let status: PbaOrderStatus = 'WP';
    let outcome: Outcome = 'success';
    for (const s of steps) {
      status = STATUS_OF_ACTION[x.def.steps[s.step]!.action];
      history.push({ order_id: orderId, status, step: s.step, outcome: s.outcome, actor_user_id: null, comment: s.comment.slice(0, 1024), at });
      outcome = s.outcome;
      from = s.step;
    }
    // One audit record and one event for the whole move (order.completed, or order.provisioning_failed), naming
    // the steps passed; the history has a row per step. (Three of each per order made paying an invoice of ten
    // renewals write 60 more rows.)
    const prev = steps.length > 1 ? steps[steps.length - 2]!.step : x.order.step;
    const name = eventForTransition(x.def, prev, from, outcome);
    const passed = steps.map((s) => s.step);
    changes.push({
      operation: name,
      objectType: 'order',
      objectId: orderId,
      details: { from: x.order.step, to: from, steps: passed, outcome, status, comment: note },
      event: { name, objectType: 'order', objectId: orderId, accountId: toNumber(x.order.account_id), payload: { orderId, accountId: toNumber(x.order.account_id), vendorAccountId: toNumber(x.order.vendor_id), from: x.order.step, step: from, steps: passed, outcome, status } },
    });
    const failure = ok ? null : note.slice(0, 1024);
    const key = `${x.order.step}|${from}|${failure ?? ''}`;
    const f = finals.get(key) ?? { from: x.order.step, step: from, status, failure, ids: [] };
    f.ids.push(orderId);
    finals.set(key, f);
  });
  for (const f of finals.values()) {
    for (let i = 0; i < f.ids.length; i += 500) {
      await tx('orders')
        .whereIn('id', f.ids.slice(i, i + 500))
        .where('step', f.from)
        .update({ step: f.step, status: f.status, updated_at: at, ...(f.failure ? { failure_reason: f.failure } : {}) });
    }
  }
  await insertBatched(tx, 'order_history', history);
  await recordChanges(tx, actor, paidAt, changes);
}

/** Whether an order is paid by billing-run invoices: every one of them paid (true), some open (false); null: not such an order. */
export async function invoicePaidForOrder(conn: Tx | Deps['db'], orderId: number): Promise<{ paid: boolean; numbers: string[] } | null> {
  const rows = (await conn('billing_charges as c').leftJoin('documents as d', 'd.id', 'c.document_id').where('c.order_id', orderId).select('d.number', 'd.status')) as { number: string | null; status: string | null }[];
  if (rows.length === 0) return null;
  return { paid: rows.every((r) => r.status === 'paid'), numbers: [...new Set(rows.map((r) => r.number ?? '').filter(Boolean))] };
}
