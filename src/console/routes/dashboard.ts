import type { ConsoleRoutes } from '../app';
import { toBigInt } from '../../db/knex';
import { inSubtree } from './scope';

/** The day's view: what waits for a person, what broke, what came in this month, what runs. */
export function dashboardPages(r: ConsoleRoutes): void {
  r.get('/', async (page) => {
    const { db, clock } = page.services.deps;
    const actor = page.actor;
    const waiting = await inSubtree(db('orders as o').join('accounts as a', 'a.id', 'o.account_id'), actor)
      .whereIn('o.status', ['WA', 'SS'])
      .andWhereNot('o.account_id', actor.accountId)
      .orderBy('o.id', 'desc')
      .limit(10)
      .select('o.id', 'o.order_number', 'o.status', 'o.total', 'o.currency', 'o.created_at', 'a.company_name', 'a.id as account_id');
    const failed = await page.services.tasks.list(actor, { status: 'failed', pageSize: 10 });
    const now = clock.now();
    const monthStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
    // Revenue: money received from the accounts below the operator (its own payments upward are not its revenue).
    const revenueRows = (await inSubtree(db('payments as p').join('accounts as a', 'a.id', 'p.account_id'), actor)
      .andWhereNot('p.account_id', actor.accountId)
      .andWhere('p.status', 'success')
      .andWhere('p.created_at', '>=', monthStart)
      .whereIn('p.kind', ['purchase', 'capture', 'refund'])
      .groupBy('p.currency', 'p.kind')
      .select('p.currency', 'p.kind')
      .sum({ amount: 'p.amount' })) as { currency: string; kind: string; amount: unknown }[];
    const revenue = new Map<string, bigint>();
    for (const row of revenueRows) {
      const amount = toBigInt(row.amount ?? 0);
      revenue.set(row.currency, (revenue.get(row.currency) ?? 0n) + (row.kind === 'refund' ? -amount : amount));
    }
    const bySubStatus = (await inSubtree(db('subscriptions as s').join('accounts as a', 'a.id', 's.account_id'), actor)
      .groupBy('s.status')
      .orderBy('s.status')
      .select('s.status')
      .count({ n: '*' })) as { status: number; n: number | string }[];
    await page.render('dashboard.njk', {
      title: 'Dashboard',
      waiting,
      failed,
      month: new Date(monthStart).toISOString().slice(0, 7),
      revenue: [...revenue.entries()].map(([currency, amount]) => ({ currency, amount })),
      subscriptions: bySubStatus.map((s) => ({ status: Number(s.status), n: Number(s.n) })),
    });
  });
}
