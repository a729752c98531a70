/**
 * A renewal order that was charged but cannot extend its subscription any more (terminated meanwhile, here by an
 * operator's TerminateSubscription while the order waited for approval after its charge) fails AND gives the charge
 * back, as a failed change or sales order does: a customer is never charged for a renewal that is not delivered. And a
 * renewal of a subscription whose end-of-term cancellation is scheduled is refused before anything is charged.
 * A real server over SQLite or MariaDB (TEST_DATABASE_URL), node-soap's client, real HTTP.
 */
import { expect } from 'chai';
import * as soap from 'soap';
import { defaultWorkflow } from '../../src/domain/workflow';
import { ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { eventually } from '../helpers/assertions';
import { textsOf } from '../orders/fixtures';

describe('renewals that would not be delivered: never kept paid for', function () {
  this.timeout(120_000);
  let world: ApiWorld;
  let customerId: number;
  let planId: number;
  let periodId: number;
  let billing: soap.Client;
  let provisioning: soap.Client;
  const db = () => world.fresh.db;

  const orderAt = (orderId: number, statuses: string[]) =>
    eventually(async () => {
      const o = await db()('orders').where({ id: orderId }).first('status', 'payment_id', 'failure_reason');
      return o && statuses.includes(o.status) ? (o as { status: string; payment_id: number | null; failure_reason: string | null }) : undefined;
    }, `order ${orderId} at ${statuses.join('/')}`);

  before(async () => {
    world = await startApiWorld({ demo: true });
    customerId = Number((await db()('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id);
    planId = Number((await db()('plans').where({ name: 'Shared Hosting Basic' }).first('id')).id);
    periodId = Number((await db()('plan_periods').where({ plan_id: planId, duration: 1, unit: 'month', trial: false }).first('id')).id);
    billing = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    billing.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
    provisioning = await soap.createClientAsync(`${world.url}/soap/provisioning?wsdl`);
    provisioning.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
    // The provider's renewals are charged, then wait for an operator before they are applied.
    const { steps } = defaultWorkflow('renewal');
    await world.server.services.workflows.define(await providerActor(world), {
      orderType: 'renewal',
      definition: {
        orderType: 'renewal',
        start: 'charge_card',
        steps: { ...steps, charge_card: { action: 'charge_payment', next: { success: 'review', declined: 'reject_order', unknown: 'wait_for_approval' } }, review: { action: 'wait_for_approval', next: { approved: 'provision_changes', rejected: 'reject_order' } } },
      },
    });
  });
  after(() => world?.close());

  it('RenewSubscription charged, TerminateSubscription, ApproveOrder: the order fails and its payment is voided', async () => {
    const [placed] = await billing.PlaceOrderAsync({ accountId: customerId, items: { item: [{ planId, periodId, parameters: { parameter: [{ name: 'domain', value: 'renew-terminated.example' }] } }] } });
    await orderAt(Number(placed.orderId), ['CP']);
    const subscriptionId = Number((await db()('subscriptions').where({ order_id: Number(placed.orderId) }).first('id')).id);
    const expiration = Number((await db()('subscriptions').where({ id: subscriptionId }).first('expiration_date')).expiration_date);

    const [renewed] = await billing.RenewSubscriptionAsync({ subscriptionId });
    const renewal = await orderAt(Number(renewed.orderId), ['WA']);
    const paymentId = Number(renewal.payment_id);
    expect((await db()('payments').where({ id: paymentId }).first('status')).status).to.equal('success');

    const [t] = await provisioning.TerminateSubscriptionAsync({ subscriptionId, reason: 'closing' });
    await eventually(async () => ((await db()('tasks').where({ id: Number(t.taskId) }).first('status'))?.status === 'done' ? true : undefined), 'the termination');
    expect(Number((await db()('subscriptions').where({ id: subscriptionId }).first('status')).status)).to.equal(60);

    await billing.ApproveOrderAsync({ orderId: Number(renewed.orderId) });
    const failed = await orderAt(Number(renewed.orderId), ['PF', 'CP']);
    expect(failed.status).to.equal('PF');
    expect(failed.failure_reason).to.match(/Subscription \d+ is in status 60/);
    // Not extended, and not paid for: the charge is voided (or refunded), and the ledger says so.
    expect(Number((await db()('subscriptions').where({ id: subscriptionId }).first('expiration_date')).expiration_date)).to.equal(expiration);
    const payment = await eventually(async () => {
      const p = await db()('payments').where({ id: paymentId }).first('status', 'amount');
      const refunded = await db()('payments').where({ parent_payment_id: paymentId, kind: 'refund', status: 'success' }).sum({ s: 'amount' }).first();
      return p.status === 'voided' || Number(refunded?.s ?? 0) === Number(p.amount) ? { status: String(p.status), refunded: Number(refunded?.s ?? 0) } : undefined;
    }, 'the renewal charge given back', 5_000);
    expect(payment.status === 'voided' || payment.refunded > 0).to.equal(true);
    expect(failed.failure_reason).to.match(/voided|refunded/);
  });

  it('RenewSubscription after CancelSubscription at the end of the term is NOT_ALLOWED on subscriptionId: nothing is charged for a period the scheduled cancellation would take away', async () => {
    const [placed] = await billing.PlaceOrderAsync({ accountId: customerId, items: { item: [{ planId, periodId, parameters: { parameter: [{ name: 'domain', value: 'renew-after-cancel.example' }] } }] } });
    await orderAt(Number(placed.orderId), ['CP']);
    const subscriptionId = Number((await db()('subscriptions').where({ order_id: Number(placed.orderId) }).first('id')).id);
    const expiration = new Date(Number((await db()('subscriptions').where({ id: subscriptionId }).first('expiration_date')).expiration_date));
    const [canceled] = await billing.CancelSubscriptionAsync({ subscriptionId, cancelType: 'none', when: 'end_of_term' });
    await orderAt(Number(canceled.orderId), ['CP']);

    const orders = async () => Number((await db()('orders').count({ n: '*' }).first())!.n);
    const before = await orders();
    const refused = await billing.RenewSubscriptionAsync({ subscriptionId }).then(
      () => null,
      (e: { body?: string }) => ({ code: textsOf(e.body ?? '', 'code')[0], field: textsOf(e.body ?? '', 'field')[0], message: textsOf(e.body ?? '', 'message')[0] }),
    );
    expect(refused).to.include({ code: 'NOT_ALLOWED', field: 'subscriptionId' });
    expect(refused?.message).to.contain(expiration.toISOString());
    expect(await orders()).to.equal(before);

    // An operator cancels the scheduled cancellation's task: the subscription renews again.
    const taskId = Number(/task (\d+)/.exec(refused!.message!)![1]);
    await world.server.services.tasks.cancel(await providerActor(world), taskId);
    const [renewed] = await billing.RenewSubscriptionAsync({ subscriptionId });
    expect(Number(renewed.orderId)).to.be.greaterThan(0);
  });

  it('ChangeSubscriptionPlan now to a period of another length (a new term, charged in full) after CancelSubscription at the end of the term is NOT_ALLOWED on subscriptionId', async () => {
    const [placed] = await billing.PlaceOrderAsync({ accountId: customerId, items: { item: [{ planId, periodId, parameters: { parameter: [{ name: 'domain', value: 'change-after-cancel.example' }] } }] } });
    await orderAt(Number(placed.orderId), ['CP']);
    const subscriptionId = Number((await db()('subscriptions').where({ order_id: Number(placed.orderId) }).first('id')).id);
    const [canceled] = await billing.CancelSubscriptionAsync({ subscriptionId, cancelType: 'none', when: 'end_of_term' });
    await orderAt(Number(canceled.orderId), ['CP']);
    const yearly = Number((await db()('plan_periods').where({ plan_id: planId, duration: 12, unit: 'month' }).first('id')).id);

    const orders = async () => Number((await db()('orders').count({ n: '*' }).first())!.n);
    const before = await orders();
    const refused = await billing.ChangeSubscriptionPlanAsync({ subscriptionId, planId, periodId: yearly, when: 'immediate' }).then(
      () => null,
      (e: { body?: string }) => ({ code: textsOf(e.body ?? '', 'code')[0], field: textsOf(e.body ?? '', 'field')[0] }),
    );
    expect(refused).to.deep.equal({ code: 'NOT_ALLOWED', field: 'subscriptionId' });
    expect(await orders()).to.equal(before);
  });
});
