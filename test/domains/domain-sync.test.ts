import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../src/config';
import type { Registrar } from '../../src/plugins/sdk';
import { providerActor, startApiWorld } from '../helpers/api';
import { eventually, failure } from '../helpers/assertions';
import { makeWorld, accountActor, type World } from '../helpers/world';
import { claimFiring } from '../../src/domains/sync-schedule';

const CONTACTS = { registrant: { name: 'Sam Sync', email: 'sam@example.com', phone: '+1.5555550100', street: ['1 Main St'], city: 'Springfield', countryCode: 'US' } };

describe('domains: registrar failures and the scheduled sync', function () {
  this.timeout(60_000);
  let world: World;
  let seq = 0;

  /** A sandbox registrar instance (with forced failures) and a domain registered there for a new customer. */
  async function domainAt(failures: Record<string, string>, name: string) {
    const { pluginInstances, domains } = world.services;
    const instanceId = await pluginInstances.create(world.provider, { kind: 'registrar', plugin: 'sandbox', name: `sync-registrar-${++seq}`, settings: { failures } });
    const registrar = await pluginInstances.instantiate<Registrar>(instanceId);
    const r = await registrar.register({ operationId: `sync-reg-${seq}`, name, years: 1, contacts: CONTACTS });
    if (r.status !== 'success') throw new Error(`sandbox refused ${name}`);
    const customer = await accountActor(world, world.provider, 'customer', `Sync Customer ${seq}`);
    const domainId = await domains.recordRegisteredDomain(world.fresh.db, world.provider, { accountId: customer.accountId, name, registrarInstanceId: instanceId, expiresAt: new Date(r.result.expiresAt) });
    return { instanceId, registrar, customer, domainId };
  }

  beforeEach(async () => {
    world = await makeWorld();
  });
  afterEach(() => world.close());

  it('a registrar refusal is PROVIDER_ERROR with its code; an outage is UNAVAILABLE; nothing changes here', async () => {
    const { domains } = world.services;
    const d = await domainAt({ 'refusing.com': 'setNameservers, getAuthCode:retryable' }, 'refusing.com');
    const e = await failure(domains.setNameservers(d.customer, { domainId: d.domainId }, ['ns1.new.example']), 'PROVIDER_ERROR');
    expect(e.message).to.contain('refusing.com');
    await failure(domains.getEppCode(d.customer, { name: 'refusing.com' }), 'UNAVAILABLE');
    const row = (await world.fresh.db('domains').where({ id: d.domainId }).first('nameservers')) as { nameservers: string };
    expect(JSON.parse(row.nameservers)).to.deep.equal([]);
    expect(await world.fresh.db('audit_log').whereIn('operation', ['SetNameservers', 'GetEppCode']).andWhere({ outcome: 'ok' })).to.have.length(0);
  });

  it('a failing registrar skips its batch only: the other registrars\' domains are synced', async () => {
    const { domains } = world.services;
    const bad = await domainAt({ 'flaky-sync.com': 'sync' }, 'flaky-sync.com');
    const good = await domainAt({}, 'steady-sync.com');
    const renewedBad = await bad.registrar.renew({ operationId: `sync-renew-${++seq}`, name: 'flaky-sync.com', years: 1 });
    const renewedGood = await good.registrar.renew({ operationId: `sync-renew-${++seq}`, name: 'steady-sync.com', years: 1 });
    expect([renewedBad.status, renewedGood.status]).to.deep.equal(['success', 'success']);
    const before = (await world.fresh.db('domains').where({ id: bad.domainId }).first('expires_at')) as { expires_at: unknown };
    expect(await domains.sync(world.provider)).to.deep.equal({ checked: 1, changed: 1, failedBatches: 1 });
    const afterBad = (await world.fresh.db('domains').where({ id: bad.domainId }).first('expires_at')) as { expires_at: unknown };
    const afterGood = (await world.fresh.db('domains').where({ id: good.domainId }).first('expires_at')) as { expires_at: unknown };
    expect(Number(afterBad.expires_at)).to.equal(Number(before.expires_at));
    expect(new Date(Number(afterGood.expires_at)).toISOString()).to.equal(renewedGood.status === 'success' ? renewedGood.result.expiresAt : '');
  });

  it('a disabled registrar instance makes its domains UNAVAILABLE and its sync batch is skipped', async () => {
    const { domains, pluginInstances } = world.services;
    const d = await domainAt({}, 'paused-registrar.com');
    await pluginInstances.update(world.provider, d.instanceId, { status: 'disabled' });
    const e = await failure(domains.getEppCode(d.customer, { domainId: d.domainId }), 'UNAVAILABLE');
    expect(e.message).to.contain('disabled');
    expect(await domains.sync(world.provider)).to.deep.equal({ checked: 0, changed: 0, failedBatches: 1 });
  });

  it('one server process claims each firing of the schedule; the others skip that firing, however late they fire it', async () => {
    const claim = (iso: string) => claimFiring(world.deps, 'domain_sync.last_run', new Date(iso));
    expect(await claim('2026-03-01T03:30:00.000Z')).to.equal(true);
    // A second process fires the same slot (its clock a little behind or ahead: the cron's instant is the same).
    expect(await claim('2026-03-01T03:30:00.000Z')).to.equal(false);
    expect(await claim('2026-03-01T03:30:00.400Z')).to.equal(false);
    // The next firing one second later is a new slot: a schedule of any frequency runs at every firing.
    expect(await claim('2026-03-01T03:30:01.000Z')).to.equal(true);
    expect(await claim('2026-03-01T03:30:01.000Z')).to.equal(false);
    // A process that fires an older slot late (it was busy) finds it taken.
    expect(await claim('2026-03-01T03:30:00.000Z')).to.equal(false);
    expect(await claim('2026-03-02T03:30:00.000Z')).to.equal(true);
    // The transfer poll keeps its own row.
    expect(await claimFiring(world.deps, 'domain_transfer_poll.last_run', new Date('2026-03-01T03:30:00.000Z'))).to.equal(true);
  });

  it('a name already held is a CONFLICT for recordRegisteredDomain', async () => {
    const d = await domainAt({}, 'held-once.com');
    await failure(world.services.domains.recordRegisteredDomain(world.fresh.db, world.provider, { accountId: d.customer.accountId, name: 'HELD-ONCE.com', registrarInstanceId: d.instanceId, expiresAt: null }), 'CONFLICT', 'name');
  });
});

describe('domains: the sync schedule (DOMAIN_SYNC_CRON)', function () {
  this.timeout(60_000);

  it('is validated at start-up; "off" (or "" in a config file) switches it off', () => {
    expect(() => loadConfig({ NODE_ENV: 'test', DOMAIN_SYNC_CRON: 'every night' } as NodeJS.ProcessEnv)).to.throw(ConfigError, /DOMAIN_SYNC_CRON/);
    expect(loadConfig({ NODE_ENV: 'test', DOMAIN_SYNC_CRON: 'off' } as NodeJS.ProcessEnv).domainSyncCron).to.equal('');
    expect(loadConfig({ NODE_ENV: 'test' } as NodeJS.ProcessEnv, { domainSyncCron: '' }).domainSyncCron).to.equal('');
    expect(loadConfig({ NODE_ENV: 'test' } as NodeJS.ProcessEnv).domainSyncCron).to.equal('30 3 * * *');
  });

  it('the server runs the sync on its schedule', async () => {
    const world = await startApiWorld({ config: { domainSyncCron: '* * * * * *' } });
    try {
      const provider = await providerActor(world);
      const { pluginInstances, domains } = world.server.services;
      const instanceId = await pluginInstances.create(provider, { kind: 'registrar', plugin: 'sandbox', name: 'cron-registrar' });
      const registrar = await pluginInstances.instantiate<Registrar>(instanceId);
      const r = await registrar.register({ operationId: 'cron-reg-1', name: 'cron-sync.com', years: 1, contacts: CONTACTS });
      if (r.status !== 'success') throw new Error('sandbox refused');
      // A firing has run already (and found nothing): the domain must be picked up by a later firing.
      await eventually(async () => ((await world.fresh.db('system_settings').where({ name: 'domain_sync.last_run' }).first('value')) ? true : undefined), 'a first firing of the sync');
      // Recorded with a stale expiry: the scheduled run must bring the registrar's.
      const id = await domains.recordRegisteredDomain(world.fresh.db, provider, { accountId: provider.accountId, name: 'cron-sync.com', registrarInstanceId: instanceId, expiresAt: new Date('2020-01-01T00:00:00Z') });
      // Every second by the schedule; waits up to 30 s, for a machine loaded by other test runs (10 s was not enough).
      const row = await eventually(async () => {
        const r = (await world.fresh.db('domains').where({ id }).first('expires_at', 'synced_at')) as { expires_at: unknown; synced_at: unknown } | undefined;
        return r?.synced_at ? r : undefined;
      }, 'the scheduled sync of cron-sync.com');
      expect(new Date(Number(row.expires_at)).toISOString()).to.equal(r.result.expiresAt);
      const audit = await world.fresh.db('audit_log').where({ operation: 'SyncDomain', object_id: String(id), channel: 'job' });
      expect(audit).to.have.length(1);
    } finally {
      await world.close();
    }
  });
});
