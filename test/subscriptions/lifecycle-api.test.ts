import { expect } from 'chai';
import * as soap from 'soap';
import { XMLRPC_FAULT_CODES } from '../../src/api/api-errors';
import type { XmlRpcValue } from '../../src/api/xmlrpc/codec';
import { toBigInt, toNumber } from '../../src/db/knex';
import { accountWithApiUser, ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { bm, fault, result } from '../api/xmlrpc/client';
import { eventually } from '../helpers/assertions';

interface SoapFaultError {
  response?: { data?: unknown };
}
function faultOf(e: unknown): { code: string | null; message: string; field: string | null } {
  const data = (e as SoapFaultError).response?.data;
  const body = typeof data === 'string' ? data : '';
  return {
    code: /<tns:code>([^<]*)<\/tns:code>/.exec(body)?.[1] ?? null,
    message: /<tns:message>([^<]*)<\/tns:message>/.exec(body)?.[1] ?? String(e),
    field: /<tns:field>([^<]*)<\/tns:field>/.exec(body)?.[1] ?? null,
  };
}

describe('RenewSubscription, CancelSubscription (SOAP) and PlaceSubscriptionCancellationOrder_API (XML-RPC) on a running demo server', function () {
  this.timeout(120_000);
  let world: ApiWorld;
  let billing: soap.Client;
  let customerId: number;
  let planId: number;
  let periodId: number;
  let rpc: string;

  async function activeSubscription(domain: string): Promise<{ subscriptionId: number; orderId: number }> {
    const [placed] = await billing.PlaceOrderAsync({ accountId: customerId, items: { item: [{ planId, periodId, parameters: { parameter: [{ name: 'domain', value: domain }] } }] } });
    const db = world.fresh.db;
    const subscriptionId = await eventually(async () => {
      const sub = await db('subscriptions').where({ order_id: placed.orderId }).first('id', 'status', 'service_status');
      return sub && Number(sub.status) === 30 && Number(sub.service_status) === 50 ? Number(sub.id) : undefined;
    }, `the order for ${domain}`);
    return { subscriptionId, orderId: Number(placed.orderId) };
  }
  const orderStatus = (orderId: number) =>
    eventually(async () => {
      const o = await world.fresh.db('orders').where({ id: orderId }).first('status');
      return o && ['CP', 'PF', 'RJ'].includes(o.status) ? (o.status as string) : undefined;
    }, `order ${orderId}`);
  const sub = async (id: number) => {
    const r = await world.fresh.db('subscriptions').where({ id }).first('status', 'service_status', 'expiration_date');
    return { status: Number(r.status), serviceStatus: Number(r.service_status), expiration: toNumber(r.expiration_date) };
  };

  before(async () => {
    world = await startApiWorld({ demo: true });
    rpc = `${world.url}/RPC2`;
    const db = world.fresh.db;
    customerId = Number((await db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id);
    planId = Number((await db('plans').where({ name: 'Shared Hosting Basic' }).first('id')).id);
    periodId = Number((await db('plan_periods').where({ plan_id: planId, duration: 1, unit: 'month' }).first('id')).id);
    await db('plan_periods').where({ id: periodId }).update({ refund_period_days: 30, non_refundable_amount: 0 });
    billing = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    billing.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
  });
  after(() => world?.close());

  it('RenewSubscription places a renewal order that is charged and moves the expiration one period on; GetOrder shows it on the subscription', async () => {
    const { subscriptionId } = await activeSubscription('renew-api.example');
    const before = await sub(subscriptionId);
    const [r] = await billing.RenewSubscriptionAsync({ subscriptionId, idempotencyKey: 'renew-api-1' });
    const orderId = Number(r.orderId);
    expect(billing.lastResponse).to.match(new RegExp(`<RenewSubscriptionResponse xmlns="urn:hostwright:billing:v1"><orderId>${orderId}</orderId></RenewSubscriptionResponse>`));
    const [again] = await billing.RenewSubscriptionAsync({ subscriptionId, idempotencyKey: 'renew-api-1' });
    expect(Number(again.orderId)).to.equal(orderId);
    expect(await orderStatus(orderId)).to.equal('CP');
    const [got] = await billing.GetOrderAsync({ orderId });
    expect(got.order).to.include({ type: 'renewal', status: 'completed' });
    expect(Number(got.order.lines.line[0].subscriptionId)).to.equal(subscriptionId);
    const payment = await world.fresh.db('payments').where({ order_id: orderId }).first('status', 'amount');
    expect(payment.status).to.equal('success');
    expect(toBigInt(payment.amount) > 0n, 'a positive charge').to.equal(true);
    const after = await sub(subscriptionId);
    expect(new Date(after.expiration).toISOString()).to.equal(new Date(new Date(before.expiration).setUTCMonth(new Date(before.expiration).getUTCMonth() + 1)).toISOString());
  });

  it('CancelSubscription (refund, immediate) terminates through the gate and refunds the purchase; a bad `when` is INVALID_ARGUMENT on when', async () => {
    const { subscriptionId, orderId: salesId } = await activeSubscription('cancel-api.example');
    const bad = await billing.CancelSubscriptionAsync({ subscriptionId, cancelType: 'refund', when: 'tomorrow' }).then(() => null, (e: unknown) => e);
    expect(faultOf(bad)).to.include({ code: 'INVALID_ARGUMENT', field: 'when' });
    const [r] = await billing.CancelSubscriptionAsync({ subscriptionId, cancelType: 'refund', when: 'immediate', reason: 'closing the shop' });
    const orderId = Number(r.orderId);
    expect(await orderStatus(orderId)).to.equal('CP');
    expect(await sub(subscriptionId)).to.include({ status: 70, serviceStatus: 90 });
    const payments = (await world.fresh.db('payments').where({ order_id: salesId }).orderBy('id').select('kind', 'status', 'amount')) as { kind: string; status: string; amount: unknown }[];
    expect(payments.map((p) => [p.kind, p.status])).to.deep.equal([
      ['purchase', 'success'],
      ['refund', 'success'],
    ]);
    expect(toBigInt(payments[1]!.amount)).to.equal(toBigInt(payments[0]!.amount));
    const [got] = await billing.GetOrderAsync({ orderId });
    expect(got.order).to.include({ type: 'cancellation' });
    expect(billing.lastResponse).to.contain(`<total>-${(Number(toBigInt(payments[0]!.amount)) / 100).toFixed(2)}</total>`);
    // Canceled: neither renewable nor cancelable again.
    const again = await billing.RenewSubscriptionAsync({ subscriptionId }).then(() => null, (e: unknown) => e);
    expect(faultOf(again)).to.include({ code: 'NOT_ALLOWED', field: 'subscriptionId' });
  });

  it('PlaceSubscriptionCancellationOrder_API (CancelType 30) answers [Message, OrderID] and cancels; CancelType 99 is refused', async () => {
    const { subscriptionId } = await activeSubscription('cancel-rpc.example');
    const badType = fault(await bm(rpc, 'PlaceSubscriptionCancellationOrder_API', [subscriptionId, 99, 0, '']));
    expect(badType.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
    expect(badType.faultString).to.contain('CancelType');
    const row = result(await bm(rpc, 'PlaceSubscriptionCancellationOrder_API', [subscriptionId, 30, 7, 'Too expensive'])) as XmlRpcValue[];
    const [message, orderId] = row as [string, number];
    expect(message).to.match(/^Cancellation order CL\d+ is placed for subscription \d+\.$/);
    expect(await orderStatus(orderId)).to.equal('CP');
    expect(await sub(subscriptionId)).to.include({ status: 70, serviceStatus: 90 });
    const order = await world.fresh.db('orders').where({ id: orderId }).first('comment', 'total', 'type');
    expect(order).to.deep.include({ comment: 'Reason 7: Too expensive', type: 'cancellation' });
    expect(toBigInt(order.total)).to.equal(0n);
  });

  it('ChangeSubscriptionPlan answers the order, its prorated amount and currency; the subscription moves to the new plan through the gate', async () => {
    const { subscriptionId } = await activeSubscription('change-api.example');
    const db = world.fresh.db;
    const premium = await db('plans').where({ name: 'Shared Hosting Pro' }).first('id');
    const premiumPeriod = await db('plan_periods').where({ plan_id: premium.id, duration: 1, unit: 'month', trial: false }).first('id');
    const [r] = await billing.ChangeSubscriptionPlanAsync({ subscriptionId, planId: premium.id, periodId: premiumPeriod.id, when: 'immediate', idempotencyKey: 'change-api-1' });
    const orderId = Number(r.orderId);
    const order = await world.server.services.orders.get(await providerActor(world), orderId);
    expect(billing.lastResponse).to.contain(`<orderId>${orderId}</orderId><amount>${(Number(order.total) / 100).toFixed(2)}</amount><currency>${order.currency}</currency>`);
    expect(await orderStatus(orderId)).to.equal('CP');
    const after = await db('subscriptions').where({ id: subscriptionId }).first('plan_id');
    expect(Number(after.plan_id)).to.equal(Number(premium.id));
  });

  it("another reseller's API user gets NOT_FOUND for the subscription, exactly like a missing id, through each door, and nothing is placed", async () => {
    const { subscriptionId } = await activeSubscription('scope-api.example');
    const stranger = await accountWithApiUser(world, 'reseller', 'Lifecycle Stranger');
    const theirs = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    theirs.setSecurity(new soap.BasicAuthSecurity(stranger.login, stranger.password));
    const ordersBefore = Number(((await world.fresh.db('orders').count({ n: '*' })) as { n: number }[])[0]!.n);
    const missingId = 987654321;
    for (const [op, args] of [
      ['RenewSubscriptionAsync', {}],
      ['ChangeSubscriptionPlanAsync', { planId, periodId, when: 'end_of_term' }],
      ['CancelSubscriptionAsync', { cancelType: 'none', when: 'immediate' }],
    ] as const) {
      const callOp = (id: number) => (theirs as unknown as Record<string, (a: unknown) => Promise<unknown>>)[op]!({ subscriptionId: id, ...args }).then(() => null, (e: unknown) => e);
      const foreign = faultOf(await callOp(subscriptionId));
      const missing = faultOf(await callOp(missingId));
      expect(foreign.code, op).to.equal('NOT_FOUND');
      expect({ ...foreign, message: foreign.message.replace(String(subscriptionId), 'N') }, op).to.deep.equal({ ...missing, message: missing.message.replace(String(missingId), 'N') });
    }
    const creds = { Username: stranger.login, Password: stranger.password };
    const foreign = fault(await bm(rpc, 'PlaceSubscriptionCancellationOrder_API', [subscriptionId, 30, 0, ''], creds));
    const missing = fault(await bm(rpc, 'PlaceSubscriptionCancellationOrder_API', [missingId, 30, 0, ''], creds));
    expect(foreign.faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
    expect(foreign.faultString.replace(String(subscriptionId), 'N')).to.equal(missing.faultString.replace(String(missingId), 'N'));
    expect(Number(((await world.fresh.db('orders').count({ n: '*' })) as { n: number }[])[0]!.n)).to.equal(ordersBefore);
    expect(await sub(subscriptionId)).to.include({ status: 30, serviceStatus: 50 });
  });
});
