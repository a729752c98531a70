import crypto from 'node:crypto';
import Koa from 'koa';
import Router from '@koa/router';
import { requestContext, safeErrorMessage } from '../logger';
import type { Services } from '../services';

/** The main Koa application: request ids, access log, health. Transports mount their routes on it. */
export function createHttpApp(services: Services): { app: Koa; router: Router } {
  const { log, db } = services.deps;
  const app = new Koa();
  app.proxy = false;
  const router = new Router();

  app.use(async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const requestId = /^[A-Za-z0-9._-]{1,64}$/.test(incoming) ? incoming : crypto.randomUUID();
    ctx.set('X-Request-Id', requestId);
    ctx.state.requestId = requestId;
    const started = process.hrtime.bigint();
    await requestContext.run({ requestId }, async () => {
      try {
        await next();
      } finally {
        const msTaken = Number(process.hrtime.bigint() - started) / 1e6;
        log.debug('http', { method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(msTaken * 10) / 10 });
      }
    });
  });

  // Last-resort handler: no stack trace, SQL or path ever leaves the server.
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (e) {
      log.error('unhandled request error', { error: safeErrorMessage(e) });
      ctx.status = 500;
      ctx.type = 'text/plain';
      ctx.body = 'Internal error; the request id in X-Request-Id helps the operator find the log entry.';
    }
  });

  router.get('/healthz', async (ctx) => {
    try {
      await db.raw('select 1');
      ctx.body = { status: 'ok', database: 'reachable' };
    } catch {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', database: 'unreachable' };
    }
  });

  return { app, router };
}
