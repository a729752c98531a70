/**
 * Billing run benchmark: seeds N active subscriptions due for renewal (S per customer account, each customer with
 * a sandbox card as default pay tool, in a child process), runs the billing run (charges, invoices with their lines, audit and events,
 * auto-pay of every invoice through the sandbox payment gateway), and prints subscriptions/s and peak RSS. In the
 * same process it then times a plain batched insert of as many invoice and line rows (rolled back) and prints the
 * ratio of the run to it. It also counts every row the run wrote (all tables) and prints what a plain insert of that
 * many rows would take at the plain insert's rate, and the run's ratio to that.
 * Each renewal is a renewal order (RN) placed by the run and completed when auto-pay pays its invoice.
 * With --db both (the default) each database is benchmarked in a child process of its own, so neither run's memory
 * counts in the other's peak RSS; the book is seeded by a child process; peak RSS is the kernel's high-water mark of the process that runs.
 * npm run bench:billing runs with the V8 heap limit npm run billing has (--max-old-space-size=256, package.json): with
 * it V8 collects a run's garbage (about 20 MB a batch of 1,000) early instead of letting the heap grow to 190 MB
 * first; the run's live memory is about 50-70 MB whatever the size of the book.
 *   npm run bench:billing -- [--subscriptions 100000] [--per-account 10] [--batch-size 1000] [--db sqlite|mysql|both] [--no-autopay] [--autopay-concurrency 8] [--cpu-prof <dir>] [--count-statements]
 */
import { spawnSync } from 'node:child_process';
import inspector from 'node:inspector/promises';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { onEachDatabase } from './databases';
import { ManualClock } from '../../src/clock';
import { loadConfig } from '../../src/config';
import { createDb, isSqlite, toNumber, type Db } from '../../src/db/knex';
import { insertBatched } from '../../src/db/batch';
import { migrateLatest } from '../../src/db/migrate';
import { createLogger } from '../../src/logger';
import { SecretBox } from '../../src/crypto/secret-box';
import { bootstrapProvider } from '../../src/seed/bootstrap';
import { createServices } from '../../src/services';
import { summaryJson } from '../../src/billing/run/billing-run';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const N = Number(arg('subscriptions', '100000'));
const PER_ACCOUNT = Number(arg('per-account', '10'));
const BATCH = Number(arg('batch-size', '1000'));
const DB = arg('db', 'both');
const AUTOPAY = !process.argv.includes('--no-autopay');
const AUTOPAY_CONCURRENCY = Number(arg('autopay-concurrency', '8'));
/** A V8 CPU profile of the billing run alone (not the seed) is written to this folder. */
const CPU_PROF = arg('cpu-prof', '');
/** Counts the run's statements (round trips to the database) by table and verb, and prints them. */
const COUNT_STATEMENTS = process.argv.includes('--count-statements');
/** Internal: `--phase seed --url <database>` is the child process that seeds the book. */
const PHASE = arg('phase', 'run');
/** Subscriptions built and inserted at a time by the seed (bounded memory). */
const SEED_CHUNK = 10_000;
const MYSQL = process.env.BENCH_MYSQL_URL || 'mysql://root:@127.0.0.1:3306';
const AS_OF = new Date('2026-06-01T00:00:00Z');
const DAY = 86_400_000;

/** The book: N active subscriptions due, PER_ACCOUNT per customer (run in a child process: its memory is not the run's). */
async function seedBook(db: Db, services: ReturnType<typeof createServices>, provider: Parameters<ReturnType<typeof createServices>['pluginInstances']['create']>[0]) {
  const now = AS_OF.getTime() - 30 * DAY;
  const accounts = Math.ceil(N / PER_ACCOUNT);
  const gatewayId = await services.pluginInstances.create(provider, { kind: 'payment', plugin: 'sandbox', name: 'bench-cards', settings: {} });
  const [templateId] = (await db('service_templates').insert({ vendor_id: provider.accountId, name: 'Bench template', service_gate: 'sandbox', description: '', created_at: now })) as number[];
  const [planId] = (await db('plans').insert({ vendor_id: provider.accountId, template_id: templateId, name: 'Bench Hosting', category: '', published: true, trial: false, resellable: false, currency: 'USD', created_at: now, updated_at: now })) as number[];
  const [periodId] = (await db('plan_periods').insert({ plan_id: planId, duration: 1, unit: 'month', trial: false, setup_fee: 0, recurring_fee: 999, renewal_fee: 0, sort_order: 0 })) as number[];
  const maxId = toNumber(((await db('accounts').max({ m: 'id' }).first()) as { m: unknown }).m);
  const accountIds = Array.from({ length: accounts }, (_, i) => maxId + 1 + i);
  await insertBatched(
    db,
    'accounts',
    accountIds.map((id) => ({ id, vendor_id: provider.accountId, type: 'customer', status: 'active', company_name: `Bench ${id}`, currency: 'USD', tax_status: 'taxable', path: `${provider.accountPath}${id}/`, country: 'US', time_zone: 'UTC', created_at: now, updated_at: now })),
  );
  // A stored card per customer as its default pay tool: the sandbox's fixed test token tok_visa_<account> (docs/plugins.md), so
  // the cards need no tokenizing in the measured process, where the sandbox would keep 10,000 tokens in memory.
  await insertBatched(
    db,
    'pay_tools',
    accountIds.map((id) => ({ account_id: id, gateway_instance_id: gatewayId, token: `tok_visa_${id}`, brand: 'visa', last4: '4242', exp_month: 12, exp_year: 2099, is_default: true, created_at: now })),
  );
  for (let from = 0; from < N; from += SEED_CHUNK) {
    const subs = Array.from({ length: Math.min(SEED_CHUNK, N - from) }, (_, k) => {
      const i = from + k;
      const expiration = AS_OF.getTime() + (1 + (i % 5)) * DAY;
      return {
        account_id: accountIds[Math.floor(i / PER_ACCOUNT)]!,
        vendor_id: provider.accountId,
        plan_id: planId,
        period_id: periodId,
        order_id: null,
        name: `Bench Hosting ${i + 1}`,
        status: 30,
        service_status: 50,
        service_gate: 'sandbox',
        gate_reference: null,
        parameters: '{}',
        start_date: expiration - 31 * DAY,
        expiration_date: expiration,
        last_bill_date: null,
        next_bill_date: expiration,
        created_at: now,
        updated_at: now,
      };
    });
    await insertBatched(db, 'subscriptions', subs);
  }
  return { accounts };
}


/** The same number of invoices and lines written with plain batched inserts in one transaction, rolled back. */
async function plainInsert(db: Db, vendorId: number, accountIds: number[], invoices: number, lines: number): Promise<number> {
  const started = process.hrtime.bigint();
  let elapsed = 0;
  await db
    .transaction(async (tx) => {
      const t = AS_OF.getTime();
      const maxId = toNumber(((await tx('documents').max({ m: 'id' }).first()) as { m: unknown }).m);
      const docs = Array.from({ length: invoices }, (_, i) => ({
        id: maxId + 1 + i,
        vendor_id: vendorId,
        account_id: accountIds[i % accountIds.length]!,
        type: 'invoice',
        number: `PLAIN-${i + 1}`,
        status: 'open',
        currency: 'USD',
        subtotal: '999',
        tax_total: '0',
        total: '999',
        balance_effect: '999',
        open_amount: '999',
        issue_date: t,
        due_date: t + 7 * DAY,
        description: '',
        created_at: t,
        updated_at: t,
      }));
      await insertBatched(tx, 'documents', docs);
      const perDoc = Math.max(1, Math.round(lines / invoices));
      const rows = Array.from({ length: lines }, (_, i) => ({
        document_id: maxId + 1 + Math.min(invoices - 1, Math.floor(i / perDoc)),
        position: 1000 + i,
        kind: 'renewal',
        description: `Bench Hosting ${i + 1}: renewal`,
        subscription_id: null,
        quantity: '1',
        unit_price: '999',
        amount: '999',
        tax_amount: '0',
      }));
      await insertBatched(tx, 'document_lines', rows);
      elapsed = Number(process.hrtime.bigint() - started) / 1e6;
      throw new Error('rollback');
    })
    .catch((e: Error) => {
      if (e.message !== 'rollback') throw e;
    });
  return elapsed;
}

/** Tallies every statement the database runs from now on by verb and first table (knex 'query' events). */
function countStatements(db: Db): { stop(): Map<string, number> } {
  const tally = new Map<string, number>();
  const onQuery = (q: { sql: string }) => {
    const sql = q.sql.trim();
    const verb = (/^\w+/.exec(sql)?.[0] ?? '?').toLowerCase();
    const table = /(?:from|into|update)\s+[`"]?(\w+)/i.exec(sql)?.[1] ?? '';
    const key = `${verb} ${table}`.trim();
    tally.set(key, (tally.get(key) ?? 0) + 1);
  };
  db.on('query', onQuery);
  return {
    stop() {
      db.off('query', onQuery);
      return tally;
    },
  };
}

/** Rows in every table of the database (SQLite or MariaDB), by table. */
async function rowCounts(db: Db): Promise<Map<string, number>> {
  const sqlite = isSqlite(db);
  const tables = sqlite
    ? ((await db.raw("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")) as { name: string }[]).map((r) => r.name)
    : (((await db.raw('SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE()')) as [{ name: string }[]])[0]).map((r) => r.name);
  const out = new Map<string, number>();
  for (const t of tables) out.set(t, toNumber(((await db(t).count({ n: '*' }).first()) as { n: unknown }).n));
  return out;
}

/** The V8 CPU profile of `fn` alone, written to CPU_PROF (when given). */
async function profiled<T>(label: string, fn: () => Promise<T>): Promise<T> {
  if (!CPU_PROF) return fn();
  const session = new inspector.Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    fs.mkdirSync(CPU_PROF, { recursive: true });
    const file = path.join(CPU_PROF, `billing-run-${label.toLowerCase()}-${Date.now()}.cpuprofile`);
    fs.writeFileSync(file, JSON.stringify(profile));
    console.log(`CPU profile of the run: ${file}`);
    session.disconnect();
  }
}

async function run(label: string, databaseUrl: string): Promise<void> {
  const config = loadConfig(process.env, { databaseUrl, secretKey: 'bench-secret-key-0123456789abcdefghijkl', logLevel: 'error', seedDemo: false, adminPassword: 'bench-admin-password', billingCron: '' });
  const db = createDb(databaseUrl);
  const log = createLogger({ level: 'error', format: 'json', silent: true });
  const clock = new ManualClock(AS_OF);
  const deps = { db, clock, log, config, secrets: new SecretBox(config.secretKey) };
  try {
    await migrateLatest(db);
    const boot = await bootstrapProvider(deps);
    const services = createServices(deps);
    if (PHASE === 'seed') {
      await seedBook(db, services, boot.actor);
      return;
    }
    // The book is seeded by a child process, so the seed's memory is not counted in this process's peak RSS.
    const seedStart = Date.now();
    const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, ...process.argv.slice(2), '--phase', 'seed', '--url', databaseUrl], { stdio: 'inherit' });
    if (child.status !== 0) throw new Error(`seeding failed (exit ${child.status})`);
    const seeded = { accounts: Math.ceil(N / PER_ACCOUNT) };
    const seedSeconds = (Date.now() - seedStart) / 1000;

    const rowsBefore = await rowCounts(db);
    global.gc?.(); // the seed's garbage is not the run's (npm run bench:billing passes --expose-gc)
    const before = process.memoryUsage().rss;
    // The kernel's high-water mark of the process's RSS (resourceUsage().maxRSS, in KiB): exact, where sampling
    // would miss a peak between two samples. The process has done nothing bigger than the run before it.
    const started = Date.now();
    const cpuBefore = process.cpuUsage();
    const statements = COUNT_STATEMENTS ? countStatements(db) : null;
    const summary = await profiled(label, () => services.billingRun.run({ asOf: AS_OF, startedBy: 'bench', batchSize: BATCH, autopay: AUTOPAY, autopayConcurrency: AUTOPAY_CONCURRENCY }));
    const seconds = (Date.now() - started) / 1000;
    const tally = statements?.stop();
    const cpu = process.cpuUsage(cpuBefore);
    const peak = process.resourceUsage().maxRSS * 1024;

    const rowsAfter = await rowCounts(db);
    const written = [...rowsAfter].map(([t, n]) => [t, n - (rowsBefore.get(t) ?? 0)] as const).filter(([, d]) => d > 0).sort((a, b) => b[1] - a[1]);
    const rowsWritten = written.reduce((a, [, d]) => a + d, 0);
    const accountIds = ((await db('accounts').where({ type: 'customer' }).orderBy('id').limit(1000).select('id')) as { id: number }[]).map((r) => toNumber(r.id));
    const lines = summary.lines;
    const plainMs = await plainInsert(db, boot.actor.accountId, accountIds, summary.invoices, lines);
    const j = summaryJson(summary);
    console.log(
      `${label.padEnd(8)} ${N} subscriptions (${seeded.accounts} customers, ${PER_ACCOUNT} each; seeded in ${seedSeconds.toFixed(1)} s): ` +
        `run ${seconds.toFixed(1)} s = ${(N / seconds).toFixed(0)} subscriptions/s (process CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s, load average ${os.loadavg()[0]!.toFixed(1)}); ${summary.invoices} invoices, ${lines} lines, ${summary.charges} charges, ${summary.renewalOrders} renewal orders, ` +
        `totals ${JSON.stringify(j.totals)}; payments tried ${summary.payments.tried}, succeeded ${summary.payments.succeeded}, declined ${summary.payments.declined}, unknown ${summary.payments.unknown}; ` +
        `peak RSS ${Math.round(peak / 1e6)} MB (${Math.round(before / 1e6)} MB before the run); plain batched insert of ${summary.invoices} invoices + ${lines} lines ${(plainMs / 1000).toFixed(2)} s, run/plain = ${(seconds / (plainMs / 1000)).toFixed(1)}x`,
    );
    // The floor of what the run writes: all its rows at the plain insert's rate per row (an estimate: rows differ in width).
    const plainRows = summary.invoices + lines;
    const floorSeconds = plainRows > 0 ? ((plainMs / 1000) * rowsWritten) / plainRows : 0;
    console.log(
      `${' '.repeat(9)}the run wrote ${rowsWritten} rows (${(rowsWritten / N).toFixed(1)} per subscription: ${written.map(([t, d]) => `${t} ${d}`).join(', ')}); ` +
        `that many rows at the plain insert's rate: ${floorSeconds.toFixed(2)} s, run/that = ${floorSeconds > 0 ? (seconds / floorSeconds).toFixed(1) : '-'}x`,
    );
    if (tally) {
      const total = [...tally.values()].reduce((a, n) => a + n, 0);
      const batches = Math.max(1, Math.ceil(N / BATCH));
      console.log(
        `${' '.repeat(9)}statements: ${total} (${(total / batches).toFixed(1)} per batch of ${BATCH}): ` +
          [...tally].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', '),
      );
    }
  } finally {
    await db.destroy();
  }
}

async function main(): Promise<void> {
  if (PHASE === 'seed') return run('seed', arg('url', ''));
  if (DB === 'both') {
    // Each database in a process of its own: the first run's heap does not count in the second's RSS.
    const rest = process.argv.slice(2).filter((a, i, all) => a !== '--db' && all[i - 1] !== '--db');
    for (const db of ['sqlite', 'mysql']) {
      const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, ...rest, '--db', db], { stdio: 'inherit' });
      if (r.status !== 0) process.exit(r.status ?? 1);
    }
    return;
  }
  console.log(`${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown cpu'}), load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  await onEachDatabase(DB, MYSQL, 'billing', run);
}

main().catch((e: Error) => {
  console.error(`benchmark failed: ${e.stack ?? e.message}`);
  process.exit(1);
});
