import { scopedAccount } from '../accounts/scope';
import { recordChange } from '../audit/record-change';
import type { Actor, Deps } from '../context';
import { money, toBigInt, toOptionalNumber, type Conn } from '../db/knex';
import { inTransaction } from '../db/transaction';
import { invalid, notAllowed } from '../domain/errors';
import { positiveId } from '../domain/fields';

/** A vendor's billing policy. A vendor without a billing_settings row gets DEFAULT_BILLING_SETTINGS. */
export interface BillingSettings {
  /** Renewal invoices are issued this many days before a subscription expires. */
  renewDaysBefore: number;
  /** Domain renewals (auto-renew domains) are invoiced this many days before the domain expires. */
  domainRenewDaysBefore: number;
  /** An invoice's due date is its issue date plus this many days. */
  invoiceDueDays: number;
  /** Unpaid this many days past due: the subscription is graced. */
  graceDays: number;
  /** ... suspended (through the service gate). */
  suspendDays: number;
  /** ... terminated. */
  terminateDays: number;
  /** Auto-pay retries, days after the first try. */
  autopayRetryDays: number[];
  /** Late fee in minor units of the invoice's currency; null: none. */
  lateFee: bigint | null;
  /** Days past due before the late fee is charged. */
  lateFeeDays: number | null;
  /** IANA zone for "which day is today" and for printing dates. */
  timeZone: string;
}

export const DEFAULT_BILLING_SETTINGS: Readonly<BillingSettings> = Object.freeze({
  renewDaysBefore: 7,
  domainRenewDaysBefore: 30,
  invoiceDueDays: 7,
  graceDays: 3,
  suspendDays: 10,
  terminateDays: 30,
  autopayRetryDays: [1, 3, 7],
  lateFee: null,
  lateFeeDays: null,
  timeZone: 'UTC',
});

interface SettingsRow {
  vendor_id: number;
  renew_days_before: number;
  domain_renew_days_before: number;
  invoice_due_days: number;
  grace_days: number;
  suspend_days: number;
  terminate_days: number;
  autopay_retry_days: string;
  late_fee: unknown;
  late_fee_days: number | null;
  time_zone: string;
}

function fromRow(row: SettingsRow): BillingSettings {
  return {
    renewDaysBefore: Number(row.renew_days_before),
    domainRenewDaysBefore: row.domain_renew_days_before === null || row.domain_renew_days_before === undefined ? DEFAULT_BILLING_SETTINGS.domainRenewDaysBefore : Number(row.domain_renew_days_before),
    invoiceDueDays: Number(row.invoice_due_days),
    graceDays: Number(row.grace_days),
    suspendDays: Number(row.suspend_days),
    terminateDays: Number(row.terminate_days),
    autopayRetryDays: JSON.parse(row.autopay_retry_days) as number[],
    lateFee: row.late_fee === null || row.late_fee === undefined ? null : toBigInt(row.late_fee),
    lateFeeDays: toOptionalNumber(row.late_fee_days),
    timeZone: row.time_zone,
  };
}

function defaults(): BillingSettings {
  return { ...DEFAULT_BILLING_SETTINGS, autopayRetryDays: [...DEFAULT_BILLING_SETTINGS.autopayRetryDays] };
}

/** The vendor's settings, or the defaults. No scoping: for the billing run and the documents service. */
export async function billingSettingsOf(conn: Conn, vendorId: number): Promise<BillingSettings> {
  const row = (await conn('billing_settings').where({ vendor_id: vendorId }).first()) as SettingsRow | undefined;
  return row ? fromRow(row) : defaults();
}

/** Settings of several vendors at once (vendors without a row get the defaults). */
export async function billingSettingsOfMany(conn: Conn, vendorIds: readonly number[]): Promise<Map<number, BillingSettings>> {
  const out = new Map<number, BillingSettings>();
  const unique = [...new Set(vendorIds)];
  for (let i = 0; i < unique.length; i += 500) {
    const rows = (await conn('billing_settings').whereIn('vendor_id', unique.slice(i, i + 500))) as SettingsRow[];
    for (const row of rows) out.set(Number(row.vendor_id), fromRow(row));
  }
  for (const id of unique) if (!out.has(id)) out.set(id, defaults());
  return out;
}

function days(value: unknown, field: string, max = 3650): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw invalid(field, `${field} must be a whole number of days from 0 to ${max}.`);
  }
  return value;
}

function validTimeZone(value: unknown): string {
  if (typeof value !== 'string' || !value) throw invalid('timeZone', 'timeZone must be an IANA time zone such as Europe/Berlin.');
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: value });
  } catch {
    throw invalid('timeZone', `timeZone '${value}' is not an IANA time zone such as Europe/Berlin.`);
  }
  return value;
}

/** Reads and changes a vendor's billing settings (the vendor itself or an account above it). */
export class BillingSettingsService {
  constructor(private readonly deps: Deps) {}

  async get(actor: Actor, vendorId: number): Promise<BillingSettings> {
    positiveId(vendorId, 'vendorId');
    await scopedAccount(this.deps.db, actor, vendorId);
    return billingSettingsOf(this.deps.db, vendorId);
  }

  /** Changes the given fields; the others keep their current (or default) value. */
  async set(actor: Actor, vendorId: number, patch: Partial<BillingSettings>): Promise<BillingSettings> {
    positiveId(vendorId, 'vendorId');
    return inTransaction(this.deps.db, async (tx) => {
      const vendor = await scopedAccount(tx, actor, vendorId);
      if (vendor.type === 'customer') throw notAllowed(`Account ${vendorId} is a customer; billing settings belong to a provider or reseller.`, 'vendorId');
      const s = { ...(await billingSettingsOf(tx, vendorId)) };
      if (patch.renewDaysBefore !== undefined) s.renewDaysBefore = days(patch.renewDaysBefore, 'renewDaysBefore', 365);
      if (patch.domainRenewDaysBefore !== undefined) s.domainRenewDaysBefore = days(patch.domainRenewDaysBefore, 'domainRenewDaysBefore', 365);
      if (patch.invoiceDueDays !== undefined) s.invoiceDueDays = days(patch.invoiceDueDays, 'invoiceDueDays', 365);
      if (patch.graceDays !== undefined) s.graceDays = days(patch.graceDays, 'graceDays');
      if (patch.suspendDays !== undefined) s.suspendDays = days(patch.suspendDays, 'suspendDays');
      if (patch.terminateDays !== undefined) s.terminateDays = days(patch.terminateDays, 'terminateDays');
      if (patch.autopayRetryDays !== undefined) {
        if (!Array.isArray(patch.autopayRetryDays) || patch.autopayRetryDays.length > 10) {
          throw invalid('autopayRetryDays', 'autopayRetryDays must be a list of at most 10 day counts, e.g. [1, 3, 7].');
        }
        s.autopayRetryDays = patch.autopayRetryDays.map((d) => days(d, 'autopayRetryDays', 365));
        for (let i = 1; i < s.autopayRetryDays.length; i++) {
          if (s.autopayRetryDays[i]! <= s.autopayRetryDays[i - 1]!) throw invalid('autopayRetryDays', 'autopayRetryDays must be increasing, e.g. [1, 3, 7].');
        }
      }
      if (patch.lateFee !== undefined) {
        if (patch.lateFee !== null && (typeof patch.lateFee !== 'bigint' || patch.lateFee <= 0n)) {
          throw invalid('lateFee', 'lateFee must be a positive amount in minor units, or null for no late fee.');
        }
        s.lateFee = patch.lateFee;
      }
      if (patch.lateFeeDays !== undefined) s.lateFeeDays = patch.lateFeeDays === null ? null : days(patch.lateFeeDays, 'lateFeeDays', 365);
      if (patch.timeZone !== undefined) s.timeZone = validTimeZone(patch.timeZone);
      if (!(s.graceDays <= s.suspendDays && s.suspendDays <= s.terminateDays)) {
        throw invalid('suspendDays', 'The dunning steps must come in order: graceDays <= suspendDays <= terminateDays.');
      }
      if (s.lateFee !== null && s.lateFeeDays === null) s.lateFeeDays = 0;
      const at = this.deps.clock.now();
      const row = {
        renew_days_before: s.renewDaysBefore,
        domain_renew_days_before: s.domainRenewDaysBefore,
        invoice_due_days: s.invoiceDueDays,
        grace_days: s.graceDays,
        suspend_days: s.suspendDays,
        terminate_days: s.terminateDays,
        autopay_retry_days: JSON.stringify(s.autopayRetryDays),
        late_fee: s.lateFee === null ? null : money(s.lateFee),
        late_fee_days: s.lateFeeDays,
        time_zone: s.timeZone,
        updated_at: at.getTime(),
      };
      const updated = await tx('billing_settings').where({ vendor_id: vendorId }).update(row);
      if (!updated) await tx('billing_settings').insert({ vendor_id: vendorId, ...row });
      await recordChange(tx, actor, at, {
        operation: 'billing.settings.set',
        objectType: 'account',
        objectId: vendorId,
        details: { ...s },
        event: { name: 'billing.settings_changed', accountId: vendorId, payload: { vendorId } },
      });
      return s;
    });
  }
}
