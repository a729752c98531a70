import { recordChanges, type BulkChange } from '../audit/record-changes';
import type { Actor } from '../context';
import { toNumber, type Tx } from '../db/knex';
import { notFound } from '../domain/errors';
import { addPeriod, type PeriodUnit } from '../domain/period';
import { SUBSCRIPTION_STATUS } from './subscriptions-service';
import { addTo } from '../domain/group';

/** Statuses a subscription can be extended from: a trial converts, graced and expired become active again. */
const EXTENDABLE: readonly number[] = [SUBSCRIPTION_STATUS.trial, SUBSCRIPTION_STATUS.active, SUBSCRIPTION_STATUS.graced, SUBSCRIPTION_STATUS.expired, SUBSCRIPTION_STATUS.suspended];

export interface ExtensionRequest {
  subscriptionId: number;
  /** The period to extend by. Default: the subscription's own; a trial's default is its plan's first paid period. */
  periodId?: number;
  /**
   * The guard: extend only while the expiration is still this instant (the start of the period that was sold or
   * invoiced), so a second delivery of the same payment or order changes nothing. Without it: from the current
   * expiration (now when it has none).
   */
  from?: Date;
  /** The period's end when the caller already fixed it (an invoiced period); default from + the period. */
  to?: Date;
  /** A trial conversion (status trial, or a subscription on a trial period): to the paid period, active. */
  trialConversion?: boolean;
  orderId?: number;
  invoiceId?: number;
}

export interface Extension {
  subscriptionId: number;
  accountId: number;
  periodId: number;
  from: Date;
  to: Date;
  /** A trial moved to its paid period. */
  trialConverted: boolean;
  /** The status before (a graced or expired subscription is active after). */
  previousStatus: number;
}

/** A request that changed nothing: already extended (the guard), or a subscription that cannot be extended. */
export interface NotExtended {
  subscriptionId: number;
  skipped: 'already_extended' | 'not_extendable';
  status: number | null;
  message: string;
}

export type ExtensionResult = Extension | NotExtended;

export function isExtended(r: ExtensionResult): r is Extension {
  return !('skipped' in r);
}

export interface ExtendOptions {
  /** Audit operation (default RenewSubscription; the billing run's direct renewals say billing.renewed). */
  operation?: string;
  /**
   * Make a graced subscription active again (default true). The invoice-paid path leaves that to dunning's own
   * listener, which keeps it graced while another of its invoices is being dunned.
   */
  reactivateGraced?: boolean;
}

/**
 * The one "extend a subscription by a period", for renewal orders (RenewSubscription's and the billing run's RN
 * orders) and for renewal invoices paid without an order. In the caller's transaction, for many subscriptions at
 * once (a few statements per batch, one guarded UPDATE per subscription): the expiration moves from `from` (the
 * guard; default the current expiration) to `to` (default one period later); the subscription is on that period,
 * its last bill date is `now` and its next bill date the new expiration. A trial becomes active on its paid period
 * (trial conversion); a graced or expired subscription becomes active again (a stopped service is resumed by the
 * caller, through its gate); a suspended one stays suspended (resuming goes through its gate). A terminated,
 * canceled or not yet provisioned subscription is not extended. Each extension is audited with the event
 * subscription.renewed. Answers per request, in order.
 */
export async function extendSubscriptions(tx: Tx, actor: Actor, now: Date, requests: readonly ExtensionRequest[], opts: ExtendOptions = {}): Promise<ExtensionResult[]> {
  if (requests.length === 0) return [];
  const subs = new Map<number, SubscriptionState>();
  const ids = [...new Set(requests.map((r) => r.subscriptionId))];
  for (let i = 0; i < ids.length; i += 500) {
    const rows = (await tx('subscriptions').whereIn('id', ids.slice(i, i + 500)).select(...SUBSCRIPTION_STATE)) as SubscriptionState[];
    for (const r of rows) subs.set(toNumber(r.id), r);
  }
  // A trial without a given period converts to its plan's first enabled paid period (by sort order, then id).
  const converts = (r: ExtensionRequest, s: { status: number } | undefined) => r.trialConversion === true || toNumber(s?.status ?? 0) === SUBSCRIPTION_STATUS.trial;
  const trialPlans = [...new Set(requests.filter((r) => r.periodId === undefined && subs.has(r.subscriptionId) && converts(r, subs.get(r.subscriptionId))).map((r) => toNumber(subs.get(r.subscriptionId)!.plan_id)))];
  const paidPeriodOf = new Map<number, number>();
  if (trialPlans.length) {
    const rows = (await tx('plan_periods').whereIn('plan_id', trialPlans).where({ trial: false, enabled: true }).orderBy(['plan_id', 'sort_order', 'id']).select('id', 'plan_id')) as { id: number; plan_id: number }[];
    for (const r of rows) if (!paidPeriodOf.has(toNumber(r.plan_id))) paidPeriodOf.set(toNumber(r.plan_id), toNumber(r.id));
  }
  const periodIdOf = (r: ExtensionRequest, s: { period_id: number; plan_id: number; status: number }) =>
    r.periodId ?? (converts(r, s) ? paidPeriodOf.get(toNumber(s.plan_id)) ?? toNumber(s.period_id) : toNumber(s.period_id));
  // The periods' lengths, for the requests that do not give their period's end.
  const periodIds = [...new Set(requests.filter((r) => r.to === undefined && subs.has(r.subscriptionId)).map((r) => periodIdOf(r, subs.get(r.subscriptionId)!)))];
  const periods = new Map<number, { duration: number; unit: PeriodUnit }>();
  for (let i = 0; i < periodIds.length; i += 500) {
    const rows = (await tx('plan_periods').whereIn('id', periodIds.slice(i, i + 500)).select('id', 'duration', 'unit')) as { id: number; duration: unknown; unit: PeriodUnit }[];
    for (const r of rows) periods.set(toNumber(r.id), { duration: toNumber(r.duration), unit: r.unit });
  }

  const results: ExtensionResult[] = new Array(requests.length);
  const changes: BulkChange[] = [];
  // Updates planned and not yet made, at most one per subscription (a second request for one waits for the first).
  let planned: PlannedUpdate[] = [];
  const plannedIds = new Set<number>();
  const flush = async () => {
    const made = await guardedUpdates(tx, now, planned);
    planned.forEach((u, n) => {
      const r = requests[u.k]!;
      if (!made[n]) {
        results[u.k] = { subscriptionId: r.subscriptionId, skipped: 'already_extended', status: u.status, message: `Subscription ${r.subscriptionId} changed meanwhile; it was not extended.` };
        // Later requests for it must read it again.
        subs.delete(r.subscriptionId);
        return;
      }
      const accountId = u.accountId;
      const { periodId, from, to, trialConverted } = u;
      results[u.k] = { subscriptionId: r.subscriptionId, accountId, periodId, from, to, trialConverted, previousStatus: u.status };
      changes.push({
        operation: opts.operation ?? 'RenewSubscription',
        objectType: 'subscription',
        objectId: r.subscriptionId,
        details: { periodId, from: from.toISOString(), to: to.toISOString(), orderId: r.orderId, invoiceId: r.invoiceId, trialConverted: trialConverted || undefined },
        event: {
          name: 'subscription.renewed',
          objectType: 'subscription',
          objectId: r.subscriptionId,
          accountId,
          payload: {
            subscriptionId: r.subscriptionId,
            accountId,
            periodId,
            previousExpirationDate: from.toISOString(),
            expirationDate: to.toISOString(),
            orderId: r.orderId ?? null,
            invoiceId: r.invoiceId ?? null,
            trialConverted,
          },
        },
      });
    });
    planned = [];
    plannedIds.clear();
  };
  for (const [k, r] of requests.entries()) {
    if (plannedIds.has(r.subscriptionId)) await flush();
    if (!subs.has(r.subscriptionId)) {
      const row = (await tx('subscriptions').where({ id: r.subscriptionId }).first(...SUBSCRIPTION_STATE)) as SubscriptionState | undefined;
      if (row) subs.set(r.subscriptionId, row);
    }
    const s = subs.get(r.subscriptionId);
    if (!s) throw notFound('Subscription', r.subscriptionId);
    const status = toNumber(s.status);
    const current = s.expiration_date === null || s.expiration_date === undefined ? null : toNumber(s.expiration_date);
    if (!EXTENDABLE.includes(status)) {
      results[k] = { subscriptionId: r.subscriptionId, skipped: 'not_extendable', status, message: `Subscription ${r.subscriptionId} is in status ${status}; it is not extended.` };
      continue;
    }
    if (r.from !== undefined && current !== r.from.getTime()) {
      results[k] = { subscriptionId: r.subscriptionId, skipped: 'already_extended', status, message: `Subscription ${r.subscriptionId} no longer expires on ${r.from.toISOString()}; it was extended already.` };
      continue;
    }
    const periodId = periodIdOf(r, s);
    const from = r.from ?? (current === null ? now : new Date(current));
    let to = r.to;
    if (!to) {
      const period = periods.get(periodId);
      if (!period) throw notFound('Plan period', periodId);
      to = addPeriod(from, period.duration, period.unit);
    }
    const trialConverted = converts(r, s);
    const activate = trialConverted || status === SUBSCRIPTION_STATUS.expired || (status === SUBSCRIPTION_STATUS.graced && opts.reactivateGraced !== false);
    plannedIds.add(r.subscriptionId);
    planned.push({ k, id: r.subscriptionId, accountId: toNumber(s.account_id), status, current, periodId, from, to, trialConverted, activate });
    // A later request for the same subscription (its next period, on another invoice paid together) sees this one.
    subs.set(r.subscriptionId, { ...s, period_id: periodId, expiration_date: to.getTime(), status: activate ? SUBSCRIPTION_STATUS.active : status });
  }
  await flush();
  await recordChanges(tx, actor, now, changes);
  return results;
}

/** What an extension reads of a subscription. */
interface SubscriptionState {
  id: number;
  account_id: number;
  plan_id: number;
  period_id: number;
  status: number;
  expiration_date: unknown;
}
const SUBSCRIPTION_STATE = ['id', 'account_id', 'plan_id', 'period_id', 'status', 'expiration_date'] as const;

interface PlannedUpdate {
  /** The request's index. */
  k: number;
  id: number;
  accountId: number;
  status: number;
  current: number | null;
  periodId: number;
  from: Date;
  to: Date;
  trialConverted: boolean;
  activate: boolean;
}

/** Thrown inside a savepoint to undo a group update some of whose rows had changed meanwhile. */
class GroupChanged extends Error {}

/**
 * The extensions, each guarded by what was read (a concurrent extension or status change makes it change nothing):
 * those alike (same status, expiration, period, end) in one statement under a savepoint, kept only when every
 * row matched; otherwise one statement per subscription. Answers per update whether it was made.
 */
async function guardedUpdates(tx: Tx, now: Date, updates: readonly PlannedUpdate[]): Promise<boolean[]> {
  const made: boolean[] = new Array(updates.length).fill(false);
  const groups = new Map<string, number[]>();
  updates.forEach((u, n) => {
    const key = `${u.status}|${u.current}|${u.periodId}|${u.to.getTime()}|${u.activate}`;
    addTo(groups, key, n);
  });
  const run = (conn: Tx, u: PlannedUpdate, ids: number[]) => {
    const q = conn('subscriptions').whereIn('id', ids).where({ status: u.status });
    return (u.current === null ? q.whereNull('expiration_date') : q.where('expiration_date', u.current)).update({
      period_id: u.periodId,
      expiration_date: u.to.getTime(),
      next_bill_date: u.to.getTime(),
      last_bill_date: now.getTime(),
      ...(u.activate ? { status: SUBSCRIPTION_STATUS.active } : {}),
      updated_at: now.getTime(),
    });
  };
  for (const members of groups.values()) {
    const first = updates[members[0]!]!;
    for (let i = 0; i < members.length; i += 500) {
      const chunk = members.slice(i, i + 500);
      if (chunk.length > 1) {
        try {
          await tx.transaction(async (sp) => {
            if ((await run(sp, first, chunk.map((n) => updates[n]!.id))) !== chunk.length) throw new GroupChanged();
          });
          for (const n of chunk) made[n] = true;
          continue;
        } catch (e) {
          if (!(e instanceof GroupChanged)) throw e;
        }
      }
      for (const n of chunk) made[n] = (await run(tx, updates[n]!, [updates[n]!.id])) > 0;
    }
  }
  return made;
}

/** One subscription (a RenewSubscription order's provision step); see extendSubscriptions. */
export async function extendSubscriptionByPeriod(tx: Tx, actor: Actor, subscriptionId: number, now: Date, opts: { periodId?: number; orderId?: number; from?: Date; to?: Date } = {}): Promise<ExtensionResult> {
  const [r] = await extendSubscriptions(tx, actor, now, [{ subscriptionId, ...opts }]);
  return r!;
}
