import type { Actor, Deps } from '../context';
import { recordChange } from '../audit/record-change';
import { isSqlite, toDate, toNumber, type Tx } from '../db/knex';
import { inTransaction } from '../db/transaction';
import { conflict, invalid, notAllowed, notFound } from '../domain/errors';
import { positiveId } from '../domain/fields';
import type { PeriodUnit } from '../domain/period';
import { emitEvent } from '../events/outbox';
import { isUniqueViolation } from '../idempotency';
import { SUBSCRIPTION_STATUS } from '../subscriptions/subscriptions-service';
import { overageChargeKey } from './run/charge-keys';
import { periodContaining } from './run/periods';
import { formatQuantity, parseQuantity, quantityFromDb, QTY_SCALE } from './usage-quantity';

export type UsageMode = 'increment' | 'set';

export interface UsageReportInput {
  subscriptionId: number;
  resourceId: number;
  /** Decimal text, at most 4 decimals; an increment may be negative (a correction), a set may not. */
  quantity: string;
  mode: UsageMode;
  /** The reporter's id for this report, 1..128 characters: the same id again is answered, not counted again. */
  usageId: string;
  /** When the usage happened (default: now); decides the usage period it counts towards. */
  at?: Date;
}

export interface UsageReportResult {
  subscriptionId: number;
  resourceId: number;
  /** The period's usage right after this report, decimal text. */
  usage: string;
  periodStart: Date;
  periodEnd: Date;
  /** True when this usage id had been reported before and this is its first answer again. */
  replayed: boolean;
}

/** Subscriptions that take usage: trial, active, graced, suspended (usage of a suspended service still happened). */
const METERED: readonly number[] = [SUBSCRIPTION_STATUS.trial, SUBSCRIPTION_STATUS.active, SUBSCRIPTION_STATUS.graced, SUBSCRIPTION_STATUS.suspended];
/** usage.threshold_reached is emitted once per period at each of these shares of the allowance. */
export const USAGE_THRESHOLDS = [90, 100] as const;
/** A reporter's clock may run a little ahead of ours. */
const FUTURE_SKEW_MS = 5 * 60_000;

interface SubRow {
  id: number;
  account_id: number;
  status: number;
  start_date: unknown;
  duration: number;
  unit: PeriodUnit;
}

/**
 * Reported usage of metered resources (ReportUsage, DUMMYGATE IncrementResourceUsage_API / SetResourceUsage_API).
 * Usage counts per usage period, which is the subscription's billing period counted from its start date;
 * subscription_resources.usage mirrors the current period. The billing run bills usage above the allowance
 * (included + additional) of each closed period as overage.
 */
export class UsageService {
  constructor(private readonly deps: Deps) {}

  async report(actor: Actor, input: UsageReportInput): Promise<UsageReportResult> {
    const subscriptionId = positiveId(input.subscriptionId, 'subscriptionId');
    const resourceId = positiveId(input.resourceId, 'resourceId');
    if (input.mode !== 'increment' && input.mode !== 'set') throw invalid('mode', "mode must be 'increment' or 'set'.");
    const usageId = typeof input.usageId === 'string' ? input.usageId.trim() : '';
    if (!usageId || usageId.length > 128) throw invalid('usageId', 'usageId must be 1 to 128 characters: your own id of this usage report.');
    const quantity = parseQuantity(input.quantity, 'quantity');
    if (input.mode === 'set' && quantity < 0n) throw invalid('quantity', 'A usage set with mode set cannot be negative.');
    if (input.at !== undefined && (!(input.at instanceof Date) || Number.isNaN(input.at.getTime()))) throw invalid('at', 'at must be a valid instant.');
    try {
      return await inTransaction(this.deps.db, (tx) => this.reportIn(tx, actor, { subscriptionId, resourceId, quantity, mode: input.mode, usageId, at: input.at }));
    } catch (e) {
      // A concurrent twin with the same usage id won the unique index: answer what it stored.
      if (!isUniqueViolation(e)) throw e;
      return inTransaction(this.deps.db, (tx) => this.reportIn(tx, actor, { subscriptionId, resourceId, quantity, mode: input.mode, usageId, at: input.at }));
    }
  }

  private async reportIn(
    tx: Tx,
    actor: Actor,
    r: { subscriptionId: number; resourceId: number; quantity: bigint; mode: UsageMode; usageId: string; at?: Date },
  ): Promise<UsageReportResult> {
    const q = tx('subscriptions as s')
      .join('accounts as a', 'a.id', 's.account_id')
      .join('plan_periods as pp', 'pp.id', 's.period_id')
      .where('s.id', r.subscriptionId)
      .andWhere('a.path', 'like', `${actor.accountPath}%`)
      .first('s.id', 's.account_id', 's.status', 's.start_date', 'pp.duration', 'pp.unit');
    const sub = (await q) as SubRow | undefined;
    if (!sub) throw notFound('Subscription', r.subscriptionId);
    if (actor.accountType === 'customer') throw notAllowed('Usage is reported by the vendor side (a provider or reseller, or its metering system), not by the customer.');

    const earlier = (await tx('usage_reports').where({ subscription_id: r.subscriptionId, usage_id: r.usageId }).first()) as
      | { resource_id: number; mode: string; quantity: unknown; usage_after: unknown; period_start: unknown; at: unknown }
      | undefined;
    if (earlier) {
      const same =
        toNumber(earlier.resource_id) === r.resourceId &&
        earlier.mode === r.mode &&
        quantityFromDb(earlier.quantity) === r.quantity &&
        (r.at === undefined || toNumber(earlier.at) === r.at.getTime());
      if (!same) throw conflict(`Usage id '${r.usageId}' was already reported for subscription ${r.subscriptionId} with other values.`, 'usageId');
      const sp = await this.periodRow(tx, r.subscriptionId, toNumber(earlier.resource_id), toNumber(earlier.period_start));
      return {
        subscriptionId: r.subscriptionId,
        resourceId: r.resourceId,
        usage: formatQuantity(quantityFromDb(earlier.usage_after)),
        periodStart: toDate(earlier.period_start),
        periodEnd: sp ? toDate(sp.period_end) : toDate(earlier.period_start),
        replayed: true,
      };
    }

    if (!METERED.includes(toNumber(sub.status)) || sub.start_date === null || sub.start_date === undefined) {
      throw notAllowed(`Subscription ${r.subscriptionId} takes no usage in its status (${toNumber(sub.status)}): only trial, active, graced or suspended subscriptions do.`, 'subscriptionId');
    }
    const res = (await tx('subscription_resources').where({ subscription_id: r.subscriptionId, resource_id: r.resourceId }).first()) as
      | { included: unknown; additional: unknown }
      | undefined;
    if (!res) throw invalid('resourceId', `Resource ${r.resourceId} is not a resource of subscription ${r.subscriptionId}.`);

    const now = this.deps.clock.now();
    const at = r.at ?? now;
    const start = toDate(sub.start_date);
    if (at.getTime() < start.getTime()) throw invalid('at', `at is before the subscription started (${start.toISOString()}).`);
    if (at.getTime() > now.getTime() + FUTURE_SKEW_MS) throw invalid('at', 'at is in the future: usage is reported after it happened.');
    const period = periodContaining(start, toNumber(sub.duration), sub.unit, at);
    const periodStart = period.start.getTime();
    const billed = await tx('billing_charges').where({ charge_key: overageChargeKey(r.subscriptionId, periodStart, r.resourceId) }).first('id');
    if (billed) throw notAllowed(`The usage period ${period.start.toISOString()} to ${period.end.toISOString()} of subscription ${r.subscriptionId} is already billed; report this usage in a later period.`, 'at');

    // The period row: created if absent, then locked, so concurrent reports add up instead of overwriting.
    await tx('usage_periods')
      .insert({ subscription_id: r.subscriptionId, resource_id: r.resourceId, period_start: periodStart, period_end: period.end.getTime(), usage: '0', threshold_pct_sent: null, updated_at: now.getTime() })
      .onConflict(['subscription_id', 'resource_id', 'period_start'])
      .ignore();
    const row = await this.periodRow(tx, r.subscriptionId, r.resourceId, periodStart, true);
    const before = quantityFromDb(row!.usage);
    const after = r.mode === 'increment' ? before + r.quantity : r.quantity;
    if (after < 0n) throw invalid('quantity', `This decrement would make the period's usage negative (${formatQuantity(before)} + ${formatQuantity(r.quantity)}).`);

    const allowance = quantityFromDb(res.included) + quantityFromDb(res.additional);
    const sentBefore = row!.threshold_pct_sent === null || row!.threshold_pct_sent === undefined ? 0 : toNumber(row!.threshold_pct_sent);
    const reached = allowance > 0n ? USAGE_THRESHOLDS.filter((pct) => pct > sentBefore && after * 100n >= allowance * BigInt(pct)) : [];
    const sent = reached.length ? reached[reached.length - 1]! : sentBefore || null;
    await tx('usage_periods')
      .where({ subscription_id: r.subscriptionId, resource_id: r.resourceId, period_start: periodStart })
      .update({ usage: formatQuantity(after), threshold_pct_sent: sent, updated_at: now.getTime() });
    await tx('usage_reports').insert({
      subscription_id: r.subscriptionId,
      resource_id: r.resourceId,
      usage_id: r.usageId,
      mode: r.mode,
      quantity: formatQuantity(r.quantity),
      usage_after: formatQuantity(after),
      period_start: periodStart,
      at: at.getTime(),
      created_at: now.getTime(),
    });
    // The subscription's resource shows the usage of the period we are in now.
    if (period.start.getTime() <= now.getTime() && now.getTime() < period.end.getTime()) {
      await tx('subscription_resources').where({ subscription_id: r.subscriptionId, resource_id: r.resourceId }).update({ usage: formatQuantity(after) });
    }
    const accountId = toNumber(sub.account_id);
    const payload = {
      subscriptionId: r.subscriptionId,
      resourceId: r.resourceId,
      usage: formatQuantity(after),
      limit: formatQuantity(allowance),
      periodStart: period.start.toISOString(),
      periodEnd: period.end.toISOString(),
    };
    await recordChange(tx, actor, now, {
      operation: 'ReportUsage',
      objectType: 'subscription',
      objectId: r.subscriptionId,
      details: { ...payload, usageId: r.usageId, mode: r.mode, quantity: formatQuantity(r.quantity), at: at.toISOString() },
      event: { name: 'usage.reported', accountId, payload: { ...payload, usageId: r.usageId, mode: r.mode, quantity: formatQuantity(r.quantity) } },
    });
    for (const pct of reached) {
      await emitEvent(tx, now, { name: 'usage.threshold_reached', objectType: 'subscription', objectId: r.subscriptionId, accountId, payload: { ...payload, thresholdPct: pct } });
    }
    return { subscriptionId: r.subscriptionId, resourceId: r.resourceId, usage: formatQuantity(after), periodStart: period.start, periodEnd: period.end, replayed: false };
  }

  private async periodRow(tx: Tx, subscriptionId: number, resourceId: number, periodStart: number, lock = false) {
    const q = tx('usage_periods').where({ subscription_id: subscriptionId, resource_id: resourceId, period_start: periodStart }).first();
    return (await (lock && !isSqlite(tx) ? q.forUpdate() : q)) as { usage: unknown; period_end: unknown; threshold_pct_sent: unknown } | undefined;
  }
}

export { QTY_SCALE };
