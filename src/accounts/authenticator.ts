import crypto from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Knex } from 'knex';
import type { Actor, Channel, Deps, Role } from '../context';
import { writeAudit } from '../audit/audit';
import { isSqlite, type Conn } from '../db/knex';
import { AppError } from '../domain/errors';
import { loginHash, recordSignInChanges, sha256, SignInChangeFeed, type SignInChange, type SignInChangeRow } from './sign-in-changes';
import type { UsersService } from './users-service';

export interface Credentials {
  login: string;
  password: string;
}

const DIGEST_WINDOW_MS = 5 * 60_000;
/** crypto.hash (Node >= 20.12): a digest without a Hash object. */
const oneShotHash = (crypto as unknown as { hash?: (algorithm: string, data: string, encoding: 'base64') => string }).hash;
const LOCKOUTS = new WeakSet<AppError>();
/** Counters whose window and lock are over are pruned (by the server's housekeeping) this many at a time. */
const PRUNE_BATCH = 500;

interface CacheEntry {
  actor: Omit<Actor, 'channel' | 'remoteAddr' | 'requestId'>;
  /** sha-256 of the lower-cased login. */
  login: string;
  /** The client address the credential was verified from, and its sha-256 (as sign_in_changes names it). */
  address: string;
  addressHash: string;
  expires: number;
}

type CheckCtx = { channel: Channel; remoteAddr?: string; requestId?: string };

/** Which failures a counter adds up; also the name it has in the audit trail and in the refusal. */
type CounterScope = 'login-address' | 'address' | 'login';

/** One failure counter (a row of auth_failures): its key (hashes only, never a login or address) and its limit. */
interface Counter {
  scope: CounterScope;
  key: string;
  limit: number;
}

interface FailureRow {
  credential: string;
  failures: number;
  window_start: number;
  locked_until: number | null;
}

const REFUSAL: Record<CounterScope, string> = {
  'login-address': 'Too many failed sign-ins for this login from your address',
  address: 'Too many failed sign-ins from your address',
  login: 'Too many failed sign-ins for this login',
};

/**
 * Turns API credentials into an Actor. A verified password is remembered for a minute under an HMAC with a
 * per-process key, so the memory-hard hash is paid once per credential and client address, not once per call.
 * Changes that must end cached sign-ins write sign_in_changes in their own transaction; every process that watches
 * them ({@link watchSignInChanges}, the server does) evicts what they name within authCachePollMs, and stops
 * answering from its cache when it has not managed to read them for a while.
 * Failures are counted in the database (so every server process sees them) by three counters, each locking for a
 * while once it reaches its limit: per login and client address (a guesser locks out only itself), per address
 * across logins (an address trying many logins), and per login across addresses, a much higher ceiling against
 * guessing spread over many addresses.
 */
export class Authenticator {
  private readonly cache = new Map<string, CacheEntry>();
  /** Verifications under way: concurrent calls with the same credential share one memory-hard hash. */
  private readonly inFlight = new Map<string, Promise<Omit<Actor, 'channel' | 'remoteAddr' | 'requestId'>>>();
  private readonly keyText = crypto.randomBytes(32).toString('base64');
  private static readonly TTL_MS = 60_000;
  private static readonly MAX_ENTRIES = 10_000;
  /**
   * The changes evicted lately, numbered: a verification that was reading the database when one it matches came
   * in is not cached (it may have read the state from before the change).
   */
  private readonly evicted: { seq: number; change: SignInChangeRow }[] = [];
  private evictions = 0;
  private static readonly EVICTED_KEPT = 1_000;
  private readonly feed: SignInChangeFeed;
  /**
   * While watched, until when the cache may answer: the last read of sign_in_changes plus its margin, on the
   * monotonic timer the reads run on (not the injected clock: a test moving that says nothing about the reads).
   */
  private honourUntil = Number.NEGATIVE_INFINITY;
  private watching = false;
  private reading: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: Deps,
    private readonly users: UsersService,
    /** Milliseconds on a monotonic timer (performance.now), for the watch's deadline. */
    private readonly elapsedMs: () => number = () => performance.now(),
  ) {
    this.feed = new SignInChangeFeed(deps.db, deps.clock);
  }

  /**
   * A credential verified within the last minute is answered from the cache without another promise or database
   * trip (this runs on every API call); anything else goes through {@link verifyAndCache}.
   */
  authenticate(cred: Credentials, ctx: { channel: Channel; remoteAddr?: string; requestId?: string; requiredRoles?: readonly Role[] }): Promise<Actor> {
    // Transports pass what arrived on the wire: a missing login or password is a wrong one, not a crash.
    if (typeof cred?.login !== 'string' || typeof cred.password !== 'string') return Promise.reject(new AppError('UNAUTHENTICATED', 'The login or password is wrong.', 'login'));
    const now = this.deps.clock.now().getTime();
    const cacheKey = this.cacheKey(cred.login, cred.password, addressOf(ctx));
    const hit = this.cache.get(cacheKey);
    if (hit && hit.expires > now && (!this.watching || this.elapsedMs() <= this.honourUntil)) {
      const a = hit.actor;
      const actor: Actor = { userId: a.userId, accountId: a.accountId, accountPath: a.accountPath, accountType: a.accountType, roles: a.roles, channel: ctx.channel, remoteAddr: ctx.remoteAddr, requestId: ctx.requestId };
      try {
        return Promise.resolve(this.withRoles(actor, ctx.requiredRoles));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.verifyAndCache(cred, ctx, now, cacheKey);
  }

  private async verifyAndCache(cred: Credentials, ctx: CheckCtx & { requiredRoles?: readonly Role[] }, now: number, cacheKey: string): Promise<Actor> {
    const counters = this.counters(cred.login, addressOf(ctx));
    try {
      let pending = this.inFlight.get(cacheKey);
      if (!pending) {
        pending = this.verify(cred, counters, cacheKey, now, ctx).finally(() => this.inFlight.delete(cacheKey));
        this.inFlight.set(cacheKey, pending);
      }
      const actor = await pending;
      return this.withRoles({ ...actor, channel: ctx.channel, remoteAddr: ctx.remoteAddr, requestId: ctx.requestId }, ctx.requiredRoles);
    } catch (e) {
      // A refusal while locked is not another guess: counting it would extend the lock for the rightful user.
      if (e instanceof AppError && e.code === 'UNAUTHENTICATED' && !LOCKOUTS.has(e)) await this.failed(cred.login, counters, now, ctx);
      throw e;
    }
  }

  /**
   * The cache's key for a login and password: SHA-256 over a per-process secret, the login and the password, so
   * the cache never holds a password nor anything a guess can be checked against without the secret. One-shot
   * crypto.hash costs a sixth of createHmac (which builds a stream object per call), and this runs on every API
   * call; a lookup key needs no HMAC construction (nobody outside sees it, so length extension buys nothing).
   */
  private cacheKey(login: string, password: string, address: string): string {
    const message = `${this.keyText}\0${address}\0${login}\0${password}`;
    return oneShotHash ? oneShotHash('sha256', message, 'base64') : crypto.createHash('sha256').update(message).digest('base64');
  }

  private async verify(cred: Credentials, counters: Counter[], cacheKey: string, now: number, ctx: CheckCtx): Promise<Omit<Actor, 'channel' | 'remoteAddr' | 'requestId'>> {
    // A change that comes in while this reads the database finds nothing to evict yet: it is looked up below.
    const evictionsBefore = this.evictions;
    await this.assertNotLocked(counters, now, ctx);
    const { user, account } = await this.users.verify(cred.login, cred.password);
    const actor = {
      userId: user.id,
      accountId: account.id,
      accountPath: account.path,
      accountType: account.type,
      roles: user.roles ? (user.roles.split(',') as Role[]) : [],
    };
    if (this.cache.size >= Authenticator.MAX_ENTRIES) this.cache.clear();
    const address = addressOf(ctx);
    const entry: CacheEntry = { actor, login: loginHash(cred.login), address, addressHash: sha256(address), expires: now + Authenticator.TTL_MS };
    if (!this.evictedSince(evictionsBefore, entry)) this.cache.set(cacheKey, entry);
    await this.succeeded(counters);
    return actor;
  }

  /**
   * WS-Security UsernameToken with PasswordDigest: Base64(SHA-1(nonce + created + secret)), checked against the
   * API user's secret (kept encrypted). `created` must be within five minutes of now and a nonce is accepted once.
   */
  async authenticateDigest(
    token: { login: string; digest: string; nonce: string; created: string },
    ctx: { channel: Channel; remoteAddr?: string; requestId?: string; requiredRoles?: readonly Role[] },
  ): Promise<Actor> {
    const now = this.deps.clock.now().getTime();
    const fail = (message = 'The login or password is wrong.') => new AppError('UNAUTHENTICATED', message, 'login');
    const created = Date.parse(token.created);
    if (!token.nonce || !token.created || Number.isNaN(created)) throw fail('A PasswordDigest needs a Nonce and a Created time.');
    if (Math.abs(now - created) > DIGEST_WINDOW_MS) throw fail('The UsernameToken Created time is more than 5 minutes away from the server time.');
    const counters = this.counters(token.login, addressOf(ctx));
    await this.assertNotLocked(counters, now, ctx);
    const nonce = Buffer.from(token.nonce, 'base64');
    const candidates = (await this.deps.db('users as u')
      .join('accounts as a', 'a.id', 'u.account_id')
      .where('u.login', token.login)
      .andWhere('u.status', 'enabled')
      .whereNotNull('u.api_secret_enc')
      .andWhereNot('a.status', 'closed')
      .orderByRaw('LENGTH(a.path), u.id')
      .select('u.id', 'u.roles', 'u.api_secret_enc', 'a.id as account_id', 'a.path', 'a.type')) as {
      id: number;
      roles: string;
      api_secret_enc: string;
      account_id: number;
      path: string;
      type: Actor['accountType'];
    }[];
    const given = Buffer.from(token.digest, 'base64');
    const match = candidates.find((c) => {
      let secret: string;
      try {
        secret = this.deps.secrets.open(c.api_secret_enc);
      } catch {
        return false;
      }
      const expected = crypto.createHash('sha1').update(nonce).update(token.created).update(secret).digest();
      return expected.length === given.length && crypto.timingSafeEqual(expected, given);
    });
    if (!match) {
      await this.failed(token.login, counters, now, ctx);
      throw fail();
    }
    const nonceHash = crypto.createHash('sha256').update(nonce).digest('hex');
    try {
      await this.deps.db('ws_nonces').insert({ nonce_hash: nonceHash, expires_at: created + DIGEST_WINDOW_MS * 2 });
    } catch {
      throw fail('This UsernameToken nonce was already used; send a fresh nonce with every request.');
    }
    if (Math.random() < 0.01) await this.deps.db('ws_nonces').where('expires_at', '<', now).del();
    await this.succeeded(counters);
    return this.withRoles(
      {
        userId: match.id,
        accountId: match.account_id,
        accountPath: match.path,
        accountType: match.type,
        roles: match.roles ? (match.roles.split(',') as Role[]) : [],
        channel: ctx.channel,
        remoteAddr: ctx.remoteAddr,
        requestId: ctx.requestId,
      },
      ctx.requiredRoles,
    );
  }

  /**
   * Checks a third party's login and password for PBA's UserValidate_API / SOAP ValidateUser, with the same
   * lockout and failure counting as sign-ins, so these calls cannot be used to guess passwords without limit.
   * The calling integration's address counts the failures of the logins it checks in a counter of its own (per
   * calling user), so its customers' typing errors never lock the integration's own sign-in.
   */
  async checkPassword(actor: Actor, login: string, password: string, vendorId?: number): Promise<{ accountId: number; userId: number; vendorAccountId: number | null }> {
    const now = this.deps.clock.now().getTime();
    const counters = this.counters(String(login), addressOf(actor), `validate:${actor.userId ?? ''}`);
    await this.assertNotLocked(counters, now, actor);
    try {
      const checked = await this.users.validateInScope(actor, login, password, vendorId);
      await this.succeeded(counters);
      return checked;
    } catch (e) {
      if (e instanceof AppError && e.code === 'UNAUTHENTICATED') await this.failed(String(login), counters, now, actor);
      throw e;
    }
  }

  /**
   * Forgets this process's cached sign-ins of a login (from every address), so the next call checks its password
   * and status again. Every operation that changes a user's credentials or status calls it after its commit, and
   * records the change for the other processes (recordSignInChange) in its transaction.
   */
  forget(login: string): void {
    this.evict({ id: 0, login_hash: loginHash(login), address_hash: null, account_id: null });
  }

  /** Forgets the cached sign-ins of every user of an account (its status changed: closed accounts sign nobody in). */
  forgetAccount(accountId: number): void {
    this.evict({ id: 0, login_hash: null, address_hash: null, account_id: accountId });
  }

  private evict(change: SignInChangeRow): void {
    this.evicted.push({ seq: ++this.evictions, change });
    if (this.evicted.length > Authenticator.EVICTED_KEPT) this.evicted.shift();
    for (const [key, entry] of this.cache) if (covers(change, entry)) this.cache.delete(key);
  }

  /** Whether a change evicted after the `since`-th one covers the entry (or the record of them is gone: assume so). */
  private evictedSince(since: number, entry: CacheEntry): boolean {
    if (since === this.evictions) return false;
    if (this.evicted.length === 0 || this.evicted[0].seq > since + 1) return true;
    for (let i = this.evicted.length - 1; i >= 0 && this.evicted[i].seq > since; i--) if (covers(this.evicted[i].change, entry)) return true;
    return false;
  }

  /**
   * Reads the sign-in changes other processes (and this one) committed since the last read and evicts the cached
   * sign-ins they name. The watch below calls it every authCachePollMs; reads never overlap.
   */
  readSignInChanges(): Promise<void> {
    const read = this.reading.then(async () => {
      const rows = await this.feed.read();
      for (const row of rows) this.evict(row);
      if (this.watching) this.honourUntil = this.elapsedMs() + Math.max(3 * this.deps.config.authCachePollMs, 5_000);
    });
    this.reading = read.catch(() => undefined);
    return read;
  }

  /**
   * Keeps this process's cache in step with sign_in_changes: a first read now, then one every authCachePollMs.
   * While watched, the cache answers only within max(3 x authCachePollMs, 5 s) of the last successful read, so a
   * process that cannot read the changes (database trouble, a stalled event loop) checks every password again.
   * Returns the function that stops the watch.
   */
  async watchSignInChanges(): Promise<() => Promise<void>> {
    this.watching = true;
    await this.readSignInChanges();
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    let failing = false;
    const next = () => {
      timer = setTimeout(() => {
        this.readSignInChanges().then(
          () => {
            if (failing) this.deps.log.info('sign-in changes are read again');
            failing = false;
          },
          (e: unknown) => {
            if (!failing) this.deps.log.warn('reading sign-in changes failed; cached sign-ins are not used until it works', { error: e instanceof Error ? e.message : String(e) });
            failing = true;
          },
        ).finally(() => {
          if (!stopped) next();
        });
      }, this.deps.config.authCachePollMs);
      timer.unref();
    };
    next();
    return async () => {
      stopped = true;
      clearTimeout(timer);
      await this.reading;
      this.watching = false;
    };
  }

  /** Deletes sign-in changes every process has long read (the server's hourly housekeeping calls it). */
  pruneSignInChanges(): Promise<void> {
    return this.feed.prune();
  }

  private withRoles(actor: Actor, required?: readonly Role[]): Actor {
    if (required && required.length && !required.some((r) => actor.roles.includes(r))) {
      throw new AppError('UNAUTHENTICATED', `This user lacks the role needed here (one of ${required.join(', ')}).`, 'login');
    }
    return actor;
  }

  /** The three counters a check from `address` for `login` is held to (`addressScope` separates ValidateUser's). */
  private counters(login: string, address: string, addressScope = ''): Counter[] {
    const { authFailureLimit, authAddressFailureLimit, authLoginFailureCeiling } = this.deps.config;
    const lower = login.toLowerCase();
    return [
      { scope: 'login-address', key: `la:${sha256(`${lower}\0${address}`)}`, limit: authFailureLimit },
      { scope: 'address', key: addressKey(addressScope, address), limit: authAddressFailureLimit },
      { scope: 'login', key: `l:${sha256(lower)}`, limit: authLoginFailureCeiling },
    ];
  }

  /**
   * Refuses while any of the counters is locked. A lock found expired is lifted here, once (the update that clears
   * it is conditional), with its audit record in the same transaction.
   */
  private async assertNotLocked(counters: Counter[], now: number, ctx: CheckCtx): Promise<void> {
    const rows = (await this.deps.db('auth_failures').whereIn('credential', counters.map((c) => c.key))) as FailureRow[];
    let refusal: AppError | undefined;
    for (const c of counters) {
      const row = rows.find((r) => r.credential === c.key);
      if (!row || row.locked_until === null) continue;
      const until = Number(row.locked_until);
      if (until > now) {
        refusal ??= new AppError('UNAUTHENTICATED', `${REFUSAL[c.scope]}; try again in ${Math.ceil((until - now) / 1000)} seconds.`, 'login');
        continue;
      }
      await this.deps.db.transaction(async (tx) => {
        // A lifted lock starts a fresh count.
        if ((await tx('auth_failures').where({ credential: c.key, locked_until: row.locked_until }).update({ locked_until: null, failures: 0, window_start: now })) === 1) {
          await this.auditLock(tx, 'UnlockSignIn', c, now, ctx, { lockedUntil: new Date(until).toISOString() });
        }
      });
    }
    if (refusal) {
      LOCKOUTS.add(refusal);
      throw refusal;
    }
  }

  /** A success clears the (login, address) counter only: the address and login-wide counts are not the signer's. */
  private async succeeded(counters: Counter[]): Promise<void> {
    await this.deps.db('auth_failures').where({ credential: counters[0].key }).del();
  }

  /** A failed check: counted by every counter, audited, and the cached sign-ins a lock now covers are evicted. */
  private async failed(login: string, counters: Counter[], now: number, ctx: CheckCtx): Promise<void> {
    const locked = await this.countFailure(login, counters, now, ctx);
    // The guess evicts the cached sign-ins of this login from this address, so a lock it triggers is checked on the
    // very next call; a lock of the address or of the login evicts all of theirs.
    const hash = loginHash(login);
    const address = addressOf(ctx);
    const signInAddressLocked = locked.has('address') && counters[1].key === addressKey('', address);
    for (const [key, entry] of this.cache) {
      const ofLogin = entry.login === hash;
      const ofAddress = entry.address === address;
      if ((ofLogin && (ofAddress || locked.has('login'))) || (ofAddress && signInAddressLocked)) this.cache.delete(key);
    }
    await this.auditFailure(hash, now, ctx);
  }

  /** A failed sign-in leaves a trace: the login's hash prefix (never the login or password), where from, when. */
  private async auditFailure(credential: string, now: number, ctx: CheckCtx): Promise<void> {
    await writeAudit(this.deps.db, nobody(ctx), new Date(now), {
      operation: 'Authenticate',
      objectType: 'credential',
      objectId: credential.slice(0, 16),
      outcome: 'error',
      errorCode: 'UNAUTHENTICATED',
    });
  }

  /** A lock set or lifted: objectId is the counter's key prefix, so a lock and its lifting pair up; never a login or address. */
  private async auditLock(conn: Conn, operation: 'LockSignIn' | 'UnlockSignIn', c: Pick<Counter, 'scope' | 'key'>, now: number, ctx: CheckCtx, details: Record<string, unknown>): Promise<void> {
    await writeAudit(conn, nobody(ctx), new Date(now), { operation, objectType: 'credential', objectId: c.key.slice(0, c.key.indexOf(':') + 17), outcome: 'ok', details: { scope: c.scope, ...details } });
  }

  /** Adds one failure to every counter; returns the scopes this failure locked. */
  private async countFailure(login: string, counters: Counter[], now: number, ctx: CheckCtx): Promise<Set<CounterScope>> {
    const { authFailureWindowSeconds, authLockoutSeconds } = this.deps.config;
    const keys = counters.map((c) => c.key).sort();
    // Parallel guesses must each count: make sure the rows exist, then read and bump them under row locks, taken in
    // key order (SQLite serialises every transaction on its one connection, so it needs no lock).
    await this.deps.db('auth_failures')
      .insert(keys.map((credential) => ({ credential, failures: 0, window_start: now, locked_until: null })))
      .onConflict('credential')
      .ignore();
    const locked = new Set<CounterScope>();
    await this.deps.db.transaction(async (tx) => {
      const read = tx('auth_failures').whereIn('credential', keys).orderBy('credential');
      const rows = (await (isSqlite(tx) ? read : read.forUpdate())) as FailureRow[];
      for (const c of counters) {
        const row = rows.find((r) => r.credential === c.key);
        const fresh = !row || now - Number(row.window_start) > authFailureWindowSeconds * 1000;
        const failures = fresh ? 1 : Number(row.failures) + 1;
        const wasLocked = row?.locked_until !== null && row?.locked_until !== undefined && Number(row.locked_until) > now;
        const values = {
          failures,
          window_start: fresh ? now : Number(row.window_start),
          // A counter already locked keeps its lock (a check refused while locked never gets here, but another
          // counter's failure may), so the lock is not extended by failures it did not see.
          locked_until: wasLocked ? Number(row.locked_until) : failures >= c.limit ? now + authLockoutSeconds * 1000 : null,
        };
        // The row is gone only if a sign-in succeeded meanwhile and reset the count.
        if (row) await tx('auth_failures').where({ credential: c.key }).update(values);
        else await tx('auth_failures').insert({ credential: c.key, ...values }).onConflict('credential').ignore();
        if (!wasLocked && values.locked_until !== null) {
          locked.add(c.scope);
          await this.auditLock(tx, 'LockSignIn', c, now, ctx, { failures, lockedUntil: new Date(values.locked_until).toISOString() });
        }
      }
      // Every process evicts the cached sign-ins the new locks cover, as failed() does in this one.
      await recordSignInChanges(tx, new Date(now), lockedSignIns(login, addressOf(ctx), counters, locked));
    });
    return locked;
  }

  /**
   * Deletes the failure counters whose window and lock are over, so one row per guessed (login, address) does not
   * stay forever; a lock nobody came back to is recorded as lifted as it goes. The server's housekeeping calls it.
   */
  async pruneFailures(): Promise<void> {
    const now = this.deps.clock.now().getTime();
    const windowStart = now - this.deps.config.authFailureWindowSeconds * 1000;
    const stale = (q: Knex.QueryBuilder) => q.where('window_start', '<', windowStart).andWhere((w) => w.whereNull('locked_until').orWhere('locked_until', '<=', now));
    for (;;) {
      const rows = (await stale(this.deps.db('auth_failures'))
        .orderBy('window_start')
        .limit(PRUNE_BATCH)
        .select('credential', 'locked_until')) as Pick<FailureRow, 'credential' | 'locked_until'>[];
      if (rows.length === 0) return;
      const deleted = await this.deps.db.transaction(async (tx) => {
        let n = await stale(tx('auth_failures').whereIn('credential', rows.filter((r) => r.locked_until === null).map((r) => r.credential))).whereNull('locked_until').del();
        for (const row of rows.filter((r) => r.locked_until !== null)) {
          // Only if no failure or lifting touched it since it was read: else its lifting is someone else's record.
          if ((await stale(tx('auth_failures').where({ credential: row.credential, locked_until: row.locked_until })).del()) !== 1) continue;
          n++;
          const scope: CounterScope = row.credential.startsWith('la:') ? 'login-address' : row.credential.startsWith('a:') ? 'address' : 'login';
          await this.auditLock(tx, 'UnlockSignIn', { scope, key: row.credential }, now, { channel: 'system' }, { lockedUntil: new Date(Number(row.locked_until)).toISOString() });
        }
        return n;
      });
      if (rows.length < PRUNE_BATCH || deleted === 0) return;
    }
  }
}

/** Whose failures are audited: nobody signed in, only where from. */
function nobody(ctx: CheckCtx): Actor {
  return { userId: null, accountId: 0, accountPath: '', accountType: 'customer', roles: [], channel: ctx.channel, remoteAddr: ctx.remoteAddr, requestId: ctx.requestId };
}

/** Whether a change names a cached sign-in: its account, or its login, its address or both (none: every one). */
function covers(change: SignInChangeRow, entry: CacheEntry): boolean {
  const { login_hash: login, address_hash: address, account_id: accountId } = change;
  if (accountId !== null) return entry.actor.accountId === accountId;
  return (login === null || entry.login === login) && (address === null || entry.addressHash === address);
}

/**
 * The cached sign-ins that locks just set cover: a (login, address) lock covers that login from that address, a
 * login lock the login from everywhere, a sign-in address lock (not ValidateUser's) every login from the address.
 */
function lockedSignIns(login: string, address: string, counters: Counter[], locked: Set<CounterScope>): SignInChange[] {
  const changes: SignInChange[] = [];
  if (locked.has('login')) changes.push({ login });
  else if (locked.has('login-address')) changes.push({ login, address });
  if (locked.has('address') && counters[1].key === addressKey('', address)) changes.push({ address });
  return changes;
}

function addressKey(addressScope: string, address: string): string {
  return `a:${sha256(`${addressScope}\0${address}`)}`;
}

/** The client address failures are counted under (as src/api/client-address.ts determined it). */
function addressOf(ctx: { remoteAddr?: string }): string {
  return ctx.remoteAddr ?? 'unknown';
}
