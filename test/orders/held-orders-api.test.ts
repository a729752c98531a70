import { expect } from 'chai';
import * as soap from 'soap';
import { XMLRPC_FAULT_CODES } from '../../src/api/api-errors';
import type { XmlRpcValue } from '../../src/api/xmlrpc/codec';
import type { Actor } from '../../src/context';
import { ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { bm, fault, result, signatureFrom } from '../api/xmlrpc/client';
import { soapReads, SUSPECT_FIRST, type WireOrder } from './fixtures';

type SoapFault = { root: { Envelope: { Body: { Fault: { detail: { Error: { code: string; field?: string; message: string } } } } } } };

/**
 * Orders on hold (HL) settled by an operator through ApproveOrder / RejectOrder (SOAP) and OrderStatusChange_API
 * (XML-RPC), on a running server with the demo catalog: Bluebird Bakery orders hosting (Shared Hosting Basic) and two
 * .io domains from a sandbox registrar with no add grace period that refuses the second name; the first cannot be
 * deleted any more, is kept, and the order goes on hold with its payment untouched.
 */
describe('orders on hold settled by an operator over SOAP and XML-RPC (demo catalog, sandbox registrar without grace period)', function () {
  this.timeout(120_000);
  let world: ApiWorld;
  let billing: soap.Client;
  let rpc: string;
  let provider: Actor;
  let customerId: number;
  let payToolId: number;
  let planId: number;
  let periodId: number;
  let hostingPrice: bigint;
  const DOMAIN_PRICE = 2000n;
  const held: Record<string, number> = {};
  /** One held order per case below. */
  const KEYS = ['soap-reject', 'soap-approve', 'rpc-approve', 'rpc-reject', 'claimed', 'hand-refunded'];

  const db = () => world.fresh.db;
  const soapError = (p: Promise<unknown>) =>
    p.then(
      () => null,
      (e: SoapFault) => e.root.Envelope.Body.Fault.detail.Error,
    );
  const { getOrder, untilStatus, balance: balanceOf } = soapReads(() => billing);
  const balance = () => balanceOf(customerId);
  const domain = async (name: string) => (await db()('domains').where({ name }).first('status', 'auto_renew', 'expires_at')) as { status: string; auto_renew: unknown; expires_at: unknown };
  const payment = async (orderId: number) => {
    const order = (await db()('orders').where({ id: orderId }).first('payment_id', 'total')) as { payment_id: number; total: unknown };
    const row = (await db()('payments').where({ id: order.payment_id }).first('status', 'amount')) as { status: string; amount: unknown };
    const children = (await db()('payments').where({ parent_payment_id: order.payment_id }).orderBy('id').select('kind', 'status', 'amount')) as { kind: string; status: string; amount: unknown }[];
    return { status: row.status, amount: BigInt(String(row.amount)), children: children.map((c) => [c.kind, c.status, BigInt(String(c.amount))]) };
  };
  /** The order's money documents: [type, total] of its invoice, its credit memos and the refunds of its payment. */
  const documents = async (orderId: number) => {
    const order = (await db()('orders').where({ id: orderId }).first('payment_id')) as { payment_id: number };
    const own = (await db()('documents').where({ order_id: orderId }).orderBy('id').select('type', 'total')) as { type: string; total: unknown }[];
    const pay = (await db()('documents').where({ payment_id: order.payment_id, type: 'payment' }).first('id', 'total')) as { id: number; total: unknown };
    const refunds = (await db()('documents').where({ type: 'refund', related_document_id: pay.id }).select('type', 'total')) as { type: string; total: unknown }[];
    return [...own, { type: 'payment', total: pay.total }, ...refunds].map((d) => [d.type, BigInt(String(d.total))]);
  };
  /** `back` of the order's payment of `total` went back (a void or one refund), with a credit memo and refund document of it. */
  const givenBack = async (orderId: number, total: bigint, back: bigint, how: 'void' | 'refund') => {
    expect(await payment(orderId)).to.deep.equal({ status: how === 'void' ? 'voided' : 'success', amount: total, children: [[how, 'success', back]] });
    expect(await documents(orderId)).to.deep.equal([
      ['invoice', total],
      ['credit_memo', back],
      ['payment', total],
      ['refund', back],
    ]);
  };
  const events = async (orderId: number) => ((await db()('events').where({ object_type: 'order', object_id: String(orderId) }).orderBy('id').select('name')) as { name: string }[]).map((e) => e.name);

  before(async () => {
    world = await startApiWorld({ demo: true });
    rpc = `${world.url}/RPC2`;
    provider = await providerActor(world);
    customerId = (await db()('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id;
    payToolId = (await db()('pay_tools').where({ account_id: customerId }).first('id')).id;
    planId = (await db()('plans').where({ name: 'Shared Hosting Basic' }).first('id')).id;
    const period = (await db()('plan_periods').where({ plan_id: planId, duration: 1, unit: 'month', trial: false }).first('id', 'setup_fee', 'recurring_fee')) as { id: number; setup_fee: unknown; recurring_fee: unknown };
    periodId = period.id;
    hostingPrice = BigInt(String(period.setup_fee)) + BigInt(String(period.recurring_fee));
    const { pluginInstances, tlds, orders } = world.server.services;
    const refused = KEYS.map((k) => `${k}-refused.io`);
    const registrarId = await pluginInstances.create(provider, { kind: 'registrar', plugin: 'sandbox', name: 'io-no-grace', settings: { graceDays: 0, failures: Object.fromEntries(refused.map((n) => [n, 'register'])) } });
    await tlds.create(provider, { tld: 'io', registrarInstanceId: registrarId, prices: [{ action: 'register', years: 1, amount: DOMAIN_PRICE }] });
    billing = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    billing.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
    // One order per settlement below, each ending on hold.
    for (const k of KEYS) {
      const o = await orders.place(provider, {
        accountId: customerId,
        payToolId,
        items: [{ planId, periodId, parameters: { domain: `${k}-site.example` } }],
        domains: [
          { action: 'register', name: `${k}-kept.io` },
          { action: 'register', name: `${k}-refused.io` },
        ],
      });
      held[k] = o.orderId;
    }
    for (const id of Object.values(held)) await untilStatus(id, ['on_hold', 'provisioning_failed', 'completed']);
  });
  after(() => world?.close());

  it('puts each order on hold with its payment untouched and its first domain kept active', async () => {
    for (const [k, id] of Object.entries(held)) {
      expect((await getOrder(id)).status, k).to.equal('on_hold');
      expect((await payment(id)).status).to.equal('success');
      expect((await domain(`${k}-kept.io`)).status).to.equal('active');
    }
  });

  it('SOAP RejectOrder on a held order: PF with the reason and comment, payment voided in full, balance back, the kept domain left to lapse; a second settlement is refused', async () => {
    const id = held['soap-reject']!;
    const before = await balance();
    const [r] = await billing.RejectOrderAsync({ orderId: id, comment: 'Customer does not want the domain' });
    expect(r.order.status).to.equal('provisioning_failed');
    const last = (r.order as WireOrder).history.event.at(-1)!;
    expect(last.status).to.equal('provisioning_failed');
    expect(last.comment).to.match(/^Domain soap-reject-refused\.io could not be registered/);
    expect(last.comment).to.contain('Rejected on review: Customer does not want the domain');
    expect(last.comment).to.contain('was voided');
    expect(last.comment).to.contain('Kept domain(s) soap-reject-kept.io stay registered with auto-renewal off.');
    expect(last.comment).to.not.contain('left as it is for an operator');
    const failureReason = ((await db()('orders').where({ id }).first('failure_reason')) as { failure_reason: string }).failure_reason;
    expect(failureReason).to.equal(last.comment);

    const total = hostingPrice + 2n * DOMAIN_PRICE;
    await givenBack(id, total, total, 'void');
    expect(await balance()).to.equal(before);
    expect(Number(before)).to.equal(0);
    const kept = await domain('soap-reject-kept.io');
    expect([kept.status, Boolean(kept.auto_renew)]).to.deep.equal(['active', false]);
    expect(kept.expires_at).to.not.equal(null);
    expect((await events(id)).slice(-1)).to.deep.equal(['order.provisioning_failed']);
    const renew = (await db()('events').where({ name: 'domain.auto_renew_changed' }).select('payload')) as { payload: string }[];
    expect(renew.map((e) => JSON.parse(e.payload))).to.deep.include({ domainId: (await db()('domains').where({ name: 'soap-reject-kept.io' }).first('id')).id, name: 'soap-reject-kept.io', autoRenew: false });
    const audit = (await db()('audit_log').where({ object_type: 'order', object_id: String(id) }).orderBy('id', 'desc').first('operation', 'actor_user_id')) as { operation: string; actor_user_id: unknown };
    expect(audit.operation).to.equal('order.provisioning_failed');
    expect(audit.actor_user_id).to.not.equal(null);

    // Repeated: refused with the code of approving an order not waiting for approval; nothing changes.
    const docsBefore = await documents(id);
    expect(await soapError(billing.RejectOrderAsync({ orderId: id }))).to.include({ code: 'NOT_ALLOWED', field: 'status' });
    expect(await soapError(billing.ApproveOrderAsync({ orderId: id }))).to.include({ code: 'NOT_ALLOWED', field: 'status' });
    expect(await documents(id)).to.deep.equal(docsBefore);
    expect((await getOrder(id)).status).to.equal('provisioning_failed');
    expect(await balance()).to.equal(before);
  });

  it('SOAP ApproveOrder on a held order: completed with only the kept domain paid, the rest refunded, balance back, the domain active and auto-renewed', async () => {
    const id = held['soap-approve']!;
    const before = await balance();
    const [r] = await billing.ApproveOrderAsync({ orderId: id, comment: 'Customer keeps it' });
    expect(r.order.status).to.be.oneOf(['provisioned', 'completed']);
    const done = await untilStatus(id, ['completed']);
    const approval = done.history.event.find((e) => e.comment?.startsWith('Approved on review'))!;
    expect(approval.comment).to.contain('Customer keeps it. The customer keeps soap-approve-kept.io (20.00 USD).');
    const total = hostingPrice + 2n * DOMAIN_PRICE;
    const back = total - DOMAIN_PRICE;
    expect(approval.comment).to.match(/Refunded \d+\.\d\d USD of payment \d+ \(refund \d+\) for what was not delivered\./);
    await givenBack(id, total, back, 'refund');
    expect(await balance()).to.equal(before);
    const kept = await domain('soap-approve-kept.io');
    expect([kept.status, Boolean(kept.auto_renew)]).to.deep.equal(['active', true]);
    const items = (await db()('order_domains').where({ order_id: id }).orderBy('position').select('name', 'status')) as { name: string; status: string }[];
    expect(items.map((i) => [i.name, i.status])).to.deep.equal([
      ['soap-approve-kept.io', 'done'],
      ['soap-approve-refused.io', 'failed'],
    ]);
    expect((await db()('orders').where({ id }).first('failure_reason')).failure_reason).to.equal(null);
    expect((await events(id)).slice(-2)).to.deep.equal(['order.provisioned', 'order.completed']);

    const docsBefore = await documents(id);
    expect(await soapError(billing.ApproveOrderAsync({ orderId: id }))).to.include({ code: 'NOT_ALLOWED', field: 'status' });
    expect(await soapError(billing.RejectOrderAsync({ orderId: id }))).to.include({ code: 'NOT_ALLOWED', field: 'status' });
    expect(await documents(id)).to.deep.equal(docsBefore);
    expect(await payment(id)).to.deep.equal({ status: 'success', amount: total, children: [['refund', 'success', back]] });
  });

  it('XML-RPC OrderStatusChange_API: CP approves a held order (part refunded), RJ rejects one (PF, voided); a repeat is NOT_ALLOWED', async () => {
    const total = hostingPrice + 2n * DOMAIN_PRICE;
    const before = await balance();
    const approveId = held['rpc-approve']!;
    const row = result(await bm(rpc, 'GetOrder_API', [approveId])) as XmlRpcValue[];
    expect(row[4]).to.equal('HL');
    expect(result(await bm(rpc, 'OrderStatusChange_API', [approveId, 'CP', signatureFrom(row)]))).to.have.property('Status').that.match(/^Operation done\./);
    await untilStatus(approveId, ['completed']);
    expect(await payment(approveId)).to.deep.equal({ status: 'success', amount: total, children: [['refund', 'success', total - DOMAIN_PRICE]] });
    expect(Boolean((await domain('rpc-approve-kept.io')).auto_renew)).to.equal(true);
    const again = result(await bm(rpc, 'GetOrder_API', [approveId])) as XmlRpcValue[];
    expect(fault(await bm(rpc, 'OrderStatusChange_API', [approveId, 'CP', signatureFrom(again)])).faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_ALLOWED);

    const rejectId = held['rpc-reject']!;
    const rrow = result(await bm(rpc, 'GetOrder_API', [rejectId])) as XmlRpcValue[];
    expect(result(await bm(rpc, 'OrderStatusChange_API', [rejectId, signatureFrom(rrow), 'RJ']))).to.have.property('Status');
    expect(result(await bm(rpc, 'GetOrder_API', [rejectId])) as XmlRpcValue[]).to.have.property('4', 'PF');
    expect(await payment(rejectId)).to.deep.equal({ status: 'voided', amount: total, children: [['void', 'success', total]] });
    const kept = await domain('rpc-reject-kept.io');
    expect([kept.status, Boolean(kept.auto_renew)]).to.deep.equal(['active', false]);
    expect(fault(await bm(rpc, 'OrderStatusChange_API', [rejectId, 'RJ', signatureFrom(rrow)])).faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_ALLOWED);
    expect(await balance()).to.equal(before);
  });

  it('while one decision holds a held order (its gateway call under way), the other is refused and nothing changes; the same decision goes through', async () => {
    const id = held.claimed!;
    await db()('orders').where({ id }).update({ settling: 'approved' });
    const before = await payment(id);
    expect(await soapError(billing.RejectOrderAsync({ orderId: id }))).to.include({ code: 'NOT_ALLOWED', field: 'status' });
    expect((await getOrder(id)).status).to.equal('on_hold');
    expect(await payment(id)).to.deep.equal(before);
    expect(Boolean((await domain('claimed-kept.io')).auto_renew)).to.equal(true);

    await billing.ApproveOrderAsync({ orderId: id });
    await untilStatus(id, ['completed']);
    expect((await db()('orders').where({ id }).first('settling')).settling).to.equal(null);
    await givenBack(id, hostingPrice + 2n * DOMAIN_PRICE, hostingPrice + DOMAIN_PRICE, 'refund');
  });

  it('an approval whose refund the payments refuse leaves the order on hold and unclaimed; RejectOrder then gives back the rest', async () => {
    const id = held['hand-refunded']!;
    const total = hostingPrice + 2n * DOMAIN_PRICE;
    const paymentId = Number((await db()('orders').where({ id }).first('payment_id')).payment_id);
    const start = await balance();
    // An operator refunded most of it by hand before: the approval's refund no longer fits. The ledger records it
    // when it settles (its own refund document, owed again until the order is credited).
    await world.server.services.payments.refund(provider, paymentId, { amount: total - 100n, idempotencyKey: 'by-hand-1' });
    const before = await balance();
    const refused = await soapError(billing.ApproveOrderAsync({ orderId: id }));
    expect(refused).to.include({ code: 'NOT_ALLOWED', field: 'orderId' });
    expect(refused?.message).to.match(/^\d+\.\d\d USD of payment \d+ cannot be refunded \(At most 1\.00 USD of payment \d+ can still be refunded\.\); the order stays on hold\.$/);
    expect((await getOrder(id)).status).to.equal('on_hold');
    expect((await db()('orders').where({ id }).first('settling')).settling).to.equal(null);

    await billing.RejectOrderAsync({ orderId: id, comment: 'Refunded by hand' });
    expect((await getOrder(id)).status).to.equal('provisioning_failed');
    expect((await payment(id)).children).to.deep.equal([
      ['refund', 'success', total - 100n],
      ['refund', 'success', 100n],
    ]);
    // The order records only the refund it made itself (100): the operator's is already in the ledger.
    expect((await documents(id)).filter(([type]) => type === 'refund' || type === 'credit_memo')).to.deep.equal([
      ['credit_memo', total],
      ['refund', total - 100n],
      ['refund', 100n],
    ]);
    expect(before).to.not.equal(start);
    // Paid, given back in full and credited: the balance is what it was before the refund by hand.
    expect(await balance()).to.equal(start);
  });

  it('a customer cannot settle its own held order; approving an order waiting for approval works as before', async () => {
    // The customer itself is not the vendor side.
    const customer: Actor = { userId: null, accountId: customerId, accountPath: (await db()('accounts').where({ id: customerId }).first('path')).path, accountType: 'customer', roles: ['admin'], channel: 'system' };
    const e = await world.server.services.orders.approve(customer, held['soap-reject']!).then(
      () => null,
      (x: { code: string }) => x,
    );
    expect(e).to.include({ code: 'NOT_ALLOWED' });

    const vendorId = (await db()('accounts').where({ id: customerId }).first('vendor_id')).vendor_id as number;
    await world.server.services.workflows.define(provider, { vendorAccountId: Number(vendorId), orderType: 'sales', definition: SUSPECT_FIRST });
    const order = await world.server.services.orders.place(provider, { accountId: customerId, payToolId, items: [{ planId, periodId, parameters: { domain: 'waiting-site.example' } }] });
    await untilStatus(order.orderId, ['waiting_approval']);
    const [r] = await billing.ApproveOrderAsync({ orderId: order.orderId, comment: 'Looks fine' });
    expect(r.order.status).to.not.equal('waiting_approval');
    await untilStatus(order.orderId, ['completed']);
    expect((await payment(order.orderId)).children).to.deep.equal([]);
  });
});
