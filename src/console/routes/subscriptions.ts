import type { ConsoleRoutes } from '../app';
import type { Page } from '../page';
import { SUBSCRIPTION_STATUS } from '../../subscriptions/subscriptions-service';
import { SubscriptionActionsService, type ServiceAction } from '../../subscriptions/service-actions';
import { likeTerm, listPage } from '../lists';
import { inSubtree } from './scope';

/** Subscriptions: a filtered list; suspend, resume and terminate through SubscriptionActionsService. */
export function subscriptionPages(r: ConsoleRoutes): void {
  let actions: SubscriptionActionsService | undefined;
  const actionsOf = (page: Page) => (actions ??= new SubscriptionActionsService(page.services.deps, { tasks: page.services.tasks }));

  r.get('/subscriptions', async (page) => {
    const { db } = page.services.deps;
    const q = inSubtree(db('subscriptions as s').join('accounts as a', 'a.id', 's.account_id'), page.actor)
      .join('plans as p', 'p.id', 's.plan_id')
      .select('s.id', 's.name', 's.status', 's.service_status', 's.expiration_date', 's.created_at', 'a.id as account_id', 'a.company_name', 'p.name as plan_name');
    const status = Number(page.query('status'));
    if ((Object.values(SUBSCRIPTION_STATUS) as number[]).includes(status)) q.andWhere('s.status', status);
    const search = page.query('q').trim();
    if (search) q.andWhere((w) => w.whereRaw("s.name LIKE ? ESCAPE '!'", [likeTerm(search)]).orWhereRaw("a.company_name LIKE ? ESCAPE '!'", [likeTerm(search)]).orWhere('s.id', Number(search) || -1));
    const list = await listPage(page, q, {
      sorts: { id: 's.id', name: 's.name', status: 's.status', service: 's.service_status', account: 'a.company_name', plan: 'p.name', expires: 's.expiration_date' },
      defaultSort: 'id',
      defaultDir: 'desc',
      filters: ['status', 'q'],
      tieBreaker: 's.id',
    });
    await page.render('subscriptions.njk', { title: 'Subscriptions', list, statuses: Object.entries(SUBSCRIPTION_STATUS).map(([name, code]) => ({ name, code })), status: page.query('status'), q: search });
  });

  const show = async (page: Page, status = 200) => {
    const sub = await page.services.subscriptions.get(page.actor, page.param('id'));
    const account = await page.services.accounts.get(page.actor, sub.accountId);
    const plan = await page.services.catalog.getPlan(page.actor, sub.planId).catch(() => null);
    const provisioning = await actionsOf(page).provisioningStatus(page.actor, sub.subscriptionId);
    await page.render('subscription.njk', { title: `Subscription ${sub.subscriptionId}`, sub, account, plan, provisioning }, status);
  };
  r.get('/subscriptions/:id', (page) => show(page));

  for (const action of ['suspend', 'resume', 'terminate'] as ServiceAction[]) {
    r.post(`/subscriptions/:id/${action}`, async (page) => {
      const id = page.param('id');
      if (action === 'terminate' && !page.checkbox('confirm')) {
        page.errors.confirm = 'Tick the box to confirm: terminating removes the service.';
        page.formError = page.errors.confirm;
        return show(page, 422);
      }
      const done = await page.attempt(() => actionsOf(page).request(page.actor, id, action, { reason: page.text('reason') ?? `${action} from the console` }));
      if (!done) return show(page, 422);
      await page.redirect(`/console/subscriptions/${id}`, { kind: 'ok', text: `The ${action} request is queued as task ${done.taskId}; the page shows its progress.` });
    });
  }
}
