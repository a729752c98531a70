import fs from 'node:fs';
import { expect } from 'chai';
import type { Actor } from '../../src/context';
import { toNumber } from '../../src/db/knex';
import { SAGA_DOMAIN, SAGA_DOMAIN_LATE } from '../../src/orders/engine';
import type { Registrar } from '../../src/plugins/sdk';
import { makeWorld, type World } from '../helpers/world';
import { drive, makeCatalog, makeEngine, orderRow, type Catalog, type Engine } from '../orders/fixtures';
import { startTestEppServer, type TestEppServer } from './server';

/**
 * Domain orders through the order engine with the EPP registrar against the test registry (TLS on loopback), the
 * registry holding a create or renew for review (EPP 1001, action pending): the saga's task hears pending, hands
 * the item to the late-completion check, which asks again with the same operation id; the plugin then reads the
 * registry (<domain:info>) instead of sending the command again, and the order finishes with what the registry did.
 */
describe('EPP action pending (1001) through the order engine: late completion reads the registry', function () {
  this.timeout(60_000);
  let world: World;
  let engine: Engine;
  let cat: Catalog;
  let server: TestEppServer;
  let registrar: Registrar;
  let customer: Actor;

  const domainRow = async (name: string) => (await world.deps.db('domains').where({ name }).first('status', 'expires_at')) as { status: string; expires_at: unknown } | undefined;
  const lateTasks = async (orderId: number) => (await world.deps.db('tasks').where({ kind: SAGA_DOMAIN_LATE, object_type: 'order', object_id: String(orderId) }).select('status', 'attempts')) as { status: string; attempts: number }[];
  /** Operation id -> the domain name of its order item (filled from the order_domains rows). */
  const sentFor = new Map<string, string>();
  /** The registry's log of `command` sent under an order item's operation id for `name` (main or helper clTRID). */
  const commands = (name: string, command: string) =>
    server.log.filter((l) => l.command === command && [...sentFor].some(([id, n]) => n === name && (l.clTRID === id || l.clTRID.startsWith(`${id}~`))));
  const itemOperation = async (orderId: number) => {
    const row = (await world.deps.db('order_domains').where({ order_id: orderId }).first('name', 'operation_id', 'status', 'last_error')) as { name: string; operation_id: string; status: string; last_error: string | null };
    sentFor.set(row.operation_id, row.name);
    return row;
  };
  /** Runs the worker until the order's domain item has been handed to the late-completion check. */
  const untilHandedOver = async (orderId: number) => {
    for (let i = 0; i < 80 && (await lateTasks(orderId)).length === 0; i++) {
      if ((await engine.worker.runOnce()) === 0) world.clock.advance(60_000);
    }
    expect(await lateTasks(orderId), 'handed over to the late-completion check').to.have.length(1);
  };
  const place = async (domain: { action: 'register' | 'renew'; name: string; years?: number }) =>
    (await world.services.orders.place(customer, { accountId: customer.accountId, items: [], domains: [domain] }, domain.action === 'renew' ? 'renewal' : undefined)).orderId;

  before(async () => {
    world = await makeWorld();
    engine = makeEngine(world.deps, world.services, { sagaMaxAttempts: 3 });
    cat = await makeCatalog(world.deps, world.services, world.provider, engine);
    server = await startTestEppServer({ now: () => world.clock.now() });
    const { pluginInstances, tlds, accounts } = world.services;
    const id = await pluginInstances.create(world.provider, {
      kind: 'registrar',
      plugin: 'epp',
      name: 'epp-test',
      settings: { host: server.host, port: server.port, username: 'hw-registrar', password: 'registrar-pw', caCert: server.ca, commandTimeoutMs: 5000 },
    });
    registrar = await pluginInstances.instantiate<Registrar>(id);
    await tlds.create(world.provider, { tld: 'test', registrarInstanceId: id, prices: [{ action: 'register', years: 1, amount: 1299n }, { action: 'renew', years: 1, amount: 1499n }] });
    const accountId = await accounts.create(world.provider, {
      type: 'customer',
      companyName: 'Held Names',
      address: { address1: '1 Main St', city: 'Springfield', zip: '12345', country: 'US' },
      contacts: { admin: { firstName: 'Hal', lastName: 'Held', email: 'hal@example.com', phone: '+1.5555550100' } },
    });
    const row = (await world.deps.db('accounts').where({ id: accountId }).first()) as { path: string };
    customer = { userId: null, accountId, accountPath: row.path, accountType: 'customer', roles: ['admin'], channel: 'system' };
    await engine.payments.storePayTool(world.provider, accountId, cat.gatewayInstanceId, { number: '4242424242424242', expMonth: 12, expYear: 2030, cvv: '123' }, { makeDefault: true });
  });
  after(async () => {
    await registrar?.close?.();
    await server?.close();
    await world?.close();
    if (cat) fs.rmSync(cat.dir, { recursive: true, force: true });
  });

  it('a registration the registry holds for review: pending through the task and the first late checks, completed once approved; ONE domain:create', async () => {
    const name = 'held-shop.test';
    server.holdForReview('domain:create');
    const orderId = await place({ action: 'register', name });
    await untilHandedOver(orderId);
    const waiting = await itemOperation(orderId);
    expect(waiting.status).to.equal('running');
    expect(await orderRow(world.deps.db, orderId)).to.include({ status: 'PR' });
    expect(await domainRow(name), 'nothing recorded while the registry holds it').to.equal(undefined);
    expect([...server.domains.get(name)!.statuses]).to.deep.equal(['pendingCreate']);

    server.review(name, true);
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    const d = server.domains.get(name)!;
    expect(await domainRow(name)).to.deep.include({ status: 'active' });
    expect(toNumber((await domainRow(name))!.expires_at)).to.equal(d.exDate.getTime());
    expect(commands(name, 'domain:create').map((l) => l.code)).to.deep.equal([1001]);
    expect(commands(name, 'domain:info').length).to.be.greaterThan(1);
  });

  it('a registration held and then refused by the registry: the late check hears ACTION_REJECTED and the order is rolled back', async () => {
    const name = 'held-refused.test';
    server.holdForReview('domain:create');
    const orderId = await place({ action: 'register', name });
    await untilHandedOver(orderId);
    await itemOperation(orderId);
    server.review(name, false);
    await drive(world.deps, world.clock, engine.worker);
    const order = await orderRow(world.deps.db, orderId);
    expect(order.status).to.equal('PF');
    expect(order.failure_reason).to.match(/^Domain held-refused\.test could not be registered: the registrar refused it \(ACTION_REJECTED\)/);
    expect(await domainRow(name)).to.equal(undefined);
    expect(commands(name, 'domain:create').map((l) => l.code)).to.deep.equal([1001]);
  });

  it('a renewal the registry holds for review: the late check reads the expiry instead of renewing again; renewed ONCE', async () => {
    const name = 'held-renew.test';
    const registered = await place({ action: 'register', name });
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, registered)).status).to.equal('CP');
    const before = server.domains.get(name)!.exDate.getTime();

    server.holdForReview('domain:renew');
    const orderId = await place({ action: 'renew', name, years: 1 });
    await untilHandedOver(orderId);
    await itemOperation(orderId);
    expect(server.domains.get(name)!.exDate.getTime(), 'not renewed while held').to.equal(before);
    expect(toNumber((await domainRow(name))!.expires_at)).to.equal(before);

    server.review(name, true);
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, orderId)).status).to.equal('CP');
    const after = server.domains.get(name)!.exDate;
    expect(after.getUTCFullYear() - new Date(before).getUTCFullYear()).to.equal(1);
    expect(toNumber((await domainRow(name))!.expires_at)).to.equal(after.getTime());
    expect(commands(name, 'domain:renew').map((l) => l.code)).to.deep.equal([1001]);
    const [task] = (await world.deps.db('tasks').where({ kind: SAGA_DOMAIN, object_type: 'order', object_id: String(orderId) }).select('result')) as { result: string }[];
    expect(JSON.parse(task!.result)).to.include({ late: true });
  });
});
