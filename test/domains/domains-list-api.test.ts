import { expect } from 'chai';
import type { Actor } from '../../src/context';
import { accountWithApiUser, providerActor, registeredDomain, startApiWorld, type ApiWorld } from '../helpers/api';
import { dialect } from '../helpers/db';

type ApiUser = Awaited<ReturnType<typeof accountWithApiUser>>;

/** Local names with their prefixes dropped, so the bytes can be compared whatever prefix the server picks. */
const unprefixed = (xml: string) => xml.replace(/<(\/?)\w+:/g, '<$1');

describe(`domains: ListDomains through SOAP (${dialect})`, function () {
  this.timeout(120_000);
  let world: ApiWorld;
  let provider: Actor;
  let registrarId: number;
  let resellerA: ApiUser;
  let custA: ApiUser;
  let custA2: ApiUser;
  let resellerB: ApiUser;
  let custB: ApiUser;
  const ids: Record<string, number> = {};

  /** ListDomains as raw SOAP bytes; `inner` is the request's children (prefix p:). */
  async function listDomains(who: ApiUser, inner = ''): Promise<{ status: number; xml: string }> {
    const body = `<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:p="urn:hostwright:provisioning:v1"><soap:Body><p:ListDomains>${inner}</p:ListDomains></soap:Body></soap:Envelope>`;
    const res = await fetch(`${world.url}/soap/provisioning`, {
      method: 'POST',
      headers: { 'content-type': 'text/xml', soapaction: '"urn:hostwright:provisioning:v1#ListDomains"', authorization: `Basic ${Buffer.from(`${who.login}:${who.password}`).toString('base64')}` },
      body,
    });
    return { status: res.status, xml: unprefixed(await res.text()) };
  }
  /** The names listed and the total. */
  async function listed(who: ApiUser, inner = ''): Promise<{ names: string[]; total: number }> {
    const { status, xml } = await listDomains(who, inner);
    expect(status, xml).to.equal(200);
    const names = [...xml.matchAll(/<domain><domainId>\d+<\/domainId><name>([^<]+)<\/name>/g)].map((m) => m[1]!);
    expect(xml.match(/<domain>/g) ?? [], 'every domain starts with its domainId and name').to.have.length(names.length);
    const total = /<\/domains><total>(\d+)<\/total><\/ListDomainsResponse>/.exec(xml) ?? /<domains\/><total>(\d+)<\/total><\/ListDomainsResponse>/.exec(xml);
    expect(total, xml).to.not.equal(null);
    return { names, total: Number(total![1]) };
  }
  /** The fault's detail (code, field, message) and its HTTP status. */
  async function refused(who: ApiUser, inner: string): Promise<{ status: number; code?: string; field?: string; message?: string }> {
    const { status, xml } = await listDomains(who, inner);
    const detail = (tag: string) => new RegExp(`<Error[^>]*>[\\s\\S]*<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1];
    return { status, code: detail('code'), field: detail('field'), message: detail('message') };
  }

  before(async () => {
    world = await startApiWorld();
    provider = await providerActor(world);
    registrarId = await world.server.services.pluginInstances.create(provider, { kind: 'registrar', plugin: 'sandbox', name: 'list-registrar' });
    resellerA = await accountWithApiUser(world, 'reseller', 'LD Reseller A');
    custA = await accountWithApiUser(world, 'customer', 'LD Customer A', resellerA.accountId);
    custA2 = await accountWithApiUser(world, 'customer', 'LD Customer A2', resellerA.accountId);
    resellerB = await accountWithApiUser(world, 'reseller', 'LD Reseller B');
    custB = await accountWithApiUser(world, 'customer', 'LD Customer B', resellerB.accountId);
    const held: [ApiUser, string, 'pending' | undefined][] = [
      [custA, 'shoe-shop.com', undefined],
      [custA, 'bakery-one.com', undefined],
      [custA, 'bakery-two.com', 'pending'],
      [custA2, 'bakery-three.com', undefined],
      [resellerA, 'alpha-reseller.com', undefined],
      [custB, 'bakery-b.com', undefined],
    ];
    for (const [who, name, status] of held) ids[name] = await registeredDomain(world, who.accountId, name, { registrarInstanceId: registrarId, status, nameservers: ['ns1.host.example', 'ns2.host.example'] });
    // Auto-renew off on one, so the bytes show it is the domain's own value.
    await world.fresh.db('domains').where({ id: ids['shoe-shop.com'] }).update({ auto_renew: false });
  });
  after(() => world?.close());

  it("answers the customer's domains sorted by name as the WSDL's Domain elements in sequence order, then total", async () => {
    const { status, xml } = await listDomains(custA);
    expect(status, xml).to.equal(200);
    const expected = await Promise.all(
      [['bakery-one.com', 'active', true], ['bakery-two.com', 'pending', true], ['shoe-shop.com', 'active', false]].map(async ([name, st, autoRenew]) => {
        const row = (await world.fresh.db('domains').where({ id: ids[name as string] }).first('expires_at')) as { expires_at: unknown };
        return (
          `<domain><domainId>${ids[name as string]}</domainId><name>${name}</name><accountId>${custA.accountId}</accountId><status>${st}</status>` +
          `<expiresAt>${new Date(Number(row.expires_at)).toISOString()}</expiresAt>` +
          `<nameservers><nameserver>ns1.host.example</nameserver><nameserver>ns2.host.example</nameserver></nameservers><autoRenew>${autoRenew}</autoRenew></domain>`
        );
      }),
    );
    expect(xml).to.match(/<ListDomainsResponse[^>]*><domains>/);
    expect(xml).to.contain(`<domains>${expected.join('')}</domains><total>3</total></ListDomainsResponse>`);
  });

  it('filters by status and by a part of the name (any case), together too; LIKE wildcards match themselves', async () => {
    expect(await listed(custA, '<p:status>pending</p:status>')).to.deep.equal({ names: ['bakery-two.com'], total: 1 });
    expect(await listed(custA, '<p:status>expired</p:status>')).to.deep.equal({ names: [], total: 0 });
    expect(await listed(custA, '<p:name>BAKERY</p:name>')).to.deep.equal({ names: ['bakery-one.com', 'bakery-two.com'], total: 2 });
    expect(await listed(custA, '<p:status>active</p:status><p:name>bakery</p:name>')).to.deep.equal({ names: ['bakery-one.com'], total: 1 });
    expect(await listed(custA, '<p:name>%</p:name>')).to.deep.equal({ names: [], total: 0 });
  });

  it('pages with page and pageSize, answering the total of all pages; pageSize over 500 and page 0 are INVALID_ARGUMENT naming them', async () => {
    const all = ['alpha-reseller.com', 'bakery-one.com', 'bakery-three.com', 'bakery-two.com', 'shoe-shop.com'];
    expect(await listed(resellerA, '<p:pageSize>2</p:pageSize>')).to.deep.equal({ names: all.slice(0, 2), total: 5 });
    expect(await listed(resellerA, '<p:page>2</p:page><p:pageSize>2</p:pageSize>')).to.deep.equal({ names: all.slice(2, 4), total: 5 });
    expect(await listed(resellerA, '<p:page>3</p:page><p:pageSize>2</p:pageSize>')).to.deep.equal({ names: all.slice(4), total: 5 });
    expect(await listed(resellerA, '<p:page>4</p:page><p:pageSize>2</p:pageSize>')).to.deep.equal({ names: [], total: 5 });
    expect(await listed(resellerA, '<p:name>bakery</p:name><p:page>2</p:page><p:pageSize>2</p:pageSize>')).to.deep.equal({ names: ['bakery-two.com'], total: 3 });
    expect(await refused(resellerA, '<p:pageSize>501</p:pageSize>')).to.include({ status: 500, code: 'INVALID_ARGUMENT', field: 'pageSize' });
    expect(await refused(resellerA, '<p:page>0</p:page>')).to.include({ status: 500, code: 'INVALID_ARGUMENT', field: 'page' });
  });

  it("a reseller sees its own and its customers' domains, one customer's by accountId; another reseller's account answers like a missing one", async () => {
    expect((await listed(resellerA)).names).to.deep.equal(['alpha-reseller.com', 'bakery-one.com', 'bakery-three.com', 'bakery-two.com', 'shoe-shop.com']);
    expect(await listed(resellerA, `<p:accountId>${custA2.accountId}</p:accountId>`)).to.deep.equal({ names: ['bakery-three.com'], total: 1 });
    expect(await listed(resellerA, '<p:name>bakery</p:name>')).to.deep.equal({ names: ['bakery-one.com', 'bakery-three.com', 'bakery-two.com'], total: 3 });
    expect(await listed(resellerB)).to.deep.equal({ names: ['bakery-b.com'], total: 1 });

    const missing = await refused(resellerA, '<p:accountId>1999999999</p:accountId>');
    expect(missing).to.include({ status: 500, code: 'NOT_FOUND' });
    for (const foreign of [custB.accountId, resellerB.accountId]) {
      const f = await refused(resellerA, `<p:accountId>${foreign}</p:accountId>`);
      expect({ ...f, message: f.message?.replace(String(foreign), 'ID') }).to.deep.equal({ ...missing, message: missing.message?.replace('1999999999', 'ID') });
    }
  });

  it("a customer sees only its own domains; its sibling's accountId answers NOT_FOUND", async () => {
    expect(await listed(custA2)).to.deep.equal({ names: ['bakery-three.com'], total: 1 });
    expect((await listed(custA, `<p:accountId>${custA.accountId}</p:accountId>`)).names).to.deep.equal(['bakery-one.com', 'bakery-two.com', 'shoe-shop.com']);
    expect(await refused(custA, `<p:accountId>${custA2.accountId}</p:accountId>`)).to.include({ status: 500, code: 'NOT_FOUND' });
    expect(await refused(custA, `<p:accountId>${resellerA.accountId}</p:accountId>`)).to.include({ status: 500, code: 'NOT_FOUND' });
  });

  it('a status outside DomainStatus is INVALID_ARGUMENT naming status', async () => {
    const f = await refused(custA, '<p:status>parked</p:status>');
    expect(f).to.include({ status: 500, code: 'INVALID_ARGUMENT', field: 'status' });
    expect(f.message).to.contain('active');
  });
});
