import { expect } from 'chai';
import { ORDER_ADVANCE, transition } from '../../src/orders/transitions';
import { failure } from '../helpers/assertions';
import { count, orderWorld, type OrderWorld } from '../subscriptions/order-world';

let w: OrderWorld;

describe('orders: placing', () => {
  beforeEach(async () => {
    w = await orderWorld();
  });
  afterEach(async () => {
    await w?.world.close();
  });

  it('prices an order from the catalog only (setup, first period, resources above the plan) and its lines add up to the total', async () => {
    const order = await w.place(w.customer, {
      accountId: w.customer.accountId,
      items: [{ planId: w.basic, periodId: w.monthly, parameters: { domain: 'example.com' }, resources: [{ resourceId: w.disk, quantity: 15 }, { resourceId: w.mailboxes, quantity: 7 }] }],
    });
    expect(order.lines.map((l) => [l.position, l.kind, l.amount])).to.deep.equal([
      [1, 'setup', 500n],
      [2, 'recurring', 999n],
      [3, 'resource_recurring', 500n],
      [4, 'resource_recurring', 100n],
    ]);
    expect(order).to.deep.include({ currency: 'USD', subtotal: 2099n, discountTotal: 0n, taxTotal: 0n, total: 2099n });
    expect(order.lines.reduce((s, l) => s + l.amount, 0n)).to.equal(order.total);
    expect(order.orderNumber).to.equal(`SO${String(order.orderId).padStart(6, '0')}`);
    expect(order).to.deep.include({ status: 'NP', step: 'fraud_screening', accountId: w.customer.accountId, vendorAccountId: w.world.provider.accountId, type: 'sales' });
    expect(order.items).to.have.length(1);
    expect(order.items[0]).to.deep.include({ position: 1, planId: w.basic, periodId: w.monthly, subscriptionId: null, parameters: { domain: 'example.com' } });
  });

  it('creates the order row, its first history entry, the order.placed event and the first order.advance task', async () => {
    const order = await w.place(w.customer, { accountId: w.customer.accountId, comment: 'rush please' });
    expect(order.history).to.have.length(1);
    expect(order.history[0]).to.deep.include({ status: 'NP', step: 'fraud_screening', outcome: null, comment: 'rush please' });
    const events = (await w.world.deps.db('events').where({ object_type: 'order', object_id: String(order.orderId) })) as { name: string }[];
    expect(events.map((e) => e.name)).to.deep.equal(['order.placed']);
    const tasks = (await w.world.deps.db('tasks').where({ kind: ORDER_ADVANCE })) as { queue: string; payload: string; account_id: number; object_id: string }[];
    expect(tasks).to.have.length(1);
    expect(tasks[0]).to.deep.include({ queue: 'orders', object_id: String(order.orderId) });
    expect(Number(tasks[0]!.account_id)).to.equal(w.customer.accountId);
    expect(JSON.parse(tasks[0]!.payload)).to.deep.equal({ orderId: order.orderId, step: 'fraud_screening' });
    expect(await count(w.world, 'audit_log', { operation: 'PlaceOrder', object_id: String(order.orderId) })).to.equal(1);
  });

  it('takes a percent promo off the setup and first period of every item', async () => {
    await w.promoCodes.create(w.world.provider, { code: 'save10', kind: 'percent', value: 1000n, appliesTo: 'both' });
    const order = await w.place(w.customer, { accountId: w.customer.accountId, promoCode: 'SAVE10' });
    // 10 % of 5.00 + 9.99 = 1.499 -> 1.50 (half up)
    expect(order.lines.at(-1)).to.deep.include({ kind: 'discount', amount: -150n });
    expect(order).to.deep.include({ subtotal: 1499n, discountTotal: 150n, total: 1349n });
    expect(order.lines.reduce((s, l) => s + l.amount, 0n)).to.equal(order.total);
  });

  it('takes a fixed promo off the setup fee only, never more than the setup fee', async () => {
    await w.promoCodes.create(w.world.provider, { code: 'NOSETUP', kind: 'fixed', value: 800n, currency: 'USD', appliesTo: 'setup' });
    const order = await w.place(w.customer, { accountId: w.customer.accountId, promoCode: 'nosetup' });
    expect(order).to.deep.include({ subtotal: 1499n, discountTotal: 500n, total: 999n });
    expect((await w.promoCodes.list(w.world.provider))[0]!.uses).to.equal(1);
  });

  it('refuses a used-up promo with CONFLICT and creates nothing', async () => {
    await w.promoCodes.create(w.world.provider, { code: 'ONCE', kind: 'percent', value: 5000n, maxUses: 1 });
    await w.place(w.customer, { accountId: w.customer.accountId, promoCode: 'ONCE' });
    const before = { orders: await count(w.world, 'orders'), tasks: await count(w.world, 'tasks'), events: await count(w.world, 'events') };
    await failure(w.place(w.customer, { accountId: w.customer.accountId, promoCode: 'ONCE' }), 'CONFLICT', 'promoCode');
    expect({ orders: await count(w.world, 'orders'), tasks: await count(w.world, 'tasks'), events: await count(w.world, 'events') }).to.deep.equal(before);
    expect((await w.promoCodes.list(w.world.provider))[0]!.uses).to.equal(1);
  });

  it('refuses an expired promo, and one not valid yet, with INVALID_ARGUMENT on promoCode', async () => {
    const now = w.world.clock.now().getTime();
    await w.promoCodes.create(w.world.provider, { code: 'OLD', kind: 'percent', value: 1000n, validFrom: new Date(now - 10 * 86400000), validTo: new Date(now - 1) });
    await w.promoCodes.create(w.world.provider, { code: 'SOON', kind: 'percent', value: 1000n, validFrom: new Date(now + 86400000) });
    await failure(w.place(w.customer, { accountId: w.customer.accountId, promoCode: 'OLD' }), 'INVALID_ARGUMENT', 'promoCode');
    await failure(w.place(w.customer, { accountId: w.customer.accountId, promoCode: 'SOON' }), 'INVALID_ARGUMENT', 'promoCode');
    expect(await count(w.world, 'orders')).to.equal(0);
  });

  it("refuses the provider's promo code on an order of a reseller's customer: only the order's vendor's codes apply", async () => {
    await w.promoCodes.create(w.world.provider, { code: 'PROVIDER', kind: 'percent', value: 1000n });
    await failure(
      w.orders.place(w.reseller, { accountId: w.resellerCustomer.accountId, promoCode: 'PROVIDER', items: [{ planId: w.euroPlan, periodId: w.euroMonthly, parameters: { domain: 'r.example' } }] }),
      'INVALID_ARGUMENT',
      'promoCode',
    );
  });

  it('refuses an unpublished plan, and a plan the vendor does not sell, on items[i].planId', async () => {
    await failure(w.place(w.customer, { accountId: w.customer.accountId, items: [{ planId: w.draft, periodId: w.draftMonthly, parameters: { domain: 'a.example' } }] }), 'INVALID_ARGUMENT', 'items[0].planId');
    // The EUR reseller's own plan is not in the provider's catalog.
    await failure(
      w.place(w.customer, { accountId: w.customer.accountId, items: [{ planId: w.basic, periodId: w.monthly, parameters: { domain: 'a.example' } }, { planId: w.euroPlan, periodId: w.euroMonthly, parameters: { domain: 'b.example' } }] }),
      'INVALID_ARGUMENT',
      'items[1].planId',
    );
    await failure(w.place(w.customer, { accountId: w.customer.accountId, items: [{ planId: 999999, periodId: w.monthly }] }), 'INVALID_ARGUMENT', 'items[0].planId');
  });

  it('refuses an item missing a required template parameter, naming it', async () => {
    await failure(w.place(w.customer, { accountId: w.customer.accountId, items: [{ planId: w.basic, periodId: w.monthly, parameters: { ftpLogin: 'bob' } }] }), 'INVALID_ARGUMENT', 'items[0].parameters.domain');
  });

  it('refuses a period of another plan on items[i].periodId', async () => {
    await failure(w.place(w.customer, { accountId: w.customer.accountId, items: [{ planId: w.basic, periodId: w.proMonthly, parameters: { domain: 'a.example' } }] }), 'INVALID_ARGUMENT', 'items[0].periodId');
  });

  it('refuses an order mixing currencies', async () => {
    await failure(
      w.orders.place(w.reseller, {
        accountId: w.resellerCustomer.accountId,
        items: [
          { planId: w.euroPlan, periodId: w.euroMonthly, parameters: { domain: 'a.example' } },
          { planId: w.basic, periodId: w.monthly, parameters: { domain: 'b.example' } },
        ],
      }),
      'INVALID_ARGUMENT',
      'items[1].planId',
    );
  });

  it('refuses a resource quantity outside the rate, naming the item', async () => {
    await failure(w.place(w.customer, { accountId: w.customer.accountId, items: [{ planId: w.basic, periodId: w.monthly, parameters: { domain: 'a.example' }, resources: [{ resourceId: w.disk, quantity: 101 }] }] }), 'INVALID_ARGUMENT', 'items[0].resources[0].quantity');
  });

  it('refuses an account outside the actor, a suspended account and a reseller ordered for by another', async () => {
    await failure(w.orders.place(w.otherReseller, { accountId: w.customer.accountId, items: [{ planId: w.basic, periodId: w.monthly, parameters: { domain: 'a.example' } }] }), 'NOT_FOUND');
    await failure(w.place(w.world.provider, { accountId: w.reseller.accountId }), 'INVALID_ARGUMENT', 'accountId');
    await w.world.deps.db('accounts').where({ id: w.customer.accountId }).update({ status: 'suspended' });
    await failure(w.place(w.customer, { accountId: w.customer.accountId }), 'NOT_ALLOWED', 'accountId');
  });

  it('lets a reseller order for itself from its vendor, who is then the order\'s vendor', async () => {
    const order = await w.place(w.otherReseller, { accountId: w.otherReseller.accountId });
    expect(order).to.deep.include({ accountId: w.otherReseller.accountId, vendorAccountId: w.world.provider.accountId, total: 1499n });
  });

  it('places everything in one transaction: a failure at the last moment leaves no order, item, line, history, event, task or promo use', async () => {
    await w.promoCodes.create(w.world.provider, { code: 'HALF', kind: 'percent', value: 5000n });
    const tasks = w.world.services.tasks;
    const original = tasks.enqueue.bind(tasks);
    tasks.enqueue = async () => {
      throw new Error('queue down');
    };
    const events = await count(w.world, 'events');
    try {
      let caught: unknown;
      await w.place(w.customer, { accountId: w.customer.accountId, promoCode: 'HALF' }).catch((e) => (caught = e));
      expect((caught as Error).message).to.equal('queue down');
    } finally {
      tasks.enqueue = original;
    }
    for (const table of ['orders', 'order_items', 'order_lines', 'order_history', 'tasks']) expect(await count(w.world, table), table).to.equal(0);
    expect(await count(w.world, 'events')).to.equal(events);
    expect((await w.promoCodes.list(w.world.provider))[0]!.uses).to.equal(0);
  });

  it('places an order once per idempotency key, and refuses the key with other arguments', async () => {
    const first = await w.place(w.customer, { accountId: w.customer.accountId, idempotencyKey: 'k-1' });
    const again = await w.place(w.customer, { accountId: w.customer.accountId, idempotencyKey: 'k-1' });
    expect(again.orderId).to.equal(first.orderId);
    expect(again.total).to.equal(first.total);
    expect(await count(w.world, 'orders')).to.equal(1);
    expect(await count(w.world, 'tasks', { kind: ORDER_ADVANCE })).to.equal(1);
    await failure(w.place(w.customer, { accountId: w.customer.accountId, idempotencyKey: 'k-1', comment: 'other' }), 'CONFLICT', 'idempotencyKey');
  });

  it('answers a repeated call with the first order even though that order used up its promo code', async () => {
    await w.promoCodes.create(w.world.provider, { code: 'ONCE', kind: 'percent', value: 5000n, maxUses: 1 });
    const first = await w.place(w.customer, { accountId: w.customer.accountId, promoCode: 'ONCE', idempotencyKey: 'k-promo' });
    const again = await w.place(w.customer, { accountId: w.customer.accountId, promoCode: 'ONCE', idempotencyKey: 'k-promo' });
    expect(again).to.deep.include({ orderId: first.orderId, discountTotal: first.discountTotal });
    expect((await w.promoCodes.list(w.world.provider))[0]!.uses).to.equal(1);
  });

  it('links an add-on item to the earlier item it names by position', async () => {
    const order = await w.place(w.customer, {
      accountId: w.customer.accountId,
      items: [
        { planId: w.basic, periodId: w.monthly, parameters: { domain: 'a.example' } },
        { planId: w.pro, periodId: w.proMonthly, parameters: { domain: 'b.example' }, parentItemId: 1 },
      ],
    });
    expect(order.items[1]!.parentItemId).to.equal(order.items[0]!.itemId);
    await failure(w.place(w.customer, { accountId: w.customer.accountId, items: [{ planId: w.basic, periodId: w.monthly, parameters: { domain: 'a.example' }, parentItemId: 1 }] }), 'INVALID_ARGUMENT', 'items[0].parentItemId');
  });
});

describe('orders: reading', () => {
  beforeEach(async () => {
    w = await orderWorld();
  });
  afterEach(async () => {
    await w?.world.close();
  });

  it("answers NOT_FOUND for another reseller's customer's order, and lists only the actor's subtree", async () => {
    const mine = await w.orders.place(w.reseller, { accountId: w.resellerCustomer.accountId, items: [{ planId: w.euroPlan, periodId: w.euroMonthly, parameters: { domain: 'r.example' } }] });
    const theirs = await w.place(w.customer, { accountId: w.customer.accountId });
    await failure(w.orders.get(w.otherReseller, mine.orderId), 'NOT_FOUND');
    await failure(w.orders.get(w.customer, mine.orderId), 'NOT_FOUND');
    expect((await w.orders.get(w.resellerCustomer, mine.orderId)).currency).to.equal('EUR');
    expect((await w.orders.list(w.reseller)).items.map((o) => o.orderId)).to.deep.equal([mine.orderId]);
    expect((await w.orders.list(w.world.provider)).items.map((o) => o.orderId)).to.deep.equal([theirs.orderId, mine.orderId]);
    expect((await w.orders.list(w.otherReseller)).total).to.equal(0);
    await failure(w.orders.list(w.reseller, { accountId: w.customer.accountId }), 'NOT_FOUND');
  });

  it('filters the list by account, status, type and since, and pages it', async () => {
    const a = await w.place(w.customer, { accountId: w.customer.accountId });
    w.world.clock.advance(60_000);
    const b = await w.place(w.customer, { accountId: w.customer.accountId });
    expect((await w.orders.list(w.world.provider, { accountId: w.customer.accountId, status: 'NP', type: 'sales' })).total).to.equal(2);
    expect((await w.orders.list(w.world.provider, { status: 'CP' })).total).to.equal(0);
    expect((await w.orders.list(w.world.provider, { since: b.createdAt })).items.map((o) => o.orderId)).to.deep.equal([b.orderId]);
    const page2 = await w.orders.list(w.world.provider, { page: 2, pageSize: 1 });
    expect(page2).to.deep.include({ total: 2 });
    expect(page2.items.map((o) => o.orderId)).to.deep.equal([a.orderId]);
    await failure(w.orders.list(w.world.provider, { status: 'XX' }), 'INVALID_ARGUMENT', 'status');
  });
});

describe('orders: approval', () => {
  beforeEach(async () => {
    w = await orderWorld();
  });
  afterEach(async () => {
    await w?.world.close();
  });

  /** Places an order and screens it suspect, leaving it waiting for approval. */
  async function waiting(): Promise<number> {
    const order = await w.place(w.customer, { accountId: w.customer.accountId });
    for (const outcome of ['suspect', 'done'] as const) {
      await w.world.deps.db.transaction(async (tx) => {
        const row = await tx('orders').where({ id: order.orderId }).first();
        await transition(tx, w.world.deps, w.world.services.tasks, row, outcome, { ...w.world.provider, channel: 'job' });
      });
    }
    return order.orderId;
  }

  const eventNames = async (orderId: number) => ((await w.world.deps.db('events').where({ object_type: 'order', object_id: String(orderId) }).orderBy('id')) as { name: string }[]).map((e) => e.name);
  const advanceSteps = async (orderId: number) =>
    ((await w.world.deps.db('tasks').where({ kind: ORDER_ADVANCE, object_id: String(orderId) }).orderBy('id')) as { payload: string }[]).map((t) => (JSON.parse(t.payload) as { step: string }).step);

  it('refuses approval and rejection while the order is not at a manual step, naming its status', async () => {
    const order = await w.place(w.customer, { accountId: w.customer.accountId });
    const err = await failure(w.orders.approve(w.world.provider, order.orderId), 'NOT_ALLOWED', 'status');
    expect(err.message).to.contain('NP');
    await failure(w.orders.reject(w.world.provider, order.orderId), 'NOT_ALLOWED', 'status');
    expect(await count(w.world, 'order_history', { order_id: order.orderId })).to.equal(1);
  });

  it('lets the vendor side approve a waiting order: on to charging, order.approved, the next advance task, the comment in the history', async () => {
    const id = await waiting();
    const order = await w.orders.approve(w.world.provider, id, 'Called the customer');
    expect(order).to.deep.include({ status: 'WP', step: 'charge_card' });
    expect(order.history.at(-1)).to.deep.include({ status: 'WP', step: 'charge_card', outcome: 'approved', comment: 'Called the customer' });
    expect((await eventNames(id)).at(-1)).to.equal('order.approved');
    expect(await advanceSteps(id)).to.deep.equal(['fraud_screening', 'mark_suspect', 'charge_card']);
    await failure(w.orders.approve(w.world.provider, id), 'NOT_ALLOWED', 'status');
  });

  it('lets the vendor side reject a waiting order: rejected, order.rejected, no task', async () => {
    const id = await waiting();
    const order = await w.orders.reject(w.world.provider, id, 'Stolen card');
    expect(order).to.deep.include({ status: 'RJ', step: 'reject_order' });
    expect((await eventNames(id)).at(-1)).to.equal('order.rejected');
    expect(await advanceSteps(id)).to.deep.equal(['fraud_screening', 'mark_suspect']);
  });

  it('refuses approval by the customer itself (NOT_ALLOWED), a vendor user without admin or billing role, and hides the order from another reseller (NOT_FOUND)', async () => {
    const id = await waiting();
    await failure(w.orders.approve(w.customer, id), 'NOT_ALLOWED');
    await failure(w.orders.reject(w.customer, id), 'NOT_ALLOWED');
    await failure(w.orders.approve({ ...w.world.provider, roles: ['technical'] }, id), 'NOT_ALLOWED');
    await failure(w.orders.approve(w.otherReseller, id), 'NOT_FOUND');
    expect((await w.orders.get(w.world.provider, id)).status).to.equal('WA');
  });

  it("lets a reseller approve its own customer's order", async () => {
    const order = await w.orders.place(w.reseller, { accountId: w.resellerCustomer.accountId, items: [{ planId: w.euroPlan, periodId: w.euroMonthly, parameters: { domain: 'r.example' } }] });
    for (const outcome of ['suspect', 'done'] as const) {
      await w.world.deps.db.transaction(async (tx) => {
        const row = await tx('orders').where({ id: order.orderId }).first();
        await transition(tx, w.world.deps, w.world.services.tasks, row, outcome, { ...w.world.provider, channel: 'job' });
      });
    }
    expect((await w.orders.approve({ ...w.reseller, roles: ['billing'] }, order.orderId)).status).to.equal('WP');
  });
});
