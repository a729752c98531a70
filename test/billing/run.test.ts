import { expect } from 'chai';
import { toBigInt, toNumber } from '../../src/db/knex';
import { BillingRun, type BillingRunSummary } from '../../src/billing/run/billing-run';
import { failure } from '../helpers/assertions';
import { dialect } from '../helpers/db';
import { makeWorld, type World } from '../helpers/world';
import { count, DAY, documentsDump, makeBook, makeCustomer, makeMixedBook, makePlan, makeSubscription, MIXED_AS_OF } from './run-book';

const d = (s: string) => new Date(s);

async function sub(world: World, id: number) {
  return (await world.deps.db('subscriptions').where({ id }).first()) as { status: number; expiration_date: unknown; next_bill_date: unknown; period_id: number };
}

async function invoiceLines(world: World, subscriptionId: number) {
  return (await world.deps.db('document_lines').where({ subscription_id: subscriptionId }).orderBy('id').select('kind', 'amount', 'quantity', 'period_start', 'period_end', 'document_id')) as {
    kind: string;
    amount: unknown;
    quantity: unknown;
    period_start: unknown;
    period_end: unknown;
    document_id: number;
  }[];
}

/** Subscription id -> its renewal orders' ids (sorted by subscription). */
async function renewalOrdersBySubscription(world: World) {
  const rows = (await world.deps.db('orders as o').join('order_items as i', 'i.order_id', 'o.id').where('o.type', 'renewal').orderBy(['i.target_subscription_id', 'o.id']).select('i.target_subscription_id as s', 'o.id')) as { s: number; id: number }[];
  return rows.map((r) => [toNumber(r.s), toNumber(r.id)]);
}

/** Subscription id -> the order its renewal (or trial conversion) charge names. */
async function renewalChargesBySubscription(world: World) {
  const rows = (await world.deps.db('billing_charges').whereIn('kind', ['renewal', 'trial_conversion']).orderBy(['subscription_id', 'order_id']).select('subscription_id as s', 'order_id as id')) as { s: number; id: number | null }[];
  return rows.map((r) => [toNumber(r.s), r.id === null ? null : toNumber(r.id)]);
}

const run = (world: World, asOf: Date, extra: Partial<Parameters<BillingRun['run']>[0]> = {}) => world.services.billingRun.run({ asOf, startedBy: 'test', ...extra });

describe(`billing run (${dialect})`, function () {
  this.timeout(120_000);
  let world: World;

  beforeEach(async () => {
    world = await makeWorld({ start: '2026-01-15T10:00:00Z' });
  });
  afterEach(async () => world.close());

  it('bills a renewal renew_days_before expiration (not a day earlier), auto-pays it, and the payment moves the expiration', async () => {
    const book = await makeBook(world);
    const web = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n, renewalFee: 1200n }], rates: [{ resourceId: book.resources.disk, included: 10, recurringFee: 50n }] });
    const alpha = await makeCustomer(world, book, 'Alpha');
    const id = await makeSubscription(world, book, alpha, web, { start: d('2026-01-10T00:00:00Z'), expiration: d('2026-02-10T00:00:00Z'), resources: [{ resourceId: book.resources.disk, included: 10, additional: 3.5 }] });

    world.clock.set('2026-02-02T00:00:00Z');
    const early = await run(world, d('2026-02-02T00:00:00Z'));
    expect({ examined: early.subscriptionsExamined, charges: early.charges, invoices: early.invoices }).to.deep.equal({ examined: 0, charges: 0, invoices: 0 });
    expect(await count(world, 'documents')).to.equal(0);

    world.clock.set('2026-02-03T00:00:00Z');
    const due = await run(world, d('2026-02-03T00:00:00Z'));
    // Renewal fee 12.00 (it replaces the recurring fee), 3.5 GB extra disk x 0.50 = 1.75.
    expect(due).to.deep.include({ subscriptionsExamined: 1, charges: 2, invoices: 1, lines: 2 });
    expect(due.totals).to.deep.equal({ USD: 1375n });
    expect(due.payments).to.deep.equal({ tried: 1, succeeded: 1, declined: 0, unknown: 0 });
    const lines = await invoiceLines(world, id);
    expect(lines.map((l) => [l.kind, toBigInt(l.amount), Number(l.quantity)])).to.deep.equal([['renewal', 1200n, 1], ['resource', 175n, 3.5]]);
    expect(toNumber(lines[0]!.period_start)).to.equal(d('2026-02-10T00:00:00Z').getTime());
    expect(toNumber(lines[0]!.period_end)).to.equal(d('2026-03-10T00:00:00Z').getTime());
    const doc = (await world.deps.db('documents').where({ id: lines[0]!.document_id }).first()) as { status: string; total: unknown; issue_date: unknown };
    expect(doc.status).to.equal('paid');
    expect(toNumber(doc.issue_date)).to.equal(d('2026-02-03T00:00:00Z').getTime());
    const s = await sub(world, id);
    expect(toNumber(s.expiration_date)).to.equal(d('2026-03-10T00:00:00Z').getTime());
    expect(toNumber(s.next_bill_date)).to.equal(d('2026-03-10T00:00:00Z').getTime());
    expect(await world.deps.db('events').where({ name: 'subscription.renewed', object_id: String(id) }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);

    const again = await run(world, d('2026-02-03T00:00:00Z'));
    expect({ charges: again.charges, invoices: again.invoices, tried: again.payments.tried }).to.deep.equal({ charges: 0, invoices: 0, tried: 0 });
    expect(await count(world, 'documents')).to.equal(2); // the invoice and its payment
    const runs = (await world.deps.db('billing_runs').orderBy('id').select('status', 'started_by', 'summary')) as { status: string; started_by: string; summary: string }[];
    expect(runs.map((r) => r.status)).to.deep.equal(['done', 'done', 'done']);
    expect(JSON.parse(runs[1]!.summary).totals).to.deep.equal({ USD: '13.75' });
  });

  it('a declined card leaves the renewal invoice open and the expiration where it was; a rerun does not charge again', async () => {
    const book = await makeBook(world);
    const web = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    const beta = await makeCustomer(world, book, 'Beta', { card: 'decline' });
    const id = await makeSubscription(world, book, beta, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z') });
    world.clock.set('2026-02-01T00:00:00Z');
    const first = await run(world, d('2026-02-01T00:00:00Z'));
    expect(first.payments).to.deep.equal({ tried: 1, succeeded: 0, declined: 1, unknown: 0 });
    expect(first.totals).to.deep.equal({ USD: 1000n });
    const s = await sub(world, id);
    expect(toNumber(s.expiration_date)).to.equal(d('2026-02-05T00:00:00Z').getTime());
    const again = await run(world, d('2026-02-01T00:00:00Z'));
    expect(again.payments.tried).to.equal(0);
    expect(await count(world, 'payments')).to.equal(1);
    const open = (await world.deps.db('documents').where({ type: 'invoice' }).select('status', 'open_amount')) as { status: string; open_amount: unknown }[];
    expect(open.map((o) => [o.status, toBigInt(o.open_amount)])).to.deep.equal([['open', 1000n]]);
  });

  it('an auto-payment that times out is unknown; once the reconciler settles it, the next run applies it and the renewal extends', async () => {
    const book = await makeBook(world);
    const web = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    const c = await makeCustomer(world, book, 'Slow', { card: 'timeout' });
    const id = await makeSubscription(world, book, c, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z') });
    world.clock.set('2026-02-01T00:00:00Z');
    const first = await run(world, d('2026-02-01T00:00:00Z'));
    expect(first.payments).to.deep.equal({ tried: 1, succeeded: 0, declined: 0, unknown: 1 });
    expect(toNumber((await sub(world, id)).expiration_date)).to.equal(d('2026-02-05T00:00:00Z').getTime());
    // The reconciler asks the gateway: the charge happened.
    world.clock.set('2026-02-01T01:00:00Z');
    await world.services.payments.reconcilePending(world.provider);
    const second = await run(world, d('2026-02-01T01:00:00Z'));
    expect({ invoices: second.invoices, tried: second.payments.tried }).to.deep.equal({ invoices: 0, tried: 0 });
    expect(toNumber((await sub(world, id)).expiration_date)).to.equal(d('2026-03-05T00:00:00Z').getTime());
    const inv = (await world.deps.db('documents').where({ type: 'invoice' }).first('status')) as { status: string };
    expect(inv.status).to.equal('paid');
    expect(await count(world, 'payments')).to.equal(1);
  });

  it('bills usage overage of a closed usage period with graduated tiers and 4-decimal quantities, computed by hand', async () => {
    world.clock.set('2026-01-01T00:00:00Z');
    const book = await makeBook(world);
    const { bandwidth, disk } = book.resources;
    const plan = await makePlan(world, book, {
      name: 'Hosting',
      currency: 'USD',
      periods: [{ duration: 1, unit: 'month', recurringFee: 500n }],
      rates: [
        { resourceId: bandwidth, included: 100, overageFee: 10n, tiers: [{ upTo: 500, fee: 10n }, { upTo: 800, fee: 7n }, { upTo: null, fee: 5n }] },
        { resourceId: disk, included: 10, overageFee: 33n },
      ],
    });
    const c = await makeCustomer(world, book, 'Gamma', { card: null });
    const id = await makeSubscription(world, book, c, plan, {
      start: d('2026-01-01T00:00:00Z'),
      expiration: d('2026-02-01T00:00:00Z'),
      resources: [{ resourceId: bandwidth, included: 100, additional: 50 }, { resourceId: disk, included: 10 }],
    });
    world.clock.set('2026-01-20T00:00:00Z');
    await world.services.usage.report(world.provider, { subscriptionId: id, resourceId: bandwidth, quantity: '1000', mode: 'increment', usageId: 'a' });
    await world.services.usage.report(world.provider, { subscriptionId: id, resourceId: bandwidth, quantity: '250.25', mode: 'increment', usageId: 'b' });
    await world.services.usage.report(world.provider, { subscriptionId: id, resourceId: disk, quantity: '12.3456', mode: 'set', usageId: 'c' });

    // Before the period closes: the renewal only (it is due), no overage.
    world.clock.set('2026-01-31T00:00:00Z');
    const open = await run(world, d('2026-01-31T00:00:00Z'));
    expect({ charges: open.charges, overage: open.overageLines }).to.deep.equal({ charges: 1, overage: 0 });

    world.clock.set('2026-02-01T00:00:00Z');
    const closed = await run(world, d('2026-02-01T00:00:00Z'));
    // Bandwidth: 1250.25 used, 150 paid for (100 included + 50 bought): 1100.25 over.
    //   first 500 x 0.10 = 50.00; next 300 x 0.07 = 21.00; last 300.25 x 0.05 = 15.0125; together 86.0125 -> 86.01
    // Disk: 12.3456 used, 10 included: 2.3456 x 0.33 = 0.774048 -> 0.77
    expect({ charges: closed.charges, overage: closed.overageLines, invoices: closed.invoices }).to.deep.equal({ charges: 2, overage: 2, invoices: 1 });
    const over = (await invoiceLines(world, id)).filter((l) => l.kind === 'overage');
    expect(over.map((l) => [toBigInt(l.amount), Number(l.quantity)])).to.deep.equal([
      [8601n, 1100.25],
      [77n, 2.3456],
    ]);
    expect(closed.totals).to.deep.equal({ USD: 8678n });
    expect(toNumber(over[0]!.period_start)).to.equal(d('2026-01-01T00:00:00Z').getTime());
    // The period is billed: a late report for it is refused, and a rerun adds nothing.
    await failure(world.services.usage.report(world.provider, { subscriptionId: id, resourceId: disk, quantity: '1', mode: 'increment', usageId: 'late', at: d('2026-01-30T00:00:00Z') }), 'NOT_ALLOWED', 'at');
    const again = await run(world, d('2026-02-01T00:00:00Z'));
    expect(again.charges).to.equal(0);
  });

  it('converts a trial to the plan\'s paid period (active once paid) and expires a trial whose plan has none', async () => {
    const book = await makeBook(world);
    const trialPaid = await makePlan(world, book, { name: 'Trial then paid', currency: 'USD', periods: [{ duration: 30, unit: 'day', trial: true }, { duration: 1, unit: 'month', recurringFee: 999n }] });
    const trialOnly = await makePlan(world, book, { name: 'Trial only', currency: 'USD', periods: [{ duration: 14, unit: 'day', trial: true }] });
    const c = await makeCustomer(world, book, 'Gamma');
    const converts = await makeSubscription(world, book, c, trialPaid, { status: 15, start: d('2026-01-01T00:00:00Z'), expiration: d('2026-01-31T00:00:00Z') });
    const expires = await makeSubscription(world, book, c, trialOnly, { status: 15, start: d('2026-01-10T00:00:00Z'), expiration: d('2026-01-24T00:00:00Z') });
    const notYet = await makeSubscription(world, book, c, trialOnly, { status: 15, start: d('2026-01-20T00:00:00Z'), expiration: d('2026-02-03T00:00:00Z') });

    world.clock.set('2026-01-25T00:00:00Z');
    const r = await run(world, d('2026-01-25T00:00:00Z'));
    expect({ converted: r.trialsConverted, expired: r.trialsExpired, invoices: r.invoices }).to.deep.equal({ converted: 1, expired: 1, invoices: 1 });
    expect(r.payments.succeeded).to.equal(1);
    const conv = await sub(world, converts);
    expect(conv.status).to.equal(30);
    expect(conv.period_id).to.equal(trialPaid.periodIds[1]);
    // Jan 31 + 1 month clamps to Feb 28.
    expect(toNumber(conv.expiration_date)).to.equal(d('2026-02-28T00:00:00Z').getTime());
    const line = (await invoiceLines(world, converts))[0]!;
    expect([line.kind, toBigInt(line.amount)]).to.deep.equal(['trial_conversion', 999n]);
    expect((await sub(world, expires)).status).to.equal(50);
    expect((await sub(world, notYet)).status).to.equal(15);
    expect(await world.deps.db('events').where({ name: 'subscription.expired' }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);
  });

  it('a dry run writes nothing and reports what the real run then does', async () => {
    await makeMixedBook(world);
    const tables = ['documents', 'document_lines', 'billing_charges', 'billing_runs', 'events', 'audit_log', 'payments', 'orders', 'order_history'];
    const before = await Promise.all(tables.map((t) => count(world, t)));
    const statuses = await world.deps.db('subscriptions').orderBy('id').select('status', 'expiration_date');
    const dry = await run(world, MIXED_AS_OF, { dryRun: true });
    expect(await Promise.all(tables.map((t) => count(world, t)))).to.deep.equal(before);
    expect(await world.deps.db('subscriptions').orderBy('id').select('status', 'expiration_date')).to.deep.equal(statuses);
    expect(dry.runId).to.equal(null);
    const real = await run(world, MIXED_AS_OF);
    const pick = (s: BillingRunSummary) => ({ examined: s.subscriptionsExamined, charges: s.charges, invoices: s.invoices, lines: s.lines, totals: s.totals, converted: s.trialsConverted, expired: s.trialsExpired, overage: s.overageLines, orders: s.renewalOrders });
    expect(pick(dry)).to.deep.equal(pick(real));
    // By hand: renewals 12.00+1.75+5.00 (Alpha), 12.00 (Beta), trial 9.99 (Gamma), 5.00 (Delta), 12.00+0.50 (Epsilon);
    // January overage 55.00 (Alpha: 600 GB over, 500 x 0.10 + 100 x 0.05) and 5.00 (Delta: 50 x 0.10).
    expect(pick(real)).to.deep.equal({ examined: 8, charges: 10, invoices: 7, lines: 10, totals: { USD: 11824n }, converted: 1, expired: 2, overage: 2, orders: 6 });
    expect(real.payments).to.deep.equal({ tried: 5, succeeded: 4, declined: 1, unknown: 0 });
  });

  it('amounts in JPY, USD and KWD: exact minor units, half-up per line', async () => {
    const book = await makeBook(world);
    const disk = book.resources.disk;
    const plans = {
      JPY: await makePlan(world, book, { name: 'JP', currency: 'JPY', periods: [{ duration: 1, unit: 'month', recurringFee: 1500n }], rates: [{ resourceId: disk, included: 1, recurringFee: 7n }] }),
      USD: await makePlan(world, book, { name: 'US', currency: 'USD', periods: [{ duration: 1, unit: 'year', recurringFee: 123456789012n }], rates: [{ resourceId: disk, included: 1, recurringFee: 33n }] }),
      KWD: await makePlan(world, book, { name: 'KW', currency: 'KWD', periods: [{ duration: 1, unit: 'month', recurringFee: 12345n }], rates: [{ resourceId: disk, included: 1, recurringFee: 1001n }] }),
    };
    for (const [cur, additional] of [['JPY', 2.5], ['USD', 1.5], ['KWD', 0.5]] as const) {
      const c = await makeCustomer(world, book, `Cust ${cur}`, { currency: cur, card: null });
      await makeSubscription(world, book, c, plans[cur], { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z'), resources: [{ resourceId: disk, included: 1, additional }] });
    }
    world.clock.set('2026-02-01T00:00:00Z');
    const r = await run(world, d('2026-02-01T00:00:00Z'));
    // JPY: 1500 + 2.5 x 7 = 17.5 -> 18; USD: 1234567890.12 + 1.5 x 0.33 = 0.495 -> 0.50; KWD: 12.345 + 0.5 x 1.001 = 0.5005 -> 0.501
    expect(r.totals).to.deep.equal({ JPY: 1518n, USD: 123456789062n, KWD: 12846n });
    const runRow = (await world.deps.db('billing_runs').orderBy('id', 'desc').first('summary')) as { summary: string };
    expect(JSON.parse(runRow.summary).totals).to.deep.equal({ JPY: '1518', USD: '1234567890.62', KWD: '12.846' });
  });

  it('a run killed halfway and run again makes exactly the documents of one clean run', async () => {
    await makeMixedBook(world);
    let stop = true;
    await failure(
      run(world, MIXED_AS_OF, {
        batchSize: 2,
        afterBatch: (n) => {
          if (stop && n === 2) throw Object.assign(new (require('../../src/domain/errors').AppError)('INTERNAL', 'killed'), {});
        },
      }),
      'INTERNAL',
    );
    const partial = await count(world, 'document_lines');
    expect(partial).to.be.greaterThan(0);
    stop = false;
    await run(world, MIXED_AS_OF, { batchSize: 2 });
    const killed = await documentsDump(world);

    const clean = await makeWorld({ start: '2026-01-15T10:00:00Z' });
    try {
      await makeMixedBook(clean);
      await clean.services.billingRun.run({ asOf: MIXED_AS_OF, startedBy: 'test', batchSize: 2 });
      expect(killed).to.deep.equal(await documentsDump(clean));
    } finally {
      await clean.close();
    }
    expect(killed.length).to.be.greaterThan(5);
    // The killed batches' renewal orders went with them: one order per subscription renewed, as in a clean run.
    expect(await renewalOrdersBySubscription(world)).to.deep.equal(await renewalChargesBySubscription(world));
    expect(await count(world, 'orders')).to.equal(6);
    const runs = (await world.deps.db('billing_runs').orderBy('id').select('status')) as { status: string }[];
    expect(runs.map((x) => x.status)).to.deep.equal(['failed', 'done']);
  });

  it('ten runs at once bill exactly one line per (subscription, kind, period): the documents of one clean run', async () => {
    await makeMixedBook(world);
    const runs = await Promise.all(Array.from({ length: 10 }, (_, i) => new BillingRun(world.deps, world.services.documents, world.services.tasks, world.services.workflows).run({ asOf: MIXED_AS_OF, startedBy: `run-${i}`, batchSize: 3 })));
    expect(runs.reduce((n, r) => n + r.charges, 0)).to.equal(10);
    // One renewal order per subscription renewed (6), each with its charges, whichever run placed it.
    expect(runs.reduce((n, r) => n + r.renewalOrders, 0)).to.equal(6);
    expect(await renewalOrdersBySubscription(world)).to.deep.equal(await renewalChargesBySubscription(world));
    expect(runs.reduce((n, r) => n + r.invoices, 0)).to.equal(7);
    const dup = (await world.deps.db('document_lines')
      .whereNotNull('subscription_id')
      .groupBy('subscription_id', 'kind', 'period_start', 'resource_id')
      .having(world.deps.db.raw('count(*) > 1'))
      .select('subscription_id')) as unknown[];
    expect(dup).to.deep.equal([]);
    const invoiceLineCount = await world.deps.db('document_lines as l').join('documents as d', 'd.id', 'l.document_id').where('d.type', 'invoice').count({ n: '*' });
    expect(toNumber((invoiceLineCount[0] as { n: unknown }).n)).to.equal(10);
    const concurrent = await documentsDump(world);
    const clean = await makeWorld({ start: '2026-01-15T10:00:00Z' });
    try {
      await makeMixedBook(clean);
      await clean.services.billingRun.run({ asOf: MIXED_AS_OF, startedBy: 'test', batchSize: 3 });
      // Invoice numbers follow commit order across concurrent runs; the set of invoices is the same.
      const strip = (xs: string[]) => xs.map((x) => x.replace(/^INV-\d+ /, '')).sort();
      expect(strip(concurrent)).to.deep.equal(strip(await documentsDump(clean)));
    } finally {
      await clean.close();
    }
    // Auto-pay ran once per invoice: one gateway payment per payable invoice with a card.
    expect(await count(world, 'payments')).to.equal(5);
  });

  it('refuses a bad asOf and batch size', async () => {
    await failure(run(world, new Date('nope')), 'INVALID_ARGUMENT', 'asOf');
    await failure(run(world, d('2026-01-01T00:00:00Z'), { batchSize: 0 }), 'INVALID_ARGUMENT', 'batchSize');
    void DAY;
  });
});
