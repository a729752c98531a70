/**
 * Orders and subscriptions through the SOAP door: a real server with the demo (catalog, sandbox gate and
 * gateway, the background worker), node-soap's client, and the raw response bytes for money and element order.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import * as soap from 'soap';
import type { Actor } from '../../../src/context';
import { formatAmount } from '../../../src/domain/money';
import { ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../../helpers/api';
import { eventually } from '../../helpers/assertions';
import { APPROVE_FIRST, textsOf } from '../../orders/fixtures';

const WSDL = fs.readFileSync(path.resolve(__dirname, '..', '..', '..', 'wsdl', 'BillingService.wsdl'), 'utf8');
type Reply = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any


/** The xs:sequence of a named complexType: element names in order, with whether each is optional. */
function xsdSequence(type: string): { name: string; optional: boolean }[] {
  const start = WSDL.indexOf(`<xsd:complexType name="${type}">`);
  expect(start, `complexType ${type}`).to.be.greaterThan(-1);
  const block = WSDL.slice(start, WSDL.indexOf('</xsd:complexType>', start));
  return [...block.matchAll(/<xsd:element name="(\w+)"([^>]*)>/g)].map((m) => ({ name: m[1], optional: /minOccurs="0"/.test(m[2]) }));
}

/** The direct children (local names, in document order) of every element called `local`. */
function childOrder(xml: string, local: string): string[][] {
  const found: string[][] = [];
  const stack: { name: string; children: string[] }[] = [];
  const tag = /<(\/?)(?:[\w.-]+:)?([\w.-]+)\b[^>]*?(\/?)>/g;
  for (let m = tag.exec(xml); m; m = tag.exec(xml)) {
    const [, close, name, selfClosing] = m;
    if (close) {
      const done = stack.pop();
      if (done && done.name === local) found.push(done.children);
      continue;
    }
    stack[stack.length - 1]?.children.push(name);
    if (selfClosing) {
      if (name === local) found.push([]);
    } else stack.push({ name, children: [] });
  }
  return found;
}

function expectSequence(xml: string, element: string, type: string): void {
  const seq = xsdSequence(type);
  const occurrences = childOrder(xml, element);
  expect(occurrences, `<${element}> in the response`).to.not.be.empty;
  for (const children of occurrences) {
    expect(children, `<${element}> against ${type}`).to.deep.equal(seq.map((s) => s.name).filter((n) => children.includes(n)));
    for (const s of seq) if (!s.optional) expect(children, `required ${type}.${s.name}`).to.include(s.name);
  }
}


describe('SOAP orders and subscriptions (PlaceOrder, GetOrder, ListOrders, ApproveOrder, RejectOrder, GetSubscription, ListSubscriptions)', function () {
  this.timeout(60_000);
  let world: ApiWorld;
  let admin: soap.Client;
  let provider: Actor;
  let customerId: number;
  let resellerId: number;
  let planId: number;
  let periodId: number;
  let payToolId: number;
  let catalogTotal: string;

  async function call(op: string, args: Record<string, unknown>): Promise<Reply> {
    const fn = (admin as unknown as Record<string, (a: unknown) => Promise<[Reply]>>)[`${op}Async`];
    const [r] = await fn.call(admin, args);
    return r ?? {};
  }
  async function faultOf(op: string, args: Record<string, unknown>): Promise<{ code: string; field?: string; message: string }> {
    try {
      await call(op, args);
    } catch (e) {
      const xml = (e as { body?: string }).body ?? '';
      return { code: textsOf(xml, 'code')[0], field: textsOf(xml, 'field')[0], message: textsOf(xml, 'message')[0] };
    }
    throw new Error(`${op} succeeded`);
  }
  const order = (domain: string) => ({ accountId: customerId, payToolId, items: { item: [{ planId, periodId, parameters: { parameter: [{ name: 'domain', value: domain }] } }] } });
  const status = async (orderId: number) => (await call('GetOrder', { orderId })).order.status as string;
  const finished = (orderId: number) => eventually(async () => {
    const s = await status(orderId);
    return ['completed', 'rejected', 'provisioning_failed'].includes(s) ? s : undefined;
  }, `order ${orderId} to finish`);

  before(async () => {
    world = await startApiWorld({ demo: true });
    provider = await providerActor(world);
    const db = world.fresh.db;
    const customer = await db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id', 'vendor_id');
    customerId = customer.id;
    resellerId = customer.vendor_id;
    planId = (await db('plans').where({ name: 'Shared Hosting Basic' }).first('id')).id;
    const period = await db('plan_periods').where({ plan_id: planId, duration: 1, unit: 'month' }).first('id');
    periodId = period.id;
    const plan = await world.server.services.catalog.getPlan(provider, planId);
    const p = plan.periods.find((x) => x.periodId === periodId)!;
    catalogTotal = formatAmount(p.setupFee + p.recurringFee, plan.currency);
    const gatewayId = (await db('plugin_instances').where({ name: 'sandbox-payments' }).first('id')).id;
    payToolId = (await world.server.services.payments.storePayTool(provider, customerId, gatewayId, { number: '4242424242424242', expMonth: 12, expYear: 2040, cvv: '123' })).payToolId;
    admin = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    admin.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
  });
  after(() => world.close());

  let completedOrderId: number;

  it('PlaceOrder answers orderId, orderNumber, status new, the catalog total and currency, in the XSD order', async () => {
    const r = await call('PlaceOrder', order('soap-bakery.example'));
    const xml = admin.lastResponse as string;
    expect(Number(r.orderId)).to.be.above(0);
    expect(r.orderNumber).to.be.a('string').and.not.equal('');
    expect(r.status).to.equal('new');
    expect(textsOf(xml, 'total')).to.deep.equal([catalogTotal]);
    expect(r.currency).to.equal('USD');
    expect(childOrder(xml, 'PlaceOrderResponse')).to.deep.equal([['orderId', 'orderNumber', 'status', 'total', 'currency']]);
    completedOrderId = Number(r.orderId);
  });

  it('GetOrder sees the worker take it to completed, with lines and history in the XSD order', async () => {
    expect(await finished(completedOrderId)).to.equal('completed');
    const r = await call('GetOrder', { orderId: completedOrderId });
    const xml = admin.lastResponse as string;
    expectSequence(xml, 'order', 'Order');
    expectSequence(xml, 'line', 'OrderLine');
    expectSequence(xml, 'event', 'OrderHistoryEvent');
    expect(r.order).to.include({ orderId: completedOrderId, accountId: customerId, type: 'sales', status: 'completed', currency: 'USD' });
    expect(textsOf(xml, 'total')).to.deep.equal([catalogTotal]);
    const history = [r.order.history.event].flat().map((e: { status: string }) => e.status);
    expect(history[0]).to.equal('new');
    expect(history[history.length - 1]).to.equal('completed');
    const lines = [r.order.lines.line].flat();
    expect(lines.length).to.be.greaterThan(0);
    const subscriptionId = Number(lines.find((l: { subscriptionId?: unknown }) => l.subscriptionId !== undefined)?.subscriptionId);
    expect(subscriptionId).to.be.above(0);
    // The line amounts add up to the total, as decimal text.
    const sum = textsOf(xml, 'amount').reduce((s, a) => s + BigInt(a.replace('.', '')), 0n);
    expect(formatAmount(sum, 'USD')).to.equal(catalogTotal);
  });

  it('GetSubscription shows the provisioned subscription: active, running, dates, resources in the XSD order', async () => {
    const sub = await world.fresh.db('subscriptions').where({ order_id: completedOrderId }).first('id');
    const r = await call('GetSubscription', { subscriptionId: sub.id });
    const xml = admin.lastResponse as string;
    expectSequence(xml, 'subscription', 'Subscription');
    expectSequence(xml, 'resource', 'SubscriptionResource');
    expect(r.subscription).to.include({ subscriptionId: sub.id, accountId: customerId, planId, periodId, status: 'active', serviceStatus: 'running' });
    expect(textsOf(xml, 'startDate')[0]).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(textsOf(xml, 'nextBillDate')).to.have.length(1);
  });

  it('ListSubscriptions lists the account\'s subscriptions, filters by status, and refuses an unknown status', async () => {
    const r = await call('ListSubscriptions', { accountId: customerId });
    expect(Number(r.total)).to.be.at.least(1);
    const active = await call('ListSubscriptions', { accountId: customerId, status: 'active' });
    expect([active.subscriptions.subscription].flat().every((s: { status: string }) => s.status === 'active')).to.equal(true);
    const none = await call('ListSubscriptions', { accountId: customerId, status: 'suspended' });
    expect(Number(none.total)).to.equal(0);
    expect(await faultOf('ListSubscriptions', { accountId: customerId, status: 'sleeping' })).to.include({ code: 'INVALID_ARGUMENT', field: 'status' });
  });

  it('ListOrders filters by account, status, type and since, without lines or history', async () => {
    const r = await call('ListOrders', { accountId: customerId, status: 'completed', type: 'sales' });
    const xml = admin.lastResponse as string;
    expect([r.orders.order].flat().map((o: { orderId: number }) => o.orderId)).to.include(completedOrderId);
    expectSequence(xml, 'order', 'Order');
    expect(xml).not.to.contain('<lines>').and.not.to.contain('<history>');
    const future = await call('ListOrders', { since: new Date(Date.now() + 86_400_000).toISOString() });
    expect(Number(future.total)).to.equal(0);
    const rejected = await call('ListOrders', { accountId: customerId, status: 'rejected' });
    expect([rejected.orders?.order ?? []].flat().map((o: { orderId: number }) => o.orderId)).not.to.include(completedOrderId);
    expect(await faultOf('ListOrders', { status: 'lost' })).to.include({ code: 'INVALID_ARGUMENT', field: 'status' });
    // WSDL values no order takes find nothing rather than fail.
    expect(Number((await call('ListOrders', { status: 'failed' })).total)).to.equal(0);
    expect(Number((await call('ListOrders', { type: 'billing' })).total)).to.equal(0);
  });

  it('a client cannot send a price: the request has no amount, and an extra <total> element does not change the catalog total', async () => {
    const place = WSDL.slice(WSDL.indexOf('<xsd:element name="PlaceOrder">'), WSDL.indexOf('<xsd:element name="PlaceOrderResponse">'));
    expect(place).not.to.match(/name="(total|amount|price|unitPrice)"/);
    const item = xsdSequence('OrderItem').map((s) => s.name);
    expect(item).to.deep.equal(['planId', 'periodId', 'parameters', 'resources']);
    const body =
      '<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:b="urn:hostwright:billing:v1"><soap:Body>' +
      `<b:PlaceOrder><b:accountId>${customerId}</b:accountId><b:items><b:item><b:planId>${planId}</b:planId><b:periodId>${periodId}</b:periodId>` +
      '<b:parameters><b:parameter><b:name>domain</b:name><b:value>cheap.example</b:value></b:parameter></b:parameters><b:total>0.01</b:total><b:amount>0.01</b:amount></b:item></b:items>' +
      `<b:total>0.01</b:total><b:payToolId>${payToolId}</b:payToolId></b:PlaceOrder></soap:Body></soap:Envelope>`;
    const res = await fetch(`${world.url}/soap/billing`, { method: 'POST', headers: { 'content-type': 'text/xml', authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` }, body });
    const xml = await res.text();
    if (res.status === 200) {
      expect(textsOf(xml, 'total')).to.deep.equal([catalogTotal]);
    } else {
      expect(textsOf(xml, 'code')[0]).to.equal('INVALID_ARGUMENT');
    }
    expect(await world.fresh.db('orders').where({ account_id: customerId }).whereIn('total', ['1', 1, '0.01'])).to.have.length(0);
  });

  it('PlaceOrder refuses an order with no items (INVALID_ARGUMENT on items) and a period of another plan', async () => {
    expect(await faultOf('PlaceOrder', { accountId: customerId, items: {} })).to.include({ code: 'INVALID_ARGUMENT' });
    expect(await faultOf('PlaceOrder', { accountId: customerId, items: { item: [{ planId, periodId: 987654321 }] } })).to.include({ code: 'INVALID_ARGUMENT', field: 'items[0].periodId' });
  });

  it('PlaceOrder with an idempotencyKey answers the first order again', async () => {
    const first = await call('PlaceOrder', { ...order('idem-bakery.example'), idempotencyKey: 'soap-order-idem-1' });
    const again = await call('PlaceOrder', { ...order('idem-bakery.example'), idempotencyKey: 'soap-order-idem-1' });
    expect(again.orderId).to.equal(first.orderId);
    expect(await finished(Number(first.orderId))).to.equal('completed');
  });

  describe('with the reseller\'s workflow asking for approval first', () => {
    before(async () => {
      await world.server.services.workflows.define(provider, { vendorAccountId: resellerId, orderType: 'sales', definition: APPROVE_FIRST });
    });

    it('the order waits for approval; ApproveOrder moves it on and the worker completes it', async () => {
      const placed = await call('PlaceOrder', order('approve-bakery.example'));
      expect(placed.status).to.equal('waiting_approval');
      const r = await call('ApproveOrder', { orderId: placed.orderId, comment: 'Known customer' });
      expectSequence(admin.lastResponse as string, 'order', 'Order');
      expect(r.order.orderId).to.equal(placed.orderId);
      expect(r.order.status).to.not.equal('waiting_approval');
      const events = [r.order.history.event].flat();
      expect(events.some((e: { comment?: string }) => e.comment === 'Known customer')).to.equal(true);
      expect(await finished(Number(placed.orderId))).to.equal('completed');
    });

    it('RejectOrder rejects it and nothing is provisioned; approving it afterwards is NOT_ALLOWED', async () => {
      const placed = await call('PlaceOrder', order('reject-bakery.example'));
      expect(placed.status).to.equal('waiting_approval');
      const r = await call('RejectOrder', { orderId: placed.orderId, comment: 'Stolen card' });
      expect(r.order.status).to.equal('rejected');
      expect(await world.fresh.db('subscriptions').where({ order_id: Number(placed.orderId), service_status: 50 })).to.have.length(0);
      expect(await faultOf('ApproveOrder', { orderId: placed.orderId })).to.include({ code: 'NOT_ALLOWED' });
    });

    it('the customer itself cannot approve its own order', async () => {
      const placed = await call('PlaceOrder', order('self-bakery.example'));
      const customer = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
      const { users } = world.server.services;
      await users.create(provider, { accountId: customerId, login: 'bakery-api', password: 'bakery-api-password', email: 'bakery-api@example.com', firstName: 'Bakery', lastName: 'Api', roles: ['admin', 'api'] });
      customer.setSecurity(new soap.BasicAuthSecurity('bakery-api', 'bakery-api-password'));
      let code: string | undefined;
      await customer.ApproveOrderAsync({ orderId: placed.orderId }).catch((e: { body?: string }) => (code = textsOf(e.body ?? '', 'code')[0]));
      expect(code).to.equal('NOT_ALLOWED');
      expect(await status(Number(placed.orderId))).to.equal('waiting_approval');
    });
  });
});
