import { expect } from 'chai';
import type { UserInput } from '../../src/accounts/users-service';
import type { Actor } from '../../src/context';
import { AppError } from '../../src/domain/errors';
import { ADMIN_PASSWORD, accountActor, makeWorld, type World } from '../helpers/world';
import { failure } from '../helpers/assertions';

async function count(world: World, table: string, where: Record<string, unknown> = {}): Promise<number> {
  const [{ n }] = (await world.deps.db(table).where(where).count({ n: '*' })) as { n: number | string }[];
  return Number(n);
}

const PASSWORD = 'correct horse battery';

function userInput(accountId: number, login: string, extra: Partial<UserInput> = {}): UserInput {
  return { accountId, login, password: PASSWORD, email: `${login.replace(/[^a-z0-9]/gi, '')}@example.com`, firstName: 'Uma', lastName: 'User', ...extra };
}

describe('users', () => {
  let world: World;
  let reseller: Actor;
  let customer: Actor;
  beforeEach(async () => {
    world = await makeWorld({ config: { authFailureLimit: 3, authLockoutSeconds: 120 } });
    reseller = await accountActor(world, world.provider, 'reseller', 'Acme');
    customer = await accountActor(world, reseller, 'customer', 'Bluebird');
  });
  afterEach(async () => {
    await world?.close();
  });

  describe('creation', () => {
    it('stores the password only as an scrypt hash and never returns it', async () => {
      const id = await world.services.users.create(reseller, userInput(customer.accountId, 'carla'));
      const row = (await world.deps.db('users').where({ id }).first()) as { password_hash: string };
      expect(row.password_hash).to.match(/^scrypt\$/);
      expect(row.password_hash).to.not.contain(PASSWORD);
      const other = await world.services.users.create(reseller, userInput(customer.accountId, 'carl'));
      const otherRow = (await world.deps.db('users').where({ id: other }).first()) as { password_hash: string };
      expect(otherRow.password_hash, 'a fresh salt per hash').to.not.equal(row.password_hash);
      const user = await world.services.users.get(reseller, id);
      expect(JSON.stringify(user)).to.not.contain('scrypt$').and.not.contain(PASSWORD);
      expect(user).to.deep.include({ accountId: customer.accountId, login: 'carla', email: 'carla@example.com', roles: ['admin'], status: 'enabled' });
    });

    it('writes a CreateUser audit record and a user.created event that do not carry the password', async () => {
      const id = await world.services.users.create(reseller, userInput(customer.accountId, 'audited', { roles: ['billing', 'technical'] }));
      const audit = await world.deps.db('audit_log').where({ operation: 'CreateUser', object_id: String(id) }).first();
      expect(audit).to.deep.include({ outcome: 'ok', object_type: 'user' });
      expect(Number(audit.actor_account_id)).to.equal(reseller.accountId);
      expect(JSON.parse(audit.details)).to.deep.include({ login: 'audited', roles: ['billing', 'technical'] });
      const event = await world.deps.db('events').where({ name: 'user.created', object_id: String(id) }).first();
      expect(Number(event.account_id)).to.equal(customer.accountId);
      expect(audit.details + event.payload).to.not.contain(PASSWORD);
    });

    const cases: [string, Partial<UserInput>, string][] = [
      ['a password shorter than 8 characters', { password: 'short' }, 'password'],
      ['a login with a space', { login: 'two words' }, 'login'],
      ['an empty login', { login: '' }, 'login'],
      ['a malformed e-mail', { email: 'nobody' }, 'email'],
      ['a missing last name', { lastName: '' }, 'lastName'],
      ['an unknown role', { roles: ['admin', 'root' as 'admin'] }, 'roles[1]'],
    ];
    for (const [what, patch, field] of cases) {
      it(`refuses ${what} with INVALID_ARGUMENT on ${field}, creating nothing`, async () => {
        await failure(world.services.users.create(reseller, userInput(customer.accountId, 'valid', patch)), 'INVALID_ARGUMENT', field);
        expect(await count(world, 'users', { account_id: customer.accountId })).to.equal(0);
      });
    }

    it("answers a user for another reseller's account with NOT_FOUND on create and get", async () => {
      const other = await accountActor(world, world.provider, 'reseller', 'Other');
      const otherCustomer = await accountActor(world, other, 'customer', 'OtherCust');
      await failure(world.services.users.create(reseller, userInput(otherCustomer.accountId, 'intruder')), 'NOT_FOUND');
      const id = await world.services.users.create(other, userInput(otherCustomer.accountId, 'owned'));
      const hidden = await failure(world.services.users.get(reseller, id), 'NOT_FOUND');
      const missing = await failure(world.services.users.get(reseller, 99999), 'NOT_FOUND');
      expect(hidden.message.replace(String(id), '#')).to.equal(missing.message.replace('99999', '#'));
      await failure(world.services.users.listForAccount(reseller, otherCustomer.accountId), 'NOT_FOUND');
    });

    it('lists the users of an account in pages, sorted by login on request', async () => {
      for (const login of ['mike', 'anna', 'zoe']) await world.services.users.create(reseller, userInput(customer.accountId, login));
      const page = await world.services.users.listForAccount(reseller, customer.accountId, { sortBy: 'login', pageSize: 2 });
      expect(page.items.map((u) => u.login)).to.deep.equal(['anna', 'mike']);
      expect(page.total).to.equal(3);
      const next = await world.services.users.listForAccount(reseller, customer.accountId, { sortBy: 'login', pageSize: 2, page: 2 });
      expect(next.items.map((u) => u.login)).to.deep.equal(['zoe']);
    });
  });

  describe('logins are unique per vendor', () => {
    it('refuses a login already used by another customer of the same reseller, with CONFLICT on login', async () => {
      const second = await accountActor(world, reseller, 'customer', 'Second');
      await world.services.users.create(reseller, userInput(customer.accountId, 'shared'));
      const audits = await count(world, 'audit_log', { operation: 'CreateUser' });
      await failure(world.services.users.create(reseller, userInput(second.accountId, 'shared')), 'CONFLICT', 'login');
      expect(await count(world, 'users', { login: 'shared' })).to.equal(1);
      expect(await count(world, 'audit_log', { operation: 'CreateUser' })).to.equal(audits);
    });

    it("shares the namespace between a reseller's own users and its customers' users", async () => {
      await world.services.users.create(reseller, userInput(reseller.accountId, 'rita'));
      await failure(world.services.users.create(reseller, userInput(customer.accountId, 'rita')), 'CONFLICT', 'login');
    });

    it('lets customers of different resellers use the same login', async () => {
      const other = await accountActor(world, world.provider, 'reseller', 'Other');
      const otherCustomer = await accountActor(world, other, 'customer', 'OtherCust');
      const a = await world.services.users.create(reseller, userInput(customer.accountId, 'info'));
      const b = await world.services.users.create(other, userInput(otherCustomer.accountId, 'info'));
      expect(a).to.not.equal(b);
    });

    it('treats logins that differ only in letter case as the same login', async () => {
      const second = await accountActor(world, reseller, 'customer', 'Second');
      await world.services.users.create(reseller, userInput(customer.accountId, 'Sam'));
      await failure(world.services.users.create(reseller, userInput(second.accountId, 'sam')), 'CONFLICT', 'login');
      const { user } = await world.services.users.verify('SAM', PASSWORD, reseller.accountId);
      expect(user.login).to.equal('Sam');
    });

    it('answers two concurrent creates of one login with one user and one CONFLICT', async () => {
      const second = await accountActor(world, reseller, 'customer', 'Second');
      const results = await Promise.allSettled([
        world.services.users.create(reseller, userInput(customer.accountId, 'twin')),
        world.services.users.create(reseller, userInput(second.accountId, 'twin')),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(1);
      const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(rejected.reason).to.be.instanceOf(AppError);
      expect((rejected.reason as AppError).code).to.equal('CONFLICT');
      expect(await count(world, 'users', { login: 'twin' })).to.equal(1);
    });
  });

  describe('verify', () => {
    it('returns the user and its account for the right password', async () => {
      const id = await world.services.users.create(reseller, userInput(customer.accountId, 'carla'));
      const { user, account } = await world.services.users.verify('carla', PASSWORD);
      expect(user.id).to.equal(id);
      expect(account.id).to.equal(customer.accountId);
    });

    it('answers a wrong password and an unknown login with the same UNAUTHENTICATED error', async () => {
      await world.services.users.create(reseller, userInput(customer.accountId, 'carla'));
      const wrong = await failure(world.services.users.verify('carla', 'not the password'), 'UNAUTHENTICATED', 'login');
      const unknown = await failure(world.services.users.verify('nobody', PASSWORD), 'UNAUTHENTICATED', 'login');
      const empty = await failure(world.services.users.verify('', ''), 'UNAUTHENTICATED', 'login');
      expect(wrong.message).to.equal(unknown.message);
      expect(empty.message).to.equal(unknown.message);
    });

    it("restricts the search to one vendor's users when given vendorId", async () => {
      const other = await accountActor(world, world.provider, 'reseller', 'Other');
      const otherCustomer = await accountActor(world, other, 'customer', 'OtherCust');
      const mine = await world.services.users.create(reseller, userInput(customer.accountId, 'info', { password: 'password-of-acme' }));
      const theirs = await world.services.users.create(other, userInput(otherCustomer.accountId, 'info', { password: 'password-of-other' }));
      expect((await world.services.users.verify('info', 'password-of-acme', reseller.accountId)).user.id).to.equal(mine);
      expect((await world.services.users.verify('info', 'password-of-other', other.accountId)).user.id).to.equal(theirs);
      await failure(world.services.users.verify('info', 'password-of-acme', other.accountId), 'UNAUTHENTICATED', 'login');
    });

    it('refuses a disabled user even with the right password', async () => {
      const id = await world.services.users.create(reseller, userInput(customer.accountId, 'gone'));
      await world.deps.db('users').where({ id }).update({ status: 'disabled' });
      await failure(world.services.users.verify('gone', PASSWORD), 'UNAUTHENTICATED', 'login');
      await failure(world.services.auth.authenticate({ login: 'gone', password: PASSWORD }, { channel: 'soap' }), 'UNAUTHENTICATED', 'login');
    });

    it('refuses a user of a closed account', async () => {
      await world.services.users.create(reseller, userInput(customer.accountId, 'closed'));
      await world.services.accounts.update(reseller, customer.accountId, { status: 'closed' });
      await failure(world.services.users.verify('closed', PASSWORD), 'UNAUTHENTICATED', 'login');
    });
  });

  describe('Authenticator', () => {
    const soap = { channel: 'soap' as const, remoteAddr: '203.0.113.9', requestId: 'req-1' };

    it('turns a login and password into an actor for the user account', async () => {
      const id = await world.services.users.create(reseller, userInput(customer.accountId, 'carla', { roles: ['admin', 'api'] }));
      const actor = await world.services.auth.authenticate({ login: 'carla', password: PASSWORD }, soap);
      expect(actor).to.deep.include({ userId: id, accountId: customer.accountId, accountPath: customer.accountPath, accountType: 'customer', channel: 'soap', remoteAddr: '203.0.113.9' });
      expect(actor.roles).to.deep.equal(['admin', 'api']);
    });

    it('signs in the provider administrator created at bootstrap', async () => {
      const actor = await world.services.auth.authenticate({ login: 'admin', password: ADMIN_PASSWORD }, soap);
      expect(actor.accountId).to.equal(world.provider.accountId);
    });

    it('locks the credential after authFailureLimit failures, even for the right password, until authLockoutSeconds pass', async () => {
      await world.services.users.create(reseller, userInput(customer.accountId, 'target'));
      for (let i = 0; i < 3; i++) {
        await failure(world.services.auth.authenticate({ login: 'target', password: `guess-${i}-wrong` }, soap), 'UNAUTHENTICATED', 'login');
      }
      const locked = await failure(world.services.auth.authenticate({ login: 'target', password: PASSWORD }, soap), 'UNAUTHENTICATED', 'login');
      expect(locked.message).to.match(/too many/i);
      world.clock.advance(119_000);
      await failure(world.services.auth.authenticate({ login: 'target', password: PASSWORD }, soap), 'UNAUTHENTICATED', 'login');
      world.clock.advance(1_000);
      const actor = await world.services.auth.authenticate({ login: 'target', password: PASSWORD }, soap);
      expect(actor.accountId).to.equal(customer.accountId);
    });

    it('does not lock before the limit is reached', async () => {
      await world.services.users.create(reseller, userInput(customer.accountId, 'target'));
      for (let i = 0; i < 2; i++) await failure(world.services.auth.authenticate({ login: 'target', password: 'wrong-password' }, soap), 'UNAUTHENTICATED', 'login');
      expect((await world.services.auth.authenticate({ login: 'target', password: PASSWORD }, soap)).accountId).to.equal(customer.accountId);
    });

    it('counts failures per login whatever its letter case', async () => {
      await world.services.users.create(reseller, userInput(customer.accountId, 'target'));
      for (const login of ['target', 'TARGET', 'Target']) await failure(world.services.auth.authenticate({ login, password: 'wrong-password' }, soap), 'UNAUTHENTICATED', 'login');
      const locked = await failure(world.services.auth.authenticate({ login: 'target', password: PASSWORD }, soap), 'UNAUTHENTICATED', 'login');
      expect(locked.message).to.match(/too many/i);
    });

    it('resets the failure count after a successful sign-in', async () => {
      await world.services.users.create(reseller, userInput(customer.accountId, 'target'));
      const attempt = (password: string) => world.services.auth.authenticate({ login: 'target', password }, soap);
      await failure(attempt('wrong-1'), 'UNAUTHENTICATED', 'login');
      await failure(attempt('wrong-2'), 'UNAUTHENTICATED', 'login');
      await attempt(PASSWORD);
      world.services.auth.forget('target'); // the next sign-in must pass the lock check, not the cache
      await failure(attempt('wrong-3'), 'UNAUTHENTICATED', 'login');
      await failure(attempt('wrong-4'), 'UNAUTHENTICATED', 'login');
      expect((await attempt(PASSWORD)).accountId).to.equal(customer.accountId);
    });

    it('counts every one of authFailureLimit concurrent failures, so parallel guessing still locks', async () => {
      await world.services.users.create(reseller, userInput(customer.accountId, 'target'));
      const results = await Promise.allSettled([1, 2, 3].map((i) => world.services.auth.authenticate({ login: 'target', password: `parallel-${i}` }, soap)));
      for (const r of results) {
        expect(r.status).to.equal('rejected');
        expect(((r as PromiseRejectedResult).reason as AppError).code).to.equal('UNAUTHENTICATED');
      }
      const locked = await failure(world.services.auth.authenticate({ login: 'target', password: PASSWORD }, soap), 'UNAUTHENTICATED', 'login');
      expect(locked.message).to.match(/too many/i);
    });

    it('writes an audit record with outcome error for a failed sign-in, without the login or password in clear', async () => {
      await world.services.users.create(reseller, userInput(customer.accountId, 'target'));
      const before = await count(world, 'audit_log', { operation: 'Authenticate' });
      await failure(world.services.auth.authenticate({ login: 'target', password: 'wrong-password' }, soap), 'UNAUTHENTICATED', 'login');
      const rows = await world.deps.db('audit_log').where({ operation: 'Authenticate' });
      expect(rows).to.have.length(before + 1);
      const row = rows[rows.length - 1];
      expect(row).to.deep.include({ outcome: 'error', error_code: 'UNAUTHENTICATED', channel: 'soap', remote_addr: '203.0.113.9', request_id: 'req-1' });
      expect(Number(row.at)).to.equal(world.clock.now().getTime());
      expect(JSON.stringify(row)).to.not.contain('target').and.not.contain('wrong-password');
    });

    it('refuses a user without one of requiredRoles, and accepts one with it', async () => {
      await world.services.users.create(reseller, userInput(customer.accountId, 'biller', { roles: ['billing'] }));
      await world.services.users.create(reseller, userInput(customer.accountId, 'robot', { roles: ['api'] }));
      await failure(world.services.auth.authenticate({ login: 'biller', password: PASSWORD }, { ...soap, requiredRoles: ['api'] }), 'UNAUTHENTICATED', 'login');
      // A cached credential is held to the roles too.
      await failure(world.services.auth.authenticate({ login: 'biller', password: PASSWORD }, { ...soap, requiredRoles: ['api'] }), 'UNAUTHENTICATED', 'login');
      expect((await world.services.auth.authenticate({ login: 'biller', password: PASSWORD }, { ...soap, requiredRoles: ['api', 'billing'] })).roles).to.deep.equal(['billing']);
      expect((await world.services.auth.authenticate({ login: 'robot', password: PASSWORD }, { ...soap, requiredRoles: ['api'] })).roles).to.deep.equal(['api']);
    });

    it('refuses credentials that are not text with UNAUTHENTICATED rather than a crash', async () => {
      const bad = [{ login: undefined, password: PASSWORD }, { login: 'admin', password: undefined }, { login: 42, password: {} }];
      for (const cred of bad) {
        await failure(world.services.auth.authenticate(cred as unknown as { login: string; password: string }, soap), 'UNAUTHENTICATED', 'login');
      }
    });
  });
});
