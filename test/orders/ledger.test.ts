import fs from 'node:fs';
import { expect } from 'chai';
import { toBigInt, toNumber } from '../../src/db/knex';
import { Worker } from '../../src/jobs/worker';
import { orderHandlers, subscriptionHooks } from '../../src/orders/engine';
import { makeCtx, runSimpleStep, type OrderRow } from '../../src/orders/step-handlers';
import { OrdersService } from '../../src/orders/orders-service';
import { PromoCodesService } from '../../src/orders/promo-codes-service';
import { SubscriptionOrdersService } from '../../src/orders/subscription-orders';
import { WorkflowsService } from '../../src/orders/workflows-service';
import { SubscriptionsService } from '../../src/subscriptions/subscriptions-service';
import { subscriptionActionHandlers } from '../../src/subscriptions/service-actions';
import { makeWorld, type World } from '../helpers/world';
import { drive, makeCatalog, makeEngine, orderRow, type Catalog, type Engine } from './fixtures';

const DAY = 86_400_000;

/**
 * Orders in the ledger: a charged order's invoice and payment document, their reversal when the saga undoes the
 * charge, and order credits as credit memos. The engine runs with the application's DocumentsService, as on the server.
 */
describe('orders into the ledger: invoices for charged orders, credit memos for order credits', () => {
  let world: World;
  let engine: Engine;
  let cat: Catalog;
  let orders: OrdersService;
  let lifecycle: SubscriptionOrdersService;
  let subscriptions: SubscriptionsService;

  const docsOf = async (accountId: number) =>
    (await world.deps.db('documents').where({ account_id: accountId }).orderBy('id').select('id', 'type', 'status', 'total', 'tax_total', 'open_amount', 'balance_effect', 'order_id', 'payment_id', 'related_document_id')).map(
      (d: Record<string, unknown>) => ({
        id: toNumber(d.id),
        type: d.type as string,
        status: d.status as string,
        total: toBigInt(d.total),
        open: toBigInt(d.open_amount),
        orderId: d.order_id === null ? null : toNumber(d.order_id),
        paymentId: d.payment_id === null ? null : toNumber(d.payment_id),
        relatedId: d.related_document_id === null ? null : toNumber(d.related_document_id),
      }),
    );
  const balance = async () => (await world.services.documents.getBalance(world.provider, cat.customer.accountId)).balance;
  const linesOf = async (documentId: number) =>
    (await world.services.documents.getDocument(world.provider, documentId)).lines.map((l) => [l.kind, l.description, l.quantity, l.unitPrice, l.amount]);

  beforeEach(async () => {
    world = await makeWorld({ start: '2026-03-01T10:00:00Z' });
    subscriptions = new SubscriptionsService(world.deps);
    engine = makeEngine(world.deps, world.services, { subscriptions: subscriptionHooks(world.deps, subscriptions, world.services.catalog) });
    const handlers = {
      ...orderHandlers(world.deps, {
        tasks: world.services.tasks,
        pluginInstances: world.services.pluginInstances,
        payments: engine.payments,
        fraud: engine.fraud,
        subscriptions: subscriptionHooks(world.deps, subscriptions, world.services.catalog),
        documents: world.services.documents,
      }),
      ...subscriptionActionHandlers(world.deps, { pluginInstances: world.services.pluginInstances, subscriptions }),
    };
    engine.worker = new Worker(world.deps, world.services.tasks, handlers, { owner: 'ledger-test', concurrency: 1, leaseMs: 60_000, pollMs: 20 });
    cat = await makeCatalog(world.deps, world.services, world.provider, engine);
    const workflows = new WorkflowsService(world.deps);
    const promoCodes = new PromoCodesService(world.deps);
    orders = new OrdersService(world.deps, { catalog: world.services.catalog, tasks: world.services.tasks, workflows, promoCodes });
    lifecycle = new SubscriptionOrdersService(world.deps, { catalog: world.services.catalog, tasks: world.services.tasks, workflows });
    await promoCodes.create(world.provider, { code: 'TENOFF', kind: 'percent', value: 1000 });
    // The Web plan is refundable (or credited) for 14 days less 2.00.
    await world.deps.db('plan_periods').where({ id: cat.plans[0]!.periodId }).update({ refund_period_days: 14, non_refundable_amount: 200 });
  });
  afterEach(async () => {
    await world?.close();
    if (cat) fs.rmSync(cat.dir, { recursive: true, force: true });
  });

  async function completedSale(domain: string, promoCode?: string): Promise<{ orderId: number; subscriptionId: number }> {
    const placed = await orders.place(world.provider, { accountId: cat.customer.accountId, payToolId: cat.payToolId, promoCode, items: [{ planId: cat.plans[0]!.planId, periodId: cat.plans[0]!.periodId, parameters: { domain } }] });
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, placed.orderId)).status).to.equal('CP');
    const sub = (await world.deps.db('subscriptions').where({ order_id: placed.orderId }).first('id')) as { id: number };
    return { orderId: placed.orderId, subscriptionId: toNumber(sub.id) };
  }

  it('a completed sales order: one invoice of the order lines (discount included), paid by a payment document for the charge; balance 0', async () => {
    const placed = await orders.place(world.provider, {
      accountId: cat.customer.accountId,
      payToolId: cat.payToolId,
      promoCode: 'TENOFF',
      items: [
        { planId: cat.plans[0]!.planId, periodId: cat.plans[0]!.periodId, parameters: { domain: 'a.example' } },
        { planId: cat.plans[1]!.planId, periodId: cat.plans[1]!.periodId, parameters: { domain: 'b.example' } },
      ],
    });
    expect(await world.services.documents.orderInvoiceId(placed.orderId)).to.equal(null);
    await drive(world.deps, world.clock, engine.worker);
    const row = await orderRow(world.deps.db, placed.orderId);
    expect(row.status).to.equal('CP');
    const order = await orders.get(world.provider, placed.orderId);
    expect(order.total).to.equal(2700n); // 10.00 + 20.00 less 10 %

    const docs = await docsOf(cat.customer.accountId);
    expect(docs.map((d) => d.type)).to.deep.equal(['invoice', 'payment']);
    const [invoice, payment] = docs as [(typeof docs)[0], (typeof docs)[0]];
    expect(invoice).to.include({ status: 'paid', total: order.total, open: 0n, orderId: placed.orderId });
    expect(payment).to.include({ total: 2700n, open: 0n, paymentId: toNumber(row.payment_id), orderId: null });
    expect(await world.services.documents.orderInvoiceId(placed.orderId)).to.equal(invoice.id);
    // The invoice's lines are the order's lines, discounts included.
    const kindOf: Record<string, string> = { setup: 'setup', recurring: 'recurring', discount: 'adjustment' };
    expect(await linesOf(invoice.id)).to.deep.equal(order.lines.map((l) => [kindOf[l.kind] ?? l.kind, l.description, String(l.quantity), l.unitPrice, l.amount]));
    expect(order.lines.some((l) => l.amount < 0n)).to.equal(true);
    const apps = await world.services.documents.listApplications(world.provider, invoice.id);
    expect(apps.map((a) => [a.sourceDocumentId, a.amount])).to.deep.equal([[payment.id, 2700n]]);
    expect(await balance()).to.equal(0n);
  });

  it('a failed bundle (sandbox_fail): invoice, payment, then the voided charge as a refund document and the invoice credited; balance 0', async () => {
    const placed = await orders.place(world.provider, {
      accountId: cat.customer.accountId,
      payToolId: cat.payToolId,
      items: [0, 1, 2].map((i) => ({ planId: cat.plans[i]!.planId, periodId: cat.plans[i]!.periodId, parameters: { domain: `bundle${i}.example`, ...(i === 2 ? { sandbox_fail: 'provision' } : {}) } })),
    });
    await drive(world.deps, world.clock, engine.worker);
    const row = await orderRow(world.deps.db, placed.orderId);
    expect(row.status).to.equal('PF');
    const charge = (await world.deps.db('payments').where({ id: row.payment_id }).first('status')) as { status: string };
    expect(charge.status).to.equal('voided');
    const voidTx = (await world.deps.db('payments').where({ parent_payment_id: row.payment_id, kind: 'void' }).first('id')) as { id: number };

    const docs = await docsOf(cat.customer.accountId);
    expect(docs.map((d) => d.type)).to.deep.equal(['invoice', 'payment', 'refund', 'credit_memo']);
    const [invoice, payment, refund, memo] = docs as [(typeof docs)[0], (typeof docs)[0], (typeof docs)[0], (typeof docs)[0]];
    expect(invoice).to.include({ total: 6000n, orderId: placed.orderId });
    expect(payment).to.include({ total: 6000n, paymentId: toNumber(row.payment_id) });
    expect(refund).to.include({ total: 6000n, relatedId: payment.id, paymentId: toNumber(voidTx.id), open: 0n });
    expect(memo).to.include({ total: 6000n, relatedId: invoice.id, orderId: placed.orderId, open: 0n });
    expect(await balance()).to.equal(0n);
    const b = await world.services.documents.getBalance(world.provider, cat.customer.accountId);
    expect([b.openDebits, b.unappliedCredits]).to.deep.equal([0n, 0n]);
  });

  it('is idempotent: a repeated charge step, and repeated ledger calls, write nothing twice', async () => {
    const { orderId } = await completedSale('once.example');
    const before = await docsOf(cat.customer.accountId);
    expect(before.map((d) => d.type)).to.deep.equal(['invoice', 'payment']);
    const row = (await world.deps.db('orders').where({ id: orderId }).first()) as OrderRow;
    // A task of the charge step run again with the order as it saw it then (before it moved on).
    const ctx = makeCtx(world.deps, { tasks: world.services.tasks, pluginInstances: world.services.pluginInstances, payments: engine.payments, documents: world.services.documents });
    await runSimpleStep(ctx, { ...row, step: 'charge_card', status: 'WP' } as OrderRow, 'charge_payment');
    const actor = await ctx.actor();
    const again = await world.deps.db.transaction((tx) => world.services.documents.recordOrderChargeTx(tx, actor, world.clock.now(), orderId, toNumber(row.payment_id)));
    expect(again).to.deep.equal({ invoiceId: before[0]!.id, paymentDocumentId: before[1]!.id });
    // Nothing voided or refunded: a reversal writes nothing.
    const undo = await world.deps.db.transaction((tx) => world.services.documents.reverseOrderChargeTx(tx, actor, world.clock.now(), orderId, toNumber(row.payment_id), 'test'));
    expect(undo).to.deep.equal({ creditMemoId: null, refundDocumentId: null });
    expect(await docsOf(cat.customer.accountId)).to.deep.equal(before);
    expect(await world.deps.db('events').where({ name: 'invoice.issued' })).to.have.length(1);
    expect(await balance()).to.equal(0n);
  });

  it('a refunded (not voided) charge is reversed by a refund document of the refund transaction and a credit memo; once', async () => {
    const { orderId } = await completedSale('refunded.example');
    const row = await orderRow(world.deps.db, orderId);
    const actor = await makeCtx(world.deps, { tasks: world.services.tasks, pluginInstances: world.services.pluginInstances }).actor();
    // Refunded in two parts at the gateway (as the saga's refund, after a void it could not make, would).
    await engine.payments.refund(actor, toNumber(row.payment_id), { amount: 400n, idempotencyKey: 'part-1' });
    const rest = await engine.payments.refund(actor, toNumber(row.payment_id), { idempotencyKey: 'part-2' });
    expect(rest).to.include({ status: 'success', amount: 600n });
    const reverse = () => world.deps.db.transaction((tx) => world.services.documents.reverseOrderChargeTx(tx, actor, world.clock.now(), orderId, toNumber(row.payment_id), 'provisioning failed'));
    const first = await reverse();
    expect(first.refundDocumentId).to.be.a('number');
    expect(first.creditMemoId).to.be.a('number');
    expect(await reverse()).to.deep.equal({ creditMemoId: null, refundDocumentId: null });
    const docs = await docsOf(cat.customer.accountId);
    expect(docs.map((d) => [d.type, d.total, d.open])).to.deep.equal([
      ['invoice', 1000n, 0n],
      ['payment', 1000n, 0n],
      ['refund', 1000n, 0n],
      ['credit_memo', 1000n, 0n],
    ]);
    expect(docs[2]).to.include({ paymentId: rest.paymentId, relatedId: docs[1]!.id });
    expect(await balance()).to.equal(0n);
  });

  it('an order credit larger than its refund: the memo pays the refund document first, only what is left pays an unrelated open invoice', async () => {
    const { orderId } = await completedSale('leftover.example');
    const row = await orderRow(world.deps.db, orderId);
    // An unrelated invoice of 5.00, already overdue (so it sorts before the refund document among the open debits).
    const now = world.clock.now();
    const open = await world.services.documents.issueInvoice(world.provider, {
      accountId: cat.customer.accountId,
      issueDate: new Date(now.getTime() - 20 * DAY),
      dueDate: new Date(now.getTime() - 5 * DAY),
      lines: [{ kind: 'adjustment', description: 'Extra work', quantity: '1', unitPrice: 500n, amount: 500n }],
    });
    const actor = await makeCtx(world.deps, { tasks: world.services.tasks, pluginInstances: world.services.pluginInstances }).actor();
    const back = await engine.payments.refund(actor, toNumber(row.payment_id), { amount: 600n, idempotencyKey: 'leftover' });
    const { orderNumber } = await orders.get(world.provider, orderId);
    // 8.00 credited (as an approved held order credits the undelivered items with their tax), 6.00 of it refunded.
    const docs = await world.deps.db.transaction((tx) =>
      world.services.documents.refundOnCancellationTx(tx, actor, world.clock.now(), { orderId, orderNumber, paymentId: toNumber(row.payment_id), refundPaymentId: back.paymentId, amount: 600n, reason: 'test', credit: 800n }),
    );
    const applied = async (documentId: number) => (await world.services.documents.listApplications(world.provider, documentId)).map((a) => [a.sourceDocumentId, a.targetDocumentId, a.amount]);
    expect(await applied(docs!.creditMemoId)).to.deep.equal([
      [docs!.creditMemoId, docs!.refundDocumentId, 600n],
      [docs!.creditMemoId, open.documentId, 200n],
    ]);
    const byId = new Map((await docsOf(cat.customer.accountId)).map((d) => [d.id, d]));
    expect(byId.get(docs!.refundDocumentId)).to.include({ status: 'issued', open: 0n });
    expect(byId.get(docs!.creditMemoId)).to.include({ open: 0n });
    expect(byId.get(open.documentId)).to.include({ status: 'open', open: 300n });
    expect(await balance()).to.equal(500n - 800n + 600n);
  });

  it('a cancellation with cancelType credit: a credit memo of the amount, applied to an open invoice; the balance drops by it', async () => {
    const { subscriptionId } = await completedSale('credit.example');
    world.clock.set(new Date(world.clock.now().getTime() + 2 * DAY));
    // An open invoice of 5.00 the credit will pay.
    const open = await world.services.documents.issueInvoice(world.provider, { accountId: cat.customer.accountId, lines: [{ kind: 'adjustment', description: 'Extra work', quantity: '1', unitPrice: 500n, amount: 500n }] });
    expect(await balance()).to.equal(500n);
    const { orderId } = await lifecycle.cancel(world.provider, subscriptionId, { cancelType: 'credit', when: 'immediate' });
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    const memos = (await docsOf(cat.customer.accountId)).filter((d) => d.type === 'credit_memo');
    expect(memos).to.have.length(1);
    expect(memos[0]).to.include({ total: 800n, orderId, open: 300n });
    expect(await balance()).to.equal(500n - 800n);
    expect((await world.services.documents.getDocument(world.provider, open.documentId)).status).to.equal('paid');
    // The credit is still announced as before.
    expect(await world.deps.db('events').where({ name: 'order.credit_due', object_id: String(orderId) })).to.have.length(1);
  });

  it("a downgrade's negative amount: a credit memo of it, nothing charged; an upgrade's charge is invoiced", async () => {
    const { subscriptionId } = await completedSale('change.example');
    world.clock.set(new Date('2026-03-11T10:00:00Z'));
    const mail = cat.plans[1]!;
    const up = await lifecycle.change(cat.customer, subscriptionId, { planId: mail.planId, periodId: mail.periodId, when: 'immediate' });
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, up.orderId)).status).to.equal('CP');
    const upInvoiceId = await world.services.documents.orderInvoiceId(up.orderId);
    expect(upInvoiceId).to.be.a('number');
    // credit -6.77 and recurring 13.55 on the invoice: 6.78, paid.
    expect((await linesOf(upInvoiceId!)).map((l) => l[4])).to.deep.equal([-677n, 1355n]);
    expect((await world.services.documents.getDocument(world.provider, upInvoiceId!)).status).to.equal('paid');
    expect(await balance()).to.equal(0n);

    world.clock.set(new Date('2026-03-21T10:00:00Z'));
    const web = cat.plans[0]!;
    const down = await lifecycle.change(cat.customer, subscriptionId, { planId: web.planId, periodId: web.periodId, when: 'immediate' });
    const downOrder = await orders.get(world.provider, down.orderId);
    expect(downOrder.total < 0n).to.equal(true);
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, down.orderId)).status).to.equal('CP');
    expect(await world.services.documents.orderInvoiceId(down.orderId)).to.equal(null);
    const memos = (await docsOf(cat.customer.accountId)).filter((d) => d.type === 'credit_memo');
    expect(memos.map((m) => [m.total, m.orderId])).to.deep.equal([[-downOrder.total, down.orderId]]);
    expect(await balance()).to.equal(downOrder.total);
  });
});
