/**
 * The billing run on demand:
 *   npm run billing -- [--as-of 2026-12-01T00:00:00Z] [--dry-run] [--batch-size 1000] [--no-autopay] [--json]
 * Bills what is due as of the instant (default: now) against the configured database (DATABASE_URL etc., see
 * docs/configuration.md) and prints the summary. Safe to repeat: a second run as of the same instant bills nothing
 * new. Exit code 0 on success, 1 on failure (the failure is kept on the billing_runs row), 2 on a bad argument.
 */
import { systemClock } from '../src/clock';
import { loadConfig, redactUrl } from '../src/config';
import { createDb } from '../src/db/knex';
import { migrateLatest } from '../src/db/migrate';
import { createLogger } from '../src/logger';
import { SecretBox, resolveSecretKey } from '../src/crypto/secret-box';
import { createServices } from '../src/services';
import { formatAmount } from '../src/domain/money';
import { summaryJson, type BillingRunSummary } from '../src/billing/run/billing-run';

function usage(message: string): never {
  console.error(`${message}\nUsage: npm run billing -- [--as-of <ISO instant, e.g. 2026-12-01T00:00:00Z>] [--dry-run] [--batch-size N] [--no-autopay] [--json]`);
  process.exit(2);
}

export function parseArgs(argv: string[]): { asOf?: Date; dryRun: boolean; batchSize?: number; autopay: boolean; json: boolean } {
  const out: { asOf?: Date; dryRun: boolean; batchSize?: number; autopay: boolean; json: boolean } = { dryRun: false, autopay: true, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value.`);
      return v;
    };
    if (a === '--as-of') {
      const v = value();
      const d = new Date(v);
      if (!/^\d{4}-\d\d-\d\d(T[\d:.]+(Z|[+-]\d\d:?\d\d)?)?$/.test(v) || Number.isNaN(d.getTime())) usage(`--as-of must be an ISO 8601 instant such as 2026-12-01T00:00:00Z; got '${v}'.`);
      out.asOf = d;
    } else if (a === '--dry-run') out.dryRun = true;
    else if (a === '--no-autopay') out.autopay = false;
    else if (a === '--json') out.json = true;
    else if (a === '--batch-size') {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1 || n > 10_000) usage('--batch-size must be a whole number from 1 to 10000.');
      out.batchSize = n;
    } else usage(`Unknown argument '${a}'.`);
  }
  return out;
}

export function printSummary(s: BillingRunSummary): string {
  const totals = Object.entries(s.totals).map(([c, v]) => `${formatAmount(v, c)} ${c}`);
  return [
    `Billing ${s.dryRun ? 'dry run (nothing written)' : `run ${s.runId}`} as of ${s.asOf.toISOString()}`,
    `  subscriptions examined  ${s.subscriptionsExamined}`,
    `  charges                 ${s.charges}  (trials converted ${s.trialsConverted}, overage lines ${s.overageLines}, renewal orders ${s.renewalOrders}, domain renewals ${s.domainRenewals})`,
    `  invoices                ${s.invoices}`,
    `  lines                   ${s.lines}`,
    `  amounts                 ${totals.length ? totals.join(', ') : 'none'}${s.dryRun ? ' (before tax)' : ''}`,
    `  payments                tried ${s.payments.tried}, succeeded ${s.payments.succeeded}, declined ${s.payments.declined}, unknown ${s.payments.unknown}`,
    `  trials expired          ${s.trialsExpired}`,
    `  suspensions             ${s.suspensions}`,
    `  terminations            ${s.terminations}`,
    `  took                    ${(s.durationMs / 1000).toFixed(1)} s`,
  ].join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const config = loadConfig();
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  const db = createDb(config.databaseUrl);
  try {
    await migrateLatest(db);
    const deps = { db, clock: systemClock, config, log, secrets: new SecretBox(resolveSecretKey(config.secretKey, config.databaseUrl)) };
    const services = createServices(deps);
    if (!args.json) console.log(`Database ${redactUrl(config.databaseUrl)}`);
    const summary = await services.billingRun.run({ asOf: args.asOf, dryRun: args.dryRun, batchSize: args.batchSize, autopay: args.autopay, startedBy: 'cli' });
    console.log(args.json ? JSON.stringify(summaryJson(summary)) : printSummary(summary));
  } finally {
    await db.destroy();
  }
}

if (require.main === module) {
  main().catch((e: Error) => {
    console.error(`Billing run failed: ${e.message}`);
    process.exit(1);
  });
}
