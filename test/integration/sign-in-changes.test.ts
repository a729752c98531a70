import { expect } from 'chai';
import { Authenticator } from '../../src/accounts/authenticator';
import { hashPassword } from '../../src/accounts/passwords';
import { recordSignInChange, SignInChangeFeed } from '../../src/accounts/sign-in-changes';
import { UsersService } from '../../src/accounts/users-service';
import type { Actor } from '../../src/context';
import { failure } from '../helpers/assertions';
import { accountActor, makeWorld, type World } from '../helpers/world';

// Two server processes are two Authenticators (each with its own cache) over one database: A makes the change,
// B cached the sign-in before it. B must stop answering from its cache once it has read the sign-in changes.
const PASSWORD = 'right-password-1';
const soap = { channel: 'soap' as const, remoteAddr: '198.51.100.7' };

const refused = (p: Promise<unknown>) => failure(p, 'UNAUTHENTICATED', 'login');

describe('sign-in changes shared by server processes', () => {
  let world: World;
  let reseller: Actor;
  let customer: Actor;
  let b: Authenticator;
  /** B's monotonic timer (the one its reads of the changes are timed on), moved by hand. */
  let elapsed = 0;
  let serial = 0;
  const newUser = async (accountId = customer.accountId) => {
    const login = `shared-${++serial}`;
    await world.services.users.create(world.provider, { accountId, login, password: PASSWORD, email: `${login}@example.com`, firstName: 'S', lastName: 'U', roles: ['api'] });
    return login;
  };
  const signIn = (auth: Authenticator, login: string, password = PASSWORD, ctx = soap) => auth.authenticate({ login, password }, ctx);

  beforeEach(async () => {
    world = await makeWorld({ config: { authFailureLimit: 3, authLockoutSeconds: 60, authCachePollMs: 10_000 } });
    reseller = await accountActor(world, world.provider, 'reseller', 'Shared Reseller');
    customer = await accountActor(world, reseller, 'customer', 'Shared Customer', reseller.accountId);
    b = new Authenticator(world.deps, new UsersService(world.deps), () => elapsed);
    await b.readSignInChanges(); // B takes its bearings, as a process does when it starts
  });
  afterEach(() => world.close());

  it('an account closed through A: B refuses its users\' cached sign-ins after its next read of the changes', async () => {
    const login = await newUser();
    expect((await signIn(b, login)).accountId).to.equal(customer.accountId);
    await world.services.accounts.update(reseller, customer.accountId, { status: 'closed' });
    // Until B reads the changes, its cache answers (what every other process did for a minute before) ...
    expect((await signIn(b, login)).accountId).to.equal(customer.accountId);
    await b.readSignInChanges();
    await refused(signIn(b, login));
    const [row] = (await world.deps.db('sign_in_changes').where({ account_id: customer.accountId })) as { login_hash: string | null }[];
    expect(row.login_hash, 'an account row names no login').to.equal(null);
  });

  it('a change that must not end sign-ins (a company name) writes no sign-in change', async () => {
    const before = await world.deps.db('sign_in_changes').count({ n: '*' });
    await world.services.accounts.update(reseller, customer.accountId, { companyName: 'Renamed Customer' });
    expect(await world.deps.db('sign_in_changes').count({ n: '*' })).to.deep.equal(before);
  });

  it('a user created through A under a login B has cached makes B check that login again', async () => {
    const login = await newUser();
    const other = await newUser();
    await b.readSignInChanges(); // the users' own creation, read before B signs them in
    await signIn(b, login);
    await signIn(b, other);
    // The password changed behind both caches' backs (no operation changes passwords yet) ...
    await world.deps.db('users').whereIn('login', [login, other]).update({ password_hash: await hashPassword('a-new-password-2') });
    // ... then A gives the login a user under another vendor: B forgets that login, and only it.
    await world.services.users.create(world.provider, { accountId: world.provider.accountId, login: login.toUpperCase(), password: 'another-password-3', email: 'x@example.com', firstName: 'X', lastName: 'Y', roles: ['api'] });
    await b.readSignInChanges();
    await refused(signIn(b, login));
    expect((await signIn(b, other)).accountId, 'another login stays cached').to.equal(customer.accountId);
  });

  it('a lock set through A ends B\'s cached sign-in of that login from that address, not from others', async () => {
    const login = await newUser();
    const elsewhere = { ...soap, remoteAddr: '198.51.100.8' };
    await signIn(b, login);
    await signIn(b, login, PASSWORD, elsewhere);
    for (let i = 0; i < 3; i++) await refused(signIn(world.services.auth, login, `guess-${i}`));
    expect((await signIn(b, login)).accountId, 'cached until read').to.equal(customer.accountId);
    await b.readSignInChanges();
    expect((await refused(signIn(b, login))).message).to.match(/too many failed sign-ins for this login from your address/i);
    expect((await signIn(b, login, PASSWORD, elsewhere)).accountId).to.equal(customer.accountId);
  });

  it('a sign-in B was verifying while the change committed is not cached, even when B read the change before it finished', async () => {
    const login = await newUser();
    await b.readSignInChanges();
    const newHash = await hashPassword('a-new-password-2');
    const verifying = signIn(b, login); // reads the user, then spends tens of ms in scrypt
    await new Promise((r) => setTimeout(r, 10));
    await world.deps.db.transaction(async (tx) => {
      await tx('users').where({ login }).update({ password_hash: newHash });
      await recordSignInChange(tx, world.clock.now(), { login });
    });
    await b.readSignInChanges(); // nothing cached to evict yet
    await verifying.catch(() => undefined); // it may have read the old password (the point here) or the new one
    await refused(signIn(b, login));
  });

  it('a change to another login while B verifies does not keep B from caching this one', async () => {
    const login = await newUser();
    const other = await newUser();
    await b.readSignInChanges();
    const verifying = signIn(b, login);
    await new Promise((r) => setTimeout(r, 10));
    await recordSignInChange(world.deps.db, world.clock.now(), { login: other });
    await b.readSignInChanges();
    await verifying;
    // Cached: a password changed behind the cache's back (no signal) is not seen.
    await world.deps.db('users').where({ login }).update({ password_hash: await hashPassword('a-new-password-2') });
    expect((await signIn(b, login)).accountId).to.equal(customer.accountId);
  });

  it('a watching process that has not read the changes for max(3 x authCachePollMs, 5 s) checks every password again', async () => {
    const stop = await b.watchSignInChanges();
    try {
      const login = await newUser();
      await signIn(b, login);
      await world.deps.db('users').where({ login }).update({ password_hash: await hashPassword('a-new-password-2') });
      elapsed += 29_000; // within 3 x 10 s of the last read (the watch's next read is 10 s of real time away)
      expect((await signIn(b, login)).accountId).to.equal(customer.accountId);
      elapsed += 2_000; // 31 s since the last read: the cache is not trusted
      await refused(signIn(b, login));
      expect((await signIn(b, login, 'a-new-password-2')).accountId).to.equal(customer.accountId);
    } finally {
      await stop();
    }
  });

  it('housekeeping prunes sign-in changes older than an hour', async () => {
    const count = async () => Number(((await world.deps.db('sign_in_changes').count({ n: '*' })) as { n: number | string }[])[0].n);
    await newUser(); // with the administrator's, written at the start of the world
    world.clock.advance(3_000_000);
    await newUser();
    const written = await count();
    expect(written).to.equal(3);
    await world.services.auth.pruneSignInChanges(); // 50 minutes: nothing is an hour old
    expect(await count()).to.equal(written);
    world.clock.advance(700_000);
    await world.services.auth.pruneSignInChanges();
    expect(await count()).to.equal(1);
  });

  it('reads a change whose id was handed out before the last one seen but committed after it', async () => {
    // MariaDB numbers rows at insert, not at commit: id 2 may commit after id 3 was read. Written here out of order.
    const feed = new SignInChangeFeed(world.deps.db, world.clock);
    const at = world.clock.now().getTime();
    const { n } = (await world.deps.db('sign_in_changes').max({ n: 'id' }))[0] as { n: number | null };
    const base = Number(n ?? 0);
    await feed.read();
    await world.deps.db('sign_in_changes').insert({ id: base + 3, account_id: 3, created_at: at });
    expect((await feed.read()).map((r) => r.account_id)).to.deep.equal([3]);
    await world.deps.db('sign_in_changes').insert({ id: base + 1, account_id: 1, created_at: at });
    await world.deps.db('sign_in_changes').insert({ id: base + 2, account_id: 2, created_at: at });
    expect((await feed.read()).map((r) => r.account_id)).to.deep.equal([1, 2]);
    expect(await feed.read()).to.deep.equal([]);
  });
});
