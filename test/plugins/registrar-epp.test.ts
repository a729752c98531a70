import crypto from 'node:crypto';
import { expect } from 'chai';
import { PluginInstancesService } from '../../src/plugins/instances-service';
import type { Registrar } from '../../src/plugins/sdk';
import { startTestEppServer, type TestEppServer } from '../epp/server';
import { makeWorld, type World } from '../helpers/world';
import { bundledPlugins } from './bundled';
import { registrarContract } from './registrar-contract';

const rand = () => crypto.randomBytes(4).toString('hex');

describe('EPP registrar against the test EPP registry (TLS on loopback), kept through the plugin store', () => {
  let world: World;
  let svc: PluginInstancesService;
  let server: TestEppServer;
  let n = 0;

  before(async () => {
    world = await makeWorld();
    svc = new PluginInstancesService(world.deps, bundledPlugins());
    server = await startTestEppServer({ now: () => world.clock.now(), approveAfterQueries: 2 });
  });
  after(async () => {
    await server?.close();
    await world?.close();
  });

  registrarContract('epp', async () => {
    const id = await svc.create(world.provider, {
      kind: 'registrar',
      plugin: 'epp',
      name: `epp-${++n}`,
      settings: { host: server.host, port: server.port, username: 'hw-registrar', password: 'registrar-pw', caCert: server.ca, commandTimeoutMs: 5000 },
    });
    const registrar = await svc.instantiate<Registrar>(id);
    return {
      registrar,
      freshName: () => `contract-${rand()}.test`,
      transferable: async () => {
        const name = `elsewhere-${rand()}.test`;
        const authCode = `auth-${rand()}`;
        server.seedDomain(name, 'other-reg', authCode);
        return { name, authCode };
      },
      performed: async () =>
        server.log
          .filter((l) => l.clID === 'hw-registrar' && l.code < 2000 && ['domain:create', 'domain:renew'].includes(l.command))
          .map((l) => ({ action: l.command === 'domain:create' ? 'register' : 'renew', operationId: l.clTRID })),
      cleanup: async () => registrar.close?.(),
    };
  });

  const settings = () => ({ host: server.host, port: server.port, username: 'hw-registrar', password: 'registrar-pw', caCert: server.ca });

  it('keeps the password sealed, and logs the old object out when the instance\'s settings change', async () => {
    const id = await svc.create(world.provider, { kind: 'registrar', plugin: 'epp', name: `epp-${++n}`, settings: settings() });
    expect((await svc.get(world.provider, id)).settings.password).to.equal('********');
    const first = await svc.instantiate<Registrar>(id);
    expect((await first.testConnection()).status).to.equal('success');
    const logouts = server.log.filter((l) => l.command === 'logout').length;
    world.clock.advance(1000);
    await svc.update(world.provider, id, { settings: { commandTimeoutMs: 4000 } });
    const second = await svc.instantiate<Registrar>(id);
    expect(second).to.not.equal(first);
    for (let i = 0; i < 50 && server.log.filter((l) => l.command === 'logout').length === logouts; i++) await new Promise((r) => setTimeout(r, 10));
    expect(server.log.filter((l) => l.command === 'logout').length).to.equal(logouts + 1);
    expect((await second.testConnection()).status).to.equal('success');
    await second.close?.();
  });

  it('answers the instances service\'s connection test', async () => {
    const id = await svc.create(world.provider, { kind: 'registrar', plugin: 'epp', name: `epp-${++n}`, settings: { ...settings(), password: 'wrong-pass' } });
    expect(await svc.testConnection(world.provider, id)).to.deep.include({ status: 'failure', code: 'AUTHENTICATION_ERROR', retryable: false });
  });
});
