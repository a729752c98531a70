import type { Actor, Deps } from '../context';
import { recordChange } from '../audit/record-change';
import { scopedAccount, scopedVendor, ancestorIds, type AccountRow } from '../accounts/scope';
import { money, toBigInt, toBool, toOptionalNumber, toNumber, type Conn, type Tx } from '../db/knex';
import { invalid, notFound } from '../domain/errors';
import { nonNegativeQuantity, optionalText, paging, positiveId, requiredText } from '../domain/fields';
import { validatePeriod, type PeriodUnit } from '../domain/period';
import { SUBSCRIPTION_STATUS } from '../subscriptions/subscriptions-service';

export interface Resource {
  resourceId: number;
  vendorAccountId: number;
  name: string;
  unit: string;
  code: string | null;
  description: string;
}

export interface TemplateResource {
  resourceId: number;
  name: string;
  unit: string;
  limit: number | null; // null = unlimited
}

export interface TemplateParameter {
  name: string;
  title: string;
  kind: 'string' | 'domain' | 'login' | 'password' | 'email';
  required: boolean;
}

export interface ServiceTemplate {
  templateId: number;
  vendorAccountId: number;
  name: string;
  serviceGate: string;
  description: string;
  resources: TemplateResource[];
  parameters: TemplateParameter[];
}

export interface PlanPeriod {
  periodId: number;
  planId: number;
  duration: number;
  unit: PeriodUnit;
  trial: boolean;
  setupFee: bigint;
  recurringFee: bigint;
  renewalFee: bigint;
  transferFee: bigint;
  nonRefundableAmount: bigint;
  refundPeriodDays: number;
  enabled: boolean;
  sortOrder: number;
  currency: string;
}

export interface RateTier {
  upTo: number | null; // null = no upper bound
  fee: bigint; // per unit in this tier
}

export interface ResourceRate {
  resourceId: number;
  name: string;
  unit: string;
  included: number;
  min: number;
  max: number | null;
  setupFee: bigint;
  recurringFee: bigint;
  overageFee: bigint;
  tiers: RateTier[];
  currency: string;
}

export interface Plan {
  planId: number;
  vendorAccountId: number;
  templateId: number;
  name: string;
  category: string;
  description: string;
  serviceGate: string;
  published: boolean;
  trial: boolean;
  resellable: boolean;
  currency: string;
  periods: PlanPeriod[];
  resources: ResourceRate[];
}

export interface PeriodInput {
  duration: number;
  unit: string;
  trial?: boolean;
  setupFee?: bigint;
  recurringFee?: bigint;
  renewalFee?: bigint;
  transferFee?: bigint;
  nonRefundableAmount?: bigint;
  refundPeriodDays?: number;
  enabled?: boolean;
  sortOrder?: number;
}

export interface RateInput {
  resourceId: number;
  included?: number;
  min?: number;
  max?: number | null;
  setupFee?: bigint;
  recurringFee?: bigint;
  overageFee?: bigint;
  tiers?: { upTo: number | null; fee: bigint }[];
}

export interface PlanInput {
  vendorAccountId?: number;
  templateId: number;
  name: string;
  category?: string;
  description?: string;
  published?: boolean;
  trial?: boolean;
  resellable?: boolean;
  periods?: PeriodInput[];
  rates?: RateInput[];
}

export const PARAMETER_KINDS = ['string', 'domain', 'login', 'password', 'email'] as const;

// Money columns are signed 64-bit: a larger amount would fail on MariaDB and turn into an inexact REAL on SQLite.
const MAX_AMOUNT = 2n ** 63n - 1n;

function fee(value: bigint | undefined, field: string): bigint {
  if (value === undefined) return 0n;
  if (typeof value !== 'bigint') throw invalid(field, `${field} must be an amount in minor units.`);
  if (value < 0n) throw invalid(field, `${field} cannot be negative.`);
  if (value > MAX_AMOUNT) throw invalid(field, `${field} is larger than the largest amount kept (${MAX_AMOUNT} minor units).`);
  return value;
}

/** Periods are told apart by duration, unit and trial (a unique key of plan_periods). */
const periodKey = (p: { duration: number; unit: string; trial: boolean }) => `${p.duration}/${p.unit}/${p.trial ? 1 : 0}`;

function checkPeriod(p: PeriodInput, field: string) {
  const duration = typeof p.duration === 'string' ? Number(p.duration) : p.duration;
  try {
    validatePeriod(duration, p.unit);
  } catch (e) {
    const err = e as { field?: string; message: string };
    throw invalid(`${field}.${err.field ?? 'duration'}`, err.message);
  }
  const refund = p.refundPeriodDays ?? 0;
  if (!Number.isInteger(refund) || refund < 0 || refund > 3650) throw invalid(`${field}.refundPeriodDays`, 'refundPeriodDays must be a whole number of days from 0 to 3650.');
  const row = {
    duration,
    unit: p.unit as PeriodUnit,
    trial: p.trial ?? false,
    setup_fee: money(fee(p.setupFee, `${field}.setupFee`)),
    recurring_fee: money(fee(p.recurringFee, `${field}.recurringFee`)),
    renewal_fee: money(fee(p.renewalFee ?? p.recurringFee, `${field}.renewalFee`)),
    transfer_fee: money(fee(p.transferFee, `${field}.transferFee`)),
    non_refundable_amount: money(fee(p.nonRefundableAmount, `${field}.nonRefundableAmount`)),
    refund_period_days: refund,
    enabled: p.enabled ?? true,
    sort_order: p.sortOrder ?? 0,
  };
  if (row.trial && (BigInt(row.setup_fee) !== 0n || BigInt(row.recurring_fee) !== 0n)) {
    throw invalid(`${field}.trial`, 'A trial period is free: its setup and recurring fees must be 0.');
  }
  return row;
}

function checkRate(r: RateInput, field: string, templateResourceIds: Set<number>, templateName: string) {
  const resourceId = positiveId(r.resourceId, `${field}.resourceId`);
  if (!templateResourceIds.has(resourceId)) {
    throw invalid(`${field}.resourceId`, `Resource ${resourceId} is not part of service template '${templateName}'; add it to the template first.`);
  }
  const included = nonNegativeQuantity(r.included ?? 0, `${field}.included`);
  const min = nonNegativeQuantity(r.min ?? 0, `${field}.min`);
  const max = r.max === undefined || r.max === null ? null : nonNegativeQuantity(r.max, `${field}.max`);
  if (max !== null && max < min) throw invalid(`${field}.max`, `max (${max}) cannot be below min (${min}).`);
  const tiers = (r.tiers ?? []).map((t, i) => ({
    upTo: t.upTo === null || t.upTo === undefined ? null : nonNegativeQuantity(t.upTo, `${field}.tiers[${i}].upTo`),
    fee: fee(t.fee, `${field}.tiers[${i}].fee`),
  }));
  tiers.forEach((t, i) => {
    const prev = i > 0 ? tiers[i - 1].upTo : null;
    if (i > 0 && (prev === null || (t.upTo !== null && t.upTo <= prev))) {
      throw invalid(`${field}.tiers[${i}].upTo`, 'Tiers must be in ascending order of upTo, with only the last one open-ended.');
    }
  });
  return {
    resource_id: resourceId,
    included,
    min_quantity: min,
    max_quantity: max,
    setup_fee: money(fee(r.setupFee, `${field}.setupFee`)),
    recurring_fee: money(fee(r.recurringFee, `${field}.recurringFee`)),
    overage_fee: money(fee(r.overageFee, `${field}.overageFee`)),
    tiers: tiers.length ? JSON.stringify(tiers.map((t) => ({ upTo: t.upTo, fee: t.fee.toString() }))) : null,
  };
}

type ParameterInput = { name: string; title?: string; kind?: string; required?: boolean };

/** A template's order parameters as createTemplate and updateTemplate take them: each name once. */
function templateParameterRows(input: ParameterInput[]) {
  if (!Array.isArray(input)) throw invalid('parameters', 'parameters must be a list.');
  const rows = input.map((p, i) => {
    const pname = requiredText(p.name, `parameters[${i}].name`, 64);
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(pname)) throw invalid(`parameters[${i}].name`, 'A parameter name starts with a letter and uses letters, digits and _ only.');
    const kind = p.kind ?? 'string';
    if (!PARAMETER_KINDS.includes(kind as (typeof PARAMETER_KINDS)[number])) throw invalid(`parameters[${i}].kind`, `kind must be one of ${PARAMETER_KINDS.join(', ')}.`);
    return { name: pname, title: optionalText(p.title, `parameters[${i}].title`, 128) || pname, kind, required: p.required ?? true };
  });
  rows.forEach((p, i) => {
    if (rows.findIndex((q) => q.name === p.name) < i) throw invalid(`parameters[${i}].name`, `The parameter '${p.name}' is named twice.`);
  });
  return rows;
}

interface PlanRow {
  id: number;
  vendor_id: number;
  template_id: number;
  name: string;
  category: string;
  description: string | null;
  published: unknown;
  trial: unknown;
  resellable: unknown;
  currency: string;
  service_gate: string;
}

export class CatalogService {
  constructor(private readonly deps: Deps) {}

  // ---- resources ----
  async createResource(actor: Actor, input: { vendorAccountId?: number; name: string; unit: string; code?: string; description?: string }): Promise<number> {
    const vendor = await this.vendor(actor, input.vendorAccountId);
    const name = requiredText(input.name, 'name', 128);
    const unit = requiredText(input.unit, 'unit', 32);
    return this.deps.db.transaction(async (tx) => {
      const dup = await tx('resources').where({ vendor_id: vendor.id, name }).first('id');
      if (dup) throw invalid('name', `A resource named '${name}' already exists.`);
      const now = this.deps.clock.now();
      const [id] = (await tx('resources').insert({
        vendor_id: vendor.id,
        name,
        unit,
        code: optionalText(input.code, 'code', 64) ?? null,
        description: optionalText(input.description, 'description', 512) ?? '',
        created_at: now.getTime(),
      })) as number[];
      await recordChange(tx, actor, now, {
        operation: 'CreateResource',
        objectType: 'resource',
        objectId: id,
        event: { name: 'catalog.resource_created', accountId: vendor.id, payload: { resourceId: id, name, unit } },
      });
      return id;
    });
  }

  /** Renames or re-describes a resource of the actor's own catalog (NOT_FOUND outside the actor's subtree). */
  async updateResource(actor: Actor, resourceId: number, input: { name?: string; unit?: string; description?: string }): Promise<void> {
    const id = positiveId(resourceId, 'resourceId');
    const row = (await this.deps.db('resources').where({ id }).first()) as { id: number; vendor_id: number; name: string } | undefined;
    if (!row) throw notFound('Resource', id);
    const vendor = await scopedAccount(this.deps.db, actor, Number(row.vendor_id)).catch(() => {
      throw notFound('Resource', id);
    });
    const changes: Record<string, string> = {};
    if (input.name !== undefined) changes.name = requiredText(input.name, 'name', 128);
    if (input.unit !== undefined) changes.unit = requiredText(input.unit, 'unit', 32);
    if (input.description !== undefined) changes.description = optionalText(input.description, 'description', 512) ?? '';
    if (Object.keys(changes).length === 0) return;
    await this.deps.db.transaction(async (tx) => {
      if (changes.name !== undefined && changes.name !== row.name) {
        const dup = await tx('resources').where({ vendor_id: vendor.id, name: changes.name }).whereNot({ id }).first('id');
        if (dup) throw invalid('name', `A resource named '${changes.name}' already exists.`);
      }
      await tx('resources').where({ id }).update(changes);
      const now = this.deps.clock.now();
      await recordChange(tx, actor, now, {
        operation: 'UpdateResource',
        objectType: 'resource',
        objectId: id,
        details: changes,
        event: { name: 'catalog.resource_updated', accountId: vendor.id, payload: { resourceId: id, ...changes } },
      });
    });
  }

  /** A resource of the actor's own subtree, the ones it may edit (NOT_FOUND otherwise, as updateResource). */
  async getResource(actor: Actor, resourceId: number): Promise<Resource> {
    const id = positiveId(resourceId, 'resourceId');
    const r = (await this.deps.db('resources as r')
      .join('accounts as a', 'a.id', 'r.vendor_id')
      .where('r.id', id)
      .andWhere('a.path', 'like', `${actor.accountPath}%`)
      .first('r.*')) as { id: number; vendor_id: number; name: string; unit: string; code: string | null; description: string } | undefined;
    if (!r) throw notFound('Resource', id);
    return { resourceId: toNumber(r.id), vendorAccountId: toNumber(r.vendor_id), name: r.name, unit: r.unit, code: r.code, description: r.description };
  }

  async listResources(actor: Actor, vendorAccountId?: number): Promise<Resource[]> {
    const vendor = await this.vendor(actor, vendorAccountId);
    const rows = (await this.deps.db('resources').whereIn('vendor_id', [vendor.id, ...ancestorIds(vendor.path)]).orderBy('id')) as {
      id: number;
      vendor_id: number;
      name: string;
      unit: string;
      code: string | null;
      description: string;
    }[];
    return rows.map((r) => ({ resourceId: r.id, vendorAccountId: r.vendor_id, name: r.name, unit: r.unit, code: r.code, description: r.description }));
  }

  // ---- service templates ----
  async createTemplate(
    actor: Actor,
    input: {
      vendorAccountId?: number;
      name: string;
      serviceGate: string;
      description?: string;
      resources?: { resourceId: number; limit?: number | null }[];
      parameters?: ParameterInput[];
    },
  ): Promise<number> {
    const vendor = await this.vendor(actor, input.vendorAccountId);
    const name = requiredText(input.name, 'name', 128);
    const serviceGate = requiredText(input.serviceGate, 'serviceGate', 96);
    const resources = await this.templateResourceRows(actor, vendor.id, input.resources ?? []);
    const parameters = templateParameterRows(input.parameters ?? []);
    return this.deps.db.transaction(async (tx) => {
      const dup = await tx('service_templates').where({ vendor_id: vendor.id, name }).first('id');
      if (dup) throw invalid('name', `A service template named '${name}' already exists.`);
      const now = this.deps.clock.now();
      const [id] = (await tx('service_templates').insert({
        vendor_id: vendor.id,
        name,
        service_gate: serviceGate,
        description: optionalText(input.description, 'description', 512) ?? '',
        created_at: now.getTime(),
      })) as number[];
      if (resources.length) await tx('template_resources').insert(resources.map((r) => ({ ...r, template_id: id })));
      if (parameters.length) await tx('template_parameters').insert(parameters.map((p) => ({ ...p, template_id: id })));
      await recordChange(tx, actor, now, {
        operation: 'CreateServiceTemplate',
        objectType: 'service_template',
        objectId: id,
        event: { name: 'catalog.template_created', accountId: vendor.id, payload: { templateId: id, name, serviceGate } },
      });
      return id;
    });
  }

  /**
   * Edits a service template of the actor's subtree (NOT_FOUND outside it): name, description, service gate, and
   * — when `resources` is given — its whole resource list with their limits (null = unlimited), added and removed;
   * when `parameters` is given, the whole list of order parameters (orders placed keep what they were given).
   * What plans built on the template rely on is kept:
   * - a resource priced in a published plan, or held by a live subscription of one of its plans, stays (field
   *   `resources`); a draft plan without live subscriptions loses its rate for a removed resource with it;
   * - limits change freely: a subscription's limit is the larger of the template's limit and what its plan includes
   *   plus what was bought (lifecycle-steps resourcesOnPlan), so no plan is cut by a lower one; subscriptions keep
   *   the limits they were provisioned with until their next plan change;
   * - the service gate does not change while plans of the template have live subscriptions (`serviceGate`): they
   *   are delivered by the gate they were provisioned on.
   */
  async updateTemplate(
    actor: Actor,
    templateId: number,
    input: { name?: string; serviceGate?: string; description?: string; resources?: { resourceId: number; limit?: number | null }[]; parameters?: ParameterInput[] },
  ): Promise<ServiceTemplate> {
    const template = await this.getTemplate(actor, templateId);
    const id = template.templateId;
    const changes: Record<string, string> = {};
    if (input.name !== undefined) changes.name = requiredText(input.name, 'name', 128);
    if (input.serviceGate !== undefined) changes.service_gate = requiredText(input.serviceGate, 'serviceGate', 96);
    if (input.description !== undefined) changes.description = optionalText(input.description, 'description', 512) ?? '';
    let resources = input.resources === undefined ? undefined : await this.templateResourceRows(actor, template.vendorAccountId, input.resources);
    let parameters = input.parameters === undefined ? undefined : templateParameterRows(input.parameters);
    // Only what differs is changed, audited and announced (a form sends every field back).
    const current: Record<string, string> = { name: template.name, service_gate: template.serviceGate, description: template.description };
    for (const k of Object.keys(changes)) if (changes[k] === current[k]) delete changes[k];
    const sameList = <T>(a: T[], b: T[]) => JSON.stringify(a) === JSON.stringify(b);
    const byId = <T extends { resource_id: number }>(rows: T[]) => [...rows].sort((x, y) => x.resource_id - y.resource_id);
    if (resources && sameList(byId(resources), byId(template.resources.map((r) => ({ resource_id: r.resourceId, limit_value: r.limit }))))) resources = undefined;
    if (parameters && sameList(parameters, template.parameters.map((p) => ({ name: p.name, title: p.title, kind: p.kind, required: p.required })))) parameters = undefined;
    if (!Object.keys(changes).length && !resources && !parameters) return template;
    await this.deps.db.transaction(async (tx) => {
      if (changes.name !== undefined && changes.name !== template.name) {
        const dup = await tx('service_templates').where({ vendor_id: template.vendorAccountId, name: changes.name }).whereNot({ id }).first('id');
        if (dup) throw invalid('name', `A service template named '${changes.name}' already exists.`);
      }
      const plans = (await tx('plans').where({ template_id: id }).select('id', 'name', 'published')) as { id: number; name: string; published: unknown }[];
      const planIds = plans.map((p) => toNumber(p.id));
      const planName = (planId: number) => plans.find((p) => toNumber(p.id) === planId)?.name ?? String(planId);
      const liveSubscriptions = () =>
        tx('subscriptions').whereIn('plan_id', planIds).whereNotIn('status', [SUBSCRIPTION_STATUS.terminated, SUBSCRIPTION_STATUS.canceled]);
      if (changes.service_gate !== undefined && changes.service_gate !== template.serviceGate && planIds.length) {
        const [{ n }] = (await liveSubscriptions().count({ n: '*' })) as { n: number | string }[];
        if (Number(n) > 0) {
          throw invalid(
            'serviceGate',
            `${n} live subscription(s) on plans of this template are delivered by service gate '${template.serviceGate}'; the gate cannot change under them. Make a new template for the other gate.`,
          );
        }
      }
      const dropped: { planId: number; resourceId: number }[] = [];
      let added: number[] = [];
      let removed: number[] = [];
      if (resources) {
        const before = new Set(template.resources.map((r) => r.resourceId));
        const after = new Set(resources.map((r) => r.resource_id));
        added = [...after].filter((r) => !before.has(r));
        removed = [...before].filter((r) => !after.has(r));
        const rates = planIds.length ? ((await tx('resource_rates').whereIn('plan_id', planIds).select('plan_id', 'resource_id')) as { plan_id: number; resource_id: number }[]) : [];
        const resourceName = (rid: number) => template.resources.find((r) => r.resourceId === rid)?.name ?? String(rid);
        for (const rid of removed) {
          const priced = rates.filter((r) => toNumber(r.resource_id) === rid).map((r) => toNumber(r.plan_id));
          const published = plans.find((p) => priced.includes(toNumber(p.id)) && toBool(p.published));
          if (published) {
            throw invalid('resources', `${resourceName(rid)} is priced in published plan '${published.name}' (no. ${toNumber(published.id)}); unpublish the plan before taking the resource out of its template.`);
          }
          const held = (await liveSubscriptions()
            .whereIn('id', tx('subscription_resources').select('subscription_id').where('resource_id', rid))
            .first('id', 'plan_id')) as { id: number; plan_id: number } | undefined;
          if (held) {
            throw invalid('resources', `${resourceName(rid)} is held by live subscription ${toNumber(held.id)} of plan '${planName(toNumber(held.plan_id))}'; it stays in the template while such subscriptions run.`);
          }
          for (const planId of priced) dropped.push({ planId, resourceId: rid });
        }
      }
      const now = this.deps.clock.now();
      if (Object.keys(changes).length) await tx('service_templates').where({ id }).update(changes);
      if (resources) {
        for (const d of dropped) await tx('resource_rates').where({ plan_id: d.planId, resource_id: d.resourceId }).delete();
        if (removed.length) await tx('template_resources').where({ template_id: id }).whereIn('resource_id', removed).delete();
        for (const r of resources) {
          if (added.includes(r.resource_id)) await tx('template_resources').insert({ ...r, template_id: id });
          else await tx('template_resources').where({ template_id: id, resource_id: r.resource_id }).update({ limit_value: r.limit_value });
        }
      }
      if (parameters) {
        // Orders already placed keep the parameters they were given; new orders are asked for these.
        await tx('template_parameters').where({ template_id: id }).delete();
        if (parameters.length) await tx('template_parameters').insert(parameters.map((p) => ({ ...p, template_id: id })));
      }
      const changed = Object.keys(changes).map((k) => (k === 'service_gate' ? 'serviceGate' : k));
      if (resources) changed.push('resources');
      if (parameters) changed.push('parameters');
      const payload = { templateId: id, changed, ...(changes.name !== undefined ? { name: changes.name } : {}), ...(changes.service_gate !== undefined ? { serviceGate: changes.service_gate } : {}), resourcesAdded: added, resourcesRemoved: removed, ratesRemoved: dropped };
      await recordChange(tx, actor, now, {
        operation: 'UpdateServiceTemplate',
        objectType: 'service_template',
        objectId: id,
        details: { ...changes, resources: resources?.map((r) => ({ resourceId: r.resource_id, limit: r.limit_value })), parameters: parameters?.map((p) => p.name), ratesRemoved: dropped },
        event: { name: 'catalog.template_updated', accountId: template.vendorAccountId, payload },
      });
    });
    return this.getTemplate(actor, id);
  }

  /** A template's resource list checked as createTemplate and updateTemplate take it: resources the vendor sees, once each. */
  private async templateResourceRows(actor: Actor, vendorId: number, input: { resourceId: number; limit?: number | null }[]): Promise<{ resource_id: number; limit_value: number | null }[]> {
    if (!Array.isArray(input)) throw invalid('resources', 'resources must be a list.');
    const visibleResources = new Set((await this.listResources(actor, vendorId)).map((r) => r.resourceId));
    const resources = input.map((r, i) => {
      const resourceId = positiveId(r.resourceId, `resources[${i}].resourceId`);
      if (!visibleResources.has(resourceId)) throw invalid(`resources[${i}].resourceId`, `Resource ${resourceId} does not exist.`);
      return { resource_id: resourceId, limit_value: r.limit === undefined || r.limit === null ? null : nonNegativeQuantity(r.limit, `resources[${i}].limit`) };
    });
    if (new Set(resources.map((r) => r.resource_id)).size !== resources.length) throw invalid('resources', 'A resource may appear only once in a template.');
    return resources;
  }

  async getTemplate(actor: Actor, templateId: number, conn: Conn = this.deps.db): Promise<ServiceTemplate> {
    const id = positiveId(templateId, 'templateId');
    const row = (await conn('service_templates as t')
      .join('accounts as a', 'a.id', 't.vendor_id')
      .where('t.id', id)
      .andWhere('a.path', 'like', `${actor.accountPath}%`)
      .first('t.*')) as { id: number; vendor_id: number; name: string; service_gate: string; description: string } | undefined;
    if (!row) throw notFound('Service template', id);
    return this.templateView(conn, row);
  }

  async listTemplates(actor: Actor): Promise<ServiceTemplate[]> {
    const rows = (await this.deps.db('service_templates as t')
      .join('accounts as a', 'a.id', 't.vendor_id')
      .where('a.path', 'like', `${actor.accountPath}%`)
      .orderBy('t.id')
      .select('t.*')) as { id: number; vendor_id: number; name: string; service_gate: string; description: string }[];
    return Promise.all(rows.map((r) => this.templateView(this.deps.db, r)));
  }

  private async templateView(conn: Conn, row: { id: number; vendor_id: number; name: string; service_gate: string; description: string }): Promise<ServiceTemplate> {
    const resources = (await conn('template_resources as tr')
      .join('resources as r', 'r.id', 'tr.resource_id')
      .where('tr.template_id', row.id)
      .orderBy('r.id')
      .select('r.id', 'r.name', 'r.unit', 'tr.limit_value')) as { id: number; name: string; unit: string; limit_value: unknown }[];
    const parameters = (await conn('template_parameters').where({ template_id: row.id }).orderBy('id')) as {
      name: string;
      title: string;
      kind: TemplateParameter['kind'];
      required: unknown;
    }[];
    return {
      templateId: row.id,
      vendorAccountId: row.vendor_id,
      name: row.name,
      serviceGate: row.service_gate,
      description: row.description,
      resources: resources.map((r) => ({ resourceId: r.id, name: r.name, unit: r.unit, limit: toOptionalNumber(r.limit_value) })),
      parameters: parameters.map((p) => ({ name: p.name, title: p.title, kind: p.kind, required: toBool(p.required) })),
    };
  }

  // ---- plans ----
  async createPlan(actor: Actor, input: PlanInput): Promise<number> {
    const vendor = await this.vendor(actor, input.vendorAccountId);
    const template = await this.getTemplate(actor, input.templateId).catch(() => {
      throw invalid('templateId', `Service template ${input.templateId} does not exist.`);
    });
    const name = requiredText(input.name, 'name', 128);
    const periods = (input.periods ?? []).map((p, i) => checkPeriod(p, `periods[${i}]`));
    periods.forEach((p, i) => {
      if (periods.findIndex((q) => periodKey(q) === periodKey(p)) < i) {
        throw invalid(`periods[${i}]`, `periods[${i}] repeats the ${p.duration}-${p.unit} ${p.trial ? 'trial ' : ''}period given before it.`);
      }
    });
    const templateResources = new Set(template.resources.map((r) => r.resourceId));
    const rates = (input.rates ?? []).map((r, i) => checkRate(r, `rates[${i}]`, templateResources, template.name));
    if (new Set(rates.map((r) => r.resource_id)).size !== rates.length) throw invalid('rates', 'A resource may have only one rate in a plan.');
    if (input.published && periods.filter((p) => p.enabled).length === 0) throw invalid('periods', 'A published plan needs at least one enabled period.');
    if (input.trial && periods.some((p) => !p.trial)) throw invalid('periods', 'A trial plan has only trial periods.');
    return this.deps.db.transaction(async (tx) => {
      const now = this.deps.clock.now();
      const [id] = (await tx('plans').insert({
        vendor_id: vendor.id,
        template_id: template.templateId,
        name,
        category: optionalText(input.category, 'category', 64) ?? '',
        description: optionalText(input.description, 'description', 4000) ?? '',
        published: input.published ?? false,
        trial: input.trial ?? false,
        resellable: input.resellable ?? false,
        currency: vendor.currency,
        created_at: now.getTime(),
        updated_at: now.getTime(),
      })) as number[];
      for (const p of periods) await this.insertPeriod(tx, id, p);
      if (rates.length) await tx('resource_rates').insert(rates.map((r) => ({ ...r, plan_id: id })));
      await recordChange(tx, actor, now, {
        operation: 'CreatePlan',
        objectType: 'plan',
        objectId: id,
        details: { name, periods: periods.length, rates: rates.length },
        event: { name: 'catalog.plan_created', accountId: vendor.id, payload: { planId: id, name, published: input.published ?? false } },
      });
      return id;
    });
  }

  async updatePlan(actor: Actor, planId: number, patch: { name?: string; category?: string; description?: string; published?: boolean; resellable?: boolean }): Promise<Plan> {
    const plan = await this.ownedPlan(actor, planId);
    const changes: Record<string, unknown> = {};
    if (patch.name !== undefined) changes.name = requiredText(patch.name, 'name', 128);
    if (patch.category !== undefined) changes.category = optionalText(patch.category, 'category', 64) ?? '';
    if (patch.description !== undefined) changes.description = optionalText(patch.description, 'description', 4000) ?? '';
    if (patch.resellable !== undefined) changes.resellable = !!patch.resellable;
    if (patch.published !== undefined) {
      if (patch.published && plan.periods.filter((p) => p.enabled).length === 0) throw invalid('published', 'A plan needs at least one enabled period before it can be published.');
      changes.published = !!patch.published;
    }
    await this.deps.db.transaction(async (tx) => {
      const now = this.deps.clock.now();
      await tx('plans').where({ id: plan.planId }).update({ ...changes, updated_at: now.getTime() });
      await recordChange(tx, actor, now, {
        operation: 'UpdatePlan',
        objectType: 'plan',
        objectId: plan.planId,
        details: { changed: Object.keys(changes) },
        event: { name: 'catalog.plan_updated', accountId: plan.vendorAccountId, payload: { planId: plan.planId, changed: Object.keys(changes) } },
      });
    });
    return this.getPlan(actor, plan.planId);
  }

  async addPeriod(actor: Actor, planId: number, input: PeriodInput): Promise<number> {
    const plan = await this.ownedPlan(actor, planId);
    const row = checkPeriod(input, 'period');
    if (plan.trial && !row.trial) throw invalid('period.trial', 'A trial plan has only trial periods.');
    return this.deps.db.transaction(async (tx) => {
      const now = this.deps.clock.now();
      const id = await this.insertPeriod(tx, plan.planId, row);
      await recordChange(tx, actor, now, {
        operation: 'AddPlanPeriod',
        objectType: 'plan_period',
        objectId: id,
        details: { planId: plan.planId, duration: row.duration, unit: row.unit },
        event: { name: 'catalog.plan_period_added', accountId: plan.vendorAccountId, payload: { planId: plan.planId, periodId: id } },
      });
      return id;
    });
  }

  async updatePeriod(actor: Actor, periodId: number, input: PeriodInput): Promise<PlanPeriod> {
    const id = positiveId(periodId, 'periodId');
    const existing = (await this.deps.db('plan_periods').where({ id }).first('plan_id')) as { plan_id: number } | undefined;
    if (!existing) throw notFound('Plan period', id);
    const plan = await this.ownedPlan(actor, existing.plan_id).catch(() => {
      throw notFound('Plan period', id);
    });
    const row = checkPeriod(input, 'period');
    if (plan.trial && !row.trial) throw invalid('period.trial', 'A trial plan has only trial periods.');
    const others = plan.periods.filter((p) => p.periodId !== id);
    if (others.some((p) => periodKey(p) === periodKey(row))) {
      throw invalid('period', `The plan already has a ${row.duration}-${row.unit} ${row.trial ? 'trial ' : ''}period.`);
    }
    if (plan.published && !row.enabled && !others.some((p) => p.enabled)) {
      throw invalid('period.enabled', 'This is the last enabled period of a published plan; unpublish the plan first.');
    }
    await this.deps.db.transaction(async (tx) => {
      const now = this.deps.clock.now();
      await tx('plan_periods').where({ id }).update(row);
      await recordChange(tx, actor, now, {
        operation: 'UpdatePlanPeriod',
        objectType: 'plan_period',
        objectId: id,
        event: { name: 'catalog.plan_period_updated', accountId: plan.vendorAccountId, payload: { planId: plan.planId, periodId: id } },
      });
    });
    return (await this.getPlan(actor, plan.planId)).periods.find((p) => p.periodId === id)!;
  }

  async setRate(actor: Actor, planId: number, input: RateInput): Promise<void> {
    const plan = await this.ownedPlan(actor, planId);
    const template = await this.getTemplate(actor, plan.templateId);
    const row = checkRate(input, 'rate', new Set(template.resources.map((r) => r.resourceId)), template.name);
    await this.deps.db.transaction(async (tx) => {
      const now = this.deps.clock.now();
      const n = await tx('resource_rates').where({ plan_id: plan.planId, resource_id: row.resource_id }).update(row);
      if (!n) await tx('resource_rates').insert({ ...row, plan_id: plan.planId });
      await recordChange(tx, actor, now, {
        operation: 'SetResourceRate',
        objectType: 'plan',
        objectId: plan.planId,
        details: { resourceId: row.resource_id },
        event: { name: 'catalog.resource_rate_set', accountId: plan.vendorAccountId, payload: { planId: plan.planId, resourceId: row.resource_id } },
      });
    });
  }

  async grantResale(actor: Actor, planId: number, resellerId: number): Promise<void> {
    const plan = await this.ownedPlan(actor, planId);
    const reseller = await scopedAccount(this.deps.db, actor, positiveId(resellerId, 'resellerId'));
    if (reseller.type !== 'reseller' || !reseller.path.startsWith(`${(await this.accountRow(plan.vendorAccountId)).path}`) || reseller.id === plan.vendorAccountId) {
      throw invalid('resellerId', `Account ${resellerId} is not a reseller below the plan's vendor.`);
    }
    await this.deps.db.transaction(async (tx) => {
      const now = this.deps.clock.now();
      const exists = await tx('plan_reseller_grants').where({ plan_id: plan.planId, reseller_id: reseller.id }).first();
      if (!exists) await tx('plan_reseller_grants').insert({ plan_id: plan.planId, reseller_id: reseller.id });
      await recordChange(tx, actor, now, {
        operation: 'GrantPlanResale',
        objectType: 'plan',
        objectId: plan.planId,
        details: { resellerId: reseller.id },
        event: { name: 'catalog.plan_resale_granted', accountId: reseller.id, payload: { planId: plan.planId, resellerId: reseller.id } },
      });
    });
  }

  /**
   * Plans an account may see: those owned inside its subtree, and its sellable catalog (what it may sell, or
   * for a customer, what its vendor sells).
   */
  async getPlan(actor: Actor, planId: number): Promise<Plan> {
    const id = positiveId(planId, 'planId');
    const row = await this.planRow(this.deps.db, id);
    if (!row || !(await this.canSee(actor, row))) throw notFound('Plan', id);
    return this.planView(this.deps.db, row);
  }

  /** A vendor's sellable catalog: its own published plans, plus its ancestors' published plans it may resell. */
  async listPlans(
    actor: Actor,
    filter: { vendorAccountId?: number; category?: string; serviceGate?: string; includeUnpublished?: boolean; page?: number; pageSize?: number },
  ): Promise<{ items: Plan[]; total: number }> {
    const { offset, pageSize } = paging(filter.page, filter.pageSize);
    const seller = await this.sellerFor(actor, filter.vendorAccountId);
    const q = this.sellableQuery(seller, !!filter.includeUnpublished && seller.path.startsWith(actor.accountPath));
    if (filter.category) q.andWhere('p.category', String(filter.category));
    if (filter.serviceGate) q.andWhere('t.service_gate', String(filter.serviceGate));
    const [{ total }] = (await q.clone().clearSelect().count({ total: '*' })) as { total: number | string }[];
    const rows = (await q.orderBy('p.id').limit(pageSize).offset(offset)) as PlanRow[];
    return { items: await Promise.all(rows.map((r) => this.planView(this.deps.db, r))), total: Number(total) };
  }

  /** Is the plan in the seller's sellable catalog (published, own or resellable from an ancestor)? */
  async isSellable(conn: Conn, sellerId: number, planId: number): Promise<boolean> {
    const seller = (await conn('accounts').where({ id: sellerId }).first()) as AccountRow | undefined;
    if (!seller) return false;
    const row = await this.sellableQuery(seller, false, conn).andWhere('p.id', planId).first();
    return row !== undefined;
  }

  async getPlanForOrder(conn: Conn, planId: number): Promise<Plan | undefined> {
    const row = await this.planRow(conn, planId);
    return row ? this.planView(conn, row) : undefined;
  }

  private sellableQuery(seller: AccountRow, includeUnpublished: boolean, conn: Conn = this.deps.db) {
    const ancestors = ancestorIds(seller.path);
    return conn('plans as p')
      .join('service_templates as t', 't.id', 'p.template_id')
      .select('p.*', 't.service_gate')
      .where((w) => {
        w.where('p.vendor_id', seller.id);
        if (ancestors.length && seller.type !== 'customer') {
          w.orWhere((o) =>
            o.whereIn('p.vendor_id', ancestors).andWhere((g) =>
              g.where('p.resellable', true).orWhereIn('p.id', conn('plan_reseller_grants').select('plan_id').where('reseller_id', seller.id)),
            ),
          );
        }
      })
      .andWhere((w) => {
        // Drafts are shown to their owner only, never an ancestor's drafts.
        w.where('p.published', true);
        if (includeUnpublished) w.orWhere('p.vendor_id', seller.id);
      });
  }

  /** Whose catalog a caller browses: a customer its vendor's; a vendor its own (or a sub-vendor's it names). */
  private async sellerFor(actor: Actor, vendorAccountId?: number): Promise<AccountRow> {
    if (vendorAccountId !== undefined && vendorAccountId !== null && vendorAccountId !== 0) {
      const id = positiveId(vendorAccountId, 'vendorAccountId');
      const own = await this.accountRow(actor.accountId);
      if (actor.accountType === 'customer' && id === own.vendor_id) return this.accountRow(id);
      return scopedAccount(this.deps.db, actor, id);
    }
    const own = await this.accountRow(actor.accountId);
    return own.type === 'customer' && own.vendor_id !== null ? this.accountRow(own.vendor_id) : own;
  }

  private async canSee(actor: Actor, row: PlanRow): Promise<boolean> {
    const vendor = await this.accountRow(row.vendor_id);
    if (vendor.path.startsWith(actor.accountPath)) return true;
    const seller = await this.sellerFor(actor);
    return this.isSellable(this.deps.db, seller.id, row.id);
  }

  private async ownedPlan(actor: Actor, planId: number): Promise<Plan> {
    const id = positiveId(planId, 'planId');
    const row = await this.planRow(this.deps.db, id);
    if (!row) throw notFound('Plan', id);
    const vendor = await this.accountRow(row.vendor_id);
    if (!vendor.path.startsWith(actor.accountPath)) throw notFound('Plan', id);
    return this.planView(this.deps.db, row);
  }

  private async planRow(conn: Conn, id: number): Promise<PlanRow | undefined> {
    return (await conn('plans as p').join('service_templates as t', 't.id', 'p.template_id').where('p.id', id).first('p.*', 't.service_gate')) as PlanRow | undefined;
  }

  private async planView(conn: Conn, row: PlanRow): Promise<Plan> {
    const periods = (await conn('plan_periods').where({ plan_id: row.id }).orderBy([{ column: 'sort_order' }, { column: 'id' }])) as Record<string, unknown>[];
    const rates = (await conn('resource_rates as rr')
      .join('resources as r', 'r.id', 'rr.resource_id')
      .where('rr.plan_id', row.id)
      .orderBy('r.id')
      .select('rr.*', 'r.name', 'r.unit')) as Record<string, unknown>[];
    return {
      planId: row.id,
      vendorAccountId: row.vendor_id,
      templateId: row.template_id,
      name: row.name,
      category: row.category,
      description: row.description ?? '',
      serviceGate: row.service_gate,
      published: toBool(row.published),
      trial: toBool(row.trial),
      resellable: toBool(row.resellable),
      currency: row.currency,
      periods: periods.map((p) => ({
        periodId: toNumber(p.id),
        planId: row.id,
        duration: toNumber(p.duration),
        unit: p.unit as PeriodUnit,
        trial: toBool(p.trial),
        setupFee: toBigInt(p.setup_fee),
        recurringFee: toBigInt(p.recurring_fee),
        renewalFee: toBigInt(p.renewal_fee),
        transferFee: toBigInt(p.transfer_fee),
        nonRefundableAmount: toBigInt(p.non_refundable_amount),
        refundPeriodDays: toNumber(p.refund_period_days),
        enabled: toBool(p.enabled),
        sortOrder: toNumber(p.sort_order),
        currency: row.currency,
      })),
      resources: rates.map((r) => ({
        resourceId: toNumber(r.resource_id),
        name: String(r.name),
        unit: String(r.unit),
        included: toNumber(r.included),
        min: toNumber(r.min_quantity),
        max: toOptionalNumber(r.max_quantity),
        setupFee: toBigInt(r.setup_fee),
        recurringFee: toBigInt(r.recurring_fee),
        overageFee: toBigInt(r.overage_fee),
        tiers: r.tiers ? (JSON.parse(String(r.tiers)) as { upTo: number | null; fee: string }[]).map((t) => ({ upTo: t.upTo, fee: BigInt(t.fee) })) : [],
        currency: row.currency,
      })),
    };
  }

  private async insertPeriod(tx: Tx, planId: number, row: ReturnType<typeof checkPeriod>): Promise<number> {
    const dup = await tx('plan_periods').where({ plan_id: planId, duration: row.duration, unit: row.unit, trial: row.trial }).first('id');
    if (dup) throw invalid('period', `The plan already has a ${row.duration}-${row.unit} ${row.trial ? 'trial ' : ''}period.`);
    const [id] = (await tx('plan_periods').insert({ ...row, plan_id: planId })) as number[];
    return id;
  }

  private async vendor(actor: Actor, vendorAccountId?: number): Promise<AccountRow> {
    return scopedVendor(this.deps.db, actor, vendorAccountId, 'keep a catalog');
  }

  private async accountRow(id: number): Promise<AccountRow> {
    const row = (await this.deps.db('accounts').where({ id }).first()) as AccountRow | undefined;
    if (!row) throw notFound('Account', id);
    return row;
  }
}
