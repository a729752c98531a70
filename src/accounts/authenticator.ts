import crypto from 'node:crypto';
import type { Actor, Channel, Deps, Role } from '../context';
import { writeAudit } from '../audit/audit';
import { AppError } from '../domain/errors';
import type { UsersService } from './users-service';

export interface Credentials {
  login: string;
  password: string;
}

interface CacheEntry {
  actor: Omit<Actor, 'channel' | 'remoteAddr' | 'requestId'>;
  expires: number;
}

/**
 * Turns API credentials into an Actor. A verified password is remembered for a minute under an HMAC with a
 * per-process key, so the memory-hard hash is paid once per credential, not once per call. Repeated failures
 * lock the credential for a while (counted in the database, so every server process sees them).
 */
export class Authenticator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly key = crypto.randomBytes(32);
  private static readonly TTL_MS = 60_000;
  private static readonly MAX_ENTRIES = 10_000;

  constructor(
    private readonly deps: Deps,
    private readonly users: UsersService,
  ) {}

  async authenticate(cred: Credentials, ctx: { channel: Channel; remoteAddr?: string; requestId?: string; requiredRoles?: readonly Role[] }): Promise<Actor> {
    const now = this.deps.clock.now().getTime();
    const cacheKey = crypto.createHmac('sha256', this.key).update(cred.login).update('\0').update(cred.password).digest('base64');
    const hit = this.cache.get(cacheKey);
    if (hit && hit.expires > now) return this.withRoles({ ...hit.actor, ...ctx }, ctx.requiredRoles);
    const credential = crypto.createHash('sha256').update(cred.login.toLowerCase()).digest('hex');
    await this.assertNotLocked(credential, now);
    try {
      const { user, account } = await this.users.verify(cred.login, cred.password);
      const actor = {
        userId: user.id,
        accountId: account.id,
        accountPath: account.path,
        accountType: account.type,
        roles: user.roles ? (user.roles.split(',') as Role[]) : [],
      };
      if (this.cache.size >= Authenticator.MAX_ENTRIES) this.cache.clear();
      this.cache.set(cacheKey, { actor, expires: now + Authenticator.TTL_MS });
      await this.deps.db('auth_failures').where({ credential }).del();
      return this.withRoles({ ...actor, channel: ctx.channel, remoteAddr: ctx.remoteAddr, requestId: ctx.requestId }, ctx.requiredRoles);
    } catch (e) {
      if (e instanceof AppError && e.code === 'UNAUTHENTICATED') {
        await this.countFailure(credential, now);
        await writeAudit(this.deps.db, { userId: null, accountId: 0, accountPath: '', accountType: 'customer', roles: [], channel: ctx.channel, remoteAddr: ctx.remoteAddr, requestId: ctx.requestId }, new Date(now), {
          operation: 'Authenticate',
          objectType: 'credential',
          objectId: credential.slice(0, 16),
          outcome: 'error',
          errorCode: 'UNAUTHENTICATED',
        });
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

  private async assertNotLocked(credential: string, now: number): Promise<void> {
    const row = (await this.deps.db('auth_failures').where({ credential }).first()) as { locked_until: number | null } | undefined;
    if (row && row.locked_until !== null && Number(row.locked_until) > now) {
      const seconds = Math.ceil((Number(row.locked_until) - now) / 1000);
      throw new AppError('UNAUTHENTICATED', `Too many failed sign-ins for this login; try again in ${seconds} seconds.`, 'login');
    }
  }

  private async countFailure(credential: string, now: number): Promise<void> {
    const { authFailureLimit, authFailureWindowSeconds, authLockoutSeconds } = this.deps.config;
    await this.deps.db.transaction(async (tx) => {
      const row = (await tx('auth_failures').where({ credential }).first()) as { failures: number; window_start: number } | undefined;
      const fresh = !row || now - Number(row.window_start) > authFailureWindowSeconds * 1000;
      const failures = fresh ? 1 : Number(row!.failures) + 1;
      const values = {
        failures,
        window_start: fresh ? now : Number(row!.window_start),
        locked_until: failures >= authFailureLimit ? now + authLockoutSeconds * 1000 : null,
      };
      if (row) await tx('auth_failures').where({ credential }).update(values);
      else await tx('auth_failures').insert({ credential, ...values });
    });
  }
}
