import type { Clock } from './clock';
import type { Config } from './config';
import type { Db } from './db/knex';
import type { Logger } from './logger';
import type { SecretBox } from './crypto/secret-box';

export type Channel = 'soap' | 'xmlrpc' | 'console' | 'job' | 'system';
export type AccountType = 'provider' | 'reseller' | 'customer';
export type Role = 'admin' | 'billing' | 'technical' | 'api';
export const ROLES: readonly Role[] = ['admin', 'billing', 'technical', 'api'];

/** Who is acting: every service call carries one, and it bounds what the call may see (the account subtree). */
export interface Actor {
  userId: number | null;
  accountId: number;
  accountPath: string;
  accountType: AccountType;
  roles: readonly Role[];
  channel: Channel;
  remoteAddr?: string;
  requestId?: string;
}

/** What every service needs from the outside world. */
export interface Deps {
  db: Db;
  clock: Clock;
  log: Logger;
  config: Config;
  /** Encrypts secrets kept at rest. */
  secrets: SecretBox;
}

/** The system itself acting at the provider's level (start-up seed, scheduled jobs). */
export function systemActor(provider: { id: number; path: string }, channel: Channel = 'system'): Actor {
  return { userId: null, accountId: provider.id, accountPath: provider.path, accountType: 'provider', roles: ['admin'], channel };
}
