import { expect } from 'chai';
import type { Actor } from '../../src/context';
import { accountActor, makeWorld, type World } from '../helpers/world';
import { failure } from '../helpers/assertions';

describe('catalog updates', () => {
  // One world for the file: each test makes the catalog objects it needs under names of its own.
  let world: World;

  before(async () => {
    world = await makeWorld();
  });
  after(async () => {
    await world?.close();
  });

  describe('catalog: updateResource', () => {
    it('renames a resource, audits it and refuses a duplicate name and an empty unit with the field', async () => {
      const { catalog } = world.services;
      const p = world.provider;
      const disk = await catalog.createResource(p, { name: 'Disk space', unit: 'GB' });
      await catalog.createResource(p, { name: 'Mailboxes', unit: 'mailbox' });
      await catalog.updateResource(p, disk, { name: 'Disk', unit: 'MB', description: 'SSD' });
      const list = await catalog.listResources(p);
      const r = list.find((x) => x.resourceId === disk)!;
      expect([r.name, r.unit, r.description]).to.deep.equal(['Disk', 'MB', 'SSD']);
      const events = (await world.deps.db('events').where({ name: 'catalog.resource_updated' })) as unknown[];
      expect(events).to.have.length(1);
      await failure(catalog.updateResource(p, disk, { name: 'Mailboxes' }), 'INVALID_ARGUMENT', 'name');
      await failure(catalog.updateResource(p, disk, { unit: ' ' }), 'INVALID_ARGUMENT', 'unit');
      const after = (await catalog.listResources(p)).find((x) => x.resourceId === disk)!;
      expect([after.name, after.unit]).to.deep.equal(['Disk', 'MB']);
      await failure(catalog.updateResource(p, 999999, { name: 'X' }), 'NOT_FOUND');
    });

    it("answers NOT_FOUND to a reseller editing the provider's resource, and changes nothing", async () => {
      const { catalog } = world.services;
      const bandwidth = await catalog.createResource(world.provider, { name: 'Bandwidth', unit: 'GB' });
      const reseller = await accountActor(world, world.provider, 'reseller', 'Resell Co');
      await failure(catalog.updateResource(reseller, bandwidth, { name: 'Mine' }), 'NOT_FOUND');
      await failure(catalog.getResource(reseller, bandwidth), 'NOT_FOUND');
      const r = (await catalog.listResources(world.provider)).find((x) => x.resourceId === bandwidth)!;
      expect(r.name).to.equal('Bandwidth');
    });
  });

  describe('catalog: updateTemplate', () => {
    let ram: number;
    let cpu: number;
    let ips: number;
    let vps: number;

    before(async () => {
      const { catalog } = world.services;
      const p = world.provider;
      ram = await catalog.createResource(p, { name: 'RAM', unit: 'MB' });
      cpu = await catalog.createResource(p, { name: 'CPU cores', unit: 'core' });
      ips = await catalog.createResource(p, { name: 'IPv4 addresses', unit: 'IP' });
      vps = await catalog.createTemplate(p, { name: 'VPS', serviceGate: 'sandbox', resources: [{ resourceId: ram, limit: 2048 }, { resourceId: cpu, limit: 2 }] });
      await catalog.createTemplate(p, { name: 'Dedicated', serviceGate: 'sandbox' });
    });

    it('edits name, description, gate and the limits table (a limit changed, one resource added, one removed), audited with its event', async () => {
      const { catalog } = world.services;
      const t = await catalog.updateTemplate(world.provider, vps, {
        name: 'Cloud VPS',
        description: 'KVM',
        serviceGate: 'kvm-panel',
        resources: [
          { resourceId: ram, limit: 4096 },
          { resourceId: ips, limit: null },
        ],
      });
      expect([t.name, t.description, t.serviceGate]).to.deep.equal(['Cloud VPS', 'KVM', 'kvm-panel']);
      expect(t.resources.map((r) => [r.resourceId, r.limit])).to.deep.equal([
        [ram, 4096],
        [ips, null],
      ]);
      expect((await catalog.getTemplate(world.provider, vps)).resources).to.deep.equal(t.resources);
      const event = await world.deps.db('events').where({ name: 'catalog.template_updated' }).first('payload', 'object_type', 'object_id');
      expect(event).to.include({ object_type: 'service_template' });
      expect(JSON.parse(event.payload)).to.deep.include({ templateId: vps, name: 'Cloud VPS', serviceGate: 'kvm-panel', resourcesAdded: [ips], resourcesRemoved: [cpu], ratesRemoved: [] });
      const audit = await world.deps.db('audit_log').where({ operation: 'UpdateServiceTemplate', object_id: String(vps) }).first('details');
      expect(JSON.parse(audit.details)).to.include({ name: 'Cloud VPS', service_gate: 'kvm-panel' });
    });

    it('refuses what createTemplate refuses, naming the field, and changes nothing', async () => {
      const { catalog } = world.services;
      const p = world.provider;
      const before = await catalog.getTemplate(p, vps);
      await failure(catalog.updateTemplate(p, vps, { name: 'Dedicated' }), 'INVALID_ARGUMENT', 'name');
      await failure(catalog.updateTemplate(p, vps, { name: '  ' }), 'INVALID_ARGUMENT', 'name');
      await failure(catalog.updateTemplate(p, vps, { serviceGate: '' }), 'INVALID_ARGUMENT', 'serviceGate');
      await failure(catalog.updateTemplate(p, vps, { name: 'Other', resources: [{ resourceId: ram, limit: -1 }] }), 'INVALID_ARGUMENT', 'resources[0].limit');
      await failure(catalog.updateTemplate(p, vps, { resources: [{ resourceId: ram }, { resourceId: 999999 }] }), 'INVALID_ARGUMENT', 'resources[1].resourceId');
      await failure(catalog.updateTemplate(p, vps, { resources: [{ resourceId: ram }, { resourceId: ram, limit: 1 }] }), 'INVALID_ARGUMENT', 'resources');
      expect(await catalog.getTemplate(p, vps)).to.deep.equal(before);
      // The same values sent back (as a form does) change nothing and announce nothing.
      const events = async () => (await world.deps.db('events').where({ name: 'catalog.template_updated' })).length;
      const n = await events();
      const same = await catalog.updateTemplate(p, vps, { name: before.name, serviceGate: before.serviceGate, description: before.description, resources: [...before.resources].reverse(), parameters: before.parameters });
      expect(same).to.deep.equal(before);
      expect(await events()).to.equal(n);
    });

    it('replaces the order parameters as a whole, refusing a name given twice and an unknown kind on that entry', async () => {
      const { catalog } = world.services;
      const p = world.provider;
      const t = await catalog.updateTemplate(p, vps, { parameters: [{ name: 'hostname', title: 'Host name' }, { name: 'rootLogin', kind: 'login', required: false }] });
      expect(t.parameters).to.deep.equal([
        { name: 'hostname', title: 'Host name', kind: 'string', required: true },
        { name: 'rootLogin', title: 'rootLogin', kind: 'login', required: false },
      ]);
      await failure(catalog.updateTemplate(p, vps, { parameters: [{ name: 'hostname' }, { name: 'hostname', kind: 'domain' }] }), 'INVALID_ARGUMENT', 'parameters[1].name');
      await failure(catalog.updateTemplate(p, vps, { parameters: [{ name: 'hostname', kind: 'colour' }] }), 'INVALID_ARGUMENT', 'parameters[0].kind');
      await failure(catalog.createTemplate(p, { name: 'Twice', serviceGate: 'sandbox', parameters: [{ name: 'a' }, { name: 'a' }] }), 'INVALID_ARGUMENT', 'parameters[1].name');
      expect((await catalog.getTemplate(p, vps)).parameters).to.deep.equal(t.parameters);
      const cleared = await catalog.updateTemplate(p, vps, { parameters: [] });
      expect(cleared.parameters).to.deep.equal([]);
    });

    it("answers NOT_FOUND to a reseller editing the provider's template, and lets it edit its own (with the provider's resources)", async () => {
      const { catalog } = world.services;
      const reseller = await accountActor(world, world.provider, 'reseller', 'Template Reseller');
      await failure(catalog.updateTemplate(reseller, vps, { name: 'Mine' }), 'NOT_FOUND');
      await failure(catalog.updateTemplate(world.provider, 999999, { name: 'X' }), 'NOT_FOUND');
      const own = await catalog.createTemplate(reseller, { name: 'Reseller VPS', serviceGate: 'sandbox' });
      const t = await catalog.updateTemplate(reseller, own, { resources: [{ resourceId: ram, limit: 512 }] });
      expect(t.resources.map((r) => [r.name, r.limit])).to.deep.equal([['RAM', 512]]);
      expect((await catalog.getTemplate(world.provider, vps)).name).to.equal('Cloud VPS');
    });

    describe('with plans built on the template', () => {
      let mail: number;
      let disk: number;
      let boxes: number;
      let published: number;
      let draft: number;
      let customer: Actor;

      before(async () => {
        const { catalog } = world.services;
        const p = world.provider;
        disk = await catalog.createResource(p, { name: 'Mail storage', unit: 'GB' });
        boxes = await catalog.createResource(p, { name: 'Mail accounts', unit: 'mailbox' });
        mail = await catalog.createTemplate(p, { name: 'Mail', serviceGate: 'sandbox', resources: [{ resourceId: disk, limit: 50 }, { resourceId: boxes, limit: 100 }] });
        published = await catalog.createPlan(p, {
          templateId: mail,
          name: 'Mail Pro',
          published: true,
          periods: [{ duration: 1, unit: 'month', recurringFee: 500n }],
          rates: [{ resourceId: disk, included: 10, min: 5 }],
        });
        draft = await catalog.createPlan(p, { templateId: mail, name: 'Mail Draft', rates: [{ resourceId: boxes, included: 20 }] });
        customer = await accountActor(world, p, 'customer', 'Mail Customer');
      });

      it('refuses to take out a resource a published plan prices, naming the plan, and changes nothing; its limit may change', async () => {
        const { catalog } = world.services;
        const p = world.provider;
        const err = await failure(catalog.updateTemplate(p, mail, { name: 'Mail 2', resources: [{ resourceId: boxes, limit: 100 }] }), 'INVALID_ARGUMENT', 'resources');
        expect(err.message).to.contain("published plan 'Mail Pro'");
        const kept = await catalog.getTemplate(p, mail);
        expect([kept.name, kept.resources.map((r) => [r.resourceId, r.limit])]).to.deep.equal([
          'Mail',
          [
            [disk, 50],
            [boxes, 100],
          ],
        ]);
        // A limit below what the plan includes cuts nothing: a subscription gets the larger of the two.
        const t = await catalog.updateTemplate(p, mail, { resources: [{ resourceId: disk, limit: 8 }, { resourceId: boxes, limit: 20 }] });
        expect(t.resources.map((r) => r.limit)).to.deep.equal([8, 20]);
        expect((await catalog.getPlan(p, published)).resources.map((r) => [r.resourceId, r.included])).to.deep.equal([[disk, 10]]);
      });

      it("drops a draft plan's rate with the resource it prices, and keeps the template's gate while a subscription of its plans lives", async () => {
        const { catalog } = world.services;
        const p = world.provider;
        const t = await catalog.updateTemplate(p, mail, { resources: [{ resourceId: disk, limit: 8 }] });
        expect(t.resources.map((r) => r.resourceId)).to.deep.equal([disk]);
        expect((await catalog.getPlan(p, draft)).resources).to.deep.equal([]);
        const event = await world.deps.db('events').where({ name: 'catalog.template_updated' }).orderBy('id', 'desc').first('payload');
        expect(JSON.parse(event.payload)).to.deep.include({ resourcesRemoved: [boxes], ratesRemoved: [{ planId: draft, resourceId: boxes }] });

        // A running subscription of the published plan (written as the order saga writes it) holds the gate and its resources.
        const now = world.clock.now().getTime();
        const period = (await catalog.getPlan(p, published)).periods[0];
        const [subId] = (await world.deps.db('subscriptions').insert({
          account_id: customer.accountId,
          vendor_id: p.accountId,
          plan_id: published,
          period_id: period.periodId,
          order_id: null,
          name: 'Mail Pro',
          status: 30,
          service_status: 50,
          service_gate: 'sandbox',
          gate_reference: null,
          parameters: '{}',
          created_at: now,
          updated_at: now,
        })) as number[];
        await world.deps.db('subscription_resources').insert({ subscription_id: subId, resource_id: disk, included: 10, additional: 0, limit_value: 10, usage: 0 });
        await catalog.updatePlan(p, published, { published: false });
        await failure(catalog.updateTemplate(p, mail, { serviceGate: 'other-gate' }), 'INVALID_ARGUMENT', 'serviceGate');
        const held = await failure(catalog.updateTemplate(p, mail, { resources: [] }), 'INVALID_ARGUMENT', 'resources');
        expect(held.message).to.contain(`live subscription ${subId}`);
        expect((await catalog.getTemplate(p, mail)).serviceGate).to.equal('sandbox');

        // Once it is terminated, nothing holds the template: the gate may change and the resource go (the unpublished plan's rate with it).
        await world.deps.db('subscriptions').where({ id: subId }).update({ status: 60 });
        const moved = await catalog.updateTemplate(p, mail, { serviceGate: 'other-gate', resources: [] });
        expect([moved.serviceGate, moved.resources]).to.deep.equal(['other-gate', []]);
        expect((await catalog.getPlan(p, published)).resources).to.deep.equal([]);
      });
    });
  });
});
