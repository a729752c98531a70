/**
 * Orders benchmark: N orders of a 5-item bundle (five plans of the demo catalog) on the zero-latency sandbox gate
 * and the sandbox payment gateway, placed by C concurrent clients that each wait for their order to finish.
 * Latency is placed -> completed, from the server's own timestamps (orders.created_at and the history row that
 * entered `completed`). Prints orders/s and p50/p99 for SQLite and/or MariaDB.
 *   npm run bench:orders -- [--orders 1000] [--concurrency 4] [--db sqlite|mysql|both]
 */
import os from 'node:os';
import { onEachDatabase } from './databases';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { startServer } from '../../src/server';
import type { Actor } from '../../src/context';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const ORDERS = Number(arg('orders', '1000'));
const CONCURRENCY = Number(arg('concurrency', '4'));
const DB = arg('db', 'both');
const MYSQL = process.env.BENCH_MYSQL_URL || 'mysql://root:@127.0.0.1:3306';
const BUNDLE = ['Shared Hosting Basic', 'Business Mail', 'VPS Standard', 'Domain Registration', 'Shared Hosting Pro'];

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function run(label: string, databaseUrl: string): Promise<void> {
  const server = await startServer(
    loadConfig(process.env, { databaseUrl, port: 0, xmlrpcLegacyPort: 0, adminPassword: 'bench-admin-password', secretKey: 'bench-secret-key-0123456789abcdefghijkl', logLevel: 'error', seedDemo: true }),
    { log: createLogger({ level: 'error', format: 'json', silent: true }) },
  );
  const { services } = server;
  const db = services.deps.db;
  try {
    // A benchmark customer orders far more than the rules screen's velocity limits allow; screening is not measured here.
    await db('plugin_instances').where({ kind: 'fraud' }).del();
    const provider = await db('accounts').where({ type: 'provider' }).first();
    const actor: Actor = { userId: null, accountId: provider.id, accountPath: provider.path, accountType: 'provider', roles: ['admin'], channel: 'system' };
    const customerId = (await db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id;
    const gatewayId = (await db('plugin_instances').where({ name: 'sandbox-payments' }).first('id')).id;
    const tool = await services.payments.storePayTool(actor, customerId, gatewayId, { number: '4242424242424242', expMonth: 12, expYear: 2040, cvv: '123' });
    const items: { planId: number; periodId: number; param: string }[] = [];
    for (const name of BUNDLE) {
      const plan = await db('plans').where({ name }).first('id', 'template_id');
      const period = await db('plan_periods').where({ plan_id: plan.id, enabled: true }).orderBy('sort_order').first('id');
      const param = await db('template_parameters').where({ template_id: plan.template_id }).first('name');
      items.push({ planId: plan.id, periodId: period.id, param: param?.name ?? 'domain' });
    }
    let next = 0;
    const ids: number[] = [];
    const started = Date.now();
    const client = async () => {
      for (;;) {
        const n = next++;
        if (n >= ORDERS) return;
        const order = await services.orders.place(actor, {
          accountId: customerId,
          payToolId: tool.payToolId,
          items: items.map((it, i) => ({ planId: it.planId, periodId: it.periodId, parameters: { [it.param]: `bench-${n}-${i}.example` } })),
        });
        ids.push(order.orderId);
        for (;;) {
          const row = await db('orders').where({ id: order.orderId }).first('status');
          if (['CP', 'PF', 'RJ'].includes(row.status)) {
            if (row.status !== 'CP') throw new Error(`order ${order.orderId} ended ${row.status}`);
            break;
          }
          await new Promise((r) => setTimeout(r, 2));
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, client));
    const wall = (Date.now() - started) / 1000;
    const rows = (await db('orders as o')
      .join('order_history as h', 'h.order_id', 'o.id')
      .whereIn('o.id', ids.slice(0, 500))
      .andWhere('h.step', 'completed')
      .select('o.created_at', 'h.at')) as { created_at: unknown; at: unknown }[];
    const rest = ids.length > 500 ? ((await db('orders as o').join('order_history as h', 'h.order_id', 'o.id').whereIn('o.id', ids.slice(500)).andWhere('h.step', 'completed').select('o.created_at', 'h.at')) as typeof rows) : [];
    const latency = [...rows, ...rest].map((r) => Number(r.at) - Number(r.created_at)).sort((a, b) => a - b);
    const subs = await db('subscriptions').whereIn('order_id', ids.slice(0, 500)).andWhere({ status: 30, service_status: 50 }).count({ n: '*' });
    console.log(
      `${label.padEnd(8)} ${ORDERS} orders x ${BUNDLE.length} items, ${CONCURRENCY} clients: ${(ORDERS / wall).toFixed(1)} orders/s, ` +
        `placed->completed p50 ${pct(latency, 50)} ms, p99 ${pct(latency, 99)} ms, max ${latency[latency.length - 1]} ms ` +
        `(${latency.length} completed; ${Number(subs[0].n)} active subscriptions among the first ${Math.min(500, ids.length)} orders; rss ${Math.round(process.memoryUsage().rss / 1e6)} MB)`,
    );
  } finally {
    await server.close();
  }
}

async function main(): Promise<void> {
  console.log(`${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown cpu'})`);
  await onEachDatabase(DB, MYSQL, 'orders', run);
}

main().catch((e: Error) => {
  console.error(`benchmark failed: ${e.message}`);
  process.exit(1);
});
