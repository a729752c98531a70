import type { ConsoleRoutes } from '../app';
import { ORDER_STATUSES } from '../../orders/orders-service';
import { ORDER_TYPES } from '../../domain/workflow';
import { likeTerm, listPage } from '../lists';
import { ORDER_STATUS_NAMES } from '../render';
import { inSubtree } from './scope';

/** Orders: filter by status and type, the order's workflow and history, approve and reject. */
export function orderPages(r: ConsoleRoutes): void {
  r.get('/orders', async (page) => {
    const { db } = page.services.deps;
    const q = inSubtree(db('orders as o').join('accounts as a', 'a.id', 'o.account_id'), page.actor).select(
      'o.id',
      'o.order_number',
      'o.type',
      'o.status',
      'o.step',
      'o.total',
      'o.currency',
      'o.created_at',
      'a.id as account_id',
      'a.company_name',
    );
    if ((ORDER_STATUSES as readonly string[]).includes(page.query('status'))) q.andWhere('o.status', page.query('status'));
    if ((ORDER_TYPES as readonly string[]).includes(page.query('type'))) q.andWhere('o.type', page.query('type'));
    const search = page.query('q').trim();
    if (search) q.andWhere((w) => w.whereRaw("o.order_number LIKE ? ESCAPE '!'", [likeTerm(search)]).orWhereRaw("a.company_name LIKE ? ESCAPE '!'", [likeTerm(search)]));
    const list = await listPage(page, q, {
      sorts: { id: 'o.id', number: 'o.order_number', status: 'o.status', type: 'o.type', total: 'o.total', account: 'a.company_name', created: 'o.created_at' },
      defaultSort: 'id',
      defaultDir: 'desc',
      filters: ['status', 'type', 'q'],
      tieBreaker: 'o.id',
    });
    await page.render('orders.njk', {
      title: 'Orders',
      list,
      statuses: ORDER_STATUSES.map((s) => ({ code: s, name: ORDER_STATUS_NAMES[s] })),
      types: ORDER_TYPES,
      status: page.query('status'),
      type: page.query('type'),
      q: search,
    });
  });

  const show = async (page: Parameters<Parameters<ConsoleRoutes['get']>[1]>[0], status = 200) => {
    const { orders, workflows, fraud, accounts } = page.services;
    const order = await orders.get(page.actor, page.param('id'));
    // The workflow may belong to a vendor above the operator (a reseller's orders run the provider's default):
    // its steps are then shown from the order's history alone.
    const workflow = await workflows.get(page.actor, order.workflowId).catch(() => null);
    const account = await accounts.get(page.actor, order.accountId);
    const checks = await fraud.checksOf(page.actor, order.orderId).catch(() => []);
    const reached = new Set(order.history.map((h) => h.step));
    const steps = workflow
      ? Object.entries(workflow.definition.steps).map(([name, s]) => ({ name, action: s.action, next: s.next, reached: reached.has(name), current: name === order.step }))
      : [];
    const canDecide = order.status === 'WA' && order.accountId !== page.actor.accountId;
    await page.render('order.njk', { title: `Order ${order.orderNumber}`, order, workflow, steps, account, checks, canDecide }, status);
  };
  r.get('/orders/:id', (page) => show(page));

  for (const decision of ['approve', 'reject'] as const) {
    r.post(`/orders/:id/${decision}`, async (page) => {
      const id = page.param('id');
      const done = await page.attempt(() => page.services.orders[decision](page.actor, id, page.text('comment')));
      if (!done) return show(page, 422);
      await page.redirect(`/console/orders/${id}`, { kind: 'ok', text: `Order ${done.orderNumber} ${decision === 'approve' ? 'approved' : 'rejected'}; it is now ${ORDER_STATUS_NAMES[done.status] ?? done.status}.` });
    });
  }
}
