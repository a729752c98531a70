import { expect } from 'chai';
import { failure } from '../helpers/assertions';
import { count, orderWorld, type OrderWorld } from '../subscriptions/order-world';

let w: OrderWorld;

describe('promo codes', () => {
  beforeEach(async () => {
    w = await orderWorld();
  });
  afterEach(async () => {
    await w?.world.close();
  });

  it('stores the code upper-cased, unique per vendor (in any case), with audit and an event', async () => {
    const p = await w.promoCodes.create(w.world.provider, { code: 'spring-25', kind: 'percent', value: 2500n, appliesTo: 'first_period', maxUses: 10 });
    expect(p).to.deep.include({ code: 'SPRING-25', kind: 'percent', value: 2500n, currency: null, appliesTo: 'first_period', maxUses: 10, uses: 0, vendorAccountId: w.world.provider.accountId });
    await failure(w.promoCodes.create(w.world.provider, { code: 'Spring-25', kind: 'percent', value: 100n }), 'INVALID_ARGUMENT', 'code');
    // Another vendor may have the same code.
    await w.promoCodes.create(w.reseller, { code: 'SPRING-25', kind: 'fixed', value: 100n, currency: 'eur' });
    expect(await count(w.world, 'events', { name: 'promo_code.created' })).to.equal(2);
    expect(await count(w.world, 'audit_log', { operation: 'CreatePromoCode' })).to.equal(2);
  });

  it('checks percent basis points 1..10000, a fixed amount with its currency, the window and the use limit', async () => {
    const p = w.world.provider;
    await failure(w.promoCodes.create(p, { code: 'A', kind: 'percent', value: 0n }), 'INVALID_ARGUMENT', 'value');
    await failure(w.promoCodes.create(p, { code: 'A', kind: 'percent', value: 10001n }), 'INVALID_ARGUMENT', 'value');
    await failure(w.promoCodes.create(p, { code: 'A', kind: 'fixed', value: 500n }), 'INVALID_ARGUMENT', 'currency');
    await failure(w.promoCodes.create(p, { code: 'A', kind: 'fixed', value: 500n, currency: 'XXX1' }), 'INVALID_ARGUMENT', 'currency');
    await failure(w.promoCodes.create(p, { code: 'A', kind: 'bogus', value: 500n }), 'INVALID_ARGUMENT', 'kind');
    await failure(w.promoCodes.create(p, { code: 'A B', kind: 'percent', value: 500n }), 'INVALID_ARGUMENT', 'code');
    await failure(w.promoCodes.create(p, { code: 'A', kind: 'percent', value: 500n, validFrom: new Date('2026-02-01Z'), validTo: new Date('2026-01-01Z') }), 'INVALID_ARGUMENT', 'validTo');
    await failure(w.promoCodes.create(p, { code: 'A', kind: 'percent', value: 500n, maxUses: 0 }), 'INVALID_ARGUMENT', 'maxUses');
    await failure(w.promoCodes.create(w.customer, { code: 'A', kind: 'percent', value: 500n }), 'INVALID_ARGUMENT', 'vendorAccountId');
    expect((await w.promoCodes.create(p, { code: 'A', kind: 'percent', value: 10000n })).value).to.equal(10000n);
  });

  it("finds a code of the order's vendor only, inside its validity window (valid_to exclusive)", async () => {
    const from = new Date('2026-01-10T00:00:00Z');
    const to = new Date('2026-01-20T00:00:00Z');
    await w.promoCodes.create(w.world.provider, { code: 'WINDOW', kind: 'percent', value: 1000n, validFrom: from, validTo: to });
    const db = w.world.deps.db;
    const provider = w.world.provider.accountId;
    expect((await w.promoCodes.find(db, provider, 'window', from)).code).to.equal('WINDOW');
    await failure(w.promoCodes.find(db, provider, 'WINDOW', new Date(from.getTime() - 1)), 'INVALID_ARGUMENT', 'promoCode');
    await failure(w.promoCodes.find(db, provider, 'WINDOW', to), 'INVALID_ARGUMENT', 'promoCode');
    await failure(w.promoCodes.find(db, w.reseller.accountId, 'WINDOW', from), 'INVALID_ARGUMENT', 'promoCode');
    await failure(w.promoCodes.find(db, provider, 'NOPE', from), 'INVALID_ARGUMENT', 'promoCode');
  });

  it('counts uses atomically: the use past max_uses is a CONFLICT and counts nothing', async () => {
    const p = await w.promoCodes.create(w.world.provider, { code: 'TWICE', kind: 'percent', value: 1000n, maxUses: 2 });
    const db = w.world.deps.db;
    await db.transaction((tx) => w.promoCodes.consume(tx, p.promoCodeId));
    await db.transaction((tx) => w.promoCodes.consume(tx, p.promoCodeId));
    const err = await failure(db.transaction((tx) => w.promoCodes.consume(tx, p.promoCodeId)), 'CONFLICT', 'promoCode');
    expect(err.message).to.contain('used up');
    await failure(w.promoCodes.find(db, w.world.provider.accountId, 'TWICE', w.world.clock.now()), 'CONFLICT', 'promoCode');
    expect((await w.promoCodes.list(w.world.provider))[0]!.uses).to.equal(2);
    // No limit: always consumable.
    const open = await w.promoCodes.create(w.world.provider, { code: 'OPEN', kind: 'percent', value: 1000n });
    for (let i = 0; i < 3; i++) await db.transaction((tx) => w.promoCodes.consume(tx, open.promoCodeId));
    expect((await w.promoCodes.list(w.world.provider))[1]!.uses).to.equal(3);
  });

  it('lets exactly one of two concurrent orders take the last use; the other is a CONFLICT and leaves no order', async () => {
    await w.promoCodes.create(w.world.provider, { code: 'LAST', kind: 'percent', value: 1000n, maxUses: 1 });
    const results = await Promise.allSettled([0, 1].map(() => w.place(w.customer, { accountId: w.customer.accountId, promoCode: 'LAST' })));
    expect(results.map((r) => r.status).sort()).to.deep.equal(['fulfilled', 'rejected']);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((rejected.reason as { code: string }).code).to.equal('CONFLICT');
    expect(await count(w.world, 'orders')).to.equal(1);
    expect((await w.promoCodes.list(w.world.provider))[0]!.uses).to.equal(1);
  });

  it('refuses a fixed promo in another currency than the order', async () => {
    await w.promoCodes.create(w.world.provider, { code: 'EUROS', kind: 'fixed', value: 100n, currency: 'EUR' });
    await failure(w.place(w.customer, { accountId: w.customer.accountId, promoCode: 'EUROS' }), 'INVALID_ARGUMENT', 'promoCode');
  });

  it("scopes the list: another reseller cannot list the reseller's codes", async () => {
    await w.promoCodes.create(w.reseller, { code: 'MINE', kind: 'percent', value: 100n });
    await failure(w.promoCodes.list(w.otherReseller, w.reseller.accountId), 'NOT_FOUND');
    expect((await w.promoCodes.list(w.world.provider, w.reseller.accountId)).map((p) => p.code)).to.deep.equal(['MINE']);
  });
});
