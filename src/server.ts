import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock, type Clock } from './clock';
import type { Config } from './config';
import { createDb, type Db } from './db/knex';
import { migrateLatest } from './db/migrate';
import { createHttpApp } from './http/app';
import { createLogger, safeErrorMessage, type Logger } from './logger';
import { createServices, type Services } from './services';
import { BUNDLED_PLUGINS_DIR, loadPlugins } from './plugins/loader';
import { seedDemo, type DemoSeed } from './seed/demo';
import { bootstrapProvider } from './seed/bootstrap';
import { SecretBox, resolveSecretKey } from './crypto/secret-box';
import type Koa from 'koa';
import path from 'node:path';
import { mountSoap, type PostHandler } from './api/soap/soap-mount';
import { Worker, defaultOwner } from './jobs/worker';
import { orderHandlers } from './orders/engine';
import { subscriptionHooks } from './orders/step-handlers';
import { subscriptionActionHandlers } from './subscriptions/service-actions';
import { ORDERS_QUEUE } from './orders/transitions';
import { schedulePaymentReconciler } from './payments/reconcile-schedule';
import crypto from 'node:crypto';
import { requestContext } from './logger';
import { XmlRpcEndpoint } from './api/xmlrpc/execute';
import { XMLRPC_METHODS } from './api/xmlrpc/methods';
import { mountInvoiceHtml } from './billing/invoice-html';
import { scheduleBilling } from './billing/run/schedule';
import { billingService, provisioningService } from './api/soap/billing-service';
import { startDomainSync } from './domains/sync-schedule';
import { domainLifecycleHandlers, startDomainTransferPoll } from './domains/lifecycle';
import { startEventDelivery, type EventDelivery } from './events/delivery-runtime';
import { consoleMiddleware } from './console/app';

const WSDL_DIR = path.resolve(__dirname, '..', 'wsdl');
import type Router from '@koa/router';

export interface RunningServer {
  services: Services;
  url: string;
  /** Where clients reach the server (PUBLIC_URL, or the local URL). */
  publicUrl: string;
  legacyXmlRpcUrl: string | null;
  seed: DemoSeed;
  adminPassword?: string;
  /** The event dispatcher, the events queue's worker and the schedule scan. */
  events: EventDelivery;
  close(): Promise<void>;
}

export interface StartOptions {
  clock?: Clock;
  log?: Logger;
  db?: Db;
  /** Run the background worker (default true); tests that drive tasks by hand switch it off. */
  worker?: boolean;
  /** Seed the demo catalog and accounts (default: config.seedDemo); tests may start with only the provider and admin. */
  demo?: boolean;
}

function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

const starting: http.RequestListener = (_req, res) => {
  res.statusCode = 503;
  res.setHeader('Retry-After', '2');
  res.end('Hostwright is starting.');
};

/** Error of a start that failed after it had generated the administrator's password: main prints it anyway. */
export class StartError extends Error {
  constructor(
    override readonly cause: unknown,
    readonly adminPassword?: string,
  ) {
    super((cause as Error)?.message ?? String(cause));
  }
}

/**
 * Composition root: config -> database -> services -> transports -> listening sockets. The sockets are bound
 * first (answering 503 while starting), so a port already in use stops the start before anything is created.
 */
export async function startServer(config: Config, opts: StartOptions = {}): Promise<RunningServer> {
  const log = opts.log ?? createLogger({ level: config.logLevel, format: config.logFormat });
  let handler: http.RequestListener = starting;
  let legacyHandler: http.RequestListener = starting;
  const server = http.createServer((req, res) => handler(req, res));
  server.keepAliveTimeout = 65_000;
  const legacy = config.xmlrpcLegacyPort > 0 ? http.createServer((req, res) => legacyHandler(req, res)) : null;
  const closeSockets = () =>
    Promise.all(
      [server, legacy].filter((s): s is http.Server => s !== null && s.listening).map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
  const port = await listen(server, config.port, config.host);
  let legacyPort = 0;
  try {
    if (legacy) legacyPort = await listen(legacy, config.xmlrpcLegacyPort, config.host);
  } catch (e) {
    await closeSockets();
    throw e;
  }

  const db = opts.db ?? createDb(config.databaseUrl);
  let adminPassword: string | undefined;
  try {
    const clock = opts.clock ?? systemClock;
    const secrets = new SecretBox(resolveSecretKey(config.secretKey, config.databaseUrl));
    const deps = { db, clock, log, config, secrets };
    const applied = await migrateLatest(db);
    if (applied.length) log.info('migrations applied', { migrations: applied });
    const boot = await bootstrapProvider(deps);
    adminPassword = boot.generatedPassword;
    const plugins = loadPlugins(BUNDLED_PLUGINS_DIR, log);
    const seed = (opts.demo ?? config.seedDemo) ? await seedDemo(deps, plugins) : { created: false, logins: [] };
    const services = createServices(deps, plugins);
    const { app, router } = createHttpApp(services);
    const mounts = await mountTransports(services, app, router);
    mountInvoiceHtml(services, router); // GET /invoices/:id, the printable invoice
    app.use(router.routes()).use(router.allowedMethods());
    // Cached sign-ins follow the changes other processes commit (a closed account, a lock) within authCachePollMs.
    const stopSignInWatch = await services.auth.watchSignInChanges();
    const housekeeping = startHousekeeping(services);
    const reconciler = schedulePaymentReconciler(deps, services.payments, config.paymentReconcileCron);
    // The billing run on config.billingCron (default daily at 02:00 UTC; empty switches it off).
    const billingSchedule = scheduleBilling(services);
    const stopDomainSync = opts.worker !== false ? startDomainSync(services) : async () => {};
    const stopTransferPoll = opts.worker !== false ? startDomainTransferPoll(services) : async () => {};
    // Orders move through their workflows as background tasks; this process takes its share of them.
    const worker = new Worker(deps, services.tasks, {
      ...orderHandlers(deps, {
        tasks: services.tasks,
        pluginInstances: services.pluginInstances,
        payments: services.payments,
        fraud: services.fraud,
        subscriptions: subscriptionHooks(deps, services.subscriptions, services.catalog),
        documents: services.documents,
      }),
      ...subscriptionActionHandlers(deps, { pluginInstances: services.pluginInstances, subscriptions: services.subscriptions }),
      ...domainLifecycleHandlers(deps, { pluginInstances: services.pluginInstances }),
    }, { owner: defaultOwner(), queues: [ORDERS_QUEUE] });
    if (opts.worker !== false) worker.start();
    const events = startEventDelivery(deps, { tasks: services.tasks, notifications: services.notifications, schedules: services.notificationSchedules }, { run: opts.worker !== false });
    handler = apiFirst(mounts.posts, app.callback(), log);
    if (mounts.legacyXmlRpc) legacyHandler = mounts.legacyXmlRpc;
    const base = config.publicUrl || `http://localhost:${port}`;
    return {
      services,
      url: `http://localhost:${port}`,
      publicUrl: base,
      legacyXmlRpcUrl: legacy ? `http://localhost:${legacyPort}/RPC2` : null,
      seed,
      adminPassword,
      events,
      async close() {
        clearInterval(housekeeping);
        await stopSignInWatch();
        await stopDomainSync();
        await stopTransferPoll();
        await events.stop();
        await reconciler.destroy();
        await billingSchedule?.stop();
        await worker.stop();
        await mounts.close();
        await closeSockets();
        if (!opts.db) await db.destroy();
      },
    };
  } catch (e) {
    await closeSockets();
    if (!opts.db) await db.destroy().catch(() => undefined);
    throw new StartError(e, adminPassword);
  }
}

/**
 * API POSTs (SOAP, XML-RPC) go straight to their handlers: they need none of Koa's machinery, and skipping it is
 * a measurable share of each call. Everything else (WSDL, health, console) goes through Koa.
 */
function apiFirst(posts: Record<string, PostHandler>, koa: http.RequestListener, log: Logger): http.RequestListener {
  return (req, res) => {
    const post = req.method === 'POST' ? posts[(req.url ?? '').split('?')[0]] : undefined;
    if (!post) return koa(req, res);
    const incoming = req.headers['x-request-id'];
    const requestId = typeof incoming === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(incoming) ? incoming : crypto.randomUUID();
    res.setHeader('X-Request-Id', requestId);
    requestContext.run({ requestId }, () => {
      post(req, res, requestId).catch((e: unknown) => {
        log.error('unhandled API error', { error: safeErrorMessage(e) });
        if (!res.headersSent) res.statusCode = 500;
        res.end();
      });
    });
  };
}

/**
 * Periodic clean-up: idempotency keys past their time to live, spent WS-Security nonces, spent sign-in failure
 * counters, sign-in changes every process has read.
 */
function startHousekeeping(services: Services): NodeJS.Timeout {
  const { db, clock, config, log } = services.deps;
  const purge = async () => {
    const now = clock.now().getTime();
    try {
      await db('idempotency_keys').where('created_at', '<', now - config.idempotencyKeyTtlHours * 3_600_000).del();
      await db('ws_nonces').where('expires_at', '<', now).del();
      await services.auth.pruneFailures();
      await services.auth.pruneSignInChanges();
      // Invoice payments the gateway settled since (pending or unknown at PayInvoice time) are applied now.
      await services.documents.settlePayments();
    } catch (e) {
      log.warn('housekeeping failed', { error: safeErrorMessage(e) });
    }
  };
  const timer = setInterval(() => void purge(), 3_600_000);
  timer.unref();
  return timer;
}

/** Transports (SOAP, XML-RPC, console) register here; each may also serve its own extra listener. */
async function mountTransports(
  services: Services,
  app: Koa,
  router: Router,
): Promise<{ legacyXmlRpc?: http.RequestListener; posts: Record<string, PostHandler>; close(): Promise<void> }> {
  app.use(consoleMiddleware(services));
  const soapPosts = await mountSoap(services, router, [billingService(services, WSDL_DIR), provisioningService(services, WSDL_DIR)]);
  const xmlrpc = new XmlRpcEndpoint(services, XMLRPC_METHODS);
  router.all('/RPC2', async (ctx) => {
    ctx.respond = false;
    await xmlrpc.handle(ctx.req, ctx.res, ctx.state.requestId as string);
  });
  const posts: Record<string, PostHandler> = { ...soapPosts, '/RPC2': (req, res, requestId) => xmlrpc.handle(req, res, requestId) };
  const legacyXmlRpc: http.RequestListener = (req, res) => {
    const pathname = (req.url ?? '/').split('?')[0];
    if (pathname === '/RPC2' || pathname === '/') {
      void xmlrpc.handle(req, res);
      return;
    }
    res.statusCode = 404;
    res.end('The PBA-compatible XML-RPC API is at /RPC2.');
  };
  return { legacyXmlRpc, posts, close: () => xmlrpc.transactions.closeAll() };
}
