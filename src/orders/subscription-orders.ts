import { recordChange } from '../audit/record-change';
import type { Actor, Deps } from '../context';
import type { CatalogService, PlanPeriod } from '../catalog/catalog-service';
import { isSqlite, money, sumToBigInt, toBigInt, toNumber, type Conn, type Tx } from '../db/knex';
import { invalid, notAllowed, notFound } from '../domain/errors';
import { oneOf, optionalText, positiveId } from '../domain/fields';
import { formatAmount } from '../domain/money';
import { withPaidTax } from '../billing/invoice-share';
import { priceOrderTaxTx } from '../billing/order-tax';
import { priceChange, priceRenewal, priceResourceAddition, type PriceLine } from '../domain/pricing';
import { remainingShare, subtractPeriod, type PeriodUnit } from '../domain/period';
import { FINISHED_ORDER_STATUSES, STATUS_OF_ACTION, type OrderType } from '../domain/workflow';
import { idempotent } from '../idempotency';
import type { TaskQueue } from '../jobs/task-queue';
import { SERVICE_STATUS, SUBSCRIPTION_STATUS, type SubscriptionRow } from '../subscriptions/subscriptions-service';
import { insertNumberedOrder } from './order-numbers';
import { startOrder } from './transitions';
import { SCHEDULED_CANCEL } from './lifecycle-steps';
import type { WorkflowsService } from './workflows-service';

/**
 * Orders on an EXISTING subscription: renewal (one more period, charged, no provisioning) and cancellation
 * (terminated through the gate now or at the end of the term, with a refund, a credit or nothing). Each is an
 * ordinary order with one item whose target_subscription_id names the subscription; it runs through its
 * workflow (src/domain/workflow.ts defaults: renewal charges then applies; cancellation applies) and its
 * provision step runs the `order.lifecycle` task (lifecycle-steps.ts) instead of the sales saga.
 */

export const CANCEL_TYPES = ['refund', 'credit', 'none'] as const;
export type CancelType = (typeof CANCEL_TYPES)[number];
export const CHANGE_TIMINGS = ['immediate', 'end_of_term'] as const;
export type ChangeTiming = (typeof CHANGE_TIMINGS)[number];

/** Statuses an order is finished in: any other means it is still under way. */
export { FINISHED_ORDER_STATUSES };


export interface CancellationAmount {
  /** Minor units of money back (refund) or owed (credit); 0 when nothing is due. */
  amount: bigint;
  /** The successful charge the money came from (a refund goes back to it). */
  paymentId: number | null;
  /** How the amount was found, for the order's comment and details. */
  note: string;
  /** The amount per payment given back (they add up to `amount`), oldest payment first. */
  parts: RefundPart[];
}

export interface PlacedOnSubscription {
  orderId: number;
}

const STATUS_NAME = new Map<number, string>(Object.entries(SUBSCRIPTION_STATUS).map(([k, v]) => [v, k]));
const RENEWABLE: readonly number[] = [SUBSCRIPTION_STATUS.active, SUBSCRIPTION_STATUS.graced, SUBSCRIPTION_STATUS.expired, SUBSCRIPTION_STATUS.suspended];
const CANCELABLE: readonly number[] = [SUBSCRIPTION_STATUS.trial, SUBSCRIPTION_STATUS.active, SUBSCRIPTION_STATUS.graced, SUBSCRIPTION_STATUS.expired, SUBSCRIPTION_STATUS.suspended];
const DAY_MS = 86_400_000;

function statusText(status: number): string {
  return `${STATUS_NAME.get(status) ?? 'status'} (${status})`;
}

/** The subscription in the actor's subtree (NOT_FOUND outside it), locked on MariaDB for the placing transaction. */
export async function scopedSubscription(tx: Conn, actor: Actor, subscriptionId: number): Promise<SubscriptionRow> {
  const id = positiveId(subscriptionId, 'subscriptionId');
  // The lock comes first, so the checks after it (refuseOpenOrder) see an order a concurrent request committed while
  // this one waited (4 CancelSubscription at once placed 4 cancellations, each crediting the term). (This was found
  // under REPEATABLE READ, where a plain read before the lock fixed the snapshot; connections now run at READ
  // COMMITTED, see db/knex.ts, and the lock-first order stays the simple rule.)
  const q = tx('subscriptions').where({ id }).first();
  const row = (await (isSqlite(tx) ? q : q.forUpdate())) as SubscriptionRow | undefined;
  const visible = row
    ? ((await tx('subscriptions as s').join('accounts as a', 'a.id', 's.account_id').where('s.id', id).andWhere('a.path', 'like', `${actor.accountPath}%`).first('s.id')) as { id: number } | undefined)
    : undefined;
  if (!row || !visible) throw notFound('Subscription', id);
  return row;
}

/**
 * Refuses a second lifecycle order while one on the same subscription is still under way. A billing run's renewal
 * order waiting for its invoice refuses another renewal (pay the invoice instead) but not a cancellation or change.
 */
async function refuseOpenOrder(tx: Tx, sub: SubscriptionRow, type: OrderType): Promise<void> {
  const q = tx('order_items as i')
    .join('orders as o', 'o.id', 'i.order_id')
    .where('i.target_subscription_id', sub.id)
    .whereNotIn('o.status', FINISHED_ORDER_STATUSES as unknown as string[]);
  if (type !== 'renewal') {
    q.where((w) => w.whereNot('o.type', 'renewal').orWhereNotExists((x) => x.select(tx.raw('1')).from('billing_charges as c').whereRaw('c.order_id = o.id')));
  }
  const open = (await q.first('o.order_number', 'o.type', 'o.status')) as { order_number: string; type: string; status: string } | undefined;
  if (open) {
    throw notAllowed(`Subscription ${sub.id} already has ${open.type} order ${open.order_number} under way (status ${open.status}); wait until it has finished.`, 'subscriptionId');
  }
}

/**
 * Refuses a renewal (or an immediate change that starts a new term) while an end-of-term cancellation is scheduled
 * (its subscription.scheduled_cancel task not yet carried out): the cancellation would terminate the service at the
 * current expiration date all the same, and the period paid for would never be delivered. (The billing run bills no
 * renewal for such a subscription.)
 */
async function refuseScheduledCancellation(tx: Tx, sub: SubscriptionRow, what = 'a renewal'): Promise<void> {
  const scheduled = (await tx('tasks')
    .where({ kind: SCHEDULED_CANCEL, object_type: 'subscription', object_id: String(sub.id) })
    .whereIn('status', ['pending', 'running', 'failed'])
    .first('id', 'run_at')) as { id: number; run_at: unknown } | undefined;
  if (scheduled) {
    throw notAllowed(`Subscription ${sub.id} is to be canceled at the end of its term, ${new Date(toNumber(scheduled.run_at)).toISOString()} (task ${toNumber(scheduled.id)}); ${what} would be charged for a period it would not get. To keep the subscription, an operator cancels that task first (console, Tasks).`, 'subscriptionId');
  }
}

/**
 * What a cancellation gives back: every successful charge of the subscription's CURRENT term, each within its own
 * refund period (the period's refund period days, counted from that payment). The term's payment (termPayment: its
 * sales or renewal order, or the billing run's renewal invoice paid by card) and, after it, each charge of a change
 * order (an immediate upgrade's prorated amount, a period switch) or a resource order (more resources mid-term) on
 * this subscription. For each: what it paid for this subscription (its lines, before tax), then
 * - the period's **non-refundable amount**, taken ONCE for the term, from the earliest payments given back, less
 *   what of the term's payments is kept anyway (a payment past its refund period keeps its whole amount: when it is
 *   at least the non-refundable amount, nothing more is kept from the others);
 * - less the **credit already given** for the term (a downgrade's credit memo, net of tax), from the latest payments
 *   first (a downgrade gives back what the upgrade before it charged): money credited is not given back twice;
 * - plus the tax paid on what is left (withPaidTax, that payment's invoice), at most what is still unrefunded of the
 *   payment.
 * Each part is refunded to its own payment (or credited against its own invoice). No payment in its refund period,
 * or no successful payment at all: nothing.
 */
export async function cancellationAmount(conn: Conn, sub: SubscriptionRow, period: Pick<PlanPeriod, 'refundPeriodDays' | 'nonRefundableAmount'>, now: Date): Promise<CancellationAmount> {
  const term = await termPayment(conn, sub);
  if (!term) return { amount: 0n, paymentId: null, note: 'No successful payment of this subscription to give back.', parts: [] };
  const charges: TermCharge[] = [
    { paymentId: term.paymentId, paymentAmount: term.paymentAmount, paidAt: term.paidAt, invoiceId: term.invoiceId, what: term.what, net: sumToBigInt(await term.paidSum()) },
    ...(await termCharges(conn, sub, term)),
  ];
  const open = (c: TermCharge) => now.getTime() <= c.paidAt + period.refundPeriodDays * DAY_MS;
  const back = charges.filter(open);
  if (back.length === 0) {
    return { amount: 0n, paymentId: term.paymentId, note: `The refund period (${period.refundPeriodDays} days from payment ${charges[charges.length - 1]!.paymentId}) is over.`, parts: [] };
  }
  const kept = charges.filter((c) => !open(c)).reduce((s, c) => s + c.net, 0n);
  const nonRefundable = period.nonRefundableAmount > kept ? period.nonRefundableAmount - kept : 0n;
  const credited = await creditGivenInTerm(conn, sub, term);
  const nets = back.map((c) => (c.net > 0n ? c.net : 0n));
  deduct(nets, nonRefundable, false);
  deduct(nets, credited, true);
  const parts: RefundPart[] = [];
  const said: string[] = [];
  for (const [i, c] of back.entries()) {
    const [{ r }] = (await conn('payments').where({ parent_payment_id: c.paymentId, kind: 'refund', status: 'success' }).sum({ r: 'amount' })) as { r: unknown }[];
    const left = c.paymentAmount - sumToBigInt(r);
    const gross = await withPaidTax(conn, c.invoiceId, nets[i]!);
    let amount = gross < left ? gross : left;
    if (amount < 0n) amount = 0n;
    said.push(`payment ${c.paymentId} (${c.what}): ${c.net} paid for this subscription before tax, ${nets[i]} given back, ${gross} with tax, ${left} left on the payment`);
    if (amount > 0n) parts.push({ paymentId: c.paymentId, amount, invoiceId: c.invoiceId, what: c.what });
  }
  const amount = parts.reduce((s, p) => s + p.amount, 0n);
  const past = charges.filter((c) => !open(c)).map((c) => c.paymentId);
  return {
    amount,
    paymentId: parts[0]?.paymentId ?? back[0]!.paymentId,
    note: `Within the refund period of ${said.join('; ')}. ${period.nonRefundableAmount} not refundable for the term${kept > 0n ? ` (${kept} kept of payment${past.length > 1 ? 's' : ''} ${past.join(', ')}, past the refund period)` : ''}${credited > 0n ? `, ${credited} already credited by a downgrade` : ''}.`,
    parts,
  };
}

/** One successful charge of the current term. */
interface TermCharge {
  paymentId: number;
  paymentAmount: bigint;
  paidAt: number;
  invoiceId: number | null;
  what: string;
  /** What it paid for the subscription, before tax. */
  net: bigint;
}

/** What a cancellation gives back of one payment. */
export interface RefundPart {
  paymentId: number;
  /** Minor units, above 0, tax included. */
  amount: bigint;
  /** The invoice the payment paid (a credit memo is written against it). */
  invoiceId: number | null;
  what: string;
}

/** Takes `amount` out of `nets` (in place), earliest first, or latest first when `latestFirst`; never below 0. */
function deduct(nets: bigint[], amount: bigint, latestFirst: boolean): void {
  let rest = amount;
  const order = nets.map((_, i) => i);
  if (latestFirst) order.reverse();
  for (const i of order) {
    if (rest <= 0n) return;
    const take = nets[i]! < rest ? nets[i]! : rest;
    nets[i] = nets[i]! - take;
    rest -= take;
  }
}

/**
 * Paid after `term`'s payment, so in the same term: the successful charges of the subscription's change and resource
 * orders. (A change or resource order is priced on currentTerm, which is the term the latest payment paid for: one
 * placed after a renewal was paid, even before that renewal's term began, is priced on and belongs to that term.)
 */
async function termCharges(conn: Conn, sub: Pick<SubscriptionRow, 'id'>, term: TermPayment): Promise<TermCharge[]> {
  const rows = (await conn('orders as o')
    .join('order_items as i', 'i.order_id', 'o.id')
    .join('payments as p', 'p.id', 'o.payment_id')
    .where('i.target_subscription_id', sub.id)
    .whereIn('o.type', ['change', 'resource'])
    .whereIn('o.status', ['CP', 'PC'])
    .where('p.status', 'success')
    .where((q) => q.where('p.created_at', '>', term.paidAt).orWhere((w) => w.where('p.created_at', term.paidAt).andWhere('p.id', '>', term.paymentId)))
    .orderBy('p.id')
    .select('o.id as order_id', 'o.order_number', 'i.id as item_id', 'p.id as payment_id', 'p.amount as payment_amount', 'p.created_at as paid_at')) as
    { order_id: number; order_number: string; item_id: number; payment_id: number; payment_amount: unknown; paid_at: unknown }[];
  const out: TermCharge[] = [];
  for (const row of rows) {
    const invoice = (await conn('documents').where({ type: 'invoice', order_id: row.order_id }).orderBy('id').first('id')) as { id: number } | undefined;
    const [{ s }] = (await conn('order_lines').where({ order_id: row.order_id, item_id: row.item_id }).sum({ s: 'amount' })) as { s: unknown }[];
    out.push({
      paymentId: toNumber(row.payment_id),
      paymentAmount: toBigInt(row.payment_amount),
      paidAt: toNumber(row.paid_at),
      invoiceId: invoice ? toNumber(invoice.id) : null,
      what: `order ${row.order_number}`,
      net: sumToBigInt(s),
    });
  }
  return out;
}

/** The credit already given in `term` (since its payment): a downgrade's credit memos, net of tax. */
async function creditGivenInTerm(conn: Conn, sub: Pick<SubscriptionRow, 'id'>, term: TermPayment): Promise<bigint> {
  const [{ s }] = (await conn('documents as d')
    .join('orders as o', 'o.id', 'd.order_id')
    .join('order_items as i', 'i.order_id', 'o.id')
    .where({ 'd.type': 'credit_memo', 'o.type': 'change', 'i.target_subscription_id': sub.id })
    .where('d.created_at', '>=', term.paidAt)
    .sum({ s: 'd.subtotal' })) as { s: unknown }[];
  return sumToBigInt(s);
}

/** The payment of a subscription's current term, the invoice it paid, and what of it was for the subscription. */
export interface TermPayment {
  paymentId: number;
  paymentAmount: bigint;
  paidAt: number;
  /** The invoice the payment paid (null: an order charged before orders had invoices). */
  invoiceId: number | null;
  /** "invoice INV-..." or "order SO...": for notes. */
  what: string;
  /** What the payment paid for this subscription, before tax (a sum as the database answers it). */
  paidSum(): Promise<unknown>;
}

/**
 * The latest successful payment of the subscription's term: its sales or renewal order's charge, or a billing-run
 * renewal (or trial conversion) invoice paid by card (auto-pay, PayInvoice), whichever is later.
 */
export async function termPayment(conn: Conn, sub: Pick<SubscriptionRow, 'id'>): Promise<TermPayment | null> {
  const paid = (await conn('orders as o')
    .join('order_items as i', 'i.order_id', 'o.id')
    .join('payments as p', 'p.id', 'o.payment_id')
    .where((q) => q.where({ 'o.type': 'sales', 'i.subscription_id': sub.id }).orWhere({ 'o.type': 'renewal', 'i.target_subscription_id': sub.id }))
    .whereIn('o.status', ['CP', 'PC'])
    .where('p.status', 'success')
    .orderBy('o.id', 'desc')
    .first('o.id as order_id', 'o.order_number', 'i.id as item_id', 'p.id as payment_id', 'p.amount as payment_amount', 'p.created_at as paid_at')) as
    | { order_id: number; order_number: string; item_id: number; payment_id: number; payment_amount: unknown; paid_at: unknown }
    | undefined;
  const billed = (await conn('document_lines as l')
    .join('documents as inv', 'inv.id', 'l.document_id')
    .join('document_applications as a', 'a.target_document_id', 'inv.id')
    .join('documents as pd', 'pd.id', 'a.source_document_id')
    .join('payments as p', 'p.id', 'pd.payment_id')
    .where({ 'l.subscription_id': sub.id, 'inv.type': 'invoice', 'pd.type': 'payment', 'p.kind': 'purchase', 'p.status': 'success' })
    .whereIn('l.kind', ['renewal', 'trial_conversion'])
    .whereNotNull('l.charge_id')
    .orderBy('p.id', 'desc')
    .first('inv.id as invoice_id', 'inv.number', 'p.id as payment_id', 'p.amount as payment_amount', 'p.created_at as paid_at')) as
    | { invoice_id: number; number: string; payment_id: number; payment_amount: unknown; paid_at: unknown }
    | undefined;
  if (billed && (!paid || toNumber(billed.paid_at) > toNumber(paid.paid_at) || (toNumber(billed.paid_at) === toNumber(paid.paid_at) && toNumber(billed.payment_id) > toNumber(paid.payment_id)))) {
    return {
      paymentId: toNumber(billed.payment_id),
      paymentAmount: toBigInt(billed.payment_amount),
      paidAt: toNumber(billed.paid_at),
      invoiceId: toNumber(billed.invoice_id),
      what: `invoice ${billed.number}`,
      paidSum: async () => ((await conn('document_lines').where({ document_id: billed.invoice_id, subscription_id: sub.id }).sum({ s: 'amount' })) as { s: unknown }[])[0]!.s,
    };
  }
  if (!paid) return null;
  const invoice = (await conn('documents').where({ type: 'invoice', order_id: paid.order_id }).orderBy('id').first('id')) as { id: number } | undefined;
  return {
    paymentId: toNumber(paid.payment_id),
    paymentAmount: toBigInt(paid.payment_amount),
    paidAt: toNumber(paid.paid_at),
    invoiceId: invoice ? toNumber(invoice.id) : null,
    what: `order ${paid.order_number}`,
    paidSum: async () => ((await conn('order_lines').where({ order_id: paid.order_id, item_id: paid.item_id }).sum({ s: 'amount' })) as { s: unknown }[])[0]!.s,
  };
}


/**
 * The term a subscription is in now, [start, expiration): the period its last renewal or trial conversion was
 * billed for when the billing run billed it, else one period of the subscription's plan period back from the
 * expiration date (never before the start date). Not the last bill date: a renewal is billed and paid days before
 * the term it pays for begins, so [last bill date, expiration) is longer than the term and would prorate too little.
 */
export async function currentTerm(conn: Conn, sub: SubscriptionRow, period: { duration: number; unit: PeriodUnit }): Promise<{ start: Date; end: Date } | null> {
  if (sub.expiration_date === null || sub.expiration_date === undefined) return null;
  const end = toNumber(sub.expiration_date);
  const billed = (await conn('billing_charges')
    .where({ subscription_id: sub.id, period_end: end })
    .whereIn('kind', ['renewal', 'trial_conversion'])
    .orderBy('id', 'desc')
    .first('period_start')) as { period_start: unknown } | undefined;
  let start = billed ? toNumber(billed.period_start) : subtractPeriod(new Date(end), period.duration, period.unit).getTime();
  if (!billed && sub.start_date !== null && sub.start_date !== undefined) start = Math.max(start, toNumber(sub.start_date));
  return start < end ? { start: new Date(start), end: new Date(end) } : null;
}

/** Places renewal and cancellation orders on existing subscriptions. */
export class SubscriptionOrdersService {
  constructor(
    private readonly deps: Deps,
    private readonly svc: { catalog: CatalogService; tasks: TaskQueue; workflows: WorkflowsService },
  ) {}

  /**
   * RenewSubscription: a renewal order for one more period (the subscription's, or another period of its plan),
   * priced from the period's renewal fee and the recurring fees of the resources above the plan; charged, then the
   * subscription's expiration moves one period on (an expired service is resumed). No provisioning call.
   */
  async renew(actor: Actor, subscriptionId: number, opts: { periodId?: number; idempotencyKey?: string; payToolId?: number } = {}): Promise<PlacedOnSubscription> {
    const id = positiveId(subscriptionId, 'subscriptionId');
    const periodId = opts.periodId === undefined || opts.periodId === null ? undefined : positiveId(opts.periodId, 'periodId');
    return idempotent(this.deps, actor, opts.idempotencyKey, 'RenewSubscription', { id, periodId }, async (tx) => {
      const sub = await scopedSubscription(tx, actor, id);
      const status = toNumber(sub.status);
      if (!RENEWABLE.includes(status)) {
        throw notAllowed(`Subscription ${id} is ${statusText(status)}; only an active, graced, expired or suspended subscription can be renewed${status === SUBSCRIPTION_STATUS.trial ? ' (a trial is converted by ordering a paid period)' : ''}.`, 'subscriptionId');
      }
      await refuseOpenOrder(tx, sub, 'renewal');
      await refuseScheduledCancellation(tx, sub);
      const plan = await this.svc.catalog.getPlanForOrder(tx, toNumber(sub.plan_id));
      if (!plan) throw notFound('Plan', toNumber(sub.plan_id));
      const pid = periodId ?? toNumber(sub.period_id);
      const period = plan.periods.find((p) => p.periodId === pid);
      if (!period || !period.enabled || period.trial) throw invalid('periodId', `Period ${pid} is not an available paid period of plan '${plan.name}'.`);
      const additional = ((await tx('subscription_resources').where({ subscription_id: id }).select('resource_id', 'additional')) as { resource_id: number; additional: unknown }[]).map((r) => ({
        resourceId: toNumber(r.resource_id),
        quantity: Number(r.additional),
      }));
      const priced = priceRenewal({
        planName: plan.name,
        period: { renewalFee: period.renewalFee, duration: period.duration, unit: period.unit },
        rates: plan.resources,
        additional,
      });
      const orderId = await this.insertOrder(tx, actor, 'renewal', sub, { planId: plan.planId, periodId: pid, currency: plan.currency, lines: priced.lines, payToolId: opts.payToolId, details: {} });
      return { orderId };
    });
  }

  /**
   * CancelSubscription / PlaceSubscriptionCancellationOrder_API: a cancellation order. `immediate` terminates the
   * service through its gate when the order runs, then gives back what cancelType says (refund to the original
   * payment, a credit through issueOrderCredit, or nothing; see cancellationAmount); `end_of_term` records the
   * cancellation and terminates at the expiration date (nothing is given back: the term is used).
   */
  async cancel(actor: Actor, subscriptionId: number, opts: { cancelType: string; when: string; reason?: string; idempotencyKey?: string }): Promise<PlacedOnSubscription> {
    const id = positiveId(subscriptionId, 'subscriptionId');
    const cancelType = oneOf(opts.cancelType, 'cancelType', CANCEL_TYPES);
    const when = oneOf(opts.when, 'when', CHANGE_TIMINGS);
    const reason = optionalText(opts.reason, 'reason', 1024) ?? '';
    return idempotent(this.deps, actor, opts.idempotencyKey, 'CancelSubscription', { id, cancelType, when, reason }, async (tx) => {
      const sub = await scopedSubscription(tx, actor, id);
      const status = toNumber(sub.status);
      if (!CANCELABLE.includes(status)) throw notAllowed(`Subscription ${id} is ${statusText(status)}; it cannot be canceled.`, 'subscriptionId');
      if (toNumber(sub.service_status) !== SERVICE_STATUS.running && toNumber(sub.service_status) !== SERVICE_STATUS.stopped) {
        throw notAllowed(`Subscription ${id}'s service is changing (service status ${toNumber(sub.service_status)}); cancel it once that has finished.`, 'subscriptionId');
      }
      await refuseOpenOrder(tx, sub, 'cancellation');
      if (when === 'end_of_term' && (sub.expiration_date === null || sub.expiration_date === undefined)) {
        throw invalid('when', `Subscription ${id} has no expiration date to cancel at; cancel it immediately.`);
      }
      const plan = await this.svc.catalog.getPlanForOrder(tx, toNumber(sub.plan_id));
      if (!plan) throw notFound('Plan', toNumber(sub.plan_id));
      const period = plan.periods.find((p) => p.periodId === toNumber(sub.period_id));
      if (!period) throw notFound('Plan period', toNumber(sub.period_id));
      const now = this.deps.clock.now();
      const due: CancellationAmount =
        when === 'immediate' && cancelType !== 'none'
          ? await cancellationAmount(tx, sub, period, now)
          : { amount: 0n, paymentId: null, parts: [], note: when === 'end_of_term' ? 'Canceled at the end of the term: the term is used, nothing is given back.' : 'cancelType none: nothing is given back.' };
      // One line per payment given back (a refund goes to each payment, a credit is written against each invoice).
      const kind = cancelType === 'refund' ? 'refund' : 'credit';
      const lines: PriceLine[] = due.parts.map((p) => ({
        kind,
        description: `${plan.name}: ${kind} on cancellation${due.parts.length > 1 ? ` (${p.what})` : ''}`,
        quantity: 1,
        unitPrice: -p.amount,
        amount: -p.amount,
      }));
      const orderId = await this.insertOrder(tx, actor, 'cancellation', sub, {
        planId: toNumber(sub.plan_id),
        periodId: toNumber(sub.period_id),
        currency: plan.currency,
        lines,
        cancelType,
        effective: when,
        comment: reason,
        details: { reason, amount: due.amount.toString(), paymentId: due.paymentId, refunds: due.parts.map((p) => ({ paymentId: p.paymentId, amount: p.amount.toString() })), note: due.note },
      });
      return { orderId };
    });
  }

  /**
   * ChangeSubscriptionPlan: a change order moving the subscription to another plan (on the same service gate) and/or
   * period. `immediate` is priced by the exact share of the current term still ahead (priceChange: credit for the
   * old recurring fee's share, charge for the new one's; a period of another length starts a new term, charged in
   * full); the change runs through the gate's changeLimits once charged, and a negative total becomes a credit
   * (issueOrderCredit). `end_of_term` costs nothing now and is applied at the expiration date.
   */
  async change(actor: Actor, subscriptionId: number, opts: { planId: number; periodId: number; when: string; idempotencyKey?: string; payToolId?: number }): Promise<PlacedOnSubscription> {
    const id = positiveId(subscriptionId, 'subscriptionId');
    const planId = positiveId(opts.planId, 'planId');
    const periodId = positiveId(opts.periodId, 'periodId');
    const when = oneOf(opts.when, 'when', CHANGE_TIMINGS);
    return idempotent(this.deps, actor, opts.idempotencyKey, 'ChangeSubscriptionPlan', { id, planId, periodId, when }, async (tx) => {
      const sub = await scopedSubscription(tx, actor, id);
      const status = toNumber(sub.status);
      if (status !== SUBSCRIPTION_STATUS.active && status !== SUBSCRIPTION_STATUS.graced) {
        throw notAllowed(`Subscription ${id} is ${statusText(status)}; only an active or graced subscription can change its plan.`, 'subscriptionId');
      }
      if (toNumber(sub.service_status) !== SERVICE_STATUS.running) throw notAllowed(`Subscription ${id}'s service is not running (service status ${toNumber(sub.service_status)}); change its plan once it runs.`, 'subscriptionId');
      await refuseOpenOrder(tx, sub, 'change');
      const oldPlan = await this.svc.catalog.getPlanForOrder(tx, toNumber(sub.plan_id));
      if (!oldPlan) throw notFound('Plan', toNumber(sub.plan_id));
      const oldPeriod = oldPlan.periods.find((p) => p.periodId === toNumber(sub.period_id));
      if (!oldPeriod) throw notFound('Plan period', toNumber(sub.period_id));
      const plan = await this.svc.catalog.getPlanForOrder(tx, planId);
      if (!plan || !(await this.svc.catalog.isSellable(tx, toNumber(sub.vendor_id), planId))) throw invalid('planId', `Plan ${planId} does not exist or is not for sale to this account.`);
      const period = plan.periods.find((p) => p.periodId === periodId);
      if (!period || !period.enabled || period.trial) throw invalid('periodId', `Period ${periodId} is not an available paid period of plan '${plan.name}'.`);
      if (planId === toNumber(sub.plan_id) && periodId === toNumber(sub.period_id)) throw invalid('planId', `Subscription ${id} is already on plan '${plan.name}' with period ${periodId}.`);
      if (plan.currency !== oldPlan.currency) throw invalid('planId', `Plan '${plan.name}' is priced in ${plan.currency}, the subscription in ${oldPlan.currency}.`);
      const gates = (await tx('plans as p').join('service_templates as t', 't.id', 'p.template_id').whereIn('p.id', [planId, toNumber(sub.plan_id)]).select('p.id', 't.service_gate')) as { id: number; service_gate: string }[];
      const newGate = gates.find((g) => toNumber(g.id) === planId)?.service_gate;
      if (newGate !== sub.service_gate) throw invalid('planId', `Plan '${plan.name}' is delivered by service gate '${newGate}', this subscription by '${sub.service_gate}'; order the new plan and cancel this one instead.`);
      let lines: PriceLine[] = [];
      const details: Record<string, unknown> = { fromPlanId: toNumber(sub.plan_id), fromPeriodId: toNumber(sub.period_id), planId, periodId };
      if (when === 'immediate') {
        const term = await currentTerm(tx, sub, oldPeriod);
        if (!term) throw invalid('when', `Subscription ${id} has no current term to prorate; change it at the end of the term.`);
        const now = this.deps.clock.now();
        const share = remainingShare(term.start, term.end, now);
        const sameLength = period.duration === oldPeriod.duration && period.unit === oldPeriod.unit;
        if (!sameLength) await refuseScheduledCancellation(tx, sub, 'a change to a period of another length (a new term, charged in full)');
        lines = priceChange({ oldPlanName: oldPlan.name, newPlanName: plan.name, oldFee: oldPeriod.recurringFee, newFee: period.recurringFee, share, sameLength }).lines;
        details.share = `${share.numerator}/${share.denominator}`;
        details.newTerm = !sameLength;
      }
      const orderId = await this.insertOrder(tx, actor, 'change', sub, { planId, periodId, currency: plan.currency, lines, effective: when, payToolId: opts.payToolId, details });
      return { orderId };
    });
  }

  /**
   * A resource order: more of some of the subscription's resources (quantity = how much to add, up to 4 decimals),
   * within each rate's maximum. Priced per resource: the setup fee for the quantity, and the recurring fee for it
   * times the share of the current term still ahead; charged, then the gate's changeLimits with the raised limits,
   * then the subscription's additional quantities and limits. SOAP AddSubscriptionResources places one.
   */
  async buyResources(actor: Actor, subscriptionId: number, opts: { resources: { resourceId: number; quantity: number }[]; idempotencyKey?: string; payToolId?: number }): Promise<PlacedOnSubscription> {
    const id = positiveId(subscriptionId, 'subscriptionId');
    if (!Array.isArray(opts.resources) || opts.resources.length === 0) throw invalid('resources', 'Name at least one resource and the quantity to add.');
    const added = opts.resources.map((r, i) => {
      const resourceId = positiveId(r?.resourceId, `resources[${i}].resourceId`);
      const quantity = Number(r?.quantity);
      if (!Number.isFinite(quantity) || quantity <= 0) throw invalid(`resources[${i}].quantity`, 'quantity is how much to add: a number above 0.');
      if (opts.resources.findIndex((x) => Number(x?.resourceId) === resourceId) !== i) throw invalid(`resources[${i}].resourceId`, `Resource ${resourceId} appears twice.`);
      return { resourceId, quantity };
    });
    return idempotent(this.deps, actor, opts.idempotencyKey, 'BuySubscriptionResources', { id, added, payToolId: opts.payToolId ?? null }, async (tx) => {
      const sub = await scopedSubscription(tx, actor, id);
      const status = toNumber(sub.status);
      if (status !== SUBSCRIPTION_STATUS.active && status !== SUBSCRIPTION_STATUS.graced) throw notAllowed(`Subscription ${id} is ${statusText(status)}; resources are added to an active or graced subscription.`, 'subscriptionId');
      if (toNumber(sub.service_status) !== SERVICE_STATUS.running) throw notAllowed(`Subscription ${id}'s service is not running (service status ${toNumber(sub.service_status)}).`, 'subscriptionId');
      await refuseOpenOrder(tx, sub, 'resource');
      const plan = await this.svc.catalog.getPlanForOrder(tx, toNumber(sub.plan_id));
      if (!plan) throw notFound('Plan', toNumber(sub.plan_id));
      const current = (await tx('subscription_resources').where({ subscription_id: id }).select('resource_id', 'included', 'additional')) as { resource_id: number; included: unknown; additional: unknown }[];
      added.forEach((a, i) => {
        const rate = plan.resources.find((r) => r.resourceId === a.resourceId);
        const have = current.find((c) => toNumber(c.resource_id) === a.resourceId);
        if (!rate || !have) throw invalid(`resources[${i}].resourceId`, `Resource ${a.resourceId} is not one of plan '${plan.name}''s resources.`);
        const total = Number(have.included) + Number(have.additional) + a.quantity;
        if (rate.max !== null && total > rate.max) throw invalid(`resources[${i}].quantity`, `${rate.name}: at most ${rate.max} ${rate.unit} in all; the subscription has ${Number(have.included) + Number(have.additional)}.`);
      });
      const period = plan.periods.find((p) => p.periodId === toNumber(sub.period_id));
      const term = period ? await currentTerm(tx, sub, period) : null;
      if (!term) throw notAllowed(`Subscription ${id} has no current term.`, 'subscriptionId');
      const share = remainingShare(term.start, term.end, this.deps.clock.now());
      const priced = priceResourceAddition({ rates: plan.resources, added, share });
      const orderId = await this.insertOrder(tx, actor, 'resource', sub, { planId: plan.planId, periodId: toNumber(sub.period_id), currency: plan.currency, lines: priced.lines, payToolId: opts.payToolId, resources: added, details: { share: `${share.numerator}/${share.denominator}` } });
      return { orderId };
    });
  }

  /** Writes the order, its one item on the subscription, its lines and history, and starts its workflow. */
  private async insertOrder(
    tx: Tx,
    actor: Actor,
    type: OrderType,
    sub: SubscriptionRow,
    o: { planId: number; periodId: number; currency: string; lines: PriceLine[]; payToolId?: number; cancelType?: CancelType; effective?: ChangeTiming; comment?: string; resources?: { resourceId: number; quantity: number }[]; details: Record<string, unknown> },
  ): Promise<number> {
    const accountId = toNumber(sub.account_id);
    const vendorId = toNumber(sub.vendor_id);
    if (o.payToolId !== undefined && o.payToolId !== null) {
      positiveId(o.payToolId, 'payToolId');
      if (!(await tx('pay_tools').where({ id: o.payToolId, account_id: accountId }).first('id'))) throw invalid('payToolId', `Pay tool ${o.payToolId} is not one of account ${accountId}'s.`);
    }
    const net = o.lines.reduce((s, l) => s + l.amount, 0n);
    const subtotal = o.lines.filter((l) => l.kind !== 'discount').reduce((s, l) => s + l.amount, 0n);
    const discount = subtotal - net;
    const workflow = await this.svc.workflows.activeFor(tx, vendorId, type);
    const start = workflow.definition.start;
    const status = STATUS_OF_ACTION[workflow.definition.steps[start]!.action];
    const at = this.deps.clock.now().getTime();
    const comment = (o.comment ?? '').slice(0, 1024);
    const { orderId, number } = await insertNumberedOrder(tx, type, {
      vendor_id: vendorId,
      account_id: accountId,
      status,
      workflow_id: workflow.workflowId,
      step: start,
      currency: o.currency,
      subtotal: money(subtotal),
      discount_total: money(discount),
      tax_total: money(0n),
      total: money(net),
      promo_code_id: null,
      pay_tool_id: o.payToolId ?? null,
      payment_id: null,
      ip_address: actor.remoteAddr ?? null,
      comment,
      failure_reason: null,
      created_at: at,
      updated_at: at,
    });
    const [rawItem] = (await tx('order_items').insert({
      order_id: orderId,
      position: 1,
      plan_id: o.planId,
      period_id: o.periodId,
      parent_item_id: null,
      parameters: sub.parameters || '{}',
      resources: JSON.stringify(o.resources ?? []),
      subscription_id: null,
      target_subscription_id: sub.id,
      cancel_type: o.cancelType ?? null,
      effective: o.effective ?? null,
      details: JSON.stringify(o.details),
    })) as number[];
    const itemId = toNumber(rawItem);
    if (o.lines.length) {
      await tx('order_lines').insert(
        o.lines.map((l, i) => ({
          order_id: orderId,
          item_id: itemId,
          position: i + 1,
          kind: l.kind,
          description: l.description.slice(0, 255),
          resource_id: l.resourceId ?? null,
          quantity: l.quantity,
          unit_price: money(l.unitPrice),
          amount: money(l.amount),
        })),
      );
    }
    // An order that charges pays its tax with it; a credit (net < 0) gets its tax share from the invoice it credits.
    const { total } = await priceOrderTaxTx(tx, orderId, net);
    await tx('order_history').insert({ order_id: orderId, status, step: start, outcome: null, actor_user_id: actor.userId, comment, at });
    const subscriptionId = toNumber(sub.id);
    await recordChange(tx, actor, new Date(at), {
      operation: { renewal: 'PlaceRenewalOrder', change: 'PlaceChangeOrder', resource: 'PlaceResourceOrder', cancellation: 'PlaceCancellationOrder', sales: 'PlaceOrder' }[type],
      objectType: 'order',
      objectId: orderId,
      details: { orderNumber: number, accountId, type, subscriptionId, total: total.toString(), currency: o.currency, cancelType: o.cancelType, when: o.effective },
      event: {
        name: 'order.placed',
        accountId,
        payload: { orderId, orderNumber: number, accountId, vendorAccountId: vendorId, type, status, step: start, total: total.toString(), currency: o.currency, subscriptionId },
      },
    });
    await startOrder(tx, this.deps, this.svc.tasks, orderId);
    return orderId;
  }
}

/** "12.50 USD" for comments. */
export function amountText(amount: bigint, currency: string): string {
  return `${formatAmount(amount, currency)} ${currency}`;
}
