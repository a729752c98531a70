import { expect } from 'chai';
import { accountActor, makeWorld, type World } from '../helpers/world';
import { failure } from '../helpers/assertions';

let world: World;

describe('catalog: updateResource', () => {
  beforeEach(async () => {
    world = await makeWorld();
  });
  afterEach(async () => {
    await world.close();
  });

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
    const disk = await catalog.createResource(world.provider, { name: 'Disk space', unit: 'GB' });
    const reseller = await accountActor(world, world.provider, 'reseller', 'Resell Co');
    await failure(catalog.updateResource(reseller, disk, { name: 'Mine' }), 'NOT_FOUND');
    const r = (await catalog.listResources(world.provider)).find((x) => x.resourceId === disk)!;
    expect(r.name).to.equal('Disk space');
  });
});
