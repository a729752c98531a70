import { expect } from 'chai';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Actor } from '../../src/context';
import { deliveryHandlers } from '../../src/events/delivery';
import { EVENTS_QUEUE, EventDispatcher, PARKED_AT } from '../../src/events/dispatcher';
import { retryDelay } from '../../src/jobs/backoff';
import { Worker } from '../../src/jobs/worker';
import { accountActor, makeWorld, type World } from '../helpers/world';

/** A webhook receiver in the test: verifies each signature as docs/webhooks.md shows, answers from a script. */
interface Receiver {
  url: string;
  /** Every request, verified or not. */
  got: { body: string; event: { id: number; name: string; objectId: string; payload: Record<string, unknown> }; verified: boolean; t: number }[];
  /** Status codes to answer, in turn; 200 once they run out. */
  answers: number[];
  close(): Promise<void>;
}

const SECRET = 'whsec-test-0123456789abcdef';

/** The receiver side of docs/webhooks.md: HMAC-SHA256 over "<t>.<body>", compared in constant time. */
function verify(secret: string, header: string | undefined, body: string, nowSeconds: number, toleranceSeconds = 300): { ok: boolean; t: number } {
  const parts = Object.fromEntries((header ?? '').split(',').map((kv) => kv.split('=') as [string, string]));
  const t = Number(parts.t);
  const expected = crypto.createHmac('sha256', secret).update(`${parts.t}.${body}`).digest('hex');
  const given = Buffer.from(parts.v1 ?? '', 'hex');
  const ok = given.length === 32 && crypto.timingSafeEqual(given, Buffer.from(expected, 'hex')) && Math.abs(nowSeconds - t) <= toleranceSeconds;
  return { ok, t };
}

async function receiver(nowSeconds: () => number): Promise<Receiver> {
  const r: Receiver = {
    url: '',
    got: [],
    answers: [],
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const { ok, t } = verify(SECRET, req.headers['x-hostwright-signature'] as string | undefined, body, nowSeconds());
      r.got.push({ body, event: JSON.parse(body) as Receiver['got'][number]['event'], verified: ok, t });
      res.statusCode = r.answers.length ? r.answers.shift()! : ok ? 200 : 401;
      res.end(res.statusCode === 200 ? 'ok' : 'receiver says no');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return r;
}

describe('event delivery: dispatcher, webhooks, scripts, notifications', function () {
  this.timeout(60_000);
  let world: World;
  let dispatcher: EventDispatcher;
  let worker: Worker;
  let hook: Receiver;
  let tmp: string;

  /** Dispatches until the outbox is empty, runs what is due, repeats while anything moved. */
  async function settle(): Promise<void> {
    for (let i = 0; i < 50; i++) {
      const d = await dispatcher.dispatchOnce();
      const ran = await worker.runOnce();
      if (d.events === 0 && d.released === 0 && ran === 0) return;
    }
  }

  async function deliveryTasks(actionId: number) {
    const rows = (await world.deps.db('event_deliveries as d').join('tasks as t', 't.id', 'd.task_id').join('events as e', 'e.id', 'd.event_id').where('d.action_id', actionId).orderBy('d.id').select(
      't.id',
      't.status',
      't.attempts',
      't.last_error',
      't.run_at',
      'e.name',
      'e.object_id',
    )) as { id: number; status: string; attempts: number; last_error: string | null; run_at: number; name: string; object_id: string }[];
    return rows.map((r) => ({ ...r, id: Number(r.id), attempts: Number(r.attempts), run_at: Number(r.run_at) }));
  }

  before(async () => {
    world = await makeWorld();
    hook = await receiver(() => Math.floor(world.clock.now().getTime() / 1000));
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hw-events-'));
  });

  beforeEach(async () => {
    // Each test starts with no actions and an empty outbox (earlier events dispatched to nobody).
    await world.deps.db('event_actions').del();
    dispatcher = new EventDispatcher(world.deps, world.services.tasks);
    worker = new Worker(world.deps, world.services.tasks, deliveryHandlers(world.deps, { dispatcher, notifications: world.services.notifications }), { owner: 'test-events', queues: [EVENTS_QUEUE], concurrency: 4 });
    await settle();
    hook.got.length = 0;
    hook.answers.length = 0;
  });

  after(async () => {
    await hook?.close();
    await world?.close();
  });

  it('POSTs the event JSON signed with X-Hostwright-Signature; the receiver verifies it; the task ends done', async () => {
    const action = await world.services.eventActions.create(world.provider, { name: 'CRM', eventPattern: 'account.*', type: 'webhook', config: { url: hook.url, secret: SECRET, timeoutMs: 2000 } });
    expect(action.config.secret, 'the secret is never shown').to.equal('********');
    const stored = (await world.deps.db('event_actions').where({ id: action.actionId }).first('secret_enc', 'config')) as { secret_enc: string; config: string };
    expect(stored.secret_enc).not.to.contain(SECRET);
    expect(stored.config).not.to.contain(SECRET);

    const customer = await accountActor(world, world.provider, 'customer', 'Signed Customer');
    await settle();

    expect(hook.got).to.have.length(1);
    const [got] = hook.got;
    expect(got.verified, 'signature verified by the receiver').to.equal(true);
    expect(got.t).to.equal(Math.floor(world.clock.now().getTime() / 1000));
    expect(got.event).to.include({ name: 'account.created', objectId: String(customer.accountId) });
    expect(Object.keys(got.event).sort()).to.deep.equal(['accountId', 'id', 'name', 'objectId', 'objectType', 'occurredAt', 'payload']);
    // A wrong secret does not verify: the check is real.
    expect(verify('another-secret-0123456789', `t=${got.t},v1=${crypto.createHmac('sha256', SECRET).update(`${got.t}.${got.body}`).digest('hex')}`, got.body + ' ', got.t).ok).to.equal(false);

    const [task] = await deliveryTasks(action.actionId);
    expect(task).to.include({ status: 'done', attempts: 1, name: 'account.created' });
    const listed = await world.services.tasks.list(world.provider, { queue: EVENTS_QUEUE, objectType: 'account', objectId: customer.accountId });
    expect(listed.items.map((t) => t.taskId)).to.include(task.id);
    const attempts = (await world.deps.db('delivery_attempts').where({ task_id: task.id })) as { outcome: string; detail: string }[];
    expect(attempts.map((a) => a.outcome)).to.deep.equal(['ok']);
    expect(attempts[0].detail).to.contain('HTTP 200').and.not.contain(SECRET);
  });

  it('a receiver that fails twice then succeeds gets the event once more each time, after the backoff; the delivery ends done', async () => {
    const action = await world.services.eventActions.create(world.provider, { name: 'Flaky', eventPattern: 'account.created', type: 'webhook', config: { url: hook.url, secret: SECRET } });
    hook.answers.push(500, 503);
    const customer = await accountActor(world, world.provider, 'customer', 'Flaky Customer');
    await settle();
    expect(hook.got).to.have.length(1);
    let [task] = await deliveryTasks(action.actionId);
    expect(task).to.include({ status: 'pending', attempts: 1 });
    expect(task.last_error).to.contain('HTTP 500').and.contain('receiver says no');

    // Not before its backoff ...
    world.clock.advance(retryDelay(1, task.id) - 1);
    await settle();
    expect(hook.got).to.have.length(1);
    // ... then once more.
    world.clock.advance(1);
    await settle();
    expect(hook.got).to.have.length(2);
    [task] = await deliveryTasks(action.actionId);
    expect(task).to.include({ status: 'pending', attempts: 2 });
    expect(task.last_error).to.contain('HTTP 503');

    world.clock.advance(retryDelay(2, task.id));
    await settle();
    expect(hook.got).to.have.length(3);
    [task] = await deliveryTasks(action.actionId);
    expect(task).to.include({ status: 'done', attempts: 3 });
    // The same event each time, each time signed.
    expect(new Set(hook.got.map((g) => g.event.id)).size).to.equal(1);
    expect(hook.got.every((g) => g.verified && g.event.objectId === String(customer.accountId))).to.equal(true);
    const attempts = await world.services.eventActions.attempts(world.provider, task.id);
    expect(attempts.map((a) => a.outcome)).to.deep.equal(['failed', 'failed', 'ok']);
    expect(attempts.map((a) => a.attempt)).to.deep.equal([1, 2, 3]);
    expect(attempts[0].detail).to.contain('HTTP 500');
    const deliveries = await world.services.eventActions.listDeliveries(world.provider, { actionId: action.actionId });
    expect(deliveries.items.map((d) => ({ eventName: d.eventName, status: d.status, attempts: d.attempts, taskId: d.taskId }))).to.deep.equal([{ eventName: 'account.created', status: 'done', attempts: 3, taskId: task.id }]);
  });

  it('delivers in order per object: a later event of the same object waits for the earlier delivery, others do not', async () => {
    const action = await world.services.eventActions.create(world.provider, { name: 'Ordered', eventPattern: 'account.*', type: 'webhook', config: { url: hook.url, secret: SECRET } });
    const a = await accountActor(world, world.provider, 'customer', 'Ordered A');
    await world.services.accounts.update(world.provider, a.accountId, { companyName: 'Ordered A renamed' });
    hook.answers.push(500); // account.created of A fails once
    const dispatched = await dispatcher.dispatchOnce();
    expect(dispatched.deliveries).to.equal(2);
    let tasks = await deliveryTasks(action.actionId);
    expect(tasks.map((t) => t.name)).to.deep.equal(['account.created', 'account.updated']);
    expect(tasks[1].run_at, 'the later one is parked').to.equal(PARKED_AT);

    await settle();
    expect(hook.got.map((g) => g.event.name)).to.deep.equal(['account.created']);
    // Another object's event is not held up by A's failing delivery.
    const b = await accountActor(world, world.provider, 'customer', 'Ordered B');
    await settle();
    expect(hook.got.map((g) => `${g.event.name}:${g.event.objectId}`)).to.deep.equal([`account.created:${a.accountId}`, `account.created:${b.accountId}`]);
    tasks = await deliveryTasks(action.actionId);
    expect(tasks.find((t) => t.name === 'account.updated')!.status).to.equal('pending');

    world.clock.advance(retryDelay(1, tasks[0].id));
    await settle();
    expect(hook.got.map((g) => `${g.event.name}:${g.event.objectId}`)).to.deep.equal([
      `account.created:${a.accountId}`,
      `account.created:${b.accountId}`,
      `account.created:${a.accountId}`,
      `account.updated:${a.accountId}`,
    ]);
    tasks = await deliveryTasks(action.actionId);
    expect(tasks.map((t) => t.status)).to.deep.equal(['done', 'done', 'done']);
  });

  it('a failed delivery holds the next one of its object until an operator retries it', async () => {
    const action = await world.services.eventActions.create(world.provider, { name: 'Dead', eventPattern: 'account.*', type: 'webhook', config: { url: 'http://127.0.0.1:9/nothing-listens', secret: SECRET, timeoutMs: 500 } });
    const a = await accountActor(world, world.provider, 'customer', 'Held A');
    await world.services.accounts.update(world.provider, a.accountId, { companyName: 'Held A renamed' });
    await dispatcher.dispatchOnce();
    await world.deps.db('tasks').where({ queue: EVENTS_QUEUE, status: 'pending' }).update({ max_attempts: 1 });
    await settle();
    let tasks = await deliveryTasks(action.actionId);
    expect(tasks.map((t) => t.status)).to.deep.equal(['failed', 'pending']);
    expect(tasks[0].last_error).to.contain('POST http://127.0.0.1:9/nothing-listens failed');
    expect(tasks[1].run_at).to.equal(PARKED_AT);
    // The operator points the action at a working receiver and retries the failed delivery.
    await world.services.eventActions.update(world.provider, action.actionId, { config: { url: hook.url } });
    await world.services.tasks.retry(world.provider, tasks[0].id);
    await settle();
    expect(hook.got.map((g) => g.event.name)).to.deep.equal(['account.created', 'account.updated']);
    tasks = await deliveryTasks(action.actionId);
    expect(tasks.map((t) => t.status)).to.deep.equal(['done', 'done']);
  });

  it("a reseller's action gets the events of its subtree only; the provider's gets every event", async () => {
    const reseller = await accountActor(world, world.provider, 'reseller', 'Scoped Reseller');
    const other = await accountActor(world, world.provider, 'reseller', 'Other Reseller');
    await settle(); // their own account.created events went out before the action existed
    // A reseller may not point a webhook into the provider's network, nor run scripts on the server ...
    const refused = (await world.services.eventActions.create(reseller, { name: 'Inside', eventPattern: '*', type: 'webhook', config: { url: hook.url, secret: SECRET } }).then(() => null, (x: unknown) => x)) as { code: string; field: string };
    expect(refused).to.include({ code: 'INVALID_ARGUMENT', field: 'config.url' });
    const script = (await world.services.eventActions.create(reseller, { name: 'Script', eventPattern: '*', type: 'script', config: { path: '/bin/true' } }).then(() => null, (x: unknown) => x)) as { code: string; field: string };
    expect(script).to.include({ code: 'NOT_ALLOWED', field: 'type' });
    // ... unless the operator allows private networks (this test's receiver listens on 127.0.0.1).
    world.deps.config.webhookAllowPrivateNetworks = true;
    let mine;
    try {
      mine = await world.services.eventActions.create(reseller, { name: 'Mine', eventPattern: 'account.created', type: 'webhook', config: { url: hook.url, secret: SECRET } });
    } finally {
      world.deps.config.webhookAllowPrivateNetworks = false;
    }
    const theirs = await accountActor(world, other, 'customer', 'Not Mine');
    const own = await accountActor(world, reseller, 'customer', 'Is Mine');
    await settle();
    // Switched off again before delivery: the address is checked again, and the attempt refused.
    expect(hook.got).to.have.length(0);
    const [refusedTask] = await deliveryTasks(mine.actionId);
    expect(refusedTask.last_error).to.contain('resolves to 127.0.0.1, a local or private address');
    world.deps.config.webhookAllowPrivateNetworks = true;
    try {
      world.clock.advance(retryDelay(1, refusedTask.id));
      await settle();
    } finally {
      world.deps.config.webhookAllowPrivateNetworks = false;
    }
    expect(hook.got.map((g) => g.event.objectId)).to.deep.equal([String(own.accountId)]);
    expect(theirs.accountId).to.be.a('number');
    // The reseller sees the events of its subtree only, and its own deliveries.
    const events = await world.services.eventActions.listEvents(reseller, { name: 'account.*' });
    expect(events.items.map((e) => e.objectId)).to.include(String(own.accountId)).and.not.include(String(theirs.accountId));
    expect((await world.services.eventActions.listDeliveries(reseller)).items.map((d) => d.objectId)).to.deep.equal([String(own.accountId)]);
    expect((await world.services.eventActions.listDeliveries(other)).total).to.equal(0);
    // The reseller sees its deliveries among its tasks; the other reseller cannot reach its action.
    const visible = await world.services.tasks.list(reseller, { queue: EVENTS_QUEUE });
    expect(visible.items).to.have.length(1);
    await world.services.eventActions.get(other, mine.actionId).then(
      () => expect.fail('another reseller read the action'),
      (e: { code: string }) => expect(e.code).to.equal('NOT_FOUND'),
    );
  });

  it('validates actions with the field at fault, and audits their changes', async () => {
    const bad = async (input: Record<string, unknown>, field: string) => {
      const e = (await world.services.eventActions.create(world.provider, input as never).then(() => null, (x: unknown) => x)) as { code: string; field: string } | null;
      expect(e, JSON.stringify(input)).to.not.equal(null);
      expect(e!.code).to.equal('INVALID_ARGUMENT');
      expect(e!.field).to.equal(field);
    };
    await bad({ name: 'x', eventPattern: 'Order Placed', type: 'webhook', config: { url: hook.url, secret: SECRET } }, 'eventPattern');
    await bad({ name: 'x', eventPattern: 'order.*', type: 'fax', config: {} }, 'type');
    await bad({ name: 'x', eventPattern: 'order.*', type: 'webhook', config: { url: 'ftp://x', secret: SECRET } }, 'config.url');
    await bad({ name: 'x', eventPattern: 'order.*', type: 'webhook', config: { url: hook.url, secret: 'short' } }, 'config.secret');
    await bad({ name: 'x', eventPattern: 'order.*', type: 'script', config: { path: 'relative.sh' } }, 'config.path');
    await bad({ name: 'x', eventPattern: 'order.*', type: 'script', config: { path: path.join(tmp, 'missing.sh') } }, 'config.path');
    await bad({ name: 'x', eventPattern: 'order.*', type: 'script', config: { path: tmp } }, 'config.path'); // a directory: searchable, not runnable
    await bad({ name: 'x', eventPattern: 'order.*', type: 'notification', config: { recipient: 'everyone' } }, 'config.recipient');
    const a = await world.services.eventActions.create(world.provider, { name: 'Audited', eventPattern: 'order.*', type: 'notification', config: {} });
    await world.services.eventActions.update(world.provider, a.actionId, { enabled: false });
    await world.services.eventActions.remove(world.provider, a.actionId);
    const ops = (await world.deps.db('audit_log').where({ object_type: 'event_action', object_id: String(a.actionId) }).orderBy('id').pluck('operation')) as string[];
    expect(ops).to.deep.equal(['CreateEventAction', 'UpdateEventAction', 'DeleteEventAction']);
  });

  describe('script actions', () => {
    function script(name: string, body: string): string {
      const file = path.join(tmp, name);
      fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
      return file;
    }

    it('runs the executable with the event JSON on stdin', async () => {
      const out = path.join(tmp, 'stdin.json');
      const action = await world.services.eventActions.create(world.provider, { name: 'Script', eventPattern: 'account.created', type: 'script', config: { path: script('save.sh', 'cat > "$1"'), args: [out] } });
      const c = await accountActor(world, world.provider, 'customer', 'Script Customer');
      await settle();
      const got = JSON.parse(fs.readFileSync(out, 'utf8')) as { name: string; objectId: string; payload: { accountId: number } };
      expect(got).to.include({ name: 'account.created', objectId: String(c.accountId) });
      expect(got.payload.accountId).to.equal(c.accountId);
      const [task] = await deliveryTasks(action.actionId);
      expect(task.status).to.equal('done');
    });

    it('a non-zero exit is a failed attempt with stderr (truncated) as the last error', async () => {
      const action = await world.services.eventActions.create(world.provider, { name: 'Failing', eventPattern: 'account.created', type: 'script', config: { path: script('fail.sh', `cat > /dev/null; printf 'boom %.0s' $(seq 1 400) >&2; exit 3`) } });
      await accountActor(world, world.provider, 'customer', 'Script Failure');
      await settle();
      const [task] = await deliveryTasks(action.actionId);
      expect(task.status).to.equal('pending');
      expect(task.last_error).to.match(/fail\.sh exited 3: boom boom/);
      expect(task.last_error!.length).to.be.below(1200);
    });

    it('a script that runs past its timeout is killed and the attempt fails', async () => {
      const action = await world.services.eventActions.create(world.provider, { name: 'Slow', eventPattern: 'account.created', type: 'script', config: { path: script('slow.sh', 'sleep 10'), timeoutMs: 300 } });
      await accountActor(world, world.provider, 'customer', 'Script Timeout');
      const started = Date.now();
      await settle();
      expect(Date.now() - started).to.be.below(5000);
      const [task] = await deliveryTasks(action.actionId);
      expect(task.status).to.equal('pending');
      expect(task.last_error).to.contain('did not finish within 300 ms and was killed');
    });
    it('a script that exits 0 leaving a background process behind succeeded: it is not killed as late nor run again', async () => {
      const runs = path.join(tmp, 'runs.txt');
      // Fire and forget: the background job inherits the script's stdout and stderr, and outlives it.
      const action = await world.services.eventActions.create(world.provider, { name: 'Forks', eventPattern: 'account.created', type: 'script', config: { path: script('fork.sh', `cat > /dev/null; echo run >> "$1"; sleep 5 & echo started`), args: [runs], timeoutMs: 1500 } });
      await accountActor(world, world.provider, 'customer', 'Script Fork');
      const started = Date.now();
      await settle();
      expect(Date.now() - started, 'waited for the background job').to.be.below(1400);
      const [task] = await deliveryTasks(action.actionId);
      expect(task.status, task.last_error ?? '').to.equal('done');
      expect(fs.readFileSync(runs, 'utf8')).to.equal('run\n');
      const [attempt] = (await world.deps.db('delivery_attempts').where({ task_id: task.id })) as { outcome: string; detail: string }[];
      expect(attempt).to.include({ outcome: 'ok' });
      expect(attempt.detail).to.contain('fork.sh exited 0: started');
    });
  });

  describe('notifications', () => {
    let reseller: Actor;

    before(async () => {
      reseller = await accountActor(world, world.provider, 'reseller', 'Template Reseller');
      await world.services.notifications.createTemplate(world.provider, {
        name: 'account.created',
        language: 'en',
        subject: 'Welcome {{ account.companyName }}',
        html: '<p>Hello {{ account.companyName }}, from {{ vendor.companyName }}</p>',
        text: 'Hello {{ account.companyName }}, from {{ vendor.companyName }}',
      });
    });

    it("renders the vendor's template (falling back to its parent's) with HTML auto-escaping into the spool", async () => {
      await world.services.eventActions.create(reseller, { name: 'Welcome', eventPattern: 'account.created', type: 'notification', config: { recipient: 'billing' } });
      const evil = await accountActor(world, reseller, 'customer', '<b>Evil & Co</b>');
      await settle();
      const spool = await world.services.notifications.listSpool(reseller, { accountId: evil.accountId });
      expect(spool.items).to.have.length(1);
      const [mail] = spool.items;
      expect(mail).to.include({ status: 'spooled', template: 'account.created', to: 'bevilcob@example.com' });
      expect(mail.html).to.equal('<p>Hello &lt;b&gt;Evil &amp; Co&lt;/b&gt;, from Template Reseller</p>');
      expect(mail.text).to.equal('Hello <b>Evil & Co</b>, from Template Reseller');
      expect(mail.subject).to.equal('Welcome <b>Evil & Co</b>');

      // The reseller's own template wins over the provider's from now on.
      await world.services.notifications.createTemplate(reseller, { name: 'account.created', subject: 'Hi {{ account.companyName }}', html: '<p>Own {{ account.companyName }}</p>', text: 'Own' });
      const next = await accountActor(world, reseller, 'customer', 'Second');
      await settle();
      const [second] = (await world.services.notifications.listSpool(reseller, { accountId: next.accountId })).items;
      expect(second.html).to.equal('<p>Own Second</p>');
      // The provider sees the spool of its whole subtree; another reseller sees none of it.
      expect((await world.services.notifications.listSpool(world.provider, { accountId: next.accountId })).total).to.equal(1);
      const stranger = await accountActor(world, world.provider, 'reseller', 'Stranger');
      expect((await world.services.notifications.listSpool(stranger)).total).to.equal(0);
    });

    it('refuses a template with a syntax error, naming the field; a template cannot reach constructors', async () => {
      const e = (await world.services.notifications
        .createTemplate(reseller, { name: 'order.placed', subject: 'ok', html: '<p>{% if %}</p>', text: 'ok' })
        .then(() => null, (x: unknown) => x)) as { code: string; field: string } | null;
      expect(e).to.include({ code: 'INVALID_ARGUMENT', field: 'html' });
      const t = await world.services.notifications.createTemplate(reseller, { name: 'order.completed', subject: 'x', html: '[{{ "".constructor }}|{{ account.__proto__ }}]', text: '[{{ account.constructor }}]' });
      const out = world.services.notifications.render(t, { account: { companyName: 'x' } });
      expect(out.html).to.equal('[|]');
      expect(out.text).to.equal('[]');
      // The classic escape to Function() finds nothing to call.
      expect(() => world.services.notifications.render({ subject: 'x', text: 'x', html: '{{ "".constructor.constructor("return process")().pid }}' }, {})).to.throw(/Unable to call/);
      // An endless loop is cut off after the render time limit instead of stalling the server.
      const started = Date.now();
      expect(() => world.services.notifications.render({ subject: 'x', text: 'x', html: '{% for i in range(0, 1000000000) %}{{ i }}{% endfor %}' }, {})).to.throw(/took longer than 1000 ms/);
      expect(Date.now() - started).to.be.below(3000);
      const audited = (await world.deps.db('audit_log').where({ object_type: 'notification_template', object_id: String(t.templateId) }).pluck('operation')) as string[];
      expect(audited).to.deep.equal(['CreateNotificationTemplate']);
    });

    it('uses the built-in default when no vendor has a template', async () => {
      const resolved = await world.services.notifications.resolveTemplate(world.deps.db, reseller.accountId, 'payment.declined', 'de');
      expect(resolved!.source).to.equal('built-in');
      expect(await world.services.notifications.resolveTemplate(world.deps.db, reseller.accountId, 'no.such_template', 'en')).to.equal(null);
    });
  });
});
