import crypto from 'node:crypto';
import type { Actor, Channel, Deps, Role } from '../context';
import { writeAudit } from '../audit/audit';
import { isSqlite } from '../db/knex';
import { AppError } from '../domain/errors';
import type { UsersService } from './users-service';

export interface Credentials {
  login: string;
  password: string;
}

const DIGEST_WINDOW_MS = 5 * 60_000;
/** crypto.hash (Node >= 20.12): a digest without a Hash object. */
const oneShotHash = (crypto as unknown as { hash?: (algorithm: string, data: string, encoding: 'base64') => string }).hash;
const LOCKOUTS = new WeakSet<AppError>();

interface CacheEntry {
  actor: Omit<Actor, 'channel' | 'remoteAddr' | 'requestId'>;
  credential: string;
  expires: number;
}

/**
 * Turns API credentials into an Actor. A verified password is remembered for a minute under an HMAC with a
 * per-process key, so the memory-hard hash is paid once per credential, not once per call. Repeated failures
 * lock the credential for a while (counted in the database, so every server process sees them).
 */
export class Authenticator {
  private readonly cache = new Map<string, CacheEntry>();
  /** Verifications under way: concurrent calls with the same credential share one memory-hard hash. */
  private readonly inFlight = new Map<string, Promise<Omit<Actor, 'channel' | 'remoteAddr' | 'requestId'>>>();
  private readonly keyText = crypto.randomBytes(32).toString('base64');
  private static readonly TTL_MS = 60_000;
  private static readonly MAX_ENTRIES = 10_000;

  constructor(
    private readonly deps: Deps,
    private readonly users: UsersService,
  ) {}

  /**
   * A credential verified within the last minute is answered from the cache without another promise or database
   * trip (this runs on every API call); anything else goes through {@link verifyAndCache}.
   */
  authenticate(cred: Credentials, ctx: { channel: Channel; remoteAddr?: string; requestId?: string; requiredRoles?: readonly Role[] }): Promise<Actor> {
    // Transports pass what arrived on the wire: a missing login or password is a wrong one, not a crash.
    if (typeof cred?.login !== 'string' || typeof cred.password !== 'string') return Promise.reject(new AppError('UNAUTHENTICATED', 'The login or password is wrong.', 'login'));
    const now = this.deps.clock.now().getTime();
    const cacheKey = this.cacheKey(cred.login, cred.password);
    const hit = this.cache.get(cacheKey);
    if (hit && hit.expires > now) {
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

  private async verifyAndCache(cred: Credentials, ctx: { channel: Channel; remoteAddr?: string; requestId?: string; requiredRoles?: readonly Role[] }, now: number, cacheKey: string): Promise<Actor> {
    const credential = crypto.createHash('sha256').update(cred.login.toLowerCase()).digest('hex');
    try {
      let pending = this.inFlight.get(cacheKey);
      if (!pending) {
        pending = this.verify(cred, credential, cacheKey, now).finally(() => this.inFlight.delete(cacheKey));
        this.inFlight.set(cacheKey, pending);
      }
      const actor = await pending;
      return this.withRoles({ ...actor, channel: ctx.channel, remoteAddr: ctx.remoteAddr, requestId: ctx.requestId }, ctx.requiredRoles);
    } catch (e) {
      // A refusal while locked is not another guess: counting it would extend the lock for the rightful user.
      if (e instanceof AppError && e.code === 'UNAUTHENTICATED' && !LOCKOUTS.has(e)) {
        await this.countFailure(credential, now);
        await this.auditFailure(credential, now, ctx);
      }
      throw e;
    }
  }

  /**
   * The cache's key for a login and password: SHA-256 over a per-process secret, the login and the password, so
   * the cache never holds a password nor anything a guess can be checked against without the secret. One-shot
   * crypto.hash costs a sixth of createHmac (which builds a stream object per call), and this runs on every API
   * call; a lookup key needs no HMAC construction (nobody outside sees it, so length extension buys nothing).
   */
  private cacheKey(login: string, password: string): string {
    const message = `${this.keyText}\0${login}\0${password}`;
    return oneShotHash ? oneShotHash('sha256', message, 'base64') : crypto.createHash('sha256').update(message).digest('base64');
  }

  private async verify(cred: Credentials, credential: string, cacheKey: string, now: number): Promise<Omit<Actor, 'channel' | 'remoteAddr' | 'requestId'>> {
    await this.assertNotLocked(credential, now);
    const { user, account } = await this.users.verify(cred.login, cred.password);
    const actor = {
      userId: user.id,
      accountId: account.id,
      accountPath: account.path,
      accountType: account.type,
      roles: user.roles ? (user.roles.split(',') as Role[]) : [],
    };
    if (this.cache.size >= Authenticator.MAX_ENTRIES) this.cache.clear();
    this.cache.set(cacheKey, { actor, credential, expires: now + Authenticator.TTL_MS });
    await this.deps.db('auth_failures').where({ credential }).del();
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
    const credential = crypto.createHash('sha256').update(token.login.toLowerCase()).digest('hex');
    await this.assertNotLocked(credential, now);
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
      await this.countFailure(credential, now);
      await this.auditFailure(credential, now, ctx);
      throw fail();
    }
    const nonceHash = crypto.createHash('sha256').update(nonce).digest('hex');
    try {
      await this.deps.db('ws_nonces').insert({ nonce_hash: nonceHash, expires_at: created + DIGEST_WINDOW_MS * 2 });
    } catch {
      throw fail('This UsernameToken nonce was already used; send a fresh nonce with every request.');
    }
    if (Math.random() < 0.01) await this.deps.db('ws_nonces').where('expires_at', '<', now).del();
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
   */
  async checkPassword(actor: Actor, login: string, password: string, vendorId?: number): Promise<{ accountId: number; userId: number; vendorAccountId: number | null }> {
    const now = this.deps.clock.now().getTime();
    const credential = crypto.createHash('sha256').update(String(login).toLowerCase()).digest('hex');
    await this.assertNotLocked(credential, now);
    try {
      return await this.users.validateInScope(actor, login, password, vendorId);
    } catch (e) {
      if (e instanceof AppError && e.code === 'UNAUTHENTICATED') {
        await this.countFailure(credential, now);
        await this.auditFailure(credential, now, actor);
      }
      throw e;
    }
  }

  /** Forget cached credentials (after a password change or a user being disabled). */
  forget(): void {
    this.cache.clear();
  }

  private withRoles(actor: Actor, required?: readonly Role[]): Actor {
    if (required && required.length && !required.some((r) => actor.roles.includes(r))) {
      throw new AppError('UNAUTHENTICATED', `This user lacks the role needed here (one of ${required.join(', ')}).`, 'login');
    }
    return actor;
  }

  /** A failed sign-in leaves a trace: the credential's hash prefix (never the login or password), where from, when. */
  private async auditFailure(credential: string, now: number, ctx: { channel: Channel; remoteAddr?: string; requestId?: string }): Promise<void> {
    const nobody: Actor = { userId: null, accountId: 0, accountPath: '', accountType: 'customer', roles: [], channel: ctx.channel, remoteAddr: ctx.remoteAddr, requestId: ctx.requestId };
    await writeAudit(this.deps.db, nobody, new Date(now), {
      operation: 'Authenticate',
      objectType: 'credential',
      objectId: credential.slice(0, 16),
      outcome: 'error',
      errorCode: 'UNAUTHENTICATED',
    });
  }

  private async assertNotLocked(credential: string, now: number): Promise<void> {
    const row = (await this.deps.db('auth_failures').where({ credential }).first()) as { locked_until: number | null } | undefined;
    if (row && row.locked_until !== null && Number(row.locked_until) > now) {
      const seconds = Math.ceil((Number(row.locked_until) - now) / 1000);
      const locked = new AppError('UNAUTHENTICATED', `Too many failed sign-ins for this login; try again in ${seconds} seconds.`, 'login');
      LOCKOUTS.add(locked);
      throw locked;
    }
  }

  private async countFailure(credential: string, now: number): Promise<void> {
    // A wrong guess evicts the login's cached sign-ins, so a lock it triggers is checked on the very next call.
    for (const [key, entry] of this.cache) if (entry.credential === credential) this.cache.delete(key);
    const { authFailureLimit, authFailureWindowSeconds, authLockoutSeconds } = this.deps.config;
    // Parallel guesses must each count: make sure the row exists, then read and bump it under a row lock
    // (SQLite serialises every transaction on its one connection, so it needs no lock).
    await this.deps.db('auth_failures').insert({ credential, failures: 0, window_start: now, locked_until: null }).onConflict('credential').ignore();
    await this.deps.db.transaction(async (tx) => {
      const read = tx('auth_failures').where({ credential });
      const row = (await (isSqlite(tx) ? read : read.forUpdate()).first()) as { failures: number; window_start: number } | undefined;
      const fresh = !row || now - Number(row.window_start) > authFailureWindowSeconds * 1000;
      const failures = fresh ? 1 : Number(row.failures) + 1;
      const values = {
        failures,
        window_start: fresh ? now : Number(row.window_start),
        locked_until: failures >= authFailureLimit ? now + authLockoutSeconds * 1000 : null,
      };
      // The row is gone only if a sign-in succeeded meanwhile and reset the count.
      if (row) await tx('auth_failures').where({ credential }).update(values);
      else await tx('auth_failures').insert({ credential, ...values }).onConflict('credential').ignore();
    });
  }
}
