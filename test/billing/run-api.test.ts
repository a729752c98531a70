/**
 * The billing run and usage through both doors over real HTTP: SOAP ReportUsage and RunBilling (raw XML checked
 * for the XSD order), XML-RPC DUMMYGATE IncrementResourceUsage_API / SetResourceUsage_API, the cron schedule,
 * the billingCron setting, and the CLI's argument parsing.
 */
import { expect } from 'chai';
import { BasicAuthSecurity, createClientAsync, type Client } from 'soap';
import { ManualClock } from '../../src/clock';
import { ConfigError, loadConfig } from '../../src/config';
import { XmlRpcDouble } from '../../src/api/xmlrpc/codec';
import { toNumber } from '../../src/db/knex';
import { parseArgs } from '../../scripts/billing';
import { accountWithApiUser, ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { dialect } from '../helpers/db';
import type { World } from '../helpers/world';
import { ADMIN, execute } from '../api/xmlrpc/client';
import { makeBook, makeCustomer, makePlan, makeSubscription, type Book } from './run-book';

const d = (s: string) => new Date(s);
type Reply = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function call(client: Client, op: string, args: Record<string, unknown>): Promise<{ result: Reply; raw: string }> {
  const fn = (client as unknown as Record<string, (a: unknown) => Promise<[Reply, string]>>)[`${op}Async`]!;
  const [result, raw] = await fn.call(client, args);
  return { result: result ?? {}, raw };
}

async function fault(client: Client, op: string, args: Record<string, unknown>): Promise<{ code: string; field: string | null }> {
  try {
    await call(client, op, args);
  } catch (e) {
    const xml = String((e as { response?: { data?: unknown } }).response?.data ?? '');
    return { code: /<tns:code>([^<]*)</.exec(xml)?.[1] ?? '?', field: /<tns:field>([^<]*)</.exec(xml)?.[1] ?? null };
  }
  throw new Error(`${op} succeeded; a fault was expected`);
}

describe(`billing run and usage through SOAP and XML-RPC (${dialect})`, function () {
  this.timeout(120_000);
  let api: ApiWorld;
  let world: World;
  let book: Book;
  let subId: number;
  let admin: Client;

  before(async () => {
    const clock = new ManualClock('2026-01-01T00:00:00Z');
    api = await startApiWorld({ clock, config: { billingCron: '' } });
    world = { deps: api.server.services.deps, services: api.server.services, clock, provider: await providerActor(api), fresh: api.fresh, close: async () => undefined };
    book = await makeBook(world);
    const plan = await makePlan(world, book, { name: 'Hosting', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 500n }], rates: [{ resourceId: book.resources.bandwidth, included: 100, overageFee: 10n }] });
    const c = await makeCustomer(world, book, 'Alpha');
    subId = await makeSubscription(world, book, c, plan, { start: d('2026-01-01T00:00:00Z'), expiration: d('2026-02-01T00:00:00Z'), resources: [{ resourceId: book.resources.bandwidth, included: 100 }] });
    clock.set('2026-01-10T00:00:00Z');
    admin = await createClientAsync(`${api.url}/soap/billing?wsdl`);
    admin.setSecurity(new BasicAuthSecurity('admin', ADMIN_PASSWORD));
  });
  after(async () => api.close());

  const usage = async () => Number(((await api.fresh.db('subscription_resources').where({ subscription_id: subId }).first('usage')) as { usage: unknown }).usage);

  it('SOAP ReportUsage counts once per usage id and answers the period usage; other values are a CONFLICT', async () => {
    const args = { subscriptionId: subId, resourceId: book.resources.bandwidth, quantity: '12.25', mode: 'increment', usageId: 'soap-1' };
    // Decimals are checked on the wire: node-soap's client turns xs:decimal into a float.
    const usageOnWire = (raw: string) => /<(?:\w+:)?usage>([^<]*)</.exec(raw)?.[1];
    expect(usageOnWire((await call(admin, 'ReportUsage', args)).raw)).to.equal('12.25');
    expect(usageOnWire((await call(admin, 'ReportUsage', args)).raw)).to.equal('12.25');
    expect(await usage()).to.equal(12.25);
    expect(await fault(admin, 'ReportUsage', { ...args, quantity: '13' })).to.deep.equal({ code: 'CONFLICT', field: 'usageId' });
    expect(await fault(admin, 'ReportUsage', { ...args, usageId: 'soap-2', quantity: '1e3' })).to.deep.equal({ code: 'INVALID_ARGUMENT', field: 'quantity' });
    expect(usageOnWire((await call(admin, 'ReportUsage', { ...args, usageId: 'soap-3', quantity: '20', mode: 'set', at: '2026-01-09T12:00:00Z' })).raw)).to.equal('20');
    expect(await usage()).to.equal(20);
  });

  it('XML-RPC DUMMYGATE IncrementResourceUsage_API and SetResourceUsage_API take (SubscriptionID, ResourceID, amount)... pairs', async () => {
    const bw = book.resources.bandwidth;
    await execute(`${api.url}/RPC2`, { Server: 'DUMMYGATE', Method: 'SetResourceUsage_API', Params: [subId, bw, 20], ...ADMIN });
    const inc = await execute(`${api.url}/RPC2`, { Server: 'DUMMYGATE', Method: 'IncrementResourceUsage_API', Params: [subId, bw, new XmlRpcDouble('2.5'), bw, 3], ...ADMIN });
    expect(inc.fault).to.equal(undefined);
    expect(inc.value).to.deep.equal({ Result: [`Resources on subscription ${subId} have been updated.`] });
    expect(await usage()).to.equal(25.5);
    const set = await execute(`${api.url}/RPC2`, { Server: 'DUMMYGATE', Method: 'SetResourceUsage_API', Params: [subId, bw, new XmlRpcDouble('99.75')], ...ADMIN });
    expect(set.fault).to.equal(undefined);
    expect(await usage()).to.equal(99.75);
    // The legacy BM container answers the same methods.
    const bm = await execute(`${api.url}/RPC2`, { Server: 'BM', Method: 'IncrementResourceUsage_API', Params: [subId, bw, 0.25], ...ADMIN });
    expect(bm.fault).to.equal(undefined);
    expect(await usage()).to.equal(100);
    // A thresholds event at 100% of the 100 GB allowance (90% was crossed by the set to 99.75).
    const names = ((await api.fresh.db('events').where({ name: 'usage.threshold_reached', object_id: String(subId) }).orderBy('id').select('payload')) as { payload: string }[]).map((e) => JSON.parse(e.payload).thresholdPct);
    expect(names).to.deep.equal([90, 100]);
    const odd = await execute(`${api.url}/RPC2`, { Server: 'DUMMYGATE', Method: 'SetResourceUsage_API', Params: [subId, bw], ...ADMIN });
    expect(odd.fault?.faultString).to.match(/pairs of ResourceID and FullAmount/);
    // All pairs of a call count or none: the second pair names a resource the subscription does not have.
    const half = await execute(`${api.url}/RPC2`, { Server: 'DUMMYGATE', Method: 'IncrementResourceUsage_API', Params: [subId, bw, 5, book.resources.disk, 5], ...ADMIN });
    expect(half.fault?.faultString).to.match(/not a resource of subscription/);
    expect(await usage()).to.equal(100);
  });

  it('SOAP RunBilling: provider admins only; a dry run then a run, the summary in the XSD order with totals per currency', async () => {
    const reseller = await accountWithApiUser(api, 'reseller', 'Some Reseller');
    const other = await createClientAsync(`${api.url}/soap/billing?wsdl`);
    other.setSecurity(new BasicAuthSecurity(reseller.login, reseller.password));
    expect((await fault(other, 'RunBilling', {})).code).to.equal('NOT_ALLOWED');
    expect(await fault(admin, 'RunBilling', { asOf: 'yesterday' })).to.deep.equal({ code: 'INVALID_ARGUMENT', field: 'asOf' });

    world.clock.set('2026-02-01T00:00:00Z');
    const dry = await call(admin, 'RunBilling', { asOf: '2026-02-01T00:00:00Z', dryRun: true });
    expect(await api.fresh.db('documents').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    // Renewal 5.00 and January's overage: 100 GB used of 100 included = none.
    expect(dry.result.summary).to.deep.include({ subscriptionsExamined: 1, invoicesCreated: 1, linesCreated: 1, paymentsAttempted: 0 });
    const real = await call(admin, 'RunBilling', { asOf: '2026-02-01T00:00:00Z' });
    const s = real.result.summary;
    expect(s).to.deep.include({ subscriptionsExamined: 1, invoicesCreated: 1, linesCreated: 1, paymentsAttempted: 1, paymentsSucceeded: 1, paymentsDeclined: 0, paymentsUnknown: 0, suspensions: 0, terminations: 0 });
    expect(/<(?:\w+:)?totals>\s*<(?:\w+:)?total>\s*<(?:\w+:)?amount>([^<]*)<\/(?:\w+:)?amount>\s*<(?:\w+:)?currency>([^<]*)</.exec(real.raw)?.slice(1)).to.deep.equal(['5.00', 'USD']);
    const order = ['subscriptionsExamined', 'invoicesCreated', 'linesCreated', 'paymentsAttempted', 'paymentsSucceeded', 'paymentsDeclined', 'paymentsUnknown', 'suspensions', 'terminations', 'totals'];
    const seen = [...real.raw.matchAll(/<(?:\w+:)?(\w+)>/g)].map((m) => m[1]!).filter((n) => order.includes(n));
    expect([...new Set(seen)]).to.deep.equal(order);
    const runs = (await api.fresh.db('billing_runs').select('started_by', 'status')) as { started_by: string; status: string }[];
    expect(runs).to.have.length(1);
    expect(runs[0]!.started_by).to.match(/^api:\d+$/);
    const expiration = ((await api.fresh.db('subscriptions').where({ id: subId }).first('expiration_date')) as { expiration_date: unknown }).expiration_date;
    expect(toNumber(expiration)).to.equal(d('2026-03-01T00:00:00Z').getTime());
  });
});

describe(`the billing schedule and the CLI's arguments (${dialect})`, function () {
  this.timeout(60_000);

  it('billingCron / BILLING_CRON: default daily at 02:00 UTC, validated, empty or off switches it off', () => {
    expect(loadConfig({} as NodeJS.ProcessEnv).billingCron).to.equal('0 2 * * *');
    expect(loadConfig({ BILLING_CRON: '30 1 * * 1' } as NodeJS.ProcessEnv).billingCron).to.equal('30 1 * * 1');
    expect(loadConfig({ BILLING_CRON: 'off' } as NodeJS.ProcessEnv).billingCron).to.equal('');
    expect(loadConfig({} as NodeJS.ProcessEnv, { billingCron: '' }).billingCron).to.equal('');
    expect(() => loadConfig({ BILLING_CRON: 'every night' } as NodeJS.ProcessEnv)).to.throw(ConfigError, /BILLING_CRON: must be a cron expression/);
  });

  it('a server with a schedule runs the billing run on it, once per tick, as started by cron', async () => {
    const api = await startApiWorld({ config: { billingCron: '* * * * * *' } });
    try {
      const deadline = Date.now() + 5_000;
      let runs: { started_by: string; status: string }[] = [];
      while (Date.now() < deadline) {
        runs = (await api.fresh.db('billing_runs').select('started_by', 'status')) as typeof runs;
        if (runs.some((r) => r.status === 'done')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(runs.length).to.be.greaterThan(0);
      expect(runs.every((r) => r.started_by === 'cron')).to.equal(true);
      const ticks = (await api.fresh.db('system_settings').where('name', 'like', 'billing-cron:%').count({ n: '*' })) as { n: unknown }[];
      expect(toNumber(ticks[0]!.n)).to.be.at.least(runs.length);
    } finally {
      await api.close();
    }
  });

  it('npm run billing -- --as-of <instant> [--dry-run]: arguments', () => {
    expect(parseArgs(['--as-of', '2026-12-01T00:00:00Z', '--dry-run'])).to.deep.equal({ asOf: d('2026-12-01T00:00:00Z'), dryRun: true, autopay: true, json: false });
    expect(parseArgs(['--batch-size', '500', '--no-autopay', '--json'])).to.deep.equal({ dryRun: false, batchSize: 500, autopay: false, json: true });
  });
});
