import { expect } from 'chai';
import { XMLRPC_FAULT_CODES } from '../../src/api/api-errors';
import { ManualClock } from '../../src/clock';
import type { Config } from '../../src/config';
import { createDb, type Db } from '../../src/db/knex';
import { startServer, type RunningServer } from '../../src/server';
import { ADMIN_PASSWORD, accountWithApiUser, startApiWorld, type ApiWorld } from '../helpers/api';
import { dialect } from '../helpers/db';
import { quietLog, testConfig } from '../helpers/world';
import { execute, fault, result } from './xmlrpc/client';

// Two server processes behind one load balancer, sharing one database: A and B, each with its own sign-in cache.
// A client signed in through B (cached there); the change goes through A; B must refuse the old sign-in once it
// has read the sign-in changes (the poll is triggered by hand where the test needs to see both sides of it).
describe('sign-in cache across server processes (two servers, one database)', () => {
  let a: ApiWorld;
  let clock: ManualClock;
  const others: { server: RunningServer; db?: Db }[] = [];
  let serial = 0;
  const config: Partial<Config> = { trustProxy: true, authFailureLimit: 3, authCachePollMs: 60_000 };

  /** Another server on A's database (on MariaDB with a pool of its own, as another process would have). */
  async function startOther(overrides: Partial<Config> = {}): Promise<{ server: RunningServer; rpc: string }> {
    const db = dialect === 'mysql' ? createDb(a.fresh.url) : undefined;
    const server = await startServer(testConfig({ databaseUrl: a.fresh.url, host: '127.0.0.1', xmlrpcLegacyPort: 0, ...config, ...overrides }), {
      db: db ?? a.fresh.db,
      log: quietLog,
      demo: false,
      clock,
      worker: false,
    });
    others.push({ server, db });
    return { server, rpc: `${server.url.replace('localhost', '127.0.0.1')}/RPC2` };
  }
  let b: { server: RunningServer; rpc: string };

  const getVersion = (rpc: string, login: string, password: string, address = '198.51.100.40') =>
    execute(rpc, { Server: 'BM', Method: 'GetVersion_API', Params: [0], Username: login, Password: password }, { headers: { 'X-Forwarded-For': address } });
  const refused = async (reply: Promise<Awaited<ReturnType<typeof getVersion>>>, message = /wrong/) => {
    const f = fault(await reply);
    expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.UNAUTHENTICATED);
    expect(f.faultString).to.match(message);
  };
  /** A signed-in user, whose creation B has already read (it would evict the login anyway). */
  const user = async () => {
    const u = await accountWithApiUser(a, 'reseller', `Cache Reseller ${++serial}`);
    await b.server.services.auth.readSignInChanges();
    return u;
  };
  /** SOAP UpdateAccount through A, as the provider's administrator: real SOAP bytes. */
  const closeThroughA = async (accountId: number) => {
    const body =
      '<?xml version="1.0" encoding="utf-8"?>' +
      '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tns="urn:hostwright:billing:v1"><soap:Body>' +
      `<tns:UpdateAccount><tns:accountId>${accountId}</tns:accountId><tns:status>closed</tns:status></tns:UpdateAccount>` +
      '</soap:Body></soap:Envelope>';
    const res = await fetch(`${a.url}/soap/billing`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'text/xml; charset=utf-8', authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` },
    });
    const text = await res.text();
    expect(res.status, text).to.equal(200);
    expect(text).to.contain('<status>closed</status>');
  };

  before(async () => {
    clock = new ManualClock('2026-03-02T09:00:00Z');
    a = await startApiWorld({ clock, config });
    b = await startOther();
  });
  after(async () => {
    for (const o of others) {
      await o.server.close();
      await o.db?.destroy();
    }
    await a?.close();
  });

  it('an account closed through A (SOAP): B refuses the cached sign-in of its user once it has read the changes', async () => {
    const u = await user();
    expect(result(await getVersion(b.rpc, u.login, u.password))).to.be.an('array');
    await closeThroughA(u.accountId);
    // Not yet read by B: its cache answers, as it did for up to a minute before sign-in changes were shared ...
    expect(result(await getVersion(b.rpc, u.login, u.password))).to.be.an('array');
    await b.server.services.auth.readSignInChanges();
    // ... and no longer once read.
    await refused(getVersion(b.rpc, u.login, u.password));
    await refused(getVersion(a.url + '/RPC2', u.login, u.password));
  });

  it('a lock set through A (XML-RPC guesses) ends the cached sign-in of that login from that address on B', async () => {
    const u = await user();
    expect(result(await getVersion(b.rpc, u.login, u.password, '203.0.113.41'))).to.be.an('array');
    expect(result(await getVersion(b.rpc, u.login, u.password, '198.51.100.41'))).to.be.an('array');
    for (let i = 0; i < 3; i++) await refused(getVersion(a.url + '/RPC2', u.login, `guess-${i}`, '203.0.113.41'));
    await b.server.services.auth.readSignInChanges();
    await refused(getVersion(b.rpc, u.login, u.password, '203.0.113.41'), /too many failed sign-ins for this login from your address/i);
    expect(result(await getVersion(b.rpc, u.login, u.password, '198.51.100.41')), 'another address stays signed in').to.be.an('array');
  });

  it('by itself, a server polling every authCachePollMs (100 ms) refuses the closed account within a second', async () => {
    const c = await startOther({ authCachePollMs: 100 });
    const u = await accountWithApiUser(a, 'reseller', `Cache Reseller ${++serial}`);
    await new Promise((r) => setTimeout(r, 300)); // C reads the user's creation by itself
    expect(result(await getVersion(c.rpc, u.login, u.password))).to.be.an('array');
    await closeThroughA(u.accountId);
    const closed = Date.now();
    let reply = await getVersion(c.rpc, u.login, u.password);
    while (reply.fault === undefined && Date.now() - closed < 5_000) {
      await new Promise((r) => setTimeout(r, 20));
      reply = await getVersion(c.rpc, u.login, u.password);
    }
    await refused(Promise.resolve(reply));
    expect(Date.now() - closed, 'refused within 1 s of the change (100 ms polls)').to.be.below(1_000);
  });
});
