import { expect } from 'chai';
import { BasicAuthSecurity, createClientAsync, type Client } from 'soap';
import { XmlRpcDouble } from '../../src/api/xmlrpc/codec';
import { INT_NULL } from '../../src/api/xmlrpc/params';
import type { Actor } from '../../src/context';
import type { Registrar } from '../../src/plugins/sdk';
import { accountWithApiUser, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { failure } from '../helpers/assertions';
import { execute, fault, result } from '../api/xmlrpc/client';

const CONTACTS = { registrant: { name: 'Dora Domain', email: 'dora@example.com', phone: '+1.5555550100', street: ['1 Main St'], city: 'Springfield', countryCode: 'US' } };

interface SoapFault {
  root?: { Envelope?: { Body?: { Fault?: { faultcode?: string; detail?: { Error?: { code?: string; message?: string; field?: string } } } } } };
}

describe('domains: the TLD catalog and the read-side domain operations through SOAP and XML-RPC', function () {
  this.timeout(60_000);
  let world: ApiWorld;
  let provider: Actor;
  let registrarId: number;
  let registrar: Registrar;
  let resellerA: Awaited<ReturnType<typeof accountWithApiUser>>;
  let custA: Awaited<ReturnType<typeof accountWithApiUser>>;
  let resellerB: Awaited<ReturnType<typeof accountWithApiUser>>;
  let custB: Awaited<ReturnType<typeof accountWithApiUser>>;
  let comId: number;
  let domainA: number;
  let domainB: number;
  let seq = 0;

  /** Registers the name at the sandbox registrar for real, then records it as the order saga will. */
  async function registered(accountId: number, name: string): Promise<number> {
    const r = await registrar.register({ operationId: `test-reg-${++seq}-${name}`, name, years: 1, contacts: CONTACTS, nameservers: ['ns1.host.example', 'ns2.host.example'] });
    if (r.status !== 'success') throw new Error(`sandbox refused ${name}: ${JSON.stringify(r)}`);
    return world.server.services.domains.recordRegisteredDomain(world.fresh.db, provider, {
      accountId,
      name,
      registrarInstanceId: registrarId,
      tldId: comId,
      registeredAt: new Date(r.result.createdAt!),
      expiresAt: new Date(r.result.expiresAt),
      nameservers: ['ns1.host.example', 'ns2.host.example'],
    });
  }

  async function soapClient(login: string, password: string): Promise<Client> {
    const c = await createClientAsync(`${world.url}/soap/provisioning?wsdl`);
    c.setSecurity(new BasicAuthSecurity(login, password));
    return c;
  }

  async function soapFault(p: Promise<unknown>) {
    let f: SoapFault | undefined;
    await p.then(
      () => expect.fail('expected a SOAP fault'),
      (e: SoapFault) => (f = e),
    );
    return f!.root!.Envelope!.Body!.Fault!.detail!.Error!;
  }

  const rpc = (who: { login: string; password: string }, method: string, params: unknown[]) =>
    execute(world.url + '/RPC2', { Server: 'DOMAINGATE', Method: method, Params: params as never, Username: who.login, Password: who.password });

  before(async () => {
    world = await startApiWorld();
    provider = await providerActor(world);
    const { pluginInstances, tlds } = world.server.services;
    registrarId = await pluginInstances.create(provider, { kind: 'registrar', plugin: 'sandbox', name: 'test-registrar' });
    registrar = await pluginInstances.instantiate<Registrar>(registrarId);
    resellerA = await accountWithApiUser(world, 'reseller', 'Domains Reseller A');
    resellerB = await accountWithApiUser(world, 'reseller', 'Domains Reseller B');
    custA = await accountWithApiUser(world, 'customer', 'Domains Customer A', resellerA.accountId);
    custB = await accountWithApiUser(world, 'customer', 'Domains Customer B', resellerB.accountId);
    comId = await tlds.create(provider, {
      tld: '.COM',
      registrarInstanceId: registrarId,
      prices: [
        { action: 'register', years: 1, amount: 1299n },
        { action: 'register', years: 2, amount: 2598n },
        { action: 'renew', years: 1, amount: 1499n },
        { action: 'transfer', years: 1, amount: 999n },
      ],
    });
    await tlds.create(provider, { tld: 'net', registrarInstanceId: registrarId, transferAuthRequired: false, prices: [{ action: 'register', years: 1, amount: 1499n }] });
    // Reseller A re-prices the provider's .com, through the provider's registrar.
    await tlds.create(provider, { vendorAccountId: resellerA.accountId, tld: 'com', registrarInstanceId: registrarId, prices: [{ action: 'register', years: 1, amount: 1999n }] });
    domainA = await registered(custA.accountId, 'alpha-shop.com');
    domainB = await registered(custB.accountId, 'bravo-shop.com');
  });
  after(() => world?.close());

  describe('the TLD catalog', () => {
    it('a vendor sells its own TLDs and its ancestors\', the nearest offer winning; customers see their vendor\'s', async () => {
      const { tlds } = world.server.services;
      const asA: Actor = { userId: resellerA.userId, accountId: resellerA.accountId, accountPath: (await world.fresh.db('accounts').where({ id: resellerA.accountId }).first('path')).path, accountType: 'reseller', roles: ['admin'], channel: 'system' };
      const list = await tlds.listSellable(asA);
      expect(list.map((t) => [t.tld, t.vendorAccountId, t.prices.find((p) => p.action === 'register' && p.years === 1)?.amount])).to.deep.equal([
        ['com', resellerA.accountId, 1999n],
        ['net', provider.accountId, 1499n],
      ]);
      const asB = { ...asA, userId: resellerB.userId, accountId: resellerB.accountId, accountPath: (await world.fresh.db('accounts').where({ id: resellerB.accountId }).first('path')).path };
      expect((await tlds.listSellable(asB)).map((t) => [t.tld, t.vendorAccountId])).to.deep.equal([
        ['com', provider.accountId],
        ['net', provider.accountId],
      ]);
    });

    it('refuses bad input naming the field, and a customer or a foreign registrar instance', async () => {
      const { tlds, pluginInstances } = world.server.services;
      await failure(tlds.create(provider, { tld: 'not a tld', registrarInstanceId: registrarId }), 'INVALID_ARGUMENT', 'tld');
      await failure(tlds.create(provider, { tld: 'org', registrarInstanceId: registrarId, prices: [{ action: 'register', years: 11, amount: 1n }] }), 'INVALID_ARGUMENT', 'prices[0].years');
      await failure(tlds.create(provider, { tld: 'org', registrarInstanceId: registrarId, prices: [{ action: 'lease', years: 1, amount: 1n }] }), 'INVALID_ARGUMENT', 'prices[0].action');
      await failure(tlds.create(provider, { tld: 'org', registrarInstanceId: registrarId, prices: [{ action: 'register', years: 1, amount: -1n }] }), 'INVALID_ARGUMENT', 'prices[0].amount');
      await failure(tlds.create(provider, { tld: 'com', registrarInstanceId: registrarId }), 'INVALID_ARGUMENT', 'tld');
      await failure(tlds.create(provider, { vendorAccountId: custA.accountId, tld: 'org', registrarInstanceId: registrarId }), 'NOT_ALLOWED', 'vendorAccountId');
      // B's own registrar instance cannot serve A's TLD.
      const bRegistrar = await pluginInstances.create(provider, { vendorAccountId: resellerB.accountId, kind: 'registrar', plugin: 'sandbox', name: 'b-registrar' });
      await failure(tlds.create(provider, { vendorAccountId: resellerA.accountId, tld: 'org', registrarInstanceId: bRegistrar }), 'INVALID_ARGUMENT', 'registrarInstanceId');
      expect(await world.fresh.db('tlds').where({ tld: 'org' })).to.have.length(0);
    });

    it('records creation and updates in the audit log with their events', async () => {
      const { tlds } = world.server.services;
      const id = await tlds.create(provider, { tld: 'info', registrarInstanceId: registrarId, prices: [{ action: 'register', years: 1, amount: 500n }] });
      const updated = await tlds.update(provider, id, { enabled: false, prices: [{ action: 'register', years: 1, amount: 700n }] });
      expect(updated.enabled).to.equal(false);
      expect(updated.prices).to.deep.equal([{ action: 'register', years: 1, amount: 700n }]);
      const audit = await world.fresh.db('audit_log').where({ object_type: 'tld', object_id: String(id) }).orderBy('id').select('operation');
      expect(audit.map((a: { operation: string }) => a.operation)).to.deep.equal(['CreateTld', 'UpdateTld']);
      const events = await world.fresh.db('events').where({ object_type: 'tld', object_id: String(id) }).orderBy('id').select('name');
      expect(events.map((e: { name: string }) => e.name)).to.deep.equal(['catalog.tld_created', 'catalog.tld_updated']);
      expect((await tlds.listSellable(provider)).map((t) => t.tld)).to.not.include('info');
    });
  });

  describe('SOAP ProvisioningService', () => {
    it('CheckDomain: availability from the registrar with the caller\'s 1-year price, in the WSDL element order', async () => {
      const body = `<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:p="urn:hostwright:provisioning:v1"><soap:Body><p:CheckDomain><p:names><p:name>Fresh-Idea.com</p:name><p:name>taken-name.com</p:name><p:name>alpha-shop.com</p:name><p:name>something.xyz</p:name><p:name>fresh-idea.net</p:name></p:names></p:CheckDomain></soap:Body></soap:Envelope>`;
      const res = await fetch(`${world.url}/soap/provisioning`, {
        method: 'POST',
        headers: { 'content-type': 'text/xml', authorization: `Basic ${Buffer.from(`${custA.login}:${custA.password}`).toString('base64')}` },
        body,
      });
      const xml = await res.text();
      expect(res.status, xml).to.equal(200);
      const results = [...xml.matchAll(/<(?:\w+:)?result>([\s\S]*?)<\/(?:\w+:)?result>/g)].map((m) => m[1].replace(/<(\/?)\w+:/g, '<$1'));
      expect(results).to.deep.equal([
        '<name>fresh-idea.com</name><available>true</available><price>19.99</price><currency>USD</currency>',
        '<name>taken-name.com</name><available>false</available>',
        '<name>alpha-shop.com</name><available>false</available>',
        '<name>something.xyz</name><available>false</available>',
        '<name>fresh-idea.net</name><available>true</available><price>14.99</price><currency>USD</currency>',
      ]);
    });

    it('CheckDomain refuses a malformed name with INVALID_ARGUMENT naming it', async () => {
      const c = await soapClient(custA.login, custA.password);
      const e = await soapFault(c.CheckDomainAsync({ names: { name: ['ok.com', 'bad name.com'] } }));
      expect(e).to.include({ code: 'INVALID_ARGUMENT', field: 'names[1]' });
    });

    it('GetDomain by id or by name; another reseller\'s domain answers exactly like a missing one', async () => {
      const c = await soapClient(custA.login, custA.password);
      const [byId] = await c.GetDomainAsync({ domainId: domainA });
      expect(byId.domain).to.include({ domainId: domainA, name: 'alpha-shop.com', accountId: custA.accountId, status: 'active' });
      expect(byId.domain.nameservers.nameserver).to.deep.equal(['ns1.host.example', 'ns2.host.example']);
      const row = (await world.fresh.db('domains').where({ id: domainA }).first('expires_at')) as { expires_at: unknown };
      expect(new Date(byId.domain.expiresAt).getTime()).to.equal(Number(row.expires_at));
      const [byName] = await (await soapClient(resellerA.login, resellerA.password)).GetDomainAsync({ name: 'ALPHA-shop.com' });
      expect(byName.domain.domainId).to.equal(domainA);

      const foreign = await soapFault(c.GetDomainAsync({ domainId: domainB }));
      const missing = await soapFault(c.GetDomainAsync({ domainId: 1987654321 }));
      expect(foreign.code).to.equal('NOT_FOUND');
      expect(foreign.message!.replace(String(domainB), 'N')).to.equal(missing.message!.replace('1987654321', 'N'));
      const foreignName = await soapFault(c.GetDomainAsync({ name: 'bravo-shop.com' }));
      const missingName = await soapFault(c.GetDomainAsync({ name: 'never-here.com' }));
      expect(foreignName.message!.replace('bravo-shop.com', 'N')).to.equal(missingName.message!.replace('never-here.com', 'N'));
    });

    it('SetNameservers changes them at the registrar, then here; audited with event domain.nameservers_changed', async () => {
      const c = await soapClient(custA.login, custA.password);
      const [r] = await c.SetNameserversAsync({ domainId: domainA, nameservers: { nameserver: ['NS1.Example.NET', 'ns2.example.net'] } });
      expect(r.domain.nameservers.nameserver).to.deep.equal(['ns1.example.net', 'ns2.example.net']);
      const info = await registrar.getInfo({ operationId: `test-info-${++seq}`, name: 'alpha-shop.com' });
      expect(info.status === 'success' && info.result.nameservers).to.deep.equal(['ns1.example.net', 'ns2.example.net']);
      const row = (await world.fresh.db('domains').where({ id: domainA }).first('nameservers')) as { nameservers: string };
      expect(JSON.parse(row.nameservers)).to.deep.equal(['ns1.example.net', 'ns2.example.net']);
      const audit = await world.fresh.db('audit_log').where({ operation: 'SetNameservers', object_type: 'domain', object_id: String(domainA), outcome: 'ok' });
      expect(audit).to.have.length(1);
      expect(audit[0].actor_account_id === null ? null : Number(audit[0].actor_account_id)).to.equal(custA.accountId);
      const event = (await world.fresh.db('events').where({ name: 'domain.nameservers_changed', object_id: String(domainA) }).first()) as { payload: string };
      expect(JSON.parse(event.payload)).to.include({ domainId: domainA, name: 'alpha-shop.com' });
    });

    it('SetNameservers with a bad host name changes nothing, here or at the registrar', async () => {
      const c = await soapClient(custA.login, custA.password);
      const e = await soapFault(c.SetNameserversAsync({ domainId: domainA, nameservers: { nameserver: ['ns1.ok.example', 'not a host'] } }));
      expect(e).to.include({ code: 'INVALID_ARGUMENT', field: 'nameservers' });
      const info = await registrar.getInfo({ operationId: `test-info-${++seq}`, name: 'alpha-shop.com' });
      expect(info.status === 'success' && info.result.nameservers).to.deep.equal(['ns1.example.net', 'ns2.example.net']);
      // Another reseller cannot change A's domain.
      const b = await soapClient(resellerB.login, resellerB.password);
      expect((await soapFault(b.SetNameserversAsync({ domainId: domainA, nameservers: { nameserver: ['ns.evil.example'] } }))).code).to.equal('NOT_FOUND');
    });

    it('GetEppCode answers the registrar\'s auth code; the audit records the read but not the code', async () => {
      const c = await soapClient(custA.login, custA.password);
      const [r] = await c.GetEppCodeAsync({ name: 'alpha-shop.com' });
      const direct = await registrar.getAuthCode({ operationId: `test-auth-${++seq}`, name: 'alpha-shop.com' });
      expect(direct.status).to.equal('success');
      expect(r.eppCode).to.equal(direct.status === 'success' ? direct.result.authCode : null).and.to.be.a('string').with.length.above(3);
      const audit = await world.fresh.db('audit_log').where({ operation: 'GetEppCode', object_id: String(domainA) });
      expect(audit).to.have.length(1);
      const everything = JSON.stringify(await world.fresh.db('audit_log').select('details')) + JSON.stringify(await world.fresh.db('events').select('payload')) + JSON.stringify(await world.fresh.db('domains').select());
      expect(everything).to.not.include(r.eppCode);
    });

    it("RegisterDomain for an account outside the caller's subtree is NOT_FOUND and orders nothing", async () => {
      const c = await soapClient(custA.login, custA.password);
      const e = await soapFault(c.RegisterDomainAsync({ accountId: custB.accountId, name: 'not-yours.com', years: 1 }));
      expect(e).to.include({ code: 'NOT_FOUND' });
      expect(await world.fresh.db('order_domains').where({ name: 'not-yours.com' })).to.have.length(0);
    });
  });

  describe('XML-RPC DOMAINGATE', () => {
    it('SingleDomainNameAvailability_API: [FullDomainName, Available, Price, Currency, Reason], by whole name or name + zone', async () => {
      const whole = result(await rpc(custA, 'SingleDomainNameAvailability_API', ['new-bakery.com'])) as unknown[];
      expect(whole.slice(0, 2)).to.deep.equal(['new-bakery.com', 1]);
      expect((whole[2] as XmlRpcDouble).text).to.equal('19.99');
      expect(whole.slice(3)).to.deep.equal(['USD', '']);
      const split = result(await rpc(custB, 'SingleDomainNameAvailability_API', ['new-bakery', 'com'])) as unknown[];
      expect([split[0], split[1], (split[2] as XmlRpcDouble).text, split[3]]).to.deep.equal(['new-bakery.com', 1, '12.99', 'USD']);
      const idn = result(await rpc(custA, 'SingleDomainNameAvailability_API', ['Bäckerei.COM'])) as unknown[];
      expect(idn.slice(0, 2)).to.deep.equal(['xn--bckerei-5wa.com', 1]);
      const taken = result(await rpc(custA, 'SingleDomainNameAvailability_API', ['bravo-shop.com'])) as unknown[];
      expect([taken[0], taken[1], taken[4]]).to.deep.equal(['bravo-shop.com', 0, 'In use']);
    });

    it('DomainNamesAvailability_API: many names at once, as positional names or one array', async () => {
      const rows = result(await rpc(custA, 'DomainNamesAvailability_API', [['one-more.com', 'taken-too.com', 'one-more.net']])) as unknown[][];
      expect(rows.map((r) => [r[0], r[1], (r[2] as XmlRpcDouble).text, r[3]])).to.deep.equal([
        ['one-more.com', 1, '19.99', 'USD'],
        ['taken-too.com', 0, '0', ''],
        ['one-more.net', 1, '14.99', 'USD'],
      ]);
      const positional = result(await rpc(custA, 'DomainNamesAvailability_API', ['one-more.com', 'taken-too.com'])) as unknown[][];
      expect(positional.map((r) => r[1])).to.deep.equal([1, 0]);
      const f = fault(await rpc(custA, 'DomainNamesAvailability_API', [['ok.com', 'no_such..com']]));
      expect(f.faultString).to.contain('no_such..com');
    });

    it('DomainInfoGet_API and DomainExpirationDateGet_API read the domain; a foreign name answers like a missing one', async () => {
      const info = result(await rpc(custA, 'DomainInfoGet_API', ['alpha-shop.com'])) as unknown[];
      const row = (await world.fresh.db('domains').where({ id: domainA }).first()) as { expires_at: unknown; registered_at: unknown };
      const exp = Math.floor(Number(row.expires_at) / 1000);
      expect(info).to.deep.equal([custA.accountId, resellerA.accountId, domainA, 'alpha-shop.com', 'com', 'Registered', 'External DNS', 1, Math.floor(Number(row.registered_at) / 1000), exp, 'ns1.example.net', 'ns2.example.net', '', '']);
      expect(result(await rpc(custA, 'DomainExpirationDateGet_API', ['alpha-shop.com']))).to.deep.equal([exp]);
      expect(result(await rpc(resellerA, 'DomainExpirationDateGet_API', [domainA]))).to.deep.equal([exp]);
      const foreign = fault(await rpc(custA, 'DomainInfoGet_API', ['bravo-shop.com']));
      const missing = fault(await rpc(custA, 'DomainInfoGet_API', ['never-here.com']));
      expect(foreign.faultCode).to.equal(missing.faultCode);
      expect(foreign.faultString.replace('bravo-shop.com', 'N')).to.equal(missing.faultString.replace('never-here.com', 'N'));
      expect(missing.faultString).to.equal('Table Domain does not contain row with ID never-here.com.');
    });

    it('DomainExpirationDateGet_API answers the integer NULL while the registry has not confirmed the domain', async () => {
      const id = await world.server.services.domains.recordRegisteredDomain(world.fresh.db, provider, { accountId: custA.accountId, name: 'waiting.com', registrarInstanceId: registrarId, expiresAt: null, status: 'pending' });
      expect(result(await rpc(custA, 'DomainExpirationDateGet_API', ['waiting.com']))).to.deep.equal([INT_NULL]);
      await world.fresh.db('domains').where({ id }).del();
    });

    it('DomainTransferKeyIsRequired_API follows the TLD offer (zone or full name)', async () => {
      expect(result(await rpc(custA, 'DomainTransferKeyIsRequired_API', ['com']))).to.deep.equal([1]);
      expect(result(await rpc(custA, 'DomainTransferKeyIsRequired_API', ['example.net']))).to.deep.equal([0]);
      expect(fault(await rpc(custA, 'DomainTransferKeyIsRequired_API', ['xyz'])).faultString).to.contain('.xyz is not sold here');
    });
  });

  describe('the sync job', () => {
    it('brings expiry and status from the registrar in batches, audited with domain.synced events', async () => {
      const { domains } = world.server.services;
      const extra = await registered(custB.accountId, 'charlie-shop.com');
      const renewed = await registrar.renew({ operationId: `test-renew-${++seq}`, name: 'bravo-shop.com', years: 2 });
      expect(renewed.status).to.equal('success');
      const gone = await registrar.delete({ operationId: `test-del-${++seq}`, name: 'charlie-shop.com' });
      expect(gone.status).to.equal('success');
      const before = await world.fresh.db('audit_log').where({ operation: 'SyncDomain' }).count({ n: '*' });
      const r = await domains.sync(provider, 1);
      expect(r).to.deep.equal({ checked: 3, changed: 2, failedBatches: 0 });
      const bravo = (await world.fresh.db('domains').where({ id: domainB }).first()) as { expires_at: unknown; status: string };
      expect(new Date(Number(bravo.expires_at)).toISOString()).to.equal(renewed.status === 'success' ? renewed.result.expiresAt : '');
      expect(bravo.status).to.equal('active');
      expect(((await world.fresh.db('domains').where({ id: extra }).first('status')) as { status: string }).status).to.equal('transferred_away');
      const after = await world.fresh.db('audit_log').where({ operation: 'SyncDomain' }).count({ n: '*' });
      expect(Number(after[0].n) - Number(before[0].n)).to.equal(2);
      const events = await world.fresh.db('events').where({ name: 'domain.synced' }).select('object_id');
      expect(events.map((e: { object_id: string }) => Number(e.object_id)).sort()).to.deep.equal([domainB, extra].sort());
      // A second run finds nothing new; the gone domain is no longer asked about.
      expect(await domains.sync(provider)).to.deep.equal({ checked: 2, changed: 0, failedBatches: 0 });
    });

    it('a domain transferred away refuses SetNameservers and GetEppCode with NOT_ALLOWED on the field it was named by, and nothing is asked of the registrar', async () => {
      const gone = await registered(custB.accountId, 'delta-shop.com');
      await world.fresh.db('domains').where({ id: gone }).update({ status: 'transferred_away' });
      const c = await soapClient(custB.login, custB.password);
      const byId = await soapFault(c.SetNameserversAsync({ domainId: gone, nameservers: { nameserver: ['ns1.new.example'] } }));
      expect(byId).to.include({ code: 'NOT_ALLOWED', field: 'domainId' });
      expect(byId.message).to.equal('delta-shop.com is transferred away: it is no longer held here.');
      expect(await soapFault(c.GetEppCodeAsync({ name: 'delta-shop.com' }))).to.include({ code: 'NOT_ALLOWED', field: 'name' });
      const info = await registrar.getInfo({ operationId: `test-info-${++seq}`, name: 'delta-shop.com' });
      expect(info.status === 'success' ? info.result.nameservers : null).to.deep.equal(['ns1.host.example', 'ns2.host.example']);
    });
  });
});
