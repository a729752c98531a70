import { recordChange } from '../../audit/record-change';
import type { Actor, Deps } from '../../context';
import { isSqlite, money, toBigInt, toNumber, type Conn, type Tx } from '../../db/knex';
import { retryOnDeadlock } from '../../db/transaction';
import { invalid } from '../../domain/errors';
import { isUniqueViolation } from '../../idempotency';
import { addPeriod, type PeriodUnit } from '../../domain/period';
import { formatAmount } from '../../domain/money';
import { SUBSCRIPTION_STATUS } from '../../subscriptions/subscriptions-service';
import { billingActor, type DocumentsService } from '../documents-service';
import { billingSettingsOfMany, DEFAULT_BILLING_SETTINGS, type BillingSettings } from '../settings';
import type { IssueInvoiceInput, IssuedInvoice, LineKind } from '../types';
import { formatQuantity, quantityFromDb } from '../usage-quantity';
import { lateFeeChargeKey, overageChargeKey, renewalChargeKey, resourceChargeKey, trialConversionChargeKey } from './charge-keys';
import { overageAmount, parseTiers } from './overage';
import { dueSteps, dunInvoice, subscriptionsOn, type OverdueInvoice } from './dunning';
import type { TaskQueue } from '../../jobs/task-queue';
import { domainRenewalBatches } from './domain-renewals';
import type { Workflow, WorkflowsService } from '../../orders/workflows-service';
import { placeRenewalOrders, type RenewalOrderInput } from './renewal-orders';
import { SCHEDULED_CANCEL } from '../../orders/lifecycle-steps';
import { addTo } from '../../domain/group';

const DAY_MS = 86_400_000;
/** Auto-pay charges under way at once per run. */
const AUTOPAY_CONCURRENCY = 8;
/** Closed usage periods older than this (before the run's instant) are no longer looked at. */
export const OVERAGE_LOOKBACK_DAYS = 400;

export type ChargeKind = 'renewal' | 'trial_conversion' | 'overage' | 'resource' | 'late_fee';

export interface BillingRunOptions {
  /** The instant the run bills as of (default: now). */
  asOf?: Date;
  /** Report what would be done, write nothing. */
  dryRun?: boolean;
  /** "cron", "cli", or the API user's login: kept on the billing_runs row. */
  startedBy: string;
  /** Subscriptions per transaction (default 1000). */
  batchSize?: number;
  /** Charge each new invoice to the account's default pay tool (default true). */
  autopay?: boolean;
  /** Auto-pay charges under way at once (default 8; 1 to 64). */
  autopayConcurrency?: number;
  /** Test hook: called after each committed batch; throwing stops the run there (a crash). */
  afterBatch?: (batch: number) => void | Promise<void>;
}

export interface BillingRunSummary {
  runId: number | null;
  asOf: Date;
  dryRun: boolean;
  subscriptionsExamined: number;
  /** New charges (one per subscription, kind, period and resource). */
  charges: number;
  invoices: number;
  /** Invoice lines (tax lines included; a dry run counts charge lines only). */
  lines: number;
  /** Invoiced totals per currency (tax included; a dry run shows the charges before tax). */
  totals: Record<string, bigint>;
  trialsConverted: number;
  /** Renewal orders (RN) placed, one per subscription renewed (or trial converted). */
  renewalOrders: number;
  trialsExpired: number;
  overageLines: number;
  /** New domain renewal charges (auto-renew domains expiring within domainRenewDaysBefore); also in charges. */
  domainRenewals: number;
  payments: { tried: number; succeeded: number; declined: number; unknown: number };
  /** Suspensions (and below, terminations) requested through the service gate by dunning. */
  suspensions: number;
  terminations: number;
  durationMs: number;
}

interface DueRow {
  id: number;
  account_id: number;
  vendor_id: number;
  plan_id: number;
  period_id: number;
  name: string;
  parameters: string;
  status: number;
  expiration_date: unknown;
  duration: number;
  unit: PeriodUnit;
  trial: unknown;
  recurring_fee: unknown;
  renewal_fee: unknown;
  currency: string;
}

/** A charge row as the run inserts it (billing_charges). */
export interface ChargeRow {
  charge_key: string;
  subscription_id: number | null;
  account_id: number;
  vendor_id: number;
  kind: ChargeKind;
  period_start: number | null;
  period_end: number | null;
  resource_id: number | null;
  quantity: string;
  unit_price: string;
  amount: string;
  currency: string;
  description: string;
  document_id: null;
  order_id: null;
  run_id: number | null;
  created_at: number;
}

interface StoredCharge {
  id: number;
  subscription_id: number | null;
  domain_id: number | null;
  account_id: number;
  vendor_id: number;
  kind: ChargeKind;
  period_start: unknown;
  period_end: unknown;
  resource_id: number | null;
  quantity: unknown;
  unit_price: unknown;
  amount: unknown;
  currency: string;
  description: string;
}

const RENEWING: readonly number[] = [SUBSCRIPTION_STATUS.active, SUBSCRIPTION_STATUS.graced, SUBSCRIPTION_STATUS.trial];

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * The billing run: selects what is due as of an instant in batches (bounded memory) and bills it exactly once.
 *
 * 1. Renewals: subscriptions expiring within their vendor's renew_days_before get a renewal charge for
 *    [expiration, expiration + period) (the plan period's renewal fee, else its recurring fee) plus one per extra
 *    resource bought (its recurring fee times the additional amount). Trials ending get a trial_conversion charge
 *    for the plan's first paid period, or, when the plan has none, expire (status 50) at their expiration.
 * 2. Overage: usage periods closed by the instant, for usage above included + additional, priced by the
 *    resource rate's tiers (graduated) or its overage fee.
 * 3. Every charge not yet on an invoice is invoiced per (vendor, account, currency) through
 *    DocumentsService.issueInvoices in the same transaction as the charges.
 * 4. Auto-pay: each new invoice is charged to the account's default pay tool (a key per invoice, so a rerun
 *    never charges twice).
 *
 * Idempotency: a charge's unique charge_key; charges are inserted with ON CONFLICT DO NOTHING (INSERT IGNORE),
 * and the uninvoiced charges are claimed with a locking read, so a second run, concurrent runs and a run killed
 * halfway and restarted produce the documents of one clean run. Batches are fixed id ranges, so a restarted run
 * groups lines into invoices the way a clean run does. The subscription's expiration moves when its renewal
 * invoice is paid (DocumentsService.onInvoicePaid -> extendPaidRenewals).
 */
export class BillingRun {
  constructor(
    private readonly deps: Deps,
    private readonly documents: DocumentsService,
    /** For dunning's suspensions and terminations through the service gate; without it the run does no dunning. */
    private readonly tasks?: TaskQueue,
    /** The vendors' renewal workflows: with it (and tasks), each renewal is a renewal order (RN; renewal-orders.ts). */
    private readonly workflows?: Pick<WorkflowsService, 'activeFor'>,
  ) {}

  async run(opts: BillingRunOptions): Promise<BillingRunSummary> {
    const started = Date.now();
    const asOf = opts.asOf ?? this.deps.clock.now();
    if (!(asOf instanceof Date) || Number.isNaN(asOf.getTime())) throw invalid('asOf', 'asOf must be a valid instant, e.g. 2026-12-01T00:00:00Z.');
    const dryRun = opts.dryRun === true;
    const batchSize = opts.batchSize ?? 1000;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) throw invalid('batchSize', 'batchSize must be 1 to 10000.');
    const db = this.deps.db;
    const summary: BillingRunSummary = {
      runId: null,
      asOf,
      dryRun,
      subscriptionsExamined: 0,
      charges: 0,
      invoices: 0,
      lines: 0,
      totals: {},
      trialsConverted: 0,
      renewalOrders: 0,
      trialsExpired: 0,
      overageLines: 0,
      domainRenewals: 0,
      payments: { tried: 0, succeeded: 0, declined: 0, unknown: 0 },
      suspensions: 0,
      terminations: 0,
      durationMs: 0,
    };
    if (!dryRun) {
      const [id] = (await db('billing_runs').insert({ as_of: asOf.getTime(), status: 'running', started_by: opts.startedBy.slice(0, 128), summary: null, started_at: this.deps.clock.now().getTime(), finished_at: null })) as number[];
      summary.runId = toNumber(id);
    }
    let batchNo = 0;
    // After each batch: let the process's other work run (on SQLite every statement completes synchronously, so a
    // run would otherwise hold the event loop, and the API of the server it runs in, for its whole length).
    const batchDone = async () => {
      await new Promise((resolve) => setImmediate(resolve));
      await opts.afterBatch?.(++batchNo);
    };
    try {
      const ctx = new RunContext(this.deps, asOf, summary);
      // 0. Invoice payments the gateway has settled since they were tried (a timeout the reconciler resolved):
      //    applied now, so a renewal paid that way is extended before dunning looks at its invoice.
      if (!dryRun) {
        for (let round = 0; round < 100; round++) {
          const settled = await this.documents.settlePayments(undefined, 500);
          if (settled.paid + settled.declined === 0) break;
        }
      }
      // 1. Renewals and trials, by fixed ranges of subscription ids.
      const maxRenewDays = await maxRenewDaysBefore(db);
      const horizon = asOf.getTime() + maxRenewDays * DAY_MS;
      // One indexed look-up for where to start, then every range by primary key: each subscription row is read
      // once per run whatever the size of the book (a status/expiration filter per range would rescan the index).
      const first = (await db('subscriptions').whereIn('status', RENEWING).whereNotNull('expiration_date').where('expiration_date', '<=', horizon).min({ id: 'id' }).first()) as { id: unknown } | undefined;
      const last = (await db('subscriptions').max({ id: 'id' }).first()) as { id: unknown } | undefined;
      if (first?.id !== null && first?.id !== undefined) {
        for (let lo = Math.floor(toNumber(first.id) / batchSize) * batchSize; lo <= toNumber(last?.id); lo += batchSize) {
          const pays = await this.renewalBatch(ctx, lo, lo + batchSize, horizon, dryRun);
          if (pays === null) continue;
          await this.autopay(pays, opts, summary);
          await batchDone();
        }
      }
      // 1b. Domain renewals of auto-renew domains (src/billing/run/domain-renewals.ts).
      for await (const pays of domainRenewalBatches(this.deps, { asOf, dryRun, batchSize, summary }, (tx, ids) => this.invoiceUninvoiced(tx, ctx, (q) => q.whereIn('domain_id', ids)))) {
        await this.autopay(pays, opts, summary);
        await batchDone();
      }
      // 2. Overage of closed usage periods, keyset over (period_end, subscription_id, resource_id).
      let after: [number, number, number] = [asOf.getTime() - OVERAGE_LOOKBACK_DAYS * DAY_MS, 0, 0];
      for (;;) {
        const r = await this.overageBatch(ctx, after, batchSize, dryRun);
        if (!r) break;
        await this.autopay(r.pays, opts, summary);
        await batchDone();
        after = r.last;
      }
      // 3. Anything charged but not invoiced (e.g. by an earlier version, or a charge written by hand).
      for (;;) {
        const r = await this.sweepBatch(ctx, batchSize, dryRun);
        if (!r) break;
        await this.autopay(r, opts, summary);
        if (dryRun) break;
      }
      // 4. Late fees of vendors that set one: one per overdue invoice, on an invoice of its own.
      await this.lateFees(ctx, batchSize, dryRun, opts);
      // 5. Auto-pay retries of open invoices on the vendor's autopayRetryDays, each retry once.
      if (!dryRun && opts.autopay !== false) await this.autopayRetries(ctx, batchSize, opts);
      // 6. Dunning of overdue invoices: grace, suspend, terminate per the vendor's days, each step once.
      if (this.tasks) await this.dunning(ctx, batchSize, dryRun);
      summary.durationMs = Date.now() - started;
      if (summary.runId !== null) {
        await db('billing_runs').where({ id: summary.runId }).update({ status: 'done', summary: JSON.stringify(summaryJson(summary)), finished_at: this.deps.clock.now().getTime() });
      }
      return summary;
    } catch (e) {
      summary.durationMs = Date.now() - started;
      if (summary.runId !== null) {
        await db('billing_runs')
          .where({ id: summary.runId })
          .update({ status: 'failed', summary: JSON.stringify({ ...summaryJson(summary), error: (e as Error).message?.slice(0, 500) }), finished_at: this.deps.clock.now().getTime() })
          .catch(() => undefined);
      }
      throw e;
    }
  }

  /** One range of subscription ids: renewal and trial charges, trial expiries, and the invoices of the range. */
  private async renewalBatch(ctx: RunContext, lo: number, hi: number, horizon: number, dryRun: boolean): Promise<IssuedInvoice[] | null> {
    const work = async (conn: Conn): Promise<IssuedInvoice[] | null> => {
      // By primary key range only; status and expiration are filtered here (see run()).
      const subs = ((await conn('subscriptions as s')
        .join('plan_periods as pp', 'pp.id', 's.period_id')
        .join('plans as p', 'p.id', 's.plan_id')
        .where('s.id', '>=', lo)
        .where('s.id', '<', hi)
        .orderBy('s.id')
        .select('s.id', 's.account_id', 's.vendor_id', 's.plan_id', 's.period_id', 's.name', 's.parameters', 's.status', 's.expiration_date', 'pp.duration', 'pp.unit', 'pp.trial', 'pp.recurring_fee', 'pp.renewal_fee', 'p.currency')) as DueRow[]).filter(
        (r) => RENEWING.includes(toNumber(r.status)) && r.expiration_date !== null && r.expiration_date !== undefined && toNumber(r.expiration_date) <= horizon,
      );
      if (subs.length === 0) return null;
      ctx.summary.subscriptionsExamined += subs.length;
      const settings = await ctx.settingsFor(conn, subs.map((s) => toNumber(s.vendor_id)));
      const paidPeriods = await ctx.paidPeriodsFor(conn, subs.filter((s) => isTrial(s)).map((s) => toNumber(s.plan_id)));
      const extras = await extraResources(conn, subs.map((s) => toNumber(s.id)));
      const cancelling = await cancellationsScheduled(conn, subs.map((s) => toNumber(s.id)));
      const charges: ChargeRow[] = [];
      const expire: DueRow[] = [];
      const now = this.deps.clock.now().getTime();
      for (const s of subs) {
        const id = toNumber(s.id);
        const exp = toNumber(s.expiration_date);
        const set = settings.get(toNumber(s.vendor_id))!;
        if (exp - set.renewDaysBefore * DAY_MS > ctx.asOf.getTime()) continue;
        // Canceled at the end of this term: no renewal (nor trial conversion) for a term it will not have.
        if (cancelling.has(id)) continue;
        const base = { subscription_id: id, account_id: toNumber(s.account_id), vendor_id: toNumber(s.vendor_id), currency: s.currency, document_id: null, order_id: null, run_id: ctx.summary.runId, created_at: now } as const;
        let duration = toNumber(s.duration);
        let unit = s.unit;
        if (isTrial(s)) {
          const paid = paidPeriods.get(toNumber(s.plan_id));
          if (!paid) {
            if (exp <= ctx.asOf.getTime()) expire.push(s);
            continue;
          }
          duration = paid.duration;
          unit = paid.unit;
          const end = addPeriod(new Date(exp), duration, unit).getTime();
          charges.push({ ...base, charge_key: trialConversionChargeKey(id, exp), kind: 'trial_conversion', period_start: exp, period_end: end, resource_id: null, quantity: '1', unit_price: money(paid.recurringFee), amount: money(paid.recurringFee), description: `${s.name}: ${duration} ${unit}${duration === 1 ? '' : 's'} from ${day(exp)} (after the trial)` });
        } else {
          const end = addPeriod(new Date(exp), duration, unit).getTime();
          const renewal = toBigInt(s.renewal_fee);
          const fee = renewal > 0n ? renewal : toBigInt(s.recurring_fee);
          charges.push({ ...base, charge_key: renewalChargeKey(id, exp), kind: 'renewal', period_start: exp, period_end: end, resource_id: null, quantity: '1', unit_price: money(fee), amount: money(fee), description: `${s.name}: renewal ${day(exp)} to ${day(end)}` });
        }
        const end = addPeriod(new Date(exp), duration, unit).getTime();
        for (const x of extras.get(id) ?? []) {
          if (x.planId !== toNumber(s.plan_id)) continue;
          const amount = (x.fee * x.additional + 5_000n) / 10_000n; // half-up: both non-negative
          charges.push({ ...base, charge_key: resourceChargeKey(id, exp, x.resourceId), kind: 'resource', period_start: exp, period_end: end, resource_id: x.resourceId, quantity: formatQuantity(x.additional), unit_price: money(x.fee), amount: money(amount), description: `${s.name}: ${formatQuantity(x.additional)} ${x.unit} ${x.name} above the plan, ${day(exp)} to ${day(end)}` });
        }
      }
      ctx.summary.trialsExpired += expire.length;
      if (dryRun) {
        const fresh = await ctx.countDry(conn, charges, subs.map((s) => toNumber(s.id)));
        ctx.summary.trialsConverted += fresh.filter((c) => c.kind === 'trial_conversion').length;
        if (this.workflows && this.tasks) ctx.summary.renewalOrders += fresh.filter((c) => c.kind === 'renewal' || c.kind === 'trial_conversion').length;
        return [];
      }
      const tx = conn as Tx;
      for (const s of expire) {
        const n = await tx('subscriptions').where({ id: s.id, status: SUBSCRIPTION_STATUS.trial }).update({ status: SUBSCRIPTION_STATUS.expired, updated_at: now });
        if (!n) continue;
        await recordChange(tx, billingActor(toNumber(s.vendor_id)), new Date(now), {
          operation: 'billing.trial_expired',
          objectType: 'subscription',
          objectId: toNumber(s.id),
          details: { expirationDate: new Date(toNumber(s.expiration_date)).toISOString(), asOf: ctx.asOf.toISOString() },
          event: { name: 'subscription.expired', accountId: toNumber(s.account_id), payload: { subscriptionId: toNumber(s.id), reason: 'trial_ended', status: SUBSCRIPTION_STATUS.expired } },
        });
      }
      const fresh = await insertCharges(tx, charges, ctx);
      // 2. A renewal order (RN) per subscription renewed, with the charges of its period as lines.
      if (this.workflows && this.tasks && fresh.length) await this.placeOrders(tx, ctx, charges, fresh, subs, paidPeriods);
      return this.invoiceUninvoiced(tx, ctx, (q) => q.whereIn('subscription_id', subs.map((s) => toNumber(s.id))));
    };
    return dryRun ? work(this.deps.db) : retryOnDeadlock(() => this.deps.db.transaction((tx) => work(tx)));
  }

  /** Renewal orders for the renewal and trial-conversion charges this run inserted (with their resource charges). */
  private async placeOrders(tx: Tx, ctx: RunContext, charges: ChargeRow[], fresh: { id: number; charge_key: string }[], subs: DueRow[], paidPeriods: Awaited<ReturnType<RunContext['paidPeriodsFor']>>): Promise<void> {
    const idOf = new Map(fresh.map((f) => [f.charge_key, toNumber(f.id)]));
    const subOf = new Map(subs.map((s) => [toNumber(s.id), s]));
    const inputs = new Map<number, RenewalOrderInput>();
    for (const c of charges) {
      if ((c.kind !== 'renewal' && c.kind !== 'trial_conversion') || !idOf.has(c.charge_key)) continue;
      const s = subOf.get(c.subscription_id!)!;
      const trial = c.kind === 'trial_conversion';
      inputs.set(c.subscription_id!, {
        subscriptionId: c.subscription_id!,
        accountId: c.account_id,
        vendorId: c.vendor_id,
        planId: toNumber(s.plan_id),
        periodId: trial ? paidPeriods.get(toNumber(s.plan_id))!.periodId : toNumber(s.period_id),
        currency: c.currency,
        parameters: s.parameters,
        name: s.name,
        periodStart: c.period_start!,
        periodEnd: c.period_end!,
        trialConversion: trial,
        charges: [],
      });
    }
    for (const c of charges) {
      const id = idOf.get(c.charge_key);
      const input = inputs.get(c.subscription_id!);
      if (id === undefined || !input || c.period_start !== input.periodStart) continue;
      input.charges.push({ id, kind: c.kind, description: c.description, resourceId: c.resource_id, quantity: c.quantity, unitPrice: toBigInt(c.unit_price), amount: toBigInt(c.amount) });
    }
    await placeRenewalOrders(tx, this.deps, { workflows: this.workflows!, tasks: this.tasks! }, ctx.workflows, ctx.summary.runId, this.deps.clock.now(), [...inputs.values()]);
    ctx.summary.renewalOrders += inputs.size;
  }

  private async overageBatch(ctx: RunContext, after: [number, number, number], limit: number, dryRun: boolean): Promise<{ pays: IssuedInvoice[]; last: [number, number, number] } | null> {
    const work = async (conn: Conn) => {
      const rows = (await conn('usage_periods as up')
        .join('subscription_resources as sr', function () {
          this.on('sr.subscription_id', '=', 'up.subscription_id').andOn('sr.resource_id', '=', 'up.resource_id');
        })
        .join('subscriptions as s', 's.id', 'up.subscription_id')
        .join('plans as p', 'p.id', 's.plan_id')
        .join('resource_rates as rr', function () {
          this.on('rr.plan_id', '=', 's.plan_id').andOn('rr.resource_id', '=', 'up.resource_id');
        })
        .join('resources as r', 'r.id', 'up.resource_id')
        .where('up.period_end', '<=', ctx.asOf.getTime())
        .whereRaw('(up.period_end, up.subscription_id, up.resource_id) > (?, ?, ?)', after)
        .whereRaw('up.usage > sr.included + sr.additional')
        .orderBy([{ column: 'up.period_end' }, { column: 'up.subscription_id' }, { column: 'up.resource_id' }])
        .limit(limit)
        .select('up.subscription_id', 'up.resource_id', 'up.period_start', 'up.period_end', 'up.usage', 'sr.included', 'sr.additional', 's.account_id', 's.vendor_id', 's.name', 'p.currency', 'rr.overage_fee', 'rr.tiers', 'r.name as resource_name', 'r.unit')) as {
        subscription_id: number;
        resource_id: number;
        period_start: unknown;
        period_end: unknown;
        usage: unknown;
        included: unknown;
        additional: unknown;
        account_id: number;
        vendor_id: number;
        name: string;
        currency: string;
        overage_fee: unknown;
        tiers: unknown;
        resource_name: string;
        unit: string;
      }[];
      if (rows.length === 0) return null;
      const now = this.deps.clock.now().getTime();
      const charges: ChargeRow[] = [];
      for (const r of rows) {
        const over = quantityFromDb(r.usage) - quantityFromDb(r.included) - quantityFromDb(r.additional);
        if (over <= 0n) continue;
        const priced = overageAmount(over, toBigInt(r.overage_fee), parseTiers(r.tiers), r.currency);
        const ps = toNumber(r.period_start);
        const pe = toNumber(r.period_end);
        charges.push({
          charge_key: overageChargeKey(toNumber(r.subscription_id), ps, toNumber(r.resource_id)),
          subscription_id: toNumber(r.subscription_id),
          account_id: toNumber(r.account_id),
          vendor_id: toNumber(r.vendor_id),
          kind: 'overage',
          period_start: ps,
          period_end: pe,
          resource_id: toNumber(r.resource_id),
          quantity: formatQuantity(over),
          unit_price: money(priced.unitPrice),
          amount: money(priced.amount),
          currency: r.currency,
          description: `${r.name}: ${r.resource_name} ${formatQuantity(over)} ${r.unit} over ${formatQuantity(quantityFromDb(r.included) + quantityFromDb(r.additional))} ${r.unit}, ${day(ps)} to ${day(pe)}${priced.breakdown ? ` (${priced.breakdown})` : ''}`.slice(0, 255),
          document_id: null,
          order_id: null,
          run_id: ctx.summary.runId,
          created_at: now,
        });
      }
      const lastRow = rows[rows.length - 1]!;
      const last: [number, number, number] = [toNumber(lastRow.period_end), toNumber(lastRow.subscription_id), toNumber(lastRow.resource_id)];
      const subIds = [...new Set(rows.map((r) => toNumber(r.subscription_id)))];
      if (dryRun) {
        const before = ctx.summary.charges;
        await ctx.countDry(conn, charges, subIds, 'overage');
        ctx.summary.overageLines += ctx.summary.charges - before;
        return { pays: [] as IssuedInvoice[], last };
      }
      const tx = conn as Tx;
      const inserted = (await insertCharges(tx, charges, ctx)).length;
      ctx.summary.overageLines += inserted;
      const pays = await this.invoiceUninvoiced(tx, ctx, (q) => q.whereIn('subscription_id', subIds).where('kind', 'overage'));
      return { pays, last };
    };
    return dryRun ? work(this.deps.db) : retryOnDeadlock(() => this.deps.db.transaction((tx) => work(tx)));
  }

  private async sweepBatch(ctx: RunContext, limit: number, dryRun: boolean): Promise<IssuedInvoice[] | null> {
    if (dryRun) {
      const [{ n }] = (await this.deps.db('billing_charges').whereNull('document_id').whereNull('subscription_id').count({ n: '*' })) as { n: unknown }[];
      if (toNumber(n) > 0) ctx.summary.lines += toNumber(n);
      return null;
    }
    return retryOnDeadlock(() =>
      this.deps.db.transaction(async (tx) => {
        const ids = (await tx('billing_charges').whereNull('document_id').orderBy('id').limit(limit).select('id')) as { id: number }[];
        if (ids.length === 0) return null;
        const issued = await this.invoiceUninvoiced(tx, ctx, (q) => q.whereIn('id', ids.map((r) => toNumber(r.id))));
        return issued;
      }),
    );
  }

  /**
   * A vendor's late fee (billing_settings.late_fee, in minor units of the invoice's currency) on each of its open
   * invoices at least late_fee_days past due: one `late_fee` charge per invoice (key "doc:<id>:late_fee"), never
   * on an invoice that only bills late fees, invoiced per account like any other charge.
   */
  private async lateFees(ctx: RunContext, limit: number, dryRun: boolean, opts: BillingRunOptions): Promise<void> {
    const db = this.deps.db;
    const vendors = (await db('billing_settings').whereNotNull('late_fee').select('vendor_id', 'late_fee', 'late_fee_days')) as { vendor_id: number; late_fee: unknown; late_fee_days: unknown }[];
    const asOf = ctx.asOf.getTime();
    for (const v of vendors) {
      const fee = toBigInt(v.late_fee);
      if (fee <= 0n) continue;
      const days = v.late_fee_days === null || v.late_fee_days === undefined ? 0 : toNumber(v.late_fee_days);
      let after = 0;
      for (;;) {
        const invoices = (await db('documents')
          .where({ vendor_id: toNumber(v.vendor_id), type: 'invoice', status: 'open' })
          .whereNotNull('due_date')
          .where('due_date', '<=', asOf - days * DAY_MS)
          .where('id', '>', after)
          .orderBy('id')
          .limit(limit)
          .select('id', 'number', 'account_id', 'currency', 'due_date')) as { id: number; number: string; account_id: number; currency: string; due_date: unknown }[];
        if (invoices.length === 0) break;
        after = toNumber(invoices[invoices.length - 1]!.id);
        const ids = invoices.map((i) => toNumber(i.id));
        const kinds = (await db('billing_charges').whereIn('document_id', ids).select('document_id', 'kind')) as { document_id: number; kind: string }[];
        const feeOnly = new Set<number>();
        const other = new Set<number>();
        for (const k of kinds) (k.kind === 'late_fee' ? feeOnly : other).add(toNumber(k.document_id));
        const now = this.deps.clock.now().getTime();
        const charges: ChargeRow[] = invoices
          .filter((i) => !(feeOnly.has(toNumber(i.id)) && !other.has(toNumber(i.id))))
          .map((i) => ({
            charge_key: lateFeeChargeKey(toNumber(i.id)),
            subscription_id: null,
            account_id: toNumber(i.account_id),
            vendor_id: toNumber(v.vendor_id),
            kind: 'late_fee',
            period_start: null,
            period_end: null,
            resource_id: null,
            quantity: '1',
            unit_price: money(fee),
            amount: money(fee),
            currency: i.currency,
            description: `Late fee: invoice ${i.number} unpaid since ${day(toNumber(i.due_date))}`,
            document_id: null,
            order_id: null,
            run_id: ctx.summary.runId,
            created_at: now,
          }));
        if (charges.length === 0) continue;
        if (dryRun) {
          await ctx.countDry(db, charges, []);
          continue;
        }
        const issued = await retryOnDeadlock(() =>
          db.transaction(async (tx) => {
            await insertCharges(tx, charges, ctx);
            return this.invoiceUninvoiced(tx, ctx, (q) => q.whereIn('charge_key', charges.map((c) => c.charge_key)));
          }),
        );
        await this.autopay(issued, opts, ctx.summary);
      }
    }
  }

  /**
   * Auto-pay retries: an open invoice of an account with a default pay tool is charged again autopayRetryDays[n]
   * days after its issue date (retry n+1, key "autopay:<n+2>"), each retry once (dunning_steps "autopay:<n+1>",
   * claimed before paying). A run that first sees an invoice late makes only the latest retry due.
   */
  private async autopayRetries(ctx: RunContext, limit: number, opts: BillingRunOptions): Promise<void> {
    const db = this.deps.db;
    const asOf = ctx.asOf.getTime();
    const row = (await db('billing_settings').select('autopay_retry_days')) as { autopay_retry_days: string }[];
    const firsts = [DEFAULT_BILLING_SETTINGS.autopayRetryDays[0] ?? Infinity, ...row.map((r) => (JSON.parse(r.autopay_retry_days) as number[])[0] ?? Infinity)];
    const minFirst = Math.min(...firsts);
    if (!Number.isFinite(minFirst)) return;
    let after = 0;
    for (;;) {
      const invoices = (await db('documents as d')
        .join('pay_tools as t', function () {
          this.on('t.account_id', '=', 'd.account_id').andOn('t.is_default', '=', db.raw('?', [true]));
        })
        .where({ 'd.type': 'invoice', 'd.status': 'open' })
        .where('d.issue_date', '<=', asOf - minFirst * DAY_MS)
        .where('d.id', '>', after)
        .orderBy('d.id')
        .limit(limit)
        .select('d.id', 'd.vendor_id', 'd.account_id', 'd.issue_date', 'd.total', 'd.number', 'd.currency', 'd.due_date', 'd.subtotal', 'd.tax_total')) as {
        id: number;
        vendor_id: number;
        account_id: number;
        issue_date: unknown;
        total: unknown;
        number: string;
        currency: string;
        due_date: unknown;
        subtotal: unknown;
        tax_total: unknown;
      }[];
      if (invoices.length === 0) return;
      after = toNumber(invoices[invoices.length - 1]!.id);
      const settings = await ctx.settingsFor(db, invoices.map((i) => toNumber(i.vendor_id)));
      const due: IssuedInvoice[] = [];
      for (const i of invoices) {
        const days = settings.get(toNumber(i.vendor_id))!.autopayRetryDays;
        let n = -1;
        days.forEach((d, k) => {
          if (toNumber(i.issue_date) + d * DAY_MS <= asOf) n = k;
        });
        if (n < 0) continue;
        try {
          await db('dunning_steps').insert({ document_id: toNumber(i.id), step: `autopay:${n + 1}`, outcome: 'tried', at: this.deps.clock.now().getTime() });
        } catch (e) {
          if (isUniqueViolation(e)) continue;
          throw e;
        }
        due.push({ documentId: toNumber(i.id), number: i.number, accountId: toNumber(i.account_id), vendorId: toNumber(i.vendor_id), currency: i.currency, subtotal: toBigInt(i.subtotal), taxTotal: toBigInt(i.tax_total), total: toBigInt(i.total), dueDate: new Date(toNumber(i.due_date)), retry: n + 2 } as IssuedInvoice & { retry: number });
      }
      await this.autopay(due, opts, ctx.summary);
    }
  }

  /** Open invoices past due by at least the smallest grace period, by id: the dunning steps now due for each. */
  private async dunning(ctx: RunContext, limit: number, dryRun: boolean): Promise<void> {
    const db = this.deps.db;
    const row = (await db('billing_settings').min({ d: 'grace_days' }).first()) as { d: unknown } | undefined;
    const minGrace = Math.min(DEFAULT_BILLING_SETTINGS.graceDays, row?.d === null || row?.d === undefined ? Infinity : toNumber(row.d));
    const asOf = ctx.asOf.getTime();
    let after = 0;
    for (;;) {
      const invoices = (await db('documents')
        .where({ type: 'invoice', status: 'open' })
        .whereNotNull('due_date')
        .where('due_date', '<=', asOf - minGrace * DAY_MS)
        .where('id', '>', after)
        .orderBy('id')
        .limit(limit)
        .select('id', 'number', 'vendor_id', 'account_id', 'due_date')) as { id: number; number: string; vendor_id: number; account_id: number; due_date: unknown }[];
      if (invoices.length === 0) return;
      after = toNumber(invoices[invoices.length - 1]!.id);
      const settings = await ctx.settingsFor(db, invoices.map((i) => toNumber(i.vendor_id)));
      const subs = await subscriptionsOn(db, invoices.map((i) => toNumber(i.id)));
      const done = new Set<string>();
      const recorded = (await db('dunning_steps').whereIn('document_id', invoices.map((i) => toNumber(i.id))).whereNot('outcome', 'pending').select('document_id', 'step')) as { document_id: number; step: string }[];
      for (const r of recorded) done.add(`${toNumber(r.document_id)}:${r.step}`);
      for (const i of invoices) {
        const inv: OverdueInvoice = { id: toNumber(i.id), number: i.number, vendorId: toNumber(i.vendor_id), accountId: toNumber(i.account_id), dueDate: toNumber(i.due_date) };
        const steps = dueSteps(settings.get(inv.vendorId)!, inv.dueDate, asOf).filter((s) => !done.has(`${inv.id}:${s}`));
        if (steps.length === 0) continue;
        const list = subs.get(inv.id) ?? [];
        if (dryRun) {
          if (steps.includes('suspend')) ctx.summary.suspensions += list.length;
          if (steps.includes('terminate')) ctx.summary.terminations += list.length;
          continue;
        }
        const r = await dunInvoice(this.deps, this.tasks!, inv, steps, list, this.deps.clock.now());
        ctx.summary.suspensions += r.suspensions;
        ctx.summary.terminations += r.terminations;
      }
    }
  }

  /** Claims the charges `filter` selects that are on no invoice yet (locking read) and invoices them. */
  private async invoiceUninvoiced(tx: Tx, ctx: RunContext, filter: (q: ReturnType<Tx>) => ReturnType<Tx>): Promise<IssuedInvoice[]> {
    const q = filter(tx('billing_charges').whereNull('document_id')).orderBy('id').select('id', 'subscription_id', 'domain_id', 'account_id', 'vendor_id', 'kind', 'period_start', 'period_end', 'resource_id', 'quantity', 'unit_price', 'amount', 'currency', 'description');
    const charges = (await (isSqlite(tx) ? q : q.forUpdate())) as StoredCharge[];
    if (charges.length === 0) return [];
    const groups = new Map<string, StoredCharge[]>();
    for (const c of charges) {
      const key = `${toNumber(c.vendor_id)}:${toNumber(c.account_id)}:${c.currency}`;
      const list = groups.get(key);
      if (list) list.push(c);
      else groups.set(key, [c]);
    }
    const inputs: IssueInvoiceInput[] = [...groups.values()].map((list) => ({
      vendorId: toNumber(list[0]!.vendor_id),
      accountId: toNumber(list[0]!.account_id),
      currency: list[0]!.currency,
      issueDate: ctx.asOf,
      description: `Billing as of ${ctx.asOf.toISOString().slice(0, 10)}`,
      lines: list.map((c) => ({
        // A domain's renewal charge (kind renewal, keyed by its domain) is a `domain` line on the invoice.
        kind: c.domain_id === null || c.domain_id === undefined ? (c.kind as LineKind) : 'domain',
        description: c.description,
        subscriptionId: c.subscription_id === null ? null : toNumber(c.subscription_id),
        resourceId: c.resource_id === null ? null : toNumber(c.resource_id),
        periodStart: c.period_start === null ? null : new Date(toNumber(c.period_start)),
        periodEnd: c.period_end === null ? null : new Date(toNumber(c.period_end)),
        quantity: formatQuantity(quantityFromDb(c.quantity)),
        unitPrice: toBigInt(c.unit_price),
        amount: toBigInt(c.amount),
        chargeId: toNumber(c.id),
      })),
    }));
    const issued = await this.documents.issueInvoices(tx, this.deps.clock.now(), inputs);
    ctx.summary.invoices += issued.length;
    ctx.summary.lines += inputs.reduce((n, i) => n + i.lines.length, 0) + issued.filter((i) => i.taxTotal !== 0n).length;
    for (const inv of issued) ctx.summary.totals[inv.currency] = (ctx.summary.totals[inv.currency] ?? 0n) + inv.total;
    return issued;
  }

  /** Charges each new open invoice to the account's default pay tool, once per invoice (key "autopay:1"). */
  private async autopay(issued: IssuedInvoice[], opts: BillingRunOptions, summary: BillingRunSummary): Promise<void> {
    if (opts.dryRun || opts.autopay === false || issued.length === 0) return;
    const payable = issued.filter((i) => i.total > 0n);
    if (payable.length === 0) return;
    // Per vendor (the actor of its records): the attempts and pending payments in one transaction, the gateway
    // calls a few at once outside it, the settlements and payment documents in another (DocumentsService.payInvoices).
    const byVendor = new Map<number, IssuedInvoice[]>();
    for (const inv of payable) addTo(byVendor, inv.vendorId, inv);
    const concurrency = Math.max(1, Math.min(64, Math.floor(opts.autopayConcurrency ?? AUTOPAY_CONCURRENCY)));
    for (const [vendorId, list] of byVendor) {
      let results;
      try {
        results = await this.documents.payInvoices(
          billingActor(vendorId),
          list.map((inv) => ({ invoiceId: inv.documentId, idempotencyKey: `autopay:${(inv as IssuedInvoice & { retry?: number }).retry ?? 1}` })),
          { concurrency },
        );
      } catch (e) {
        // The run goes on; whatever was charged is pending for the reconciler, and settlePayments applies it.
        summary.payments.tried += list.length;
        summary.payments.unknown += list.length;
        this.deps.log.warn('auto-pay failed', { vendorId, invoices: list.length, error: (e as Error).message });
        continue;
      }
      for (const r of results) {
        if ('skipped' in r) {
          // Not open any more (paid on issue by a credit, or meanwhile), a payment already under way, or an account
          // without a default pay tool: not tried. Anything else is worth a look.
          if (r.skipped === 'NOT_ALLOWED' || r.skipped === 'CONFLICT' || (r.skipped === 'INVALID_ARGUMENT' && r.field === 'payToolId')) continue;
          summary.payments.tried++;
          summary.payments.unknown++;
          this.deps.log.warn('auto-pay failed', { invoiceId: r.invoiceId, error: r.message });
          continue;
        }
        summary.payments.tried++;
        if (r.outcome === 'paid') summary.payments.succeeded++;
        else if (r.outcome === 'pending' || r.outcome === 'unknown') summary.payments.unknown++;
        else summary.payments.declined++;
      }
    }
  }
}

/** Per-run caches and the dry run's arithmetic. */
class RunContext {
  private readonly settings = new Map<number, BillingSettings>();
  /** Each vendor's active renewal workflow, for the run's renewal orders. */
  readonly workflows = new Map<number, Workflow>();
  private readonly paidPeriods = new Map<number, { periodId: number; duration: number; unit: PeriodUnit; recurringFee: bigint } | null>();

  constructor(
    readonly deps: Deps,
    readonly asOf: Date,
    readonly summary: BillingRunSummary,
  ) {}

  async settingsFor(conn: Conn, vendorIds: number[]): Promise<Map<number, BillingSettings>> {
    const missing = [...new Set(vendorIds)].filter((v) => !this.settings.has(v));
    if (missing.length) for (const [k, v] of await billingSettingsOfMany(conn, missing)) this.settings.set(k, v);
    return this.settings;
  }

  /** The plan's first enabled paid period (by sort order, then id), which a trial converts to; null: none. */
  async paidPeriodsFor(conn: Conn, planIds: number[]) {
    const missing = [...new Set(planIds)].filter((p) => !this.paidPeriods.has(p));
    if (missing.length) {
      const rows = (await conn('plan_periods').whereIn('plan_id', missing).where({ trial: false, enabled: true }).orderBy(['plan_id', 'sort_order', 'id']).select('id', 'plan_id', 'duration', 'unit', 'recurring_fee')) as {
        id: number;
        plan_id: number;
        duration: number;
        unit: PeriodUnit;
        recurring_fee: unknown;
      }[];
      for (const p of missing) this.paidPeriods.set(p, null);
      for (const r of rows) {
        if (this.paidPeriods.get(toNumber(r.plan_id))) continue;
        this.paidPeriods.set(toNumber(r.plan_id), { periodId: toNumber(r.id), duration: toNumber(r.duration), unit: r.unit, recurringFee: toBigInt(r.recurring_fee) });
      }
    }
    return this.paidPeriods;
  }

  /** Dry run: counts the charges that do not exist yet and the invoices they (and uninvoiced ones) would make. */
  async countDry(conn: Conn, charges: ChargeRow[], subscriptionIds: number[], kind?: ChargeKind): Promise<ChargeRow[]> {
    const existing = new Set<string>();
    for (let i = 0; i < charges.length; i += 500) {
      const rows = (await conn('billing_charges').whereIn('charge_key', charges.slice(i, i + 500).map((c) => c.charge_key)).select('charge_key')) as { charge_key: string }[];
      for (const r of rows) existing.add(r.charge_key);
    }
    const fresh = charges.filter((c) => !existing.has(c.charge_key));
    const pending: { account_id: number; vendor_id: number; currency: string; amount: unknown }[] = [];
    for (let i = 0; i < subscriptionIds.length; i += 500) {
      const q = conn('billing_charges').whereIn('subscription_id', subscriptionIds.slice(i, i + 500)).whereNull('document_id');
      pending.push(...((await (kind ? q.where('kind', kind) : q).select('account_id', 'vendor_id', 'currency', 'amount')) as typeof pending));
    }
    const groups = new Set<string>();
    for (const c of [...fresh, ...pending]) {
      groups.add(`${toNumber(c.vendor_id)}:${toNumber(c.account_id)}:${c.currency}`);
      this.summary.totals[c.currency] = (this.summary.totals[c.currency] ?? 0n) + toBigInt(c.amount);
    }
    this.summary.charges += fresh.length;
    this.summary.lines += fresh.length + pending.length;
    this.summary.invoices += groups.size;
    return fresh;
  }
}

function isTrial(s: DueRow): boolean {
  return toNumber(s.status) === SUBSCRIPTION_STATUS.trial || s.trial === true || s.trial === 1 || s.trial === 1n || s.trial === '1';
}

async function maxRenewDaysBefore(db: Conn): Promise<number> {
  const row = (await db('billing_settings').max({ d: 'renew_days_before' }).first()) as { d: unknown } | undefined;
  return Math.max(DEFAULT_BILLING_SETTINGS.renewDaysBefore, row?.d === null || row?.d === undefined ? 0 : toNumber(row.d));
}

/** The subscriptions among `subscriptionIds` with an end-of-term cancellation scheduled and not yet carried out. */
async function cancellationsScheduled(conn: Conn, subscriptionIds: number[]): Promise<Set<number>> {
  const out = new Set<number>();
  for (let i = 0; i < subscriptionIds.length; i += 500) {
    const rows = (await conn('tasks')
      .where({ kind: SCHEDULED_CANCEL, object_type: 'subscription' })
      .whereIn('object_id', subscriptionIds.slice(i, i + 500).map(String))
      .whereIn('status', ['pending', 'running', 'failed'])
      .select('object_id')) as { object_id: string }[];
    for (const r of rows) out.add(Number(r.object_id));
  }
  return out;
}

/** Resources bought above the plan, with the plan's recurring fee per extra unit. */
async function extraResources(conn: Conn, subscriptionIds: number[]) {
  const out = new Map<number, { planId: number; resourceId: number; additional: bigint; fee: bigint; name: string; unit: string }[]>();
  for (let i = 0; i < subscriptionIds.length; i += 500) {
    const rows = (await conn('subscription_resources as sr')
      .join('subscriptions as s', 's.id', 'sr.subscription_id')
      .join('resource_rates as rr', function () {
        this.on('rr.plan_id', '=', 's.plan_id').andOn('rr.resource_id', '=', 'sr.resource_id');
      })
      .join('resources as r', 'r.id', 'sr.resource_id')
      .whereIn('sr.subscription_id', subscriptionIds.slice(i, i + 500))
      .where('sr.additional', '>', 0)
      .where('rr.recurring_fee', '>', 0)
      .orderBy(['sr.subscription_id', 'sr.resource_id'])
      .select('sr.subscription_id', 's.plan_id', 'sr.resource_id', 'sr.additional', 'rr.recurring_fee', 'r.name', 'r.unit')) as {
      subscription_id: number;
      plan_id: number;
      resource_id: number;
      additional: unknown;
      recurring_fee: unknown;
      name: string;
      unit: string;
    }[];
    for (const r of rows) {
      const id = toNumber(r.subscription_id);
      const list = out.get(id) ?? [];
      list.push({ planId: toNumber(r.plan_id), resourceId: toNumber(r.resource_id), additional: quantityFromDb(r.additional), fee: toBigInt(r.recurring_fee), name: r.name, unit: r.unit });
      out.set(id, list);
    }
  }
  return out;
}

/** INSERT ... ON CONFLICT (charge_key) DO NOTHING / INSERT IGNORE, 500 rows per statement; answers the rows this run inserted. */
async function insertCharges(tx: Tx, charges: ChargeRow[], ctx: RunContext): Promise<{ id: number; charge_key: string; kind: ChargeKind }[]> {
  const inserted: { id: number; charge_key: string; kind: ChargeKind }[] = [];
  for (let i = 0; i < charges.length; i += 500) {
    const chunk = charges.slice(i, i + 500);
    await tx('billing_charges').insert(chunk).onConflict('charge_key').ignore();
    // Ours are those carrying this run's id (a concurrent run's rows carry its own).
    const rows = (await tx('billing_charges').whereIn('charge_key', chunk.map((c) => c.charge_key)).where('run_id', ctx.summary.runId!).select('id', 'charge_key', 'kind')) as { id: number; charge_key: string; kind: ChargeKind }[];
    inserted.push(...rows);
    ctx.summary.trialsConverted += rows.filter((r) => r.kind === 'trial_conversion').length;
  }
  ctx.summary.charges += inserted.length;
  return inserted;
}

export function summaryJson(s: BillingRunSummary): Record<string, unknown> {
  return {
    runId: s.runId,
    asOf: s.asOf.toISOString(),
    dryRun: s.dryRun,
    subscriptionsExamined: s.subscriptionsExamined,
    charges: s.charges,
    invoices: s.invoices,
    lines: s.lines,
    totals: Object.fromEntries(Object.entries(s.totals).map(([c, v]) => [c, formatAmount(v, c)])),
    trialsConverted: s.trialsConverted,
    renewalOrders: s.renewalOrders,
    trialsExpired: s.trialsExpired,
    overageLines: s.overageLines,
    domainRenewals: s.domainRenewals,
    payments: s.payments,
    suspensions: s.suspensions,
    terminations: s.terminations,
    durationMs: s.durationMs,
  };
}

/** An Actor for a run started by the system (cron, CLI). */
export type RunActor = Actor;
