import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type Koa from 'koa';
import Router from '@koa/router';
import getRawBody from 'raw-body';
import { clientAddress } from '../api/client-address';
import { AppError } from '../domain/errors';
import { safeErrorMessage } from '../logger';
import type { Services } from '../services';
import { Page } from './page';
import { createViews } from './render';
import { COOKIE_PLAIN, COOKIE_SECURE, SessionStore, mayUseConsole } from './sessions';
import { registerPages } from './routes';

export const CONSOLE_PREFIX = '/console';
const LOGIN_CSRF_COOKIE = 'hw_console_login';
const FORM_LIMIT = '256kb';
const STYLESHEET = fs.readFileSync(path.join(__dirname, 'static', 'console.css'));
const STYLESHEET_VERSION = crypto.createHash('sha256').update(STYLESHEET).digest('hex').slice(0, 12);

export type Handler = (page: Page) => Promise<void>;
export interface ConsoleRoutes {
  get(path: string, handler: Handler): void;
  post(path: string, handler: Handler): void;
}

/**
 * The operators' console under /console: server-rendered pages, sessions in the database, a synchronizer CSRF
 * token on every POST. Pages act through the same services and Actor scoping as the APIs.
 */
export function consoleMiddleware(services: Services): Koa.Middleware {
  const { config, log } = services.deps;
  const views = createViews();
  views.addGlobal('cssVersion', STYLESHEET_VERSION);
  const sessions = new SessionStore(services.deps);
  const secure = config.publicUrl.startsWith('https:');
  const cookieName = secure ? COOKIE_SECURE : COOKIE_PLAIN;

  const router = new Router({ prefix: CONSOLE_PREFIX });
  const wrap = (handler: Handler) => async (ctx: Koa.Context) => handler(ctx.state.consolePage as Page);
  const routes: ConsoleRoutes = {
    get: (p, h) => void router.get(p, wrap(h)),
    post: (p, h) => void router.post(p, wrap(h)),
  };
  registerPages(routes);
  const dispatch = router.routes();

  const setCookie = (ctx: Koa.Context, name: string, value: string, maxAgeSeconds?: number) => {
    const parts = [`${name}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Lax'];
    if (secure) parts.push('Secure');
    if (maxAgeSeconds !== undefined) parts.push(`Max-Age=${maxAgeSeconds}`);
    ctx.append('Set-Cookie', parts.join('; '));
  };

  const plain = (ctx: Koa.Context, status: number, title: string, message: string) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = views.render('error.njk', { title, message, requestId: ctx.state.requestId, cssVersion: STYLESHEET_VERSION });
  };

  const readForm = async (ctx: Koa.Context): Promise<Record<string, string>> => {
    if (!ctx.is('application/x-www-form-urlencoded')) return {};
    const raw = await getRawBody(ctx.req, { limit: FORM_LIMIT, encoding: 'utf8' });
    const form: Record<string, string> = {};
    for (const [k, v] of new URLSearchParams(raw)) form[k] = v;
    return form;
  };

  const renderLogin = (ctx: Koa.Context, data: { login?: string; error?: string; notice?: string; next?: string }, status = 200) => {
    const token = crypto.randomBytes(32).toString('base64url');
    setCookie(ctx, LOGIN_CSRF_COOKIE, token);
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = views.render('login.njk', { ...data, csrf: token, cssVersion: STYLESHEET_VERSION });
  };

  const safeNext = (next: unknown): string => (typeof next === 'string' && /^\/console(\/[A-Za-z0-9/_?=&%.-]*)?$/.test(next) ? next : CONSOLE_PREFIX);

  return async (ctx, next) => {
    if (ctx.path !== CONSOLE_PREFIX && !ctx.path.startsWith(`${CONSOLE_PREFIX}/`)) return next();
    ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'same-origin');
    ctx.set('X-Frame-Options', 'DENY');

    if (ctx.path === `${CONSOLE_PREFIX}/static/console.css`) {
      ctx.set('Cache-Control', 'public, max-age=86400');
      ctx.set('ETag', `"${STYLESHEET_VERSION}"`);
      if (ctx.get('If-None-Match') === `"${STYLESHEET_VERSION}"`) {
        ctx.status = 304;
        return;
      }
      ctx.type = 'text/css';
      ctx.body = STYLESHEET;
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    const remoteAddr = clientAddress(ctx.req, config.trustProxy);
    try {
      if (ctx.path === `${CONSOLE_PREFIX}/login`) {
        if (ctx.method === 'GET') {
          const existing = await sessions.load(ctx.cookies.get(cookieName), { remoteAddr });
          if (existing) return ctx.redirect(CONSOLE_PREFIX);
          return renderLogin(ctx, { next: safeNext(ctx.query.next), notice: ctx.query.bye ? 'You have signed out.' : ctx.query.expired ? 'Your session has ended; sign in again.' : undefined });
        }
        if (ctx.method !== 'POST') return plain(ctx, 405, 'Method not allowed', 'Sign in with the form.');
        const form = await readForm(ctx);
        const expected = ctx.cookies.get(LOGIN_CSRF_COOKIE);
        const given = form._csrf ?? '';
        if (!expected || expected.length !== given.length || !crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(given))) {
          return plain(ctx, 403, 'Form expired', 'This form was not issued by this console (or it expired). Reload the sign-in page and try again.');
        }
        const login = (form.login ?? '').trim();
        try {
          const actor = await services.auth.authenticate({ login, password: form.password ?? '' }, { channel: 'console', remoteAddr, requestId: ctx.state.requestId as string });
          if (!mayUseConsole(actor.accountType, actor.roles) || actor.userId === null) {
            return renderLogin(ctx, { login, next: safeNext(form.next), error: 'The console is for administrators of the provider and of resellers; this user is not one.' }, 403);
          }
          const { id } = await sessions.create(actor.userId, remoteAddr);
          setCookie(ctx, cookieName, id);
          setCookie(ctx, LOGIN_CSRF_COOKIE, '', 0);
          ctx.status = 303;
          return ctx.redirect(safeNext(form.next));
        } catch (e) {
          if (e instanceof AppError && (e.code === 'UNAUTHENTICATED' || e.code === 'INVALID_ARGUMENT')) {
            return renderLogin(ctx, { login, next: safeNext(form.next), error: e.message }, 401);
          }
          throw e;
        }
      }

      const session = await sessions.load(ctx.cookies.get(cookieName), { remoteAddr, requestId: ctx.state.requestId as string });
      if (!session) {
        if (ctx.method === 'GET') return ctx.redirect(`${CONSOLE_PREFIX}/login?next=${encodeURIComponent(ctx.originalUrl)}`);
        return plain(ctx, 403, 'Not signed in', 'Your session has ended, so this form was not carried out. Sign in again.');
      }
      let form: Record<string, string> = {};
      if (ctx.method === 'POST') {
        form = await readForm(ctx);
        // Every POST carries the session's synchronizer token; without it nothing is done.
        if (!SessionStore.tokenMatches(session, form._csrf)) {
          log.warn('console form refused: CSRF token missing or wrong', { path: ctx.path, userId: session.userId });
          return plain(ctx, 403, 'Form refused', 'This form did not carry this session\u2019s security token, so nothing was changed. Go back, reload the page and try again.');
        }
      }
      if (ctx.path === `${CONSOLE_PREFIX}/logout` && ctx.method === 'POST') {
        await sessions.destroy(session);
        setCookie(ctx, cookieName, '', 0);
        ctx.status = 303;
        return ctx.redirect(`${CONSOLE_PREFIX}/login?bye=1`);
      }
      ctx.state.consolePage = new Page(ctx, session, services, views, sessions, form);
      let matched = true;
      await dispatch(ctx as Parameters<typeof dispatch>[0], async () => {
        matched = false;
      });
      if (!matched) return plain(ctx, 404, 'Not found', 'There is no such page in the console.');
    } catch (e) {
      if (e instanceof AppError && e.code === 'NOT_FOUND') return plain(ctx, 404, 'Not found', e.message);
      if (e instanceof AppError && (e.code === 'NOT_ALLOWED' || e.code === 'UNAUTHENTICATED')) return plain(ctx, 403, 'Not allowed', e.message);
      if (e instanceof AppError && e.code === 'INVALID_ARGUMENT') return plain(ctx, 400, 'Not understood', e.message);
      if ((e as { type?: string }).type === 'entity.too.large') return plain(ctx, 413, 'Too large', 'The form sent was too large.');
      log.error('console page failed', { path: ctx.path, error: safeErrorMessage(e) });
      return plain(ctx, 500, 'Something went wrong', 'The page could not be shown. The request id below helps the operator find the log entry.');
    }
  };
}
