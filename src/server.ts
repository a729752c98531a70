import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock, type Clock } from './clock';
import type { Config } from './config';
import { createDb, type Db } from './db/knex';
import { migrateLatest } from './db/migrate';
import { createHttpApp } from './http/app';
import { createLogger, type Logger } from './logger';
import { createServices, type Services } from './services';
import { seedDemo, type DemoSeed } from './seed/demo';
import { bootstrapProvider } from './seed/bootstrap';
import { SecretBox, resolveSecretKey } from './crypto/secret-box';
import type Koa from 'koa';
import path from 'node:path';
import { mountSoap } from './api/soap/soap-mount';
import { XmlRpcEndpoint } from './api/xmlrpc/execute';
import { accountMethods } from './api/xmlrpc/methods-accounts';
import { catalogMethods } from './api/xmlrpc/methods-catalog';
import { billingService, provisioningService } from './api/soap/billing-service';

const WSDL_DIR = path.resolve(__dirname, '..', 'wsdl');
import type Router from '@koa/router';

export interface RunningServer {
  services: Services;
  url: string;
  legacyXmlRpcUrl: string | null;
  seed: DemoSeed;
  adminPassword?: string;
  close(): Promise<void>;
}

export interface StartOptions {
  clock?: Clock;
  log?: Logger;
  db?: Db;
  /** Seed the demo provider and catalog (the default); tests may start with only the provider and admin. */
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

/** Composition root: config -> database -> services -> transports -> listening sockets. */
export async function startServer(config: Config, opts: StartOptions = {}): Promise<RunningServer> {
  const log = opts.log ?? createLogger({ level: config.logLevel, format: config.logFormat });
  const db = opts.db ?? createDb(config.databaseUrl);
  const clock = opts.clock ?? systemClock;
  const secrets = new SecretBox(resolveSecretKey(config.secretKey, config.databaseUrl));
  const deps = { db, clock, log, config, secrets };
  const applied = await migrateLatest(db);
  if (applied.length) log.info('migrations applied', { migrations: applied });
  const boot = await bootstrapProvider(deps);
  const seed = opts.demo === false ? { created: false, logins: [] } : await seedDemo(deps);
  const services = createServices(deps);
  const { app, router } = createHttpApp(services);
  const mounts = await mountTransports(services, app, router);
  app.use(router.routes()).use(router.allowedMethods());

  const server = http.createServer(app.callback());
  server.keepAliveTimeout = 65_000;
  const port = await listen(server, config.port, config.host);
  const url = `http://localhost:${port}`;
  let legacy: http.Server | null = null;
  let legacyUrl: string | null = null;
  if (config.xmlrpcLegacyPort > 0 && mounts.legacyXmlRpc) {
    legacy = http.createServer(mounts.legacyXmlRpc);
    const lp = await listen(legacy, config.xmlrpcLegacyPort, config.host);
    legacyUrl = `http://localhost:${lp}/RPC2`;
  }
  return {
    services,
    url,
    legacyXmlRpcUrl: legacyUrl,
    seed,
    adminPassword: boot.generatedPassword,
    async close() {
      await mounts.close();
      await Promise.all(
        [server, legacy].filter((s): s is http.Server => s !== null).map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
      if (!opts.db) await db.destroy();
    },
  };
}

/** Transports (SOAP, XML-RPC, console) register here; each may also serve its own extra listener. */
async function mountTransports(
  services: Services,
  _app: Koa,
  router: Router,
): Promise<{ legacyXmlRpc?: http.RequestListener; close(): Promise<void> }> {
  await mountSoap(services, router, [billingService(services, WSDL_DIR), provisioningService(services, WSDL_DIR)]);
  const xmlrpc = new XmlRpcEndpoint(services, { ...accountMethods, ...catalogMethods });
  router.all('/RPC2', async (ctx) => {
    ctx.respond = false;
    await xmlrpc.handle(ctx.req, ctx.res, ctx.state.requestId as string);
  });
  const legacyXmlRpc: http.RequestListener = (req, res) => {
    const pathname = (req.url ?? '/').split('?')[0];
    if (pathname === '/RPC2' || pathname === '/') {
      void xmlrpc.handle(req, res);
      return;
    }
    res.statusCode = 404;
    res.end('The PBA-compatible XML-RPC API is at /RPC2.');
  };
  return { legacyXmlRpc, close: () => xmlrpc.transactions.closeAll() };
}
