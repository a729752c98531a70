import crypto from 'node:crypto';
import { expect } from 'chai';
import type { CardDetails, Money, Outcome, PaymentGateway, PaymentRequest, PaymentResult } from '../../src/plugins/sdk';

/**
 * What every PaymentGateway plugin must do, whatever processor it talks to. A plugin's own test file calls
 * paymentGatewayContract() with a way to make a fresh gateway and two cards its processor approves and declines.
 */
export interface GatewayContractFixture {
  gateway(): PaymentGateway | Promise<PaymentGateway>;
  approvedCard: CardDetails;
  declinedCard: CardDetails;
}

const newKey = (what: string) => `contract-${what}-${crypto.randomUUID()}`;
const usd = (amount: string): Money => ({ amount, currency: 'USD' });

function request(key: string, card: CardDetails | { token: string }, money: Money = usd('1999')): PaymentRequest {
  return { idempotencyKey: key, money, payTool: 'token' in card ? card : { card }, description: 'Contract test', customerReference: 'account-1' };
}

function reference(outcome: Outcome<PaymentResult>): string {
  expect(outcome.status, `expected success, got ${JSON.stringify(outcome)}`).to.equal('success');
  return (outcome as { result: PaymentResult }).result.reference;
}

/** The state status(key) reports; for a void or refund key the core accepts its own state or plain succeeded. */
async function stateOf(gw: PaymentGateway, key: string): Promise<string> {
  const status = await gw.status(key);
  expect(status.status).to.equal('success');
  return (status as { result: { state: string } }).result.state;
}

export function paymentGatewayContract(name: string, makeFixture: () => GatewayContractFixture | Promise<GatewayContractFixture>): void {
  describe(`${name} honours the PaymentGateway contract`, () => {
    let fx: GatewayContractFixture;
    let gw: PaymentGateway;
    beforeEach(async () => {
      fx = await makeFixture();
      gw = await fx.gateway();
    });

    it('purchases with an approved card, and status(key) reports that purchase succeeded under the same reference', async () => {
      const key = newKey('purchase');
      const ref = reference(await gw.purchase(request(key, fx.approvedCard)));
      expect(ref).to.be.a('string').and.not.equal('');
      expect(await gw.status(key)).to.deep.equal({ status: 'success', result: { reference: ref, state: 'succeeded' } });
    });

    it('answers the same idempotency key twice with the first outcome, acting once', async () => {
      const key = newKey('twice');
      const first = await gw.purchase(request(key, fx.approvedCard, usd('5000')));
      const second = await gw.purchase(request(key, fx.approvedCard, usd('5000')));
      expect(second).to.deep.equal(first);
      // One charge of 50.00: refunding 50.00 works once, and nothing is left for a second refund.
      expect((await gw.refund({ idempotencyKey: newKey('r1'), reference: reference(first), money: usd('5000') })).status).to.equal('success');
      expect((await gw.refund({ idempotencyKey: newKey('r2'), reference: reference(first), money: usd('1') })).status).to.equal('failure');
    });

    it('answers the same idempotency key sent concurrently alike, with one transaction', async () => {
      const key = newKey('concurrent');
      const [a, b] = await Promise.all([gw.purchase(request(key, fx.approvedCard)), gw.purchase(request(key, fx.approvedCard))]);
      expect(b).to.deep.equal(a);
      expect(reference(a)).to.equal(reference(b));
    });

    it('declines the declined card with a failure that is not retryable, and status(key) reports it declined', async () => {
      const key = newKey('decline');
      const outcome = await gw.purchase(request(key, fx.declinedCard));
      expect(outcome).to.include({ status: 'failure', retryable: false });
      expect((outcome as { message: string }).message).to.be.a('string').and.not.equal('');
      const status = await gw.status(key);
      expect(status.status).to.equal('success');
      expect((status as { result: { state: string } }).result.state).to.equal('declined');
    });

    it('voids a purchase by its reference once; status(key) of the purchase then reports it voided', async () => {
      const key = newKey('to-void');
      const ref = reference(await gw.purchase(request(key, fx.approvedCard)));
      const voidKey = newKey('void');
      reference(await gw.void({ idempotencyKey: voidKey, reference: ref }));
      expect((await gw.status(key)) as unknown).to.have.nested.property('result.state', 'voided');
      expect(await stateOf(gw, voidKey)).to.be.oneOf(['voided', 'succeeded']);
      expect((await gw.void({ idempotencyKey: newKey('void-again'), reference: ref })).status).to.equal('failure');
    });

    it('refunds a purchase by its reference in part and then the rest, and refuses more than what is left', async () => {
      const ref = reference(await gw.purchase(request(newKey('to-refund'), fx.approvedCard, usd('10000'))));
      const partKey = newKey('refund-part');
      reference(await gw.refund({ idempotencyKey: partKey, reference: ref, money: usd('2500') }));
      expect(await stateOf(gw, partKey)).to.be.oneOf(['refunded', 'succeeded']);
      expect(await gw.refund({ idempotencyKey: newKey('too-much'), reference: ref, money: usd('7501') })).to.include({ status: 'failure', retryable: false });
      reference(await gw.refund({ idempotencyKey: newKey('rest'), reference: ref, money: usd('7500') }));
    });

    it('authorizes, then captures by reference, and the capture can be refunded', async () => {
      const authKey = newKey('authorize');
      const auth = reference(await gw.authorize(request(authKey, fx.approvedCard, usd('3000'))));
      const captured = reference(await gw.capture({ idempotencyKey: newKey('capture'), reference: auth, money: usd('3000') }));
      expect((await gw.status(authKey)) as unknown).to.have.nested.property('result.state', 'succeeded');
      reference(await gw.refund({ idempotencyKey: newKey('refund-capture'), reference: captured, money: usd('3000') }));
    });

    it('reports a key it never saw as not_found', async () => {
      const status = await gw.status(newKey('never-used'));
      expect(status.status).to.equal('success');
      expect((status as { result: { state: string } }).result.state).to.equal('not_found');
    });

    it('stores a pay tool as a token with brand, last 4 digits and expiry, never the number, and charges the token', async () => {
      const card = fx.approvedCard;
      const outcome = await gw.storePayTool({ idempotencyKey: newKey('store'), card, customerReference: 'account-1' });
      expect(outcome.status).to.equal('success');
      const tool = (outcome as { result: { token: string; brand: string; last4: string; expMonth: number; expYear: number } }).result;
      expect(tool.token).to.be.a('string').and.not.equal('');
      expect(tool.brand).to.be.a('string').and.not.equal('');
      expect({ last4: tool.last4, expMonth: tool.expMonth, expYear: tool.expYear }).to.deep.equal({ last4: card.number.slice(-4), expMonth: card.expMonth, expYear: card.expYear });
      expect(JSON.stringify(outcome)).not.to.contain(card.number);
      reference(await gw.purchase(request(newKey('by-token'), { token: tool.token })));
    });

    it('keeps amounts exact as minor-unit strings in JPY, USD and KWD, beyond 2^53 too', async () => {
      for (const money of [
        { amount: '1', currency: 'JPY' },
        { amount: '123456789012345678', currency: 'USD' },
        { amount: '1234567', currency: 'KWD' },
      ]) {
        const ref = reference(await gw.purchase(request(newKey(`exact-${money.currency}`), fx.approvedCard, money)));
        // A refund of exactly the amount works and one unit more does not: the gateway holds it to the unit.
        expect((await gw.refund({ idempotencyKey: newKey('over'), reference: ref, money: { ...money, amount: (BigInt(money.amount) + 1n).toString() } })).status).to.equal('failure');
        reference(await gw.refund({ idempotencyKey: newKey('exact'), reference: ref, money }));
      }
    });
  });
}
