import type { ConsoleRoutes } from '../app';
import type { Page } from '../page';
import { ORDER_TYPES, type OrderType } from '../../domain/workflow';
import { invalid } from '../../domain/errors';

/** Workflows: the versions per vendor and order type; a definition edited as JSON, checked before it is kept. */
export function workflowPages(r: ConsoleRoutes): void {
  r.get('/workflows', async (page) => {
    const all = await page.services.workflows.list(page.actor);
    const type = (ORDER_TYPES as readonly string[]).includes(page.query('type')) ? page.query('type') : '';
    const items = all.filter((w) => !type || w.orderType === type);
    // What new orders of the operator's own account get now, per order type (its own, an ancestor's, or the default).
    const effective = await Promise.all(ORDER_TYPES.map(async (t) => ({ type: t, workflow: await page.services.workflows.activeFor(page.services.deps.db, page.actor.accountId, t) })));
    await page.render('workflows.njk', { title: 'Workflows', items, types: ORDER_TYPES, type, effective, list: { sort: 'vendor', dir: 'asc', filterQuery: '' } });
  });

  const editor = async (page: Page, type: OrderType, text: string | undefined, status = 200) => {
    const current = await page.services.workflows.activeFor(page.services.deps.db, page.actor.accountId, type);
    await page.render('workflow-edit.njk', {
      title: `Define the ${type} workflow`,
      type,
      current,
      text: text ?? JSON.stringify(current.definition, null, 2),
    }, status);
  };
  const typeOf = (page: Page): OrderType => {
    const t = page.query('type') || page.form.type;
    if (!(ORDER_TYPES as readonly string[]).includes(t)) throw invalid('type', `The order type must be one of ${ORDER_TYPES.join(', ')}.`);
    return t as OrderType;
  };
  r.get('/workflows/define', (page) => editor(page, typeOf(page), undefined));
  r.post('/workflows/define', async (page) => {
    const type = typeOf(page);
    const text = page.form.definition ?? '';
    const done = await page.attempt(async () => {
      let definition: unknown;
      try {
        definition = JSON.parse(text) as unknown;
      } catch (e) {
        throw invalid('definition', `The definition is not valid JSON: ${(e as Error).message}`);
      }
      return page.services.workflows.define(page.actor, { orderType: type, definition });
    });
    if (!done) return editor(page, type, text, 422);
    await page.redirect(`/console/workflows/${done.workflowId}`, { kind: 'ok', text: `Version ${done.version} of the ${type} workflow is now active for new orders.` });
  });

  r.get('/workflows/:id', async (page) => {
    const workflow = await page.services.workflows.get(page.actor, page.param('id'));
    const steps = Object.entries(workflow.definition.steps).map(([name, s]) => ({ name, action: s.action, next: s.next, start: name === workflow.definition.start }));
    await page.render('workflow.njk', { title: `Workflow ${workflow.orderType} v${workflow.version}`, workflow, steps, own: workflow.vendorAccountId === page.actor.accountId });
  });
}
