import { ManualClock } from '../../src/clock';
import { loadConfig, type Config } from '../../src/config';
import type { Actor, Deps } from '../../src/context';
import { createLogger } from '../../src/logger';
import { SecretBox } from '../../src/crypto/secret-box';
import { bootstrapProvider } from '../../src/seed/bootstrap';
import { createServices, type Services } from '../../src/services';
import { freshDatabase, type FreshDb } from './db';

export const ADMIN_PASSWORD = 'admin-pass-123';

export function testConfig(overrides: Partial<Config> = {}): Config {
  return loadConfig({ NODE_ENV: 'test' } as NodeJS.ProcessEnv, { adminPassword: ADMIN_PASSWORD, secretKey: 'test-secret-key-0123456789abcdefghijklmnop', logLevel: 'error', port: 0, xmlrpcLegacyPort: 0, ...overrides });
}

export const quietLog = createLogger({ level: 'error', format: 'json', silent: true });

/** A provider, its administrator and all services on a fresh database, with a clock the test moves. */
export interface World {
  fresh: FreshDb;
  deps: Deps;
  services: Services;
  clock: ManualClock;
  provider: Actor;
  close(): Promise<void>;
}

export async function makeWorld(opts: { config?: Partial<Config>; start?: string } = {}): Promise<World> {
  const fresh = await freshDatabase();
  const clock = new ManualClock(opts.start ?? '2026-01-15T10:00:00Z');
  const config = testConfig(opts.config);
  const deps: Deps = { db: fresh.db, clock, log: quietLog, config, secrets: new SecretBox(config.secretKey) };
  const boot = await bootstrapProvider(deps);
  return { fresh, deps, services: createServices(deps), clock, provider: boot.actor, close: () => fresh.drop() };
}

/** Creates a reseller (or customer) under a vendor and returns an actor for it. */
export async function accountActor(world: World, by: Actor, type: 'reseller' | 'customer', name: string, vendorAccountId?: number): Promise<Actor> {
  const id = await world.services.accounts.create(by, {
    type,
    vendorAccountId,
    companyName: name,
    contacts: { admin: { firstName: name, lastName: 'Admin', email: `${name.toLowerCase().replace(/\W+/g, '')}@example.com` } },
  });
  const row = (await world.deps.db('accounts').where({ id }).first()) as { id: number; path: string };
  return { userId: null, accountId: id, accountPath: row.path, accountType: type, roles: ['admin'], channel: 'system' };
}
