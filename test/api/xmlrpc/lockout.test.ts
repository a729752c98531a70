import { expect } from 'chai';
import { XMLRPC_FAULT_CODES } from '../../../src/api/api-errors';
import { ManualClock } from '../../../src/clock';
import { accountWithApiUser, startApiWorld, type ApiWorld } from '../../helpers/api';
import { execute, fault, result, type RpcReply } from './client';

// The sign-in lockout through the XML-RPC door, behind a trusted proxy: X-Forwarded-For is the client address.
describe('XML-RPC sign-in lockout per login and client address', () => {
  let world: ApiWorld;
  let rpc: string;
  let clock: ManualClock;
  let serial = 0;
  const user = (type: 'reseller' | 'customer' = 'reseller', vendorId?: number) => accountWithApiUser(world, type, `Rpc Lockout ${++serial}`, vendorId);
  const call = (login: string, password: string, address: string, method = 'GetVersion_API', params: (string | number)[] = [0]) =>
    execute(rpc, { Server: 'BM', Method: method, Params: params, Username: login, Password: password }, { headers: { 'X-Forwarded-For': address } });
  const refused = (reply: RpcReply, message: RegExp) => {
    const f = fault(reply);
    expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.UNAUTHENTICATED);
    expect(f.faultString).to.match(message);
  };

  before(async () => {
    clock = new ManualClock('2026-03-02T09:00:00Z');
    world = await startApiWorld({ clock, config: { trustProxy: true, authFailureLimit: 3, authAddressFailureLimit: 6, authLoginFailureCeiling: 9, authLockoutSeconds: 120 } });
    rpc = `${world.url}/RPC2`;
  });
  after(async () => {
    await world?.close();
  });

  it('locks the login only for the guessing address; from another address the right password still signs in', async () => {
    const victim = await user();
    for (let i = 0; i < 3; i++) refused(await call(victim.login, `guess-${i}`, '203.0.113.5'), /wrong/);
    refused(await call(victim.login, victim.password, '203.0.113.5'), /too many failed sign-ins for this login from your address; try again in 120 seconds/i);
    expect(result(await call(victim.login, victim.password, '198.51.100.5'))).to.be.an('array');
    clock.advance(120_000);
    expect(result(await call(victim.login, victim.password, '203.0.113.5'))).to.be.an('array');
  });

  it('throttles an address that guesses many logins, for every login, until the lock lifts', async () => {
    const targets = await Promise.all([1, 2, 3].map(() => user()));
    const own = await user();
    for (const t of targets) for (let i = 0; i < 2; i++) refused(await call(t.login, `spray-${i}`, '203.0.113.6'), /wrong/);
    refused(await call(own.login, own.password, '203.0.113.6'), /too many failed sign-ins from your address/i);
    expect(result(await call(own.login, own.password, '198.51.100.6'))).to.be.an('array');
    clock.advance(120_000);
    expect(result(await call(own.login, own.password, '203.0.113.6'))).to.be.an('array');
  });

  it('locks a login guessed from many addresses once the login-wide ceiling is reached', async () => {
    const victim = await user();
    for (const address of ['192.0.2.11', '192.0.2.12', '192.0.2.13']) for (let i = 0; i < 3; i++) refused(await call(victim.login, `spread-${i}`, address), /wrong/);
    refused(await call(victim.login, victim.password, '198.51.100.7'), /too many failed sign-ins for this login; try again/i);
  });

  it('counts wrong passwords sent to UserValidate_API per checked login and caller address; a success clears the count', async () => {
    const shop = await user();
    const customer = await user('customer', shop.accountId);
    const validate = (password: string) => call(shop.login, shop.password, '198.51.100.8', 'UserValidate_API', [customer.login, password]);
    refused(await validate('typo-1'), /wrong/);
    refused(await validate('typo-2'), /wrong/);
    expect(result(await validate(customer.password))).to.deep.equal([customer.accountId, shop.accountId, customer.userId]);
    refused(await validate('typo-3'), /wrong/);
    refused(await validate('typo-4'), /wrong/);
    refused(await validate('typo-5'), /wrong/);
    refused(await validate(customer.password), /for this login from your address/);
    expect(result(await call(customer.login, customer.password, '198.51.100.9'))).to.be.an('array');
  });
});
