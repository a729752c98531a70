import { expect } from 'chai';
import { redact, createLogger } from '../../src/logger';
import { startServer, type RunningServer } from '../../src/server';
import { freshDatabase, type FreshDb } from '../helpers/db';
import { quietLog, testConfig } from '../helpers/world';
import { Writable } from 'node:stream';
import winston from 'winston';

describe('server start-up', () => {
  let fresh: FreshDb;
  let server: RunningServer;
  before(async () => {
    fresh = await freshDatabase(undefined, { migrate: false });
    server = await startServer(testConfig({ databaseUrl: fresh.url }), { db: fresh.db, log: quietLog });
  });
  after(async () => {
    await server?.close();
    await fresh?.drop();
  });

  it('migrates an empty database and answers /healthz with 200', async () => {
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).to.equal(200);
    expect(await res.json()).to.deep.equal({ status: 'ok', database: 'reachable' });
  });

  it('seeds the demo provider, its catalog and its accounts on first start', async () => {
    const db = fresh.db;
    const provider = await db('accounts').where({ type: 'provider' }).first();
    expect(provider.company_name).to.equal('Demo Hosting');
    expect((await db('resources')).map((r: { name: string }) => r.name)).to.have.members(['Mailboxes', 'Disk space', 'Bandwidth', 'IP addresses', 'Domains']);
    expect((await db('service_templates')).map((r: { name: string }) => r.name)).to.have.members(['Shared Hosting', 'Mail', 'VPS', 'Domain']);
    const periods = await db('plan_periods as pp').join('plans as p', 'p.id', 'pp.plan_id').where('p.name', 'Shared Hosting Basic').select('pp.duration', 'pp.unit');
    expect(periods.map((p: { duration: number }) => p.duration).sort((a: number, b: number) => a - b)).to.deep.equal([1, 3, 6, 12]);
    const trial = await db('plan_periods as pp').join('plans as p', 'p.id', 'pp.plan_id').where('p.trial', true).first('pp.duration', 'pp.unit', 'pp.trial');
    expect(trial).to.deep.include({ duration: 30, unit: 'day' });
    expect(await db('resource_rates').where('overage_fee', '>', 0)).to.not.be.empty;
    expect(await db('accounts').where({ type: 'reseller', reseller_kind: 'basic' })).to.have.length(1);
    expect(await db('users').whereIn('login', ['admin', 'reseller', 'customer'])).to.have.length(3);
    expect(server.seed.logins.map((l) => l.login)).to.deep.equal(['reseller', 'customer']);
    const instances = await db('plugin_instances').orderBy('id').select('kind', 'plugin', 'name', 'status');
    expect(instances).to.deep.equal([
      { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox', status: 'active' },
      { kind: 'payment', plugin: 'sandbox', name: 'sandbox-payments', status: 'active' },
      { kind: 'fraud', plugin: 'rules', name: 'fraud-rules', status: 'active' },
      { kind: 'registrar', plugin: 'sandbox', name: 'sandbox-registrar', status: 'active' },
    ]);
    // Domains: .com, .net and .org through the sandbox registrar, with a 1-year registration price each.
    const tlds = await db('tlds as t').join('tld_prices as p', 'p.tld_id', 't.id').where({ 'p.action': 'register', 'p.years': 1 }).orderBy('t.tld').select('t.tld', 'p.amount');
    expect(tlds.map((t: { tld: string; amount: unknown }) => [t.tld, Number(t.amount)])).to.deep.equal([['com', 1299], ['net', 1499], ['org', 1199]]);
  });

  it('seeds only once: a second start on the same database changes nothing', async () => {
    const before = await fresh.db('plans').count({ n: '*' });
    const second = await startServer(testConfig({ databaseUrl: fresh.url }), { db: fresh.db, log: quietLog });
    await second.close();
    expect(await fresh.db('plans').count({ n: '*' })).to.deep.equal(before);
    expect(second.seed.created).to.equal(false);
  });

  it('answers /healthz with 503 when the database is unreachable', async () => {
    const other = await freshDatabase('sqlite', { migrate: false });
    const s = await startServer(testConfig({ databaseUrl: other.url }), { db: other.db, log: quietLog, demo: false });
    await other.db.destroy();
    const res = await fetch(`${s.url}/healthz`);
    expect(res.status).to.equal(503);
    await s.close();
    await other.drop().catch(() => undefined);
  });
});

describe('logging', () => {
  it('redacts secret fields wherever they appear in a log line', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const log = createLogger({ level: 'info', format: 'json' });
    log.clear().add(new winston.transports.Stream({ stream: sink }));
    log.info('payment', { password: 'hunter22', card: { cardNumber: '4242424242424242', cvv: '123', brand: 'visa' }, nested: [{ apiSecret: 'x' }] });
    const line = lines.join('');
    expect(line).to.contain('visa');
    for (const secret of ['hunter22', '4242424242424242', '"123"', '"x"']) expect(line).not.to.contain(secret);
    expect(redact({ token: 'abc', ok: 1 })).to.deep.equal({ token: '[redacted]', ok: 1 });
  });
});
