import { expect } from 'chai';
import { templateForPlan } from '../../src/orders/orders-service';
import type { Order } from '../../src/orders/orders-service';
import { SERVICE_STATUS, SUBSCRIPTION_STATUS } from '../../src/subscriptions/subscriptions-service';
import { failure } from '../helpers/assertions';
import { count, orderWorld, type OrderWorld } from './order-world';

let w: OrderWorld;

/** Creates the subscription of every item of an order, as the saga does. */
async function subscribe(order: Order): Promise<number[]> {
  const { catalog } = w.world.services;
  const db = w.world.deps.db;
  return db.transaction(async (tx) => {
    const o = (await tx('orders').where({ id: order.orderId }).first()) as { id: number; account_id: number; vendor_id: number };
    const items = (await tx('order_items').where({ order_id: order.orderId }).orderBy('position')) as { id: number; plan_id: number; period_id: number; parameters: string; resources: string }[];
    const ids: number[] = [];
    for (const item of items) {
      const plan = (await catalog.getPlanForOrder(tx, Number(item.plan_id)))!;
      ids.push(await w.subscriptions.createForItem(tx, o, item, plan, await templateForPlan(catalog, tx, plan)));
    }
    return ids;
  });
}

describe('subscriptions', () => {
  beforeEach(async () => {
    w = await orderWorld('2026-01-31T10:00:00Z');
  });
  afterEach(async () => {
    await w?.world.close();
  });

  it("creates an item's subscription: ordered, not provisioned, named after the plan and domain, limits from the template widened to what was ordered", async () => {
    const order = await w.place(w.customer, {
      accountId: w.customer.accountId,
      items: [{ planId: w.basic, periodId: w.monthly, parameters: { domain: 'example.com', ftpLogin: 'bob' }, resources: [{ resourceId: w.disk, quantity: 15 }] }],
    });
    const [id] = await subscribe(order);
    const sub = await w.subscriptions.get(w.customer, id!);
    expect(sub).to.deep.include({
      accountId: w.customer.accountId,
      vendorAccountId: w.world.provider.accountId,
      planId: w.basic,
      periodId: w.monthly,
      orderId: order.orderId,
      name: 'Basic example.com',
      status: SUBSCRIPTION_STATUS.ordered,
      serviceStatus: SERVICE_STATUS.notProvisioned,
      serviceGate: 'sandbox',
      gateReference: null,
      startDate: null,
      expirationDate: null,
      nextBillDate: null,
    });
    expect(sub.parameters).to.deep.equal({ domain: 'example.com', ftpLogin: 'bob' });
    expect(sub.resources).to.deep.equal([
      { resourceId: w.disk, name: 'Disk space', unit: 'GB', included: 10, additional: 5, limit: 15, usage: 0 },
      { resourceId: w.mailboxes, name: 'Mailboxes', unit: 'mailbox', included: 5, additional: 0, limit: null, usage: 0 },
    ]);
    expect((await w.orders.get(w.customer, order.orderId)).items[0]!.subscriptionId).to.equal(id);
  });

  it('keeps the template limit when less than it was ordered', async () => {
    const order = await w.place(w.customer, { accountId: w.customer.accountId });
    const [id] = await subscribe(order);
    expect((await w.subscriptions.get(w.world.provider, id!)).resources[0]).to.deep.include({ included: 10, additional: 0, limit: 10 });
  });

  it('marks a monthly subscription provisioned on 31 January: active, running, expiring and billed next on 28 February (month-end clamp), with subscription.created', async () => {
    const [id] = await subscribe(await w.place(w.customer, { accountId: w.customer.accountId }));
    const now = w.world.clock.now();
    await w.world.deps.db.transaction((tx) => w.subscriptions.markProvisioned(tx, id!, 'gate-42', now));
    const sub = await w.subscriptions.get(w.customer, id!);
    expect(sub).to.deep.include({ status: 30, serviceStatus: 50, gateReference: 'gate-42' });
    expect(sub.startDate!.toISOString()).to.equal('2026-01-31T10:00:00.000Z');
    expect(sub.expirationDate!.toISOString()).to.equal('2026-02-28T10:00:00.000Z');
    expect(sub.nextBillDate!.toISOString()).to.equal('2026-02-28T10:00:00.000Z');
    expect(sub.lastBillDate).to.equal(null);
    expect(await count(w.world, 'events', { name: 'subscription.created', object_id: String(id) })).to.equal(1);
    expect(await count(w.world, 'audit_log', { operation: 'ProvisionSubscription', object_id: String(id) })).to.equal(1);
  });

  it('marks a trial subscription provisioned as trial (15) for the trial period', async () => {
    const [id] = await subscribe(await w.place(w.customer, { accountId: w.customer.accountId, items: [{ planId: w.basic, periodId: w.trialPeriod, parameters: { domain: 't.example' } }] }));
    await w.world.deps.db.transaction((tx) => w.subscriptions.markProvisioned(tx, id!, null, w.world.clock.now()));
    const sub = await w.subscriptions.get(w.customer, id!);
    expect(sub.status).to.equal(15);
    expect(sub.expirationDate!.toISOString()).to.equal('2026-02-14T10:00:00.000Z');
  });

  it('marks a subscription removed (terminated 60, removed 90) with subscription.terminated, and sets the service status', async () => {
    const [id] = await subscribe(await w.place(w.customer, { accountId: w.customer.accountId }));
    const db = w.world.deps.db;
    await db.transaction((tx) => w.subscriptions.setServiceStatus(tx, id!, SERVICE_STATUS.provisioning));
    expect((await w.subscriptions.get(w.customer, id!)).serviceStatus).to.equal(20);
    await failure(db.transaction((tx) => w.subscriptions.setServiceStatus(tx, id!, 25)), 'INVALID_ARGUMENT', 'serviceStatus');
    await db.transaction((tx) => w.subscriptions.markRemoved(tx, id!, w.world.clock.now()));
    expect(await w.subscriptions.get(w.customer, id!)).to.deep.include({ status: 60, serviceStatus: 90 });
    expect(await count(w.world, 'events', { name: 'subscription.terminated', object_id: String(id) })).to.equal(1);
  });

  it("answers NOT_FOUND for another reseller's customer's subscription, and lists an account's subscriptions by status", async () => {
    const order = await w.orders.place(w.reseller, { accountId: w.resellerCustomer.accountId, items: [{ planId: w.euroPlan, periodId: w.euroMonthly, parameters: { domain: 'r.example' } }] });
    const [theirs] = await subscribe(order);
    const [mine, second] = await subscribe(
      await w.place(w.customer, {
        accountId: w.customer.accountId,
        items: [
          { planId: w.basic, periodId: w.monthly, parameters: { domain: 'a.example' } },
          { planId: w.pro, periodId: w.proMonthly, parameters: { domain: 'b.example' } },
        ],
      }),
    );
    await failure(w.subscriptions.get(w.otherReseller, theirs!), 'NOT_FOUND');
    await failure(w.subscriptions.get(w.customer, theirs!), 'NOT_FOUND');
    expect((await w.subscriptions.get(w.reseller, theirs!)).name).to.equal('Euro Basic r.example');
    await failure(w.subscriptions.list(w.otherReseller, { accountId: w.customer.accountId }), 'NOT_FOUND');
    await w.world.deps.db.transaction((tx) => w.subscriptions.markProvisioned(tx, mine!, 'x', w.world.clock.now()));
    const all = await w.subscriptions.list(w.customer, { accountId: w.customer.accountId });
    expect(all.items.map((s) => s.subscriptionId)).to.deep.equal([mine, second]);
    expect((await w.subscriptions.list(w.customer, { accountId: w.customer.accountId, status: 30 })).items.map((s) => s.subscriptionId)).to.deep.equal([mine]);
    expect((await w.subscriptions.list(w.customer, { accountId: w.customer.accountId, page: 2, pageSize: 1 })).items.map((s) => s.subscriptionId)).to.deep.equal([second]);
  });
});
