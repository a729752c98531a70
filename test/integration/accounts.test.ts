import { expect } from 'chai';
import type { AccountInput } from '../../src/accounts/accounts-service';
import { isInSubtree } from '../../src/accounts/scope';
import type { Actor } from '../../src/context';
import { AppError } from '../../src/domain/errors';
import { accountActor, makeWorld, type World } from '../helpers/world';
import { failure } from '../helpers/assertions';


async function count(world: World, table: string, where: Record<string, unknown> = {}): Promise<number> {
  const [{ n }] = (await world.deps.db(table).where(where).count({ n: '*' })) as { n: number | string }[];
  return Number(n);
}

const admin = (name: string) => ({ firstName: name, lastName: 'Admin', email: `${name.toLowerCase().replace(/\W+/g, '')}@example.com` });

function customerInput(vendorAccountId: number, name: string, extra: Partial<AccountInput> = {}): AccountInput {
  return { type: 'customer', vendorAccountId, companyName: name, contacts: { admin: admin(name) }, ...extra };
}

let world: World;

describe('accounts', () => {
  beforeEach(async () => {
    world = await makeWorld();
  });
  afterEach(async () => {
    await world?.close();
  });

  describe('the account tree', () => {
    it('builds provider -> basic, advanced and affiliate resellers -> sub-reseller -> customer, each naming its vendor', async () => {
      const { accounts } = world.services;
      const p = world.provider;
      const basic = await accounts.create(p, { type: 'reseller', resellerKind: 'basic', companyName: 'Basic', contacts: { admin: admin('Basic') } });
      const advanced = await accounts.create(p, { type: 'reseller', resellerKind: 'advanced', companyName: 'Adv', contacts: { admin: admin('Adv') } });
      const affiliate = await accounts.create(p, { type: 'reseller', resellerKind: 'affiliate', companyName: 'Aff', contacts: { admin: admin('Aff') } });
      const sub = await accounts.create(p, { type: 'reseller', vendorAccountId: advanced, resellerKind: 'basic', companyName: 'Sub', contacts: { admin: admin('Sub') } });
      const customer = await accounts.create(p, customerInput(sub, 'Cust'));

      const got = await Promise.all([basic, advanced, affiliate, sub, customer].map((id) => accounts.get(p, id)));
      expect(got.map((a) => [a.type, a.resellerKind, a.vendorAccountId])).to.deep.equal([
        ['reseller', 'basic', p.accountId],
        ['reseller', 'advanced', p.accountId],
        ['reseller', 'affiliate', p.accountId],
        ['reseller', 'basic', advanced],
        ['customer', null, sub],
      ]);
      const row = (await world.deps.db('accounts').where({ id: customer }).first()) as { path: string };
      expect(row.path).to.equal(`${p.accountPath}${advanced}/${sub}/${customer}/`);
    });

    it('gives a new account status active, a zero balance and the creation instant of the clock', async () => {
      const id = await world.services.accounts.create(world.provider, customerInput(world.provider.accountId, 'Fresh'));
      const a = await world.services.accounts.get(world.provider, id);
      expect(a.status).to.equal('active');
      expect(a.balance).to.equal(0n);
      expect(a.taxStatus).to.equal('taxable');
      expect(a.createdAt.toISOString()).to.equal('2026-01-15T10:00:00.000Z');
    });

    it('refuses a customer under an affiliate with NOT_ALLOWED on vendorAccountId, creating nothing', async () => {
      const { accounts } = world.services;
      const affiliate = await accounts.create(world.provider, { type: 'reseller', resellerKind: 'affiliate', companyName: 'Aff', contacts: { admin: admin('Aff') } });
      const before = await count(world, 'accounts');
      await failure(accounts.create(world.provider, customerInput(affiliate, 'Referred')), 'NOT_ALLOWED', 'vendorAccountId');
      expect(await count(world, 'accounts')).to.equal(before);
    });

    it('refuses any account under a customer with NOT_ALLOWED on vendorAccountId', async () => {
      const { accounts } = world.services;
      const customer = await accounts.create(world.provider, customerInput(world.provider.accountId, 'Leaf'));
      await failure(accounts.create(world.provider, customerInput(customer, 'Below')), 'NOT_ALLOWED', 'vendorAccountId');
      await failure(
        accounts.create(world.provider, { type: 'reseller', vendorAccountId: customer, companyName: 'R', contacts: { admin: admin('R') } }),
        'NOT_ALLOWED',
        'vendorAccountId',
      );
    });

    it('refuses a vendor that does not exist, or lies outside the caller subtree, on vendorAccountId', async () => {
      const a = await accountActor(world, world.provider, 'reseller', 'Alpha');
      const b = await accountActor(world, world.provider, 'reseller', 'Beta');
      await failure(world.services.accounts.create(world.provider, customerInput(99999, 'Ghost')), 'INVALID_ARGUMENT', 'vendorAccountId');
      await failure(world.services.accounts.create(a, customerInput(b.accountId, 'Poached')), 'INVALID_ARGUMENT', 'vendorAccountId');
    });

    it('creates a reseller actor own customers under itself when it names no vendor', async () => {
      const r = await accountActor(world, world.provider, 'reseller', 'Owner');
      const id = await world.services.accounts.create(r, { type: 'customer', companyName: 'Mine', contacts: { admin: admin('Mine') } });
      expect((await world.services.accounts.get(r, id)).vendorAccountId).to.equal(r.accountId);
    });

    it('makes a reseller basic unless told otherwise', async () => {
      const r = await accountActor(world, world.provider, 'reseller', 'Plain');
      expect((await world.services.accounts.get(world.provider, r.accountId)).resellerKind).to.equal('basic');
    });
  });

  describe('currency', () => {
    it('defaults to the vendor currency', async () => {
      const { accounts } = world.services;
      const adv = await accounts.create(world.provider, { type: 'reseller', resellerKind: 'advanced', currency: 'EUR', companyName: 'Euro', contacts: { admin: admin('Euro') } });
      const customer = await accounts.create(world.provider, customerInput(adv, 'EuroCust'));
      expect((await accounts.get(world.provider, adv)).currency).to.equal('EUR');
      expect((await accounts.get(world.provider, customer)).currency).to.equal('EUR');
      const direct = await accounts.create(world.provider, customerInput(world.provider.accountId, 'UsCust'));
      expect((await accounts.get(world.provider, direct)).currency).to.equal('USD');
    });

    it('refuses a basic reseller a currency other than its vendor currency, on currency', async () => {
      const { accounts } = world.services;
      await failure(
        accounts.create(world.provider, { type: 'reseller', resellerKind: 'basic', currency: 'EUR', companyName: 'B', contacts: { admin: admin('B') } }),
        'INVALID_ARGUMENT',
        'currency',
      );
      const same = await accounts.create(world.provider, { type: 'reseller', resellerKind: 'basic', currency: 'USD', companyName: 'B', contacts: { admin: admin('B') } });
      expect((await accounts.get(world.provider, same)).currency).to.equal('USD');
    });

    it('refuses an unknown currency code on currency', async () => {
      await failure(world.services.accounts.create(world.provider, customerInput(world.provider.accountId, 'X', { currency: 'XYZ' })), 'INVALID_ARGUMENT', 'currency');
    });

    it('does not let an update move a basic reseller off its vendor currency', async () => {
      const { accounts } = world.services;
      const basic = await accounts.create(world.provider, { type: 'reseller', resellerKind: 'basic', companyName: 'B', contacts: { admin: admin('B') } });
      await failure(accounts.update(world.provider, basic, { currency: 'EUR' }), 'INVALID_ARGUMENT', 'currency');
      expect((await accounts.get(world.provider, basic)).currency).to.equal('USD');
    });

    it('lets an advanced reseller change currency, but not once it has basic resellers selling in it', async () => {
      const { accounts } = world.services;
      const adv = await accounts.create(world.provider, { type: 'reseller', resellerKind: 'advanced', companyName: 'A', contacts: { admin: admin('A') } });
      expect((await accounts.update(world.provider, adv, { currency: 'EUR' })).currency).to.equal('EUR');
      await accounts.create(world.provider, { type: 'reseller', vendorAccountId: adv, resellerKind: 'basic', companyName: 'Sub', contacts: { admin: admin('Sub') } });
      await failure(accounts.update(world.provider, adv, { currency: 'GBP' }), 'INVALID_ARGUMENT', 'currency');
      expect((await accounts.get(world.provider, adv)).currency).to.equal('EUR');
    });

    it('does not let an update turn an advanced reseller in another currency into a basic one', async () => {
      const { accounts } = world.services;
      const adv = await accounts.create(world.provider, { type: 'reseller', resellerKind: 'advanced', currency: 'EUR', companyName: 'A', contacts: { admin: admin('A') } });
      await failure(accounts.update(world.provider, adv, { resellerKind: 'basic' }), 'INVALID_ARGUMENT', 'currency');
      expect((await accounts.get(world.provider, adv)).resellerKind).to.equal('advanced');
    });
  });

  describe('contacts and validation', () => {
    it('stores and returns the admin, billing, technical and personal contacts and the address', async () => {
      const { accounts } = world.services;
      const id = await accounts.create(world.provider, {
        type: 'customer',
        companyName: '  Bluebird Bakery  ',
        externalId: 'crm-42',
        taxStatus: 'exempt',
        address: { address1: '22 Baker St', city: 'Portland', state: 'OR', zip: '97201', country: 'us' },
        contacts: {
          admin: { firstName: 'Carla', middleName: 'M', lastName: 'Customer', email: 'carla@bluebird.example', phone: '5550100', phoneCountryCode: '1' },
          billing: { firstName: 'Bill', lastName: 'Payer', email: 'billing@bluebird.example' },
          technical: { firstName: 'Tess', lastName: 'Tech', email: 'tech@bluebird.example', fax: '5550199' },
          personal: { firstName: 'Pat', lastName: 'Person' },
        },
      });
      const a = await accounts.get(world.provider, id);
      expect(a.companyName).to.equal('Bluebird Bakery');
      expect(a.externalId).to.equal('crm-42');
      expect(a.taxStatus).to.equal('exempt');
      expect(a.address).to.deep.equal({ address1: '22 Baker St', address2: '', city: 'Portland', state: 'OR', zip: '97201', country: 'US', postalAddress: '' });
      expect(Object.keys(a.contacts).sort()).to.deep.equal(['admin', 'billing', 'personal', 'technical']);
      expect(a.contacts.admin).to.deep.include({ firstName: 'Carla', middleName: 'M', lastName: 'Customer', email: 'carla@bluebird.example', phone: '5550100', phoneCountryCode: '1' });
      expect(a.contacts.billing).to.deep.include({ firstName: 'Bill', lastName: 'Payer', email: 'billing@bluebird.example' });
      expect(a.contacts.technical).to.deep.include({ email: 'tech@bluebird.example', fax: '5550199' });
      expect(a.contacts.personal).to.deep.include({ firstName: 'Pat', lastName: 'Person', email: '' });
    });

  });

  describe('isInSubtree', () => {
    it('is true for the account itself and its descendants, false for siblings and ancestors', async () => {
      const { db } = world.deps;
      const r1 = await accountActor(world, world.provider, 'reseller', 'R1');
      const r2 = await accountActor(world, world.provider, 'reseller', 'R2');
      const sub = await accountActor(world, r1, 'reseller', 'Sub');
      const c = await accountActor(world, sub, 'customer', 'C');
      for (const inside of [r1, sub, c]) expect(await isInSubtree(db, r1.accountPath, inside.accountId), `#${inside.accountId} below R1`).to.equal(true);
      expect(await isInSubtree(db, r1.accountPath, r2.accountId), 'sibling').to.equal(false);
      expect(await isInSubtree(db, r1.accountPath, world.provider.accountId), 'parent').to.equal(false);
      expect(await isInSubtree(db, sub.accountPath, r1.accountId), 'grandparent of C').to.equal(false);
      expect(await isInSubtree(db, c.accountPath, sub.accountId), 'vendor of C').to.equal(false);
      expect(await isInSubtree(db, world.provider.accountPath, c.accountId), 'provider sees all').to.equal(true);
      expect(await isInSubtree(db, r1.accountPath, 99999), 'missing').to.equal(false);
    });

    it('does not mistake an account whose id starts with the same digits for a descendant', async () => {
      const { db } = world.deps;
      const made: Actor[] = [];
      for (let i = 0; i < 20; i++) made.push(await accountActor(world, world.provider, 'reseller', `R${i}`));
      const two = made.find((a) => a.accountId === 2)!;
      const twenty = made.find((a) => a.accountId === 20)!;
      expect(two, 'account #2').to.not.equal(undefined);
      expect(twenty, 'account #20').to.not.equal(undefined);
      expect(await isInSubtree(db, two.accountPath, twenty.accountId)).to.equal(false);
      await failure(world.services.accounts.get(two, twenty.accountId), 'NOT_FOUND');
    });
  });

  describe('scoping', () => {
    let a: Actor;
    let b: Actor;
    let bCustomer: number;
    beforeEach(async () => {
      a = await accountActor(world, world.provider, 'reseller', 'Alpha');
      b = await accountActor(world, world.provider, 'reseller', 'Beta');
      bCustomer = (await accountActor(world, b, 'customer', 'BetaCust')).accountId;
    });

    const shape = (e: AppError, id: number) => e.message.replace(String(id), '<id>');

    it("answers another reseller's customer on get exactly like a missing account", async () => {
      const hidden = await failure(world.services.accounts.get(a, bCustomer), 'NOT_FOUND');
      const missing = await failure(world.services.accounts.get(a, 99999), 'NOT_FOUND');
      expect(shape(hidden, bCustomer)).to.equal(shape(missing, 99999));
      expect(hidden.field).to.equal(missing.field);
    });

    it("answers another reseller's customer on update like a missing account, and changes nothing", async () => {
      const hidden = await failure(world.services.accounts.update(a, bCustomer, { companyName: 'Hijacked' }), 'NOT_FOUND');
      const missing = await failure(world.services.accounts.update(a, 99999, { companyName: 'Hijacked' }), 'NOT_FOUND');
      expect(shape(hidden, bCustomer)).to.equal(shape(missing, 99999));
      expect((await world.services.accounts.get(b, bCustomer)).companyName).to.equal('BetaCust');
      expect(await count(world, 'audit_log', { operation: 'UpdateAccount' })).to.equal(0);
    });

    it("answers a list by another reseller (or its customer) as vendor like a missing vendor", async () => {
      const hidden = await failure(world.services.accounts.list(a, { vendorAccountId: b.accountId }), 'NOT_FOUND');
      const missing = await failure(world.services.accounts.list(a, { vendorAccountId: 99999 }), 'NOT_FOUND');
      expect(shape(hidden, b.accountId)).to.equal(shape(missing, 99999));
      await failure(world.services.accounts.list(a, { vendorAccountId: bCustomer }), 'NOT_FOUND');
    });

    it('hides the parent vendor from a reseller and a reseller from its customer', async () => {
      await failure(world.services.accounts.get(a, world.provider.accountId), 'NOT_FOUND');
      const cust = await accountActor(world, a, 'customer', 'AlphaCust');
      await failure(world.services.accounts.get(cust, a.accountId), 'NOT_FOUND');
      expect((await world.services.accounts.get(cust, cust.accountId)).companyName).to.equal('AlphaCust');
    });

    it('lists only the accounts below the caller, never the caller itself', async () => {
      const mine = (await accountActor(world, a, 'customer', 'AlphaCust')).accountId;
      const { items, total } = await world.services.accounts.list(a, {});
      expect(items.map((x) => x.accountId)).to.deep.equal([mine]);
      expect(total).to.equal(1);
    });
  });

  describe('listing', () => {
    it('pages by page and pageSize in id order and reports the total', async () => {
      const r = await accountActor(world, world.provider, 'reseller', 'Pager');
      const ids: number[] = [];
      for (let i = 1; i <= 5; i++) ids.push(await world.services.accounts.create(r, customerInput(r.accountId, `C${i}`)));
      const page1 = await world.services.accounts.list(r, { pageSize: 2 });
      const page3 = await world.services.accounts.list(r, { page: 3, pageSize: 2 });
      const page4 = await world.services.accounts.list(r, { page: 4, pageSize: 2 });
      expect(page1.items.map((x) => x.accountId)).to.deep.equal(ids.slice(0, 2));
      expect(page3.items.map((x) => x.accountId)).to.deep.equal(ids.slice(4));
      expect(page4.items).to.deep.equal([]);
      expect([page1.total, page3.total, page4.total]).to.deep.equal([5, 5, 5]);
      await failure(world.services.accounts.list(r, { pageSize: 501 }), 'INVALID_ARGUMENT', 'pageSize');
      await failure(world.services.accounts.list(r, { page: 0 }), 'INVALID_ARGUMENT', 'page');
    });

    it('filters by vendor and by status', async () => {
      const { accounts } = world.services;
      const r1 = await accountActor(world, world.provider, 'reseller', 'R1');
      const r2 = await accountActor(world, world.provider, 'reseller', 'R2');
      const c1 = await accounts.create(world.provider, customerInput(r1.accountId, 'C1'));
      const c2 = await accounts.create(world.provider, customerInput(r1.accountId, 'C2'));
      const c3 = await accounts.create(world.provider, customerInput(r2.accountId, 'C3'));
      await accounts.update(world.provider, c2, { status: 'suspended' });

      const byR1 = await accounts.list(world.provider, { vendorAccountId: r1.accountId });
      expect(byR1.items.map((x) => x.accountId)).to.deep.equal([c1, c2]);
      expect(byR1.total).to.equal(2);
      const suspended = await accounts.list(world.provider, { status: 'suspended' });
      expect(suspended.items.map((x) => x.accountId)).to.deep.equal([c2]);
      const activeOfR2 = await accounts.list(world.provider, { vendorAccountId: r2.accountId, status: 'active' });
      expect(activeOfR2.items.map((x) => x.accountId)).to.deep.equal([c3]);
      await failure(accounts.list(world.provider, { status: 'sleeping' }), 'INVALID_ARGUMENT', 'status');
    });

    it('searches company names literally, treating _ and % as plain characters', async () => {
      const { accounts } = world.services;
      const underscore = await accounts.create(world.provider, customerInput(world.provider.accountId, 'web_shop'));
      await accounts.create(world.provider, customerInput(world.provider.accountId, 'webXshop'));
      const percent = await accounts.create(world.provider, customerInput(world.provider.accountId, '100% uptime'));
      await accounts.create(world.provider, customerInput(world.provider.accountId, '100 uptime'));
      expect((await accounts.list(world.provider, { search: 'b_s' })).items.map((x) => x.accountId)).to.deep.equal([underscore]);
      expect((await accounts.list(world.provider, { search: '0%' })).items.map((x) => x.accountId)).to.deep.equal([percent]);
    });
  });

  describe('update', () => {
    it('changes fields and writes one audit record and one account.updated event', async () => {
      const { accounts } = world.services;
      const id = await accounts.create(world.provider, customerInput(world.provider.accountId, 'Old Name'));
      world.clock.advance(60_000);
      const auditBefore = await count(world, 'audit_log');
      const eventsBefore = await count(world, 'events');
      const after = await accounts.update(world.provider, id, {
        companyName: 'New Name',
        taxStatus: 'exempt',
        address: { city: 'Berlin', country: 'de' },
        contacts: { admin: { email: 'new@example.com' }, billing: { firstName: 'Bill', lastName: 'Payer', email: 'bill@example.com' } },
      });
      expect(after).to.deep.include({ companyName: 'New Name', taxStatus: 'exempt' });
      expect(after.address).to.deep.include({ city: 'Berlin', country: 'DE' });
      expect(after.contacts.admin).to.deep.include({ firstName: 'Old Name', email: 'new@example.com' });
      expect(after.contacts.billing).to.deep.include({ firstName: 'Bill', email: 'bill@example.com' });
      expect(await accounts.get(world.provider, id)).to.deep.equal(after);

      expect(await count(world, 'audit_log')).to.equal(auditBefore + 1);
      expect(await count(world, 'events')).to.equal(eventsBefore + 1);
      const audit = await world.deps.db('audit_log').where({ operation: 'UpdateAccount' }).first();
      expect(audit).to.deep.include({ object_type: 'account', object_id: String(id), outcome: 'ok', channel: 'system' });
      expect(Number(audit.at)).to.equal(world.clock.now().getTime());
      expect(JSON.parse(audit.details).changed).to.include.members(['company_name', 'tax_status', 'city', 'country', 'contact.admin', 'contact.billing']);
      const event = await world.deps.db('events').where({ name: 'account.updated' }).first();
      expect(event).to.deep.include({ object_type: 'account', object_id: String(id) });
      expect(Number(event.account_id)).to.equal(id);
      expect(JSON.parse(event.payload)).to.deep.include({ accountId: id });
    });

    it('rolls back a failing update (bad e-mail): no field changes, no audit record, no event', async () => {
      const { accounts } = world.services;
      const id = await accounts.create(world.provider, customerInput(world.provider.accountId, 'Stable'));
      const before = await accounts.get(world.provider, id);
      const auditBefore = await count(world, 'audit_log');
      const eventsBefore = await count(world, 'events');
      await failure(
        accounts.update(world.provider, id, { companyName: 'Changed', address: { city: 'Elsewhere' }, contacts: { billing: { firstName: 'B', email: 'b@example.com' }, technical: { email: 'broken' } } }),
        'INVALID_ARGUMENT',
        'contacts.technical.email',
      );
      await failure(accounts.update(world.provider, id, { companyName: 'Changed', contacts: { admin: { email: 'broken@' } } }), 'INVALID_ARGUMENT', 'contact.email');
      expect(await accounts.get(world.provider, id)).to.deep.equal(before);
      expect(await count(world, 'audit_log')).to.equal(auditBefore);
      expect(await count(world, 'events')).to.equal(eventsBefore);
    });

    it('writes no audit record and no event when nothing is asked to change', async () => {
      const id = await world.services.accounts.create(world.provider, customerInput(world.provider.accountId, 'Same'));
      const auditBefore = await count(world, 'audit_log');
      await world.services.accounts.update(world.provider, id, {});
      expect(await count(world, 'audit_log')).to.equal(auditBefore);
    });

    it('names the status in the event when a vendor suspends an account below it', async () => {
      const id = await world.services.accounts.create(world.provider, customerInput(world.provider.accountId, 'Late Payer'));
      const after = await world.services.accounts.update(world.provider, id, { status: 'suspended' });
      expect(after.status).to.equal('suspended');
      expect(await count(world, 'events', { name: 'account.suspended', object_id: String(id) })).to.equal(1);
      await world.services.accounts.update(world.provider, id, { status: 'active' });
      expect(await count(world, 'events', { name: 'account.activated', object_id: String(id) })).to.equal(1);
    });

    it('does not let an account change its own status (NOT_ALLOWED on status)', async () => {
      const r = await accountActor(world, world.provider, 'reseller', 'Self');
      await failure(world.services.accounts.update(r, r.accountId, { status: 'closed' }), 'NOT_ALLOWED', 'status');
      expect((await world.services.accounts.get(r, r.accountId)).status).to.equal('active');
    });

    it('does not let a reseller change its own reseller kind (NOT_ALLOWED on resellerKind)', async () => {
      const r = await accountActor(world, world.provider, 'reseller', 'Climber');
      await failure(world.services.accounts.update(r, r.accountId, { resellerKind: 'advanced' }), 'NOT_ALLOWED', 'resellerKind');
      expect((await world.services.accounts.get(r, r.accountId)).resellerKind).to.equal('basic');
      const byVendor = await world.services.accounts.update(world.provider, r.accountId, { resellerKind: 'advanced' });
      expect(byVendor.resellerKind).to.equal('advanced');
    });

    it('does not turn a reseller that owns customers into an affiliate (NOT_ALLOWED on resellerKind)', async () => {
      const r = await accountActor(world, world.provider, 'reseller', 'Owner');
      await accountActor(world, r, 'customer', 'Owned');
      await failure(world.services.accounts.update(world.provider, r.accountId, { resellerKind: 'affiliate' }), 'NOT_ALLOWED', 'resellerKind');
      expect((await world.services.accounts.get(world.provider, r.accountId)).resellerKind).to.equal('basic');
    });

    it('refuses a reseller kind for a customer (INVALID_ARGUMENT on resellerKind)', async () => {
      const id = await world.services.accounts.create(world.provider, customerInput(world.provider.accountId, 'Cust'));
      await failure(world.services.accounts.update(world.provider, id, { resellerKind: 'basic' }), 'INVALID_ARGUMENT', 'resellerKind');
    });
  });

  describe('idempotencyKey', () => {
    it('returns the same id for the same key and input, creating one account and one audit record', async () => {
      const { accounts } = world.services;
      const input = customerInput(world.provider.accountId, 'Once', { idempotencyKey: 'create-once' });
      const first = await accounts.create(world.provider, input);
      const second = await accounts.create(world.provider, { ...input });
      expect(second).to.equal(first);
      expect(await count(world, 'accounts', { company_name: 'Once' })).to.equal(1);
      expect(await count(world, 'audit_log', { operation: 'CreateAccount' })).to.equal(1);
      expect(await count(world, 'events', { name: 'account.created', object_id: String(first) })).to.equal(1);
    });

    it('answers the same key with different input with CONFLICT on idempotencyKey, creating nothing more', async () => {
      const { accounts } = world.services;
      await accounts.create(world.provider, customerInput(world.provider.accountId, 'First', { idempotencyKey: 'k-1' }));
      const before = await count(world, 'accounts');
      await failure(accounts.create(world.provider, customerInput(world.provider.accountId, 'Second', { idempotencyKey: 'k-1' })), 'CONFLICT', 'idempotencyKey');
      expect(await count(world, 'accounts')).to.equal(before);
    });

    it('keeps keys private to the calling account: another caller with the same key creates its own account', async () => {
      const r1 = await accountActor(world, world.provider, 'reseller', 'R1');
      const r2 = await accountActor(world, world.provider, 'reseller', 'R2');
      const one = await world.services.accounts.create(r1, { type: 'customer', companyName: 'Same', contacts: { admin: admin('Same') }, idempotencyKey: 'shared-key' });
      const two = await world.services.accounts.create(r2, { type: 'customer', companyName: 'Same', contacts: { admin: admin('Same') }, idempotencyKey: 'shared-key' });
      expect(two).to.not.equal(one);
      expect((await world.services.accounts.get(r2, two)).vendorAccountId).to.equal(r2.accountId);
    });

    it('creates one account when two creates with the same key run concurrently', async () => {
      const { accounts } = world.services;
      const input = customerInput(world.provider.accountId, 'Racer', { idempotencyKey: 'race' });
      const ids = await Promise.all([accounts.create(world.provider, input), accounts.create(world.provider, { ...input }), accounts.create(world.provider, { ...input })]);
      expect(new Set(ids).size).to.equal(1);
      expect(await count(world, 'accounts', { company_name: 'Racer' })).to.equal(1);
      expect(await count(world, 'account_contacts', { account_id: ids[0] })).to.equal(1);
      expect(await count(world, 'audit_log', { operation: 'CreateAccount' })).to.equal(1);
    });

    it('creates separate accounts for concurrent creates without a key', async () => {
      const { accounts } = world.services;
      const ids = await Promise.all([1, 2, 3].map((i) => accounts.create(world.provider, customerInput(world.provider.accountId, `Par${i}`))));
      expect(new Set(ids).size).to.equal(3);
    });
  });
});

// Refusals create nothing, so these share one database (a fresh MariaDB database per test costs a second).
describe('account validation', () => {
  before(async () => {
    world = await makeWorld();
  });
  after(async () => {
    await world?.close();
  });

  const cases: [string, (vendor: number) => AccountInput, string][] = [
    ['an account type other than reseller or customer', (v) => ({ ...customerInput(v, 'T'), type: 'vendor' as 'customer' }), 'type'],
    ['no admin contact', (v) => ({ ...customerInput(v, 'T'), contacts: {} as AccountInput['contacts'] }), 'contact'],
    ['an admin contact with a malformed e-mail', (v) => customerInput(v, 'T', { contacts: { admin: { firstName: 'T', lastName: 'T', email: 'not-an-email' } } }), 'contact.email'],
    ['an admin contact without a first name', (v) => customerInput(v, 'T', { contacts: { admin: { lastName: 'T', email: 't@example.com' } } }), 'contact.firstName'],
    ['an admin contact without a last name', (v) => customerInput(v, 'T', { contacts: { admin: { firstName: 'T', email: 't@example.com' } } }), 'contact.lastName'],
    ['a country that is not ISO 3166 alpha-2', (v) => customerInput(v, 'T', { address: { country: 'USA' } }), 'contact.country'],
    ['a country with digits', (v) => customerInput(v, 'T', { address: { country: '1A' } }), 'contact.country'],
    ['a billing contact with a malformed e-mail', (v) => customerInput(v, 'T', { contacts: { admin: admin('T'), billing: { email: 'bill@' } } }), 'contacts.billing.email'],
    ['an unknown reseller kind', (v) => ({ ...customerInput(v, 'T'), type: 'reseller', resellerKind: 'gold' as 'basic' }), 'resellerKind'],
    ['an unknown tax status', (v) => customerInput(v, 'T', { taxStatus: 'sometimes' as 'taxable' }), 'taxStatus'],
    ['a zip code longer than 32 characters', (v) => customerInput(v, 'T', { address: { zip: '9'.repeat(33) } }), 'contact.zip'],
    ['a vendor id that is not a positive whole number', (v) => customerInput(-v, 'T'), 'vendorAccountId'],
  ];
  for (const [what, input, field] of cases) {
    it(`refuses ${what} with INVALID_ARGUMENT on ${field}, creating nothing`, async () => {
      const before = await count(world, 'accounts');
      await failure(world.services.accounts.create(world.provider, input(world.provider.accountId)), 'INVALID_ARGUMENT', field);
      expect(await count(world, 'accounts')).to.equal(before);
      expect(await count(world, 'audit_log', { operation: 'CreateAccount' })).to.equal(0);
      expect(await count(world, 'account_contacts')).to.equal(1); // the provider's own
    });
  }
});
