import { expect } from 'chai';
import dns from 'node:dns';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import sinon from 'sinon';
import type { Actor } from '../../src/context';
import { deliveryHandlers } from '../../src/events/delivery';
import { EVENTS_QUEUE, EventDispatcher } from '../../src/events/dispatcher';
import { Worker } from '../../src/jobs/worker';
import { accountActor, makeWorld, type World } from '../helpers/world';

const SECRET = 'whsec-test-0123456789abcdef';

/**
 * A reseller's webhook must reach a public host. The DNS server is outside our walls, so it is faked here the way a
 * rebinding attacker's server answers: a public address to the first question, 127.0.0.1 to the next.
 */
describe("a reseller's webhook and the provider's network", function () {
  this.timeout(30_000);
  let world: World;
  let server: http.Server;
  let port: number;
  let hits: string[];
  let reseller: Actor;

  before(async () => {
    world = await makeWorld();
    hits = [];
    server = http.createServer((req, res) => {
      hits.push(`${req.method} ${req.url}`);
      req.resume();
      if (req.url === '/silent') return; // reads the request, never answers
      if (req.url === '/moved') {
        res.writeHead(302, { Location: `http://127.0.0.1:${port}/internal-target` });
        res.end();
        return;
      }
      if (req.url === '/endless') {
        // An answer whose body never ends: the server must not wait for (nor buffer) all of it.
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        const chunk = Buffer.alloc(64 * 1024, 'x');
        const pump = () => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', pump);
        };
        req.on('end', pump);
        return;
      }
      req.on('end', () => res.end('internal secret data'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    reseller = await accountActor(world, world.provider, 'reseller', 'Rebinding Reseller');
  });

  afterEach(() => sinon.restore());

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await world?.close();
  });

  async function deliverOnce(): Promise<{ status: string; last_error: string | null }[]> {
    const dispatcher = new EventDispatcher(world.deps, world.services.tasks);
    const worker = new Worker(world.deps, world.services.tasks, deliveryHandlers(world.deps, { dispatcher, notifications: world.services.notifications }), { owner: 'test-rebind', queues: [EVENTS_QUEUE], concurrency: 1 });
    await dispatcher.dispatchOnce();
    await worker.runOnce();
    return (await world.deps.db('event_deliveries as d').join('tasks as t', 't.id', 'd.task_id').orderBy('d.id').select('t.status', 't.last_error')) as { status: string; last_error: string | null }[];
  }

  /** Only a provider's webhook to `path` of the test's server, and a new customer whose account.created it gets. */
  async function providerHookAndEvent(name: string, urlPath: string, timeoutMs: number): Promise<void> {
    await world.deps.db('event_actions').del();
    await world.services.eventActions.create(world.provider, { name, eventPattern: 'account.created', type: 'webhook', config: { url: `http://127.0.0.1:${port}${urlPath}`, secret: SECRET, timeoutMs } });
    await world.deps.db('tasks').where({ queue: EVENTS_QUEUE }).del();
    await world.deps.db('event_deliveries').del();
    hits.length = 0;
    await accountActor(world, world.provider, 'customer', `${name} Customer`);
  }

  it('a name that resolves to a public address when checked and to 127.0.0.1 when connecting is not reached', async () => {
    const host = 'hooks.rebind.example';
    const answers = ['93.184.216.34', '127.0.0.1', '127.0.0.1', '127.0.0.1', '127.0.0.1'];
    let asked = 0;
    const answer = () => answers[Math.min(asked++, answers.length - 1)];
    const realPromises = dns.promises.lookup.bind(dns.promises);
    const realLookup = dns.lookup.bind(dns);
    sinon.stub(dns.promises, 'lookup').callsFake(((name: string, opts: dns.LookupOptions) => {
      if (name !== host) return realPromises(name, opts as dns.LookupAllOptions);
      const address = answer();
      return Promise.resolve(opts?.all ? [{ address, family: 4 }] : { address, family: 4 });
    }) as never);
    sinon.stub(dns, 'lookup').callsFake(((name: string, opts: unknown, cb?: unknown) => {
      const callback = (typeof opts === 'function' ? opts : cb) as (e: Error | null, a: unknown, f?: number) => void;
      const options = (typeof opts === 'object' && opts !== null ? opts : {}) as dns.LookupOptions;
      if (name !== host) return (realLookup as (...a: unknown[]) => void)(name, opts, cb);
      const address = answer();
      process.nextTick(() => (options.all ? callback(null, [{ address, family: 4 }]) : callback(null, address, 4)));
    }) as never);

    await world.services.eventActions.create(reseller, { name: 'Rebind', eventPattern: 'account.created', type: 'webhook', config: { url: `http://${host}:${port}/hook`, secret: SECRET, timeoutMs: 2000 } });
    await accountActor(world, reseller, 'customer', 'Rebind Customer');
    const [task] = await deliverOnce();

    expect(hits, 'the internal service was reached').to.deep.equal([]);
    expect(task.status).to.equal('pending');
    expect(task.last_error).to.contain('127.0.0.1').and.contain('local or private address');
  });

  it('a receiver that never answers fails the attempt at the action\u2019s timeout', async () => {
    await providerHookAndEvent('Silent', '/silent', 300);
    const started = Date.now();
    const [task] = await deliverOnce();
    expect(Date.now() - started).to.be.below(3000);
    expect(task.status).to.equal('pending');
    expect(task.last_error).to.match(/^POST http:\/\/127\.0\.0\.1:\d+\/silent failed: no answer within 300 ms$/);
  });

  it('a redirect is not followed: a 3xx is a failed attempt, and its Location is never asked', async () => {
    await providerHookAndEvent('Moved', '/moved', 2000);
    const [task] = await deliverOnce();
    expect(hits).to.deep.equal(['POST /moved']);
    expect(task.status).to.equal('pending');
    expect(task.last_error).to.match(/^HTTP 302 from http:\/\/127\.0\.0\.1:\d+\/moved$/);
  });

  it('an answer with an endless body is cut short: the attempt fails at once, not at the timeout', async () => {
    await providerHookAndEvent('Endless', '/endless', 8000);
    const started = Date.now();
    const [task] = await deliverOnce();
    expect(Date.now() - started, 'waited for the endless body').to.be.below(4000);
    expect(task.last_error).to.match(/^HTTP 500 from http:\/\/127\.0\.0\.1:\d+\/endless: x{100}/);
  });
});
