import fs from 'node:fs';
import { expect } from 'chai';
import type { Actor } from '../../src/context';
import { toNumber } from '../../src/db/knex';
import { pollDomainTransfers, TRANSFER_POLL_MIN_INTERVAL_MS } from '../../src/domains/lifecycle';
import { LATE_FIRST_DELAY_MS } from '../../src/jobs/late-completion';
import { SAGA_DOMAIN, SAGA_DOMAIN_LATE } from '../../src/orders/engine';
import { GATE_TASK_KINDS, gateTaskAction } from '../../src/orders/gate-tasks';
import type { Registrar } from '../../src/plugins/sdk';
import { asSandboxRegistrar } from '../../plugins/registrar/sandbox';
import { makeWorld, type World } from '../helpers/world';
import { drive, eventNames, journal, makeCatalog, makeEngine, orderRow, type Catalog, type Engine } from '../orders/fixtures';

/**
 * Domain items of orders through the order engine: priced from the TLD offer, registered / transferred / renewed by
 * the saga after the hosting, and rolled back with it. Registrars: the sandbox, one instance per behaviour.
 */
describe('domain orders: register, transfer and renew as order items, in-line with hosting, rolled back with it', function () {
  this.timeout(60_000);
  let world: World;
  let engine: Engine;
  let cat: Catalog;
  let customer: Actor;
  let graceReg: Registrar; // .com: deletes within 5 days; refuses names listed in its failures
  let noGraceReg: Registrar; // .net: no add grace period
  let graceId: number;

  const domainRow = async (name: string) =>
    (await world.deps.db('domains').where({ name }).first()) as { id: number; status: string; expires_at: unknown; order_id: unknown; subscription_id: unknown; auth_code_enc: string | null } | undefined;
  const itemRows = async (orderId: number) =>
    (await world.deps.db('order_domains').where({ order_id: orderId }).orderBy('position').select('name', 'status', 'last_error', 'auth_code_enc', 'operation_id')) as {
      name: string;
      status: string;
      last_error: string | null;
      auth_code_enc: string | null;
      operation_id: string;
    }[];
  /** Registers `name` through an order (completed) and answers its expiry. */
  const registeredExpiry = async (name: string) => {
    const registered = await world.services.orders.place(customer, { accountId: customer.accountId, items: [], domains: [{ action: 'register', name }] });
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, registered.orderId)).status).to.equal('CP');
    return toNumber((await domainRow(name))!.expires_at);
  };
  const hostingItem = (plan: number, params: Record<string, string>) => ({ planId: cat.plans[plan]!.planId, periodId: cat.plans[plan]!.periodId, parameters: params });

  before(async () => {
    world = await makeWorld();
    engine = makeEngine(world.deps, world.services, { sagaMaxAttempts: 3 });
    cat = await makeCatalog(world.deps, world.services, world.provider, engine);
    const { pluginInstances, tlds, accounts } = world.services;
    graceId = await pluginInstances.create(world.provider, {
      kind: 'registrar',
      plugin: 'sandbox',
      name: 'reg-grace',
      settings: { graceDays: 5, transferPolls: 2, failures: { 'refused-shop.com': 'register', 'second-refused.com': 'register' } },
    });
    const noGraceId = await pluginInstances.create(world.provider, { kind: 'registrar', plugin: 'sandbox', name: 'reg-nograce', settings: { graceDays: 0, failures: { 'late-refused.net': 'register' } } });
    graceReg = await pluginInstances.instantiate<Registrar>(graceId);
    noGraceReg = await pluginInstances.instantiate<Registrar>(noGraceId);
    const prices = [
      { action: 'register', years: 1, amount: 1299n },
      { action: 'register', years: 2, amount: 2500n },
      { action: 'transfer', years: 1, amount: 999n },
      { action: 'renew', years: 1, amount: 1499n },
    ];
    await tlds.create(world.provider, { tld: 'com', registrarInstanceId: graceId, prices });
    await tlds.create(world.provider, { tld: 'net', registrarInstanceId: noGraceId, prices });
    const id = await accounts.create(world.provider, {
      type: 'customer',
      companyName: 'Dora Domains',
      address: { address1: '1 Main St', city: 'Springfield', zip: '12345', country: 'US' },
      contacts: { admin: { firstName: 'Dora', lastName: 'Domain', email: 'dora@example.com', phone: '+1.5555550100' } },
    });
    const row = (await world.deps.db('accounts').where({ id }).first()) as { path: string };
    customer = { userId: null, accountId: id, accountPath: row.path, accountType: 'customer', roles: ['admin'], channel: 'system' };
    await engine.payments.storePayTool(world.provider, id, cat.gatewayInstanceId, { number: '4242424242424242', expMonth: 12, expYear: 2030, cvv: '123' }, { makeDefault: true });
  });
  after(async () => {
    await world?.close();
    if (cat) fs.rmSync(cat.dir, { recursive: true, force: true });
  });

  it('prices a domain item from the TLD offer and refuses what the offer does not sell, naming the field', async () => {
    const { orders } = world.services;
    const bad = async (input: Parameters<typeof orders.place>[1], field: string, code = 'INVALID_ARGUMENT') => {
      const e = (await orders.place(customer, input).then(
        () => null,
        (x: { code: string; field?: string }) => x,
      )) as { code: string; field?: string } | null;
      expect(e, field).to.not.equal(null);
      expect(e).to.include({ code, field });
    };
    await bad({ accountId: customer.accountId, items: [], domains: [{ action: 'register', name: 'priced.com', years: 3 }] }, 'domains[0].years');
    await bad({ accountId: customer.accountId, items: [], domains: [{ action: 'register', name: 'unsold.xyz' }] }, 'domains[0].name');
    await bad({ accountId: customer.accountId, items: [hostingItem(0, { domain: 'inline.com', domain_action: 'transfer' })] }, 'items[0].parameters.domain_epp_code');
    await bad({ accountId: customer.accountId, items: [], domains: [{ action: 'renew', name: 'notheld.com' }] }, 'domains[0].action');
    const order = await orders.place(customer, { accountId: customer.accountId, items: [hostingItem(0, { domain: 'priced-two.com', domain_action: 'register', domain_years: '2' })] });
    expect(order.total).to.equal(1000n + 2500n);
    expect(order.lines.map((l) => [l.kind, l.amount])).to.deep.equal([
      ['recurring', 1000n],
      ['domain', 2500n],
    ]);
    expect(order.domains).to.have.length(1);
    expect(order.domains[0]).to.include({ action: 'register', name: 'priced-two.com', years: 2, status: 'pending', itemId: order.items[0]!.itemId });
    // The same name cannot be ordered again while this order runs.
    await bad({ accountId: customer.accountId, items: [], domains: [{ action: 'register', name: 'priced-two.com' }] }, 'domains[0].name', 'CONFLICT');
    await drive(world.deps, world.clock, engine.worker);
    expect((await orderRow(world.deps.db, order.orderId)).status).to.equal('CP');
  });

  it('an order of hosting + domain where the registry refuses the domain: hosting rolled back, payment voided, order failed with the reason, events in order', async () => {
    const sinceEvent = toNumber(((await world.deps.db('events').max({ m: 'id' })) as { m: number }[])[0]!.m);
    const journalBefore = journal(cat).length;
    const placed = await world.services.orders.place(customer, { accountId: customer.accountId, items: [hostingItem(0, { domain: 'refused-shop.com', domain_action: 'register' })] });
    await drive(world.deps, world.clock, engine.worker);

    const order = await orderRow(world.deps.db, placed.orderId);
    expect(order.status).to.equal('PF');
    expect(order.failure_reason).to.match(/^Domain refused-shop\.com could not be registered: the registrar refused it \(SANDBOX_FAILURE\): The sandbox registrar was told to refuse register of refused-shop\.com\./);
    expect(order.failure_reason).to.contain(`Payment ${order.payment_id} was voided.`);
    expect(((await world.deps.db('payments').where({ id: order.payment_id }).first('status')) as { status: string }).status).to.equal('voided');
    // The hosting was provisioned, then terminated at its gate; its subscription is terminated.
    expect(journal(cat).slice(journalBefore).map((e) => e.action)).to.deep.equal(['provision', 'terminate']);
    const sub = (await world.deps.db('subscriptions').where({ order_id: placed.orderId }).first('status', 'service_status')) as { status: number; service_status: number };
    expect([toNumber(sub.status), toNumber(sub.service_status)]).to.deep.equal([60, 90]);
    expect(await domainRow('refused-shop.com')).to.equal(undefined);
    expect((await itemRows(placed.orderId)).map((r) => r.status)).to.deep.equal(['failed']);
    const names = (await eventNames(world.deps.db, sinceEvent)).map((e) => e.name);
    expect(names).to.deep.equal([
      'order.placed',
      'order.step_changed',
      'payment.created',
      'payment.succeeded',
      'payment.received',
      'order.step_changed',
      'subscription.created',
      'subscription.service_provisioned',
      'subscription.terminated',
      'payment.created',
      'payment.voided',
      'order.provisioning_failed',
    ]);
  });

  it('rolls back a domain registered earlier in the order by deleting it in its grace period', async () => {
    const placed = await world.services.orders.place(customer, {
      accountId: customer.accountId,
      items: [],
      domains: [
        { action: 'register', name: 'first-ok.com' },
        { action: 'register', name: 'second-refused.com' },
      ],
    });
    await drive(world.deps, world.clock, engine.worker);
    const order = await orderRow(world.deps.db, placed.orderId);
    expect(order.status).to.equal('PF');
    expect(order.failure_reason).to.contain('Domain second-refused.com could not be registered');
    expect((await itemRows(placed.orderId)).map((r) => r.status)).to.deep.equal(['undone', 'failed']);
    expect((await domainRow('first-ok.com'))?.status).to.equal('deleted');
    const info = await graceReg.getInfo({ operationId: 'test-info-1', name: 'first-ok.com' });
    expect(info.status).to.equal('failure'); // gone from the registry too
  });

  it('puts the order on hold for manual review when a registered domain can no longer be deleted', async () => {
    const placed = await world.services.orders.place(customer, {
      accountId: customer.accountId,
      items: [],
      domains: [
        { action: 'register', name: 'kept-early.net' },
        { action: 'register', name: 'late-refused.net' },
      ],
    });
    // Run until the first name is registered, then let a day pass (the .net registry has no grace period).
    for (let i = 0; i < 50 && (await itemRows(placed.orderId))[0]!.status !== 'done'; i++) {
      if ((await engine.worker.runOnce()) === 0) world.clock.advance(60_000);
    }
    expect((await itemRows(placed.orderId))[0]!.status).to.equal('done');
    world.clock.advance(86_400_000);
    await drive(world.deps, world.clock, engine.worker);

    const order = await orderRow(world.deps.db, placed.orderId);
    expect(order.status).to.equal('HL');
    expect(order.step).to.equal('provision_services');
    expect(order.failure_reason).to.match(/^Manual review: Domain late-refused\.net could not be registered/);
    expect(order.failure_reason).to.contain('Domain kept-early.net stays registered: the registrar would not delete it (GRACE_PERIOD_OVER)');
    // The payment is left for the operator; the domain stays the customer's.
    expect(((await world.deps.db('payments').where({ id: order.payment_id }).first('status')) as { status: string }).status).to.equal('success');
    expect((await domainRow('kept-early.net'))?.status).to.equal('active');
    expect((await noGraceReg.getInfo({ operationId: 'test-info-2', name: 'kept-early.net' })).status).to.equal('success');
    const view = await world.services.orders.get(world.provider, placed.orderId);
    expect(view.history.at(-1)).to.include({ status: 'HL', comment: order.failure_reason });
    const review = (await world.deps.db('events').where({ name: 'order.manual_review', object_id: String(placed.orderId) }).select('payload')) as { payload: string }[];
    expect(review).to.have.length(1);
    expect(JSON.parse(review[0]!.payload)).to.include({ orderId: placed.orderId, status: 'HL', reason: order.failure_reason });
  });

  it('transfers a domain in with its EPP code: order completed, domain transfer_pending, the code sealed; active once the registry completes it', async () => {
    const placed = await world.services.orders.place(customer, { accountId: customer.accountId, items: [], domains: [{ action: 'transfer', name: 'taken-moving.com', eppCode: 'sandbox-auth', nameservers: ['ns1.host.example'] }] });
    const [sealed] = await itemRows(placed.orderId);
    expect(sealed!.auth_code_enc).to.be.a('string').and.not.contain('sandbox-auth');
    await drive(world.deps, world.clock, engine.worker);

    expect((await orderRow(world.deps.db, placed.orderId)).status).to.equal('CP');
    const domain = await domainRow('taken-moving.com');
    expect(domain?.status).to.equal('transfer_pending');
    expect(world.deps.secrets.open(domain!.auth_code_enc!)).to.equal('sandbox-auth');
    const [item] = await itemRows(placed.orderId);
    expect(item!.status).to.equal('done');
    expect(item!.auth_code_enc).to.equal(null);
    // The code is nowhere in clear: not in the order, its audit trail or its events.
    for (const table of ['order_items', 'order_lines', 'audit_log', 'events', 'idempotency_keys']) {
      const rows = JSON.stringify(await world.deps.db(table).select('*'));
      expect(rows, table).to.not.contain('sandbox-auth');
    }
    // A daily sync while the transfer runs leaves it pending; the transfer poller follows the order's own registrar
    // operation until the registry completes it (the sandbox does on a later poll).
    await world.services.domains.sync(world.provider);
    expect((await domainRow('taken-moving.com'))?.status).to.equal('transfer_pending');
    expect((await world.deps.db('domains').where({ name: 'taken-moving.com' }).first('transfer_operation_id')).transfer_operation_id).to.equal(item!.operation_id);
    const parts = { pluginInstances: world.services.pluginInstances };
    for (let poll = 0; poll < 5 && (await domainRow('taken-moving.com'))?.status === 'transfer_pending'; poll++) {
      world.clock.advance(TRANSFER_POLL_MIN_INTERVAL_MS);
      await pollDomainTransfers(world.deps, parts);
    }
    expect((await domainRow('taken-moving.com'))?.status).to.equal('active');
  });

  it('renews a domain once even when the task runs again after the registrar already renewed it', async () => {
    const before = await registeredExpiry('renew-me.com');

    const renewal = await world.services.orders.place(customer, { accountId: customer.accountId, items: [], domains: [{ action: 'renew', name: 'renew-me.com', years: 1 }] }, 'renewal');
    expect(renewal.type).to.equal('renewal');
    expect(renewal.total).to.equal(1499n);
    // As if an earlier attempt of the task had renewed at the registrar and crashed before recording it.
    const [item] = await itemRows(renewal.orderId);
    const first = await graceReg.renew({ operationId: item!.operation_id, name: 'renew-me.com', years: 1, currentExpiresAt: new Date(before).toISOString() });
    expect(first.status).to.equal('success');
    await drive(world.deps, world.clock, engine.worker);

    expect((await orderRow(world.deps.db, renewal.orderId)).status).to.equal('CP');
    const oneYear = new Date(before);
    oneYear.setUTCFullYear(oneYear.getUTCFullYear() + 1);
    expect(toNumber((await domainRow('renew-me.com'))!.expires_at)).to.equal(oneYear.getTime());
    const info = await graceReg.getInfo({ operationId: 'test-info-3', name: 'renew-me.com' });
    expect(info.status === 'success' && info.result.expiresAt).to.equal(oneYear.toISOString());
    const renewed = (await world.deps.db('events').where({ name: 'domain.renewed' }).select('payload')) as { payload: string }[];
    expect(renewed.map((e) => JSON.parse(e.payload).name)).to.deep.equal(['renew-me.com']);
  });
  describe('a registrar still pending after the task\'s attempts (late completion)', () => {
    let slowReg: Registrar; // .org: accepts registrations and answers pending for the first 5 calls of an operation
    const tasksOf = async (kind: string, orderId: number) =>
      (await world.deps.db('tasks').where({ kind, object_type: 'order', object_id: String(orderId) }).select('id', 'status', 'attempts', 'result', 'run_at', 'created_at', 'payload')) as {
        id: number;
        status: string;
        attempts: number;
        result: string | null;
        run_at: unknown;
        created_at: unknown;
        payload: string;
      }[];
    const registers = async (name: string) => (await asSandboxRegistrar(slowReg).journalEntries()).filter((e) => e.action === 'register' && e.name === name);

    before(async () => {
      const { pluginInstances, tlds } = world.services;
      const id = await pluginInstances.create(world.provider, { kind: 'registrar', plugin: 'sandbox', name: 'reg-slow', settings: { failures: { 'slow-shop.org': 'register:pending:5', 'taken-slow.org': 'register:pending:5', 'late-renew.org': 'renew:pending:4' } } });
      slowReg = await pluginInstances.instantiate<Registrar>(id);
      await tlds.create(world.provider, { tld: 'org', registrarInstanceId: id, prices: [{ action: 'register', years: 1, amount: 1299n }, { action: 'renew', years: 1, amount: 1499n }] });
    });

    it('completes the order when the registration finishes after the task gave up: domain active, ONE register under the item\'s operation id', async () => {
      const placed = await world.services.orders.place(customer, { accountId: customer.accountId, items: [], domains: [{ action: 'register', name: 'slow-shop.org' }] });
      // The task's 3 attempts all hear pending: the item is handed over and waits, running, with the order at its provision step.
      for (let i = 0; i < 50 && (await tasksOf(SAGA_DOMAIN_LATE, placed.orderId)).length === 0; i++) {
        if ((await engine.worker.runOnce()) === 0) world.clock.advance(60_000);
      }
      const [first] = await tasksOf(SAGA_DOMAIN, placed.orderId);
      expect([first!.status, toNumber(first!.attempts)]).to.deep.equal(['done', 3]);
      expect(JSON.parse(first!.result!)).to.include({ late: true });
      const [waiting] = await itemRows(placed.orderId);
      expect(waiting!.status).to.equal('running');
      expect(waiting!.last_error).to.contain('late-completion');
      expect(await orderRow(world.deps.db, placed.orderId)).to.include({ status: 'PR', step: 'provision_services' });
      expect(await domainRow('slow-shop.org')).to.equal(undefined);
      const [late] = await tasksOf(SAGA_DOMAIN_LATE, placed.orderId);
      expect(toNumber(late!.run_at) - toNumber(late!.created_at)).to.equal(LATE_FIRST_DELAY_MS);
      expect(JSON.parse(late!.payload)).to.include({ operationId: waiting!.operation_id, action: 'register_domain' });
      // Operators see it among the gate and registrar calls (ListTasks), as register_domain.
      const listed = (await world.services.tasks.list(world.provider, { anyOf: { queues: ['provisioning'], kinds: GATE_TASK_KINDS }, pageSize: 100 })).items.find((t) => t.taskId === toNumber(late!.id));
      expect(listed && gateTaskAction(listed)).to.equal('register_domain');

      await drive(world.deps, world.clock, engine.worker);
      const order = await orderRow(world.deps.db, placed.orderId);
      expect(order.status).to.equal('CP');
      const [done] = await tasksOf(SAGA_DOMAIN_LATE, placed.orderId);
      // Calls 4 and 5 (the sweep's first two checks) were pending; the 6th registered.
      expect([done!.status, toNumber(done!.attempts)]).to.deep.equal(['done', 3]);
      expect((await domainRow('slow-shop.org'))?.status).to.equal('active');
      expect((await itemRows(placed.orderId)).map((r) => [r.status, r.last_error])).to.deep.equal([['done', null]]);
      expect((await registers('slow-shop.org')).map((e) => e.operationId)).to.deep.equal([waiting!.operation_id]);
      expect(await world.deps.db('events').where({ name: 'domain.registered' }).andWhere('payload', 'like', '%slow-shop.org%')).to.have.length(1);
    });

    it('rolls the order back as today when the registry, after the task gave up, refuses the registration', async () => {
      const placed = await world.services.orders.place(customer, { accountId: customer.accountId, items: [hostingItem(0, { domain: 'taken-slow.org', domain_action: 'register' })] });
      const journalBefore = journal(cat).length;
      await drive(world.deps, world.clock, engine.worker);

      const order = await orderRow(world.deps.db, placed.orderId);
      expect(order.status).to.equal('PF');
      expect(order.failure_reason).to.match(/^Domain taken-slow\.org could not be registered: the registrar refused it \(OBJECT_EXISTS\): taken-slow\.org is already registered\./);
      expect(order.failure_reason).to.contain(`Payment ${order.payment_id} was voided.`);
      const [late] = await tasksOf(SAGA_DOMAIN_LATE, placed.orderId);
      expect([late!.status, toNumber(late!.attempts)]).to.deep.equal(['done', 3]);
      // The hosting was provisioned, then undone; nothing was registered.
      expect(journal(cat).slice(journalBefore).map((e) => e.action)).to.deep.equal(['provision', 'terminate']);
      expect((await itemRows(placed.orderId)).map((r) => r.status)).to.deep.equal(['failed']);
      expect(await domainRow('taken-slow.org')).to.equal(undefined);
      expect(await registers('taken-slow.org')).to.have.length(0);
    });

    it('extends the expiry once when a renewal order\'s registrar finishes after the task gave up', async () => {
      const before = await registeredExpiry('late-renew.org');

      const renewal = await world.services.orders.place(customer, { accountId: customer.accountId, items: [], domains: [{ action: 'renew', name: 'late-renew.org', years: 1 }] }, 'renewal');
      await drive(world.deps, world.clock, engine.worker);
      expect((await orderRow(world.deps.db, renewal.orderId)).status).to.equal('CP');
      const [late] = await tasksOf(SAGA_DOMAIN_LATE, renewal.orderId);
      expect([late!.status, toNumber(late!.attempts), JSON.parse(late!.payload).action]).to.deep.equal(['done', 2, 'renew_domain']);
      const oneYear = new Date(before);
      oneYear.setUTCFullYear(oneYear.getUTCFullYear() + 1);
      expect(toNumber((await domainRow('late-renew.org'))!.expires_at)).to.equal(oneYear.getTime());
      const [item] = await itemRows(renewal.orderId);
      const renews = (await asSandboxRegistrar(slowReg).journalEntries()).filter((e) => e.action === 'renew' && e.name === 'late-renew.org');
      expect(renews.map((e) => e.operationId)).to.deep.equal([item!.operation_id]);
      const renewed = (await world.deps.db('events').where({ name: 'domain.renewed' }).select('payload')) as { payload: string }[];
      expect(renewed.map((e) => JSON.parse(e.payload)).filter((p) => p.name === 'late-renew.org').map((p) => p.expiresAt)).to.deep.equal([oneYear.toISOString()]);
    });
});
});
