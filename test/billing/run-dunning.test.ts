import { expect } from 'chai';
import sinon from 'sinon';
import { toNumber } from '../../src/db/knex';
import { takeFromCreditHold } from '../../src/billing/credit-hold';
import { backfillHoldReasons } from '../../migrations/20261124000015_subscription_hold_reason';
import { SubscriptionActionsService } from '../../src/subscriptions/service-actions';
import { dialect } from '../helpers/db';
import { makeWorld, type World } from '../helpers/world';
import { makeBook, makeCustomer, makePlan, makeSubscription } from './run-book';

const d = (s: string) => new Date(s);

describe(`billing run: dunning (${dialect})`, function () {
  this.timeout(120_000);
  let world: World;

  beforeEach(async () => {
    world = await makeWorld({ start: '2026-01-15T00:00:00Z' });
  });
  afterEach(async () => world.close());

  const run = async (asOf: string) => {
    world.clock.set(asOf);
    return world.services.billingRun.run({ asOf: d(asOf), startedBy: 'test' });
  };
  const sub = async (id: number) => {
    const r = (await world.deps.db('subscriptions').where({ id }).first('status', 'service_status', 'expiration_date')) as { status: number; service_status: number; expiration_date: unknown };
    return { status: toNumber(r.status), service: toNumber(r.service_status), expiration: new Date(toNumber(r.expiration_date)).toISOString().slice(0, 10) };
  };
  const tasks = async (id: number) => ((await world.deps.db('tasks').where({ object_type: 'subscription', object_id: String(id) }).orderBy('id').select('kind')) as { kind: string }[]).map((t) => t.kind);
  /** Dunning steps (grace, suspend, terminate), or with autopay the auto-pay retries. */
  const steps = async (autopay = false) =>
    ((await world.deps.db('dunning_steps').orderBy(['document_id', 'step']).select('document_id', 'step', 'outcome')) as { document_id: number; step: string; outcome: string }[])
      .filter((s) => s.step.startsWith('autopay:') === autopay)
      .map((s) => `${s.step}:${s.outcome}`);

  it('grace after 3 days past due, suspension after 10 (through the gate), each once; payment in full resumes; the other subscription is never touched', async () => {
    const book = await makeBook(world);
    const web = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    const beta = await makeCustomer(world, book, 'Beta', { card: 'decline' });
    const dunned = await makeSubscription(world, book, beta, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z') });
    const paidUp = await makeSubscription(world, book, beta, web, { start: d('2026-01-20T00:00:00Z'), expiration: d('2026-02-20T00:00:00Z') });

    // Issued 02-01, due 02-08 (invoiceDueDays 7); the card declines.
    const first = await run('2026-02-01T00:00:00Z');
    expect(first.payments.declined).to.equal(1);
    expect((await run('2026-02-10T00:00:00Z')).suspensions).to.equal(0);
    expect(await steps()).to.deep.equal([]);

    // 3 days past due: graced.
    await run('2026-02-11T00:00:00Z');
    expect((await sub(dunned)).status).to.equal(40);
    expect(await steps()).to.deep.equal(['grace:done']);
    await run('2026-02-12T00:00:00Z');
    expect(await world.deps.db('events').where({ name: 'subscription.graced' }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);

    // 10 days past due: a suspension requested through the service gate, once. (paidUp is billed its own renewal
    // on 02-13; its card declines too, but its invoice is not overdue yet.)
    const suspend = await run('2026-02-18T00:00:00Z');
    expect(suspend.suspensions).to.equal(1);
    expect(await tasks(dunned)).to.deep.equal(['subscription.suspend']);
    expect((await sub(dunned)).service).to.equal(60); // stopping, until the gate's task has run
    expect((await run('2026-02-19T00:00:00Z')).suspensions).to.equal(0);
    expect(await tasks(dunned)).to.deep.equal(['subscription.suspend']);
    expect(await tasks(paidUp)).to.deep.equal([]);
    expect(await sub(paidUp)).to.deep.include({ status: 30, service: 50 });

    // The gate's task completes the suspension (what the subscription.suspend handler writes).
    await world.deps.db('subscriptions').where({ id: dunned }).update({ status: 80, service_status: 30 });
    // Paid in full by check: the renewal extends the subscription and the non-payment suspension is lifted.
    const invoice = (await world.deps.db('documents').where({ type: 'invoice' }).orderBy('id').first('id', 'account_id')) as { id: number; account_id: number };
    await world.services.documents.recordPayment(world.provider, { accountId: toNumber(invoice.account_id), amount: 1000n, currency: 'USD', method: 'check', reference: 'CHK-1', invoiceId: toNumber(invoice.id) });
    expect(await tasks(dunned)).to.deep.equal(['subscription.suspend', 'subscription.resume']);
    expect(await sub(dunned)).to.deep.include({ service: 40, expiration: '2026-03-05' });
    // Dunning's suspension is a credit hold (hold_reason), as the migration that added the column classifies it too.
    expect(await world.deps.db('subscriptions').where({ id: dunned }).first('hold_reason')).to.deep.equal({ hold_reason: 'credit' });
    await world.deps.db('subscriptions').update({ hold_reason: null });
    await backfillHoldReasons(world.deps.db);
    expect(await world.deps.db('subscriptions').where({ id: dunned }).first('hold_reason')).to.deep.equal({ hold_reason: 'credit' });
  });

  it("payment in full never lifts an operator's suspension, even one made while the invoice was being dunned", async () => {
    const book = await makeBook(world);
    const web = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    const delta = await makeCustomer(world, book, 'Delta', { card: 'decline' });
    const id = await makeSubscription(world, book, delta, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z') });
    await run('2026-02-01T00:00:00Z'); // billed, the card declines; due 02-08
    await run('2026-02-11T00:00:00Z'); // graced
    // An operator suspends it (abuse, say) before dunning would have: the gate's task completes the suspension.
    world.clock.set('2026-02-12T00:00:00Z');
    await new SubscriptionActionsService(world.deps, { tasks: world.services.tasks }).request(world.provider, id, 'suspend', { reason: 'abuse report 4711' });
    await world.deps.db('subscriptions').where({ id }).update({ status: 80, service_status: 30 });
    // Dunning's own suspension finds it suspended already: its step is recorded, nothing is requested.
    expect((await run('2026-02-18T00:00:00Z')).suspensions).to.equal(0);
    expect(await steps()).to.deep.equal(['grace:done', 'suspend:refused']);
    // Paid in full by check: renewed, but still suspended, and nothing asks the gate to resume it.
    const invoice = (await world.deps.db('documents').where({ type: 'invoice' }).orderBy('id').first('id')) as { id: number };
    await world.services.documents.recordPayment(world.provider, { accountId: delta.accountId, amount: 1000n, currency: 'USD', method: 'check', reference: 'CHK-2', invoiceId: toNumber(invoice.id) });
    expect(await tasks(id)).to.deep.equal(['subscription.suspend']);
    expect(await sub(id)).to.deep.include({ status: 80, service: 30, expiration: '2026-03-05' });
    // Nor can it be taken from credit hold: it is not on one.
    const refused = await takeFromCreditHold(world.deps, world.services.tasks, world.provider, id).catch((e: Error) => e);
    expect(refused).to.be.instanceOf(Error).with.property('message').that.contains('not for non-payment');
    // The migration that added hold_reason classifies such a subscription the same way.
    await world.deps.db('subscriptions').update({ hold_reason: null });
    await backfillHoldReasons(world.deps.db);
    expect(await world.deps.db('subscriptions').where({ id }).first('hold_reason')).to.deep.equal({ hold_reason: 'admin' });
  });

  /** A monthly subscription (01-05 to 02-05) with 50 GB of bandwidth above its allowance in January, card declining. */
  const twoInvoices = async () => {
    const book = await makeBook(world);
    const { bandwidth } = book.resources;
    const web = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }], rates: [{ resourceId: bandwidth, included: 100, overageFee: 10n }] });
    const c = await makeCustomer(world, book, 'Epsilon', { card: 'decline' });
    const id = await makeSubscription(world, book, c, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z'), resources: [{ resourceId: bandwidth, included: 100 }] });
    world.clock.set('2026-01-20T00:00:00Z');
    await world.services.usage.report(world.provider, { subscriptionId: id, resourceId: bandwidth, quantity: '150', mode: 'increment', usageId: 'jan' });
    return { c, id };
  };
  const invoices = async () => ((await world.deps.db('documents').where({ type: 'invoice' }).orderBy('id').select('id', 'total')) as { id: number; total: unknown }[]).map((i) => ({ id: toNumber(i.id), total: BigInt(toNumber(i.total)) }));
  const payByCheck = async (accountId: number, inv: { id: number; total: bigint }, reference: string) =>
    world.services.documents.recordPayment(world.provider, { accountId, amount: inv.total, currency: 'USD', method: 'check', reference, invoiceId: inv.id });

  it('two overdue invoices on one subscription, suspended for the first: paying both, the first one first, resumes it', async () => {
    const { c, id } = await twoInvoices();
    await run('2026-02-01T00:00:00Z'); // renewal, due 02-08
    await run('2026-02-05T00:00:00Z'); // January's overage, due 02-12
    const [renewal, overage] = await invoices();
    expect(overage).to.not.equal(undefined);
    await run('2026-02-11T00:00:00Z'); // graced for the renewal
    await run('2026-02-18T00:00:00Z'); // suspended for the renewal (10 days), grace for the overage (6 days)
    expect(await steps()).to.deep.equal(['grace:done', 'suspend:requested', 'grace:done']);
    await world.deps.db('subscriptions').where({ id }).update({ status: 80, service_status: 30 }); // the gate's task
    world.clock.set('2026-02-19T00:00:00Z');
    await payByCheck(c.accountId, renewal!, 'CHK-R');
    expect(await tasks(id)).to.deep.equal(['subscription.suspend']); // the overage is still overdue
    await payByCheck(c.accountId, overage!, 'CHK-O');
    // Nothing is owed any more: the credit hold is lifted.
    expect(await tasks(id)).to.deep.equal(['subscription.suspend', 'subscription.resume']);
  });

  it('an auto-pay retry is not dunning: paying the overdue invoice makes the subscription active though a newer invoice is open', async () => {
    const { c, id } = await twoInvoices();
    await run('2026-02-01T00:00:00Z'); // renewal, due 02-08
    await run('2026-02-10T00:00:00Z'); // January's overage, issued 02-10, due 02-17
    const [renewal] = await invoices();
    await run('2026-02-11T00:00:00Z'); // graced for the renewal; the overage's first auto-pay retry
    expect(await steps()).to.deep.equal(['grace:done']);
    expect(await steps(true)).to.include('autopay:1:tried');
    expect((await sub(id)).status).to.equal(40);
    world.clock.set('2026-02-12T00:00:00Z');
    await payByCheck(c.accountId, renewal!, 'CHK-R');
    // The overage invoice is not overdue and not dunned: nothing keeps the subscription graced.
    expect(await sub(id)).to.deep.include({ status: 30, expiration: '2026-03-05' });
  });

  // MariaDB only: the payment is made from another connection while the run holds its transaction open (SQLite has
  // one connection). The spy calls through to the real request; it only picks the moment the customer pays.
  if (dialect === 'mysql') it('an invoice paid while the run is dunning others is not suspended: each step reads the invoice again under its account lock', async () => {
    const book = await makeBook(world);
    const web = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    const alpha = await makeCustomer(world, book, 'Alpha', { card: 'decline' });
    const beta = await makeCustomer(world, book, 'Beta', { card: 'decline' });
    const a = await makeSubscription(world, book, alpha, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z') });
    const b = await makeSubscription(world, book, beta, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z') });
    await run('2026-02-01T00:00:00Z'); // both invoiced, due 02-08, both cards decline
    await run('2026-02-11T00:00:00Z'); // both graced
    expect([(await sub(a)).status, (await sub(b)).status]).to.deep.equal([40, 40]);
    const betaInvoice = (await world.deps.db('documents').where({ type: 'invoice', account_id: beta.accountId }).first('id')) as { id: number };
    // On 02-18 the run lists both overdue invoices, then suspends Alpha's; at that moment Beta pays by check.
    const original = SubscriptionActionsService.prototype.request;
    let paid = false;
    const spy = sinon.stub(SubscriptionActionsService.prototype, 'request').callsFake(async function (this: SubscriptionActionsService, ...args: Parameters<typeof original>) {
      if (!paid && args[1] === a) {
        paid = true;
        await world.services.documents.recordPayment(world.provider, { accountId: beta.accountId, amount: 1000n, currency: 'USD', method: 'check', reference: 'CHK-B', invoiceId: toNumber(betaInvoice.id) });
      }
      return original.apply(this, args);
    });
    try {
      const r = await run('2026-02-18T00:00:00Z');
      expect(paid).to.equal(true);
      expect(r.suspensions).to.equal(1);
    } finally {
      spy.restore();
    }
    expect(await tasks(a)).to.deep.equal(['subscription.suspend']);
    // Beta paid in full: active (the payment lifted its grace), not suspended, its renewal applied.
    expect(await tasks(b)).to.deep.equal([]);
    expect(await sub(b)).to.deep.include({ status: 30, service: 50, expiration: '2026-03-05' });
    expect(await steps()).to.deep.equal(['grace:done', 'suspend:requested', 'grace:done', 'suspend:paid']);
  });

  it('terminates after 30 days past due, without a separate suspension when the run first sees it that late', async () => {
    const book = await makeBook(world);
    const web = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    const gamma = await makeCustomer(world, book, 'Gamma', { card: null });
    const id = await makeSubscription(world, book, gamma, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z') });
    await run('2026-02-01T00:00:00Z');
    const dry = await world.services.billingRun.run({ asOf: d('2026-03-10T00:00:00Z'), dryRun: true, startedBy: 'test' });
    expect(dry.terminations).to.equal(1);
    expect(await steps()).to.deep.equal([]);
    const late = await run('2026-03-10T00:00:00Z');
    expect({ suspensions: late.suspensions, terminations: late.terminations }).to.deep.equal({ suspensions: 0, terminations: 1 });
    expect(await tasks(id)).to.deep.equal(['subscription.terminate']);
    expect(await steps()).to.deep.equal(['grace:done', 'terminate:requested']);
    expect((await run('2026-03-11T00:00:00Z')).terminations).to.equal(0);
  });
  it('a vendor\'s late fee: once per overdue invoice after late_fee_days, on an invoice of its own, never a fee on a fee', async () => {
    const book = await makeBook(world);
    await world.services.billingSettings.set(world.provider, book.vendorId, { lateFee: 500n, lateFeeDays: 5 });
    const web = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    const c = await makeCustomer(world, book, 'Late', { card: null });
    await makeSubscription(world, book, c, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z') });
    await run('2026-02-01T00:00:00Z'); // due 02-08
    expect((await run('2026-02-12T00:00:00Z')).charges).to.equal(0);
    const dry = await world.services.billingRun.run({ asOf: d('2026-02-13T00:00:00Z'), dryRun: true, startedBy: 'test' });
    expect({ charges: dry.charges, invoices: dry.invoices, totals: dry.totals }).to.deep.equal({ charges: 1, invoices: 1, totals: { USD: 500n } });
    const fee = await run('2026-02-13T00:00:00Z');
    expect({ charges: fee.charges, invoices: fee.invoices, totals: fee.totals }).to.deep.equal({ charges: 1, invoices: 1, totals: { USD: 500n } });
    const lines = (await world.deps.db('document_lines').where({ kind: 'late_fee' }).select('amount', 'description')) as { amount: unknown; description: string }[];
    expect(lines.map((l) => [toNumber(l.amount), l.description])).to.deep.equal([[500, 'Late fee: invoice INV-000001 unpaid since 2026-02-08']]);
    expect((await run('2026-02-14T00:00:00Z')).charges).to.equal(0);
    // The fee's own invoice (due 02-20) overdue by far more than 5 days: still no fee on it.
    expect((await run('2026-03-01T00:00:00Z')).charges).to.equal(0);
    expect(await world.deps.db('billing_charges').where({ kind: 'late_fee' }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);
  });
  it('auto-pay retries 1, 3 and 7 days after issue, each once; a card that recovers pays and renews before dunning', async () => {
    const book = await makeBook(world);
    const web = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    const c = await makeCustomer(world, book, 'Retry', { card: 'decline' });
    const id = await makeSubscription(world, book, c, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z') });
    const tried = async (asOf: string) => (await run(asOf)).payments;
    expect(await tried('2026-02-01T00:00:00Z')).to.deep.include({ tried: 1, declined: 1 });
    expect(await tried('2026-02-01T12:00:00Z')).to.deep.include({ tried: 0 });
    expect(await tried('2026-02-02T00:00:00Z')).to.deep.include({ tried: 1, declined: 1 });
    expect(await tried('2026-02-03T00:00:00Z')).to.deep.include({ tried: 0 });
    expect(await tried('2026-02-04T00:00:00Z')).to.deep.include({ tried: 1, declined: 1 });
    // The customer stores a working card as the default; the third retry (day 7) pays.
    await world.services.payments.storePayTool(world.provider, c.accountId, book.gatewayId, { number: '4242424242424242', expMonth: 12, expYear: 2030, cvv: '123' }, { makeDefault: true });
    expect(await tried('2026-02-07T00:00:00Z')).to.deep.include({ tried: 0 });
    expect(await tried('2026-02-08T00:00:00Z')).to.deep.include({ tried: 1, succeeded: 1 });
    expect(await steps(true)).to.deep.equal(['autopay:1:tried', 'autopay:2:tried', 'autopay:3:tried']);
    expect(await sub(id)).to.deep.include({ status: 30, expiration: '2026-03-05' });
    expect(await world.deps.db('payments').count({ n: '*' })).to.deep.equal([{ n: 4 }]);
    expect((await run('2026-02-20T00:00:00Z')).suspensions).to.equal(0);
  });
});
