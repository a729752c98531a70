import { recordChange } from '../audit/record-change';
import { scopedVendor } from '../accounts/scope';
import type { Actor, Deps } from '../context';
import { toBool, toNumber, type Conn } from '../db/knex';
import { inTransaction } from '../db/transaction';
import { invalid } from '../domain/errors';
import { positiveId } from '../domain/fields';
import { emitEvent } from '../events/outbox';

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

function isUniqueViolation(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err.code === 'ER_DUP_ENTRY' || err.code === 'SQLITE_CONSTRAINT_UNIQUE' || /UNIQUE constraint failed/.test(err.message ?? '');
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
   * Emits subscription.expiring for every (subscription, offset) now due and not yet sent; returns how many.
   * Safe to run from several processes: the unique send row decides, and its event is in the same transaction.
   */
  async scan(): Promise<number> {
    const { db, clock } = this.deps;
    const now = clock.now().getTime();
    const schedules = (await db('notification_schedules as s').join('accounts as a', 'a.id', 's.vendor_id').where('s.basis', 'expiration').select('s.*', 'a.path as vendor_path')) as (ScheduleRow & { vendor_path: string })[];
    let emitted = await this.scanDomains(now);
    const live = schedules.filter((x) => toBool(x.enabled));
    for (const s of live) {
      const days = toNumber(s.days_before);
      // Only the nearest offset that is due: a subscription found 12 hours before expiry gets the 1-day reminder,
      // not the 7-day one too.
      const nearer = live.filter((x) => toNumber(x.vendor_id) === toNumber(s.vendor_id) && toNumber(x.days_before) < days).map((x) => toNumber(x.days_before));
      const from = nearer.length ? now + Math.max(...nearer) * DAY_MS : now;
      const subs = (await db('subscriptions as sub')
        .join('accounts as a', 'a.id', 'sub.account_id')
        .where('a.path', 'like', `${s.vendor_path}%`)
        .whereIn('sub.status', LIVE_STATUSES)
        .whereNotNull('sub.expiration_date')
        .andWhere('sub.expiration_date', '>', from)
        .andWhere('sub.expiration_date', '<=', now + days * DAY_MS)
        .select('sub.id', 'sub.account_id', 'sub.name', 'sub.plan_id', 'sub.expiration_date')) as { id: number; account_id: number; name: string; plan_id: number; expiration_date: number }[];
      for (const sub of subs) {
        const expiration = toNumber(sub.expiration_date);
        const already = await db('schedule_sends').where({ subscription_id: sub.id, days_before: days, expiration_date: expiration }).first('id');
        if (already) continue;
        try {
          await inTransaction(db, async (tx) => {
            await tx('schedule_sends').insert({ subscription_id: sub.id, days_before: days, expiration_date: expiration, created_at: now });
            await emitEvent(tx, new Date(now), {
              name: 'subscription.expiring',
              objectType: 'subscription',
              objectId: toNumber(sub.id),
              accountId: toNumber(sub.account_id),
              payload: {
                subscriptionId: toNumber(sub.id),
                accountId: toNumber(sub.account_id),
                name: sub.name,
                planId: toNumber(sub.plan_id),
                expiresAt: new Date(expiration).toISOString(),
                daysBefore: days,
              },
            });
          });
          emitted++;
        } catch (e) {
          if (!isUniqueViolation(e)) throw e; // another process sent this one
        }
      }
    }
    return emitted;
  }

  /**
   * Emits domain.expiring for every (domain, offset, expiry) now due and not yet sent (basis domain_expiration):
   * active domains of each scheduling vendor's subtree, the nearest due offset only, once each
   * (domain_reminder_sends), a renewed domain reminded again for its new expiry.
   */
  private async scanDomains(now: number): Promise<number> {
    const { db } = this.deps;
    const schedules = (await db('notification_schedules as s').join('accounts as a', 'a.id', 's.vendor_id').where('s.basis', 'domain_expiration').select('s.*', 'a.path as vendor_path')) as (ScheduleRow & { vendor_path: string })[];
    const live = schedules.filter((x) => toBool(x.enabled));
    let emitted = 0;
    for (const s of live) {
      const days = toNumber(s.days_before);
      const nearer = live.filter((x) => toNumber(x.vendor_id) === toNumber(s.vendor_id) && toNumber(x.days_before) < days).map((x) => toNumber(x.days_before));
      const from = nearer.length ? now + Math.max(...nearer) * DAY_MS : now;
      const domains = (await db('domains as d')
        .join('accounts as a', 'a.id', 'd.account_id')
        .where('a.path', 'like', `${s.vendor_path}%`)
        .where('d.status', 'active')
        .whereNotNull('d.expires_at')
        .andWhere('d.expires_at', '>', from)
        .andWhere('d.expires_at', '<=', now + days * DAY_MS)
        .select('d.id', 'd.account_id', 'd.name', 'd.expires_at', 'd.auto_renew')) as { id: number; account_id: number; name: string; expires_at: number; auto_renew: unknown }[];
      for (const d of domains) {
        const expiresAt = toNumber(d.expires_at);
        const already = await db('domain_reminder_sends').where({ domain_id: d.id, days_before: days, expires_at: expiresAt }).first('id');
        if (already) continue;
        try {
          await inTransaction(db, async (tx) => {
            await tx('domain_reminder_sends').insert({ domain_id: d.id, days_before: days, expires_at: expiresAt, created_at: now });
            await emitEvent(tx, new Date(now), {
              name: 'domain.expiring',
              objectType: 'domain',
              objectId: toNumber(d.id),
              accountId: toNumber(d.account_id),
              payload: { domainId: toNumber(d.id), accountId: toNumber(d.account_id), name: d.name, expiresAt: new Date(expiresAt).toISOString(), daysBefore: days, autoRenew: toBool(d.auto_renew) },
            });
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
