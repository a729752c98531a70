/**
 * RefundPayment of a card payment whose gateway answers late (pending, or a timeout: unknown): the reconciler's
 * settlement writes the ledger's refund document, once, as a direct successful refund would; a refund it settles
 * as declined leaves the ledger untouched; the same RefundPayment again after the settlement writes nothing more.
 * Through SOAP bytes (RefundPayment, GetAccountBalance, ListPayments, GetInvoice, AdjustBalance, PayInvoice) and
 * XML-RPC AppliedDocsListGet_API, on a running server with the sandbox gateway; only the gateway's answer is faked
 * (its refund is made at the gateway, then the answer is lost or comes back pending).
 */
import { expect } from 'chai';
import sinon from 'sinon';
import * as soap from 'soap';
import { XmlRpcDouble, type XmlRpcValue } from '../../../src/api/xmlrpc/codec';
import { ManualClock } from '../../../src/clock';
import type { Actor } from '../../../src/context';
import { runPaymentReconciler } from '../../../src/payments/reconcile-schedule';
import { GatewayTimeoutError, pending, type PaymentGateway } from '../../../src/plugins/sdk';
import { ADMIN_PASSWORD, billedCustomer, issuedInvoice, providerActor, startApiWorld, type ApiWorld } from '../../helpers/api';
import { textsOf } from '../../orders/fixtures';
import { bm, result } from '../xmlrpc/client';

type Reply = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const asText = (row: XmlRpcValue[]): XmlRpcValue[] => row.map((v) => (v instanceof XmlRpcDouble ? v.text : v));

describe('RefundPayment answered pending or unknown: the reconciler records the refund in the ledger once (SOAP, XML-RPC)', function () {
  this.timeout(60_000);
  const clock = new ManualClock('2026-03-01T10:00:00Z');
  let world: ApiWorld;
  let admin: soap.Client;
  let provider: Actor;
  let gatewayId: number;
  let gateway: PaymentGateway;

  async function call(op: string, args: Record<string, unknown>): Promise<Reply> {
    const fn = (admin as unknown as Record<string, (a: unknown) => Promise<[Reply]>>)[`${op}Async`]!;
    const [r] = await fn.call(admin, args);
    return r ?? {};
  }
  async function faultOf(op: string, args: Record<string, unknown>): Promise<string> {
    try {
      await call(op, args);
    } catch (e) {
      return textsOf((e as { body?: string }).body ?? '', 'code')[0]!;
    }
    throw new Error(`${op} succeeded`);
  }
  const raw = (local: string): string[] => textsOf(admin.lastResponse as string, local);
  const balance = async (accountId: number) => {
    await call('GetAccountBalance', { accountId });
    return raw('balance')[0];
  };
  /** ListPayments: [kind, status, amount as the bytes say it] of each payment and refund, newest first. */
  const payments = async (accountId: number) => {
    const r = await call('ListPayments', { accountId });
    const list = ([] as Reply[]).concat(r.payments?.payment ?? []);
    const amounts = raw('amount');
    return { total: Number(r.total), rows: list.map((p, i) => [p.kind, p.status, amounts[i]]) };
  };
  const invoiceState = async (invoiceId: number) => {
    const r = await call('GetInvoice', { invoiceId });
    return [r.invoice.status, raw('balanceDue')[0]];
  };
  /** [DocID, DocNum, DocType, AppliedAmount] of what was applied to or from a document (AppliedDocsListGet_API, Kind 2). */
  const applied = async (documentId: number) => (result(await bm(`${world.url}/RPC2`, 'AppliedDocsListGet_API', [documentId, 2, 0])) as XmlRpcValue[][]).map((r) => asText(r).slice(0, 4));
  const refundDocs = (accountId: number) =>
    world.fresh.db('documents').where({ account_id: accountId, type: 'refund' }).orderBy('id').select('id', 'number', 'total', 'payment_id') as Promise<{ id: number; number: string; total: unknown; payment_id: unknown }[]>;
  const reconcile = () => runPaymentReconciler(world.server.services.deps, world.server.services.payments);

  /**
   * A customer who paid an invoice of 25.00 by card (PayInvoice) and was given 10.00 of credit (AdjustBalance):
   * balance -10.00. Answers the account, the card payment and the credit memo.
   */
  async function paidCustomer(): Promise<{ accountId: number; paymentId: number; creditMemoId: number }> {
    const accountId = await billedCustomer(world, provider, { label: 'Late Refund', currency: 'USD', country: 'US', card: '4242424242424242', gatewayId });
    const invoiceId = await issuedInvoice(world, provider, accountId, 'USD', [2500n]);
    const paid = await call('PayInvoice', { invoiceId });
    expect(paid.payment.status).to.equal('success');
    await call('AdjustBalance', { accountId, amount: '-10.00', currency: 'USD', reason: 'Goodwill' });
    expect(await balance(accountId)).to.equal('-10.00');
    const memo = (await world.fresh.db('documents').where({ account_id: accountId, type: 'credit_memo' }).first('id')) as { id: number };
    return { accountId, paymentId: Number(paid.payment.paymentId), creditMemoId: Number(memo.id) };
  }

  /** What the ledger shows after a 10.00 refund of the 25.00 payment, taken from the goodwill credit, whichever way it came. */
  async function expectRefundedOnce(c: { accountId: number; paymentId: number; creditMemoId: number }, refundPaymentId: number): Promise<void> {
    const docs = await refundDocs(c.accountId);
    expect(docs.map((d) => [Number(d.total), Number(d.payment_id)]), 'one refund document, of the refund transaction').to.deep.equal([[1000, refundPaymentId]]);
    // The credit of 10.00 pays the refund: nothing left for the customer to spend.
    expect(await balance(c.accountId)).to.equal('0.00');
    expect(await payments(c.accountId)).to.deep.equal({ total: 2, rows: [['refund', 'success', '10.00'], ['payment', 'success', '25.00']] });
    const memo = (await world.fresh.db('documents').where({ id: c.creditMemoId }).first('number')) as { number: string };
    expect(await applied(Number(docs[0]!.id))).to.deep.equal([[c.creditMemoId, memo.number, 80, '10.00']]);
    // A later invoice is not paid by a credit that was already given back.
    const later = await issuedInvoice(world, provider, c.accountId, 'USD', [1000n]);
    expect(await invoiceState(later)).to.deep.equal(['open', '10.00']);
    expect(await balance(c.accountId)).to.equal('10.00');
  }

  before(async () => {
    world = await startApiWorld({ demo: true, clock });
    provider = await providerActor(world);
    gatewayId = ((await world.fresh.db('plugin_instances').where({ kind: 'payment' }).orderBy('id').first('id')) as { id: number }).id;
    gateway = await world.server.services.pluginInstances.instantiate<PaymentGateway>(gatewayId);
    admin = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    admin.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
  });
  afterEach(() => sinon.restore());
  after(() => world?.close());

  it('a direct refund (the gateway answers at once) is recorded as before: the goodwill credit pays it', async () => {
    const c = await paidCustomer();
    const rf = await call('RefundPayment', { paymentId: c.paymentId, amount: '10.00', reason: 'downgrade' });
    expect([rf.payment.kind, rf.payment.status]).to.deep.equal(['refund', 'success']);
    await expectRefundedOnce(c, Number(rf.payment.paymentId));
  });

  it('unknown (the gateway refunded, then its answer was lost): nothing in the ledger until the reconciler settles it, then one refund document', async () => {
    const c = await paidCustomer();
    const refund = gateway.refund.bind(gateway);
    sinon.stub(gateway, 'refund').callsFake(async (req) => {
      await refund(req);
      throw new GatewayTimeoutError('The sandbox processor did not answer in time.');
    });
    const rf = await call('RefundPayment', { paymentId: c.paymentId, amount: '10.00', reason: 'downgrade' });
    expect([rf.payment.kind, rf.payment.status, raw('amount')[0]]).to.deep.equal(['refund', 'unknown', '10.00']);
    expect(await refundDocs(c.accountId)).to.deep.equal([]);
    expect(await balance(c.accountId)).to.equal('-10.00');

    expect(await reconcile()).to.include({ checked: 1, settled: 1, failed: 0 });
    await expectRefundedOnce(c, Number(rf.payment.paymentId));
    const doc = (await refundDocs(c.accountId))[0]!;
    const audit = await world.fresh.db('audit_log').where({ operation: 'refund.issue', object_id: String(doc.id) }).count({ n: '*' });
    expect(Number((audit[0] as { n: unknown }).n), 'the refund document has its audit record').to.equal(1);
    const events = await world.fresh.db('events').where({ name: 'refund.issued', object_id: String(doc.id) }).count({ n: '*' });
    expect(Number((events[0] as { n: unknown }).n), 'and its event').to.equal(1);
    // A second run finds nothing to settle and writes nothing.
    expect(await reconcile()).to.include({ checked: 0 });
    expect((await refundDocs(c.accountId)).length).to.equal(1);
  });

  it('pending, then RefundPayment again with the same key after the reconciler settled it: the same refund, still one document', async () => {
    const c = await paidCustomer();
    const refund = gateway.refund.bind(gateway);
    sinon.stub(gateway, 'refund').callsFake(async (req) => {
      await refund(req);
      return pending('The processor queued the refund.');
    });
    const args = { paymentId: c.paymentId, amount: '10.00', reason: 'downgrade', idempotencyKey: 'late-refund-1' };
    const rf = await call('RefundPayment', args);
    expect([rf.payment.status, raw('amount')[0]]).to.deep.equal(['pending', '10.00']);
    expect(await refundDocs(c.accountId)).to.deep.equal([]);
    // Young pending payments are left to their own call; past the grace period the reconciler asks the gateway.
    expect(await reconcile()).to.include({ checked: 0 });
    clock.advance(6 * 60_000);
    expect(await reconcile()).to.include({ checked: 1, settled: 1, failed: 0 });
    // Written by the settlement itself, before anyone asks again.
    expect((await refundDocs(c.accountId)).map((d) => Number(d.payment_id))).to.deep.equal([Number(rf.payment.paymentId)]);
    const again = await call('RefundPayment', args);
    expect([again.payment.paymentId, again.payment.status]).to.deep.equal([rf.payment.paymentId, 'success']);
    await expectRefundedOnce(c, Number(rf.payment.paymentId));
    expect((await call('RefundPayment', args)).payment.paymentId).to.equal(rf.payment.paymentId);
    expect((await refundDocs(c.accountId)).length).to.equal(1);
  });

  it('pending, then declined by the gateway: the reconciler settles it declined and the ledger is untouched', async () => {
    const c = await paidCustomer();
    const refund = gateway.refund.bind(gateway);
    sinon.stub(gateway, 'refund').callsFake(async (req) => {
      // The processor refuses it (more than was charged), but the answer comes back as pending first.
      await refund({ ...req, money: { ...req.money, amount: '999999' } });
      return pending('The processor queued the refund.');
    });
    const args = { paymentId: c.paymentId, amount: '10.00', reason: 'downgrade', idempotencyKey: 'late-refund-2' };
    const rf = await call('RefundPayment', args);
    expect(rf.payment.status).to.equal('pending');
    clock.advance(6 * 60_000);
    expect(await reconcile()).to.include({ checked: 1, settled: 1, failed: 0 });
    expect(await refundDocs(c.accountId)).to.deep.equal([]);
    expect(await balance(c.accountId)).to.equal('-10.00');
    expect(await payments(c.accountId)).to.deep.equal({ total: 2, rows: [['refund', 'declined', '10.00'], ['payment', 'success', '25.00']] });
    expect(await faultOf('RefundPayment', args)).to.equal('PAYMENT_DECLINED');
    expect(await refundDocs(c.accountId)).to.deep.equal([]);
    expect(await balance(c.accountId)).to.equal('-10.00');
  });
});
