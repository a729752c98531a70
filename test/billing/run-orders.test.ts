import { expect } from 'chai';
import { toBigInt, toNumber } from '../../src/db/knex';
import { Worker } from '../../src/jobs/worker';
import { orderHandlers } from '../../src/orders/engine';
import { failure } from '../helpers/assertions';
import { dialect } from '../helpers/db';
import { makeWorld, type World } from '../helpers/world';
import { drive } from '../orders/fixtures';
import { count, makeBook, makeCustomer, makeMixedBook, makePlan, makeSubscription, MIXED_AS_OF } from './run-book';

const d = (s: string) => new Date(s);
const ms = (s: string) => d(s).getTime();

async function renewalOrderOf(world: World, subscriptionId: number) {
  const rows = (await world.deps.db('orders as o').join('order_items as i', 'i.order_id', 'o.id').where({ 'o.type': 'renewal', 'i.target_subscription_id': subscriptionId }).select('o.id')) as { id: number }[];
  return rows.map((r) => toNumber(r.id));
}

async function expiration(world: World, id: number) {
  const r = (await world.deps.db('subscriptions').where({ id }).first('status', 'expiration_date', 'period_id')) as { status: number; expiration_date: unknown; period_id: number };
  return { status: toNumber(r.status), expiration: new Date(toNumber(r.expiration_date)).toISOString(), periodId: toNumber(r.period_id) };
}

describe(`billing run: renewals as renewal orders (RN) (${dialect})`, function () {
  this.timeout(120_000);

  describe('on the mixed book', () => {
    let world: World;
    let subs: number[];
    let trialPaidPeriod: number;

    before(async () => {
      world = await makeWorld({ start: '2026-01-15T10:00:00Z' });
      const book = await makeMixedBook(world);
      subs = book.subscriptions;
      trialPaidPeriod = toNumber(((await world.deps.db('plan_periods').where({ trial: false, recurring_fee: 999 }).first('id')) as { id: number }).id);
      const r = await world.services.billingRun.run({ asOf: MIXED_AS_OF, startedBy: 'test', batchSize: 3 });
      expect(r.renewalOrders).to.equal(6);
    });
    after(async () => world?.close());

    it('places one RN order per subscription renewed (trial conversion included), its lines the charges of that period, its charges linked to it', async () => {
      // Due: subs 0, 1 (Alpha, card), 2 (Beta, declining card), 3 (Gamma's trial converting), 6 (Delta, no card), 8 (Epsilon, card).
      for (const i of [0, 1, 2, 3, 6, 8]) expect(await renewalOrderOf(world, subs[i]!), `sub ${i}`).to.have.length(1);
      for (const i of [4, 5, 7]) expect(await renewalOrderOf(world, subs[i]!), `sub ${i}`).to.deep.equal([]);
      const [orderId] = await renewalOrderOf(world, subs[0]!);
      const order = await world.services.orders.get(world.provider, orderId!);
      expect(order).to.include({ type: 'renewal', currency: 'USD', total: 1375n, accountId: order.accountId });
      expect(order.orderNumber).to.equal(`RN${String(orderId).padStart(6, '0')}`);
      expect(order.lines.map((l) => [l.kind, l.amount])).to.deep.equal([['renewal', 1200n], ['resource_recurring', 175n]]);
      expect(order.items.map((i) => i.targetSubscriptionId)).to.deep.equal([subs[0]]);
      // Its charges (renewal and the extra disk) name it; the same account's overage does not.
      const charges = (await world.deps.db('billing_charges').where({ subscription_id: subs[0] }).orderBy('id').select('kind', 'order_id', 'document_id')) as { kind: string; order_id: number | null; document_id: number }[];
      expect(charges.map((c) => [c.kind, c.order_id === null ? null : toNumber(c.order_id)])).to.deep.equal([['renewal', orderId], ['resource', orderId]]);
      const overage = (await world.deps.db('billing_charges').where({ subscription_id: subs[1], kind: 'overage' }).first('order_id')) as { order_id: number | null };
      expect(overage.order_id).to.equal(null);
      expect(await world.services.documents.orderInvoiceId(orderId!)).to.equal(toNumber(charges[0]!.document_id));
      const [trialOrder] = await renewalOrderOf(world, subs[3]!);
      const trial = await world.services.orders.get(world.provider, trialOrder!);
      expect(trial.lines.map((l) => [l.kind, l.amount])).to.deep.equal([['recurring', 999n]]);
      expect(trial.items[0]!.periodId).to.equal(trialPaidPeriod);
      const listed = await world.services.orders.list(world.provider, { type: 'renewal' });
      expect(listed.total).to.equal(6);
      expect(listed.items.every((o) => o.type === 'renewal')).to.equal(true);
    });

    it('an order whose invoice auto-pay paid went through the renewal workflow to completed, and its subscription is extended by the billed period', async () => {
      for (const i of [0, 1, 3, 8]) {
        const [orderId] = await renewalOrderOf(world, subs[i]!);
        const order = await world.services.orders.get(world.provider, orderId!);
        expect(order.status, `sub ${i}`).to.equal('CP');
        expect(order.history.map((h) => [h.status, h.step, h.outcome])).to.deep.equal([
          ['WP', 'charge_card', null],
          ['PR', 'provision_changes', 'success'],
          ['PC', 'notify_customer', 'success'],
          ['CP', 'completed', 'done'],
        ]);
        expect(order.paymentId).to.equal(null); // paid by its invoice: the order charged nothing itself
      }
      expect(await expiration(world, subs[0]!)).to.deep.include({ status: 30, expiration: '2026-03-09T00:00:00.000Z' });
      expect(await expiration(world, subs[1]!)).to.deep.include({ status: 30, expiration: '2026-03-01T00:00:00.000Z' });
      expect(await expiration(world, subs[3]!)).to.deep.equal({ status: 30, expiration: '2026-03-05T00:00:00.000Z', periodId: trialPaidPeriod });
      // One extension each, audited with its order.
      const renewed = (await world.deps.db('events').where({ name: 'subscription.renewed', object_id: String(subs[0]) }).select('payload')) as { payload: string }[];
      expect(renewed).to.have.length(1);
      const [orderId] = await renewalOrderOf(world, subs[0]!);
      expect(JSON.parse(renewed[0]!.payload)).to.deep.include({ orderId, previousExpirationDate: '2026-02-09T00:00:00.000Z', expirationDate: '2026-03-09T00:00:00.000Z' });
      expect(await world.deps.db('events').where({ name: 'order.completed' }).count({ n: '*' })).to.deep.equal([{ n: 4 }]);
      // One card payment per invoice auto-pay tried (Beta's declined), none by the orders.
      const payments = (await world.deps.db('payments').select('status', 'order_id')) as { status: string; order_id: number | null }[];
      expect(payments.map((p) => p.status).sort()).to.deep.equal(['declined', 'success', 'success', 'success', 'success']);
      expect(payments.filter((p) => p.order_id !== null)).to.deep.equal([]);
    });

    it('an unpaid renewal order waits at its charge step and the subscription is not extended; another renewal is refused, a cancellation is not', async () => {
      for (const i of [2, 6]) {
        const [orderId] = await renewalOrderOf(world, subs[i]!);
        const order = await world.services.orders.get(world.provider, orderId!);
        expect({ status: order.status, step: order.step }, `sub ${i}`).to.deep.equal({ status: 'WP', step: 'charge_card' });
      }
      expect((await expiration(world, subs[2]!)).expiration).to.equal('2026-02-05T00:00:00.000Z');
      expect((await expiration(world, subs[6]!)).expiration).to.equal('2026-02-01T00:00:00.000Z');
      // No task runs these orders: nothing would charge the card on the side of the invoice.
      const [beta] = await renewalOrderOf(world, subs[2]!);
      expect(await world.deps.db('tasks').where({ object_type: 'order', object_id: String(beta) }).count({ n: '*' })).to.deep.equal([{ n: 0 }]);
      await failure(world.services.subscriptionOrders.renew(world.provider, subs[2]!), 'NOT_ALLOWED', 'subscriptionId');
      const placed = await world.services.subscriptionOrders.cancel(world.provider, subs[2]!, { cancelType: 'none', when: 'end_of_term' });
      expect(placed.orderId).to.be.a('number');
    });

    it("an operator's payment of the open invoice completes its renewal order and extends the subscription; a rerun places nothing", async () => {
      const [orderId] = await renewalOrderOf(world, subs[6]!);
      const invoiceId = (await world.services.documents.orderInvoiceId(orderId!))!;
      const inv = (await world.deps.db('documents').where({ id: invoiceId }).first('account_id', 'open_amount')) as { account_id: number; open_amount: unknown };
      world.clock.set('2026-02-04T00:00:00Z');
      await world.services.documents.recordPayment(world.provider, { accountId: toNumber(inv.account_id), amount: toBigInt(inv.open_amount), method: 'check', reference: 'CHK-1', invoiceId });
      const order = await world.services.orders.get(world.provider, orderId!);
      expect(order.status).to.equal('CP');
      expect(order.history[1]!.comment).to.match(/^Invoice INV-\d+ paid\.$/);
      expect((await expiration(world, subs[6]!)).expiration).to.equal('2026-03-01T00:00:00.000Z');

      const ordersBefore = await count(world, 'orders');
      const again = await world.services.billingRun.run({ asOf: MIXED_AS_OF, startedBy: 'test', batchSize: 3 });
      expect({ orders: again.renewalOrders, charges: again.charges, invoices: again.invoices }).to.deep.equal({ orders: 0, charges: 0, invoices: 0 });
      expect(await count(world, 'orders')).to.equal(ordersBefore);
    });
  });

  it("a vendor's renewal workflow with an approval first: the order charges nothing itself, its charge step waits for the invoice, then the engine extends by the billed period", async () => {
    const world = await makeWorld({ start: '2026-01-15T10:00:00Z' });
    try {
      const book = await makeBook(world);
      await world.services.workflows.define(world.provider, {
        orderType: 'renewal',
        definition: {
          orderType: 'renewal',
          start: 'review',
          steps: {
            review: { action: 'wait_for_approval', next: { approved: 'charge_card', rejected: 'reject_order' } },
            charge_card: { action: 'charge_payment', next: { success: 'provision_changes', declined: 'reject_order', unknown: 'reject_order' } },
            provision_changes: { action: 'provision', next: { success: 'completed', failure: 'failed' } },
            completed: { action: 'complete', next: {} },
            reject_order: { action: 'reject', next: {} },
            failed: { action: 'fail', next: {} },
          },
        },
      });
      const web = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
      const carded = await makeCustomer(world, book, 'Carded');
      const cash = await makeCustomer(world, book, 'Cash', { card: null });
      const a = await makeSubscription(world, book, carded, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z') });
      const b = await makeSubscription(world, book, cash, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z') });
      world.clock.set('2026-02-01T00:00:00Z');
      const r = await world.services.billingRun.run({ asOf: d('2026-02-01T00:00:00Z'), startedBy: 'test' });
      expect({ orders: r.renewalOrders, succeeded: r.payments.succeeded }).to.deep.equal({ orders: 2, succeeded: 1 });
      const [oa] = await renewalOrderOf(world, a);
      const [ob] = await renewalOrderOf(world, b);
      // The invoice is paid but the order waits for its approval: no extension yet.
      expect((await world.services.orders.get(world.provider, oa!)).status).to.equal('WA');
      expect((await expiration(world, a)).expiration).to.equal('2026-02-05T00:00:00.000Z');

      const worker = new Worker(world.deps, world.services.tasks, orderHandlers(world.deps, { tasks: world.services.tasks, pluginInstances: world.services.pluginInstances, payments: world.services.payments, documents: world.services.documents }), { owner: 'rn-test', concurrency: 1, leaseMs: 60_000, pollMs: 20 });
      await world.services.orders.approve(world.provider, oa!);
      await world.services.orders.approve(world.provider, ob!);
      await drive(world.deps, world.clock, worker);
      // a: its invoice was paid, so the charge step passed without a charge; the renewal task extended it.
      expect((await world.services.orders.get(world.provider, oa!)).status).to.equal('CP');
      expect((await expiration(world, a)).expiration).to.equal('2026-03-05T00:00:00.000Z');
      expect(await count(world, 'payments')).to.equal(1);
      // b: its invoice is open, so the order waits at the charge step (and no card is tried).
      expect((await world.services.orders.get(world.provider, ob!)).step).to.equal('charge_card');
      expect((await expiration(world, b)).expiration).to.equal('2026-02-05T00:00:00.000Z');
      const invoiceId = (await world.services.documents.orderInvoiceId(ob!))!;
      await world.services.documents.recordPayment(world.provider, { accountId: cash.accountId, amount: 1000n, method: 'wire', invoiceId });
      const paid = await world.services.orders.get(world.provider, ob!);
      expect(paid.history.map((h) => h.status)).to.deep.equal(['WA', 'WP', 'PR', 'CP']);
      expect((await expiration(world, b)).expiration).to.equal('2026-03-05T00:00:00.000Z');
      // Paying again (or a second delivery) changes nothing: the extension is guarded by the billed period's start.
      await drive(world.deps, world.clock, worker);
      expect((await expiration(world, a)).expiration).to.equal('2026-03-05T00:00:00.000Z');
      void ms;
    } finally {
      await world.close();
    }
  });
});
