import fs from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { expect } from 'chai';
import createRulesScreen, { formatMoney } from '../../plugins/fraud/rules';
import type { Actor } from '../../src/context';
import { FraudService, type ScreenInput } from '../../src/fraud/fraud-service';
import type { FraudCheckRequest, FraudScreen, FraudVerdict, Outcome, PluginManifest } from '../../src/plugins/sdk';
import { failure } from '../../src/plugins/sdk';
import { accountActor, makeWorld, type World } from '../helpers/world';
import { pluginContext } from '../payments/plugin-context';

const order = (extra: Partial<FraudCheckRequest> = {}): FraudCheckRequest => ({
  orderId: 1,
  accountId: 1,
  money: { amount: '1999', currency: 'USD' },
  email: 'buyer@example.com',
  ipAddress: '203.0.113.7',
  ipCountry: 'US',
  billingCountry: 'US',
  ordersByAccountInWindow: 0,
  ordersByIpInWindow: 0,
  ...extra,
});

async function verdictOf(settings: Record<string, unknown>, req: FraudCheckRequest): Promise<FraudVerdict> {
  const outcome = await createRulesScreen(pluginContext(settings)).screen(req);
  expect(outcome.status).to.equal('success');
  return (outcome as { result: FraudVerdict }).result;
}

describe('the rules fraud screen', () => {
  it('passes an ordinary order with no reasons and a score of 0', async () => {
    expect(await verdictOf({ amountThreshold: { amount: '100000', currency: 'USD' }, maxOrdersPerAccount: 3, maxOrdersPerIp: 3 }, order())).to.deep.equal({ verdict: 'pass', reasons: [], score: 0 });
  });

  it('finds an amount over the threshold in its currency suspect, passes one at the threshold, and does not compare other currencies', async () => {
    const settings = { amountThreshold: [{ amount: '100000', currency: 'USD' }, { amount: '1000', currency: 'KWD' }] };
    expect(await verdictOf(settings, order({ money: { amount: '100001', currency: 'USD' } }))).to.deep.equal({
      verdict: 'suspect',
      reasons: ['The order amount 1000.01 USD is over the 1000.00 USD threshold.'],
      score: 40,
    });
    expect((await verdictOf(settings, order({ money: { amount: '100000', currency: 'USD' } }))).verdict).to.equal('pass');
    expect((await verdictOf(settings, order({ money: { amount: '1001', currency: 'KWD' } }))).reasons).to.deep.equal(['The order amount 1.001 KWD is over the 1.000 KWD threshold.']);
    expect((await verdictOf(settings, order({ money: { amount: '99999999', currency: 'JPY' } }))).verdict).to.equal('pass');
  });

  it('writes amounts with their currency\'s decimals: 0 for JPY, 2 for USD, 3 for KWD', () => {
    expect([formatMoney({ amount: '5', currency: 'JPY' }), formatMoney({ amount: '5', currency: 'USD' }), formatMoney({ amount: '5', currency: 'KWD' })]).to.deep.equal(['5 JPY', '0.05 USD', '0.005 KWD']);
  });

  it('finds an IP country other than the billing country suspect, unless ipCountryMismatch is off', async () => {
    expect(await verdictOf({}, order({ ipCountry: 'de', billingCountry: 'US' }))).to.deep.equal({
      verdict: 'suspect',
      reasons: ['The order was placed from an IP address in DE, but the billing country is US.'],
      score: 40,
    });
    expect((await verdictOf({}, order({ ipCountry: 'US', billingCountry: 'us' }))).verdict).to.equal('pass');
    expect((await verdictOf({}, order({ ipCountry: undefined }))).verdict).to.equal('pass');
    expect((await verdictOf({ ipCountryMismatch: false }, order({ ipCountry: 'DE' }))).verdict).to.equal('pass');
  });

  it('finds more orders per account than maxOrdersPerAccount suspect, and more than hardMaxOrdersPerAccount a reject', async () => {
    const settings = { windowSeconds: 3600, maxOrdersPerAccount: 3, hardMaxOrdersPerAccount: 5 };
    expect((await verdictOf(settings, order({ ordersByAccountInWindow: 2 }))).verdict).to.equal('pass');
    expect(await verdictOf(settings, order({ ordersByAccountInWindow: 3 }))).to.deep.equal({
      verdict: 'suspect',
      reasons: ['4 orders from this account within 1 hour: more than the usual 3.'],
      score: 40,
    });
    expect(await verdictOf(settings, order({ ordersByAccountInWindow: 5 }))).to.deep.equal({
      verdict: 'reject',
      reasons: ['6 orders from this account within 1 hour: more than the 5 allowed.'],
      score: 100,
    });
  });

  it('finds more orders per IP address than maxOrdersPerIp suspect, more than hardMaxOrdersPerIp a reject, and skips the rule without an address', async () => {
    const settings = { maxOrdersPerIp: 1, hardMaxOrdersPerIp: 2 };
    expect((await verdictOf(settings, order({ ordersByIpInWindow: 1 }))).reasons).to.deep.equal(['2 orders from IP address 203.0.113.7 within 1 day: more than the usual 1.']);
    expect((await verdictOf(settings, order({ ordersByIpInWindow: 2 }))).verdict).to.equal('reject');
    expect((await verdictOf(settings, order({ ipAddress: undefined, ordersByIpInWindow: 9 }))).verdict).to.equal('pass');
  });

  it('rejects an e-mail address at a disposable domain or its subdomain by default, suspects it or ignores it when set so', async () => {
    expect(await verdictOf({}, order({ email: 'x@Mailinator.com' }))).to.deep.equal({
      verdict: 'reject',
      reasons: ['The e-mail address is at mailinator.com, a disposable-address domain.'],
      score: 100,
    });
    expect((await verdictOf({}, order({ email: 'x@inbox.yopmail.com' }))).verdict).to.equal('reject');
    expect((await verdictOf({}, order({ email: 'x@notmailinator.com' }))).verdict).to.equal('pass');
    expect((await verdictOf({ disposableEmail: 'suspect' }, order({ email: 'x@mailinator.com' }))).verdict).to.equal('suspect');
    expect((await verdictOf({ disposableEmail: 'ignore' }, order({ email: 'x@mailinator.com' }))).verdict).to.equal('pass');
  });

  it('adds domains from disposableDomains and takes off those in allowedDomains', async () => {
    const settings = { disposableDomains: ['Throwaway.example'], allowedDomains: ['yopmail.com'] };
    expect((await verdictOf(settings, order({ email: 'a@throwaway.example' }))).verdict).to.equal('reject');
    expect((await verdictOf(settings, order({ email: 'a@yopmail.com' }))).verdict).to.equal('pass');
  });

  it('gives the worst verdict of the rules that fired, listing every reason', async () => {
    const v = await verdictOf(
      { amountThreshold: { amount: '1000', currency: 'USD' }, maxOrdersPerAccount: 1, disposableEmail: 'reject' },
      order({ money: { amount: '5000', currency: 'USD' }, ipCountry: 'FR', ordersByAccountInWindow: 1, email: 'a@guerrillamail.com' }),
    );
    expect(v.verdict).to.equal('reject');
    expect(v.reasons).to.have.length(4);
    const suspects = await verdictOf({ amountThreshold: { amount: '1000', currency: 'USD' } }, order({ money: { amount: '5000', currency: 'USD' }, ipCountry: 'FR' }));
    expect([suspects.verdict, suspects.reasons.length, suspects.score]).to.deep.equal(['suspect', 2, 80]);
  });

  it('refuses settings it cannot use', () => {
    expect(() => createRulesScreen(pluginContext({ maxOrdersPerAccount: 0 }))).to.throw(/maxOrdersPerAccount/);
    expect(() => createRulesScreen(pluginContext({ amountThreshold: { amount: '12.50', currency: 'USD' } }))).to.throw(/amountThreshold/);
    expect(() => createRulesScreen(pluginContext({ disposableEmail: 'block' }))).to.throw(/disposableEmail/);
  });

  it('has a manifest the SDK describes, whose settings schema accepts its settings and refuses others', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '../../plugins/fraud/rules/manifest.json'), 'utf8')) as PluginManifest;
    expect(manifest).to.include({ name: 'rules', kind: 'fraud', entry: 'index.ts', sdk: '^1.0.0' });
    const validate = new Ajv2020({ strict: false }).compile(manifest.settingsSchema);
    expect(validate({ amountThreshold: { amount: '100000', currency: 'USD' }, windowSeconds: 3600, maxOrdersPerIp: 3, disposableEmail: 'suspect' })).to.equal(true);
    expect(validate({ amountThreshold: [{ amount: '1', currency: 'JPY' }] })).to.equal(true);
    expect(validate({ amountThreshold: { amount: 1000, currency: 'USD' } })).to.equal(false);
    expect(validate({ disposableEmail: 'block' })).to.equal(false);
  });
});

describe('fraud service', () => {
  let world: World;
  let fraud: FraudService;
  let buyer: Actor;
  let other: Actor;
  let rules: FraudScreen;
  const named = () => ({ instanceName: 'Default rules', screen: rules });
  const input = (orderId: number, extra: Partial<ScreenInput> = {}): ScreenInput => ({
    orderId,
    accountId: buyer.accountId,
    amount: 1999n,
    currency: 'USD',
    email: 'buyer@example.com',
    ipAddress: '198.51.100.20',
    ...extra,
  });

  beforeEach(async () => {
    world = await makeWorld();
    fraud = new FraudService(world.deps);
    buyer = await accountActor(world, world.provider, 'customer', 'Buyer');
    other = await accountActor(world, world.provider, 'customer', 'Other');
    rules = createRulesScreen(pluginContext({ windowSeconds: 3600, maxOrdersPerAccount: 3, maxOrdersPerIp: 4, hardMaxOrdersPerIp: 5 }, { clock: world.clock }));
  });
  afterEach(async () => {
    await world?.close();
  });

  it('counts the account\'s screened orders within the window from the database: the fourth within an hour is suspect, and after the hour passes orders pass again', async () => {
    const verdicts = [];
    for (const orderId of [1, 2, 3, 4]) {
      verdicts.push((await fraud.screen(world.provider, named(), input(orderId, { ipAddress: `198.51.100.${orderId}` }))).verdict);
      world.clock.advance(60_000);
    }
    expect(verdicts).to.deep.equal(['pass', 'pass', 'pass', 'suspect']);
    world.clock.advance(3600_000);
    expect((await fraud.screen(world.provider, named(), input(5))).verdict).to.equal('pass');
  });

  it('counts orders from one IP address across accounts: over four is suspect, over five a reject', async () => {
    const verdicts = [];
    for (const orderId of [1, 2, 3, 4, 5, 6]) {
      const accountId = orderId % 2 ? buyer.accountId : other.accountId;
      verdicts.push((await fraud.screen(world.provider, named(), input(orderId, { accountId, ipAddress: '192.0.2.99' }))).verdict);
    }
    // Each account has at most 3 orders, so only the per-IP rule fires.
    expect(verdicts).to.deep.equal(['pass', 'pass', 'pass', 'pass', 'suspect', 'reject']);
  });

  it('does not count an order against itself when it is screened again', async () => {
    for (const orderId of [1, 2, 3]) await fraud.screen(world.provider, named(), input(orderId));
    const again = await Promise.all([1, 2, 3].map((orderId) => fraud.screen(world.provider, named(), input(orderId))));
    expect(again.map((c) => c.verdict)).to.deep.equal(['pass', 'pass', 'pass']);
  });

  it('stores the verdict with its reasons and score, with an audit record and a fraud.checked event', async () => {
    const check = await fraud.screen(world.provider, named(), input(77, { email: 'x@yopmail.com', ipCountry: 'DE', billingCountry: 'US' }));
    expect(check).to.include({ orderId: 77, accountId: buyer.accountId, instanceName: 'Default rules', verdict: 'reject', score: 100 });
    expect(check.reasons).to.have.length(2);
    expect(await fraud.checksOf(world.provider, 77)).to.deep.equal([check]);
    const event = (await world.deps.db('events').where({ name: 'fraud.checked' }).first()) as { object_id: string; payload: string };
    expect(event.object_id).to.equal('77');
    expect(JSON.parse(event.payload)).to.include({ verdict: 'reject', fraudCheckId: check.fraudCheckId });
    expect(await world.deps.db('audit_log').where({ operation: 'ScreenOrder', object_id: '77' }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);
  });

  it('makes the order suspect, with the reason, when the screen fails or throws', async () => {
    const failing: FraudScreen = { windowSeconds: () => 60, screen: async (): Promise<Outcome<FraudVerdict>> => failure('service unreachable', true) };
    const throwing: FraudScreen = { windowSeconds: () => 60, screen: async () => Promise.reject(new Error('boom')) };
    const a = await fraud.screen(world.provider, { instanceName: 'Remote', screen: failing }, input(1));
    const b = await fraud.screen(world.provider, { instanceName: 'Remote', screen: throwing }, input(2));
    expect([a.verdict, b.verdict]).to.deep.equal(['suspect', 'suspect']);
    expect(a.reasons[0]).to.contain('service unreachable');
    expect(b.reasons[0]).to.contain('boom');
  });

  it('hands the screen exact minor units, and refuses an account outside the caller\'s subtree as NOT_FOUND', async () => {
    let seen: FraudCheckRequest | undefined;
    const spy: FraudScreen = { windowSeconds: () => 60, screen: async (req) => ((seen = req), { status: 'success', result: { verdict: 'pass', reasons: [] } }) };
    await fraud.screen(world.provider, { instanceName: 'Spy', screen: spy }, input(1, { amount: 123456789012345678n, currency: 'KWD' }));
    expect(seen?.money).to.deep.equal({ amount: '123456789012345678', currency: 'KWD' });
    let code: string | undefined;
    await fraud.screen(buyer, named(), input(2, { accountId: other.accountId })).catch((e: { code: string }) => (code = e.code));
    expect(code).to.equal('NOT_FOUND');
  });
});
