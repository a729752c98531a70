import { expect } from 'chai';
import type { Actor } from '../../src/context';
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
});
