import crypto from 'node:crypto';
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
});
