import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Actor } from '../../src/context';
import { toBigInt, toNumber } from '../../src/db/knex';
import type { Worker } from '../../src/jobs/worker';
import { dialect } from '../helpers/db';
import { makeWorld, type World } from '../helpers/world';
import { CARDS, DAY, makeBook, makeCustomer, makePlan, makeSubscription, orderWorker, type Book } from './run-book';

/**
 * A year of billing (2026-01-01 .. 2026-12-31) over a mixed book, with the injected clock moved one day at a time:
 * each day at 00:00 UTC what the customers do that day, then the billing run, then the worker drains the order and
 * subscription tasks. Every invoice total, the proration amounts and the refund are figures computed by hand below.
 *
 * Vendor defaults: renewals billed 7 days before expiration, due 7 days after issue, auto-pay retries 1, 3 and 7
 * days after issue, dunning grace / suspend / terminate 3 / 10 / 30 days past due.
 */

const d = (s: string) => new Date(`${s}T00:00:00Z`);

describe(`a year of billing over a mixed book (${dialect})`, function () {
  this.timeout(120_000);
  let world: World;
  let book: Book;
  let worker: Worker;
  let dir: string;

  const drain = async () => {
    for (let i = 0; i < 50; i++) if ((await worker.runOnce()) === 0) return;
    throw new Error('the worker is still busy');
  };
  const invoiceTotals = async (account: Actor) =>
    ((await world.deps.db('documents').where({ account_id: account.accountId, type: 'invoice' }).orderBy('id').select('total')) as { total: unknown }[]).map((r) => toBigInt(r.total));
  const docs = async (account: Actor, type: string) =>
    ((await world.deps.db('documents').where({ account_id: account.accountId, type }).orderBy('id').select('total')) as { total: unknown }[]).map((r) => toBigInt(r.total));
  const sub = async (id: number) => {
    const r = (await world.deps.db('subscriptions').where({ id }).first('status', 'service_status', 'plan_id', 'expiration_date')) as Record<string, unknown>;
    return { status: toNumber(r.status), service: toNumber(r.service_status), planId: toNumber(r.plan_id), expiration: new Date(toNumber(r.expiration_date)).toISOString().slice(0, 10) };
  };
  const balance = async (account: Actor) => (await world.services.documents.getBalance(world.provider, account.accountId)).balance;
  const orderLines = async (orderId: number) =>
    ((await world.deps.db('order_lines').where({ order_id: orderId }).orderBy('position').select('kind', 'amount')) as { kind: string; amount: unknown }[]).map((l) => [l.kind, toBigInt(l.amount)]);

  before(async () => {
    world = await makeWorld({ start: '2026-01-01T00:00:00Z' });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostwright-year-'));
    await world.services.pluginInstances.create(world.provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox', settings: { stateFile: path.join(dir, 'gate.json') } });
    book = await makeBook(world);
    worker = orderWorker(world, 'year-test');
  });
  after(async () => {
    await world?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('bills every subscription exactly as computed by hand, day after day for a year', async () => {
    const { db } = world.deps;
    const { bandwidth } = book.resources;
    // One exclusive tax rate, for customers in Canada (only Yearly is).
    await world.services.taxRules.create(world.provider, book.vendorId, { name: 'GST 5%', country: 'CA', ratePpm: 50_000 });

    const basic = await makePlan(world, book, { name: 'Basic', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1999n }] });
    const yearly = await makePlan(world, book, { name: 'Pro yearly', currency: 'USD', periods: [{ duration: 1, unit: 'year', recurringFee: 19900n }] });
    const trialPaid = await makePlan(world, book, { name: 'Trial then paid', currency: 'USD', periods: [{ duration: 30, unit: 'day', trial: true }, { duration: 1, unit: 'month', recurringFee: 999n }] });
    const trialOnly = await makePlan(world, book, { name: 'Trial only', currency: 'USD', periods: [{ duration: 14, unit: 'day', trial: true }] });
    const hosting = await makePlan(world, book, {
      name: 'Hosting',
      currency: 'USD',
      periods: [{ duration: 1, unit: 'month', recurringFee: 500n }],
      rates: [{ resourceId: bandwidth, included: 100, overageFee: 10n, tiers: [{ upTo: 500, fee: 10n }, { upTo: null, fee: 5n }] }],
    });
    const small = await makePlan(world, book, { name: 'Web S', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    const large = await makePlan(world, book, { name: 'Web L', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 2000n }] });
    const refundable = await makePlan(world, book, { name: 'Web R', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    await db('plan_periods').where({ id: refundable.periodIds[0] }).update({ refund_period_days: 14, non_refundable_amount: 200 });

    const monthly = await makeCustomer(world, book, 'Monthly');
    const monthlySub = await makeSubscription(world, book, monthly, basic, { start: d('2026-01-10'), expiration: d('2026-02-10') });
    const annual = await makeCustomer(world, book, 'Yearly');
    await db('accounts').where({ id: annual.accountId }).update({ country: 'CA' });
    const annualSub = await makeSubscription(world, book, annual, yearly, { start: d('2025-03-01'), expiration: d('2026-03-01') });
    const trials = await makeCustomer(world, book, 'Trials');
    const converts = await makeSubscription(world, book, trials, trialPaid, { status: 15, start: d('2026-01-06'), expiration: d('2026-02-05') });
    const expires = await makeSubscription(world, book, trials, trialOnly, { status: 15, start: d('2026-01-10'), expiration: d('2026-01-24') });
    const metered = await makeCustomer(world, book, 'Metered');
    const meteredSub = await makeSubscription(world, book, metered, hosting, { start: d('2026-01-01'), expiration: d('2026-02-01'), resources: [{ resourceId: bandwidth, included: 100 }] });
    const recovers = await makeCustomer(world, book, 'Recovers', { card: 'decline' });
    const recoversSub = await makeSubscription(world, book, recovers, small, { start: d('2026-01-05'), expiration: d('2026-02-05') });
    const changer = await makeCustomer(world, book, 'Changer');
    const neverPays = await makeCustomer(world, book, 'Never pays');
    const refunded = await makeCustomer(world, book, 'Refunded');
    const renewedRefund = await makeCustomer(world, book, 'Renewed refund');

    /** A sales order paid with the account's default card, provisioned through the sandbox gate: the subscription. */
    const buy = async (customer: Actor, plan: { planId: number; periodIds: number[] }, domain: string) => {
      const order = await world.services.orders.place(world.provider, { accountId: customer.accountId, items: [{ planId: plan.planId, periodId: plan.periodIds[0]!, parameters: { domain } }] });
      await drain();
      expect((await db('orders').where({ id: order.orderId }).first('status')).status).to.equal('CP');
      return toNumber(((await db('subscriptions').where({ order_id: order.orderId }).first('id')) as { id: number }).id);
    };
    let changerSub = 0;
    let neverPaysSub = 0;
    let refundedSub = 0;
    let upOrder = 0;
    let downOrder = 0;
    let cancelOrder = 0;
    let renewedRefundSub = 0;
    let renewedCancelOrder = 0;
    const steps: Record<string, () => Promise<void>> = {
      '2026-01-01': async () => {
        changerSub = await buy(changer, small, 'changer.example'); // term [01-01, 02-01)
      },
      // Recovers' renewal (billed 01-29) declines at 01-29, 01-30 and 02-01; a working card is stored on 02-02
      // and the third retry, 7 days after issue (02-05), pays.
      '2026-02-02': async () => {
        await world.services.payments.storePayTool(world.provider, recovers.accountId, book.gatewayId, CARDS.approve, { makeDefault: true });
      },
      // Metered: 700 GB in March, 250.5 GB in July.
      '2026-03-15': async () => {
        await world.services.usage.report(world.provider, { subscriptionId: meteredSub, resourceId: bandwidth, quantity: '700', mode: 'increment', usageId: 'march' });
      },
      '2026-07-15': async () => {
        await world.services.usage.report(world.provider, { subscriptionId: meteredSub, resourceId: bandwidth, quantity: '250.5', mode: 'set', usageId: 'july' });
      },
      // Changer's term is [05-01, 06-01) (31 days). Upgrade on 05-11: 21 days of 31 left.
      '2026-05-11': async () => {
        upOrder = (await world.services.subscriptionOrders.change(changer, changerSub, { planId: large.planId, periodId: large.periodIds[0]!, when: 'immediate' })).orderId;
      },
      // Downgrade on 05-21: 11 days of 31 left.
      '2026-05-21': async () => {
        downOrder = (await world.services.subscriptionOrders.change(changer, changerSub, { planId: small.planId, periodId: small.periodIds[0]!, when: 'immediate' })).orderId;
      },
      // Never pays: bought on 06-01 (term [06-01, 07-01)), then only a card that declines.
      '2026-06-01': async () => {
        neverPaysSub = await buy(neverPays, small, 'never.example');
      },
      '2026-06-02': async () => {
        await world.services.payments.storePayTool(world.provider, neverPays.accountId, book.gatewayId, CARDS.decline, { makeDefault: true });
      },
      // Refunded: bought on 09-01, canceled with a refund on 09-08 (inside the 14-day refund period).
      '2026-09-01': async () => {
        refundedSub = await buy(refunded, refundable, 'refund.example');
      },
      '2026-09-08': async () => {
        cancelOrder = (await world.services.subscriptionOrders.cancel(refunded, refundedSub, { cancelType: 'refund', when: 'immediate', reason: 'not for me' })).orderId;
      },
      // Renewed refund: bought on 10-01; the run bills the renewal for [11-01, 12-01) on 10-25 and auto-pay pays it;
      // canceled on 11-03, 9 days after that payment (inside its 14-day refund period).
      '2026-10-01': async () => {
        renewedRefundSub = await buy(renewedRefund, refundable, 'renewed.example');
      },
      '2026-11-03': async () => {
        renewedCancelOrder = (await world.services.subscriptionOrders.cancel(renewedRefund, renewedRefundSub, { cancelType: 'refund', when: 'immediate' })).orderId;
      },
    };

    for (let t = d('2026-01-01').getTime(); t <= d('2026-12-31').getTime(); t += DAY) {
      const day = new Date(t);
      world.clock.set(day);
      const step = steps[day.toISOString().slice(0, 10)] as (() => Promise<void>) | undefined;
      if (step !== undefined) await step();
      const summary = await world.services.billingRun.run({ asOf: day, startedBy: 'year-test' });
      // Tasks come from the day's orders and from dunning's gate requests (a payment lifting a suspension too).
      if (step !== undefined || summary.suspensions + summary.terminations + summary.payments.succeeded > 0) await drain();
      if (day.toISOString().slice(0, 10) === '2026-02-04') {
        // Before the third retry: still unpaid, expiration unchanged.
        expect(await sub(recoversSub)).to.deep.include({ status: 30, expiration: '2026-02-05' });
      }
    }

    // Monthly: Basic 19.99, renewals of 02-10 .. 12-10 billed 7 days before (the 2027-01-10 one is billed in 2027).
    expect(await invoiceTotals(monthly)).to.deep.equal(Array(11).fill(1999n)); // 11 x 1999
    expect(await sub(monthlySub)).to.deep.include({ status: 30, expiration: '2027-01-10' });
    expect(await balance(monthly)).to.equal(0n);

    // Yearly: one renewal for [2026-03-01, 2027-03-01), billed 02-22: 19900 + 5 % GST 995 = 20895.
    expect(await invoiceTotals(annual)).to.deep.equal([20895n]); // 19900 * 0.05 = 995; 19900 + 995 = 20895
    expect(await sub(annualSub)).to.deep.include({ status: 30, expiration: '2027-03-01' });
    expect(await balance(annual)).to.equal(0n);

    // Trials: the conversion (for [02-05, 03-05), billed 01-29) and renewals of 03-05 .. 2027-01-05 (billed 12-29),
    // 1 + 11 invoices of 9.99; the trial-only plan expires on 01-24 and is never billed.
    expect(await invoiceTotals(trials)).to.deep.equal(Array(12).fill(999n)); // 12 x 999
    expect(await sub(converts)).to.deep.include({ status: 30, expiration: '2027-02-05' });
    expect((await sub(expires)).status).to.equal(50);

    // Metered: renewals of 02-01 .. 2027-01-01 at 5.00 (billed 01-25 .. 12-25, 12 invoices) and two overage
    // invoices in arrears: March's 700 GB, 600 over: 500 x 0.10 + 100 x 0.05 = 50.00 + 5.00 = 5500, billed 04-01;
    // July's 250.5 GB, 150.5 over: 150.5 x 0.10 = 15.05 = 1505, billed 08-01.
    expect(await invoiceTotals(metered)).to.deep.equal([500n, 500n, 500n, 5500n, 500n, 500n, 500n, 500n, 1505n, 500n, 500n, 500n, 500n, 500n]);
    expect(await balance(metered)).to.equal(0n);

    // Recovers: the renewal of 02-05 paid by the third retry on 02-05, and every later one at once: 12 x 10.00
    // (renewals of 02-05 .. 2027-01-05). Three declined attempts, then 12 successful payments.
    expect(await invoiceTotals(recovers)).to.deep.equal(Array(12).fill(1000n)); // 12 x 1000
    expect(await sub(recoversSub)).to.deep.include({ status: 30, expiration: '2027-02-05' });
    const recoversPayments = (await db('payments').where({ account_id: recovers.accountId }).orderBy('id').select('status')) as { status: string }[];
    expect(recoversPayments.map((p) => p.status)).to.deep.equal([...Array(3).fill('declined'), ...Array(12).fill('success')]);
    expect(await balance(recovers)).to.equal(0n);

    // Changer: the sales order (10.00) on 01-01, renewals of 02-01 .. 05-01 at 10.00; the upgrade on 05-11, 21 of
    // 31 days left: credit 1000 x 21/31 = 677.42 -> -677, charge 2000 x 21/31 = 1354.84 -> 1355, invoice 678;
    // the downgrade on 05-21, 11 of 31 days left: credit 2000 x 11/31 = 709.68 -> -710, charge 1000 x 11/31 =
    // 354.84 -> 355, total -355: a credit memo of 3.55, which the renewal of 06-01 (10.00, billed 05-25) takes,
    // so auto-pay charges 10.00 - 3.55 = 6.45; then renewals of 07-01 .. 2027-01-01 at 10.00.
    expect(await orderLines(upOrder)).to.deep.equal([['credit', -677n], ['recurring', 1355n]]);
    expect(await orderLines(downOrder)).to.deep.equal([['credit', -710n], ['recurring', 355n]]);
    expect(await invoiceTotals(changer)).to.deep.equal([1000n, 1000n, 1000n, 1000n, 1000n, 678n, ...Array(8).fill(1000n)]);
    expect(await docs(changer, 'credit_memo')).to.deep.equal([355n]);
    const changerCharges = (await db('payments').where({ account_id: changer.accountId, status: 'success' }).orderBy('id').select('amount')) as { amount: unknown }[];
    expect(changerCharges.map((p) => toBigInt(p.amount))).to.deep.equal([1000n, 1000n, 1000n, 1000n, 1000n, 678n, 645n, ...Array(7).fill(1000n)]); // 1000 - 355 = 645
    expect(await sub(changerSub)).to.deep.include({ planId: small.planId, expiration: '2027-02-01' }); // the last renewal, [2027-01-01, 2027-02-01), paid 12-25
    expect(await balance(changer)).to.equal(0n);

    // Never pays: the sales order (10.00) on 06-01, the renewal of 07-01 (10.00, billed 06-24, due 07-01) never
    // paid: graced on 07-04, suspended on 07-11, terminated on 07-31, each once; nothing billed after.
    expect(await invoiceTotals(neverPays)).to.deep.equal([1000n, 1000n]);
    const dunned = (await db('dunning_steps').whereNot('step', 'like', 'autopay:%').orderBy('at').select('step', 'at')) as { step: string; at: unknown }[];
    expect(dunned.map((s) => [s.step, new Date(toNumber(s.at)).toISOString().slice(0, 10)])).to.deep.equal([
      ['grace', '2026-07-04'],
      ['suspend', '2026-07-11'],
      ['terminate', '2026-07-31'],
    ]);
    expect(await sub(neverPaysSub)).to.deep.include({ status: 60, expiration: '2026-07-01' });
    const neverPaysTasks = (await db('tasks').where({ object_type: 'subscription', object_id: String(neverPaysSub) }).orderBy('id').select('kind')) as { kind: string }[];
    expect(neverPaysTasks.map((t) => t.kind)).to.deep.equal(['subscription.suspend', 'subscription.terminate']);
    expect(await balance(neverPays)).to.equal(1000n);

    // Refunded: the sales order (10.00) on 09-01; canceled on 09-08 with a refund of 10.00 - 2.00 not refundable = 8.00.
    expect(await orderLines(cancelOrder)).to.deep.equal([['refund', -800n]]); // 1000 - 200 = 800
    expect(await invoiceTotals(refunded)).to.deep.equal([1000n]);
    const refunds = (await db('payments').where({ account_id: refunded.accountId, kind: 'refund', status: 'success' }).select('amount')) as { amount: unknown }[];
    expect(refunds.map((r) => toBigInt(r.amount))).to.deep.equal([800n]);
    expect((await sub(refundedSub)).status).to.equal(70);
    // In the documents: a credit memo of 8.00 on the invoice and a refund document of 8.00 of its payment.
    expect(await docs(refunded, 'credit_memo')).to.deep.equal([800n]);
    expect(await docs(refunded, 'refund')).to.deep.equal([800n]);
    expect(await balance(refunded)).to.equal(0n); // 1000 - 1000 - 800 + 800

    // Renewed refund: the sales order (10.00) on 10-01, the run's renewal (10.00) paid on 10-25; canceled on 11-03:
    // the refund comes from the renewal's payment, 1000 - 200 = 800, with its credit memo and refund document.
    expect(await invoiceTotals(renewedRefund)).to.deep.equal([1000n, 1000n]);
    expect(await orderLines(renewedCancelOrder)).to.deep.equal([['refund', -800n]]); // 1000 - 200 = 800
    const renewalPayment = (await db('payments').where({ account_id: renewedRefund.accountId, kind: 'purchase' }).orderBy('id', 'desc').first('id')) as { id: number };
    const renewedRefunds = (await db('payments').where({ account_id: renewedRefund.accountId, kind: 'refund', status: 'success' }).select('amount', 'parent_payment_id')) as { amount: unknown; parent_payment_id: unknown }[];
    expect(renewedRefunds.map((r) => [toBigInt(r.amount), toNumber(r.parent_payment_id)])).to.deep.equal([[800n, toNumber(renewalPayment.id)]]);
    expect(await docs(renewedRefund, 'credit_memo')).to.deep.equal([800n]);
    expect(await docs(renewedRefund, 'refund')).to.deep.equal([800n]);
    expect(await balance(renewedRefund)).to.equal(0n); // 1000 - 1000 + 1000 - 1000 - 800 + 800
    expect((await sub(renewedRefundSub)).status).to.equal(70);

  });
});
