import fs from 'node:fs';
import cron from 'node-cron';
import path from 'node:path';

/** Validated runtime configuration: config/default.json, then an optional HOSTWRIGHT_CONFIG file, then environment. */
export interface Config {
  port: number;
  host: string;
  publicUrl: string;
  databaseUrl: string;
  xmlrpcLegacyPort: number;
  adminPassword: string;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  logFormat: 'json' | 'pretty';
  bodyLimitBytes: number;
  xmlrpcTransactionTimeoutSeconds: number;
  /** Open client-held XML-RPC transactions allowed at once per process (1 on SQLite: one holds the only connection). */
  xmlrpcMaxTransactions: number;
  /** Behind a reverse proxy: take the client's address from X-Forwarded-For (for the audit trail). */
  trustProxy: boolean;
  /** Seed the demo provider's catalog and demo accounts on first start. */
  seedDemo: boolean;
  /** Failed sign-ins per login and client address before that address is locked out of that login. */
  authFailureLimit: number;
  authFailureWindowSeconds: number;
  authLockoutSeconds: number;
  /** Failed sign-ins per client address, whatever the logins, before the address is locked out of every login. */
  authAddressFailureLimit: number;
  /** Failed sign-ins per login, whatever the addresses, before the login is locked for everyone (distributed guessing). */
  authLoginFailureCeiling: number;
  /** How often (ms) each process reads the sign-in changes other processes committed and evicts its cached sign-ins. */
  authCachePollMs: number;
  idempotencyKeyTtlHours: number;
  /** Key for secrets encrypted at rest; empty = a key file under data/ is created on first start. */
  secretKey: string;
  /** SMTP server for notifications (smtp://user:pass@host:587, smtps://...); empty = mail goes to the local spool only. */
  smtpUrl: string;
  /** The From address of notifications. */
  mailFrom: string;
  /** Resellers' webhooks may target loopback/private addresses (off: only the provider's may; for test set-ups). */
  webhookAllowPrivateNetworks: boolean;
  /** Operators' console: a session unused this long ends. */
  consoleSessionIdleMinutes: number;
  /** Operators' console: a session ends this long after sign-in, however active. */
  consoleSessionAbsoluteHours: number;
  /** node-cron expression of the payment reconciler's runs (asks gateways about pending and unknown payments). */
  paymentReconcileCron: string;
  /** When the server runs the billing run (a node-cron expression, UTC); empty: never (run it with npm run billing). */
  billingCron: string;
  /** When the daily domain sync runs (cron syntax, UTC); "" (or "off", for the environment) switches it off. */
  domainSyncCron: string;
  /** When domains in transfer_pending are asked about (cron syntax, UTC); "" (or "off", for the environment) switches it off. */
  domainTransferPollCron: string;
}

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(`Configuration ${key}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Raw = Record<string, unknown>;

/** Environment variable -> config key. Documented in docs/configuration.md. */
export const ENV_KEYS: Record<string, keyof Config> = {
  PORT: 'port',
  HOST: 'host',
  PUBLIC_URL: 'publicUrl',
  DATABASE_URL: 'databaseUrl',
  XMLRPC_LEGACY_PORT: 'xmlrpcLegacyPort',
  HOSTWRIGHT_ADMIN_PASSWORD: 'adminPassword',
  LOG_LEVEL: 'logLevel',
  LOG_FORMAT: 'logFormat',
  BODY_LIMIT_BYTES: 'bodyLimitBytes',
  XMLRPC_TRANSACTION_TIMEOUT_SECONDS: 'xmlrpcTransactionTimeoutSeconds',
  XMLRPC_MAX_TRANSACTIONS: 'xmlrpcMaxTransactions',
  SEED_DEMO: 'seedDemo',
  TRUST_PROXY: 'trustProxy',
  AUTH_FAILURE_LIMIT: 'authFailureLimit',
  AUTH_FAILURE_WINDOW_SECONDS: 'authFailureWindowSeconds',
  AUTH_LOCKOUT_SECONDS: 'authLockoutSeconds',
  AUTH_ADDRESS_FAILURE_LIMIT: 'authAddressFailureLimit',
  AUTH_LOGIN_FAILURE_CEILING: 'authLoginFailureCeiling',
  AUTH_CACHE_POLL_MS: 'authCachePollMs',
  IDEMPOTENCY_KEY_TTL_HOURS: 'idempotencyKeyTtlHours',
  HOSTWRIGHT_SECRET_KEY: 'secretKey',
  SMTP_URL: 'smtpUrl',
  MAIL_FROM: 'mailFrom',
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'webhookAllowPrivateNetworks',
  CONSOLE_SESSION_IDLE_MINUTES: 'consoleSessionIdleMinutes',
  CONSOLE_SESSION_ABSOLUTE_HOURS: 'consoleSessionAbsoluteHours',
  PAYMENT_RECONCILE_CRON: 'paymentReconcileCron',
  BILLING_CRON: 'billingCron',
  DOMAIN_SYNC_CRON: 'domainSyncCron',
  DOMAIN_TRANSFER_POLL_CRON: 'domainTransferPollCron',
};

const ROOT = path.resolve(__dirname, '..');

function readJson(file: string, key: string): Raw {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    return parsed as Raw;
  } catch (e) {
    throw new ConfigError(key, `cannot read ${file} as a JSON object (${(e as Error).message}).`);
  }
}

function integer(raw: Raw, key: keyof Config, min: number, max: number, env?: string): number {
  const v = raw[key];
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(env ?? key, `must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}.`);
  }
  return n;
}

function oneOf<T extends string>(raw: Raw, key: keyof Config, allowed: readonly T[], env?: string): T {
  const v = raw[key];
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw new ConfigError(env ?? key, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}.`);
  }
  return v as T;
}

function boolean(raw: Raw, key: keyof Config, env?: string): boolean {
  const v = raw[key];
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(env ?? key, `must be true or false, got ${JSON.stringify(v)}.`);
}

function text(raw: Raw, key: keyof Config, env?: string): string {
  const v = raw[key] ?? '';
  if (typeof v !== 'string') throw new ConfigError(env ?? key, `must be a string, got ${JSON.stringify(v)}.`);
  return v;
}

/** A node-cron expression that may not be switched off (the payment reconciler must run). */
function requiredCronExpression(raw: Raw, key: keyof Config, env?: string): string {
  const v = raw[key];
  if (typeof v !== 'string' || v.trim() === '' || !cron.validate(v.trim())) {
    throw new ConfigError(env ?? key, `must be a cron expression (5 fields, or 6 with seconds first, e.g. "*/5 * * * *"), got ${JSON.stringify(v)}.`);
  }
  return v.trim();
}

/** A node-cron expression (5 fields, or 6 with seconds first), or empty / "off" for never. */
function cronExpression(raw: Raw, key: keyof Config, env?: string): string {
  const v = text(raw, key, env).trim();
  if (v === '' || v.toLowerCase() === 'off') return '';
  if (!cron.validate(v)) throw new ConfigError(env ?? key, `must be a cron expression such as "0 2 * * *" (every day at 02:00 UTC), or empty (or off) to switch the schedule off; got ${JSON.stringify(v)}.`);
  return v;
}

export function validateDatabaseUrl(url: string, key = 'databaseUrl'): string {
  if (/^sqlite:.+/.test(url)) return url;
  if (/^mysql:\/\/[^/]+\/[A-Za-z0-9_$-]+(\?.*)?$/.test(url)) return url;
  throw new ConfigError(
    key,
    `must be sqlite:PATH (e.g. sqlite:data/hostwright.sqlite) or mysql://user:pass@host:port/database, got ${JSON.stringify(redactUrl(url))}.`,
  );
}

/** Hides a password inside a connection URL so it can be printed or logged. */
export function redactUrl(url: string): string {
  return url.replace(/^(mysql:\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const raw: Raw = readJson(path.join(ROOT, 'config', 'default.json'), 'config/default.json');
  const known = new Set(Object.keys(raw));
  if (env.HOSTWRIGHT_CONFIG) {
    const file = readJson(path.resolve(env.HOSTWRIGHT_CONFIG), 'HOSTWRIGHT_CONFIG');
    const unknown = Object.keys(file).filter((k) => !known.has(k));
    if (unknown.length) {
      throw new ConfigError('HOSTWRIGHT_CONFIG', `unknown key(s) ${unknown.join(', ')}; the keys are those of config/default.json (see docs/configuration.md).`);
    }
    Object.assign(raw, file);
  }
  const fromEnv: Record<string, string> = {};
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const v = env[name];
    if (v !== undefined && v !== '') {
      raw[key] = v;
      fromEnv[key] = name;
    }
  }
  Object.assign(raw, overrides);
  const e = (k: keyof Config) => fromEnv[k];
  const format = text(raw, 'logFormat', e('logFormat')) || 'auto';
  const cfg: Config = {
    port: integer(raw, 'port', 0, 65535, e('port')),
    host: text(raw, 'host', e('host')) || '0.0.0.0',
    publicUrl: text(raw, 'publicUrl', e('publicUrl')).replace(/\/+$/, ''),
    databaseUrl: validateDatabaseUrl(text(raw, 'databaseUrl', e('databaseUrl')), e('databaseUrl') ?? 'databaseUrl'),
    xmlrpcLegacyPort: integer(raw, 'xmlrpcLegacyPort', 0, 65535, e('xmlrpcLegacyPort')),
    adminPassword: text(raw, 'adminPassword', e('adminPassword')),
    logLevel: oneOf(raw, 'logLevel', ['error', 'warn', 'info', 'debug'] as const, e('logLevel')),
    logFormat:
      format === 'auto'
        ? env.NODE_ENV === 'production'
          ? 'json'
          : 'pretty'
        : oneOf(raw, 'logFormat', ['json', 'pretty'] as const, e('logFormat')),
    bodyLimitBytes: integer(raw, 'bodyLimitBytes', 1024, 64 * 1024 * 1024, e('bodyLimitBytes')),
    xmlrpcTransactionTimeoutSeconds: integer(raw, 'xmlrpcTransactionTimeoutSeconds', 1, 3600, e('xmlrpcTransactionTimeoutSeconds')),
    xmlrpcMaxTransactions: integer(raw, 'xmlrpcMaxTransactions', 0, 1000, e('xmlrpcMaxTransactions')),
    seedDemo: boolean(raw, 'seedDemo', e('seedDemo')),
    trustProxy: boolean(raw, 'trustProxy', e('trustProxy')),
    authFailureLimit: integer(raw, 'authFailureLimit', 1, 1000, e('authFailureLimit')),
    authFailureWindowSeconds: integer(raw, 'authFailureWindowSeconds', 1, 86400, e('authFailureWindowSeconds')),
    authLockoutSeconds: integer(raw, 'authLockoutSeconds', 1, 86400, e('authLockoutSeconds')),
    authAddressFailureLimit: integer(raw, 'authAddressFailureLimit', 1, 100000, e('authAddressFailureLimit')),
    authLoginFailureCeiling: integer(raw, 'authLoginFailureCeiling', 1, 100000, e('authLoginFailureCeiling')),
    authCachePollMs: integer(raw, 'authCachePollMs', 50, 60000, e('authCachePollMs')),
    idempotencyKeyTtlHours: integer(raw, 'idempotencyKeyTtlHours', 24, 24 * 365, e('idempotencyKeyTtlHours')),
    secretKey: text(raw, 'secretKey', e('secretKey')),
    smtpUrl: text(raw, 'smtpUrl', e('smtpUrl')).trim(),
    mailFrom: text(raw, 'mailFrom', e('mailFrom')).trim() || 'Hostwright <no-reply@localhost>',
    webhookAllowPrivateNetworks: boolean(raw, 'webhookAllowPrivateNetworks', e('webhookAllowPrivateNetworks')),
    consoleSessionIdleMinutes: integer(raw, 'consoleSessionIdleMinutes', 1, 7 * 24 * 60, e('consoleSessionIdleMinutes')),
    consoleSessionAbsoluteHours: integer(raw, 'consoleSessionAbsoluteHours', 1, 24 * 30, e('consoleSessionAbsoluteHours')),
    paymentReconcileCron: requiredCronExpression(raw, 'paymentReconcileCron', e('paymentReconcileCron')),
    billingCron: cronExpression(raw, 'billingCron', e('billingCron')),
    domainSyncCron: text(raw, 'domainSyncCron', e('domainSyncCron')).trim().replace(/^off$/i, ''),
    domainTransferPollCron: text(raw, 'domainTransferPollCron', e('domainTransferPollCron')).trim().replace(/^off$/i, ''),
  };
  if (cfg.domainSyncCron && !cron.validate(cfg.domainSyncCron)) {
    throw new ConfigError(e('domainSyncCron') ?? 'domainSyncCron', `must be a cron expression such as "30 3 * * *" (or "off"), got ${JSON.stringify(cfg.domainSyncCron)}.`);
  }
  if (cfg.domainTransferPollCron && !cron.validate(cfg.domainTransferPollCron)) {
    throw new ConfigError(e('domainTransferPollCron') ?? 'domainTransferPollCron', `must be a cron expression such as "*/15 * * * *" (or "off"), got ${JSON.stringify(cfg.domainTransferPollCron)}.`);
  }
  // Below the per-(login, address) limit, one address's guesses would lock the whole login again: the denial of
  // service the per-address count exists to prevent.
  if (cfg.authLoginFailureCeiling < cfg.authFailureLimit) {
    throw new ConfigError(e('authLoginFailureCeiling') ?? 'authLoginFailureCeiling', `must be at least authFailureLimit (${cfg.authFailureLimit}), got ${cfg.authLoginFailureCeiling}; ten times it is the usual choice.`);
  }
  if (cfg.authAddressFailureLimit < cfg.authFailureLimit) {
    throw new ConfigError(e('authAddressFailureLimit') ?? 'authAddressFailureLimit', `must be at least authFailureLimit (${cfg.authFailureLimit}), got ${cfg.authAddressFailureLimit}.`);
  }
  if (cfg.smtpUrl && !/^smtps?:\/\/[^/\s]+/.test(cfg.smtpUrl)) {
    throw new ConfigError(e('smtpUrl') ?? 'smtpUrl', `must be smtp://[user:pass@]host[:port] or smtps://..., got ${JSON.stringify(cfg.smtpUrl.replace(/\/\/[^@/]*@/, '//***@'))}.`);
  }
  if (!cfg.secretKey && cfg.databaseUrl.startsWith('mysql:')) {
    throw new ConfigError(
      'HOSTWRIGHT_SECRET_KEY',
      'is required with a MySQL/MariaDB database: every server process must encrypt secrets with the same key (e.g. `openssl rand -base64 32`).',
    );
  }
  if (cfg.secretKey && cfg.secretKey.length < 32) {
    throw new ConfigError(e('secretKey') ?? 'secretKey', 'must be at least 32 characters (e.g. `openssl rand -base64 32`).');
  }
  if (cfg.adminPassword && cfg.adminPassword.length < 8) {
    throw new ConfigError(e('adminPassword') ?? 'adminPassword', 'must be at least 8 characters long.');
  }
  return cfg;
}
