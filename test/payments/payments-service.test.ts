import { Writable } from 'node:stream';
import { expect } from 'chai';
import sinon from 'sinon';
import winston from 'winston';
import createSandboxGateway, { TEST_CARDS } from '../../plugins/payment/sandbox';
import type { Actor, Deps } from '../../src/context';
import type { Db } from '../../src/db/knex';
import { AppError, notFound } from '../../src/domain/errors';
import { PaymentsService, type ChargeInput, type Payment } from '../../src/payments/payments-service';
import { GatewayTimeoutError, failure, pending, type CardDetails, type PaymentGateway } from '../../src/plugins/sdk';
import { accountActor, makeWorld, type World } from '../helpers/world';
import { pluginContext } from './plugin-context';

const SANDBOX = 7;
const CVV = '8137';
const card = (number: string): CardDetails => ({ number, expMonth: 12, expYear: 2030, cvv: number.startsWith('3') ? `${CVV}` : CVV.slice(0, 3) });

async function failure_(p: Promise<unknown>, code: string, field?: string): Promise<AppError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${code}, but the call succeeded`).to.be.instanceOf(AppError);
  const err = caught as AppError;
  expect({ code: err.code, field: err.field }).to.deep.equal({ code, field });
  return err;
}

async function tableNames(db: Db): Promise<string[]> {
  if (db.client.config.client === 'mysql2') return ((await db.raw('SHOW TABLES'))[0] as Record<string, string>[]).map((r) => Object.values(r)[0]!);
  return ((await db.raw("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")) as { name: string }[]).map((r) => r.name);
}

/** Every value of every row of every table, as text. */
async function everythingStored(db: Db): Promise<string> {
  const parts: string[] = [];
  for (const table of await tableNames(db)) {
    for (const row of (await db(table).select('*')) as Record<string, unknown>[]) {
      parts.push(`${table}: ${Object.values(row).map((v) => (v === null ? '' : String(v))).join(' | ')}`);
    }
  }
  return parts.join('\n');
}

async function events(world: World, name?: string): Promise<{ name: string; object_id: string; payload: Record<string, unknown> }[]> {
  const rows = (await world.deps.db('events').where('name', 'like', name ?? 'pay%').orderBy('id')) as { name: string; object_id: string; payload: string }[];
  return rows.map((r) => ({ ...r, payload: JSON.parse(r.payload) as Record<string, unknown> }));
}

describe('payments service', () => {
  let world: World;
  let deps: Deps;
  let logLines: string[];
  let sandbox: PaymentGateway;
  let gateways: Map<number, PaymentGateway>;
  let payments: PaymentsService;
  let customer: Actor;
  let other: Actor;

  const charge = (input: Partial<ChargeInput> & { payTool?: ChargeInput['payTool'] }, actor: Actor = world.provider): Promise<Payment> =>
    payments.charge(actor, {
      accountId: customer.accountId,
      amount: 1999n,
      currency: 'USD',
      gatewayInstanceId: SANDBOX,
      payTool: { card: card('4242424242424242') },
      description: 'Order 1',
      ...input,
    });

  beforeEach(async () => {
    world = await makeWorld();
    logLines = [];
    const capture = new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(chunk.toString());
        done();
      },
    });
    const log = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream: capture })] });
    deps = { ...world.deps, log };
    sandbox = createSandboxGateway(pluginContext({}, { clock: world.clock, lines: logLines }));
    gateways = new Map([[SANDBOX, sandbox]]);
    payments = new PaymentsService(deps, async (id) => {
      const gw = gateways.get(id);
      if (!gw) throw notFound('Payment gateway instance', id);
      return gw;
    }, { pendingGraceMs: 60_000, twinWaitMs: 2_000 });
    customer = await accountActor(world, world.provider, 'customer', 'Buyer');
    other = await accountActor(world, world.provider, 'customer', 'Other');
  });
  afterEach(async () => {
    sinon.restore();
    await world?.close();
  });

  describe('charging', () => {
    it('charges an approved card: the payment is success with the gateway reference, announced by payment.created then payment.succeeded', async () => {
      const p = await charge({ orderId: 42 });
      expect(p).to.include({ status: 'success', kind: 'purchase', accountId: customer.accountId, orderId: 42, amount: 1999n, currency: 'USD', gatewayInstanceId: SANDBOX });
      expect(p.reference).to.match(/^ch_/);
      expect(p.vendorAccountId).to.equal(world.provider.accountId);
      expect((await events(world)).map((e) => [e.name, e.payload.status])).to.deep.equal([
        ['payment.created', 'pending'],
        ['payment.succeeded', 'success'],
      ]);
      const audit = (await world.deps.db('audit_log').where({ object_type: 'payment', object_id: String(p.paymentId) }).orderBy('id')) as { operation: string }[];
      expect(audit.map((a) => a.operation)).to.deep.equal(['ChargePayment', 'SettlePayment']);
    });

    it('records a declined card as declined with code card_declined, not retryable, and announces payment.declined', async () => {
      const p = await charge({ payTool: { card: card('4000000000000002') } });
      expect(p).to.include({ status: 'declined', failureCode: 'card_declined', retryable: false, reference: null });
      expect((await events(world, 'payment.declined')).map((e) => Number(e.object_id))).to.deep.equal([p.paymentId]);
    });

    it('leaves the payment UNKNOWN when the gateway times out (4000000000000119), and reconcile settles it to success with the charge the gateway kept', async () => {
      const p = await charge({ payTool: { card: card('4000000000000119') } });
      expect(p).to.include({ status: 'unknown', reference: null });
      expect((await events(world, 'payment.unknown')).length).to.equal(1);

      const settled = await payments.reconcile(world.provider, p.paymentId);
      expect(settled.status).to.equal('success');
      const gatewaySays = (await sandbox.status(p.idempotencyKey)) as { result: { reference: string } };
      expect(settled.reference).to.equal(gatewaySays.result.reference);
      expect((await events(world, 'payment.succeeded')).map((e) => Number(e.object_id))).to.deep.equal([p.paymentId]);
    });

    it('records a plugin that throws something other than a timeout as plugin_failure with code plugin_error', async () => {
      sinon.stub(sandbox, 'purchase').rejects(new Error('settings file unreadable'));
      const p = await charge({});
      expect(p).to.include({ status: 'plugin_failure', failureCode: 'plugin_error' });
      expect(p.message).to.contain('settings file unreadable');
      expect((await events(world, 'payment.plugin_failure')).length).to.equal(1);
    });

    it('records a failure outcome with code plugin_error as plugin_failure, and any other failure as declined', async () => {
      sinon.stub(sandbox, 'purchase').onFirstCall().resolves(failure('API key missing', false, 'plugin_error')).onSecondCall().resolves(failure('Try later', true, 'processor_busy'));
      expect(await charge({})).to.include({ status: 'plugin_failure', failureCode: 'plugin_error' });
      expect(await charge({})).to.include({ status: 'declined', failureCode: 'processor_busy', retryable: true });
    });

    it('refuses an unknown gateway instance with the resolver\'s error and writes no payment', async () => {
      await failure_(charge({ gatewayInstanceId: 99 }), 'NOT_FOUND');
      expect(await world.deps.db('payments').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    });

    it('refuses a card failing the Luhn check with INVALID_ARGUMENT on payTool.card.number, without repeating the digits', async () => {
      const err = await failure_(charge({ payTool: { card: card('4242424242424241') } }), 'INVALID_ARGUMENT', 'payTool.card.number');
      expect(err.message).not.to.match(/\d{6,}/);
    });

    it('refuses an account outside the caller\'s subtree as NOT_FOUND', async () => {
      await failure_(charge({ accountId: other.accountId }, customer), 'NOT_FOUND');
    });

    it('keeps amounts exact in JPY, USD and KWD, beyond 2^53 too', async () => {
      const amounts: [bigint, string][] = [
        [1n, 'JPY'],
        [123456789012345678n, 'USD'],
        [1234567n, 'KWD'],
      ];
      for (const [amount, currency] of amounts) {
        const p = await charge({ amount, currency });
        expect(p.status).to.equal('success');
        expect((await payments.get(world.provider, p.paymentId)).amount).to.equal(amount);
        const refund = await payments.refund(world.provider, p.paymentId);
        expect([refund.status, refund.amount, refund.currency]).to.deep.equal(['success', amount, currency]);
      }
    });

    it('authorizes, captures part of the authorization, and refunds the capture', async () => {
      const auth = await charge({ mode: 'authorize', amount: 5000n });
      expect(auth).to.include({ kind: 'authorize', status: 'success' });
      const captured = await payments.capture(world.provider, auth.paymentId, { amount: 4000n });
      expect(captured).to.include({ kind: 'capture', status: 'success', amount: 4000n, parentPaymentId: auth.paymentId });
      await failure_(payments.capture(world.provider, auth.paymentId), 'NOT_ALLOWED');
      await failure_(payments.void(world.provider, auth.paymentId), 'NOT_ALLOWED');
      expect(await payments.refund(world.provider, captured.paymentId)).to.include({ status: 'success', amount: 4000n });
      expect((await events(world, 'payment.captured')).length).to.equal(1);
    });
  });

  describe('idempotency keys', () => {
    it('reaches the gateway once for the same key sent twice concurrently, and answers both callers with the same payment', async () => {
      const spy = sinon.spy(sandbox, 'purchase');
      const [a, b] = await Promise.all([charge({ idempotencyKey: 'order-1-charge' }), charge({ idempotencyKey: 'order-1-charge' })]);
      expect(spy.callCount).to.equal(1);
      expect(b).to.deep.equal(a);
      expect(a.status).to.equal('success');
      expect(await world.deps.db('payments').count({ n: '*' })).to.deep.equal([{ n: 1 }]);
    });

    it('reaches a slow gateway once for five concurrent calls with the same key, all answered alike', async () => {
      const slow = createSandboxGateway(pluginContext({ delayMs: 50 }, { clock: world.clock }));
      gateways.set(SANDBOX, slow);
      const spy = sinon.spy(slow, 'purchase');
      const answers = await Promise.all([1, 2, 3, 4, 5].map(() => charge({ idempotencyKey: 'slow-key' })));
      expect(spy.callCount).to.equal(1);
      for (const answer of answers) expect(answer).to.deep.equal(answers[0]);
      expect(answers[0]!.status).to.equal('success');
    });

    it('answers the same key later with the first payment, declined included, without calling the gateway again', async () => {
      const first = await charge({ idempotencyKey: 'retry-me', payTool: { card: card('4000000000000002') } });
      const spy = sinon.spy(sandbox, 'purchase');
      expect(await charge({ idempotencyKey: 'retry-me', payTool: { card: card('4000000000000002') } })).to.deep.equal(first);
      expect(spy.callCount).to.equal(0);
    });

    it('answers the same key with other arguments with CONFLICT on idempotencyKey, charging nothing more', async () => {
      await charge({ idempotencyKey: 'k-1', amount: 1000n });
      const spy = sinon.spy(sandbox, 'purchase');
      await failure_(charge({ idempotencyKey: 'k-1', amount: 2000n }), 'CONFLICT', 'idempotencyKey');
      expect(spy.callCount).to.equal(0);
      expect(await world.deps.db('payments').count({ n: '*' })).to.deep.equal([{ n: 1 }]);
    });

    it('keeps keys private to the account paid for: the same key for two accounts makes two payments', async () => {
      const a = await charge({ idempotencyKey: 'shared' });
      const b = await charge({ idempotencyKey: 'shared', accountId: other.accountId });
      expect(a.paymentId).not.to.equal(b.paymentId);
      expect(a.idempotencyKey).not.to.equal(b.idempotencyKey);
    });

    it('hands the gateway a key of its own, not the caller\'s', async () => {
      const spy = sinon.spy(sandbox, 'purchase');
      const p = await charge({ idempotencyKey: 'caller-visible-key' });
      expect(spy.firstCall.args[0].idempotencyKey).to.equal(p.idempotencyKey).and.not.contain('caller-visible-key');
    });
  });

  describe('void and refund', () => {
    it('voids a successful purchase: the void is a child payment that succeeds, and the purchase becomes voided', async () => {
      const p = await charge({});
      const v = await payments.void(world.provider, p.paymentId);
      expect(v).to.include({ kind: 'void', status: 'success', parentPaymentId: p.paymentId, amount: 1999n });
      expect(v.idempotencyKey).not.to.equal(p.idempotencyKey);
      expect((await payments.get(world.provider, p.paymentId)).status).to.equal('voided');
      expect((await events(world, 'payment.voided')).map((e) => Number(e.object_id))).to.deep.equal([v.paymentId]);
      await failure_(payments.void(world.provider, p.paymentId), 'NOT_ALLOWED');
      await failure_(payments.refund(world.provider, p.paymentId), 'NOT_ALLOWED');
    });

    it('refunds in part and then the rest, refusing more than what is left, then refusing any more', async () => {
      const p = await charge({ amount: 10000n });
      expect(await payments.refund(world.provider, p.paymentId, { amount: 2500n, reason: 'goodwill' })).to.include({ kind: 'refund', status: 'success', amount: 2500n });
      await failure_(payments.refund(world.provider, p.paymentId, { amount: 7501n }), 'INVALID_ARGUMENT', 'amount');
      expect(await payments.refund(world.provider, p.paymentId)).to.include({ status: 'success', amount: 7500n });
      await failure_(payments.refund(world.provider, p.paymentId, { amount: 1n }), 'NOT_ALLOWED');
      await failure_(payments.void(world.provider, p.paymentId), 'NOT_ALLOWED');
      expect((await events(world, 'payment.refunded')).length).to.equal(2);
    });

    it('refunds once for the same refund key sent twice', async () => {
      const p = await charge({ amount: 10000n });
      const spy = sinon.spy(sandbox, 'refund');
      const [a, b] = await Promise.all([
        payments.refund(world.provider, p.paymentId, { amount: 100n, idempotencyKey: 'refund-1' }),
        payments.refund(world.provider, p.paymentId, { amount: 100n, idempotencyKey: 'refund-1' }),
      ]);
      expect(b).to.deep.equal(a);
      expect(spy.callCount).to.equal(1);
    });

    it('refuses to void or refund an UNKNOWN payment with NOT_ALLOWED "being reconciled", without calling the gateway', async () => {
      const p = await charge({ payTool: { card: card('4000000000000119') } });
      const voids = sinon.spy(sandbox, 'void');
      const refunds = sinon.spy(sandbox, 'refund');
      expect((await failure_(payments.void(world.provider, p.paymentId), 'NOT_ALLOWED')).message).to.contain('being reconciled');
      expect((await failure_(payments.refund(world.provider, p.paymentId), 'NOT_ALLOWED')).message).to.contain('being reconciled');
      expect(voids.callCount + refunds.callCount).to.equal(0);
    });

    it('refuses a refund while another refund of the same payment is unknown', async () => {
      const p = await charge({ amount: 10000n });
      sinon.stub(sandbox, 'refund').onFirstCall().rejects(new GatewayTimeoutError());
      expect(await payments.refund(world.provider, p.paymentId, { amount: 100n })).to.include({ status: 'unknown' });
      expect((await failure_(payments.refund(world.provider, p.paymentId, { amount: 100n }), 'NOT_ALLOWED')).message).to.contain('being reconciled');
    });

    it('refuses to void a declined payment, and to act on another reseller\'s payment as if it did not exist', async () => {
      const declined = await charge({ payTool: { card: card('4000000000000002') } });
      await failure_(payments.void(world.provider, declined.paymentId), 'NOT_ALLOWED');
      const theirs = await charge({ accountId: other.accountId });
      await failure_(payments.refund(customer, theirs.paymentId), 'NOT_FOUND');
    });
  });

  describe('the reconciler', () => {
    it('settles unknown payments, leaves a young pending one alone, and calls a pending one the gateway never saw plugin_failure once past the grace period', async () => {
      const unknown = await charge({ payTool: { card: card('4000000000000119') } });
      // A gateway that accepts and answers later: the sandbox never recorded it, as after a lost request.
      sinon.stub(sandbox, 'purchase').resolves(pending('queued'));
      const stuck = await charge({});
      expect(stuck.status).to.equal('pending');

      expect(await payments.reconcilePending(world.provider)).to.deep.equal({ checked: 1, settled: 1, stillOpen: 0, failed: 0 });
      expect((await payments.get(world.provider, unknown.paymentId)).status).to.equal('success');
      expect((await payments.get(world.provider, stuck.paymentId)).status).to.equal('pending');

      world.clock.advance(61_000);
      expect(await payments.reconcilePending(world.provider)).to.deep.equal({ checked: 1, settled: 1, stillOpen: 0, failed: 0 });
      expect(await payments.get(world.provider, stuck.paymentId)).to.include({ status: 'plugin_failure' });
      expect(await payments.reconcilePending(world.provider)).to.deep.equal({ checked: 0, settled: 0, stillOpen: 0, failed: 0 });
    });

    it('leaves a payment the gateway still calls pending as it is', async () => {
      sinon.stub(sandbox, 'purchase').resolves(pending('queued'));
      sinon.stub(sandbox, 'status').resolves({ status: 'success', result: { reference: '', state: 'pending' } });
      const p = await charge({});
      world.clock.advance(120_000);
      expect(await payments.reconcilePending(world.provider)).to.deep.equal({ checked: 1, settled: 0, stillOpen: 1, failed: 0 });
      expect((await payments.get(world.provider, p.paymentId)).status).to.equal('pending');
    });

    it('leaves the payment unknown when the gateway cannot answer, counting it failed', async () => {
      const p = await charge({ payTool: { card: card('4000000000000119') } });
      sinon.stub(sandbox, 'status').resolves(failure('maintenance', true));
      expect(await payments.reconcilePending(world.provider)).to.deep.equal({ checked: 1, settled: 0, stillOpen: 0, failed: 1 });
      await failure_(payments.reconcile(world.provider, p.paymentId), 'PROVIDER_ERROR');
      expect((await payments.get(world.provider, p.paymentId)).status).to.equal('unknown');
    });

    it('settles a payment once even when two reconcilers race', async () => {
      const p = await charge({ payTool: { card: card('4000000000000119') } });
      const [a, b] = await Promise.all([payments.reconcile(world.provider, p.paymentId), payments.reconcile(world.provider, p.paymentId)]);
      expect([a.status, b.status]).to.deep.equal(['success', 'success']);
      expect((await events(world, 'payment.succeeded')).length).to.equal(1);
    });

    it('answers a settled payment as it is, without asking the gateway', async () => {
      const p = await charge({});
      const spy = sinon.spy(sandbox, 'status');
      expect(await payments.reconcile(world.provider, p.paymentId)).to.deep.equal(p);
      expect(spy.callCount).to.equal(0);
    });
  });

  describe('pay tools', () => {
    it('stores only a token, brand, last 4 digits and expiry; the first becomes the default; the list shows no token', async () => {
      const first = await payments.storePayTool(world.provider, customer.accountId, SANDBOX, card('4242424242424242'));
      const second = await payments.storePayTool(world.provider, customer.accountId, SANDBOX, card('5555555555554444'));
      expect(first).to.include({ brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030, isDefault: true });
      expect(second).to.include({ brand: 'mastercard', last4: '4444', isDefault: false });
      const listed = await payments.listPayTools(customer, customer.accountId);
      expect(listed.map((t) => t.payToolId)).to.deep.equal([first.payToolId, second.payToolId]);
      expect(JSON.stringify(listed)).not.to.match(/tok_/);
      expect((await events(world, 'pay_tool.stored')).length).to.equal(2);
      const row = (await world.deps.db('pay_tools').where({ id: first.payToolId }).first()) as { token: string };
      expect(row.token).to.match(/^tok_/);
    });

    it('charges a stored pay tool by its token, on the tool\'s own gateway', async () => {
      const tool = await payments.storePayTool(world.provider, customer.accountId, SANDBOX, card('4242424242424242'));
      const spy = sinon.spy(sandbox, 'purchase');
      const p = await charge({ payTool: { payToolId: tool.payToolId }, gatewayInstanceId: undefined });
      expect(p).to.include({ status: 'success', payToolId: tool.payToolId, gatewayInstanceId: SANDBOX });
      expect(spy.firstCall.args[0].payTool).to.have.property('token').that.matches(/^tok_/);
    });

    it('declines a charge to a stored 4000000000000341, which the gateway accepted as a token', async () => {
      const tool = await payments.storePayTool(world.provider, customer.accountId, SANDBOX, card('4000000000000341'));
      expect(await charge({ payTool: { payToolId: tool.payToolId } })).to.include({ status: 'declined', failureCode: 'card_declined' });
    });

    it('answers a card the gateway will not store (4000000000000002) with PAYMENT_DECLINED, storing nothing', async () => {
      await failure_(payments.storePayTool(world.provider, customer.accountId, SANDBOX, card('4000000000000002')), 'PAYMENT_DECLINED', 'card');
      expect(await payments.listPayTools(world.provider, customer.accountId)).to.deep.equal([]);
    });

    it('accepts a token that happens to be all digits, but refuses (PROVIDER_ERROR) one that carries the card number, storing nothing', async () => {
      const stub = sinon.stub(sandbox, 'storePayTool');
      stub.onFirstCall().resolves({ status: 'success', result: { token: 'tok_123456789012345678', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030 } });
      stub.onSecondCall().resolves({ status: 'success', result: { token: 'tok_4242424242424242', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030 } });
      expect(await payments.storePayTool(world.provider, customer.accountId, SANDBOX, card('4242424242424242'))).to.include({ last4: '4242' });
      await failure_(payments.storePayTool(world.provider, customer.accountId, SANDBOX, card('4242424242424242')), 'PROVIDER_ERROR');
      expect((await payments.listPayTools(world.provider, customer.accountId)).length).to.equal(1);
    });

    it('refuses another account\'s pay tool as an argument error', async () => {
      const tool = await payments.storePayTool(world.provider, other.accountId, SANDBOX, card('4242424242424242'));
      await failure_(charge({ payTool: { payToolId: tool.payToolId } }), 'INVALID_ARGUMENT', 'payTool.payToolId');
    });
  });

  it('leaves no card number or CVV in any table, log line or error after charging, storing, voiding, refunding and reconciling every test card', async () => {
    const errors: string[] = [];
    for (const number of Object.keys(TEST_CARDS)) {
      const p = await charge({ payTool: { card: card(number) } }).catch((e: Error) => (errors.push(e.message), undefined));
      if (p?.status === 'success') await payments.refund(world.provider, p.paymentId, { amount: 1n });
      if (p?.status === 'unknown') await payments.reconcile(world.provider, p.paymentId);
      const tool = await payments.storePayTool(world.provider, customer.accountId, SANDBOX, card(number)).catch((e: Error) => (errors.push(e.message), undefined));
      if (tool) {
        const q = await charge({ payTool: { payToolId: tool.payToolId } });
        if (q.status === 'success') await payments.void(world.provider, q.paymentId);
      }
    }
    await charge({ payTool: { card: card('4242424242424241') } }).catch((e: Error) => errors.push(e.message));
    expect(errors.length).to.be.greaterThan(0);
    expect(logLines.length).to.be.greaterThan(0);
    const stored = await everythingStored(world.deps.db);
    expect(stored).to.contain('4242'); // the scan reads the data: last 4 digits are kept
    for (const haystack of [stored, logLines.join('\n'), errors.join('\n')]) {
      for (const number of [...Object.keys(TEST_CARDS), '4242424242424241']) expect(haystack).not.to.contain(number);
      expect(haystack).not.to.match(new RegExp(`\\b${CVV}\\b|\\b${CVV.slice(0, 3)}\\b`));
      expect(haystack).not.to.match(/cvv/i);
    }
  });
});
