import { expect } from 'chai';
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { deliveryHandlers } from '../../src/events/delivery';
import { EVENTS_QUEUE, EventDispatcher } from '../../src/events/dispatcher';
import { Worker } from '../../src/jobs/worker';
import { accountWithApiUser, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { execute, ok } from '../api/xmlrpc/client';
import { ADMIN } from '../api/xmlrpc/client';
import { orderWorld, type OrderWorld } from '../subscriptions/order-world';

const DAY = 86_400_000;

async function insertSubscription(db: ApiWorld['fresh']['db'], s: { accountId: number; vendorId: number; planId: number; periodId: number; name: string; expiresAt: number; now: number }): Promise<number> {
  const [id] = (await db('subscriptions').insert({
    account_id: s.accountId,
    vendor_id: s.vendorId,
    plan_id: s.planId,
    period_id: s.periodId,
    name: s.name,
    status: 30,
    service_status: 50,
    service_gate: 'sandbox',
    parameters: '{}',
    start_date: s.now,
    expiration_date: s.expiresAt,
    created_at: s.now,
    updated_at: s.now,
  })) as number[];
  return Number(id);
}

describe('notification schedules: "7 and 1 days before expiration", each sent once', function () {
  this.timeout(60_000);
  let ow: OrderWorld;

  before(async () => {
    ow = await orderWorld();
  });
  after(async () => {
    await ow?.world.close();
  });

  it('emits subscription.expiring once per (subscription, offset), only the nearest due offset, and a notification action mails it', async () => {
    const { world } = ow;
    const { notificationSchedules, eventActions, notifications } = world.services;
    const set = await notificationSchedules.set(world.provider, { basis: 'expiration', daysBefore: [1, 7, 7] });
    expect(set.map((s) => s.daysBefore)).to.deep.equal([7, 1]);
    await eventActions.create(world.provider, { name: 'Expiry mail', eventPattern: 'subscription.expiring', type: 'notification', config: {} });
    const now = world.clock.now().getTime();
    const soon = await insertSubscription(world.deps.db, { accountId: ow.customer.accountId, vendorId: world.provider.accountId, planId: ow.basic, periodId: ow.monthly, name: 'carol.example', expiresAt: now + 10 * DAY, now });
    // Found only 12 hours before it expires: the 1-day reminder, not the 7-day one as well.
    const late = await insertSubscription(world.deps.db, { accountId: ow.customer.accountId, vendorId: world.provider.accountId, planId: ow.basic, periodId: ow.monthly, name: 'late.example', expiresAt: now + DAY / 2, now });

    const expiring = async () =>
      ((await world.deps.db('events').where({ name: 'subscription.expiring' }).orderBy('id')) as { object_id: string; payload: string }[]).map((e) => ({ id: Number(e.object_id), days: (JSON.parse(e.payload) as { daysBefore: number }).daysBefore }));

    expect(await notificationSchedules.scan()).to.equal(1);
    expect(await expiring()).to.deep.equal([{ id: late, days: 1 }]);
    world.clock.advance(3 * DAY + 1); // 7 days minus 1 ms before `soon` expires
    expect(await notificationSchedules.scan()).to.equal(1);
    expect(await notificationSchedules.scan(), 'a second scan sends nothing again').to.equal(0);
    world.clock.advance(DAY);
    expect(await notificationSchedules.scan()).to.equal(0);
    world.clock.advance(5 * DAY); // 1 day minus 1 ms left
    expect(await notificationSchedules.scan()).to.equal(1);
    expect(await notificationSchedules.scan()).to.equal(0);
    expect(await expiring()).to.deep.equal([
      { id: late, days: 1 },
      { id: soon, days: 7 },
      { id: soon, days: 1 },
    ]);

    const dispatcher = new EventDispatcher(world.deps, world.services.tasks);
    const worker = new Worker(world.deps, world.services.tasks, deliveryHandlers(world.deps, { dispatcher, notifications }), { owner: 'schedules-test', queues: [EVENTS_QUEUE] });
    for (let i = 0; i < 10; i++) {
      await dispatcher.dispatchOnce();
      if ((await worker.runOnce()) === 0) break;
    }
    const mail = (await notifications.listSpool(world.provider, { accountId: ow.customer.accountId })).items.filter((m) => m.template === 'subscription.expiring');
    expect(mail.map((m) => m.subject).sort()).to.deep.equal(['Subscription carol.example expires in 1 day(s)', 'Subscription carol.example expires in 7 day(s)', 'Subscription late.example expires in 1 day(s)']);
    expect(mail.every((m) => m.to === 'carol@example.com')).to.equal(true);
  });

  it('validates the offsets', async () => {
    const e = (await ow.world.services.notificationSchedules.set(ow.world.provider, { daysBefore: [0] }).then(() => null, (x: unknown) => x)) as { code: string; field: string } | null;
    expect(e).to.include({ code: 'INVALID_ARGUMENT', field: 'daysBefore' });
    const c = (await ow.world.services.notificationSchedules.set(ow.customer, { daysBefore: [7] }).then(() => null, (x: unknown) => x)) as { code: string; field: string } | null;
    expect(c).to.include({ code: 'INVALID_ARGUMENT', field: 'vendorAccountId' });
  });
});

describe('the PBA doors through real XML-RPC bytes: TASKMAN PostEvent, MESSAGE SendSubscriptionNotificationForUser_API', function () {
  this.timeout(60_000);
  let world: ApiWorld;
  let rpc: string;
  const secret = 'pba-door-secret-0123456789';
  const got: { event: { name: string; objectType: string; objectId: string; accountId: number; payload: Record<string, string> }; verified: boolean }[] = [];
  let server: http.Server;
  let hookUrl: string;

  async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
    for (const end = Date.now() + 15_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
      const v = await probe();
      if (v !== undefined) return v;
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  before(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const [t, v1] = String(req.headers['x-hostwright-signature']).split(',').map((p) => p.split('=')[1]);
        const expected = crypto.createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
        got.push({ event: JSON.parse(body) as (typeof got)[number]['event'], verified: v1 === expected && Math.abs(Date.now() / 1000 - Number(t)) < 300 });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/pba`;
    world = await startApiWorld({ demo: true });
    rpc = `${world.url}/RPC2`;
  });
  after(async () => {
    await world?.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('PostEvent puts the caller\'s event (under external.) into the outbox; the running dispatcher delivers it to a webhook', async () => {
    const provider = await providerActor(world);
    await world.server.services.eventActions.create(provider, { name: 'PBA events', eventPattern: 'external.*', type: 'webhook', config: { url: hookUrl, secret } });
    const reply = await execute(rpc, { Server: 'TASKMAN', Method: 'PostEvent', Params: ['OrderShipped', 'ObjectType=shipment; ObjectID=77; Carrier=UPS', 0], ...ADMIN });
    expect(ok(reply).Result[0]).to.deep.equal({ Status: 'Operation done.' });
    const delivered = await until('the webhook', async () => got.find((g) => g.event.name === 'external.order_shipped'));
    expect(delivered.verified).to.equal(true);
    expect(delivered.event).to.include({ objectType: 'shipment', objectId: '77', accountId: provider.accountId });
    expect(delivered.event.payload).to.include({ Carrier: 'UPS', ObjectID: '77' });
    const audit = (await world.fresh.db('audit_log').where({ operation: 'PostEvent' }).first('object_type', 'object_id')) as { object_type: string; object_id: string };
    expect(audit).to.deep.equal({ object_type: 'shipment', object_id: '77' });
    // A malformed Params string names the parameter.
    const bad = await execute(rpc, { Server: 'TASKMAN', Method: 'PostEvent', Params: ['X', 'no pair here', 0], ...ADMIN });
    expect(bad.fault?.faultString).to.contain('Params[1] (Params)');
  });

  it("SendSubscriptionNotificationForUser_API renders the template for the subscription and mails the account's user (spool)", async () => {
    const provider = await providerActor(world);
    const customer = await accountWithApiUser(world, 'customer', 'Door Customer');
    const plan = (await world.fresh.db('plan_periods').first('id', 'plan_id')) as { id: number; plan_id: number };
    const now = Date.now();
    const sub = await insertSubscription(world.fresh.db, { accountId: customer.accountId, vendorId: provider.accountId, planId: Number(plan.plan_id), periodId: Number(plan.id), name: 'door.example', expiresAt: now + 3 * DAY, now });
    await world.server.services.notifications.createTemplate(provider, { name: 'custom.reminder', subject: 'About {{ subscription.name }}', html: '<p>{{ params.Note }} for {{ contact.firstName }}</p>', text: '{{ params.Note }}' });
    const reply = await execute(rpc, { Server: 'MESSAGE', Method: 'SendSubscriptionNotificationForUser_API', Params: ['custom.reminder', sub, customer.userId, 'Note', 'Renew <now>'], ...ADMIN });
    expect(ok(reply).Result[0]).to.deep.equal({ Status: 'Operation done.' });
    const mail = await until('the spooled mail', async () => (await world.server.services.notifications.listSpool(provider, { accountId: customer.accountId })).items.find((m) => m.template === 'custom.reminder'));
    expect(mail).to.include({ to: `${customer.login}@example.com`, subject: 'About door.example', html: '<p>Renew &lt;now&gt; for Door Customer</p>', text: 'Renew <now>', status: 'spooled' });
    // Someone else's user id answers like a missing one.
    const other = await accountWithApiUser(world, 'customer', 'Door Stranger');
    const refused = await execute(rpc, { Server: 'MESSAGE', Method: 'SendSubscriptionNotificationForUser_API', Params: ['custom.reminder', sub, other.userId], ...ADMIN });
    expect(refused.fault?.faultString).to.contain(`does not contain row with ID ${other.userId}`);
  });
});
