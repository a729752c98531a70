import { recordChange } from '../audit/record-change';
import { scopedVendor } from '../accounts/scope';
import type { Actor, Deps } from '../context';
import { toBool, toNumber, type Conn } from '../db/knex';
import { inTransaction } from '../db/transaction';
import { invalid } from '../domain/errors';
import { positiveId } from '../domain/fields';
import { emitEvent } from '../events/outbox';
import { isUniqueViolation } from '../idempotency';

/** expiration: subscriptions (event subscription.expiring); domain_expiration: domains (event domain.expiring). */
export const SCHEDULE_BASES = ['expiration', 'domain_expiration'] as const;
export const MAX_DAYS_BEFORE = 365;
const DAY_MS = 86_400_000;
/** Subscriptions that can still expire: trial (15), active (30), graced (40). */
const LIVE_STATUSES = [15, 30, 40];

export interface NotificationSchedule {
  scheduleId: number;
  vendorAccountId: number;
  basis: (typeof SCHEDULE_BASES)[number];
  daysBefore: number;
  enabled: boolean;
}

interface ScheduleRow {
  id: number;
  vendor_id: number;
  basis: (typeof SCHEDULE_BASES)[number];
  days_before: number;
  enabled: unknown;
  created_at: number;
}


/**
 * Notification schedules relative to a date: "7 and 1 days before expiration". The scan (hourly in the server)
 * emits `subscription.expiring` once per (subscription, offset, expiration date) for the subscriptions of each
 * scheduling vendor's subtree; actions on that event (a notification, a webhook) do the telling. Thresholds need
 * no schedule: the billing engine emits `usage.threshold_reached`, and an action can be attached to it.
 */
export class NotificationSchedulesService {
  constructor(private readonly deps: Deps) {}

  /** Sets a vendor's offsets for a basis (replacing the previous ones), e.g. {basis: 'expiration', daysBefore: [7, 1]}. */
  async set(actor: Actor, input: { vendorAccountId?: number; basis?: string; daysBefore?: unknown }): Promise<NotificationSchedule[]> {
    const vendor = await scopedVendor(this.deps.db, actor, input.vendorAccountId, 'keep notification schedules');
    const vendorId = vendor.id;
    const basis = input.basis ?? 'expiration';
    if (!SCHEDULE_BASES.includes(basis as (typeof SCHEDULE_BASES)[number])) throw invalid('basis', `basis must be one of ${SCHEDULE_BASES.join(', ')}.`);
    if (!Array.isArray(input.daysBefore)) throw invalid('daysBefore', 'daysBefore must be a list of whole numbers of days, e.g. [7, 1].');
    const days = [...new Set(input.daysBefore.map((d) => positiveId(d, 'daysBefore')))].sort((a, b) => b - a);
    if (days.some((d) => d > MAX_DAYS_BEFORE)) throw invalid('daysBefore', `daysBefore may be at most ${MAX_DAYS_BEFORE}.`);
    return inTransaction(this.deps.db, async (tx) => {
      const now = this.deps.clock.now();
      await tx('notification_schedules').where({ vendor_id: vendorId, basis }).del();
      for (const d of days) await tx('notification_schedules').insert({ vendor_id: vendorId, basis, days_before: d, enabled: true, created_at: now.getTime() });
      await recordChange(tx, actor, now, {
        operation: 'SetNotificationSchedule',
        objectType: 'account',
        objectId: vendorId,
        details: { basis, daysBefore: days },
        event: { name: 'notification_schedule.set', accountId: vendorId, payload: { vendorAccountId: vendorId, basis, daysBefore: days } },
      });
      return this.list(actor, vendorId, tx);
    });
  }

  async list(actor: Actor, vendorAccountId?: number, conn: Conn = this.deps.db): Promise<NotificationSchedule[]> {
    const q = conn('notification_schedules as s').join('accounts as a', 'a.id', 's.vendor_id').where('a.path', 'like', `${actor.accountPath}%`);
    if (vendorAccountId !== undefined) q.andWhere('s.vendor_id', positiveId(vendorAccountId, 'vendorAccountId'));
    const rows = (await q.orderBy(['s.vendor_id', { column: 's.days_before', order: 'desc' }]).select('s.*')) as ScheduleRow[];
    return rows.map((r) => ({ scheduleId: toNumber(r.id), vendorAccountId: toNumber(r.vendor_id), basis: r.basis, daysBefore: toNumber(r.days_before), enabled: toBool(r.enabled) }));
  }

  /**
   * Emits subscription.expiring for every (subscription, offset) and domain.expiring for every (domain, offset) now
   * due and not yet sent; returns how many. Safe to run from several processes: the unique send row decides, and its
   * event is in the same transaction.
   */
  async scan(): Promise<number> {
    const now = this.deps.clock.now().getTime();
    let emitted = 0;
    for (const basis of SCHEDULE_BASES) emitted += await this.scanBasis(now, BASES[basis]);
    return emitted;
  }

  /**
   * One basis: for each enabled offset of each vendor, the objects of the vendor's subtree whose date falls within
   * it, the nearest due offset only (an object found 12 hours before its date gets the 1-day reminder, not the
   * 7-day one too), each once per (object, offset, date): a renewed object is reminded again for its new date.
   */
  private async scanBasis(now: number, basis: ScanBasis): Promise<number> {
    const { db } = this.deps;
    const schedules = (await db('notification_schedules as s').join('accounts as a', 'a.id', 's.vendor_id').where('s.basis', basis.name).select('s.*', 'a.path as vendor_path')) as (ScheduleRow & { vendor_path: string })[];
    const live = schedules.filter((x) => toBool(x.enabled));
    let emitted = 0;
    for (const s of live) {
      const days = toNumber(s.days_before);
      const nearer = live.filter((x) => toNumber(x.vendor_id) === toNumber(s.vendor_id) && toNumber(x.days_before) < days).map((x) => toNumber(x.days_before));
      const from = nearer.length ? now + Math.max(...nearer) * DAY_MS : now;
      for (const row of await basis.due(db, s.vendor_path, from, now + days * DAY_MS)) {
        const send = { [basis.objectColumn]: row.id, days_before: days, [basis.dateColumn]: row.date };
        if (await db(basis.sendTable).where(send).first('id')) continue;
        try {
          await inTransaction(db, async (tx) => {
            await tx(basis.sendTable).insert({ ...send, created_at: now });
            await emitEvent(tx, new Date(now), { name: basis.event, objectType: basis.objectType, objectId: row.id, accountId: row.accountId, payload: { ...row.payload, daysBefore: days } });
          });
          emitted++;
        } catch (e) {
          if (!isUniqueViolation(e)) throw e; // another process sent this one
        }
      }
    }
    return emitted;
  }
}

/** An object a schedule reminds of: its id, account, date (ms) and the event's payload (daysBefore is added). */
interface DueObject {
  id: number;
  accountId: number;
  date: number;
  payload: Record<string, unknown>;
}

interface ScanBasis {
  name: (typeof SCHEDULE_BASES)[number];
  event: string;
  objectType: string;
  /** The table of reminders sent, unique on (object, days_before, date). */
  sendTable: string;
  objectColumn: string;
  dateColumn: string;
  /** The live objects of the subtree at `vendorPath` whose date is in (from, to]. */
  due(db: Conn, vendorPath: string, from: number, to: number): Promise<DueObject[]>;
}

const BASES: Record<(typeof SCHEDULE_BASES)[number], ScanBasis> = {
  expiration: {
    name: 'expiration',
    event: 'subscription.expiring',
    objectType: 'subscription',
    sendTable: 'schedule_sends',
    objectColumn: 'subscription_id',
    dateColumn: 'expiration_date',
    async due(db, vendorPath, from, to) {
      const rows = (await db('subscriptions as sub')
        .join('accounts as a', 'a.id', 'sub.account_id')
        .where('a.path', 'like', `${vendorPath}%`)
        .whereIn('sub.status', LIVE_STATUSES)
        .whereNotNull('sub.expiration_date')
        .andWhere('sub.expiration_date', '>', from)
        .andWhere('sub.expiration_date', '<=', to)
        .select('sub.id', 'sub.account_id', 'sub.name', 'sub.plan_id', 'sub.expiration_date')) as { id: number; account_id: number; name: string; plan_id: number; expiration_date: number }[];
      return rows.map((r) => {
        const date = toNumber(r.expiration_date);
        return { id: toNumber(r.id), accountId: toNumber(r.account_id), date, payload: { subscriptionId: toNumber(r.id), accountId: toNumber(r.account_id), name: r.name, planId: toNumber(r.plan_id), expiresAt: new Date(date).toISOString() } };
      });
    },
  },
  domain_expiration: {
    name: 'domain_expiration',
    event: 'domain.expiring',
    objectType: 'domain',
    sendTable: 'domain_reminder_sends',
    objectColumn: 'domain_id',
    dateColumn: 'expires_at',
    async due(db, vendorPath, from, to) {
      const rows = (await db('domains as d')
        .join('accounts as a', 'a.id', 'd.account_id')
        .where('a.path', 'like', `${vendorPath}%`)
        .where('d.status', 'active')
        .whereNotNull('d.expires_at')
        .andWhere('d.expires_at', '>', from)
        .andWhere('d.expires_at', '<=', to)
        .select('d.id', 'd.account_id', 'd.name', 'd.expires_at', 'd.auto_renew')) as { id: number; account_id: number; name: string; expires_at: number; auto_renew: unknown }[];
      return rows.map((r) => {
        const date = toNumber(r.expires_at);
        return { id: toNumber(r.id), accountId: toNumber(r.account_id), date, payload: { domainId: toNumber(r.id), accountId: toNumber(r.account_id), name: r.name, expiresAt: new Date(date).toISOString(), autoRenew: toBool(r.auto_renew) } };
      });
    },
  },
};
