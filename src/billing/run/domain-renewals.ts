import { recordChange } from '../../audit/record-change';
import type { AccountRow } from '../../accounts/scope';
import type { Deps } from '../../context';
import type { Actor } from '../../context';
import { isSqlite, money, toBigInt, toNumber, type Conn, type Tx } from '../../db/knex';
import { retryOnDeadlock } from '../../db/transaction';
import { addPeriod } from '../../domain/period';
import { TldCatalogService, type Tld } from '../../domains/tld-catalog';
import type { TaskQueue } from '../../jobs/task-queue';
import { ORDERS_QUEUE } from '../../orders/transitions';
import { billingActor, type InvoicesPaidListener, type OrderLedger } from '../documents-service';
import { billingSettingsOfMany, DEFAULT_BILLING_SETTINGS } from '../settings';
import type { IssuedInvoice } from '../types';
import type { ChargeRow } from './billing-run';
import { creditInvoiceShare } from './renewal-closing';

const DAY_MS = 86_400_000;

/** One renewal charge per (domain, expiry it renews from): a second, concurrent or restarted run adds nothing. */
export const domainRenewalChargeKey = (domainId: number, expiresAt: number): string => `domain:${domainId}:renew:${expiresAt}`;
/** The registrar operation id of that renewal: the same on every attempt, so the registrar renews once. */
export const domainRenewalOperationId = (domainId: number, expiresAt: number): string => `hw-renew-${domainId}-${expiresAt}`;
/** A declined renewal's charge key (declineUnpaidDomainRenewals): no longer the renewal's, so it is not renewed when paid and a later run can bill that expiry again. */
const declinedChargeKey = (key: string, chargeId: number): string => `${key}:declined:${chargeId}`;
/** The task that renews a paid domain renewal at the registrar (src/domains/lifecycle.ts). */
export const DOMAIN_RENEW_TASK = 'domain.renew';

export interface DomainRenewalTaskPayload {
  domainId: number;
  /** The expiry the renewal starts from (the charge's period start), epoch ms. */
  expiresAt: number;
  years: number;
  chargeKey: string;
  invoiceId: number;
}

/** What the billing run gives this module: its instant, its id and the summary it adds to. */
export interface DomainRenewalRun {
  asOf: Date;
  dryRun: boolean;
  batchSize: number;
  summary: { runId: number | null; charges: number; lines: number; invoices: number; totals: Record<string, bigint>; domainRenewals: number };
}

interface DueDomain {
  id: number;
  account_id: number;
  vendor_id: number;
  name: string;
  tld: string;
  expires_at: unknown;
}

/** A domain renewal's charge row: the run's charge row for a domain instead of a subscription. */
type DomainCharge = Omit<ChargeRow, 'subscription_id' | 'kind' | 'period_start' | 'period_end' | 'resource_id'> & {
  subscription_id: null;
  domain_id: number;
  kind: 'renewal';
  period_start: number;
  period_end: number;
  resource_id: null;
};

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * The billing run's domain renewals, batch by batch (keyset over domain ids): every active auto-renew domain whose
 * expiry E is at most its seller's `domainRenewDaysBefore` days after the run's instant gets one `renewal` charge
 * for [E, E + 1 year) at the seller's TLD renew price for 1 year (the nearest offer of the domain's TLD, in the
 * offer's currency), keyed `domain:<id>:renew:<E>` and inserted with ON CONFLICT DO NOTHING, then invoiced in the
 * same transaction by `invoice` (the run's own claim-and-invoice of uninvoiced charges). Only domains held by a
 * customer of their seller are billed (an account's own domains have nobody to invoice them). A domain whose TLD
 * has no 1-year renew price is skipped with a warning. Yields each batch's new invoices (for auto-pay).
 */
export async function* domainRenewalBatches(deps: Deps, run: DomainRenewalRun, invoice: (tx: Tx, domainIds: number[]) => Promise<IssuedInvoice[]>): AsyncGenerator<IssuedInvoice[]> {
  const db = deps.db;
  const row = (await db('billing_settings').max({ d: 'domain_renew_days_before' }).first()) as { d: unknown } | undefined;
  const maxDays = Math.max(DEFAULT_BILLING_SETTINGS.domainRenewDaysBefore, row?.d === null || row?.d === undefined ? 0 : toNumber(row.d));
  const asOf = run.asOf.getTime();
  const horizon = asOf + maxDays * DAY_MS;
  const tlds = new TldCatalogService(deps);
  const offers = new Map<string, Tld | null>();
  const sellers = new Map<number, AccountRow>();
  let after = 0;
  for (;;) {
    const due = (await db('domains as d')
      .join('accounts as a', 'a.id', 'd.account_id')
      .where('d.status', 'active')
      .where('d.auto_renew', true)
      .whereNotNull('d.expires_at')
      .where('d.expires_at', '<=', horizon)
      .where('d.id', '>', after)
      .whereRaw('a.vendor_id = d.vendor_id')
      .orderBy('d.id')
      .limit(run.batchSize)
      .select('d.id', 'd.account_id', 'd.vendor_id', 'd.name', 'd.tld', 'd.expires_at')) as DueDomain[];
    if (due.length === 0) return;
    after = toNumber(due[due.length - 1]!.id);
    const work = async (conn: Conn): Promise<IssuedInvoice[]> => {
      const settings = await billingSettingsOfMany(conn, due.map((d) => toNumber(d.vendor_id)));
      const now = deps.clock.now().getTime();
      const charges: DomainCharge[] = [];
      for (const d of await stillDue(conn, run.dryRun, due)) {
        const vendorId = toNumber(d.vendor_id);
        const exp = toNumber(d.expires_at);
        if (exp - settings.get(vendorId)!.domainRenewDaysBefore * DAY_MS > asOf) continue;
        const offerKey = `${vendorId}:${d.tld}`;
        if (!offers.has(offerKey)) {
          let seller = sellers.get(vendorId);
          if (!seller) {
            seller = (await conn('accounts').where({ id: vendorId }).first()) as AccountRow;
            sellers.set(vendorId, seller);
          }
          offers.set(offerKey, (await tlds.offerFor(conn, seller, d.tld)) ?? null);
        }
        const offer = offers.get(offerKey);
        const price = offer?.prices.find((p) => p.action === 'renew' && p.years === 1);
        if (!offer || !price) {
          deps.log.warn('domain renewal not billed: no 1-year renew price', { domainId: toNumber(d.id), name: d.name, tld: d.tld, vendorId });
          continue;
        }
        const end = addPeriod(new Date(exp), 1, 'year').getTime();
        charges.push({
          charge_key: domainRenewalChargeKey(toNumber(d.id), exp),
          subscription_id: null,
          domain_id: toNumber(d.id),
          account_id: toNumber(d.account_id),
          vendor_id: vendorId,
          kind: 'renewal',
          period_start: exp,
          period_end: end,
          resource_id: null,
          quantity: '1',
          unit_price: money(price.amount),
          amount: money(price.amount),
          currency: offer.currency,
          description: `Domain ${d.name}: renewal for 1 year, ${day(exp)} to ${day(end)}`.slice(0, 255),
          document_id: null,
          order_id: null,
          run_id: run.summary.runId,
          created_at: now,
        });
      }
      const ids = due.map((d) => toNumber(d.id));
      if (run.dryRun) {
        await countDry(conn, run, charges, ids);
        return [];
      }
      const tx = conn as Tx;
      if (charges.length) {
        await tx('billing_charges').insert(charges).onConflict('charge_key').ignore();
        // Ours are those carrying this run's id (a concurrent run's rows carry its own).
        const [{ n }] = (await tx('billing_charges').whereIn('charge_key', charges.map((c) => c.charge_key)).where('run_id', run.summary.runId!).count({ n: '*' })) as { n: unknown }[];
        run.summary.charges += toNumber(n);
        run.summary.domainRenewals += toNumber(n);
      }
      return invoice(tx, ids);
    };
    const pays = run.dryRun ? await work(db) : await retryOnDeadlock(() => db.transaction((tx) => work(tx)));
    yield pays;
    if (due.length < run.batchSize) return;
  }
}

/**
 * The batch's domains still active with auto-renew on, read again in the batch's transaction and locked (MariaDB):
 * one switched off since the batch was read is not billed, and a switch-off waiting on the lock then finds (and
 * credits) what this batch billed. The dry run takes the batch as read.
 */
async function stillDue(conn: Conn, dryRun: boolean, due: DueDomain[]): Promise<DueDomain[]> {
  if (dryRun) return due;
  const q = conn('domains').whereIn('id', due.map((d) => toNumber(d.id))).where({ status: 'active', auto_renew: true }).select('id');
  const ids = new Set(((await (isSqlite(conn) ? q : q.forUpdate())) as { id: number }[]).map((r) => toNumber(r.id)));
  return due.filter((d) => ids.has(toNumber(d.id)));
}

/** Dry run: the charges that do not exist yet, plus the domains' uninvoiced ones, as lines and invoices. */
async function countDry(conn: Conn, run: DomainRenewalRun, charges: DomainCharge[], domainIds: number[]): Promise<void> {
  const existing = new Set(((await conn('billing_charges').whereIn('charge_key', charges.map((c) => c.charge_key)).select('charge_key')) as { charge_key: string }[]).map((r) => r.charge_key));
  const fresh = charges.filter((c) => !existing.has(c.charge_key));
  const pending = (await conn('billing_charges').whereIn('domain_id', domainIds).whereNull('document_id').select('account_id', 'vendor_id', 'currency', 'amount')) as { account_id: number; vendor_id: number; currency: string; amount: unknown }[];
  const groups = new Set<string>();
  for (const c of [...fresh, ...pending]) {
    groups.add(`${toNumber(c.vendor_id)}:${toNumber(c.account_id)}:${c.currency}`);
    run.summary.totals[c.currency] = (run.summary.totals[c.currency] ?? 0n) + toBigInt(c.amount);
  }
  run.summary.charges += fresh.length;
  run.summary.domainRenewals += fresh.length;
  run.summary.lines += fresh.length + pending.length;
  run.summary.invoices += groups.size;
}

/**
 * A paid invoice's domain renewals go to the registrar: one `domain.renew` task per renewal charge on it
 * (dedupe key `domain-renew:<charge key>`, so a second delivery of the payment enqueues nothing), in the
 * transaction that marks the invoice paid. Audited `billing.domain_renewal_paid`, event `domain.renewal_requested`.
 */
export function renewPaidDomains(tasks: Pick<TaskQueue, 'enqueue'>): InvoicesPaidListener {
  return async (tx, events) => {
    const invoiceOf = new Map(events.map((e) => [e.documentId, e]));
    const charges: { document_id: number; charge_key: string; domain_id: number; account_id: number; period_start: unknown; period_end: unknown }[] = [];
    for (let i = 0; i < events.length; i += 500) {
      charges.push(...((await tx('billing_charges')
        .whereIn('document_id', events.slice(i, i + 500).map((e) => e.documentId))
        .where({ kind: 'renewal' })
        .whereNotNull('domain_id')
        .orderBy('id')
        .select('document_id', 'charge_key', 'domain_id', 'account_id', 'period_start', 'period_end')) as typeof charges));
    }
    for (const c of charges) {
      const e = invoiceOf.get(toNumber(c.document_id))!;
      const domainId = toNumber(c.domain_id);
      // Declined (auto-renew switched off while unpaid, credited): the invoice is paid by that credit, not for it.
      if (c.charge_key !== domainRenewalChargeKey(domainId, toNumber(c.period_start))) continue;
      const payload: DomainRenewalTaskPayload = { domainId, expiresAt: toNumber(c.period_start), years: 1, chargeKey: c.charge_key, invoiceId: e.documentId };
      const dedupeKey = `domain-renew:${c.charge_key}`;
      if (await tx('tasks').where({ dedupe_key: dedupeKey }).first('id')) continue;
      const taskId = await tasks.enqueue(tx, { kind: DOMAIN_RENEW_TASK, queue: ORDERS_QUEUE, payload: { ...payload }, accountId: toNumber(c.account_id), objectType: 'domain', objectId: domainId, dedupeKey });
      await recordChange(tx, billingActor(e.vendorId), e.paidAt, {
        operation: 'billing.domain_renewal_paid',
        objectType: 'domain',
        objectId: domainId,
        details: { invoiceId: e.documentId, invoiceNumber: e.number, chargeKey: c.charge_key, taskId },
        event: {
          name: 'domain.renewal_requested',
          accountId: toNumber(c.account_id),
          payload: { domainId, invoiceId: e.documentId, taskId, expiresAt: new Date(toNumber(c.period_start)).toISOString(), renewsTo: new Date(toNumber(c.period_end)).toISOString() },
        },
      });
    }
  };
}

/**
 * Auto-renew switched off (DomainsService.setAutoRenew): the domain's renewals the billing run put on an invoice that
 * is still open are declined, in the caller's transaction. Each charge is re-keyed `<key>:declined:<charge id>` (so
 * the invoice-paid listener does not renew it, and a run after auto-renew is switched on again bills that expiry
 * anew), then credited on its invoice: one credit memo of the line with the invoice's tax on it (withInvoiceTax), at
 * most what of the invoice is not yet credited, applied to it (paid when nothing else is open on it, so dunning for
 * it ends). A renewal on a paid invoice is not undone. Answers the memo ids.
 */
export async function declineUnpaidDomainRenewals(tx: Tx, ledger: Pick<OrderLedger, 'memoTx' | 'invoiceCreditTx'>, actor: Actor, at: Date, domainId: number, name: string): Promise<number[]> {
  const read = tx('billing_charges as c')
    .join('documents as d', 'd.id', 'c.document_id')
    .where({ 'c.domain_id': domainId, 'c.kind': 'renewal', 'd.status': 'open' })
    .whereNot('c.charge_key', 'like', '%:declined:%')
    .orderBy('c.id')
    .select('c.id', 'c.charge_key', 'c.document_id', 'c.account_id', 'c.amount');
  const charges = (await (isSqlite(tx) ? read : read.forUpdate())) as { id: number; charge_key: string; document_id: number; account_id: number; amount: unknown }[];
  const memos: number[] = [];
  for (const c of charges) {
    await tx('billing_charges').where({ id: c.id }).update({ charge_key: declinedChargeKey(c.charge_key, toNumber(c.id)) });
    const share = { invoiceId: toNumber(c.document_id), accountId: toNumber(c.account_id), net: toBigInt(c.amount) };
    const memo = await creditInvoiceShare(tx, ledger, actor, at, share, (number) => `Domain ${name}: renewal declined, auto-renew switched off (credit of ${number})`);
    if (memo !== null) memos.push(memo);
  }
  return memos;
}
