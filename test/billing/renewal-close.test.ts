import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Actor } from '../../src/context';
import { toBigInt, toNumber } from '../../src/db/knex';
import type { Worker } from '../../src/jobs/worker';
import { SubscriptionActionsService } from '../../src/subscriptions/service-actions';
import { SERVICE_STATUS } from '../../src/subscriptions/subscriptions-service';
import { dialect } from '../helpers/db';
import { makeWorld, type World } from '../helpers/world';
import { makeBook, makeCustomer, makePlan, makeSubscription, orderWorker, type Book } from './run-book';

/**
 * A billing run's renewal order (RN) waits for its invoice. When the subscription is canceled or terminated first,
 * the order is closed; a customer's cancellation credits the renewal of the period not served, a termination by
 * dunning leaves the invoice owed. And a cancellation refund gives back the tax paid on what it refunds.
 *
 * Every customer is in the US, taxed 8.875 % exclusive: a 10.00 renewal is invoiced 10.00 + 0.89 (0.8875 half-up)
 * = 10.89. Vendor defaults: renewals billed 7 days ahead, due 7 days after issue, terminate 30 days past due.
 */
describe(`renewal orders closed by a cancellation or a termination; the tax in a cancellation refund (${dialect})`, function () {
  this.timeout(120_000);
  let world: World;
  let book: Book;
  let worker: Worker;
  let dir: string;
  let plan: { planId: number; periodIds: number[] };

  const d = (s: string) => new Date(s);
  const drain = async () => {
    for (let i = 0; i < 50; i++) if ((await worker.runOnce()) === 0) return;
    throw new Error('the worker is still busy');
  };
  const balance = async (account: Actor) => (await world.services.documents.getBalance(world.provider, account.accountId)).balance;
  const docs = async (account: Actor, type: string) =>
    ((await world.deps.db('documents').where({ account_id: account.accountId, type }).orderBy('id').select('id', 'subtotal', 'tax_total', 'total', 'open_amount', 'status', 'related_document_id', 'order_id')) as Record<string, unknown>[]).map((r) => ({
      id: toNumber(r.id),
      subtotal: toBigInt(r.subtotal),
      tax: toBigInt(r.tax_total),
      total: toBigInt(r.total),
      open: toBigInt(r.open_amount),
      status: r.status,
      related: r.related_document_id === null ? null : toNumber(r.related_document_id),
      orderId: r.order_id === null ? null : toNumber(r.order_id),
    }));
  const renewalOrder = async (subscriptionId: number) => {
    const rows = (await world.deps.db('orders as o').join('order_items as i', 'i.order_id', 'o.id').where({ 'o.type': 'renewal', 'i.target_subscription_id': subscriptionId }).select('o.id')) as { id: number }[];
    expect(rows, `renewal orders of subscription ${subscriptionId}`).to.have.length(1);
    return world.services.orders.get(world.provider, toNumber(rows[0]!.id));
  };
  const sub = async (id: number) => {
    const r = (await world.deps.db('subscriptions').where({ id }).first('status', 'expiration_date')) as { status: unknown; expiration_date: unknown };
    return { status: toNumber(r.status), expiration: new Date(toNumber(r.expiration_date)).toISOString() };
  };
  const events = async (name: string, objectId: number) => toNumber(((await world.deps.db('events').where({ name, object_id: String(objectId) }).count({ n: '*' })) as { n: unknown }[])[0]!.n);
  /** A subscription [01-01, 02-01) whose service the sandbox gate provisioned (so that it can terminate it). */
  const subscribe = async (customer: Actor) => {
    const id = await makeSubscription(world, book, customer, plan, { start: d('2026-01-01T00:00:00Z'), expiration: d('2026-02-01T00:00:00Z') });
    await world.deps.db('subscriptions').where({ id }).update({ service_status: SERVICE_STATUS.notProvisioned });
    await new SubscriptionActionsService(world.deps, { tasks: world.services.tasks }).request(world.provider, id, 'provision');
    await drain();
    expect(toNumber(((await world.deps.db('subscriptions').where({ id }).first('service_status')) as { service_status: unknown }).service_status)).to.equal(SERVICE_STATUS.running);
    return id;
  };
  const run = (asOf: string) => world.services.billingRun.run({ asOf: d(asOf), startedBy: 'test' });

  beforeEach(async () => {
    world = await makeWorld({ start: '2026-01-01T00:00:00Z' });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostwright-rn-close-'));
    await world.services.pluginInstances.create(world.provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox', settings: { stateFile: path.join(dir, 'gate.json') } });
    book = await makeBook(world);
    await world.services.taxRules.create(world.provider, book.vendorId, { name: 'Sales tax 8.875%', country: 'US', ratePpm: 88_750 });
    plan = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    await world.deps.db('plan_periods').where({ id: plan.periodIds[0] }).update({ refund_period_days: 14, non_refundable_amount: 200 });
    worker = orderWorker(world, 'rn-close-test');
  });
  afterEach(async () => {
    await world?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A customer without a card whose subscription [01-01, 02-01) is renewed by the run of 01-25: its RN waits. */
  async function waitingRenewal(name: string): Promise<{ customer: Actor; subscriptionId: number; invoiceId: number }> {
    const customer = await makeCustomer(world, book, name, { card: null });
    const subscriptionId = await subscribe(customer);
    world.clock.set('2026-01-25T00:00:00Z');
    await run('2026-01-25T00:00:00Z');
    const order = await renewalOrder(subscriptionId);
    expect({ status: order.status, total: order.total }).to.deep.equal({ status: 'WP', total: 1000n });
    const [invoice] = await docs(customer, 'invoice');
    // 10.00 + 0.89 tax = 10.89, nothing paid.
    expect(invoice).to.deep.include({ subtotal: 1000n, tax: 89n, total: 1089n, open: 1089n, status: 'open' });
    return { customer, subscriptionId, invoiceId: invoice!.id };
  }

  /** A customer with a card whose subscription's term [02-01, 03-01) the run of 01-25 billed and auto-pay paid: 10.89. */
  async function paidTerm(name: string): Promise<{ customer: Actor; subscriptionId: number; invoiceId: number }> {
    const customer = await makeCustomer(world, book, name);
    const subscriptionId = await subscribe(customer);
    world.clock.set('2026-01-25T00:00:00Z');
    await run('2026-01-25T00:00:00Z');
    await drain();
    const [invoice] = await docs(customer, 'invoice');
    expect(invoice).to.deep.include({ total: 1089n, open: 0n, status: 'paid' });
    expect((await renewalOrder(subscriptionId)).status).to.equal('CP');
    expect((await sub(subscriptionId)).expiration).to.equal('2026-03-01T00:00:00.000Z');
    return { customer, subscriptionId, invoiceId: invoice!.id };
  }

  it('a cancellation while the renewal order waits: the order is closed (CA) and the renewal lines credited with their tax; the invoice is paid by the memo, balance 0', async () => {
    const { customer, subscriptionId, invoiceId } = await waitingRenewal('Canceller');
    world.clock.set('2026-01-27T00:00:00Z');
    const placed = await world.services.subscriptionOrders.cancel(customer, subscriptionId, { cancelType: 'none', when: 'immediate', reason: 'moving away' });
    await drain();
    const cl = await world.services.orders.get(world.provider, placed.orderId);
    expect(cl.status, JSON.stringify(cl.history)).to.equal('CP');
    expect(await sub(subscriptionId)).to.deep.equal({ status: 70, expiration: '2026-02-01T00:00:00.000Z' });

    const order = await renewalOrder(subscriptionId);
    expect({ status: order.status, step: order.step }).to.deep.equal({ status: 'CA', step: '_canceled' });
    const last = order.history[order.history.length - 1]!;
    expect(last.status).to.equal('CA');
    expect(last.comment).to.contain(`Subscription ${subscriptionId} was canceled`).and.contain('credited');
    expect(await events('order.canceled', order.orderId)).to.equal(1);
    expect(await world.deps.db('audit_log').where({ operation: 'order.canceled', object_id: String(order.orderId) }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);

    // The renewal line (10.00) with its tax: a credit memo of 10.89 (10.00 + 0.89) against the invoice, which it pays.
    const memos = await docs(customer, 'credit_memo');
    expect(memos).to.have.length(1);
    expect(memos[0]).to.deep.include({ subtotal: 1000n, tax: 89n, total: 1089n, open: 0n, related: invoiceId, orderId: order.orderId });
    expect((await docs(customer, 'invoice'))[0]).to.deep.include({ open: 0n, status: 'paid' });
    expect(await balance(customer)).to.equal(0n); // 1089 - 1089
    // Paid by the memo, yet not extended and no failure: the closed order is left alone.
    expect(await events('subscription.renewed', subscriptionId)).to.equal(0);
    expect(await events('order.provisioning_failed', order.orderId)).to.equal(0);
    expect((await renewalOrder(subscriptionId)).history).to.have.length(order.history.length);
  });

  it('an end-of-term cancellation while the renewal order waits closes it and credits the renewal of the next term at once', async () => {
    const { customer, subscriptionId } = await waitingRenewal('Leaver');
    world.clock.set('2026-01-27T00:00:00Z');
    await world.services.subscriptionOrders.cancel(customer, subscriptionId, { cancelType: 'refund', when: 'end_of_term' });
    await worker.runOnce();
    await worker.runOnce();
    expect((await renewalOrder(subscriptionId)).status).to.equal('CA');
    expect(await sub(subscriptionId)).to.deep.include({ status: 30 }); // served until 02-01
    expect((await docs(customer, 'credit_memo')).map((m) => [m.subtotal, m.tax, m.total])).to.deep.equal([[1000n, 89n, 1089n]]);
    expect(await balance(customer)).to.equal(0n);
  });

  it('an end-of-term cancellation scheduled before the run: the run bills no renewal for the term the subscription will not have, and a dry run counts none', async () => {
    const customer = await makeCustomer(world, book, 'Planner', { card: null });
    const subscriptionId = await subscribe(customer);
    const other = await subscribe(customer);
    world.clock.set('2026-01-20T00:00:00Z');
    await world.services.subscriptionOrders.cancel(customer, subscriptionId, { cancelType: 'none', when: 'end_of_term' });
    await drain();
    world.clock.set('2026-01-25T00:00:00Z');
    const dry = await world.services.billingRun.run({ asOf: d('2026-01-25T00:00:00Z'), startedBy: 'test', dryRun: true });
    expect(dry.charges).to.equal(1); // the other subscription's renewal only
    const summary = await run('2026-01-25T00:00:00Z');
    expect({ charges: summary.charges, renewalOrders: summary.renewalOrders }).to.deep.equal({ charges: 1, renewalOrders: 1 });
    expect(await world.deps.db('billing_charges').where({ subscription_id: subscriptionId }).count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    expect((await renewalOrder(other)).status).to.equal('WP');
    // At the term's end the scheduled cancellation terminates it; nothing is owed for it.
    world.clock.set('2026-02-01T00:00:00Z');
    await drain();
    expect(await sub(subscriptionId)).to.deep.include({ status: 70 });
    expect((await docs(customer, 'invoice')).map((i) => i.total)).to.deep.equal([1089n]); // the other one's renewal
  });

  it('a termination by dunning while the renewal order waits: the order is closed, the invoice stays owed; a later payment is applied without extending', async () => {
    const { customer, subscriptionId, invoiceId } = await waitingRenewal('Nonpayer');
    // Due 02-01 (issued 01-25 + 7 days); terminate 30 days past due: 03-03.
    world.clock.set('2026-03-03T00:00:00Z');
    const r = await run('2026-03-03T00:00:00Z');
    expect(r.terminations).to.equal(1);
    await drain();
    expect((await sub(subscriptionId)).status).to.equal(60);
    const order = await renewalOrder(subscriptionId);
    expect({ status: order.status, step: order.step }).to.deep.equal({ status: 'CA', step: '_canceled' });
    expect(order.history[order.history.length - 1]!.comment).to.contain(`Subscription ${subscriptionId} was terminated`).and.contain('stays open');
    expect(await events('order.canceled', order.orderId)).to.equal(1);
    expect(await docs(customer, 'credit_memo')).to.deep.equal([]);
    expect((await docs(customer, 'invoice'))[0]).to.deep.include({ open: 1089n, status: 'open' });
    expect(await balance(customer)).to.equal(1089n);

    // The customer pays after all: applied, the invoice paid, nothing extended, the order unchanged.
    world.clock.set('2026-03-05T00:00:00Z');
    await world.services.documents.recordPayment(world.provider, { accountId: customer.accountId, amount: 1089n, method: 'wire', reference: 'late', invoiceId });
    await drain();
    expect((await docs(customer, 'invoice'))[0]).to.deep.include({ open: 0n, status: 'paid' });
    expect(await balance(customer)).to.equal(0n);
    expect(await sub(subscriptionId)).to.deep.equal({ status: 60, expiration: '2026-02-01T00:00:00.000Z' });
    expect(await events('subscription.renewed', subscriptionId)).to.equal(0);
    const after = await renewalOrder(subscriptionId);
    expect({ status: after.status, history: after.history.length, failure: after.failureReason }).to.deep.equal({ status: 'CA', history: order.history.length, failure: order.failureReason });
    expect(await events('order.provisioning_failed', order.orderId)).to.equal(0);
  });

  it('a cancellation refund gives back the tax paid on what it refunds: 10.00 + 8.875 %, 8.00 refundable -> 8.71; balance 0', async () => {
    // Auto-pay paid the 10.89 invoice; the renewal order completed.
    const { customer, subscriptionId, invoiceId } = await paidTerm('Refunded');

    // Canceled on 02-03, 9 days after the payment (refund period 14 days): 10.00 - 2.00 not refundable = 8.00 net,
    // with its tax 8.00 x 10.89 / 10.00 = 8.712 -> 8.71.
    world.clock.set('2026-02-03T00:00:00Z');
    const placed = await world.services.subscriptionOrders.cancel(customer, subscriptionId, { cancelType: 'refund', when: 'immediate' });
    const lines = (await world.deps.db('order_lines').where({ order_id: placed.orderId }).select('kind', 'amount')) as { kind: string; amount: unknown }[];
    expect(lines.map((l) => [l.kind, toBigInt(l.amount)])).to.deep.equal([['refund', -871n]]);
    await drain();
    expect((await world.services.orders.get(world.provider, placed.orderId)).status).to.equal('CP');
    const refunds = (await world.deps.db('payments').where({ account_id: customer.accountId, kind: 'refund', status: 'success' }).select('amount')) as { amount: unknown }[];
    expect(refunds.map((x) => toBigInt(x.amount))).to.deep.equal([871n]);
    // The memo carries the invoice's share of tax: 8.71 x 0.89 / 10.89 = 0.7118 -> 0.71, net 8.00.
    expect((await docs(customer, 'credit_memo')).map((m) => [m.subtotal, m.tax, m.total, m.related])).to.deep.equal([[800n, 71n, 871n, invoiceId]]);
    expect((await docs(customer, 'refund')).map((x) => x.total)).to.deep.equal([871n]);
    expect(await balance(customer)).to.equal(0n); // 1089 - 1089 - 871 + 871
  });

  it('a cancellation credit carries the tax paid too, against the paid invoice: 8.71 of credit = 8.00 net + 0.71 tax; the balance is the credit', async () => {
    const { customer, subscriptionId, invoiceId } = await paidTerm('Credited');

    // The same share as the refund above, kept as credit on the account: 8.00 net x 10.89 / 10.00 -> 8.71.
    world.clock.set('2026-02-03T00:00:00Z');
    const placed = await world.services.subscriptionOrders.cancel(customer, subscriptionId, { cancelType: 'credit', when: 'immediate' });
    await drain();
    expect((await world.services.orders.get(world.provider, placed.orderId)).status).to.equal('CP');
    // Written against the paid invoice so that it carries its share of tax (tax reports see 0.71 given back), and
    // not applied to it (it is paid): the account holds 8.71 of credit. No money leaves through the gateway.
    expect((await docs(customer, 'credit_memo')).map((m) => [m.subtotal, m.tax, m.total, m.open, m.related])).to.deep.equal([[800n, 71n, 871n, 871n, invoiceId]]);
    expect(await world.deps.db('payments').where({ account_id: customer.accountId, kind: 'refund' }).count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    expect(await balance(customer)).to.equal(-871n);
  });

  it('a downgrade credit carries the tax paid on the term: 3.00 of credit + 0.27 tax, written against the term\'s invoice', async () => {
    const mini = await makePlan(world, book, { name: 'Mini', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 400n }] });
    // The term [02-01, 03-01) is paid: 10.00 + 0.89 tax.
    const { customer, subscriptionId, invoiceId } = await paidTerm('Downsizer');

    // On 02-15, 14 of the term's 28 days are left: credit 10.00 x 1/2 = 5.00, charge 4.00 x 1/2 = 2.00, total -3.00;
    // with the term invoice's tax: 3.00 x 10.89 / 10.00 = 3.267 -> 3.27 (0.27 of the 0.89 paid).
    world.clock.set('2026-02-15T00:00:00Z');
    const placed = await world.services.subscriptionOrders.change(customer, subscriptionId, { planId: mini.planId, periodId: mini.periodIds[0]!, when: 'immediate' });
    await drain();
    const order = await world.services.orders.get(world.provider, placed.orderId);
    expect({ status: order.status, total: order.total }).to.deep.equal({ status: 'CP', total: -300n });
    expect(order.history.map((h) => h.comment).join(' | ')).to.contain('A credit of 3.27 USD (3.00 USD and its tax) is due');
    // The memo against the term's invoice: its tax share 3.27 x 0.89 / 10.89 = 0.2672 -> 0.27, net 3.00; left as
    // credit on the account (the invoice is paid).
    expect((await docs(customer, 'credit_memo')).map((m) => [m.subtotal, m.tax, m.total, m.open, m.related])).to.deep.equal([[300n, 27n, 327n, 327n, invoiceId]]);
    expect(await balance(customer)).to.equal(-327n);
  });
});
