import crypto from 'node:crypto';
import { expect } from 'chai';
import { asSandboxRegistrar, type SandboxRegistrar } from '../../plugins/registrar/sandbox';
import { PluginInstancesService } from '../../src/plugins/instances-service';
import type { DomainContacts, Registrar } from '../../src/plugins/sdk';
import { makeWorld, type World } from '../helpers/world';
import { bundledPlugins } from './bundled';
import { CONTRACT_CONTACTS, registrarContract } from './registrar-contract';

const rand = () => crypto.randomBytes(4).toString('hex');
const DAY = 86_400_000;

describe('sandbox registrar (kept in the database through the plugin store)', () => {
  let world: World;
  let svc: PluginInstancesService;
  let n = 0;

  before(async () => {
    world = await makeWorld();
    svc = new PluginInstancesService(world.deps, bundledPlugins());
  });
  after(async () => {
    await world?.close();
  });

  /** A sandbox registrar instance made the way the core makes one: a plugin_instances row, instantiate(). */
  async function sandbox(settings: Record<string, unknown> = {}): Promise<{ id: number; registrar: Registrar; sbx: SandboxRegistrar }> {
    const id = await svc.create(world.provider, { kind: 'registrar', plugin: 'sandbox', name: `registrar-${++n}`, settings });
    const registrar = await svc.instantiate<Registrar>(id);
    return { id, registrar, sbx: asSandboxRegistrar(registrar) };
  }

  registrarContract('sandbox', async () => {
    const { registrar, sbx } = await sandbox();
    return {
      registrar,
      freshName: () => `contract-${rand()}.example`,
      transferable: async () => ({ name: `held-taken-${rand()}.example`, authCode: 'sandbox-auth' }),
      performed: () => sbx.journalEntries(),
      cleanup: async () => {},
    };
  });

  let seq = 0;
  const op = () => `sbx-op-${++seq}-${rand()}`;
  const register = (r: Registrar, name: string, extra: { operationId?: string; contacts?: DomainContacts } = {}) =>
    r.register({ operationId: extra.operationId ?? op(), name, years: 1, contacts: extra.contacts ?? CONTRACT_CONTACTS });

  it('fills its settings\' defaults', async () => {
    const { id } = await sandbox();
    expect((await svc.get(world.provider, id)).settings).to.deep.equal({ takenWord: 'taken', transferAuthCode: 'sandbox-auth', transferPolls: 2, graceDays: 5, failures: {} });
  });

  it('keeps its registry in the database: a restarted server (a new instances service) sees the domain and answers a repeated operation id alike', async () => {
    const { id, registrar } = await sandbox();
    const name = `persist-${rand()}.example`;
    const req = { operationId: op(), name, years: 1, contacts: CONTRACT_CONTACTS };
    const first = await registrar.register(req);
    expect(first.status).to.equal('success');
    const restarted = await new PluginInstancesService(world.deps, bundledPlugins()).instantiate<Registrar>(id);
    expect(restarted).to.not.equal(registrar);
    expect(await restarted.register({ ...req })).to.deep.equal(first);
    expect((await restarted.getInfo({ operationId: op(), name })).status).to.equal('success');
    expect((await asSandboxRegistrar(restarted).journalEntries()).map((j) => j.action)).to.deep.equal(['register']);
    const rows = await world.deps.db('plugin_store').where({ instance_id: id }).select('store_key');
    expect(rows.map((r: { store_key: string }) => r.store_key)).to.include(`domain/${name}`);
  });

  it('keeps each instance\'s registry apart', async () => {
    const a = await sandbox();
    const b = await sandbox();
    const name = `apart-${rand()}.example`;
    expect((await register(a.registrar, name)).status).to.equal('success');
    expect(await b.registrar.getInfo({ operationId: op(), name })).to.deep.include({ status: 'failure', code: 'NOT_FOUND' });
  });

  it('treats names containing the taken word as held elsewhere: unavailable, OBJECT_EXISTS, NOT_SPONSORED', async () => {
    const { registrar } = await sandbox({ takenWord: 'gone' });
    const name = `already-gone-${rand()}.example`;
    const check = await registrar.checkAvailability({ operationId: op(), names: [name, `free-${rand()}.example`] });
    expect(check.status === 'success' && check.result.results.map((r) => r.available)).to.deep.equal([false, true]);
    expect(await register(registrar, name)).to.deep.include({ status: 'failure', code: 'OBJECT_EXISTS', retryable: false });
    expect(await registrar.getInfo({ operationId: op(), name })).to.deep.include({ status: 'failure', code: 'NOT_SPONSORED' });
  });

  it('fails the actions the failures setting names for a domain: permanently, retryably, or for the first n attempts', async () => {
    const refused = `refused-${rand()}.example`;
    const flaky = `flaky-${rand()}.example`;
    const broken = `broken-${rand()}.example`;
    const { registrar, sbx } = await sandbox({ failures: { [refused]: 'register', [flaky]: 'register:retryable:2, renew', [broken]: '*:retryable' } });

    const refusedReq = op();
    expect(await register(registrar, refused, { operationId: refusedReq })).to.deep.include({ status: 'failure', retryable: false, code: 'SANDBOX_FAILURE' });
    expect(await register(registrar, refused, { operationId: refusedReq }), 'a permanent failure is the operation\'s answer').to.deep.include({ status: 'failure', retryable: false });

    const flakyReq = op();
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push((await register(registrar, flaky, { operationId: flakyReq })).status);
    expect(answers).to.deep.equal(['failure', 'failure', 'success', 'success']);
    expect(await registrar.renew({ operationId: op(), name: flaky, years: 1 })).to.deep.include({ status: 'failure', retryable: false });

    expect(await registrar.getInfo({ operationId: op(), name: broken })).to.deep.include({ status: 'failure', retryable: true });
    expect(await registrar.checkAvailability({ operationId: op(), names: [broken] })).to.deep.include({ status: 'failure', retryable: true });
    expect((await sbx.journalEntries()).map((j) => `${j.action} ${j.name}`)).to.deep.equal([`register ${flaky}`]);
  });

  it('keeps a transfer pending for exactly transferPolls polls, then holds the domain for a year', async () => {
    const { registrar } = await sandbox({ transferPolls: 3 });
    const name = `move-taken-${rand()}.example`;
    const operationId = op();
    expect(await registrar.transfer({ operationId, name, authCode: 'sandbox-auth' })).to.deep.include({ status: 'pending' });
    expect((await registrar.pollTransfer({ operationId, name })).status).to.equal('pending');
    expect((await registrar.pollTransfer({ operationId, name })).status).to.equal('pending');
    const done = await registrar.pollTransfer({ operationId, name });
    expect(done).to.deep.equal({ status: 'success', result: { name, transferStatus: 'approved', expiresAt: '2027-01-15T10:00:00.000Z' } });
    expect(await registrar.pollTransfer({ operationId, name })).to.deep.equal(done);
    expect(await registrar.transfer({ operationId, name, authCode: 'sandbox-auth' })).to.deep.equal(done);
    expect(await registrar.pollTransfer({ operationId, name: `other-${name}` })).to.deep.include({ status: 'failure', code: 'NOT_FOUND' });
  });

  it('refuses to transfer a name nobody holds, and a transfer without an auth code', async () => {
    const { registrar } = await sandbox();
    expect(await registrar.transfer({ operationId: op(), name: `nobody-${rand()}.example`, authCode: 'sandbox-auth' })).to.deep.include({ status: 'failure', code: 'NOT_FOUND' });
    expect(await registrar.transfer({ operationId: op(), name: `x-taken-${rand()}.example`, authCode: '' })).to.deep.include({ status: 'failure', code: 'INVALID_ARGUMENT' });
  });

  it('deletes only within graceDays of the registration, and never a locked domain', async () => {
    const { registrar } = await sandbox({ graceDays: 3 });
    const late = `late-${rand()}.example`;
    const locked = `locked-${rand()}.example`;
    const inTime = `in-time-${rand()}.example`;
    for (const name of [late, locked]) expect((await register(registrar, name)).status).to.equal('success');
    expect((await registrar.setLock({ operationId: op(), name: locked, locked: true })).status).to.equal('success');
    expect(await registrar.delete({ operationId: op(), name: locked })).to.deep.include({ status: 'failure', code: 'STATUS_PROHIBITS' });
    world.clock.advance(3 * DAY + 1);
    try {
      expect((await register(registrar, inTime)).status).to.equal('success');
      world.clock.advance(3 * DAY);
      expect(await registrar.delete({ operationId: op(), name: late })).to.deep.include({ status: 'failure', code: 'GRACE_PERIOD_OVER', retryable: false });
      expect(await registrar.delete({ operationId: op(), name: inTime })).to.deep.equal({ status: 'success', result: {} });
    } finally {
      world.clock.set('2026-01-15T10:00:00Z');
    }
  });

  it('refuses a renewal whose currentExpiresAt is stale (a renewal already made), and one beyond ten years', async () => {
    const { registrar } = await sandbox();
    const name = `renew-${rand()}.example`;
    expect((await register(registrar, name)).status).to.equal('success');
    expect(await registrar.renew({ operationId: op(), name, years: 1, currentExpiresAt: '2026-01-15T10:00:00.000Z' })).to.deep.include({ status: 'failure', code: 'POLICY_ERROR' });
    expect(await registrar.renew({ operationId: op(), name, years: 10 })).to.deep.include({ status: 'failure', code: 'POLICY_ERROR' });
    expect(await registrar.renew({ operationId: op(), name, years: 9, currentExpiresAt: '2027-01-15' })).to.deep.include({ status: 'success' });
  });

  it('reports a domain past its expiry as expired', async () => {
    const { registrar } = await sandbox();
    const name = `lapse-${rand()}.example`;
    expect((await register(registrar, name)).status).to.equal('success');
    world.clock.advance(366 * DAY);
    try {
      const synced = await registrar.sync({ operationId: op(), names: [name] });
      expect(synced).to.deep.equal({ status: 'success', result: { domains: [{ name, found: true, state: 'expired', expiresAt: '2027-01-15T10:00:00.000Z' }] } });
    } finally {
      world.clock.set('2026-01-15T10:00:00Z');
    }
  });

  it('refuses an operation id already used for another action or another name', async () => {
    const { registrar } = await sandbox();
    const name = `reuse-${rand()}.example`;
    const operationId = op();
    expect((await register(registrar, name, { operationId })).status).to.equal('success');
    expect(await registrar.setLock({ operationId, name, locked: true })).to.deep.include({ status: 'failure', code: 'OPERATION_ID_REUSED' });
    expect(await register(registrar, `other-${name}`, { operationId })).to.deep.include({ status: 'failure', code: 'OPERATION_ID_REUSED' });
  });

  it('answers two concurrent registrations with one operation id from a single registration', async () => {
    const { registrar, sbx } = await sandbox();
    const name = `race-${rand()}.example`;
    const operationId = op();
    const [a, b] = await Promise.all([register(registrar, name, { operationId }), register(registrar, name, { operationId })]);
    expect(a).to.deep.equal(b);
    expect((await sbx.journalEntries()).filter((j) => j.name === name)).to.have.length(1);
  });

  it('refuses contacts without what a registry needs, naming the field', async () => {
    const { registrar } = await sandbox();
    const bad = { registrant: { ...CONTRACT_CONTACTS.registrant, phone: '555-0100' } };
    const outcome = await register(registrar, `contacts-${rand()}.example`, { contacts: bad });
    expect(outcome).to.deep.include({ status: 'failure', code: 'INVALID_ARGUMENT' });
    expect((outcome as { message: string }).message).to.contain('contacts.registrant.phone');
  });
});
