import crypto from 'node:crypto';
import { expect } from 'chai';
import { SessionStore } from '../../src/console/sessions';
import { ADMIN_PASSWORD, accountWithApiUser, startApiWorld, type ApiWorld } from '../helpers/api';
import { makeWorld, type World } from '../helpers/world';

/** The sign-in form's CSRF cookie and token, fetched as a browser would (from `headers`, e.g. X-Forwarded-For). */
async function consoleLoginForm(url: string, headers: Record<string, string> = {}): Promise<{ cookie: string; token: string }> {
  const res = await fetch(`${url}/console/login`, { headers });
  const html = await res.text();
  const token = /name="_csrf" value="([^"]+)"/.exec(html)![1];
  const cookie = res.headers.getSetCookie().find((c) => c.startsWith('hw_console_login='))!;
  return { cookie: cookie.split(';')[0], token };
}

/** POSTs the sign-in form with a fresh token: 303 signed in, 401 refused (the page shows why), 403 not for the console. */
async function consoleSignIn(url: string, login: string, password: string, headers: Record<string, string> = {}): Promise<Response> {
  const { cookie, token } = await consoleLoginForm(url, headers);
  return fetch(`${url}/console/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie, ...headers },
    body: new URLSearchParams({ _csrf: token, login, password }).toString(),
  });
}

describe('console sessions', () => {
  let world: World;
  let store: SessionStore;
  let adminId: number;

  before(async () => {
    world = await makeWorld({ config: { consoleSessionIdleMinutes: 30, consoleSessionAbsoluteHours: 2 } });
    store = new SessionStore(world.deps);
    adminId = Number((await world.deps.db('users').where({ login: 'admin' }).first('id')).id);
  });
  after(() => world.close());

  it('keeps only the hash of the 256-bit session id, and builds the provider admin\u2019s Actor from the user row', async () => {
    const { id } = await store.create(adminId, '10.0.0.1');
    expect(Buffer.from(id, 'base64url')).to.have.length(32);
    const rows = await world.deps.db('console_sessions').select('id_hash');
    expect(rows.map((r: { id_hash: string }) => r.id_hash)).to.include(crypto.createHash('sha256').update(id).digest('hex')).and.not.include(id);
    const session = await store.load(id, {});
    expect(session!.actor).to.include({ userId: adminId, accountId: world.provider.accountId, accountPath: world.provider.accountPath, accountType: 'provider', channel: 'console' });
    expect(session!.actor.roles).to.include('admin');
    expect(await store.load(`${id}x`, {})).to.equal(undefined);
  });

  it('ends after the idle time without use, but not while it is used', async () => {
    const { id } = await store.create(adminId, undefined);
    world.clock.advance(29 * 60_000);
    expect(await store.load(id, {})).to.not.equal(undefined);
    world.clock.advance(29 * 60_000); // 58 minutes after sign-in, 29 after the last use
    expect(await store.load(id, {})).to.not.equal(undefined);
    world.clock.advance(31 * 60_000);
    expect(await store.load(id, {})).to.equal(undefined);
    expect(await store.load(id, {}), 'an expired session is gone, not merely refused').to.equal(undefined);
  });

  it('ends at the absolute time however active it is', async () => {
    const { id } = await store.create(adminId, undefined);
    for (let minutes = 0; minutes < 100; minutes += 20) {
      world.clock.advance(20 * 60_000);
      expect(await store.load(id, {}), `at ${minutes + 20} minutes`).to.not.equal(undefined);
    }
    world.clock.advance(25 * 60_000); // 2 h 5 min after sign-in, 25 minutes after the last use
    expect(await store.load(id, {})).to.equal(undefined);
  });

  it('ends at once when the user is disabled or loses the admin role', async () => {
    const a = await store.create(adminId, undefined);
    await world.deps.db('users').where({ id: adminId }).update({ roles: 'billing' });
    expect(await store.load(a.id, {})).to.equal(undefined);
    await world.deps.db('users').where({ id: adminId }).update({ roles: 'admin' });
    const b = await store.create(adminId, undefined);
    await world.deps.db('users').where({ id: adminId }).update({ status: 'disabled' });
    expect(await store.load(b.id, {})).to.equal(undefined);
    await world.deps.db('users').where({ id: adminId }).update({ status: 'enabled' });
  });
});

describe('the console over plain HTTP', () => {
  let api: ApiWorld;
  before(async () => {
    api = await startApiWorld({ config: { publicUrl: 'https://billing.example.com' } });
  });
  after(() => api.close());

  const loginForm = () => consoleLoginForm(api.url);

  it('marks cookies Secure and uses a __Host- session cookie when PUBLIC_URL is https', async () => {
    const { cookie, token } = await loginForm();
    const res = await fetch(`${api.url}/console/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
      body: new URLSearchParams({ _csrf: token, login: 'admin', password: ADMIN_PASSWORD }).toString(),
    });
    expect(res.status).to.equal(303);
    const session = res.headers.getSetCookie().find((c) => c.startsWith('__Host-hw_console='))!;
    expect(session).to.match(/; Path=\/; HttpOnly; SameSite=Lax; Secure/);
  });

  it('refuses a sign-in POST without the token its form carried', async () => {
    const { cookie } = await loginForm();
    const res = await fetch(`${api.url}/console/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
      body: new URLSearchParams({ login: 'admin', password: ADMIN_PASSWORD }).toString(),
    });
    expect(res.status).to.equal(403);
    expect(res.headers.getSetCookie().some((c) => c.includes('hw_console='))).to.equal(false);
  });

  it('lets a reseller administrator in, but not its API-only or billing users', async () => {
    const reseller = await accountWithApiUser(api, 'reseller', 'Gate Reseller');
    const billing = 'gate-billing';
    const provider = (await api.fresh.db('accounts').where({ type: 'provider' }).first('id', 'path')) as { id: number; path: string };
    await api.server.services.users.create(
      { userId: null, accountId: provider.id, accountPath: provider.path, accountType: 'provider', roles: ['admin'], channel: 'system' },
      { accountId: reseller.accountId, login: billing, password: 'gate-billing-password', email: 'billing@example.com', firstName: 'Bill', lastName: 'Ing', roles: ['billing'] },
    );
    const attempt = (login: string, password: string) => consoleSignIn(api.url, login, password);
    expect((await attempt(reseller.login, reseller.password)).status).to.equal(303);
    expect((await attempt(billing, 'gate-billing-password')).status).to.equal(403);
  });

  it('answers a page that fails unexpectedly with a 500 page naming the request id, never the error or a stack', async () => {
    const { cookie, token } = await loginForm();
    const signIn = await fetch(`${api.url}/console/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
      body: new URLSearchParams({ _csrf: token, login: 'admin', password: ADMIN_PASSWORD }).toString(),
    });
    const session = signIn.headers.getSetCookie().find((c) => c.startsWith('__Host-hw_console='))!.split(';')[0];
    // A workflow row whose definition is not JSON (written behind the services' back) breaks the workflows page.
    const provider = await api.fresh.db('accounts').where({ type: 'provider' }).first('id');
    await api.fresh.db('workflows').insert({ vendor_id: provider.id, order_type: 'change', version: 99, definition: '{broken', active: false, created_at: 0 });
    const res = await fetch(`${api.url}/console/workflows`, { headers: { cookie: session } });
    expect(res.status).to.equal(500);
    const html = await res.text();
    expect(html).to.contain('Something went wrong').and.contain(res.headers.get('x-request-id')!);
    expect(html).to.not.match(/SyntaxError|JSON|at [\w.]+ \(/);
    const missing = await fetch(`${api.url}/console/orders/999999`, { headers: { cookie: session } });
    expect(missing.status).to.equal(404);
    expect(await missing.text()).to.contain('Order 999999 does not exist');
  });

  it('serves its one stylesheet with a cache header and an ETag, and pages with no-store and a strict CSP', async () => {
    const css = await fetch(`${api.url}/console/static/console.css`);
    expect(css.headers.get('cache-control')).to.equal('public, max-age=86400');
    expect(css.headers.get('content-type')).to.match(/text\/css/);
    const again = await fetch(`${api.url}/console/static/console.css`, { headers: { 'if-none-match': css.headers.get('etag')! } });
    expect(again.status).to.equal(304);
    const login = await fetch(`${api.url}/console/login`);
    expect(login.headers.get('cache-control')).to.equal('no-store');
    expect(login.headers.get('content-security-policy')).to.contain("default-src 'none'").and.contain("frame-ancestors 'none'");
  });
});

describe('console sign-in lockout per login and client address (behind a trusted proxy)', () => {
  let api: ApiWorld;
  const from = (address: string) => ({ 'x-forwarded-for': address });
  const refusal = async (res: Response) => {
    expect(res.status).to.equal(401);
    return /class="flash error"[^>]*>([^<]*)</.exec(await res.text())?.[1] ?? '';
  };

  before(async () => {
    api = await startApiWorld({ config: { trustProxy: true, authFailureLimit: 3, authAddressFailureLimit: 4, authLoginFailureCeiling: 30 } });
  });
  after(() => api.close());

  it('a guesser at the sign-in form locks admin out for its own address only; admin signs in from another', async () => {
    for (let i = 0; i < 3; i++) expect(await refusal(await consoleSignIn(api.url, 'admin', `guess-${i}`, from('203.0.113.90')))).to.match(/wrong/);
    expect(await refusal(await consoleSignIn(api.url, 'admin', ADMIN_PASSWORD, from('203.0.113.90')))).to.match(/Too many failed sign-ins for this login from your address/);
    expect((await consoleSignIn(api.url, 'admin', ADMIN_PASSWORD, from('198.51.100.90'))).status).to.equal(303);
    // The console, SOAP and XML-RPC share the count: the same address is locked out of admin on the API too.
    const soap = await fetch(`${api.url}/soap/billing`, {
      method: 'POST',
      headers: { 'content-type': 'text/xml', authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, ...from('203.0.113.90') },
      body: '<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tns="urn:hostwright:billing:v1"><soap:Body><tns:GetVersion/></soap:Body></soap:Envelope>',
    });
    expect(soap.status).to.equal(500);
    expect(await soap.text()).to.match(/Too many failed sign-ins for this login from your address/);
  });

  it('an address trying many logins at the form is throttled for every login', async () => {
    const reseller = await accountWithApiUser(api, 'reseller', 'Console Lockout Reseller');
    for (const login of ['nobody-1', 'nobody-2', 'nobody-3', 'nobody-4']) expect(await refusal(await consoleSignIn(api.url, login, 'spray', from('203.0.113.91')))).to.match(/wrong/);
    expect(await refusal(await consoleSignIn(api.url, reseller.login, reseller.password, from('203.0.113.91')))).to.match(/Too many failed sign-ins from your address/);
    expect((await consoleSignIn(api.url, reseller.login, reseller.password, from('198.51.100.91'))).status).to.equal(303);
  });
});
