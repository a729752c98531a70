import type Koa from 'koa';
import type nunjucks from 'nunjucks';
import type { Actor } from '../context';
import { AppError } from '../domain/errors';
import type { Services } from '../services';
import type { ConsoleSession, Flash, SessionStore } from './sessions';

/** Everything a console page handler needs: the request, the signed-in operator, the services, rendering. */
export class Page {
  /** Field name -> message, from an AppError's field, shown beside that field. */
  errors: Record<string, string> = {};
  formError: string | null = null;

  constructor(
    readonly ctx: Koa.Context,
    readonly session: ConsoleSession,
    readonly services: Services,
    private readonly views: nunjucks.Environment,
    private readonly sessions: SessionStore,
    /** The POSTed form (urlencoded), empty on GET. */
    readonly form: Record<string, string>,
  ) {}

  get actor(): Actor {
    return this.session.actor;
  }

  get isProvider(): boolean {
    return this.session.actor.accountType === 'provider';
  }

  query(name: string): string {
    const v = this.ctx.query[name];
    return (Array.isArray(v) ? v[0] : v) ?? '';
  }

  param(name: string): number {
    const raw = (this.ctx as unknown as { params: Record<string, string> }).params[name];
    const n = Number(raw);
    // A malformed id in a URL is a page that does not exist, like an id outside the operator's subtree.
    if (!/^\d{1,15}$/.test(raw ?? '') || n <= 0) throw new AppError('NOT_FOUND', `There is no such page.`);
    return n;
  }

  async render(view: string, data: Record<string, unknown> = {}, status = 200): Promise<void> {
    const flash = this.session.flash;
    if (flash) await this.sessions.setFlash(this.session, null);
    this.ctx.status = status;
    this.ctx.type = 'html';
    this.ctx.body = this.views.render(view, {
      ...data,
      me: { login: this.session.login, name: this.session.displayName, account: this.session.accountName, isProvider: this.isProvider },
      csrf: this.session.csrfToken,
      flash,
      errors: this.errors,
      formError: this.formError,
      form: this.form,
      path: this.ctx.path,
      nav: navSection(this.ctx.path),
    });
  }

  /** After a POST: Post/Redirect/Get with a message shown once on the next page. */
  async redirect(url: string, flash?: Flash): Promise<void> {
    if (flash) await this.sessions.setFlash(this.session, flash);
    this.ctx.status = 303;
    this.ctx.redirect(url);
  }

  /**
   * Runs a service call for a form. An INVALID_ARGUMENT (or other refusal naming a field) is kept for the
   * re-rendered form, beside its field; returns undefined then. Anything else goes on to the error pages.
   */
  async attempt<T>(run: () => Promise<T>): Promise<T | undefined> {
    try {
      return await run();
    } catch (e) {
      if (e instanceof AppError && ['INVALID_ARGUMENT', 'NOT_ALLOWED', 'CONFLICT', 'UNAVAILABLE', 'PROVIDER_ERROR', 'PAYMENT_DECLINED'].includes(e.code)) {
        // Views look the message up under the names the service gives the field (e.g. period.duration).
        if (e.field) this.errors[e.field] = e.message;
        this.formError = e.message;
        return undefined;
      }
      throw e;
    }
  }

  /** Text of a form field, trimmed; undefined when empty. */
  text(name: string): string | undefined {
    const v = this.form[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  }

  checkbox(name: string): boolean {
    return this.form[name] === 'on' || this.form[name] === 'true' || this.form[name] === '1';
  }
}

function navSection(p: string): string {
  const m = /^\/console\/([a-z-]+)/.exec(p);
  return m ? m[1] : 'dashboard';
}
