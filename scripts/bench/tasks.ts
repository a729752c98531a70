/**
 * Task queue benchmark: enqueue --tasks N no-op tasks, run them with --workers W workers of --concurrency C, and
 * print tasks/s and how many tasks ran more than once (must be 0). Each worker has its own connection pool, as
 * separate server processes would; on SQLite they share the one connection a process has. Runs on a temporary
 * SQLite file unless --url names a scratch database, e.g.
 * `npx tsx scripts/bench/tasks.ts --url mysql://root:@127.0.0.1:3306/bench --workers 4`; it removes its tasks after.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemClock } from '../../src/clock';
import { loadConfig } from '../../src/config';
import type { Deps } from '../../src/context';
import { SecretBox } from '../../src/crypto/secret-box';
import { createDb, type Db } from '../../src/db/knex';
import { migrateLatest } from '../../src/db/migrate';
import { TaskQueue } from '../../src/jobs/task-queue';
import { Worker } from '../../src/jobs/worker';
import { createLogger } from '../../src/logger';
import { bootstrapProvider } from '../../src/seed/bootstrap';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const TASKS = Number(arg('tasks', '2000'));
const WORKERS = Number(arg('workers', '2'));
const CONCURRENCY = Number(arg('concurrency', '8'));
const KIND = 'bench.noop';

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostwright-bench-tasks-'));
  const url = arg('url', `sqlite:${path.join(dir, 'bench.sqlite')}`);
  const config = loadConfig(process.env, { databaseUrl: url, adminPassword: 'bench-admin-password', secretKey: 'bench-secret-key-0123456789abcdefghijklmnop', logLevel: 'error' });
  const log = createLogger({ level: 'error', format: 'json', silent: true });
  const deps = (db: Db): Deps => ({ db, clock: systemClock, log, config, secrets: new SecretBox(config.secretKey) });
  const main = createDb(url);
  await migrateLatest(main);
  await bootstrapProvider(deps(main));
  const queue = new TaskQueue(deps(main));
  await main.transaction(async (tx) => {
    for (let i = 0; i < TASKS; i++) await queue.enqueue(tx, { kind: KIND, payload: { i } });
  });

  const runs = new Map<number, number>();
  const pools: Db[] = [];
  // On SQLite every worker shares the one connection, as in one server process: two connections in one process
  // would block the thread in SQLite's busy wait whenever they collide.
  const sqlite = url.startsWith('sqlite:');
  const workers = Array.from({ length: WORKERS }, (_, w) => {
    const db = sqlite ? main : createDb(url);
    if (!sqlite) pools.push(db);
    const d = deps(db);
    return new Worker(d, new TaskQueue(d), { [KIND]: async (t) => (runs.set(t.taskId, (runs.get(t.taskId) ?? 0) + 1), { status: 'done' }) }, { owner: `bench-${w}`, concurrency: CONCURRENCY, pollMs: 5, leaseMs: 60_000 });
  });
  const started = process.hrtime.bigint();
  workers.forEach((w) => w.start());
  while (runs.size < TASKS) await new Promise((r) => setTimeout(r, 5));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await Promise.all(workers.map((w) => w.stop()));

  const twice = [...runs.values()].filter((n) => n > 1).length;
  console.log(`${url.split(':')[0]}: ${TASKS} tasks, ${WORKERS} workers x ${CONCURRENCY}: ${(TASKS / seconds).toFixed(0)} tasks/s (${seconds.toFixed(2)} s), run more than once: ${twice}`);
  await main('tasks').where({ kind: KIND }).del();
  await Promise.all([...pools, main].map((db) => db.destroy()));
  fs.rmSync(dir, { recursive: true, force: true });
  if (twice > 0) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
