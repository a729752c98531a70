import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { expect } from 'chai';
import createSandboxGateway, { TEST_CARDS } from '../../plugins/payment/sandbox';
import { GatewayTimeoutError, type CardDetails, type PaymentGateway, type PaymentRequest, type PluginManifest } from '../../src/plugins/sdk';
import { paymentGatewayContract } from './payment-gateway-contract';
import { pluginContext } from './plugin-context';

const card = (number: string, extra: Partial<CardDetails> = {}): CardDetails => ({ number, expMonth: 12, expYear: 2030, cvv: '123', ...extra });
const request = (key: string, payTool: PaymentRequest['payTool'], amount = '1999'): PaymentRequest => ({
  idempotencyKey: key,
  money: { amount, currency: 'USD' },
  payTool,
  description: 'Sandbox test',
  customerReference: 'account-1',
});

paymentGatewayContract('the sandbox gateway', () => ({
  gateway: () => createSandboxGateway(pluginContext()),
  approvedCard: card('4242424242424242'),
  declinedCard: card('4000000000000002'),
}));

const tempDirs: string[] = [];
const tempDir = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hw-sandbox-'));
  tempDirs.push(dir);
  return dir;
};
after(() => tempDirs.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

paymentGatewayContract('the sandbox gateway with a state file and latency', () => {
  const dir = tempDir();
  return {
    gateway: () => createSandboxGateway(pluginContext({ delayMs: 5, stateFile: path.join(dir, 'state.json') })),
    approvedCard: card('5555555555554444'),
    declinedCard: card('4000000000009995'),
  };
});

describe('the sandbox gateway', () => {
  let lines: string[];
  let gw: PaymentGateway;
  beforeEach(() => {
    lines = [];
    gw = createSandboxGateway(pluginContext({}, { lines }));
  });

  it('throws GatewayTimeoutError for 4000000000000119 after charging, so status(key) later finds the charge', async () => {
    let thrown: unknown;
    await gw.purchase(request('k-timeout', { card: card('4000000000000119') })).catch((e: unknown) => (thrown = e));
    expect(thrown).to.be.instanceOf(GatewayTimeoutError);
    const status = await gw.status('k-timeout');
    expect(status).to.have.nested.property('result.state', 'succeeded');
    expect((status as { result: { reference: string } }).result.reference).to.match(/^ch_/);
  });

  it('answers a retry of a timed-out key with the charge it kept, not a second charge', async () => {
    await gw.purchase(request('k-retry', { card: card('4000000000000119') })).catch(() => undefined);
    const retry = await gw.purchase(request('k-retry', { card: card('4000000000000119') }));
    expect(retry).to.deep.equal({ status: 'success', result: { reference: (await gw.status('k-retry') as { result: { reference: string } }).result.reference } });
  });

  it('stores 4000000000000341 as a token but declines a charge to it with card_declined', async () => {
    const stored = await gw.storePayTool({ idempotencyKey: 'k-store-341', card: card('4000000000000341'), customerReference: 'account-1' });
    expect(stored).to.have.nested.property('result.last4', '0341');
    const token = (stored as { result: { token: string } }).result.token;
    expect(token).to.match(/^tok_/);
    expect(await gw.purchase(request('k-charge-341', { token }))).to.deep.equal({ status: 'failure', retryable: false, message: 'Your card was declined.', code: 'card_declined' });
  });

  it('refuses to store 4000000000000002 with card_declined', async () => {
    expect(await gw.storePayTool({ idempotencyKey: 'k-store-2', card: card('4000000000000002'), customerReference: 'account-1' })).to.include({ status: 'failure', code: 'card_declined' });
  });

  it('names the brand of each test card', async () => {
    const brands: string[] = [];
    for (const number of ['4242424242424242', '5555555555554444', '378282246310005']) {
      const stored = await gw.storePayTool({ idempotencyKey: `k-brand-${number}`, card: card(number, { cvv: number.startsWith('3') ? '1234' : '123' }), customerReference: 'a' });
      brands.push((stored as { result: { brand: string } }).result.brand);
    }
    expect(brands).to.deep.equal(['visa', 'mastercard', 'amex']);
  });

  it('refuses a number failing the Luhn check, an expired card, a non-test card and an unknown token, each with its code', async () => {
    const codes = [];
    for (const [key, payTool] of [
      ['k-luhn', { card: card('4242424242424241') }],
      ['k-expired', { card: card('4242424242424242', { expMonth: 12, expYear: 2025 }) }],
      ['k-live', { card: card('4111111111111111') }],
      ['k-token', { token: 'tok_nothing' }],
    ] as const) {
      codes.push((await gw.purchase(request(key, payTool))) as { code?: string });
    }
    expect(codes.map((c) => c.code)).to.deep.equal(['invalid_number', 'expired_card', 'card_declined', 'invalid_token']);
  });

  it('charges the fixed test tokens without storing a card first, each like its test card', async () => {
    const visa = (await gw.purchase(request('k-tok-visa', { token: 'tok_visa' }))) as { status: string; result?: { reference: string } };
    expect(visa.status).to.equal('success');
    expect(visa.result!.reference).to.match(/^ch_/);
    expect(((await gw.purchase(request('k-tok-visa-2', { token: 'tok_visa_account-17' }))) as { status: string }).status).to.equal('success');
    expect(await gw.purchase(request('k-tok-declined', { token: 'tok_chargeDeclined_9' }))).to.include({ status: 'failure', code: 'card_declined' });
    expect(await gw.purchase(request('k-tok-other', { token: 'tok_nothing_1' }))).to.include({ status: 'failure', code: 'invalid_token' });
    expect(await gw.purchase(request('k-tok-funds', { token: 'tok_insufficientFunds' }))).to.include({ status: 'failure', code: 'insufficient_funds' });
    // Names of Object.prototype's members are no tokens, no transactions and no earlier operations.
    expect(await gw.purchase(request('k-tok-proto', { token: 'toString' }))).to.include({ status: 'failure', code: 'invalid_token' });
    expect(await gw.refund({ idempotencyKey: 'k-ref-proto', reference: 'constructor', money: { amount: '1', currency: 'USD' } })).to.include({ status: 'failure', code: 'no_such_transaction' });
    expect((await gw.purchase(request('hasOwnProperty', { token: 'tok_visa' }))).status).to.equal('success');
  });

  it('refuses the same key with another amount as idempotency_key_reused, keeping the first charge', async () => {
    const first = await gw.purchase(request('k-reuse', { card: card('4242424242424242') }, '1000'));
    expect(await gw.purchase(request('k-reuse', { card: card('4242424242424242') }, '2000'))).to.include({ status: 'failure', code: 'idempotency_key_reused' });
    expect(await gw.purchase(request('k-reuse', { card: card('4242424242424242') }, '1000'))).to.deep.equal(first);
  });

  it('keeps its state in the state file, so a restarted sandbox finds earlier charges and refunds them, and the file holds no card number', async () => {
    const file = path.join(tempDir(), 'state.json');
    const before = createSandboxGateway(pluginContext({ stateFile: file }));
    await before.purchase(request('k-persist', { card: card('4000000000000119') })).catch(() => undefined);
    const stored = await before.storePayTool({ idempotencyKey: 'k-persist-tool', card: card('4242424242424242'), customerReference: 'a' });

    const after = createSandboxGateway(pluginContext({ stateFile: file }));
    const status = await after.status('k-persist');
    expect(status).to.have.nested.property('result.state', 'succeeded');
    const ref = (status as { result: { reference: string } }).result.reference;
    expect(await after.refund({ idempotencyKey: 'k-persist-refund', reference: ref, money: { amount: '1999', currency: 'USD' } })).to.have.property('status', 'success');
    expect(await after.purchase(request('k-persist-token', { token: (stored as { result: { token: string } }).result.token }))).to.have.property('status', 'success');
    const text = fs.readFileSync(file, 'utf8');
    for (const number of Object.keys(TEST_CARDS)) expect(text).not.to.contain(number);
  });

  it('waits delayMs before answering, like a remote processor', async () => {
    const slow = createSandboxGateway(pluginContext({ delayMs: 60 }));
    const started = Date.now();
    await slow.status('k-any');
    expect(Date.now() - started).to.be.at.least(55);
  });

  it('never writes a card number or CVV to its log', async () => {
    for (const number of Object.keys(TEST_CARDS)) {
      await gw.purchase(request(`k-log-${number}`, { card: card(number, { cvv: '8137' }) })).catch(() => undefined);
    }
    expect(lines.length).to.be.greaterThan(0);
    const text = lines.join('\n');
    for (const number of Object.keys(TEST_CARDS)) expect(text).not.to.contain(number);
    expect(text).not.to.contain('8137');
  });

  it('has a manifest the SDK describes, whose settings schema accepts delayMs and stateFile and nothing else', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '../../plugins/payment/sandbox/manifest.json'), 'utf8')) as PluginManifest;
    expect(manifest).to.include({ name: 'sandbox', kind: 'payment', entry: 'index.ts', sdk: '^1.0.0' });
    const validate = new Ajv2020({ strict: false }).compile(manifest.settingsSchema);
    expect(validate({ delayMs: 10, stateFile: 'data/sandbox.json' })).to.equal(true);
    expect(validate({})).to.equal(true);
    expect(validate({ delayMs: -1 })).to.equal(false);
    expect(validate({ apiKey: 'x' })).to.equal(false);
  });
});
