/**
 * The billing run shares its process with the API when node-cron starts it in the server. On SQLite every statement
 * completes synchronously, so a run that never gave the event loop a turn would leave every request waiting until
 * it ends; it yields after each batch.
 */
import { expect } from 'chai';
import { ManualClock } from '../../src/clock';
import { startApiWorld, providerActor, type ApiWorld } from '../helpers/api';
import { dialect } from '../helpers/db';
import type { World } from '../helpers/world';
import { makeBook, makeCustomer, makePlan, makeSubscription } from './run-book';

const d = (s: string) => new Date(s);

describe(`billing run in the server's process (${dialect})`, function () {
  this.timeout(120_000);
  let api: ApiWorld;

  after(async () => api?.close());

  it('answers an HTTP request while a run of many batches is under way', async () => {
    const clock = new ManualClock('2026-01-01T00:00:00Z');
    api = await startApiWorld({ clock, config: { billingCron: '' } });
    const world: World = { deps: api.server.services.deps, services: api.server.services, clock, provider: await providerActor(api), fresh: api.fresh, close: async () => undefined };
    const book = await makeBook(world);
    const plan = await makePlan(world, book, { name: 'Hosting', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 500n }] });
    const customer = await makeCustomer(world, book, 'Busy', { card: null });
    for (let i = 0; i < 240; i++) await makeSubscription(world, book, customer, plan, { start: d('2026-01-01T00:00:00Z'), expiration: d('2026-02-01T00:00:00Z') });
    clock.set('2026-01-28T00:00:00Z');

    // 240 subscriptions in batches of 8: 30 batches, each its own transaction.
    let finished = false;
    const run = world.services.billingRun.run({ asOf: clock.now(), startedBy: 'test', batchSize: 8, autopay: false }).then((s) => {
      finished = true;
      return s;
    });
    const res = await fetch(`${api.url}/soap/billing?wsdl`);
    expect(res.status).to.equal(200);
    expect(finished, 'the answer came only after the run had finished').to.equal(false);
    const summary = await run;
    expect(summary.charges).to.equal(240);
    expect(summary.invoices).to.be.at.least(30); // one per batch (ranges of ids aligned to the batch size)
  });
});
