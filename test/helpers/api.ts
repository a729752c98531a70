import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ManualClock } from '../../src/clock';
import type { Config } from '../../src/config';
import type { Actor } from '../../src/context';
import type { Registrar } from '../../src/plugins/sdk';
import { inTransaction } from '../../src/db/transaction';
import { startServer, type RunningServer } from '../../src/server';
import { freshDatabase, type FreshDb } from './db';
import { ADMIN_PASSWORD, quietLog, testConfig } from './world';

export { ADMIN_PASSWORD };

/** A real server on an ephemeral port over a fresh database (demo seed off unless asked), for API tests. */
export interface ApiWorld {
  server: RunningServer;
  fresh: FreshDb;
  url: string;
  /** The legacy XML-RPC listener, when xmlrpcLegacyPort was set (use port 0 ... see startApiWorld). */
  legacyUrl: string | null;
  clock: ManualClock | undefined;
  close(): Promise<void>;
}

export async function startApiWorld(opts: { config?: Partial<Config>; demo?: boolean; clock?: ManualClock; legacyPort?: boolean } = {}): Promise<ApiWorld> {
  const fresh = await freshDatabase();
  let legacyPort = 0;
  if (opts.legacyPort) {
    // Find a free port for the legacy listener (0 would switch it off).
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    legacyPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
  }
  const server = await startServer(testConfig({ databaseUrl: fresh.url, host: '127.0.0.1', xmlrpcLegacyPort: legacyPort, ...opts.config }), {
    db: fresh.db,
    log: quietLog,
    demo: opts.demo ?? false,
    clock: opts.clock,
  });
  return {
    server,
    fresh,
    url: server.url.replace('localhost', '127.0.0.1'),
    legacyUrl: server.legacyXmlRpcUrl?.replace('localhost', '127.0.0.1') ?? null,
    clock: opts.clock,
    async close() {
      await server.close();
      await fresh.drop();
    },
  };
}

/** The provider, acting as the system, for setting up fixtures through the services. */
export async function providerActor(world: ApiWorld): Promise<Actor> {
  const row = (await world.fresh.db('accounts').where({ type: 'provider' }).first()) as { id: number; path: string };
  return { userId: null, accountId: row.id, accountPath: row.path, accountType: 'provider', roles: ['admin'], channel: 'system' };
}

/** Creates an account under `vendorId` (default: the provider) with an API user; returns ids and credentials. */
export async function accountWithApiUser(
  world: ApiWorld,
  type: 'reseller' | 'customer',
  name: string,
  vendorId?: number,
): Promise<{ accountId: number; userId: number; login: string; password: string }> {
  const actor = await providerActor(world);
  const { accounts, users } = world.server.services;
  const accountId = await accounts.create(actor, {
    type,
    vendorAccountId: vendorId,
    companyName: name,
    address: { country: 'US' },
    contacts: { admin: { firstName: name, lastName: 'Admin', email: `${name.toLowerCase().replace(/\W+/g, '')}@example.com` } },
  });
  const login = `${name.toLowerCase().replace(/\W+/g, '')}-api`;
  const password = `${login}-password`;
  const userId = await users.create(actor, { accountId, login, password, email: `${login}@example.com`, firstName: name, lastName: 'Api', roles: ['admin', 'api'] });
  return { accountId, userId, login, password };
}

/**
 * A domain registered at a registrar instance of the world (the demo seed's `sandbox-registrar` unless given) and
 * recorded as the order saga does (recordRegisteredDomain, expiry as the registrar answered); returns its id.
 */
export async function registeredDomain(
  world: ApiWorld,
  accountId: number,
  name: string,
  opts: { registrarInstanceId?: number; status?: 'pending'; nameservers?: string[] } = {},
): Promise<number> {
  const provider = await providerActor(world);
  const instanceId =
    opts.registrarInstanceId ?? Number(((await world.fresh.db('plugin_instances').where({ vendor_id: provider.accountId, name: 'sandbox-registrar' }).first('id')) as { id: number }).id);
  const registrar = await world.server.services.pluginInstances.instantiate<Registrar>(instanceId);
  const contacts = { registrant: { name: 'Domain Owner', email: 'owner@example.com', phone: '+1.5555550100', street: ['1 Main St'], city: 'Springfield', countryCode: 'US' } };
  const r = await registrar.register({ operationId: `test-reg-${name}`, name, years: 1, contacts });
  if (r.status !== 'success') throw new Error(`the registrar refused ${name}`);
  return world.server.services.domains.recordRegisteredDomain(world.fresh.db, provider, { accountId, name, registrarInstanceId: instanceId, expiresAt: new Date(r.result.expiresAt), status: opts.status, nameservers: opts.nameservers });
}

let billedSeq = 0;

/** A customer of the provider in `currency` and `country`, with a default card (of gateway instance `gatewayId`) when `card` is given. */
export async function billedCustomer(world: ApiWorld, provider: Actor, o: { label: string; currency: string; country: string; card?: string; gatewayId?: number }): Promise<number> {
  const n = ++billedSeq;
  const [first, last = 'Customer'] = o.label.split(' ');
  const id = await world.server.services.accounts.create(provider, {
    type: 'customer',
    companyName: `${o.label} ${n}`,
    currency: o.currency,
    address: { country: o.country },
    contacts: { admin: { firstName: first!, lastName: last, email: `${o.label.toLowerCase().replace(/\W+/g, '-')}-${n}@example.com` } },
  });
  if (o.card) {
    if (o.gatewayId === undefined) throw new Error('billedCustomer: a card needs its gatewayId');
    await world.server.services.payments.storePayTool(provider, id, o.gatewayId, { number: o.card, expMonth: 12, expYear: 2040, cvv: '123' }, { makeDefault: true });
  }
  return id;
}

/** An invoice the provider issues to `accountId` now (the server's clock): one renewal line per amount; answers its id. */
export async function issuedInvoice(world: ApiWorld, provider: Actor, accountId: number, currency: string, amounts: bigint[], due?: string): Promise<number> {
  const now = world.server.services.deps.clock.now();
  const [inv] = await inTransaction(world.fresh.db, (tx) =>
    world.server.services.documents.issueInvoices(tx, now, [
      {
        vendorId: provider.accountId,
        accountId,
        currency,
        issueDate: now,
        dueDate: due ? new Date(due) : undefined,
        lines: amounts.map((a, i) => ({ kind: 'renewal' as const, description: `Hosting ${i + 1}`, subscriptionId: null, periodStart: new Date('2026-03-01T00:00:00Z'), periodEnd: new Date('2026-04-01T00:00:00Z'), quantity: '1', unitPrice: a, amount: a })),
      },
    ]),
  );
  return inv!.documentId;
}
