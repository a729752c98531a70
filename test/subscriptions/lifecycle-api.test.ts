import { expect } from 'chai';
import * as soap from 'soap';
import { XMLRPC_FAULT_CODES } from '../../src/api/api-errors';
import type { XmlRpcValue } from '../../src/api/xmlrpc/codec';
import { ManualClock } from '../../src/clock';
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

/**
 * The demo's Bluebird Bakery buying Shared Hosting Basic monthly through SOAP PlaceOrder, as an admin's client:
 * activeSubscription() waits until the order has provisioned it; orderStatus() until an order has finished.
 */
async function demoOrdering(world: ApiWorld) {
  const db = world.fresh.db;
  const customerId = Number((await db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id);
  const planId = Number((await db('plans').where({ name: 'Shared Hosting Basic' }).first('id')).id);
  const periodId = Number((await db('plan_periods').where({ plan_id: planId, duration: 1, unit: 'month' }).first('id')).id);
  const billing = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
  billing.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
  async function activeSubscription(domain: string): Promise<{ subscriptionId: number; orderId: number }> {
    const [placed] = await billing.PlaceOrderAsync({ accountId: customerId, items: { item: [{ planId, periodId, parameters: { parameter: [{ name: 'domain', value: domain }] } }] } });
    const subscriptionId = await eventually(async () => {
      const sub = await db('subscriptions').where({ order_id: placed.orderId }).first('id', 'status', 'service_status');
      return sub && Number(sub.status) === 30 && Number(sub.service_status) === 50 ? Number(sub.id) : undefined;
    }, `the order for ${domain}`);
    // And the order finished: its last steps (notify, completed) write audit rows a test must not mistake for its own.
    await eventually(async () => ((await db('orders').where({ id: placed.orderId }).first('status'))?.status === 'CP' ? true : undefined), `order ${placed.orderId} completed`);
    return { subscriptionId, orderId: Number(placed.orderId) };
  }
  const orderStatus = (orderId: number) =>
    eventually(async () => {
      const o = await db('orders').where({ id: orderId }).first('status');
      return o && ['CP', 'PF', 'RJ'].includes(o.status) ? (o.status as string) : undefined;
    }, `order ${orderId}`);
  return { customerId, planId, periodId, billing, activeSubscription, orderStatus };
}

describe('RenewSubscription, CancelSubscription (SOAP) and PlaceSubscriptionCancellationOrder_API (XML-RPC) on a running demo server', function () {
  this.timeout(120_000);
  let world: ApiWorld;
  let billing: soap.Client;
  let planId: number;
  let periodId: number;
  let rpc: string;
  let activeSubscription: (domain: string) => Promise<{ subscriptionId: number; orderId: number }>;
  let orderStatus: (orderId: number) => Promise<string>;
  const sub = async (id: number) => {
    const r = await world.fresh.db('subscriptions').where({ id }).first('status', 'service_status', 'expiration_date');
    return { status: Number(r.status), serviceStatus: Number(r.service_status), expiration: toNumber(r.expiration_date) };
  };

  before(async () => {
    world = await startApiWorld({ demo: true });
    rpc = `${world.url}/RPC2`;
    ({ planId, periodId, billing, activeSubscription, orderStatus } = await demoOrdering(world));
    await world.fresh.db('plan_periods').where({ id: periodId }).update({ refund_period_days: 30, non_refundable_amount: 0 });
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

describe('AddSubscriptionResources (SOAP) on a running demo server with a hand-moved clock', function () {
  this.timeout(120_000);
  const clock = new ManualClock('2026-03-01T10:00:00Z');
  let world: ApiWorld;
  let billing: soap.Client;
  let mailboxes: number;
  let customerId: number;
  let activeSubscription: (domain: string) => Promise<{ subscriptionId: number; orderId: number }>;
  let orderStatus: (orderId: number) => Promise<string>;
  const count = async (table: string, where: Record<string, unknown> = {}) => Number(((await world.fresh.db(table).where(where).count({ n: '*' })) as { n: number }[])[0]!.n);
  const addMailboxes = (client: soap.Client, subscriptionId: number, quantity: number | string, idempotencyKey?: string) =>
    client.AddSubscriptionResourcesAsync({ subscriptionId, resources: { resource: [{ resourceId: mailboxes, quantity }] }, idempotencyKey });

  before(async () => {
    world = await startApiWorld({ demo: true, clock });
    let planId: number;
    ({ planId, customerId, billing, activeSubscription, orderStatus } = await demoOrdering(world));
    // Shared Hosting Basic's mailboxes: 10 included, at most 100, 0.75 a month each; here also 1.00 setup each.
    mailboxes = Number((await world.fresh.db('resources').where({ name: 'Mailboxes' }).first('id')).id);
    await world.fresh.db('resource_rates').where({ plan_id: planId, resource_id: mailboxes }).update({ setup_fee: 100 });
  });
  after(() => world?.close());
  afterEach(() => clock.set('2026-03-01T10:00:00Z'));

  it('2 more mailboxes ten days into the month: the order answers setup plus the prorated fee, completes through the gate, and GetSubscription shows the raised limit', async () => {
    const { subscriptionId } = await activeSubscription('more-mail.example');
    const term = await world.fresh.db('subscriptions').where({ id: subscriptionId }).first('start_date', 'expiration_date');
    expect([new Date(toNumber(term.start_date)).toISOString(), new Date(toNumber(term.expiration_date)).toISOString()]).to.deep.equal(['2026-03-01T10:00:00.000Z', '2026-04-01T10:00:00.000Z']);
    clock.set('2026-03-11T10:00:00Z');
    const [r] = await addMailboxes(billing, subscriptionId, 2);
    const orderId = Number(r.orderId);
    // 2 x 1.00 setup = 2.00; 2 x 0.75 x 21/31 (days left of the 31-day term) = 1.0161... -> 1.02; 2.00 + 1.02 = 3.02
    expect(billing.lastResponse).to.match(
      new RegExp(`<AddSubscriptionResourcesResponse xmlns="urn:hostwright:billing:v1"><orderId>${orderId}</orderId><orderNumber>RS0*${orderId}</orderNumber><status>[a-z_]+</status><amount>3\\.02</amount><currency>USD</currency></AddSubscriptionResourcesResponse>`),
    );
    expect(await orderStatus(orderId)).to.equal('CP');
    const payment = await world.fresh.db('payments').where({ order_id: orderId }).first('status', 'amount');
    expect([payment.status, toBigInt(payment.amount)]).to.deep.equal(['success', 302n]);
    await billing.GetSubscriptionAsync({ subscriptionId });
    expect(billing.lastResponse).to.match(new RegExp(`<resource><resourceId>${mailboxes}</resourceId><limit>12</limit><usage>`));
  });

  it('a quantity above the rate\'s maximum is INVALID_ARGUMENT on resources[0].quantity, and nothing is written but the failed call\'s audit record', async () => {
    const { subscriptionId } = await activeSubscription('too-many-mail.example');
    const orders = await count('orders');
    const lastAudit = Number(((await world.fresh.db('audit_log').max({ id: 'id' })) as { id: unknown }[])[0]!.id);
    // 10 included + 91 = 101, above the maximum of 100.
    const e = await addMailboxes(billing, subscriptionId, 91, 'too-many-1').then(() => null, (x: unknown) => x);
    expect(faultOf(e)).to.include({ code: 'INVALID_ARGUMENT', field: 'resources[0].quantity' });
    expect(faultOf(e).message).to.contain('at most 100');
    expect(await count('orders')).to.equal(orders);
    expect(await count('idempotency_keys', { key: 'too-many-1' })).to.equal(0);
    const audit = (await world.fresh.db('audit_log').where('id', '>', lastAudit).select('operation', 'outcome', 'error_code')) as Record<string, unknown>[];
    expect(audit).to.deep.equal([{ operation: 'AddSubscriptionResources', outcome: 'error', error_code: 'INVALID_ARGUMENT' }]);
    const limit = await world.fresh.db('subscription_resources').where({ subscription_id: subscriptionId, resource_id: mailboxes }).first('additional', 'limit_value');
    expect([Number(limit.additional), Number(limit.limit_value)]).to.deep.equal([0, 10]);
  });

  it("another reseller's API user gets NOT_FOUND for the subscription, exactly like a missing id, and nothing is placed", async () => {
    const { subscriptionId } = await activeSubscription('scope-mail.example');
    const stranger = await accountWithApiUser(world, 'reseller', 'Resources Stranger');
    const theirs = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    theirs.setSecurity(new soap.BasicAuthSecurity(stranger.login, stranger.password));
    const orders = await count('orders');
    const missingId = 987654321;
    const foreign = faultOf(await addMailboxes(theirs, subscriptionId, 2).then(() => null, (x: unknown) => x));
    const missing = faultOf(await addMailboxes(theirs, missingId, 2).then(() => null, (x: unknown) => x));
    expect(foreign.code).to.equal('NOT_FOUND');
    expect({ ...foreign, message: foreign.message.replace(String(subscriptionId), 'N') }).to.deep.equal({ ...missing, message: missing.message.replace(String(missingId), 'N') });
    expect(await count('orders')).to.equal(orders);
  });

  it('a canceled subscription is NOT_ALLOWED on subscriptionId', async () => {
    const { subscriptionId } = await activeSubscription('canceled-mail.example');
    const [canceled] = await billing.CancelSubscriptionAsync({ subscriptionId, cancelType: 'none', when: 'immediate' });
    expect(await orderStatus(Number(canceled.orderId))).to.equal('CP');
    const e = await addMailboxes(billing, subscriptionId, 2).then(() => null, (x: unknown) => x);
    expect(faultOf(e)).to.include({ code: 'NOT_ALLOWED', field: 'subscriptionId' });
    expect(await count('order_items', { target_subscription_id: subscriptionId })).to.equal(1);
  });

  it('the same idempotencyKey twice answers the same order and places one', async () => {
    const { subscriptionId } = await activeSubscription('idem-mail.example');
    const [first] = await addMailboxes(billing, subscriptionId, 1, 'more-mail-1');
    const [second] = await addMailboxes(billing, subscriptionId, 1, 'more-mail-1');
    expect(Number(second.orderId)).to.equal(Number(first.orderId));
    expect(second.orderNumber).to.equal(first.orderNumber);
    // The key with other arguments (another quantity, or a pay tool) is a CONFLICT.
    const card = (await world.fresh.db('pay_tools').where({ account_id: customerId }).first('id')).id;
    for (const other of [{ quantity: 2 }, { quantity: 1, payToolId: Number(card) }]) {
      const e = await billing.AddSubscriptionResourcesAsync({ subscriptionId, resources: { resource: [{ resourceId: mailboxes, quantity: other.quantity }] }, payToolId: other.payToolId, idempotencyKey: 'more-mail-1' }).then(() => null, (x: unknown) => x);
      expect(faultOf(e), JSON.stringify(other)).to.include({ code: 'CONFLICT', field: 'idempotencyKey' });
    }
    expect(await count('order_items', { target_subscription_id: subscriptionId })).to.equal(1);
    expect(await orderStatus(Number(first.orderId))).to.equal('CP');
  });
});
