import type { ConsoleRoutes } from '../app';
import type { Page } from '../page';
import { parseAmount } from '../../domain/money';
import { invalid, notFound } from '../../domain/errors';
import { PERIOD_UNITS } from '../../domain/period';
import { likeTerm, listPage } from '../lists';
import { inSubtree } from './scope';
import { ancestorIds } from '../../accounts/scope';
import { catalogItemPages } from './catalog-items';

/** A decimal amount typed by a person, in the plan's currency, as minor units; empty = 0. */
function amount(page: Page, name: string, currency: string): bigint {
  const text = page.text(name);
  if (text === undefined) return 0n;
  return parseAmount(text, currency, name);
}

function whole(page: Page, name: string, fallback?: number | null): number | null | undefined {
  const text = page.text(name);
  if (text === undefined) return fallback;
  if (!/^\d{1,12}$/.test(text)) throw invalid(name, `${name} must be a whole number.`);
  return Number(text);
}

/** Catalog: resources and templates (catalog-items.ts), plans (list, create, edit), their periods and resource rates. */
export function catalogPages(r: ConsoleRoutes): void {
  catalogItemPages(r);
  r.get('/catalog', async (page) => {
    const { db } = page.services.deps;
    const [resources, templates] = await Promise.all([page.services.catalog.listResources(page.actor), page.services.catalog.listTemplates(page.actor)]);
    const q = inSubtree(db('plans as p').join('accounts as a', 'a.id', 'p.vendor_id'), page.actor)
      .join('service_templates as t', 't.id', 'p.template_id')
      .select('p.id', 'p.name', 'p.category', 'p.published', 'p.resellable', 'p.trial', 'p.currency', 'a.company_name as vendor', 't.name as template');
    const search = page.query('q').trim();
    if (search) q.andWhere((w) => w.whereRaw("p.name LIKE ? ESCAPE '!'", [likeTerm(search)]).orWhereRaw("p.category LIKE ? ESCAPE '!'", [likeTerm(search)]));
    if (page.query('published') === 'yes') q.andWhere('p.published', true);
    if (page.query('published') === 'no') q.andWhere('p.published', false);
    const list = await listPage<Record<string, unknown>>(page, q, {
      sorts: { id: 'p.id', name: 'p.name', category: 'p.category', template: 't.name', vendor: 'a.company_name' },
      defaultSort: 'id',
      filters: ['q', 'published'],
      tieBreaker: 'p.id',
    });
    // What the operator's account sells now: its own published plans and those it may resell from above.
    const sellable = await page.services.catalog.listPlans(page.actor, { pageSize: 100 });
    const rq = page.query('rq').trim().toLowerCase();
    // listResources gives the subtree's own resources (editable) and those of the vendors above (read only).
    const ancestors = ancestorIds(page.actor.accountPath);
    await page.render('catalog.njk', {
      title: 'Catalog',
      list: { ...list, rows: list.rows.map((p) => ({ ...p, published: !!Number(p.published), resellable: !!Number(p.resellable) })) },
      resources: (rq ? resources.filter((x) => `${x.name} ${x.unit} ${x.code ?? ''}`.toLowerCase().includes(rq)) : resources).map((x) => ({ ...x, editable: !ancestors.includes(x.vendorAccountId) })),
      templates: rq ? templates.filter((t) => `${t.name} ${t.serviceGate}`.toLowerCase().includes(rq)) : templates,
      sellable,
      q: search,
      rq: page.query('rq'),
      published: page.query('published'),
    });
  });

  const newForm = async (page: Page, status = 200) =>
    page.render('plan-new.njk', { title: 'New plan', templates: await page.services.catalog.listTemplates(page.actor), chosen: page.form.templateId ?? page.query('templateId') }, status);
  r.get('/catalog/plans/new', (page) => newForm(page));
  r.post('/catalog/plans/new', async (page) => {
    const id = await page.attempt(() =>
      page.services.catalog.createPlan(page.actor, {
        templateId: Number(page.form.templateId),
        name: page.form.name ?? '',
        category: page.text('category'),
        description: page.text('description'),
        resellable: page.checkbox('resellable'),
        published: false,
      }),
    );
    if (id === undefined) return newForm(page, 422);
    await page.redirect(`/console/catalog/plans/${id}`, { kind: 'ok', text: 'Plan created, unpublished. Add a period, then publish it to make it sellable.' });
  });

  const show = async (page: Page, status = 200) => {
    const { catalog, deps } = page.services;
    const plan = await catalog.getPlan(page.actor, page.param('id'));
    const template = await catalog.getTemplate(page.actor, plan.templateId).catch(() => null);
    const sellable = await catalog.isSellable(deps.db, plan.vendorAccountId, plan.planId);
    const owned = (await deps.db('accounts').where({ id: plan.vendorAccountId }).first('path')) as { path: string } | undefined;
    const editable = !!owned && owned.path.startsWith(page.actor.accountPath);
    await page.render('plan.njk', { title: plan.name, plan, template, sellable, editable, units: PERIOD_UNITS }, status);
  };
  r.get('/catalog/plans/:id', (page) => show(page));

  r.post('/catalog/plans/:id', async (page) => {
    const id = page.param('id');
    const done = await page.attempt(() =>
      page.services.catalog.updatePlan(page.actor, id, {
        name: page.form.name ?? '',
        category: page.form.category ?? '',
        description: page.form.description ?? '',
        published: page.checkbox('published'),
        resellable: page.checkbox('resellable'),
      }),
    );
    if (!done) return show(page, 422);
    await page.redirect(`/console/catalog/plans/${id}`, { kind: 'ok', text: `Plan saved${done.published ? ' and published' : ''}.` });
  });

  r.post('/catalog/plans/:id/periods', async (page) => {
    const id = page.param('id');
    const plan = await page.services.catalog.getPlan(page.actor, id);
    const done = await page.attempt(async () =>
      page.services.catalog.addPeriod(page.actor, id, {
        duration: Number(page.form.duration),
        unit: page.form.unit ?? '',
        trial: page.checkbox('trial'),
        setupFee: amount(page, 'setupFee', plan.currency),
        recurringFee: amount(page, 'recurringFee', plan.currency),
        renewalFee: page.text('renewalFee') === undefined ? undefined : amount(page, 'renewalFee', plan.currency),
        refundPeriodDays: (whole(page, 'refundPeriodDays', 0) ?? 0) as number,
        sortOrder: (whole(page, 'sortOrder', 0) ?? 0) as number,
      }),
    );
    if (done === undefined) return show(page, 422);
    await page.redirect(`/console/catalog/plans/${id}`, { kind: 'ok', text: `Period of ${page.form.duration} ${page.form.unit}(s) added.` });
  });

  r.post('/catalog/plans/:id/periods/:periodId/toggle', async (page) => {
    const id = page.param('id');
    const plan = await page.services.catalog.getPlan(page.actor, id);
    const period = plan.periods.find((p) => p.periodId === page.param('periodId'));
    if (!period) throw notFound('Plan period', page.param('periodId'));
    // updatePeriod replaces the whole period: every other value is sent back as it is.
    const { duration, unit, trial, setupFee, recurringFee, renewalFee, transferFee, nonRefundableAmount, refundPeriodDays, sortOrder } = period;
    const done = await page.attempt(() =>
      page.services.catalog.updatePeriod(page.actor, period.periodId, { duration, unit, trial, setupFee, recurringFee, renewalFee, transferFee, nonRefundableAmount, refundPeriodDays, sortOrder, enabled: !period.enabled }),
    );
    if (!done) return show(page, 422);
    await page.redirect(`/console/catalog/plans/${id}`, { kind: 'ok', text: `The ${duration}-${unit} period is ${done.enabled ? 'enabled' : 'disabled'}.` });
  });

  r.post('/catalog/plans/:id/rates', async (page) => {
    const id = page.param('id');
    const plan = await page.services.catalog.getPlan(page.actor, id);
    const done = await page.attempt(async () => {
      await page.services.catalog.setRate(page.actor, id, {
        resourceId: Number(page.form.resourceId),
        included: (whole(page, 'included', 0) ?? 0) as number,
        min: (whole(page, 'min', 0) ?? 0) as number,
        max: whole(page, 'max', null) ?? null,
        setupFee: amount(page, 'rateSetupFee', plan.currency),
        recurringFee: amount(page, 'rateRecurringFee', plan.currency),
        overageFee: amount(page, 'overageFee', plan.currency),
      });
      return true;
    });
    if (!done) return show(page, 422);
    await page.redirect(`/console/catalog/plans/${id}`, { kind: 'ok', text: 'Resource rate saved.' });
  });
}
