import crypto from 'node:crypto';
import type { Actor, Deps, Role } from '../context';
import type { AccountType } from '../context';

/** The cookie that carries the session id. `__Host-` pins it to this host and path / when served over https. */
export const COOKIE_PLAIN = 'hw_console';
export const COOKIE_SECURE = '__Host-hw_console';

export interface Flash {
  kind: 'ok' | 'error';
  text: string;
}

export interface ConsoleSession {
  idHash: string;
  userId: number;
  csrfToken: string;
  flash: Flash | null;
  /** The session user acting in the console, built exactly as the API doors build theirs. */
  actor: Actor;
  login: string;
  displayName: string;
  accountName: string;
}

interface SessionRow {
  id_hash: string;
  user_id: number;
  csrf_token: string;
  flash: string | null;
  idle_expires_at: unknown;
  absolute_expires_at: unknown;
}

const hashId = (id: string) => crypto.createHash('sha256').update(id).digest('hex');

/** Who may use the console: an enabled user with the admin role, of the provider or of a reseller. */
export function mayUseConsole(accountType: AccountType, roles: readonly Role[]): boolean {
  return accountType !== 'customer' && roles.includes('admin');
}

/**
 * Console sessions kept in the database: random 256-bit ids (the table keeps only their hash), a synchronizer
 * CSRF token each, idle and absolute expiry. Each request rebuilds the Actor from the user's current row, so a
 * disabled user, a closed account or a lost admin role ends the session at once.
 */
export class SessionStore {
  constructor(private readonly deps: Deps) {}

  private get idleMs() {
    return this.deps.config.consoleSessionIdleMinutes * 60_000;
  }

  async create(userId: number, remoteAddr: string | undefined): Promise<{ id: string }> {
    const id = crypto.randomBytes(32).toString('base64url');
    const now = this.deps.clock.now().getTime();
    await this.deps.db('console_sessions').insert({
      id_hash: hashId(id),
      user_id: userId,
      csrf_token: crypto.randomBytes(32).toString('base64url'),
      flash: null,
      remote_addr: remoteAddr?.slice(0, 64) ?? null,
      created_at: now,
      last_seen_at: now,
      idle_expires_at: now + this.idleMs,
      absolute_expires_at: now + this.deps.config.consoleSessionAbsoluteHours * 3_600_000,
    });
    // Expired sessions are removed now and then by whoever signs in, so the table does not grow without bound.
    if (Math.random() < 0.05) await this.deps.db('console_sessions').where('absolute_expires_at', '<', now).orWhere('idle_expires_at', '<', now).del();
    return { id };
  }

  /** The live session for a cookie value, its idle expiry moved on; undefined when missing, expired or no longer allowed. */
  async load(id: string | undefined, ctx: { remoteAddr?: string; requestId?: string }): Promise<ConsoleSession | undefined> {
    if (!id || id.length > 128) return undefined;
    const { db } = this.deps;
    const idHash = hashId(id);
    const row = (await db('console_sessions').where({ id_hash: idHash }).first()) as SessionRow | undefined;
    if (!row) return undefined;
    const now = this.deps.clock.now().getTime();
    if (Number(row.idle_expires_at) <= now || Number(row.absolute_expires_at) <= now) {
      await db('console_sessions').where({ id_hash: idHash }).del();
      return undefined;
    }
    const user = (await db('users as u')
      .join('accounts as a', 'a.id', 'u.account_id')
      .where('u.id', row.user_id)
      .first('u.id', 'u.login', 'u.roles', 'u.status', 'u.first_name', 'u.last_name', 'a.id as account_id', 'a.path', 'a.type', 'a.status as account_status', 'a.company_name')) as
      | { id: number; login: string; roles: string; status: string; first_name: string; last_name: string; account_id: number; path: string; type: AccountType; account_status: string; company_name: string | null }
      | undefined;
    const roles = (user?.roles ? user.roles.split(',') : []) as Role[];
    if (!user || user.status !== 'enabled' || user.account_status === 'closed' || !mayUseConsole(user.type, roles)) {
      await db('console_sessions').where({ id_hash: idHash }).del();
      return undefined;
    }
    // Written at most once a minute: every page view need not be a write.
    if (now - Number(row.idle_expires_at) + this.idleMs > 60_000) {
      await db('console_sessions').where({ id_hash: idHash }).update({ last_seen_at: now, idle_expires_at: now + this.idleMs });
    }
    return {
      idHash,
      userId: Number(user.id),
      csrfToken: row.csrf_token,
      flash: row.flash ? (JSON.parse(row.flash) as Flash) : null,
      actor: {
        userId: Number(user.id),
        accountId: Number(user.account_id),
        accountPath: user.path,
        accountType: user.type,
        roles,
        channel: 'console',
        remoteAddr: ctx.remoteAddr,
        requestId: ctx.requestId,
      },
      login: user.login,
      displayName: `${user.first_name} ${user.last_name}`.trim() || user.login,
      accountName: user.company_name || `Account ${user.account_id}`,
    };
  }

  async setFlash(session: ConsoleSession, flash: Flash | null): Promise<void> {
    await this.deps.db('console_sessions').where({ id_hash: session.idHash }).update({ flash: flash ? JSON.stringify(flash) : null });
  }

  async destroy(session: ConsoleSession): Promise<void> {
    await this.deps.db('console_sessions').where({ id_hash: session.idHash }).del();
  }

  /** Constant-time comparison of a submitted CSRF token with the session's. */
  static tokenMatches(session: ConsoleSession, submitted: unknown): boolean {
    if (typeof submitted !== 'string') return false;
    const a = Buffer.from(session.csrfToken);
    const b = Buffer.from(submitted);
    return a.length === b.length && crypto.timingSafeEqual(a, b);
  }
}
