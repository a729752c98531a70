import crypto from 'node:crypto';
import { expect } from 'chai';
import { XMLRPC_FAULT_CODES } from '../../../src/api/api-errors';
import { XmlRpcDouble, type XmlRpcValue } from '../../../src/api/xmlrpc/codec';
import type { Actor } from '../../../src/context';
import { formatAmount } from '../../../src/domain/money';
import { providerActor, startApiWorld, type ApiWorld } from '../../helpers/api';
import { bm, fault, result, signatureFrom } from './client';
import { SUSPECT_FIRST } from '../../orders/fixtures';
import { eventually } from '../../helpers/assertions';

const INT_NULL = -2147483648;
const asText = (row: XmlRpcValue[]): XmlRpcValue[] => row.map((v) => (v instanceof XmlRpcDouble ? v.text : v));

describe('XML-RPC order and subscription methods (through real XML-RPC bytes, on the demo)', function () {
  this.timeout(60_000);
  let world: ApiWorld;
  let rpc: string;
  let provider: Actor;
  let customerId: number;
  let resellerId: number;
  let planId: number;
  let periodId: number;
  let payToolId: number;
  let total: string;
  let orderId: number;
  let subscriptionId: number;

  const place = (domain: string, comment?: string) =>
    world.server.services.orders.place(provider, { accountId: customerId, payToolId, comment, items: [{ planId, periodId, parameters: { domain } }] });
  const statusOf = async (id: number) => ((await world.fresh.db('orders').where({ id }).first('status')) as { status: string }).status;
  const until = (id: number, statuses: string[]) => eventually(async () => {
    const s = await statusOf(id);
    return statuses.includes(s) ? s : undefined;
  }, `order ${id} to reach ${statuses.join('/')}`);

  before(async () => {
    world = await startApiWorld({ demo: true });
    rpc = `${world.url}/RPC2`;
    provider = await providerActor(world);
    const db = world.fresh.db;
    const customer = await db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id', 'vendor_id');
    customerId = customer.id;
    resellerId = customer.vendor_id;
    planId = (await db('plans').where({ name: 'Shared Hosting Basic' }).first('id')).id;
    periodId = (await db('plan_periods').where({ plan_id: planId, duration: 1, unit: 'month' }).first('id')).id;
    const plan = await world.server.services.catalog.getPlan(provider, planId);
    const p = plan.periods.find((x) => x.periodId === periodId)!;
    total = formatAmount(p.setupFee + p.recurringFee, plan.currency);
    const gatewayId = (await db('plugin_instances').where({ name: 'sandbox-payments' }).first('id')).id;
    payToolId = (await world.server.services.payments.storePayTool(provider, customerId, gatewayId, { number: '4242424242424242', expMonth: 12, expYear: 2040, cvv: '123' })).payToolId;
    const order = await place('rpc-bakery.example', 'Ordered by phone');
    orderId = order.orderId;
    expect(await until(orderId, ['CP', 'RJ', 'PF'])).to.equal('CP');
    subscriptionId = ((await db('subscriptions').where({ order_id: orderId }).first('id')) as { id: number }).id;
  });
  after(() => world.close());

  it('GetOrder_API answers the 17 positions: ids, PBA status and type codes, Unix times, money as <double>, comment, NULLs', async () => {
    const row = result(await bm(rpc, 'GetOrder_API', [orderId])) as XmlRpcValue[];
    const order = await world.server.services.orders.get(provider, orderId);
    const created = Math.floor(order.createdAt.getTime() / 1000);
    expect(asText(row)).to.deep.equal([orderId, order.orderNumber, resellerId, customerId, 'CP', 'SO', created, created, total, '0.00', '0.00', total, 'Ordered by phone', INT_NULL, '', INT_NULL, INT_NULL]);
    expect(row[8]).to.be.instanceOf(XmlRpcDouble);
  });

  it('GetOrder_API of a missing order is NOT_FOUND in PBA wording', async () => {
    expect(fault(await bm(rpc, 'GetOrder_API', [99999999]))).to.deep.equal({ faultCode: XMLRPC_FAULT_CODES.NOT_FOUND, faultString: 'Table Order does not contain row with ID 99999999.' });
  });

  it('OrderByStatusListGet_API filters by vendor, type, status and start time', async () => {
    const rows = result(await bm(rpc, 'OrderByStatusListGet_API', [resellerId, 'SO', 'CP', 0, 1])) as XmlRpcValue[][];
    const mine = rows.find((r) => r[0] === orderId)!;
    expect(asText(mine)).to.deep.equal([orderId, mine[1], resellerId, customerId, 'CP', 'SO', mine[6], total]);
    expect(result(await bm(rpc, 'OrderByStatusListGet_API', [resellerId, 'SO', 'RJ', 0, 1]))).to.deep.equal([]);
    expect(result(await bm(rpc, 'OrderByStatusListGet_API', [INT_NULL, '', '', Math.floor(Date.now() / 1000) + 86_400, 1]))).to.deep.equal([]);
    expect(result(await bm(rpc, 'OrderByStatusListGet_API', [INT_NULL, 'RN', '', INT_NULL, 1]))).to.deep.equal([]);
    expect((result(await bm(rpc, 'OrderByStatusListGet_API', [INT_NULL, '', '', INT_NULL, 1])) as XmlRpcValue[][]).map((r) => r[0])).to.include(orderId);
    expect(fault(await bm(rpc, 'OrderByStatusListGet_API', [INT_NULL, 'ZZ', '', INT_NULL, 1])).faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
  });

  it('SubscriptionDetailsGet_API answers [ID, Name, AccountID, PlanID, PlanName, Status, ServStatus]', async () => {
    expect(result(await bm(rpc, 'SubscriptionDetailsGet_API', [subscriptionId]))).to.deep.equal([subscriptionId, 'Shared Hosting Basic rpc-bakery.example', customerId, planId, 'Shared Hosting Basic', 30, 50]);
  });

  it('SubscriptionDetailsGetEx_API adds StartDate, ExpirationDate, LastBillDate, NextBillDate (Unix seconds or NULL), BillingPeriodType, BillingPeriod', async () => {
    const row = result(await bm(rpc, 'SubscriptionDetailsGetEx_API', [subscriptionId])) as XmlRpcValue[];
    const sub = await world.server.services.subscriptions.get(provider, subscriptionId);
    const s = (d: Date | null) => Math.floor(d!.getTime() / 1000);
    expect(row.slice(7)).to.deep.equal([s(sub.startDate), s(sub.expirationDate), INT_NULL, s(sub.nextBillDate), 2, 1]);
  });

  it('GetCustomerSubscriptionList_API lists the account\'s subscriptions as detail rows', async () => {
    const rows = result(await bm(rpc, 'GetCustomerSubscriptionList_API', [customerId, 1])) as XmlRpcValue[][];
    expect(rows).to.deep.include([subscriptionId, 'Shared Hosting Basic rpc-bakery.example', customerId, planId, 'Shared Hosting Basic', 30, 50]);
  });

  it('SubscriptionResourcesListGet_API lists included, additional, used and ordered amounts, the limit and the plan\'s fees', async () => {
    const rows = result(await bm(rpc, 'SubscriptionResourcesListGet_API', [subscriptionId, 1])) as XmlRpcValue[][];
    const sub = await world.server.services.subscriptions.get(provider, subscriptionId);
    const plan = await world.server.services.catalog.getPlan(provider, planId);
    expect(rows).to.have.length(sub.resources.length).and.be.greaterThan(0);
    for (const r of sub.resources) {
      const rate = plan.resources.find((x) => x.resourceId === r.resourceId);
      const m = (v: bigint | undefined) => formatAmount(v ?? 0n, plan.currency);
      const row = rows.find((x) => x[0] === r.resourceId)!;
      expect(asText(row)).to.deep.equal([r.resourceId, r.name, r.unit, r.included, r.additional, r.usage, r.included + r.additional, r.limit === null ? -1 : r.limit, m(rate?.setupFee), m(rate?.recurringFee), m(rate?.overageFee)]);
    }
  });

  describe('PlaceOrderAndAuthorize_API', () => {
    const item = () => `${planId}=${periodId}=1=-1`;

    it('orders for an existing account (AccountID=) with a stored pay tool (PayToolID=): the positional result, then CP', async () => {
      const row = result(await bm(rpc, 'PlaceOrderAndAuthorize_API', [resellerId, 1, item(), 1, 1, 1, 'domain=pao-bakery.example', 1, `AccountID=${customerId}`, 1, `PayToolID=${payToolId}`, 0])) as XmlRpcValue[];
      const order = await world.server.services.orders.get(provider, row[1] as number);
      expect(asText(row)).to.deep.equal([customerId, order.orderId, '', String(Math.floor(order.createdAt.getTime() / 1000)), INT_NULL, total, '0.00', '0.00', total, '', order.orderNumber, '']);
      expect(order.items[0]!.parameters).to.deep.equal({ domain: 'pao-bakery.example' });
      expect(order.payToolId).to.equal(payToolId);
      expect(await until(order.orderId, ['CP', 'RJ', 'PF'])).to.equal('CP');
    });

    it('creates the customer (CompanyNameID=, FirstNameID=, EmailID=, LoginID=, PasswordID=) and keeps the card as a token; the card number is nowhere', async () => {
      const params: XmlRpcValue[] = [
        resellerId, 1, item(), 1, 1, 1, 'domain=new-shop.example',
        5, 'CompanyNameID=New Shop', 'FirstNameID=Nina', 'EmailID=nina@new-shop.example', 'LoginID=newshop', 'PasswordID=XXXnew-shop-Pa55word!',
        4, 'PayToolTypeID=0', 'CardNumberID=XXX4242424242424242', 'CVCID=XXX123', 'ExpDateID=12/40',
        0,
      ];
      const row = result(await bm(rpc, 'PlaceOrderAndAuthorize_API', params)) as XmlRpcValue[];
      const [accountId, orderId, login] = row as [number, number, string];
      expect(login).to.equal('newshop');
      const account = await world.server.services.accounts.get(provider, accountId);
      expect(account).to.include({ type: 'customer', vendorAccountId: resellerId, companyName: 'New Shop' });
      const db = world.fresh.db;
      expect(await db('users').where({ account_id: accountId, login: 'newshop' })).to.have.length(1);
      const tools = await world.server.services.payments.listPayTools(provider, accountId);
      expect(tools).to.have.length(1);
      expect(await until(orderId, ['CP', 'RJ', 'PF'])).to.equal('CP');
      const audit = JSON.stringify(await db('audit_log').select());
      expect(audit).not.to.contain('4242424242424242').and.not.to.contain('new-shop-Pa55word!');
      // The new login signs in.
      expect(result(await bm(rpc, 'UserValidate_API', ['newshop', 'new-shop-Pa55word!']))).to.deep.equal([accountId, resellerId, (await db('users').where({ login: 'newshop' }).first('id')).id]);
    });

    it('refuses a malformed item, a counter that says more than follows, and an unknown ProvisioningItemID', async () => {
      const bad = fault(await bm(rpc, 'PlaceOrderAndAuthorize_API', [resellerId, 1, `${planId}=${periodId}`, 0, 1, `AccountID=${customerId}`, 0, 0]));
      expect(bad.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(bad.faultString).to.contain('PlanID=PlanPeriodID=ItemID=ParentItemID');
      expect(fault(await bm(rpc, 'PlaceOrderAndAuthorize_API', [resellerId, 3, item()])).faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      const slot = fault(await bm(rpc, 'PlaceOrderAndAuthorize_API', [resellerId, 1, item(), 1, 7, 1, 'domain=x.example', 1, `AccountID=${customerId}`, 0, 0]));
      expect(slot.faultString).to.contain('ProvisioningItemID 7');
    });

    it('places a parent and an add-on (ParentItemID names the earlier ItemID)', async () => {
      const row = result(await bm(rpc, 'PlaceOrderAndAuthorize_API', [resellerId, 2, `${planId}=${periodId}=10=-1`, `${planId}=${periodId}=11=10`, 2, 10, 1, 'domain=parent.example', 11, 1, 'domain=child.example', 1, `AccountID=${customerId}`, 1, `PayToolID=${payToolId}`, 0])) as XmlRpcValue[];
      const order = await world.server.services.orders.get(provider, row[1] as number);
      expect(order.items.map((i) => i.parameters.domain)).to.deep.equal(['parent.example', 'child.example']);
      expect(order.items[1]!.parentItemId).to.equal(order.items[0]!.itemId);
      await until(order.orderId, ['CP', 'RJ', 'PF']);
    });

    it('with AutoCommit "No", a refused order takes the new customer with it (the call rolls back as one)', async () => {
      const params: XmlRpcValue[] = [resellerId, 1, `${planId}=987654321=1=-1`, 0, 5, 'CompanyNameID=Tx Shop', 'FirstNameID=Tom', 'EmailID=tom@tx-shop.example', 'LoginID=txshop', 'PasswordID=tx-shop-Pa55word!', 0, 0];
      const f = fault(await bm(rpc, 'PlaceOrderAndAuthorize_API', params, { AutoCommit: 'No' }));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(f.faultString).to.contain('items[0].periodId');
      expect(await world.fresh.db('accounts').where({ company_name: 'Tx Shop' })).to.have.length(0);
      expect(await world.fresh.db('users').where({ login: 'txshop' })).to.have.length(0);
    });
    it('without AutoCommit "No" too, a refused order leaves no new customer, login or event of them behind', async () => {
      const params: XmlRpcValue[] = [resellerId, 1, `${planId}=987654321=1=-1`, 1, 1, 1, 'domain=atomic-shop.example', 5, 'CompanyNameID=Atomic Shop', 'FirstNameID=Ada', 'EmailID=ada@atomic-shop.example', 'LoginID=atomicshop', 'PasswordID=atomic-shop-Pa55word!', 0, 0];
      const f = fault(await bm(rpc, 'PlaceOrderAndAuthorize_API', params));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(f.faultString).to.contain('items[0].periodId');
      expect(await world.fresh.db('accounts').where({ company_name: 'Atomic Shop' })).to.have.length(0);
      expect(await world.fresh.db('users').where({ login: 'atomicshop' })).to.have.length(0);
      expect(await world.fresh.db('events').where({ name: 'account.created' }).andWhere('payload', 'like', '%Atomic Shop%')).to.have.length(0);
      // The same call with a good period creates the customer and its order together.
      params[2] = item();
      const row = result(await bm(rpc, 'PlaceOrderAndAuthorize_API', params)) as XmlRpcValue[];
      const account = await world.server.services.accounts.get(provider, row[0] as number);
      expect(account.companyName).to.equal('Atomic Shop');
      expect((await world.server.services.orders.get(provider, row[1] as number)).accountId).to.equal(account.accountId);
    });
  });

  describe('OrderStatusChange_API on suspect orders (the reseller\'s workflow marks every order suspect)', () => {
    before(async () => {
      await world.server.services.workflows.define(provider, { vendorAccountId: resellerId, orderType: 'sales', definition: SUSPECT_FIRST });
    });

    it('approves with [OrderID, NewStatus, Signature]: the order is charged, provisioned and completed', async () => {
      const order = await place('suspect-ok.example', 'Check me');
      expect(order.status).to.equal('SS');
      await until(order.orderId, ['WA']);
      const row = result(await bm(rpc, 'GetOrder_API', [order.orderId])) as XmlRpcValue[];
      expect(result(await bm(rpc, 'OrderStatusChange_API', [order.orderId, 'CP', signatureFrom(row)]))).to.have.property('Status').that.match(/^Operation done\./);
      expect(await until(order.orderId, ['CP', 'RJ', 'PF'])).to.equal('CP');
    });

    it('rejects with [OrderID, Signature, NewStatus] (the other argument order): RJ, nothing provisioned', async () => {
      const order = await place('suspect-no.example');
      await until(order.orderId, ['WA']);
      const row = result(await bm(rpc, 'GetOrder_API', [order.orderId])) as XmlRpcValue[];
      expect(row[12]).to.equal('');
      result(await bm(rpc, 'OrderStatusChange_API', [order.orderId, signatureFrom(row).toUpperCase(), 'RJ']));
      expect(await statusOf(order.orderId)).to.equal('RJ');
      expect(await world.fresh.db('subscriptions').where({ order_id: order.orderId, service_status: 50 })).to.have.length(0);
    });

    it('refuses a bad signature and an unknown status, leaving the order waiting', async () => {
      const order = await place('suspect-bad.example', 'Hold on');
      await until(order.orderId, ['WA']);
      const row = result(await bm(rpc, 'GetOrder_API', [order.orderId])) as XmlRpcValue[];
      const wrong = crypto.createHash('md5').update('not the order').digest('hex');
      const bad = fault(await bm(rpc, 'OrderStatusChange_API', [order.orderId, 'CP', wrong]));
      expect(bad.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(bad.faultString).to.contain('Signature');
      // A signature over another total (a tampered amount) is refused too.
      const tampered = crypto.createHash('md5').update(`${row[0]}${row[1]}${row[6]}0.01${row[12]}`).digest('hex');
      expect(fault(await bm(rpc, 'OrderStatusChange_API', [order.orderId, tampered, 'CP'])).faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(fault(await bm(rpc, 'OrderStatusChange_API', [order.orderId, 'ZZ', signatureFrom(row)])).faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(await statusOf(order.orderId)).to.equal('WA');
    });

    it('a completed order cannot change status: NOT_ALLOWED', async () => {
      const row = result(await bm(rpc, 'GetOrder_API', [orderId])) as XmlRpcValue[];
      expect(fault(await bm(rpc, 'OrderStatusChange_API', [orderId, 'RJ', signatureFrom(row)])).faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_ALLOWED);
    });
  });
});
