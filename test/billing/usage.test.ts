import { expect } from 'chai';
import { toNumber } from '../../src/db/knex';
import { failure } from '../helpers/assertions';
import { dialect } from '../helpers/db';
import { accountActor, makeWorld, type World } from '../helpers/world';
import { makeBook, makeCustomer, makePlan, makeSubscription, type Book } from './run-book';

const d = (s: string) => new Date(s);

describe(`usage reports (${dialect})`, function () {
  this.timeout(60_000);
  let world: World;
  let book: Book;
  let subId: number;
  let customerPath: string;

  beforeEach(async () => {
    world = await makeWorld({ start: '2026-01-01T00:00:00Z' });
    book = await makeBook(world);
    const plan = await makePlan(world, book, { name: 'Hosting', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 500n }], rates: [{ resourceId: book.resources.bandwidth, included: 100, overageFee: 10n }] });
    const c = await makeCustomer(world, book, 'Alpha', { card: null });
    customerPath = c.accountPath;
    subId = await makeSubscription(world, book, c, plan, { start: d('2026-01-01T00:00:00Z'), expiration: d('2026-02-01T00:00:00Z'), resources: [{ resourceId: book.resources.bandwidth, included: 100, additional: 20 }] });
    world.clock.set('2026-01-10T00:00:00Z');
  });
  afterEach(async () => world.close());

  const report = (usageId: string, quantity: string, mode: 'increment' | 'set' = 'increment', at?: Date) =>
    world.services.usage.report(world.provider, { subscriptionId: subId, resourceId: book.resources.bandwidth, quantity, mode, usageId, at });
  const mirror = async () => Number(((await world.deps.db('subscription_resources').where({ subscription_id: subId, resource_id: book.resources.bandwidth }).first('usage')) as { usage: unknown }).usage);
  const thresholds = async () =>
    ((await world.deps.db('events').where({ name: 'usage.threshold_reached' }).orderBy('id').select('payload')) as { payload: string }[]).map((e) => {
      const p = JSON.parse(e.payload) as { thresholdPct: number; usage: string; periodStart: string };
      return `${p.thresholdPct}% at ${p.usage} (${p.periodStart.slice(0, 10)})`;
    });

  it('counts increments and sets in the current usage period and mirrors it on the subscription', async () => {
    const a = await report('u1', '10.5');
    expect(a).to.deep.include({ usage: '10.5', replayed: false });
    expect(a.periodStart.toISOString()).to.equal('2026-01-01T00:00:00.000Z');
    expect(a.periodEnd.toISOString()).to.equal('2026-02-01T00:00:00.000Z');
    expect((await report('u2', '0.0001')).usage).to.equal('10.5001');
    expect((await report('u3', '-0.5001')).usage).to.equal('10');
    expect((await report('u4', '42', 'set')).usage).to.equal('42');
    expect(await mirror()).to.equal(42);
    const rows = await world.deps.db('usage_reports').where({ subscription_id: subId }).orderBy('id').select('usage_id', 'mode');
    expect(rows.map((r: { usage_id: string; mode: string }) => `${r.usage_id}:${r.mode}`)).to.deep.equal(['u1:increment', 'u2:increment', 'u3:increment', 'u4:set']);
    await failure(report('u5', '-43'), 'INVALID_ARGUMENT', 'quantity');
    await failure(report('u6', '-1', 'set'), 'INVALID_ARGUMENT', 'quantity');
    await failure(report('u7', '1.00001'), 'INVALID_ARGUMENT', 'quantity');
    await failure(report('', '1'), 'INVALID_ARGUMENT', 'usageId');
  });

  it('is idempotent by usage id: the same report answers the first result, other values are a CONFLICT', async () => {
    await report('same', '5');
    await report('other', '7');
    const again = await report('same', '5');
    expect(again).to.deep.include({ usage: '5', replayed: true });
    expect(await mirror()).to.equal(12);
    await failure(report('same', '6'), 'CONFLICT', 'usageId');
    await failure(report('same', '5', 'set'), 'CONFLICT', 'usageId');
    const twins = await Promise.all(Array.from({ length: 5 }, () => report('burst', '1')));
    expect(twins.filter((t) => !t.replayed)).to.have.length(1);
    expect(twins.map((t) => t.usage)).to.deep.equal(Array(5).fill('13'));
    expect(await mirror()).to.equal(13);
  });

  it('emits usage.threshold_reached once per period at 90% and 100% of the allowance (included + additional)', async () => {
    // Allowance: 100 included + 20 bought = 120; 90% = 108.
    await report('a', '100');
    await report('b', '8');
    await report('c', '1');
    await report('d', '10.9999');
    await report('e', '0.0001');
    await report('f', '50');
    expect(await thresholds()).to.deep.equal(['90% at 108 (2026-01-01)', '100% at 120 (2026-01-01)']);
    // Next period: counted from 0 again, and a jump straight past both thresholds emits both, once.
    world.clock.set('2026-02-03T00:00:00Z');
    await world.deps.db('subscriptions').where({ id: subId }).update({ expiration_date: d('2026-03-01T00:00:00Z').getTime() });
    const feb = await report('g', '500');
    expect(feb.periodStart.toISOString()).to.equal('2026-02-01T00:00:00.000Z');
    expect(feb.usage).to.equal('500');
    await report('h', '1');
    expect(await thresholds()).to.deep.equal(['90% at 108 (2026-01-01)', '100% at 120 (2026-01-01)', '90% at 500 (2026-02-01)', '100% at 500 (2026-02-01)']);
    expect(await mirror()).to.equal(501);
    // A late report for January still counts towards January (not billed yet) and leaves the mirror alone.
    const late = await report('i', '1', 'increment', d('2026-01-31T23:00:00Z'));
    expect(late.usage).to.equal('171');
    expect(await mirror()).to.equal(501);
  });

  it('scoping and state: another subtree gets NOT_FOUND, a customer may not report, a terminated subscription takes none', async () => {
    const reseller = await accountActor(world, world.provider, 'reseller', 'Other Reseller');
    await failure(world.services.usage.report(reseller, { subscriptionId: subId, resourceId: book.resources.bandwidth, quantity: '1', mode: 'increment', usageId: 'x' }), 'NOT_FOUND');
    const customer = { ...world.provider, accountType: 'customer' as const, accountPath: customerPath, accountId: 0 };
    await failure(world.services.usage.report(customer, { subscriptionId: subId, resourceId: book.resources.bandwidth, quantity: '1', mode: 'increment', usageId: 'x' }), 'NOT_ALLOWED');
    await failure(world.services.usage.report(world.provider, { subscriptionId: subId, resourceId: book.resources.disk, quantity: '1', mode: 'increment', usageId: 'x' }), 'INVALID_ARGUMENT', 'resourceId');
    await failure(report('future', '1', 'increment', d('2026-01-11T00:00:00Z')), 'INVALID_ARGUMENT', 'at');
    await world.deps.db('subscriptions').where({ id: subId }).update({ status: 60 });
    await failure(report('y', '1'), 'NOT_ALLOWED', 'subscriptionId');
    expect(toNumber((await world.deps.db('usage_reports').count({ n: '*' }))[0]!.n)).to.equal(0);
  });
});
