/**
 * CancelSubscription sent several times at once (different keys, as two operators or a retrying client would):
 * one cancellation order, so the credit on cancellation is given once. A real server over SQLite or MariaDB
 * (TEST_DATABASE_URL), node-soap's client, real HTTP.
 */
import { expect } from 'chai';
import * as soap from 'soap';
import { ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../../helpers/api';
import { soapReads, textsOf } from '../../orders/fixtures';

describe('CancelSubscription at once, several times: one cancellation, one credit', function () {
  this.timeout(120_000);
  let world: ApiWorld;
  let billing: soap.Client;
  let customerId: number;
  let payToolId: number;
  let planId: number;
  let periodId: number;
  const db = () => world.fresh.db;
  const { untilStatus } = soapReads(() => billing);

  async function client(): Promise<soap.Client> {
    const c = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    c.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
    return c;
  }

  before(async () => {
    world = await startApiWorld({ demo: true });
    const provider = await providerActor(world);
    customerId = ((await db()('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')) as { id: number }).id;
    const { catalog, payments } = world.server.services;
    const templateId = (await db()('plans').where({ name: 'Shared Hosting Basic' }).first('template_id')).template_id as number;
    planId = await catalog.createPlan(provider, { templateId: Number(templateId), name: 'Hosting Race', published: true, resellable: true, periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    periodId = (await db()('plan_periods').where({ plan_id: planId }).first('id')).id;
    await db()('plan_periods').where({ id: periodId }).update({ refund_period_days: 14, non_refundable_amount: 0 });
    const gatewayId = (await db()('plugin_instances').where({ name: 'sandbox-payments' }).first('id')).id;
    payToolId = (await payments.storePayTool(provider, customerId, gatewayId, { number: '4242424242424242', expMonth: 12, expYear: 2040, cvv: '123' })).payToolId;
    billing = await client();
  });
  after(() => world?.close());

  it('4 CancelSubscription (credit, immediate) at once with 4 keys: one is placed, the others NOT_ALLOWED; one credit memo', async () => {
    const [placed] = await billing.PlaceOrderAsync({ accountId: customerId, payToolId, items: { item: [{ planId, periodId, parameters: { parameter: [{ name: 'domain', value: 'cancel-race.example' }] } }] } });
    await untilStatus(Number(placed.orderId), ['completed']);
    const subscriptionId = Number((await db()('subscriptions').where({ order_id: Number(placed.orderId) }).first('id')).id);
    const clients = await Promise.all([1, 2, 3, 4].map(() => client()));
    const answers = await Promise.all(
      clients.map(async (c, k) => {
        try {
          const [r] = await c.CancelSubscriptionAsync({ subscriptionId, cancelType: 'credit', when: 'immediate', idempotencyKey: `cancel-race-${k}` });
          return { orderId: Number(r.orderId) };
        } catch (e) {
          return { code: textsOf((e as { body?: string }).body ?? '', 'code')[0] };
        }
      }),
    );
    const placedOrders = answers.filter((a) => 'orderId' in a) as { orderId: number }[];
    expect(placedOrders, JSON.stringify(answers)).to.have.length(1);
    for (const a of answers) if (!('orderId' in a)) expect(a).to.deep.equal({ code: 'NOT_ALLOWED' });
    await untilStatus(placedOrders[0]!.orderId, ['completed', 'failed']);
    const memos = (await db()('documents').where({ account_id: customerId, type: 'credit_memo' }).whereIn('order_id', db()('orders').where({ type: 'cancellation' }).select('id')).pluck('total')).map(String);
    expect(memos).to.have.length(1);
  });
});
