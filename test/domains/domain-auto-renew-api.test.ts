import { expect } from 'chai';
import { BasicAuthSecurity, createClientAsync, type Client } from 'soap';
import { ManualClock } from '../../src/clock';
import type { Actor } from '../../src/context';
import { toNumber } from '../../src/db/knex';
import type { Registrar } from '../../src/plugins/sdk';
import { accountWithApiUser, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { dialect } from '../helpers/db';

const CONTACTS = { registrant: { name: 'Ari Renew', email: 'ari@example.com', phone: '+1.5555550100', street: ['1 Main St'], city: 'Springfield', countryCode: 'US' } };

interface SoapFault {
  root?: { Envelope?: { Body?: { Fault?: { detail?: { Error?: { code?: string; message?: string; field?: string } } } } } };
}
type ApiUser = Awaited<ReturnType<typeof accountWithApiUser>>;
/** The domain as node-soap reads it from the WSDL's types. */
interface WireDomain {
  domainId: number | string;
  name: string;
  autoRenew: boolean;
}

describe(`domains: SetDomainAutoRenew and GetDomain's autoRenew through SOAP, and the billing run (${dialect})`, function () {
  this.timeout(120_000);
  const clock = new ManualClock('2026-01-15T00:00:00Z');
  let world: ApiWorld;
  let provider: Actor;
  let registrarId: number;
  let registrar: Registrar;
  let resellerA: ApiUser;
  let resellerB: ApiUser;
  let custA: ApiUser;
  let cust: ApiUser;
  let seq = 0;

  /** Registers the name at the sandbox registrar (expiry one year from the clock) and records it as the order saga does. */
  async function registered(accountId: number, name: string, status?: 'pending'): Promise<{ id: number; expiresAt: number }> {
    const r = await registrar.register({ operationId: `ar-reg-${++seq}`, name, years: 1, contacts: CONTACTS });
    if (r.status !== 'success') throw new Error(`sandbox refused ${name}`);
    const id = await world.server.services.domains.recordRegisteredDomain(world.fresh.db, provider, { accountId, name, registrarInstanceId: registrarId, expiresAt: new Date(r.result.expiresAt), status });
    return { id, expiresAt: Date.parse(r.result.expiresAt) };
  }

  async function client(who: ApiUser): Promise<Client> {
    const c = await createClientAsync(`${world.url}/soap/provisioning?wsdl`);
    c.setSecurity(new BasicAuthSecurity(who.login, who.password));
    return c;
  }
  async function setAutoRenew(who: ApiUser, args: Record<string, unknown>): Promise<WireDomain> {
    const [r] = (await (await client(who)).SetDomainAutoRenewAsync(args)) as [{ domain: WireDomain }];
    return r.domain;
  }
  async function refusal(who: ApiUser, args: Record<string, unknown>) {
    let f: SoapFault | undefined;
    await (await client(who)).SetDomainAutoRenewAsync(args).then(
      () => expect.fail('expected a SOAP fault'),
      (e: SoapFault) => (f = e),
    );
    return f!.root!.Envelope!.Body!.Fault!.detail!.Error!;
  }

  const db = () => world.fresh.db;
  const flag = async (id: number) => Boolean(toNumber(((await db()('domains').where({ id }).first('auto_renew')) as { auto_renew: unknown }).auto_renew));
  const written = async (id: number) => ({
    audit: ((await db()('audit_log').where({ operation: 'SetDomainAutoRenew', object_type: 'domain', object_id: String(id) }).orderBy('id').select('details')) as { details: string }[]).map((a) => JSON.parse(a.details) as Record<string, unknown>),
    events: ((await db()('events').where({ name: 'domain.auto_renew_changed', object_type: 'domain', object_id: String(id) }).orderBy('id').select('payload')) as { payload: string }[]).map((e) => JSON.parse(e.payload) as Record<string, unknown>),
  });
  const charges = async (id: number) =>
    (await db()('billing_charges').where({ domain_id: id }).orderBy('id').select('charge_key', 'document_id', 'amount')) as { charge_key: string; document_id: number | null; amount: unknown }[];
  const invoice = async (id: number) => (await db()('documents').where({ id }).first('status', 'total', 'open_amount', 'number')) as { status: string; total: unknown; open_amount: unknown; number: string };
  const run = (asOf: string) => {
    clock.set(asOf);
    return world.server.services.billingRun.run({ asOf: new Date(asOf), startedBy: 'test' });
  };

  before(async () => {
    world = await startApiWorld({ clock });
    provider = await providerActor(world);
    const { pluginInstances, tlds } = world.server.services;
    registrarId = await pluginInstances.create(provider, { kind: 'registrar', plugin: 'sandbox', name: 'ar-registrar' });
    registrar = await pluginInstances.instantiate<Registrar>(registrarId);
    await tlds.create(provider, { tld: 'com', registrarInstanceId: registrarId, prices: [{ action: 'register', years: 1, amount: 1299n }, { action: 'renew', years: 1, amount: 1499n }] });
    resellerA = await accountWithApiUser(world, 'reseller', 'AR Reseller A');
    resellerB = await accountWithApiUser(world, 'reseller', 'AR Reseller B');
    custA = await accountWithApiUser(world, 'customer', 'AR Customer of A', resellerA.accountId);
    // The provider's customer, without a pay tool: the billing run's invoices stay open (unpaid).
    cust = await accountWithApiUser(world, 'customer', 'AR Customer');
  });
  after(() => world?.close());

  it('GetDomain shows autoRenew as the last element of the domain; switching it off and on again is audited with domain.auto_renew_changed; the same value again writes nothing', async () => {
    const dom = await registered(cust.accountId, 'flag-me.com');
    const c = await client(cust);
    await c.GetDomainAsync({ name: 'flag-me.com' });
    expect(c.lastResponse as string).to.match(/<\/(\w+:)?nameservers><(\w+:)?autoRenew>true<\/(\w+:)?autoRenew><\/(\w+:)?domain>/);

    const off = await setAutoRenew(cust, { name: 'flag-me.com', autoRenew: false });
    expect([Number(off.domainId), off.name, off.autoRenew]).to.deep.equal([dom.id, 'flag-me.com', false]);
    expect(await flag(dom.id)).to.equal(false);
    await c.GetDomainAsync({ domainId: dom.id });
    expect(c.lastResponse as string).to.match(/<(\w+:)?autoRenew>false<\/(\w+:)?autoRenew>/);
    expect(await written(dom.id)).to.deep.equal({ audit: [{ name: 'flag-me.com', autoRenew: false }], events: [{ domainId: dom.id, name: 'flag-me.com', autoRenew: false }] });

    // The value it already has: answered, nothing written.
    const again = await setAutoRenew(cust, { domainId: dom.id, autoRenew: false });
    expect(again.autoRenew).to.equal(false);
    expect((await written(dom.id)).audit).to.have.length(1);
    expect((await written(dom.id)).events).to.have.length(1);

    const on = await setAutoRenew(cust, { domainId: dom.id, name: 'flag-me.com', autoRenew: true, idempotencyKey: 'ar-on-1' });
    expect(on.autoRenew).to.equal(true);
    // The same key again answers the same, without a second change.
    expect((await setAutoRenew(cust, { domainId: dom.id, name: 'flag-me.com', autoRenew: true, idempotencyKey: 'ar-on-1' })).autoRenew).to.equal(true);
    // ... and with other arguments it is a CONFLICT, even where the call changed nothing.
    expect((await setAutoRenew(cust, { domainId: dom.id, autoRenew: true, idempotencyKey: 'ar-noop-1' })).autoRenew).to.equal(true);
    expect(await refusal(cust, { domainId: dom.id, autoRenew: false, idempotencyKey: 'ar-noop-1' })).to.include({ code: 'CONFLICT', field: 'idempotencyKey' });
    expect(await flag(dom.id)).to.equal(true);
    expect(await written(dom.id)).to.deep.equal({
      audit: [{ name: 'flag-me.com', autoRenew: false }, { name: 'flag-me.com', autoRenew: true }],
      events: [{ domainId: dom.id, name: 'flag-me.com', autoRenew: false }, { domainId: dom.id, name: 'flag-me.com', autoRenew: true }],
    });
  });

  it('scoped as SetNameservers: the owner and its reseller may, another reseller gets NOT_FOUND and changes nothing; a missing autoRenew is INVALID_ARGUMENT', async () => {
    const dom = await registered(custA.accountId, 'scoped-me.com');
    const foreign = await refusal(resellerB, { domainId: dom.id, autoRenew: false });
    expect(foreign).to.include({ code: 'NOT_FOUND' });
    expect((await refusal(cust, { name: 'scoped-me.com', autoRenew: false })).code).to.equal('NOT_FOUND');
    expect(await flag(dom.id)).to.equal(true);
    expect((await written(dom.id)).audit).to.have.length(0);

    expect((await setAutoRenew(resellerA, { domainId: dom.id, autoRenew: false })).autoRenew).to.equal(false);
    expect((await setAutoRenew(custA, { domainId: dom.id, autoRenew: true })).autoRenew).to.equal(true);
    expect((await written(dom.id)).events.map((e) => e.autoRenew)).to.deep.equal([false, true]);

    expect(await refusal(custA, { domainId: dom.id })).to.include({ code: 'INVALID_ARGUMENT', field: 'autoRenew' });
  });

  it('refuses a domain that is not active (pending, expired) with NOT_ALLOWED on the field it was named by, writing nothing', async () => {
    const pending = await registered(cust.accountId, 'pending-me.com', 'pending');
    const byName = await refusal(cust, { name: 'pending-me.com', autoRenew: false });
    expect(byName).to.include({ code: 'NOT_ALLOWED', field: 'name' });
    expect(byName.message).to.contain('pending-me.com is pending');
    const expired = await registered(cust.accountId, 'expired-me.com');
    await db()('domains').where({ id: expired.id }).update({ status: 'expired' });
    expect(await refusal(cust, { domainId: expired.id, autoRenew: false })).to.include({ code: 'NOT_ALLOWED', field: 'domainId' });
    for (const id of [pending.id, expired.id]) {
      expect(await flag(id)).to.equal(true);
      expect(await written(id)).to.deep.equal({ audit: [], events: [] });
    }
  });

  it('the billing run: off -> its renewal is not billed; on again -> billed; an unpaid renewal line is credited when switched off and not renewed when the invoice is paid; a paid one stays', async () => {
    const svc = world.server.services;
    // The earlier tests' domains are out of this one.
    await db()('domains').update({ auto_renew: false });
    clock.set('2026-02-01T00:00:00Z');
    const off = await registered(cust.accountId, 'lapse-me.com');
    const kept = await registered(cust.accountId, 'keep-me.com');
    const declined = await registered(cust.accountId, 'decline-me.com');
    const lone = await registered(cust.accountId, 'lone-me.com');
    expect(new Date(off.expiresAt).toISOString()).to.equal('2027-02-01T00:00:00.000Z');
    // lone-me.com is billed alone on the first run (its expiry is 10 days earlier in the registry's answer).
    await db()('domains').where({ id: lone.id }).update({ expires_at: off.expiresAt - 10 * 86_400_000 });
    await setAutoRenew(cust, { name: 'lapse-me.com', autoRenew: false });

    // 26 days before lone-me.com's expiry (it alone is within 30 days): one invoice with one line, unpaid.
    const first = await run('2026-12-28T00:00:00Z');
    expect(first).to.deep.include({ domainRenewals: 1, invoices: 1 });
    const [loneCharge] = await charges(lone.id);
    const loneInvoice = toNumber(loneCharge!.document_id);
    expect((await invoice(loneInvoice)).status).to.equal('open');

    // Switched off while unpaid: a credit memo of the line pays the invoice off, and no renewal is asked of the registrar.
    await setAutoRenew(cust, { domainId: lone.id, autoRenew: false });
    const memos = (await db()('documents').where({ type: 'credit_memo', related_document_id: loneInvoice }).select('total', 'description')) as { total: unknown; description: string }[];
    expect(memos.map((m) => toNumber(m.total))).to.deep.equal([1499]);
    expect(memos[0]!.description).to.contain('Domain lone-me.com: renewal declined');
    expect((await invoice(loneInvoice)).status).to.equal('paid');
    expect(await db()('tasks').where({ kind: 'domain.renew', object_id: String(lone.id) })).to.have.length(0);
    expect(await db()('events').where({ name: 'domain.renewal_requested', object_id: String(lone.id) })).to.have.length(0);
    expect((await charges(lone.id)).map((c) => c.charge_key)).to.deep.equal([`domain:${lone.id}:renew:${off.expiresAt - 10 * 86_400_000}:declined:${(await db()('billing_charges').where({ domain_id: lone.id }).first('id')).id}`]);

    // 26 days before the others' expiry: keep-me.com and decline-me.com on one invoice; lapse-me.com (off) not billed.
    const second = await run('2027-01-06T00:00:00Z');
    expect(second).to.deep.include({ domainRenewals: 2, invoices: 1 });
    expect(await charges(off.id)).to.have.length(0);
    const [keptCharge] = await charges(kept.id);
    const [declinedCharge] = await charges(declined.id);
    const shared = toNumber(keptCharge!.document_id);
    expect(toNumber(declinedCharge!.document_id)).to.equal(shared);
    expect(toNumber((await invoice(shared)).open_amount)).to.equal(2998);

    // Off for one of its lines: that line is credited, the invoice stays open for the other.
    await setAutoRenew(cust, { domainId: declined.id, autoRenew: false });
    expect(((await db()('documents').where({ type: 'credit_memo', related_document_id: shared }).select('total')) as { total: unknown }[]).map((m) => toNumber(m.total))).to.deep.equal([1499]);
    expect(await invoice(shared)).to.deep.include({ status: 'open' });
    expect(toNumber((await invoice(shared)).open_amount)).to.equal(1499);

    // Paid: only keep-me.com goes to the registrar.
    await svc.documents.recordPayment(provider, { accountId: cust.accountId, amount: 1499n, method: 'wire', invoiceId: shared });
    expect((await invoice(shared)).status).to.equal('paid');
    const tasks = (await db()('tasks').where({ kind: 'domain.renew' }).select('object_id')) as { object_id: string }[];
    expect(tasks.map((t) => t.object_id)).to.deep.equal([String(kept.id)]);

    // A paid renewal is not undone: switching keep-me.com off now credits nothing and keeps its task.
    await setAutoRenew(cust, { domainId: kept.id, autoRenew: false });
    expect(await db()('documents').where({ type: 'credit_memo', related_document_id: shared })).to.have.length(1);
    expect(await db()('tasks').where({ kind: 'domain.renew', object_id: String(kept.id) })).to.have.length(1);

    // On again: the next run bills lapse-me.com and (its declined renewal re-keyed) decline-me.com and lone-me.com anew.
    for (const id of [off.id, declined.id, lone.id]) await setAutoRenew(cust, { domainId: id, autoRenew: true });
    const third = await run('2027-01-07T00:00:00Z');
    expect(third).to.deep.include({ domainRenewals: 3, invoices: 1 });
    expect((await charges(off.id)).map((c) => c.charge_key)).to.deep.equal([`domain:${off.id}:renew:${off.expiresAt}`]);
    expect((await charges(declined.id)).map((c) => c.charge_key)).to.deep.equal([`domain:${declined.id}:renew:${declined.expiresAt}:declined:${(await db()('billing_charges').where({ domain_id: declined.id }).orderBy('id').first('id')).id}`, `domain:${declined.id}:renew:${declined.expiresAt}`]);
    expect((await charges(lone.id)).map((c) => c.charge_key)[1]).to.equal(`domain:${lone.id}:renew:${lone.expiresAt - 10 * 86_400_000}`);
    const fresh = toNumber((await charges(off.id))[0]!.document_id);
    expect(await invoice(fresh)).to.deep.include({ status: 'open' });
    expect(toNumber((await invoice(fresh)).total)).to.equal(3 * 1499);
  });
});
