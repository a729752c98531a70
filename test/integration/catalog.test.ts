import { expect } from 'chai';
import type { PeriodInput, PlanInput, RateInput } from '../../src/catalog/catalog-service';
import type { Actor } from '../../src/context';
import { accountActor, makeWorld, type World } from '../helpers/world';
import { failure } from '../helpers/assertions';

async function count(world: World, table: string, where: Record<string, unknown> = {}): Promise<number> {
  const [{ n }] = (await world.deps.db(table).where(where).count({ n: '*' })) as { n: number | string }[];
  return Number(n);
}

const MONTHLY: PeriodInput = { duration: 1, unit: 'month', setupFee: 500n, recurringFee: 999n };
const YEARLY: PeriodInput = { duration: 1, unit: 'year', recurringFee: 9990n, sortOrder: 2 };

let world: World;
let disk: number;
let mailboxes: number;
let ips: number;
let hosting: number;

/** A provider with three resources and a Shared Hosting template (disk limited to 10, mailboxes unlimited). */
async function catalogWorld(): Promise<void> {
  world = await makeWorld();
  const { catalog } = world.services;
  const p = world.provider;
  disk = await catalog.createResource(p, { name: 'Disk space', unit: 'GB', code: 'disk' });
  mailboxes = await catalog.createResource(p, { name: 'Mailboxes', unit: 'mailbox' });
  ips = await catalog.createResource(p, { name: 'IP addresses', unit: 'IP' });
  hosting = await catalog.createTemplate(p, {
    name: 'Shared Hosting',
    serviceGate: 'panel',
    resources: [
      { resourceId: disk, limit: 10 },
      { resourceId: mailboxes, limit: null },
    ],
    parameters: [{ name: 'domain', title: 'Domain name', kind: 'domain' }, { name: 'ftpLogin', kind: 'login', required: false }],
  });
}

const plan = (extra: Partial<PlanInput> = {}): PlanInput => ({ templateId: hosting, name: 'Basic', category: 'Web Hosting', periods: [MONTHLY], ...extra });

describe('catalog', () => {
  beforeEach(catalogWorld);
  afterEach(async () => {
    await world?.close();
  });

  describe('resources and service templates', () => {
    it('lists the resources of a vendor together with those of its ancestors, but not those of a sibling', async () => {
      const a = await accountActor(world, world.provider, 'reseller', 'Alpha');
      const b = await accountActor(world, world.provider, 'reseller', 'Beta');
      const own = await world.services.catalog.createResource(a, { name: 'SSL certificates', unit: 'cert' });
      await world.services.catalog.createResource(b, { name: 'Backups', unit: 'GB' });
      const seen = await world.services.catalog.listResources(a);
      expect(seen.map((r) => r.resourceId)).to.deep.equal([disk, mailboxes, ips, own]);
      expect(seen[0]).to.deep.include({ vendorAccountId: world.provider.accountId, name: 'Disk space', unit: 'GB', code: 'disk' });
    });

    it('refuses a second resource of the same name under one vendor, on name', async () => {
      await failure(world.services.catalog.createResource(world.provider, { name: 'Disk space', unit: 'TB' }), 'INVALID_ARGUMENT', 'name');
      expect(await count(world, 'resources')).to.equal(3);
    });

    it('keeps a customer from keeping a catalog (INVALID_ARGUMENT on vendorAccountId)', async () => {
      const c = await accountActor(world, world.provider, 'customer', 'Cust');
      await failure(world.services.catalog.createResource(c, { name: 'Mine', unit: 'x' }), 'INVALID_ARGUMENT', 'vendorAccountId');
    });

    it('returns a template with its resource limits (null for unlimited) and its parameters with their defaults', async () => {
      const t = await world.services.catalog.getTemplate(world.provider, hosting);
      expect(t).to.deep.include({ templateId: hosting, vendorAccountId: world.provider.accountId, name: 'Shared Hosting', serviceGate: 'panel' });
      expect(t.resources).to.deep.equal([
        { resourceId: disk, name: 'Disk space', unit: 'GB', limit: 10 },
        { resourceId: mailboxes, name: 'Mailboxes', unit: 'mailbox', limit: null },
      ]);
      expect(t.parameters).to.deep.equal([
        { name: 'domain', title: 'Domain name', kind: 'domain', required: true },
        { name: 'ftpLogin', title: 'ftpLogin', kind: 'login', required: false },
      ]);
    });

    it('keeps fractional limits exactly', async () => {
      const id = await world.services.catalog.createTemplate(world.provider, { name: 'VPS', serviceGate: 'vps', resources: [{ resourceId: disk, limit: 2.5 }, { resourceId: ips, limit: 0 }] });
      expect((await world.services.catalog.getTemplate(world.provider, id)).resources.map((r) => r.limit)).to.deep.equal([2.5, 0]);
    });

    it("answers another reseller's template like a missing one", async () => {
      const a = await accountActor(world, world.provider, 'reseller', 'Alpha');
      const b = await accountActor(world, world.provider, 'reseller', 'Beta');
      const bt = await world.services.catalog.createTemplate(b, { name: 'B only', serviceGate: 'panel' });
      const hidden = await failure(world.services.catalog.getTemplate(a, bt), 'NOT_FOUND');
      const missing = await failure(world.services.catalog.getTemplate(a, 99999), 'NOT_FOUND');
      expect(hidden.message.replace(String(bt), '#')).to.equal(missing.message.replace('99999', '#'));
      expect((await world.services.catalog.listTemplates(a)).map((t) => t.templateId)).to.deep.equal([]);
    });
  });

  describe('plans', () => {
    it('stores a plan with its periods and rates and returns them as given', async () => {
      const { catalog } = world.services;
      const id = await catalog.createPlan(world.provider, {
        templateId: hosting,
        name: 'Pro',
        category: 'Web Hosting',
        description: 'For busy sites',
        published: true,
        resellable: true,
        periods: [
          { ...MONTHLY, transferFee: 100n, nonRefundableAmount: 200n, refundPeriodDays: 30, sortOrder: 1 },
          { ...YEARLY, renewalFee: 8990n, enabled: false },
        ],
        rates: [
          { resourceId: disk, included: 10, min: 5, max: 100, setupFee: 50n, recurringFee: 25n, overageFee: 40n, tiers: [{ upTo: 50, fee: 25n }, { upTo: null, fee: 20n }] },
          { resourceId: mailboxes, included: 5 },
        ],
      });
      const p = await catalog.getPlan(world.provider, id);
      expect(p).to.deep.include({ planId: id, vendorAccountId: world.provider.accountId, templateId: hosting, name: 'Pro', category: 'Web Hosting', description: 'For busy sites', serviceGate: 'panel', published: true, trial: false, resellable: true, currency: 'USD' });
      expect(p.periods).to.have.length(2);
      expect(p.periods[0]).to.deep.include({ duration: 1, unit: 'month', trial: false, setupFee: 500n, recurringFee: 999n, renewalFee: 999n, transferFee: 100n, nonRefundableAmount: 200n, refundPeriodDays: 30, enabled: true, sortOrder: 1, currency: 'USD' });
      expect(p.periods[1]).to.deep.include({ duration: 1, unit: 'year', recurringFee: 9990n, renewalFee: 8990n, enabled: false, setupFee: 0n });
      expect(p.resources).to.deep.equal([
        { resourceId: disk, name: 'Disk space', unit: 'GB', included: 10, min: 5, max: 100, setupFee: 50n, recurringFee: 25n, overageFee: 40n, tiers: [{ upTo: 50, fee: 25n }, { upTo: null, fee: 20n }], currency: 'USD' },
        { resourceId: mailboxes, name: 'Mailboxes', unit: 'mailbox', included: 5, min: 0, max: null, setupFee: 0n, recurringFee: 0n, overageFee: 0n, tiers: [], currency: 'USD' },
      ]);
      expect(await count(world, 'events', { name: 'catalog.plan_created', object_id: String(id) })).to.equal(1);
    });

    it('prices a plan in its vendor currency', async () => {
      const adv = await accountActor(world, world.provider, 'reseller', 'Adv');
      await world.services.accounts.update(world.provider, adv.accountId, { resellerKind: 'advanced', currency: 'EUR' });
      const t = await world.services.catalog.createTemplate(adv, { name: 'Euro hosting', serviceGate: 'panel', resources: [{ resourceId: disk }] });
      const id = await world.services.catalog.createPlan(adv, { templateId: t, name: 'Euro', periods: [MONTHLY] });
      const p = await world.services.catalog.getPlan(adv, id);
      expect([p.currency, p.periods[0].currency]).to.deep.equal(['EUR', 'EUR']);
    });

    it('keeps money amounts exact beyond 2^53, up to the largest 64-bit amount', async () => {
      const big = 1234567890123456789n;
      const max = 9223372036854775807n;
      const id = await world.services.catalog.createPlan(world.provider, {
        ...plan(),
        periods: [{ duration: 1, unit: 'month', setupFee: big, recurringFee: max, transferFee: big + 1n }],
        rates: [{ resourceId: disk, overageFee: big, setupFee: max, tiers: [{ upTo: 10, fee: big }, { upTo: null, fee: max }] }],
      });
      const p = await world.services.catalog.getPlan(world.provider, id);
      expect([p.periods[0].setupFee, p.periods[0].recurringFee, p.periods[0].renewalFee, p.periods[0].transferFee]).to.deep.equal([big, max, max, big + 1n]);
      expect([p.resources[0].overageFee, p.resources[0].setupFee]).to.deep.equal([big, max]);
      expect(p.resources[0].tiers.map((t) => t.fee)).to.deep.equal([big, max]);
      const row = (await world.deps.db('plan_periods').where({ plan_id: id }).first()) as { setup_fee: unknown };
      expect(String(row.setup_fee)).to.equal('1234567890123456789');
    });

    it('refuses an amount beyond the 64-bit range on its field instead of storing it inexactly', async () => {
      await failure(
        world.services.catalog.createPlan(world.provider, plan({ periods: [{ duration: 1, unit: 'month', setupFee: 9223372036854775808n }] })),
        'INVALID_ARGUMENT',
        'periods[0].setupFee',
      );
      await failure(world.services.catalog.createPlan(world.provider, plan({ rates: [{ resourceId: disk, tiers: [{ upTo: null, fee: 10n ** 20n }] }] })), 'INVALID_ARGUMENT', 'rates[0].tiers[0].fee');
      expect(await count(world, 'plans')).to.equal(0);
    });

    it("refuses a plan on a template outside the caller's subtree, on templateId", async () => {
      const a = await accountActor(world, world.provider, 'reseller', 'Alpha');
      const b = await accountActor(world, world.provider, 'reseller', 'Beta');
      const bt = await world.services.catalog.createTemplate(b, { name: 'B only', serviceGate: 'panel' });
      await failure(world.services.catalog.createPlan(a, { templateId: bt, name: 'Stolen', periods: [MONTHLY] }), 'INVALID_ARGUMENT', 'templateId');
    });
  });

  describe('the sellable catalog', () => {
    let a: Actor;
    let b: Actor;
    let aCustomer: Actor;
    let resellable: number;
    let providerOnly: number;
    let unpublished: number;
    let aOwn: number;
    let aDraft: number;
    let bOwn: number;
    beforeEach(async () => {
      const { catalog } = world.services;
      a = await accountActor(world, world.provider, 'reseller', 'Alpha');
      b = await accountActor(world, world.provider, 'reseller', 'Beta');
      aCustomer = await accountActor(world, a, 'customer', 'AlphaCust');
      resellable = await catalog.createPlan(world.provider, plan({ name: 'Resellable', published: true, resellable: true }));
      providerOnly = await catalog.createPlan(world.provider, plan({ name: 'Provider only', published: true }));
      unpublished = await catalog.createPlan(world.provider, plan({ name: 'Not yet', resellable: true }));
      const at = await catalog.createTemplate(a, { name: 'A hosting', serviceGate: 'panel', resources: [{ resourceId: disk }] });
      aOwn = await catalog.createPlan(a, { templateId: at, name: 'A own', published: true, periods: [MONTHLY] });
      aDraft = await catalog.createPlan(a, { templateId: at, name: 'A draft', periods: [MONTHLY] });
      const bt = await catalog.createTemplate(b, { name: 'B hosting', serviceGate: 'panel' });
      bOwn = await catalog.createPlan(b, { templateId: bt, name: 'B own', published: true, periods: [MONTHLY] });
    });

    const ids = async (actor: Actor, filter: Parameters<World['services']['catalog']['listPlans']>[1] = {}) =>
      (await world.services.catalog.listPlans(actor, filter)).items.map((p) => p.planId);

    it("shows a basic reseller its own published plans and the provider's resellable published ones, nothing else", async () => {
      expect(await ids(a)).to.deep.equal([resellable, aOwn]);
      expect(await ids(b)).to.deep.equal([resellable, bOwn]);
      expect((await world.services.catalog.listPlans(a, {})).total).to.equal(2);
    });

    it('adds a non-resellable provider plan to one reseller catalog after grantResale, and to no other', async () => {
      await world.services.catalog.grantResale(world.provider, providerOnly, a.accountId);
      expect(await ids(a)).to.deep.equal([resellable, providerOnly, aOwn]);
      expect(await ids(b)).to.deep.equal([resellable, bOwn]);
      expect(await ids(aCustomer)).to.deep.equal([resellable, providerOnly, aOwn]);
      expect(await count(world, 'events', { name: 'catalog.plan_resale_granted' })).to.equal(1);
    });

    it('does not offer a granted plan while it is unpublished', async () => {
      await world.services.catalog.grantResale(world.provider, unpublished, a.accountId);
      expect(await ids(a)).to.not.include(unpublished);
    });

    it('refuses to grant resale to an account that is not a reseller below the plan vendor, on resellerId', async () => {
      await failure(world.services.catalog.grantResale(world.provider, providerOnly, aCustomer.accountId), 'INVALID_ARGUMENT', 'resellerId');
      await failure(world.services.catalog.grantResale(world.provider, providerOnly, world.provider.accountId), 'INVALID_ARGUMENT', 'resellerId');
      await failure(world.services.catalog.grantResale(a, resellable, b.accountId), 'NOT_FOUND');
    });

    it("shows a customer its vendor's sellable catalog", async () => {
      expect(await ids(aCustomer)).to.deep.equal([resellable, aOwn]);
      expect(await ids(aCustomer, { vendorAccountId: a.accountId })).to.deep.equal([resellable, aOwn]);
      const direct = await accountActor(world, world.provider, 'customer', 'Direct');
      expect(await ids(direct)).to.deep.equal([resellable, providerOnly]);
    });

    it("does not let a customer browse another vendor's catalog", async () => {
      await failure(world.services.catalog.listPlans(aCustomer, { vendorAccountId: b.accountId }), 'NOT_FOUND');
      await failure(world.services.catalog.listPlans(a, { vendorAccountId: b.accountId }), 'NOT_FOUND');
    });

    it('shows unpublished plans only to their owner, never the unpublished plans of an ancestor', async () => {
      expect(await ids(a, { includeUnpublished: true })).to.deep.equal([resellable, aOwn, aDraft]);
      expect(await ids(aCustomer, { includeUnpublished: true })).to.deep.equal([resellable, aOwn]);
      expect(await ids(world.provider, { includeUnpublished: true })).to.deep.equal([resellable, providerOnly, unpublished]);
    });

    it('lets the provider browse a reseller catalog, drafts included', async () => {
      expect(await ids(world.provider, { vendorAccountId: a.accountId, includeUnpublished: true })).to.deep.equal([resellable, aOwn, aDraft]);
    });

    it('filters the catalog by category and pages it', async () => {
      const { catalog } = world.services;
      const mail = await catalog.createPlan(world.provider, plan({ name: 'Mail', category: 'Mail', published: true, resellable: true }));
      expect(await ids(a, { category: 'Mail' })).to.deep.equal([mail]);
      const first = await catalog.listPlans(a, { pageSize: 2 });
      const second = await catalog.listPlans(a, { pageSize: 2, page: 2 });
      expect(first.items.map((p) => p.planId)).to.deep.equal([resellable, aOwn]);
      expect(second.items.map((p) => p.planId)).to.deep.equal([mail]);
      expect([first.total, second.total]).to.deep.equal([3, 3]);
    });

    it("answers getPlan of another reseller's plan exactly like a missing plan", async () => {
      const hidden = await failure(world.services.catalog.getPlan(a, bOwn), 'NOT_FOUND');
      const missing = await failure(world.services.catalog.getPlan(a, 99999), 'NOT_FOUND');
      expect(hidden.message.replace(String(bOwn), '#')).to.equal(missing.message.replace('99999', '#'));
      await failure(world.services.catalog.getPlan(aCustomer, bOwn), 'NOT_FOUND');
    });

    it('lets a reseller and its customer read sellable plans, but not unpublished or unresellable ones of the provider', async () => {
      for (const actor of [a, aCustomer]) {
        expect((await world.services.catalog.getPlan(actor, resellable)).name).to.equal('Resellable');
        await failure(world.services.catalog.getPlan(actor, providerOnly), 'NOT_FOUND');
        await failure(world.services.catalog.getPlan(actor, unpublished), 'NOT_FOUND');
      }
      await failure(world.services.catalog.getPlan(aCustomer, aDraft), 'NOT_FOUND');
      expect((await world.services.catalog.getPlan(a, aDraft)).name).to.equal('A draft');
    });

    it('keeps the sellable answer for orders in line with the catalog', async () => {
      const { catalog } = world.services;
      const db = world.deps.db;
      expect(await catalog.isSellable(db, a.accountId, resellable)).to.equal(true);
      expect(await catalog.isSellable(db, a.accountId, aOwn)).to.equal(true);
      expect(await catalog.isSellable(db, a.accountId, bOwn)).to.equal(false);
      expect(await catalog.isSellable(db, a.accountId, aDraft)).to.equal(false);
      expect(await catalog.isSellable(db, a.accountId, providerOnly)).to.equal(false);
    });

    it("does not let a reseller change the provider's plans", async () => {
      await failure(world.services.catalog.updatePlan(a, resellable, { name: 'Mine now' }), 'NOT_FOUND');
      await failure(world.services.catalog.addPeriod(a, resellable, YEARLY), 'NOT_FOUND');
      await failure(world.services.catalog.setRate(a, resellable, { resourceId: disk, overageFee: 1n }), 'NOT_FOUND');
      expect((await world.services.catalog.getPlan(world.provider, resellable)).name).to.equal('Resellable');
    });
  });

  describe('changing plans', () => {
    let planId: number;
    beforeEach(async () => {
      planId = await world.services.catalog.createPlan(world.provider, plan({ rates: [{ resourceId: disk, included: 10 }] }));
      world.clock.advance(3_600_000);
    });

    async function changeRecorded(operation: string, objectType: string, objectId: number, event: string): Promise<void> {
      const audit = await world.deps.db('audit_log').where({ operation }).first();
      expect(audit, `audit ${operation}`).to.deep.include({ object_type: objectType, object_id: String(objectId), outcome: 'ok' });
      expect(Number(audit.at)).to.equal(world.clock.now().getTime());
      const ev = await world.deps.db('events').where({ name: event }).first();
      expect(ev, `event ${event}`).to.not.equal(undefined);
      expect(JSON.parse(ev.payload)).to.deep.include({ planId });
    }

    it('updatePlan changes the fields given and records an audit row and catalog.plan_updated', async () => {
      const after = await world.services.catalog.updatePlan(world.provider, planId, { name: 'Basic Plus', category: 'Hosting', published: true, resellable: true });
      expect(after).to.deep.include({ name: 'Basic Plus', category: 'Hosting', published: true, resellable: true });
      await changeRecorded('UpdatePlan', 'plan', planId, 'catalog.plan_updated');
    });

    it('refuses to publish a plan without an enabled period, on published, and changes nothing', async () => {
      const bare = await world.services.catalog.createPlan(world.provider, plan({ name: 'Bare', periods: [] }));
      await failure(world.services.catalog.updatePlan(world.provider, bare, { published: true, name: 'Renamed' }), 'INVALID_ARGUMENT', 'published');
      expect((await world.services.catalog.getPlan(world.provider, bare)).name).to.equal('Bare');
      expect(await count(world, 'audit_log', { operation: 'UpdatePlan' })).to.equal(0);
    });

    it('addPeriod adds a period and records an audit row and catalog.plan_period_added', async () => {
      const periodId = await world.services.catalog.addPeriod(world.provider, planId, YEARLY);
      const p = await world.services.catalog.getPlan(world.provider, planId);
      expect(p.periods.map((x) => [x.periodId, x.duration, x.unit])).to.deep.equal([
        [p.periods[0].periodId, 1, 'month'],
        [periodId, 1, 'year'],
      ]);
      await changeRecorded('AddPlanPeriod', 'plan_period', periodId, 'catalog.plan_period_added');
    });

    it('addPeriod refuses a period the plan already has, on period', async () => {
      await failure(world.services.catalog.addPeriod(world.provider, planId, { ...MONTHLY, recurringFee: 1n }), 'INVALID_ARGUMENT', 'period');
      expect(await count(world, 'plan_periods', { plan_id: planId })).to.equal(1);
    });

    it('addPeriod refuses a paid period on a trial plan, on period.trial', async () => {
      const trial = await world.services.catalog.createPlan(world.provider, plan({ name: 'Trial', trial: true, periods: [{ duration: 30, unit: 'day', trial: true }] }));
      await failure(world.services.catalog.addPeriod(world.provider, trial, MONTHLY), 'INVALID_ARGUMENT', 'period.trial');
    });

    it('setRate sets a rate, replaces it when set again, and records an audit row and catalog.resource_rate_set each time', async () => {
      const { catalog } = world.services;
      await catalog.setRate(world.provider, planId, { resourceId: mailboxes, included: 5, overageFee: 50n });
      await catalog.setRate(world.provider, planId, { resourceId: mailboxes, included: 5, overageFee: 50n });
      await catalog.setRate(world.provider, planId, { resourceId: disk, included: 20, max: 200, recurringFee: 30n });
      const p = await catalog.getPlan(world.provider, planId);
      expect(p.resources.map((r) => [r.resourceId, r.included, r.max, r.recurringFee, r.overageFee])).to.deep.equal([
        [disk, 20, 200, 30n, 0n],
        [mailboxes, 5, null, 0n, 50n],
      ]);
      expect(await count(world, 'resource_rates', { plan_id: planId })).to.equal(2);
      expect(await count(world, 'audit_log', { operation: 'SetResourceRate' })).to.equal(3);
      await changeRecorded('SetResourceRate', 'plan', planId, 'catalog.resource_rate_set');
    });

    it('setRate refuses a resource the template lacks, on rate.resourceId', async () => {
      await failure(world.services.catalog.setRate(world.provider, planId, { resourceId: ips }), 'INVALID_ARGUMENT', 'rate.resourceId');
    });

    it('updatePeriod changes a period and records an audit row and catalog.plan_period_updated', async () => {
      const [period] = (await world.services.catalog.getPlan(world.provider, planId)).periods;
      const after = await world.services.catalog.updatePeriod(world.provider, period.periodId, { ...MONTHLY, recurringFee: 1299n });
      expect(after).to.deep.include({ periodId: period.periodId, recurringFee: 1299n, renewalFee: 1299n, setupFee: 500n });
      await changeRecorded('UpdatePlanPeriod', 'plan_period', period.periodId, 'catalog.plan_period_updated');
    });

    it('updatePeriod answers a period of a plan outside the caller subtree exactly like a missing period', async () => {
      const r = await accountActor(world, world.provider, 'reseller', 'Outsider');
      const [period] = (await world.services.catalog.getPlan(world.provider, planId)).periods;
      const hidden = await failure(world.services.catalog.updatePeriod(r, period.periodId, { ...MONTHLY, recurringFee: 1n }), 'NOT_FOUND');
      const missing = await failure(world.services.catalog.updatePeriod(r, 99999, { ...MONTHLY, recurringFee: 1n }), 'NOT_FOUND');
      expect(hidden.message.replace(String(period.periodId), '#')).to.equal(missing.message.replace('99999', '#'));
      expect((await world.services.catalog.getPlan(world.provider, planId)).periods[0].recurringFee).to.equal(999n);
      expect(await count(world, 'audit_log', { operation: 'UpdatePlanPeriod' })).to.equal(0);
    });

    it('updatePeriod refuses to turn a period into a copy of another period of the plan, on period', async () => {
      const yearly = await world.services.catalog.addPeriod(world.provider, planId, YEARLY);
      await failure(world.services.catalog.updatePeriod(world.provider, yearly, { ...MONTHLY }), 'INVALID_ARGUMENT', 'period');
      const p = await world.services.catalog.getPlan(world.provider, planId);
      expect(p.periods.map((x) => x.unit)).to.deep.equal(['month', 'year']);
    });

    it('updatePeriod refuses to disable the last enabled period of a published plan, on period.enabled', async () => {
      await world.services.catalog.updatePlan(world.provider, planId, { published: true });
      const [period] = (await world.services.catalog.getPlan(world.provider, planId)).periods;
      await failure(world.services.catalog.updatePeriod(world.provider, period.periodId, { ...MONTHLY, enabled: false }), 'INVALID_ARGUMENT', 'period.enabled');
      expect((await world.services.catalog.getPlan(world.provider, planId)).periods[0].enabled).to.equal(true);
    });

    it('updatePeriod refuses a paid period on a trial plan, on period.trial', async () => {
      const trial = await world.services.catalog.createPlan(world.provider, plan({ name: 'Trial', trial: true, periods: [{ duration: 30, unit: 'day', trial: true }] }));
      const [period] = (await world.services.catalog.getPlan(world.provider, trial)).periods;
      await failure(world.services.catalog.updatePeriod(world.provider, period.periodId, { duration: 30, unit: 'day', trial: false, recurringFee: 100n }), 'INVALID_ARGUMENT', 'period.trial');
      expect((await world.services.catalog.getPlan(world.provider, trial)).periods[0].trial).to.equal(true);
    });
  });
});

// Refusals create nothing, so these share one catalog (a fresh MariaDB database per test costs a second).
describe('catalog validation', () => {
  let a: Actor;
  let foreign: number;
  before(async () => {
    await catalogWorld();
    const b = await accountActor(world, world.provider, 'reseller', 'Beta');
    foreign = await world.services.catalog.createResource(b, { name: 'Foreign', unit: 'x' });
    a = await accountActor(world, world.provider, 'reseller', 'Alpha');
  });
  after(async () => {
    await world?.close();
  });

  const templateCases: [string, Record<string, unknown>, string][] = [
    ['a resource another reseller owns', { resources: [{ resourceId: -1 }] }, 'resources[0].resourceId'],
    ['the same resource twice', { resources: [{ resourceId: 1 }, { resourceId: 1 }] }, 'resources'],
    ['a negative limit', { resources: [{ resourceId: 1, limit: -1 }] }, 'resources[0].limit'],
    ['a parameter kind that does not exist', { parameters: [{ name: 'x', kind: 'colour' }] }, 'parameters[0].kind'],
    ['a parameter name that is not an identifier', { parameters: [{ name: '1st name' }] }, 'parameters[0].name'],
    ['no service gate', { serviceGate: '' }, 'serviceGate'],
  ];
  for (const [what, patch, field] of templateCases) {
    it(`refuses a template with ${what}, on ${field}`, async () => {
      const fix = (list: unknown) => (list as { resourceId: number }[] | undefined)?.map((r) => ({ ...r, resourceId: r.resourceId === -1 ? foreign : disk }));
      const input = { name: 'T', serviceGate: 'panel', ...patch, resources: fix(patch.resources) };
      const before = await count(world, 'service_templates');
      await failure(world.services.catalog.createTemplate(a, input as Parameters<World['services']['catalog']['createTemplate']>[1]), 'INVALID_ARGUMENT', field);
      expect(await count(world, 'service_templates')).to.equal(before);
    });
  }

  const planCases: [string, Partial<PlanInput>, string][] = [
    ['a period of 0 months', { periods: [{ duration: 0, unit: 'month' }] }, 'periods[0].duration'],
    ['a period of 1.5 months', { periods: [{ duration: 1.5, unit: 'month' }] }, 'periods[0].duration'],
    ['a period in weeks', { periods: [{ duration: 1, unit: 'week' }] }, 'periods[0].unit'],
    ['a negative setup fee', { periods: [{ duration: 1, unit: 'month', setupFee: -1n }] }, 'periods[0].setupFee'],
    ['a fee given as a float', { periods: [{ duration: 1, unit: 'month', recurringFee: 9.99 as unknown as bigint }] }, 'periods[0].recurringFee'],
    ['a negative refund period', { periods: [{ duration: 1, unit: 'month', refundPeriodDays: -1 }] }, 'periods[0].refundPeriodDays'],
    ['a trial period with a fee', { periods: [{ duration: 30, unit: 'day', trial: true, recurringFee: 100n }] }, 'periods[0].trial'],
    ['a trial period with a setup fee', { periods: [{ duration: 30, unit: 'day', trial: true, setupFee: 100n }] }, 'periods[0].trial'],
    ['the same period twice', { periods: [MONTHLY, { duration: 1, unit: 'month', recurringFee: 1n }] }, 'periods[1]'],
    ['a published plan with no enabled period', { published: true, periods: [{ ...MONTHLY, enabled: false }] }, 'periods'],
    ['a published plan with no period at all', { published: true, periods: [] }, 'periods'],
    ['a trial plan with a paid period', { trial: true, periods: [{ duration: 30, unit: 'day', trial: true }, MONTHLY] }, 'periods'],
    ['a rate for a resource the template lacks', { rates: [{ resourceId: -1 }] }, 'rates[0].resourceId'],
    ['two rates for one resource', { rates: [{ resourceId: 1 }, { resourceId: 1 }] }, 'rates'],
    ['a max below the min', { rates: [{ resourceId: 1, min: 5, max: 4 }] }, 'rates[0].max'],
    ['a negative included amount', { rates: [{ resourceId: 1, included: -1 }] }, 'rates[0].included'],
    ['a negative overage fee', { rates: [{ resourceId: 1, overageFee: -5n }] }, 'rates[0].overageFee'],
    ['tiers out of order', { rates: [{ resourceId: 1, tiers: [{ upTo: 100, fee: 2n }, { upTo: 50, fee: 1n }] }] }, 'rates[0].tiers[1].upTo'],
    ['an open-ended tier before the last', { rates: [{ resourceId: 1, tiers: [{ upTo: null, fee: 2n }, { upTo: 50, fee: 1n }] }] }, 'rates[0].tiers[1].upTo'],
    ['a negative tier fee', { rates: [{ resourceId: 1, tiers: [{ upTo: null, fee: -1n }] }] }, 'rates[0].tiers[0].fee'],
    ['no name', { name: '' }, 'name'],
    ['a template that does not exist', { templateId: 99999 }, 'templateId'],
  ];
  for (const [what, patch, field] of planCases) {
    it(`refuses ${what} with INVALID_ARGUMENT on ${field}, creating nothing`, async () => {
      const fixRates = (rates?: RateInput[]) => rates?.map((r) => ({ ...r, resourceId: r.resourceId === -1 ? ips : disk }));
      const input = plan({ ...patch, rates: fixRates(patch.rates) });
      await failure(world.services.catalog.createPlan(world.provider, input), 'INVALID_ARGUMENT', field);
      expect(await count(world, 'plans')).to.equal(0);
      expect(await count(world, 'plan_periods')).to.equal(0);
    });
  }
});
