import { expect } from 'chai';
import { sandboxState, type SandboxGate } from '../../plugins/provisioning/sandbox';
import { signature } from '../../plugins/provisioning/webhook';
import type { Actor } from '../../src/context';
import { AppError } from '../../src/domain/errors';
import { PluginInstancesService, SECRET_MASK } from '../../src/plugins/instances-service';
import type { PluginRegistry } from '../../src/plugins/loader';
import type { ProvisioningGate, ServiceRequest } from '../../src/plugins/sdk';
import { startWebhookPanel } from '../fixtures/plugins/webhook-panel';
import { accountActor, makeWorld, type World } from '../helpers/world';
import { bundledPlugins } from './bundled';
import { failure as rejects } from '../helpers/assertions';

async function count(world: World, table: string, where: Record<string, unknown> = {}): Promise<number> {
  const [{ n }] = (await world.deps.db(table).where(where).count({ n: '*' })) as { n: number | string }[];
  return Number(n);
}

const WEBHOOK_SECRET = 'the-panel-shared-secret-123';
const webhookSettings = (extra: Record<string, unknown> = {}) => ({ url: 'https://panel.example.com/hostwright', secret: WEBHOOK_SECRET, ...extra });

let seq = 0;
const request = (extra: Partial<ServiceRequest> = {}): ServiceRequest => ({
  operationId: `svc-op-${++seq}`,
  subscriptionId: 1,
  accountId: 1,
  template: 'Shared Hosting',
  parameters: {},
  limits: [],
  ...extra,
});

/** The bundled registry, except that `broken` plugins did not load. */
function registryWithBroken(broken: Record<string, string>): PluginRegistry {
  const real = bundledPlugins();
  return {
    plugins: real.plugins,
    broken: [],
    get: (kind, name) => (broken[`${kind}/${name}`] ? undefined : real.get(kind, name)),
    brokenReason: (kind, name) => broken[`${kind}/${name}`],
    list: () => real.list(),
  };
}

describe('plugin instances', () => {
  let world: World;
  let svc: PluginInstancesService;
  let provider: Actor;

  beforeEach(async () => {
    world = await makeWorld();
    svc = new PluginInstancesService(world.deps, bundledPlugins());
    provider = world.provider;
  });
  afterEach(async () => {
    await world?.close();
  });

  describe('create and update', () => {
    it('creates an instance with its settings checked and defaults filled in, recording an audit entry and plugin_instance.created', async () => {
      const id = await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox', settings: { delayMs: 5 } });
      const view = await svc.get(provider, id);
      expect(view).to.deep.include({ instanceId: id, vendorAccountId: provider.accountId, kind: 'provisioning', plugin: 'sandbox', name: 'sandbox', status: 'active', problem: null });
      expect(view.settings).to.deep.equal({ delayMs: 5, fail: {}, pendingFor: 0 });
      expect(view.createdAt.toISOString()).to.equal('2026-01-15T10:00:00.000Z');
      expect(await count(world, 'audit_log', { operation: 'CreatePluginInstance', object_type: 'plugin_instance', object_id: String(id), outcome: 'ok' })).to.equal(1);
      const event = (await world.deps.db('events').where({ name: 'plugin_instance.created' }).first()) as { object_id: string; account_id: number; payload: string };
      expect(event.object_id).to.equal(String(id));
      expect(Number(event.account_id)).to.equal(provider.accountId);
      expect(JSON.parse(event.payload)).to.deep.equal({ instanceId: id, kind: 'provisioning', plugin: 'sandbox', name: 'sandbox', status: 'active' });
    });

    it('refuses settings the manifest\'s schema refuses, naming the setting as settings.<key>, and writes nothing', async () => {
      const create = (plugin: string, settings: Record<string, unknown>) => svc.create(provider, { kind: 'provisioning', plugin, name: 'gate', settings });
      await rejects(create('sandbox', { delayMs: 'soon' }), 'INVALID_ARGUMENT', 'settings.delayMs');
      await rejects(create('sandbox', { colour: 'red' }), 'INVALID_ARGUMENT', 'settings.colour');
      await rejects(create('sandbox', { fail: { provision: 'sometimes' } }), 'INVALID_ARGUMENT', 'settings.fail.provision');
      await rejects(create('webhook', { secret: WEBHOOK_SECRET }), 'INVALID_ARGUMENT', 'settings.url');
      await rejects(create('webhook', webhookSettings({ url: 'ftp://panel.example.com/' })), 'INVALID_ARGUMENT', 'settings.url');
      expect(await count(world, 'plugin_instances')).to.equal(0);
      expect(await count(world, 'events', { name: 'plugin_instance.created' })).to.equal(0);
    });

    it('refuses a plugin that is not installed, on plugin, and a kind that does not exist, on kind', async () => {
      await rejects(svc.create(provider, { kind: 'provisioning', plugin: 'cpanel', name: 'x' }), 'INVALID_ARGUMENT', 'plugin');
      await rejects(svc.create(provider, { kind: 'payment', plugin: 'webhook', name: 'x' }), 'INVALID_ARGUMENT', 'plugin');
      await rejects(svc.create(provider, { kind: 'mailer', plugin: 'sandbox', name: 'x' }), 'INVALID_ARGUMENT', 'kind');
    });

    it('refuses a broken plugin with its reason', async () => {
      svc = new PluginInstancesService(world.deps, registryWithBroken({ 'provisioning/sandbox': 'the plugin needs SDK ^2.0.0' }));
      const err = await rejects(svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'x' }), 'INVALID_ARGUMENT', 'plugin');
      expect(err.message).to.match(/is broken: the plugin needs SDK \^2\.0\.0/);
    });

    it('keeps instance names unique per vendor, while two vendors may each have one called sandbox', async () => {
      const reseller = await accountActor(world, provider, 'reseller', 'Alpha');
      await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      await rejects(svc.create(provider, { kind: 'provisioning', plugin: 'script', name: 'sandbox', settings: { commands: { provision: '/bin/true' } } }), 'INVALID_ARGUMENT', 'name');
      await svc.create(reseller, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      expect(await count(world, 'plugin_instances', { name: 'sandbox' })).to.equal(2);
    });

    it('lets only one of two simultaneous creations of one name through; the other is refused on name', async () => {
      const create = () => svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      const results = await Promise.allSettled([create(), create()]);
      expect(results.map((r) => r.status).sort()).to.deep.equal(['fulfilled', 'rejected']);
      const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(refused.reason).to.be.instanceOf(AppError).and.deep.include({ code: 'INVALID_ARGUMENT', field: 'name' });
      expect(await count(world, 'plugin_instances')).to.equal(1);
    });

    it('keeps a customer from owning a plugin instance (INVALID_ARGUMENT on vendorAccountId)', async () => {
      const customer = await accountActor(world, provider, 'customer', 'Cust');
      await rejects(svc.create(customer, { kind: 'provisioning', plugin: 'sandbox', name: 'mine' }), 'INVALID_ARGUMENT', 'vendorAccountId');
    });

    it('updates name, status and settings, recording plugin_instance.updated with what changed', async () => {
      const id = await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      world.clock.advance(60_000);
      const view = await svc.update(provider, id, { name: 'demo', status: 'disabled', settings: { pendingFor: 2 } });
      expect(view).to.deep.include({ name: 'demo', status: 'disabled' });
      expect(view.settings).to.deep.equal({ delayMs: 0, fail: {}, pendingFor: 2 });
      expect(view.updatedAt.getTime() - view.createdAt.getTime()).to.equal(60_000);
      const event = (await world.deps.db('events').where({ name: 'plugin_instance.updated' }).first()) as { payload: string };
      expect(JSON.parse(event.payload)).to.deep.include({ instanceId: id, name: 'demo', changed: ['name', 'status', 'settings.pendingFor'] });
      expect(await count(world, 'audit_log', { operation: 'UpdatePluginInstance', object_id: String(id) })).to.equal(1);
    });

    it('writes nothing for an update that changes nothing', async () => {
      const id = await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      await svc.update(provider, id, { name: 'sandbox', status: 'active' });
      expect(await count(world, 'events', { name: 'plugin_instance.updated' })).to.equal(0);
      expect(await count(world, 'audit_log', { operation: 'UpdatePluginInstance' })).to.equal(0);
    });

    it('refuses an update whose merged settings the schema refuses, and changes nothing', async () => {
      const id = await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      await rejects(svc.update(provider, id, { settings: { pendingFor: -1 } }), 'INVALID_ARGUMENT', 'settings.pendingFor');
      expect((await svc.get(provider, id)).settings).to.deep.include({ pendingFor: 0 });
      expect(await count(world, 'events', { name: 'plugin_instance.updated' })).to.equal(0);
    });

    it('refuses to rename a gate a service template delivers through (CONFLICT on name)', async () => {
      const id = await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      await world.services.catalog.createTemplate(provider, { name: 'Shared Hosting', serviceGate: 'sandbox' });
      await rejects(svc.update(provider, id, { name: 'renamed' }), 'CONFLICT', 'name');
      expect((await svc.get(provider, id)).name).to.equal('sandbox');
    });
  });

  describe('secrets', () => {
    it('seals secret settings in the database row and shows them as ******** in get and list, and never in the audit trail or events', async () => {
      const id = await svc.create(provider, { kind: 'provisioning', plugin: 'webhook', name: 'panel', settings: webhookSettings() });
      const row = (await world.deps.db('plugin_instances').where({ id }).first()) as { settings: string; secrets_enc: string };
      expect(row.settings).to.not.contain(WEBHOOK_SECRET);
      expect(JSON.parse(row.settings)).to.deep.equal({ url: 'https://panel.example.com/hostwright', timeoutMs: 10000, retries: 2, backoffMs: 500 });
      expect(row.secrets_enc).to.match(/^v1\./).and.not.contain(WEBHOOK_SECRET);
      expect(JSON.parse(world.deps.secrets.open(row.secrets_enc))).to.deep.equal({ secret: WEBHOOK_SECRET });
      expect((await svc.get(provider, id)).settings.secret).to.equal(SECRET_MASK);
      expect((await svc.list(provider))[0].settings.secret).to.equal(SECRET_MASK);
      const trail = [...(await world.deps.db('audit_log').select('details')), ...(await world.deps.db('events').select('payload'))].map((r) => JSON.stringify(r)).join('\n');
      expect(trail).to.not.contain(WEBHOOK_SECRET);
    });

    it('keeps a secret when an update omits it or sends the mask back, and replaces it when a new one is given', async () => {
      const id = await svc.create(provider, { kind: 'provisioning', plugin: 'webhook', name: 'panel', settings: webhookSettings() });
      const secretInRow = async () => {
        const row = (await world.deps.db('plugin_instances').where({ id }).first()) as { secrets_enc: string };
        return (JSON.parse(world.deps.secrets.open(row.secrets_enc)) as { secret: string }).secret;
      };
      await svc.update(provider, id, { settings: { timeoutMs: 2000 } });
      expect(await secretInRow()).to.equal(WEBHOOK_SECRET);
      await svc.update(provider, id, { settings: { ...(await svc.get(provider, id)).settings, retries: 5 } });
      expect(await secretInRow()).to.equal(WEBHOOK_SECRET);
      expect((await svc.get(provider, id)).settings).to.deep.include({ timeoutMs: 2000, retries: 5, secret: SECRET_MASK });
      await svc.update(provider, id, { settings: { secret: 'a-brand-new-secret-456' } });
      expect(await secretInRow()).to.equal('a-brand-new-secret-456');
    });

    it('refuses the mask itself as a new instance\'s secret', async () => {
      await rejects(svc.create(provider, { kind: 'provisioning', plugin: 'webhook', name: 'panel', settings: webhookSettings({ secret: SECRET_MASK }) }), 'INVALID_ARGUMENT', 'settings.secret');
    });
  });

  describe('scoping', () => {
    it('answers another reseller\'s instance exactly like a missing one, in get, update, list and testConnection', async () => {
      const alpha = await accountActor(world, provider, 'reseller', 'Alpha');
      const beta = await accountActor(world, provider, 'reseller', 'Beta');
      const id = await svc.create(alpha, { kind: 'provisioning', plugin: 'sandbox', name: 'alpha-gate' });
      const missing = await rejects(svc.get(beta, 999999), 'NOT_FOUND');
      const hidden = await rejects(svc.get(beta, id), 'NOT_FOUND');
      expect(hidden.message).to.equal(missing.message.replace('999999', String(id)));
      await rejects(svc.update(beta, id, { status: 'disabled' }), 'NOT_FOUND');
      await rejects(svc.testConnection(beta, id), 'NOT_FOUND');
      expect(await svc.list(beta)).to.deep.equal([]);
      expect((await svc.list(provider)).map((i) => i.instanceId)).to.deep.equal([id]);
      expect((await svc.get(alpha, id)).status).to.equal('active');
    });

    it('lists as service gates the actor\'s own instances and its ancestors\', never a sibling\'s, with their status', async () => {
      const alpha = await accountActor(world, provider, 'reseller', 'Alpha');
      const beta = await accountActor(world, provider, 'reseller', 'Beta');
      await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      const own = await svc.create(alpha, { kind: 'provisioning', plugin: 'webhook', name: 'alpha-panel', settings: webhookSettings() });
      await svc.update(alpha, own, { status: 'disabled' });
      await svc.create(beta, { kind: 'provisioning', plugin: 'sandbox', name: 'beta-gate' });
      expect(await svc.listServiceGates(alpha)).to.deep.equal([
        { name: 'sandbox', plugin: 'sandbox', kind: 'provisioning', status: 'active', vendorAccountId: provider.accountId },
        { name: 'alpha-panel', plugin: 'webhook', kind: 'provisioning', status: 'disabled', vendorAccountId: alpha.accountId },
      ]);
    });
  });

  describe('instantiate and testConnection', () => {
    it('makes the plugin object once and keeps it until the instance is updated', async () => {
      const id = await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      const first = await svc.instantiate<ProvisioningGate>(id);
      expect(await svc.instantiate(id)).to.equal(first);
      expect(await svc.instantiate({ vendorId: provider.accountId, name: 'sandbox' })).to.equal(first);
      await svc.update(provider, id, { settings: { fail: { testConnection: 'permanent' } } });
      const second = await svc.instantiate<ProvisioningGate>(id);
      expect(second).to.not.equal(first);
      expect((await second.testConnection()).status).to.equal('failure');
    });

    it('gives the plugin its settings with secrets opened, and the core clock', async () => {
      const panel = await startWebhookPanel(WEBHOOK_SECRET);
      try {
        const id = await svc.create(provider, { kind: 'provisioning', plugin: 'webhook', name: 'panel', settings: webhookSettings({ url: panel.url, retries: 0 }) });
        const gate = await svc.instantiate<ProvisioningGate>(id);
        await gate.provision(request());
        const [call] = panel.received;
        const timestamp = String(Math.floor(world.clock.now().getTime() / 1000));
        expect(call.headers['x-hostwright-timestamp']).to.equal(timestamp);
        expect(call.headers['x-hostwright-signature']).to.equal(signature(WEBHOOK_SECRET, timestamp, call.body));
      } finally {
        await panel.close();
      }
    });

    it('answers testConnection with the plugin\'s outcome', async () => {
      const ok = await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'ok' });
      const failing = await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'failing', settings: { fail: { testConnection: 'retryable' } } });
      expect(await svc.testConnection(provider, ok)).to.deep.include({ status: 'success' });
      expect(await svc.testConnection(provider, failing)).to.deep.include({ status: 'failure', retryable: true });
    });

    it('reports an instance whose plugin broke: a problem in get, broken in the gate list, a failed connection test, an unavailable gate', async () => {
      const id = await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      svc = new PluginInstancesService(world.deps, registryWithBroken({ 'provisioning/sandbox': 'manifest.json is not valid JSON' }));
      expect((await svc.get(provider, id)).problem).to.match(/plugin 'sandbox' is broken: manifest\.json is not valid JSON/);
      expect((await svc.listServiceGates(provider))[0].status).to.equal('broken');
      expect(await svc.testConnection(provider, id)).to.deep.include({ status: 'failure', retryable: false, code: 'UNAVAILABLE' });
      await rejects(svc.resolveGate(provider.accountId, 'sandbox'), 'UNAVAILABLE');
    });
  });

  describe('resolveGate', () => {
    it('gives a reseller without a gate of that name its provider\'s gate, ready to provision', async () => {
      const reseller = await accountActor(world, provider, 'reseller', 'Alpha');
      const id = await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      const resolved = await svc.resolveGate(reseller.accountId, 'sandbox');
      expect(resolved).to.deep.include({ instanceId: id, vendorAccountId: provider.accountId, name: 'sandbox', plugin: 'sandbox' });
      const outcome = await resolved.gate.provision(request());
      expect(outcome.status).to.equal('success');
      expect(sandboxState(resolved.gate as SandboxGate).journal).to.have.length(1);
    });

    it('prefers the vendor\'s own gate of that name over its provider\'s', async () => {
      const reseller = await accountActor(world, provider, 'reseller', 'Alpha');
      await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      const own = await svc.create(reseller, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      expect((await svc.resolveGate(reseller.accountId, 'sandbox')).instanceId).to.equal(own);
    });

    it('answers a disabled nearest gate as unavailable rather than sending services to the provider\'s', async () => {
      const reseller = await accountActor(world, provider, 'reseller', 'Alpha');
      await svc.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox' });
      await svc.create(reseller, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox', status: 'disabled' });
      const err = await rejects(svc.resolveGate(reseller.accountId, 'sandbox'), 'UNAVAILABLE');
      expect(err.message).to.match(/disabled/);
    });

    it('answers NOT_FOUND for a gate name nobody up the tree has, or that only names another kind of plugin', async () => {
      const reseller = await accountActor(world, provider, 'reseller', 'Alpha');
      await svc.create(provider, { kind: 'payment', plugin: 'sandbox', name: 'cards' });
      await rejects(svc.resolveGate(reseller.accountId, 'plesk'), 'NOT_FOUND');
      await rejects(svc.resolveGate(reseller.accountId, 'cards'), 'NOT_FOUND');
    });
  });
});
