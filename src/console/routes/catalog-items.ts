import type { ConsoleRoutes } from '../app';
import type { Page } from '../page';
import { ancestorIds } from '../../accounts/scope';
import { PARAMETER_KINDS, type ServiceTemplate } from '../../catalog/catalog-service';
import { likeTerm, listPage } from '../lists';
import { inSubtree } from './scope';

interface ResourceListRow {
  id: number;
  name: string;
  unit: string;
  code: string | null;
  description: string;
  vendor: string | null;
  path: string;
  templates: number | string;
}

interface TemplateListRow {
  id: number;
  name: string;
  service_gate: string;
  vendor: string | null;
  resources: number | string;
  plans: number | string;
}

/** One row of a template's limits table: a resource the vendor may use, in the template or not. */
interface LimitRow {
  resourceId: number;
  name: string;
  unit: string;
  own: boolean;
  included: boolean;
  limit: string;
}

/**
 * The template form's resource rows: `use.<id>` (checkbox: in the template) and `limit.<id>` (empty = unlimited).
 * A field error the service names by list position (resources[2].limit) is moved to that resource's row.
 */
function limitsFromForm(page: Page, visible: { resourceId: number; name: string }[]): { resourceId: number; name: string; limit: number | null }[] {
  const chosen = visible.filter((r) => page.checkbox(`use.${r.resourceId}`));
  // The service checks the number (0 or more, at most 4 decimals) as it does for the APIs; text is NaN, refused.
  return chosen.map((r) => {
    const text = page.text(`limit.${r.resourceId}`);
    return { resourceId: r.resourceId, name: r.name, limit: text === undefined ? null : Number(text) };
  });
}

/** One row of a template's order parameters table; the form's rows are param.<row>.name / title / kind / required. */
interface ParameterRow {
  row: number;
  name: string;
  title: string;
  kind: string;
  required: boolean;
}

/** Blank rows offered below a template's parameters for new ones. */
const NEW_PARAMETER_ROWS = 2;

/** The parameters table as the form sent it: a row with an empty name is left out (that is how one is removed). */
function parameterRows(page: Page): ParameterRow[] {
  const rows: ParameterRow[] = [];
  for (let row = 0; page.form[`param.${row}.name`] !== undefined && row < 200; row++) {
    rows.push({ row, name: page.form[`param.${row}.name`] ?? '', title: page.form[`param.${row}.title`] ?? '', kind: page.form[`param.${row}.kind`] ?? 'string', required: page.checkbox(`param.${row}.required`) });
  }
  return rows;
}

function parametersFromForm(page: Page): ParameterRow[] {
  return parameterRows(page).filter((p) => p.name.trim() !== '');
}

/**
 * Moves an error the service names by list position to the row it came from, in words: resources[2].limit beside
 * that resource's limit, parameters[1].kind beside the kind of the form's row it was.
 */
function rowErrors(page: Page, resources: { resourceId: number; name: string }[], parameters: ParameterRow[]): void {
  for (const [field, message] of Object.entries(page.errors)) {
    let key: string | undefined;
    let text = message;
    const res = /^resources\[(\d+)\]\.(limit|resourceId)$/.exec(field);
    const par = /^parameters\[(\d+)\]\.(name|title|kind)$/.exec(field);
    if (res && resources[Number(res[1])]) {
      const r = resources[Number(res[1])];
      key = `limit.${r.resourceId}`;
      text = message.replace(field, `The limit of ${r.name}`);
    } else if (par && parameters[Number(par[1])]) {
      key = `param.${parameters[Number(par[1])].row}.${par[2]}`;
      text = message.replace(field, `The ${par[2]}`);
    }
    if (!key) continue;
    page.errors[key] = text;
    if (page.formError === message) page.formError = text;
  }
}

/** Catalog: the resources list (filter, sort, page), a new resource, a resource's page; the same for service templates. */
export function catalogItemPages(r: ConsoleRoutes): void {
  // ---- resources ----
  const resourceList = async (page: Page, status = 200) => {
    const { db } = page.services.deps;
    // What the operator's account may use: its subtree's resources and those of the vendors above it.
    const q = db('resources as r')
      .join('accounts as a', 'a.id', 'r.vendor_id')
      .where((w) => w.where('a.path', 'like', `${page.actor.accountPath}%`).orWhereIn('r.vendor_id', ancestorIds(page.actor.accountPath)))
      .select('r.id', 'r.name', 'r.unit', 'r.code', 'r.description', 'a.company_name as vendor', 'a.path', db.raw('(select count(*) from template_resources tr where tr.resource_id = r.id) as templates'));
    const search = page.query('q').trim();
    if (search) q.andWhere((w) => w.whereRaw("r.name LIKE ? ESCAPE '!'", [likeTerm(search)]).orWhereRaw("r.unit LIKE ? ESCAPE '!'", [likeTerm(search)]).orWhereRaw("r.code LIKE ? ESCAPE '!'", [likeTerm(search)]));
    if (page.query('owner') === 'own') inSubtree(q, page.actor);
    if (page.query('owner') === 'inherited') q.andWhere('a.path', 'not like', `${page.actor.accountPath}%`);
    const list = await listPage<ResourceListRow>(page, q, {
      sorts: { id: 'r.id', name: 'r.name', unit: 'r.unit', code: 'r.code', vendor: 'a.company_name' },
      defaultSort: 'name',
      filters: ['q', 'owner'],
      tieBreaker: 'r.id',
    });
    const rows = list.rows.map((x) => ({ ...x, templates: Number(x.templates), editable: x.path.startsWith(page.actor.accountPath) }));
    await page.render('resources.njk', { title: 'Resources', list: { ...list, rows }, q: page.query('q'), owner: page.query('owner') }, status);
  };
  r.get('/catalog/resources', (page) => resourceList(page));
  r.post('/catalog/resources/new', async (page) => {
    const id = await page.attempt(() =>
      page.services.catalog.createResource(page.actor, { name: page.form.name ?? '', unit: page.form.unit ?? '', code: page.text('code'), description: page.text('description') }),
    );
    if (id === undefined) return resourceList(page, 422);
    await page.redirect(`/console/catalog/resources/${id}`, { kind: 'ok', text: `Resource ${page.form.name?.trim()} created.` });
  });

  const resourcePage = async (page: Page, status = 200) => {
    const { catalog, deps } = page.services;
    const resource = await catalog.getResource(page.actor, page.param('id'));
    const templates = (await inSubtree(deps.db('template_resources as tr').join('service_templates as t', 't.id', 'tr.template_id').join('accounts as a', 'a.id', 't.vendor_id'), page.actor)
      .where('tr.resource_id', resource.resourceId)
      .orderBy('t.id')
      .select('t.id', 't.name', 'tr.limit_value')) as { id: number; name: string; limit_value: unknown }[];
    await page.render('resource.njk', { title: resource.name, resource, templates: templates.map((t) => ({ ...t, limit: t.limit_value === null ? null : Number(t.limit_value) })) }, status);
  };
  r.get('/catalog/resources/:id', (page) => resourcePage(page));
  r.post('/catalog/resources/:id', async (page) => {
    const id = page.param('id');
    const done = await page.attempt(async () => {
      await page.services.catalog.updateResource(page.actor, id, { name: page.form.name ?? '', unit: page.form.unit ?? '', description: page.form.description ?? '' });
      return true;
    });
    if (!done) return resourcePage(page, 422);
    await page.redirect(`/console/catalog/resources/${id}`, { kind: 'ok', text: 'Resource saved.' });
  });

  // ---- service templates ----
  r.get('/catalog/templates', async (page) => {
    const { db } = page.services.deps;
    const q = inSubtree(db('service_templates as t').join('accounts as a', 'a.id', 't.vendor_id'), page.actor).select(
      't.id',
      't.name',
      't.service_gate',
      'a.company_name as vendor',
      db.raw('(select count(*) from template_resources tr where tr.template_id = t.id) as resources'),
      db.raw('(select count(*) from plans p where p.template_id = t.id) as plans'),
    );
    const search = page.query('q').trim();
    if (search) q.andWhere((w) => w.whereRaw("t.name LIKE ? ESCAPE '!'", [likeTerm(search)]).orWhereRaw("t.service_gate LIKE ? ESCAPE '!'", [likeTerm(search)]));
    const list = await listPage<TemplateListRow>(page, q, {
      sorts: { id: 't.id', name: 't.name', gate: 't.service_gate', vendor: 'a.company_name' },
      defaultSort: 'name',
      filters: ['q'],
      tieBreaker: 't.id',
    });
    const rows = list.rows.map((t) => ({ ...t, resources: Number(t.resources), plans: Number(t.plans) }));
    await page.render('templates.njk', { title: 'Service templates', list: { ...list, rows }, q: page.query('q') });
  });

  /** The limits table: every resource the template's vendor may use, ticked when in the template (or as the form sent it). */
  const limitRows = async (page: Page, vendorId: number, template: ServiceTemplate | null, posted: boolean): Promise<LimitRow[]> => {
    const visible = await page.services.catalog.listResources(page.actor, vendorId);
    const { db } = page.services.deps;
    const paths = new Map(((await db('accounts').whereIn('id', [...new Set(visible.map((v) => v.vendorAccountId))]).select('id', 'path')) as { id: number; path: string }[]).map((a) => [Number(a.id), a.path]));
    return visible.map((v) => {
      const kept = template?.resources.find((t) => t.resourceId === v.resourceId);
      return {
        resourceId: v.resourceId,
        name: v.name,
        unit: v.unit,
        own: (paths.get(v.vendorAccountId) ?? '').startsWith(page.actor.accountPath),
        included: posted ? page.checkbox(`use.${v.resourceId}`) : !!kept,
        limit: posted ? (page.form[`limit.${v.resourceId}`] ?? '') : kept && kept.limit !== null ? String(kept.limit) : '',
      };
    });
  };

  /** The parameters table: the template's (or what the form sent), and blank rows for new ones. */
  const parameterView = (page: Page, template: ServiceTemplate | null, posted: boolean): ParameterRow[] => {
    if (posted) return parameterRows(page);
    const rows: ParameterRow[] = (template?.parameters ?? []).map((p, row) => ({ row, name: p.name, title: p.title, kind: p.kind, required: p.required }));
    for (let i = 0; i < NEW_PARAMETER_ROWS; i++) rows.push({ row: rows.length, name: '', title: '', kind: 'string', required: true });
    return rows;
  };

  /** Service gates the operator's templates may name: provisioning instances of its account and those above it. */
  const gateNames = async (page: Page): Promise<string[]> => {
    const chain = [page.actor.accountId, ...ancestorIds(page.actor.accountPath)];
    const rows = (await page.services.deps.db('plugin_instances').whereIn('vendor_id', chain).andWhere({ kind: 'provisioning' }).distinct('name').orderBy('name')) as { name: string }[];
    return rows.map((g) => g.name);
  };

  const newTemplate = async (page: Page, status = 200) =>
    page.render(
      'template-new.njk',
      {
        title: 'New service template',
        limits: await limitRows(page, page.actor.accountId, null, page.ctx.method === 'POST'),
        parameters: parameterView(page, null, page.ctx.method === 'POST'),
        kinds: PARAMETER_KINDS,
        gates: await gateNames(page),
      },
      status,
    );
  r.get('/catalog/templates/new', (page) => newTemplate(page));
  r.post('/catalog/templates/new', async (page) => {
    const visible = await page.services.catalog.listResources(page.actor);
    const resources = limitsFromForm(page, visible);
    const parameters = parametersFromForm(page);
    const id = await page.attempt(async () =>
      page.services.catalog.createTemplate(page.actor, { name: page.form.name ?? '', serviceGate: page.form.serviceGate ?? '', description: page.text('description'), resources, parameters }),
    );
    if (id === undefined) {
      rowErrors(page, resources, parameters);
      return newTemplate(page, 422);
    }
    await page.redirect(`/console/catalog/templates/${id}`, { kind: 'ok', text: 'Service template created. Build a plan on it to sell it.' });
  });

  const templatePage = async (page: Page, status = 200) => {
    const { catalog, deps } = page.services;
    const template = await catalog.getTemplate(page.actor, page.param('id'));
    const posted = page.ctx.method === 'POST';
    const plans = (await deps.db('plans').where({ template_id: template.templateId }).orderBy('id').select('id', 'name', 'published')) as { id: number; name: string; published: unknown }[];
    await page.render(
      'template.njk',
      {
        title: template.name,
        template,
        values: posted ? { name: page.form.name, serviceGate: page.form.serviceGate, description: page.form.description } : template,
        limits: await limitRows(page, template.vendorAccountId, template, posted),
        parameters: parameterView(page, template, posted),
        kinds: PARAMETER_KINDS,
        gates: await gateNames(page),
        plans: plans.map((p) => ({ ...p, published: !!Number(p.published) })),
      },
      status,
    );
  };
  r.get('/catalog/templates/:id', (page) => templatePage(page));
  r.post('/catalog/templates/:id', async (page) => {
    const id = page.param('id');
    const template = await page.services.catalog.getTemplate(page.actor, id);
    const visible = await page.services.catalog.listResources(page.actor, template.vendorAccountId);
    const resources = limitsFromForm(page, visible);
    // A form without the parameters table (none of its rows sent) leaves the parameters as they are.
    const parameters = page.form['param.0.name'] === undefined ? undefined : parametersFromForm(page);
    const done = await page.attempt(async () =>
      page.services.catalog.updateTemplate(page.actor, id, { name: page.form.name ?? '', serviceGate: page.form.serviceGate ?? '', description: page.form.description ?? '', resources, parameters }),
    );
    if (!done) {
      rowErrors(page, resources, parameters ?? []);
      return templatePage(page, 422);
    }
    await page.redirect(`/console/catalog/templates/${id}`, { kind: 'ok', text: 'Service template saved.' });
  });
}
