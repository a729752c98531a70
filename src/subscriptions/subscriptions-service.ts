import type { Actor, Deps } from '../context';
import { systemActor } from '../context';
import { writeAudit } from '../audit/audit';
import { recordChange } from '../audit/record-change';
import { scopedAccount } from '../accounts/scope';
import { toNumber, toOptionalNumber, type Tx } from '../db/knex';
import { invalid, notFound } from '../domain/errors';
import { paging, positiveId } from '../domain/fields';
import { addPeriod, type PeriodUnit } from '../domain/period';
import type { Plan, ServiceTemplate } from '../catalog/catalog-service';

/** PBA subscription status codes. */
export const SUBSCRIPTION_STATUS = { ordered: 10, trial: 15, active: 30, graced: 40, expired: 50, terminated: 60, canceled: 70, suspended: 80 } as const;
/** PBA service status codes (the provisioning state). */
export const SERVICE_STATUS = {
  notProvisioned: 10,
  provisioning: 20,
  stopped: 30,
  starting: 40,
  running: 50,
  stopping: 60,
  removing: 70,
  changingPlan: 80,
  removed: 90,
} as const;
const SUBSCRIPTION_STATUSES: readonly number[] = Object.values(SUBSCRIPTION_STATUS);
const SERVICE_STATUSES: readonly number[] = Object.values(SERVICE_STATUS);

export interface SubscriptionResource {
  resourceId: number;
  name: string;
  unit: string;
  included: number;
  additional: number;
  /** null = unlimited */
  limit: number | null;
  usage: number;
}

export interface Subscription {
  subscriptionId: number;
  accountId: number;
  vendorAccountId: number;
  planId: number;
  periodId: number;
  orderId: number | null;
  name: string;
  status: number;
  serviceStatus: number;
  startDate: Date | null;
  expirationDate: Date | null;
  lastBillDate: Date | null;
  nextBillDate: Date | null;
  serviceGate: string;
  gateReference: string | null;
  parameters: Record<string, string>;
  resources: SubscriptionResource[];
}

/** What createForItem needs of an order item. */
export interface SubscriptionItem {
  id: number;
  period_id: number;
  parameters: Record<string, string> | string;
  resources: { resourceId: number; quantity: number }[] | string;
}

/** A row of `subscriptions` as stored. */
export interface SubscriptionRow {
  id: number;
  account_id: number;
  vendor_id: number;
  plan_id: number;
  period_id: number;
  order_id: number | null;
  name: string;
  status: number;
  service_status: number;
  service_gate: string;
  gate_reference: string | null;
  parameters: string;
  start_date: unknown;
  expiration_date: unknown;
  last_bill_date: unknown;
  next_bill_date: unknown;
}

const date = (v: unknown): Date | null => {
  const n = toOptionalNumber(v);
  return n === null ? null : new Date(n);
};

const parse = <T>(v: T | string): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);

/** The provider (root) of an account's tree acting as the system: saga-driven changes have no person behind them. */
async function rootActor(tx: Tx, accountId: number): Promise<Actor> {
  const row = (await tx('accounts').where({ id: accountId }).first('path')) as { path: string } | undefined;
  if (!row) throw notFound('Account', accountId);
  const rootId = Number(row.path.split('/').filter(Boolean)[0]);
  return systemActor({ id: rootId, path: `/${rootId}/` }, 'job');
}

/** Subscriptions: one per ordered service, created by the order's saga and moved along with provisioning. */
export class SubscriptionsService {
  constructor(private readonly deps: Deps) {}

  /**
   * Creates the subscription of an order item (status 10 ordered, service 10 not provisioned): its name is the
   * plan's plus the first parameter (the domain) when there is one, its limits the template's widened to what was
   * ordered. Sets order_items.subscription_id. Returns the new id.
   */
  async createForItem(
    tx: Tx,
    order: { id: number; account_id: number; vendor_id: number },
    item: SubscriptionItem,
    plan: Plan,
    template: ServiceTemplate,
  ): Promise<number> {
    const parameters = parse<Record<string, string>>(item.parameters);
    const ordered = parse<{ resourceId: number; quantity: number }[]>(item.resources);
    const first = template.parameters.map((p) => parameters[p.name]).find((v) => typeof v === 'string' && v.trim() !== '');
    const name = (first ? `${plan.name} ${first.trim()}` : plan.name).slice(0, 255);
    const now = this.deps.clock.now();
    const [id] = (await tx('subscriptions').insert({
      account_id: order.account_id,
      vendor_id: order.vendor_id,
      plan_id: plan.planId,
      period_id: item.period_id,
      order_id: order.id,
      name,
      status: SUBSCRIPTION_STATUS.ordered,
      service_status: SERVICE_STATUS.notProvisioned,
      service_gate: template.serviceGate,
      gate_reference: null,
      parameters: JSON.stringify(parameters),
      start_date: null,
      expiration_date: null,
      last_bill_date: null,
      next_bill_date: null,
      created_at: now.getTime(),
      updated_at: now.getTime(),
    })) as number[];
    const rows = template.resources.map((tr) => {
      const rate = plan.resources.find((r) => r.resourceId === tr.resourceId);
      const included = rate?.included ?? 0;
      const want = ordered.find((o) => toNumber(o.resourceId) === tr.resourceId);
      const quantity = want ? Number(want.quantity) : included;
      const additional = Math.max(0, quantity - included);
      const limit = tr.limit === null ? null : Math.max(tr.limit, quantity);
      return { subscription_id: id, resource_id: tr.resourceId, included, additional, limit_value: limit, usage: 0 };
    });
    if (rows.length) await tx('subscription_resources').insert(rows);
    await tx('order_items').where({ id: item.id }).update({ subscription_id: id });
    await writeAudit(tx, await rootActor(tx, order.account_id), now, {
      operation: 'CreateSubscription',
      objectType: 'subscription',
      objectId: id,
      outcome: 'ok',
      details: { orderId: order.id, itemId: item.id, planId: plan.planId, name },
    });
    return toNumber(id);
  }

  /** The service is up: active (or trial) from now for one period; the next bill at the end of it. */
  async markProvisioned(tx: Tx, subscriptionId: number, reference: string | null, now: Date): Promise<void> {
    const row = await this.row(tx, subscriptionId);
    const period = (await tx('plan_periods').where({ id: row.period_id }).first('duration', 'unit', 'trial')) as { duration: unknown; unit: PeriodUnit; trial: unknown } | undefined;
    if (!period) throw notFound('Plan period', row.period_id);
    const trial = period.trial === true || toNumber(period.trial) === 1;
    const expiration = addPeriod(now, toNumber(period.duration), period.unit);
    const status = trial ? SUBSCRIPTION_STATUS.trial : SUBSCRIPTION_STATUS.active;
    await tx('subscriptions').where({ id: row.id }).update({
      status,
      service_status: SERVICE_STATUS.running,
      gate_reference: reference,
      start_date: now.getTime(),
      expiration_date: expiration.getTime(),
      next_bill_date: expiration.getTime(),
      updated_at: now.getTime(),
    });
    await recordChange(tx, await rootActor(tx, row.account_id), now, {
      operation: 'ProvisionSubscription',
      objectType: 'subscription',
      objectId: row.id,
      details: { gateReference: reference, status },
      event: {
        name: 'subscription.created',
        accountId: toNumber(row.account_id),
        payload: { subscriptionId: toNumber(row.id), accountId: toNumber(row.account_id), orderId: toOptionalNumber(row.order_id), planId: toNumber(row.plan_id), status, startDate: now.toISOString(), expirationDate: expiration.toISOString() },
      },
    });
  }

  /** The service is gone (terminated, or undone by a rollback). */
  async markRemoved(tx: Tx, subscriptionId: number, now: Date): Promise<void> {
    const row = await this.row(tx, subscriptionId);
    await tx('subscriptions').where({ id: row.id }).update({ status: SUBSCRIPTION_STATUS.terminated, service_status: SERVICE_STATUS.removed, updated_at: now.getTime() });
    await recordChange(tx, await rootActor(tx, row.account_id), now, {
      operation: 'TerminateSubscription',
      objectType: 'subscription',
      objectId: row.id,
      event: { name: 'subscription.terminated', accountId: toNumber(row.account_id), payload: { subscriptionId: toNumber(row.id), accountId: toNumber(row.account_id), orderId: toOptionalNumber(row.order_id) } },
    });
  }

  async setServiceStatus(tx: Tx, subscriptionId: number, serviceStatus: number): Promise<void> {
    if (!SERVICE_STATUSES.includes(serviceStatus)) throw invalid('serviceStatus', `serviceStatus must be one of ${SERVICE_STATUSES.join(', ')}.`);
    const n = await tx('subscriptions').where({ id: subscriptionId }).update({ service_status: serviceStatus, updated_at: this.deps.clock.now().getTime() });
    if (n !== 1) throw notFound('Subscription', subscriptionId);
  }

  async get(actor: Actor, subscriptionId: number): Promise<Subscription> {
    const id = positiveId(subscriptionId, 'subscriptionId');
    const row = (await this.deps.db('subscriptions as s')
      .join('accounts as a', 'a.id', 's.account_id')
      .where('s.id', id)
      .andWhere('a.path', 'like', `${actor.accountPath}%`)
      .first('s.*')) as SubscriptionRow | undefined;
    if (!row) throw notFound('Subscription', id);
    return (await this.views([row]))[0]!;
  }

  async list(actor: Actor, filter: { accountId: number; status?: number; page?: number; pageSize?: number }): Promise<{ items: Subscription[]; total: number }> {
    const account = await scopedAccount(this.deps.db, actor, positiveId(filter.accountId, 'accountId'));
    const { offset, pageSize } = paging(filter.page, filter.pageSize);
    const q = this.deps.db('subscriptions').where({ account_id: account.id });
    if (filter.status !== undefined && filter.status !== null) {
      if (!SUBSCRIPTION_STATUSES.includes(Number(filter.status))) throw invalid('status', `status must be one of ${SUBSCRIPTION_STATUSES.join(', ')}.`);
      q.andWhere({ status: Number(filter.status) });
    }
    const [{ total }] = (await q.clone().count({ total: '*' })) as { total: number | string }[];
    const rows = (await q.orderBy('id').limit(pageSize).offset(offset)) as SubscriptionRow[];
    return { items: await this.views(rows), total: Number(total) };
  }

  private async row(tx: Tx, id: number): Promise<SubscriptionRow> {
    const row = (await tx('subscriptions').where({ id }).first()) as SubscriptionRow | undefined;
    if (!row) throw notFound('Subscription', id);
    return row;
  }

  private async views(rows: SubscriptionRow[]): Promise<Subscription[]> {
    if (rows.length === 0) return [];
    const res = (await this.deps.db('subscription_resources as sr')
      .join('resources as r', 'r.id', 'sr.resource_id')
      .whereIn(
        'sr.subscription_id',
        rows.map((r) => r.id),
      )
      .orderBy([{ column: 'sr.subscription_id' }, { column: 'sr.resource_id' }])
      .select('sr.*', 'r.name', 'r.unit')) as { subscription_id: number; resource_id: number; name: string; unit: string; included: unknown; additional: unknown; limit_value: unknown; usage: unknown }[];
    return rows.map((r) => ({
      subscriptionId: toNumber(r.id),
      accountId: toNumber(r.account_id),
      vendorAccountId: toNumber(r.vendor_id),
      planId: toNumber(r.plan_id),
      periodId: toNumber(r.period_id),
      orderId: toOptionalNumber(r.order_id),
      name: r.name,
      status: toNumber(r.status),
      serviceStatus: toNumber(r.service_status),
      startDate: date(r.start_date),
      expirationDate: date(r.expiration_date),
      lastBillDate: date(r.last_bill_date),
      nextBillDate: date(r.next_bill_date),
      serviceGate: r.service_gate,
      gateReference: r.gate_reference,
      parameters: JSON.parse(r.parameters) as Record<string, string>,
      resources: res
        .filter((x) => toNumber(x.subscription_id) === toNumber(r.id))
        .map((x) => ({
          resourceId: toNumber(x.resource_id),
          name: x.name,
          unit: x.unit,
          included: toNumber(x.included),
          additional: toNumber(x.additional),
          limit: toOptionalNumber(x.limit_value),
          usage: toNumber(x.usage),
        })),
    }));
  }
}
