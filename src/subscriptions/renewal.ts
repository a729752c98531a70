import { recordChange } from '../audit/record-change';
import type { Actor } from '../context';
import { toNumber, type Tx } from '../db/knex';
import { notFound } from '../domain/errors';
import { addPeriod, type PeriodUnit } from '../domain/period';
import { SUBSCRIPTION_STATUS } from './subscriptions-service';

export interface Extension {
  subscriptionId: number;
  periodId: number;
  from: Date;
  to: Date;
}

/**
 * Extends a subscription by one period (of `periodId`, default its own), in the caller's transaction: the new
 * expiration date is one period after the current one (after `now` when it has none), the subscription moves to
 * that period, its last bill date is `now` and its next bill date the new expiration. A graced or expired
 * subscription becomes active again (a stopped service is resumed by the caller, through its gate). Emits
 * subscription.renewed. Used by renewal orders; the billing run reuses it for auto-renewal.
 */
export async function extendSubscriptionByPeriod(tx: Tx, actor: Actor, subscriptionId: number, now: Date, opts: { periodId?: number; orderId?: number } = {}): Promise<Extension> {
  const sub = (await tx('subscriptions').where({ id: subscriptionId }).first('id', 'account_id', 'period_id', 'status', 'expiration_date')) as
    | { id: number; account_id: number; period_id: number; status: number; expiration_date: unknown }
    | undefined;
  if (!sub) throw notFound('Subscription', subscriptionId);
  const periodId = opts.periodId ?? toNumber(sub.period_id);
  const period = (await tx('plan_periods').where({ id: periodId }).first('duration', 'unit')) as { duration: unknown; unit: PeriodUnit } | undefined;
  if (!period) throw notFound('Plan period', periodId);
  const from = sub.expiration_date === null || sub.expiration_date === undefined ? now : new Date(toNumber(sub.expiration_date));
  const to = addPeriod(from, toNumber(period.duration), period.unit);
  const status = toNumber(sub.status);
  const reactivate = status === SUBSCRIPTION_STATUS.graced || status === SUBSCRIPTION_STATUS.expired;
  await tx('subscriptions')
    .where({ id: subscriptionId })
    .update({
      period_id: periodId,
      expiration_date: to.getTime(),
      next_bill_date: to.getTime(),
      last_bill_date: now.getTime(),
      ...(reactivate ? { status: SUBSCRIPTION_STATUS.active } : {}),
      updated_at: now.getTime(),
    });
  await recordChange(tx, actor, now, {
    operation: 'RenewSubscription',
    objectType: 'subscription',
    objectId: subscriptionId,
    details: { periodId, from: from.toISOString(), to: to.toISOString(), orderId: opts.orderId },
    event: {
      name: 'subscription.renewed',
      accountId: toNumber(sub.account_id),
      payload: { subscriptionId, accountId: toNumber(sub.account_id), periodId, previousExpirationDate: from.toISOString(), expirationDate: to.toISOString(), orderId: opts.orderId ?? null },
    },
  });
  return { subscriptionId, periodId, from, to };
}
