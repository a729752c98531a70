import { expect } from 'chai';
import sinon from 'sinon';
import * as soap from 'soap';
import { ManualClock } from '../../src/clock';
import type { Actor } from '../../src/context';
import { runPaymentReconciler } from '../../src/payments/reconcile-schedule';
import { GatewayTimeoutError, type PaymentGateway } from '../../src/plugins/sdk';
import { ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { eventually } from '../helpers/assertions';
import { soapReads, textsOf } from './fixtures';

/**
 * A cancellation's refund whose gateway answer is lost (unknown): the reconciler settles the refund transaction,
 * but its ledger entries are the cancellation order's (refundOnCancellationTx, when its task runs again): the
 * settlement writes no refund document of its own, and the order records the refund once, with its credit memo.
 * On a running server (demo catalog, sandbox gateway; only the gateway's answer is faked), read through SOAP.
 */
describe('a cancellation refund settled late by the reconciler is recorded once, by the cancellation order (SOAP)', function () {
  this.timeout(120_000);
  const clock = new ManualClock('2026-03-01T10:00:00Z');
  let world: ApiWorld;
  let billing: soap.Client;
  let provider: Actor;
  let gatewayId: number;
  let planId: number;
  let periodId: number;

  const db = () => world.fresh.db;
  const { untilStatus } = soapReads(() => billing);

  before(async () => {
    world = await startApiWorld({ demo: true, clock });
    provider = await providerActor(world);
    gatewayId = (await db()('plugin_instances').where({ name: 'sandbox-payments' }).first('id')).id;
    const templateId = (await db()('plans').where({ name: 'Shared Hosting Basic' }).first('template_id')).template_id as number;
    planId = await world.server.services.catalog.createPlan(provider, { templateId: Number(templateId), name: 'Hosting Late 10', published: true, resellable: true, periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    periodId = (await db()('plan_periods').where({ plan_id: planId }).first('id')).id;
    await db()('plan_periods').where({ id: periodId }).update({ refund_period_days: 14, non_refundable_amount: 0 });
    billing = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    billing.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
  });
  afterEach(() => sinon.restore());
  after(() => world?.close());

  it('unknown, settled by the reconciler, then the order\'s task: one refund document and one credit memo, balance unchanged', async () => {
    const { accounts, payments, orders, pluginInstances } = world.server.services;
    const accountId = await accounts.create(provider, {
      type: 'customer',
      companyName: 'Late Cancel',
      currency: 'USD',
      address: { address1: '1 Ledger St', city: 'Springfield', country: 'US' },
      contacts: { admin: { firstName: 'Late', lastName: 'Cancel', email: 'late-cancel@example.com', phone: '+1.5555550100' } },
    });
    const payToolId = (await payments.storePayTool(provider, accountId, gatewayId, { number: '4242424242424242', expMonth: 12, expYear: 2040, cvv: '123' }, { makeDefault: true })).payToolId;
    const saleId = (await orders.place(provider, { accountId, payToolId, items: [{ planId, periodId, parameters: { domain: 'late-cancel.example' } }] })).orderId;
    await untilStatus(saleId, ['completed']);
    const subscriptionId = Number((await db()('subscriptions').where({ order_id: saleId }).first('id')).id);
    const balanceBefore = String((await billing.GetAccountBalanceAsync({ accountId }))[0].balance);

    // The gateway refunds, then its answer is lost.
    const gateway = await pluginInstances.instantiate<PaymentGateway>(gatewayId);
    const refund = gateway.refund.bind(gateway);
    sinon.stub(gateway, 'refund').callsFake(async (req) => {
      await refund(req);
      throw new GatewayTimeoutError('The sandbox processor did not answer in time.');
    });
    const [r] = await billing.CancelSubscriptionAsync({ subscriptionId, cancelType: 'refund', when: 'immediate' });
    const orderId = Number(r.orderId);
    const refundTx = (await eventually(
      async () => (await db()('payments').where({ account_id: accountId, kind: 'refund', status: 'unknown' }).first('id')) as { id: number } | undefined,
      'the cancellation refund to be unknown',
      60_000,
    ))!;
    sinon.restore();

    expect(await runPaymentReconciler(world.server.services.deps, payments)).to.include({ checked: 1, settled: 1, failed: 0 });
    expect((await db()('payments').where({ id: refundTx.id }).first('status')).status).to.equal('success');
    // Settled, but the ledger entries are the order's: nothing written by the settlement.
    expect(await db()('documents').where({ account_id: accountId, type: 'refund' }).select('id')).to.deep.equal([]);

    // The order's task runs again (after its backoff) and records the refund with its credit memo.
    clock.advance(2 * 3_600_000);
    await untilStatus(orderId, ['completed']);
    const refunds = (await db()('documents').where({ account_id: accountId, type: 'refund' }).select('id', 'total', 'payment_id', 'open_amount')) as Record<string, unknown>[];
    expect(refunds.map((d) => [Number(d.total), Number(d.payment_id), Number(d.open_amount)])).to.deep.equal([[1000, Number(refundTx.id), 0]]);
    const memos = (await db()('documents').where({ order_id: orderId, type: 'credit_memo' }).select('total')) as { total: unknown }[];
    expect(memos.map((m) => Number(m.total))).to.deep.equal([1000]);
    await billing.GetAccountBalanceAsync({ accountId });
    expect(textsOf(billing.lastResponse as string, 'balance')[0]).to.equal(balanceBefore === '0' ? '0.00' : balanceBefore);
    // The reconciler has nothing more to do and writes nothing more.
    expect(await runPaymentReconciler(world.server.services.deps, payments)).to.include({ checked: 0 });
    expect((await db()('documents').where({ account_id: accountId, type: 'refund' }).select('id')).length).to.equal(1);
  });
});
