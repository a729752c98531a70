import { expect } from 'chai';
import type { Actor } from '../../src/context';
import * as soap from 'soap';
import { ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { eventually } from '../helpers/assertions';

describe('an order on a running server (the demo catalog, the sandbox gate and gateway, the worker)', () => {
  let world: ApiWorld;
  let provider: Actor;
  let customerId: number;
  let planId: number;
  let periodId: number;
  let gatewayId: number;

  before(async () => {
    world = await startApiWorld({ demo: true });
    provider = await providerActor(world);
    const db = world.fresh.db;
    customerId = (await db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id;
    const plan = await db('plans').where({ name: 'Shared Hosting Basic' }).first('id');
    planId = plan.id;
    periodId = (await db('plan_periods').where({ plan_id: planId, duration: 1, unit: 'month' }).first('id')).id;
    gatewayId = (await db('plugin_instances').where({ name: 'sandbox-payments' }).first('id')).id;
  });
  after(() => world.close());

  async function place(card: string, domain: string) {
    const { payments, orders } = world.server.services;
    const tool = await payments.storePayTool(provider, customerId, gatewayId, { number: card, expMonth: 12, expYear: 2040, cvv: '123', holder: 'Carla Customer' });
    return orders.place(provider, { accountId: customerId, payToolId: tool.payToolId, items: [{ planId, periodId, parameters: { domain } }] });
  }

  it('is screened, charged, provisioned and completed by the background worker: CP, an active running subscription', async () => {
    const order = await place('4242424242424242', 'bluebird-bakery.example');
    expect(order.status).to.equal('NP');
    const db = world.fresh.db;
    const done = await eventually(async () => {
      const row = await db('orders').where({ id: order.orderId }).first('status');
      return ['CP', 'RJ', 'PF'].includes(row.status) ? row.status : undefined;
    }, 'the order to finish');
    expect(done).to.equal('CP');
    const sub = await db('subscriptions').where({ order_id: order.orderId }).first();
    expect(sub).to.include({ status: 30, service_status: 50 });
    expect(sub.gate_reference).to.be.a('string').and.not.equal('');
    const payment = await db('payments').where({ order_id: order.orderId }).first('status', 'amount');
    expect(payment.status).to.equal('success');
    expect(String(payment.amount)).to.equal(String(order.total));
    const history = (await db('order_history').where({ order_id: order.orderId }).orderBy('id').select('step')).map((r: { step: string }) => r.step);
    expect(history).to.deep.equal(['fraud_screening', 'charge_card', 'provision_services', 'notify_customer', 'completed']);
  });

  it('is rejected when the card is declined, with no subscription provisioned', async () => {
    const order = await place('4000000000000341', 'declined-bakery.example');
    const db = world.fresh.db;
    const status = await eventually(async () => {
      const row = await db('orders').where({ id: order.orderId }).first('status');
      return ['CP', 'RJ', 'PF'].includes(row.status) ? row.status : undefined;
    }, 'the order to finish');
    expect(status).to.equal('RJ');
    expect(await db('subscriptions').where({ order_id: order.orderId, service_status: 50 })).to.have.length(0);
  });
});

describe('the demo as a newcomer finds it', () => {
  it("takes an order for the demo customer through SOAP with no pay tool named (the seeded test card pays) and provisions it", async () => {
    const world = await startApiWorld({ demo: true });
    try {
      const db = world.fresh.db;
      const tool = await db('pay_tools').where({ is_default: true }).first('last4', 'token');
      expect(tool.last4).to.equal('4242');
      const customerId = (await db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id;
      const plan = await db('plans').where({ name: 'Business Mail' }).first('id');
      const period = await db('plan_periods').where({ plan_id: plan.id, duration: 1, unit: 'month' }).first('id');
      const client = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
      client.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
      const [placed] = await client.PlaceOrderAsync({
        accountId: customerId,
        items: { item: [{ planId: plan.id, periodId: period.id, parameters: { parameter: [{ name: 'domain', value: 'bluebird-mail.example' }] } }] },
      });
      const status = await eventually(async () => {
        const [r] = await client.GetOrderAsync({ orderId: placed.orderId });
        return ['completed', 'rejected', 'provisioning_failed'].includes(r.order.status) ? r.order.status : undefined;
      }, 'the SOAP order to finish');
      expect(status).to.equal('completed');
      const cardDigits = await db('payments').where('description', 'like', '%4242424242424242%').orWhere('message', 'like', '%4242424242424242%');
      expect(cardDigits).to.have.length(0);
    } finally {
      await world.close();
    }
  });
});
