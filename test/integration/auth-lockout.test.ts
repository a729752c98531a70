import { expect } from 'chai';
import type { Actor } from '../../src/context';
import { hashPassword } from '../../src/accounts/passwords';
import { AppError } from '../../src/domain/errors';
import { accountActor, makeWorld, type World } from '../helpers/world';

const PASSWORD = 'right-password-1';
const soap = { channel: 'soap' as const, remoteAddr: '198.51.100.7' };

async function refused(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(AppError);
    return e as AppError;
  }
  throw new Error('expected a refusal');
}

describe('sign-in lockout', () => {
  let world: World;
  let customer: Actor;
  before(async () => {
    world = await makeWorld({ config: { authFailureLimit: 3, authLockoutSeconds: 60 } });
    const reseller = await accountActor(world, world.provider, 'reseller', 'Lockout Reseller');
    customer = await accountActor(world, reseller, 'customer', 'Lockout Customer', reseller.accountId);
    await world.services.users.create(world.provider, { accountId: customer.accountId, login: 'busy-api', password: PASSWORD, email: 'busy@example.com', firstName: 'B', lastName: 'A', roles: ['api'] });
    await world.services.users.create(world.provider, { accountId: customer.accountId, login: 'victim', password: PASSWORD, email: 'victim@example.com', firstName: 'V', lastName: 'C', roles: ['admin'] });
  });
  after(() => world.close());

  it('refuses the right password during a lockout even when that password was verified a moment ago', async () => {
    await world.services.auth.authenticate({ login: 'busy-api', password: PASSWORD }, soap); // warms the cache
    for (let i = 0; i < 3; i++) await refused(world.services.auth.authenticate({ login: 'busy-api', password: `guess-${i}` }, soap));
    const err = await refused(world.services.auth.authenticate({ login: 'busy-api', password: PASSWORD }, soap));
    expect(err.message).to.match(/too many failed sign-ins/i);
    world.clock.advance(61_000);
    expect((await world.services.auth.authenticate({ login: 'busy-api', password: PASSWORD }, soap)).accountId).to.equal(customer.accountId);
  });

  it('counts wrong passwords sent to ValidateUser / UserValidate_API and locks that login too', async () => {
    for (let i = 0; i < 3; i++) {
      const err = await refused(world.services.auth.checkPassword(world.provider, 'victim', `guess-${i}`));
      expect(err.code).to.equal('UNAUTHENTICATED');
    }
    const locked = await refused(world.services.auth.checkPassword(world.provider, 'victim', PASSWORD));
    expect(locked.message).to.match(/too many failed sign-ins/i);
    const audited = await world.deps.db('audit_log').where({ operation: 'Authenticate', outcome: 'error' }).count({ n: '*' });
    expect(Number(audited[0].n)).to.be.at.least(3);
  });

  it('forget(login) drops that login\'s cached sign-ins from every address, so a changed password is checked at once', async () => {
    await world.services.users.create(world.provider, { accountId: customer.accountId, login: 'changing', password: PASSWORD, email: 'changing@example.com', firstName: 'C', lastName: 'H', roles: ['api'] });
    const elsewhere = { ...soap, remoteAddr: '198.51.100.8' };
    await world.services.auth.authenticate({ login: 'changing', password: PASSWORD }, soap);
    await world.services.auth.authenticate({ login: 'changing', password: PASSWORD }, elsewhere);
    await world.services.auth.authenticate({ login: 'busy-api', password: PASSWORD }, soap);
    // A password change behind the cache's back (no service changes passwords yet): the cache still answers ...
    await world.deps.db('users').whereIn('login', ['changing', 'busy-api']).update({ password_hash: await hashPassword('a-new-password-2') });
    expect((await world.services.auth.authenticate({ login: 'changing', password: PASSWORD }, soap)).accountId).to.equal(customer.accountId);
    // ... until the operation that changed it calls forget(login): then from every address, and for that login only.
    world.services.auth.forget('CHANGING');
    await refused(world.services.auth.authenticate({ login: 'changing', password: PASSWORD }, soap));
    await refused(world.services.auth.authenticate({ login: 'changing', password: PASSWORD }, elsewhere));
    expect((await world.services.auth.authenticate({ login: 'busy-api', password: PASSWORD }, soap)).accountId).to.equal(customer.accountId);
  });

  it('housekeeping prunes counters whose window and lock are over, recording a lock nobody came back to as lifted', async () => {
    const prunable = { ...soap, remoteAddr: '192.0.2.200' };
    const attempt = (login: string, password: string) => world.services.auth.authenticate({ login, password }, prunable);
    for (let i = 0; i < 3; i++) await refused(attempt('nobody-here', `guess-${i}`)); // locks (nobody-here, this address)
    await refused(attempt('victim', 'one-typo')); // counted, never locked
    const keysBefore = ((await world.deps.db('auth_failures').select('credential')) as { credential: string }[]).map((r) => r.credential);
    const lock = (await world.deps.db('audit_log').where({ operation: 'LockSignIn', remote_addr: '192.0.2.200' }).first()) as { object_id: string };
    world.clock.advance(30_000); // the lock and the window still run: nothing goes
    await world.services.auth.pruneFailures();
    expect(((await world.deps.db('auth_failures').select('credential')) as { credential: string }[]).map((r) => r.credential)).to.have.members(keysBefore);
    world.clock.advance(300_000); // past the window (300 s) and the lock (60 s)
    await world.services.auth.pruneFailures();
    expect(await world.deps.db('auth_failures').select('credential')).to.deep.equal([]);
    const lifted = (await world.deps.db('audit_log').where({ operation: 'UnlockSignIn', object_id: lock.object_id })) as { channel: string; details: string }[];
    expect(lifted.map((r) => [r.channel, JSON.parse(r.details).scope])).to.deep.equal([['system', 'login-address']]);
    // A fresh count afterwards: two typos do not lock.
    await refused(attempt('victim', 'typo-a'));
    await refused(attempt('victim', 'typo-b'));
    expect((await attempt('victim', PASSWORD)).accountId).to.equal(customer.accountId);
  });
});
