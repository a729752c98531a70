import type { ConsoleRoutes } from '../app';
import type { Page } from '../page';
import { DOMAIN_SORTS, DOMAIN_STATUSES, type DomainSort } from '../../domains/domains-service';
import { serviceListPage } from '../lists';

/** Domains: the subtree's domains through DomainsService.list (filter by status and name), a domain's page, auto-renew on or off. */
export function domainPages(r: ConsoleRoutes): void {
  r.get('/domains', async (page) => {
    const status = (DOMAIN_STATUSES as readonly string[]).includes(page.query('status')) ? page.query('status') : '';
    const name = page.query('q').trim();
    const list = await serviceListPage(page, (p) => page.services.domains.list(page.actor, { status: status || undefined, nameContains: name, ...p }), {
      sorts: Object.keys(DOMAIN_SORTS) as DomainSort[],
      defaultSort: 'name',
      filters: ['status', 'q'],
    });
    await page.render('domains.njk', { title: 'Domains', list, statuses: DOMAIN_STATUSES, status, q: name });
  });

  const show = async (page: Page, status = 200) => {
    const { domains, accounts, orders, pluginInstances } = page.services;
    const domain = await domains.get(page.actor, { domainId: page.param('id') });
    const account = await accounts.get(page.actor, domain.accountId);
    // The registrar instance and the order may be outside what the operator opens (a reseller's customer's domain
    // registered through the provider's registrar): shown by number then.
    const registrar = await pluginInstances.get(page.actor, domain.registrarInstanceId).catch(() => null);
    const order = domain.orderId ? await orders.get(page.actor, domain.orderId).catch(() => null) : null;
    await page.render('domain.njk', { title: domain.name, domain, account, registrar, order }, status);
  };
  r.get('/domains/:id', (page) => show(page));

  r.post('/domains/:id/auto-renew', async (page) => {
    const id = page.param('id');
    const on = page.form.autoRenew === 'on';
    const done = await page.attempt(() => page.services.domains.setAutoRenew(page.actor, { domainId: id }, on));
    if (!done) return show(page, 422);
    await page.redirect(`/console/domains/${id}`, { kind: 'ok', text: `Auto-renew of ${done.name} is ${done.autoRenew ? 'on' : 'off'}.` });
  });
}
