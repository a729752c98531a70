import path from 'node:path';
import nunjucks from 'nunjucks';
import { formatAmount } from '../domain/money';
import { SERVICE_STATUS, SUBSCRIPTION_STATUS } from '../subscriptions/subscriptions-service';

export const VIEWS_DIR = path.join(__dirname, 'views');

const SUBSCRIPTION_NAMES = Object.fromEntries(Object.entries(SUBSCRIPTION_STATUS).map(([k, v]) => [v, k]));
const SERVICE_NAMES = Object.fromEntries(Object.entries(SERVICE_STATUS).map(([k, v]) => [v, k.replace(/[A-Z]/g, (c) => ` ${c.toLowerCase()}`)]));

/** PBA order status codes in words, for people. */
export const ORDER_STATUS_NAMES: Record<string, string> = {
  NP: 'new',
  WP: 'waiting for payment',
  SS: 'suspected fraud',
  WA: 'waiting for approval',
  HL: 'on hold',
  PR: 'provisioning',
  PF: 'provisioning failed',
  PC: 'provisioned',
  CP: 'completed',
  RJ: 'rejected',
  CA: 'canceled',
};

/** The console's template engine: auto-escaping always on, so nothing a customer typed becomes markup. */
export function createViews(): nunjucks.Environment {
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(VIEWS_DIR, { noCache: false }), { autoescape: true, throwOnUndefined: false });
  env.addFilter('money', (amount: unknown, currency: string) => {
    if (amount === null || amount === undefined || !currency) return '';
    try {
      return `${formatAmount(BigInt(amount as bigint), currency)} ${currency}`;
    } catch {
      return `${String(amount)} (minor units) ${currency}`;
    }
  });
  env.addFilter('minor', (amount: unknown, currency: string) => (amount === null || amount === undefined ? '' : formatAmount(BigInt(amount as bigint), currency)));
  env.addFilter('dt', (d: unknown) => {
    if (d === null || d === undefined || d === '') return '';
    const date = d instanceof Date ? d : new Date(Number(d));
    return Number.isNaN(date.getTime()) ? '' : date.toISOString().slice(0, 16).replace('T', ' ');
  });
  env.addFilter('subStatus', (n: unknown) => SUBSCRIPTION_NAMES[Number(n)] ?? String(n));
  env.addFilter('serviceStatus', (n: unknown) => SERVICE_NAMES[Number(n)] ?? String(n));
  env.addFilter('orderStatus', (s: unknown) => ORDER_STATUS_NAMES[String(s)] ?? String(s));
  env.addFilter('json', (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x), 2));
  env.addFilter('firstError', (errors: Record<string, string> | undefined, keys: string[]) => (errors ? (keys.map((k) => errors[k]).find(Boolean) ?? '') : ''));
  return env;
}
