import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { accountWithApiUser, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { execute, ok } from '../api/xmlrpc/client';
import { eventually } from '../helpers/assertions';

/**
 * Deliveries of one object to one action go out in order, a later one waiting for the earlier. An event a caller
 * posts with TASKMAN PostEvent names its own ObjectType and ObjectID: it must not make the system's events of
 * someone else's object wait behind it.
 */
describe("a caller's posted event does not hold the deliveries of another account's object", function () {
  this.timeout(60_000);
  let world: ApiWorld;
  let server: http.Server;
  let hookUrl: string;
  const got: { name: string; objectType: string; objectId: string }[] = [];

  before(async () => {
    // A receiver that knows the system's events and answers 400 to anything else (as many do).
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as (typeof got)[number];
        got.push({ name: event.name, objectType: event.objectType, objectId: event.objectId });
        res.statusCode = event.name.startsWith('external.') ? 400 : 200;
        res.end(res.statusCode === 400 ? 'unknown event' : 'ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/all`;
    world = await startApiWorld();
  });
  after(async () => {
    await world?.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it("a customer's PostEvent naming another customer's account as its object; that account's own events still go out", async () => {
    const provider = await providerActor(world);
    const mallory = await accountWithApiUser(world, 'customer', 'Mallory Poster');
    const victim = await accountWithApiUser(world, 'customer', 'Victim Account');
    await world.server.services.eventActions.create(provider, { name: 'Everything', eventPattern: '*', type: 'webhook', config: { url: hookUrl, secret: 'all-events-secret-0123456789', timeoutMs: 2000 } });

    const reply = await execute(`${world.url}/RPC2`, { Server: 'TASKMAN', Method: 'PostEvent', Params: ['Ping', `ObjectType=account; ObjectID=${victim.accountId}`, 0], Username: mallory.login, Password: mallory.password });
    expect(ok(reply).Result[0]).to.deep.equal({ Status: 'Operation done.' });
    await eventually(async () => got.find((g) => g.name === 'external.ping'), 'the posted event at the receiver (refused there)', 8000);

    await world.server.services.accounts.update(provider, victim.accountId, { companyName: 'Victim Account renamed' });
    const delivered = await eventually(async () => got.find((g) => g.name === 'account.updated' && g.objectId === String(victim.accountId)), 'the victim account\u2019s own event', 8000);
    expect(delivered.objectType).to.equal('account');
  });
});
