import { expect } from 'chai';
import { DbPluginStore } from '../../src/plugins/store';
import { PluginInstancesService } from '../../src/plugins/instances-service';
import { createMemoryStore, parseDomainName, isOperationId, MAX_STORE_VALUE_BYTES, type PluginStore } from '../../src/plugins/sdk';
import { makeWorld, type World } from '../helpers/world';
import { bundledPlugins } from './bundled';

/** Runs the same checks against the database store (both DBs) and the SDK's memory store. */
function storeBehaviour(label: string, make: () => Promise<{ a: PluginStore; b: PluginStore }>): void {
  describe(`plugin store: ${label}`, () => {
    let a: PluginStore;
    let b: PluginStore;
    beforeEach(async () => {
      ({ a, b } = await make());
    });

    it('puts, gets, replaces and deletes JSON values', async () => {
      expect(await a.get('missing')).to.equal(undefined);
      await a.put('k', { nested: [1, 'two', { three: true }], n: null });
      expect(await a.get('k')).to.deep.equal({ nested: [1, 'two', { three: true }], n: null });
      await a.put('k', 'replaced');
      expect(await a.get('k')).to.equal('replaced');
      expect(await a.delete('k')).to.equal(true);
      expect(await a.delete('k')).to.equal(false);
      expect(await a.get('k')).to.equal(undefined);
      await a.put('zero', 0);
      await a.put('false', false);
      expect([await a.get('zero'), await a.get('false')]).to.deep.equal([0, false]);
    });

    it('lists by exact prefix in key order: case matters and % _ are plain characters', async () => {
      for (const k of ['op/2', 'op/1', 'OP/3', 'opx', 'o%/4', 'o_/5', 'other']) await a.put(k, k);
      expect((await a.list('op/')).map((e) => e.key)).to.deep.equal(['op/1', 'op/2']);
      expect((await a.list('o%')).map((e) => e.key)).to.deep.equal(['o%/4']);
      expect((await a.list('o_')).map((e) => e.key)).to.deep.equal(['o_/5']);
      expect((await a.list()).map((e) => e.key)).to.deep.equal(['OP/3', 'o%/4', 'o_/5', 'op/1', 'op/2', 'opx', 'other']);
      expect(await a.get('Op/1')).to.equal(undefined);
    });

    it('keeps two instances apart', async () => {
      await a.put('same', 'a');
      await b.put('same', 'b');
      expect([await a.get('same'), await b.get('same')]).to.deep.equal(['a', 'b']);
      await b.delete('same');
      expect(await a.get('same')).to.equal('a');
      expect(await b.list()).to.deep.equal([]);
    });

    it('refuses an empty or too long key, an undefined value and a value over 1 MiB', async () => {
      let caught = 0;
      for (const attempt of [() => a.put('', 1), () => a.put('x'.repeat(256), 1), () => a.put('u', undefined), () => a.put('big', 'x'.repeat(MAX_STORE_VALUE_BYTES))]) {
        try {
          await attempt();
        } catch {
          caught++;
        }
      }
      expect(caught).to.equal(4);
      await a.put('x'.repeat(255), 'longest key');
      expect(await a.get('x'.repeat(255))).to.equal('longest key');
    });
  });
}

describe('plugin store', () => {
  let world: World;
  let svc: PluginInstancesService;
  before(async () => {
    world = await makeWorld();
    svc = new PluginInstancesService(world.deps, bundledPlugins());
  });
  after(async () => {
    await world?.close();
  });
  let n = 0;
  const instance = () => svc.create(world.provider, { kind: 'registrar', plugin: 'sandbox', name: `store-${++n}` });

  storeBehaviour('database', async () => {
    const now = () => world.clock.now();
    return { a: new DbPluginStore(world.deps.db, await instance(), now), b: new DbPluginStore(world.deps.db, await instance(), now) };
  });
  storeBehaviour('memory (SDK)', async () => ({ a: createMemoryStore(), b: createMemoryStore() }));

  it('is given to every instantiated plugin as context.store, and its rows go with the instance', async () => {
    const id = await instance();
    const registrar = await svc.instantiate(id);
    expect(registrar).to.be.an('object');
    const store = new DbPluginStore(world.deps.db, id, () => world.clock.now());
    await store.put('k', 1);
    const [{ c }] = (await world.deps.db('plugin_store').where({ instance_id: id }).count({ c: '*' })) as { c: number }[];
    expect(Number(c)).to.equal(1);
    await world.deps.db('plugin_instances').where({ id }).delete();
    const [{ c: after }] = (await world.deps.db('plugin_store').where({ instance_id: id }).count({ c: '*' })) as { c: number }[];
    expect(Number(after)).to.equal(0);
  });
});

describe('registrar SDK helpers', () => {
  it('normalises domain names: trimmed, lowercase, no trailing dot, IDN as punycode', () => {
    expect(parseDomainName('  Example.COM. ')).to.deep.equal({ ok: true, name: 'example.com', tld: 'com' });
    expect(parseDomainName('bücher.de')).to.deep.equal({ ok: true, name: 'xn--bcher-kva.de', tld: 'de' });
    expect(parseDomainName('例え.テスト')).to.deep.include({ ok: true, name: 'xn--r8jz45g.xn--zckzah' });
    expect(parseDomainName('a-b.co.uk')).to.deep.include({ ok: true, name: 'a-b.co.uk', tld: 'uk' });
  });

  it('refuses what is not a domain name, saying why', () => {
    for (const bad of ['', 'com', 'a..b', '-a.com', 'a-.com', 'a b.com', 'a_b.com', 'http://a.com', 'x@a.com', '1.2.3.4', `${'a'.repeat(64)}.com`, `${'a.'.repeat(127)}com`, 42, null]) {
      const r = parseDomainName(bad);
      expect(r.ok, String(bad)).to.equal(false);
      if (!r.ok) expect(r.message).to.be.a('string').and.not.equal('');
    }
  });

  it('accepts operation ids of 3-64 printable characters without spaces', () => {
    expect(isOperationId('op-1')).to.equal(true);
    expect(isOperationId('x'.repeat(64))).to.equal(true);
    for (const bad of ['', 'ab', 'x'.repeat(65), 'has space', 7, undefined]) expect(isOperationId(bad), String(bad)).to.equal(false);
  });
});
