import { expect } from 'chai';
import * as soap from 'soap';
import type { XmlRpcValue } from '../../src/api/xmlrpc/codec';
import { ADMIN_PASSWORD, startApiWorld, type ApiWorld } from '../helpers/api';
import { bm, result } from '../api/xmlrpc/client';
import { eventually } from '../helpers/assertions';

const addYears = (d: Date, n: number) => {
  const x = new Date(d);
  x.setUTCFullYear(x.getUTCFullYear() + n);
  return x;
};

/**
 * Domain orders through both doors on a running server (the demo: the sandbox registrar selling .com at 12.99,
 * renewals 14.99; Bluebird Bakery with the sandbox test card; the worker running orders).
 */
describe('domain orders over SOAP and XML-RPC on a running server (demo catalog, sandbox registrar)', function () {
  this.timeout(90_000);
  let world: ApiWorld;
  let billing: soap.Client;
  let provisioning: soap.Client;
  let customerId: number;
  let planId: number;
  let periodId: number;

  const finished = (orderId: number) =>
    eventually(async () => {
      const [r] = await billing.GetOrderAsync({ orderId });
      return ['completed', 'rejected', 'provisioning_failed', 'on_hold'].includes(r.order.status) ? (r.order as { status: string; lines: { line: { description: string; amount: string }[] } }) : undefined;
    }, `order ${orderId} to finish`);
  const getDomain = async (name: string) => (await provisioning.GetDomainAsync({ name }))[0].domain as { name: string; status: string; expiresAt?: string; nameservers?: { nameserver: string[] } };

  before(async () => {
    world = await startApiWorld({ demo: true });
    const db = world.fresh.db;
    customerId = (await db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id;
    planId = (await db('plans').where({ name: 'Shared Hosting Basic' }).first('id')).id;
    periodId = (await db('plan_periods').where({ plan_id: planId, duration: 1, unit: 'month', trial: false }).first('id')).id;
    billing = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    billing.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
    provisioning = await soap.createClientAsync(`${world.url}/soap/provisioning?wsdl`);
    provisioning.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
  });
  after(() => world.close());

  it('PlaceOrder of hosting with a new domain (item parameters) leaves both live: subscription active, domain active with its expiry', async () => {
    const [placed] = await billing.PlaceOrderAsync({
      accountId: customerId,
      items: {
        item: [
          {
            planId,
            periodId,
            parameters: {
              parameter: [
                { name: 'domain', value: 'bluebird-pies.com' },
                { name: 'domain_action', value: 'register' },
                { name: 'domain_years', value: '2' },
                { name: 'domain_nameservers', value: 'ns1.bluebird.example, ns2.bluebird.example' },
              ],
            },
          },
        ],
      },
    });
    const order = await finished(placed.orderId);
    expect(order.status).to.equal('completed');
    const domainLine = order.lines.line.find((l) => l.description.includes('bluebird-pies.com'));
    expect([domainLine?.description, String(domainLine?.amount)]).to.deep.equal(['Registration of bluebird-pies.com, 2 years', '27.98']);
    const sub = await world.fresh.db('subscriptions').where({ order_id: placed.orderId }).first('id', 'status', 'service_status');
    expect(sub).to.include({ status: 30, service_status: 50 });
    const domain = await getDomain('bluebird-pies.com');
    expect(domain.status).to.equal('active');
    expect(domain.nameservers?.nameserver).to.deep.equal(['ns1.bluebird.example', 'ns2.bluebird.example']);
    const row = await world.fresh.db('domains').where({ name: 'bluebird-pies.com' }).first('account_id', 'subscription_id', 'order_id', 'registered_at');
    expect([Number(row.account_id), Number(row.subscription_id), Number(row.order_id)]).to.deep.equal([customerId, Number(sub.id), placed.orderId]);
    expect(new Date(domain.expiresAt!).getTime()).to.equal(addYears(new Date(Number(row.registered_at)), 2).getTime());
  });

  it('RegisterDomain, then RenewDomain extends the expiry by the years renewed; TransferDomain ends transfer_pending; a transfer without its code is refused', async () => {
    const [reg] = await provisioning.RegisterDomainAsync({ accountId: customerId, name: 'Bluebird-Cakes.COM', years: 1, nameservers: { nameserver: ['ns1.bluebird.example'] } });
    expect((await finished(reg.orderId)).status).to.equal('completed');
    const registered = await getDomain('bluebird-cakes.com');
    expect(registered.status).to.equal('active');

    const [renew] = await provisioning.RenewDomainAsync({ accountId: customerId, name: 'bluebird-cakes.com', years: 2, idempotencyKey: 'renew-cakes-1' });
    const [again] = await provisioning.RenewDomainAsync({ accountId: customerId, name: 'bluebird-cakes.com', years: 2, idempotencyKey: 'renew-cakes-1' });
    expect(again.orderId).to.equal(renew.orderId);
    const renewal = await finished(renew.orderId);
    expect(renewal.status).to.equal('completed');
    expect(renewal.lines.line.map((l) => [l.description, String(l.amount)])).to.deep.equal([['Renewal of bluebird-cakes.com, 2 years', '29.98']]);
    expect(new Date((await getDomain('bluebird-cakes.com')).expiresAt!).toISOString()).to.equal(addYears(new Date(registered.expiresAt!), 2).toISOString());

    const refused = await provisioning.TransferDomainAsync({ accountId: customerId, name: 'taken-bakery.com', years: 1 }).then(
      () => null,
      (e: { root: { Envelope: { Body: { Fault: { detail: { Error: { code: string; field?: string } } } } } } }) => e.root.Envelope.Body.Fault.detail.Error,
    );
    expect(refused).to.include({ code: 'INVALID_ARGUMENT', field: 'eppCode' });
    const [transfer] = await provisioning.TransferDomainAsync({ accountId: customerId, name: 'taken-bakery.com', years: 1, eppCode: 'sandbox-auth' });
    expect((await finished(transfer.orderId)).status).to.equal('completed');
    expect((await getDomain('taken-bakery.com')).status).to.equal('transfer_pending');
    // ListTasks shows the registrar calls among the gate tasks, by their action.
    const [tasks] = await provisioning.ListTasksAsync({ pageSize: 100 });
    const actions = (tasks.tasks.task as { action: string; status: string }[]).filter((t) => t.action.endsWith('_domain')).map((t) => `${t.action} ${t.status}`);
    expect(actions).to.include.members(['register_domain succeeded', 'renew_domain succeeded', 'transfer_domain succeeded']);
  });

  it('XML-RPC PlaceOrderAndAuthorize_API carries the domain in the item\'s provisioning parameters', async () => {
    const payToolId = (await world.fresh.db('pay_tools').where({ account_id: customerId }).first('id')).id;
    const reseller = (await world.fresh.db('accounts').where({ id: customerId }).first('vendor_id')).vendor_id;
    const params: XmlRpcValue[] = [Number(reseller), 1, `${planId}=${periodId}=1=-1`, 1, 1, 2, 'domain=bluebird-rpc.com', 'domain_action=register', 1, `AccountID=${customerId}`, 1, `PayToolID=${payToolId}`, 0];
    const row = result(await bm(`${world.url}/RPC2`, 'PlaceOrderAndAuthorize_API', params)) as XmlRpcValue[];
    const orderId = row[1] as number;
    expect((await finished(orderId)).status).to.equal('completed');
    expect((await getDomain('bluebird-rpc.com')).status).to.equal('active');
  });

  /** [description, kind] of every line of an invoice, read from GetInvoice's response bytes. */
  async function invoiceLines(invoiceId: number): Promise<string[][]> {
    await billing.GetInvoiceAsync({ invoiceId });
    const xml = billing.lastResponse as string;
    const text = (block: string, name: string) => new RegExp(`<(?:[\\w.-]+:)?${name}>([^<]*)</(?:[\\w.-]+:)?${name}>`).exec(block)?.[1] ?? '';
    return [...xml.matchAll(/<(?:[\w.-]+:)?line>([\s\S]*?)<\/(?:[\w.-]+:)?line>/g)].map((m) => [text(m[1]!, 'description'), text(m[1]!, 'kind')]);
  }

  it('domain charges are invoice lines of kind domain in GetInvoice: a RenewDomain order\'s and a renewal billed by the billing run', async () => {
    // The RenewDomain order of bluebird-cakes.com (test above): its invoice, written when the order was charged.
    const renewOrder = (await world.fresh.db('order_domains').where({ name: 'bluebird-cakes.com', action: 'renew' }).first('order_id')) as { order_id: number };
    const [order] = await billing.GetOrderAsync({ orderId: Number(renewOrder.order_id) });
    expect(order.order.status).to.equal('completed');
    const orderInvoice = (await world.fresh.db('documents').where({ type: 'invoice', order_id: renewOrder.order_id }).first('id')) as { id: number };
    expect(await invoiceLines(Number(orderInvoice.id))).to.deep.include(['Renewal of bluebird-cakes.com, 2 years', 'domain']);

    // bluebird-pies.com (registered for 2 years in the first test) is renewed by a billing run 10 days before it expires.
    const pies = (await world.fresh.db('domains').where({ name: 'bluebird-pies.com' }).first('id', 'expires_at')) as { id: number; expires_at: unknown };
    const expires = Number(pies.expires_at);
    await billing.RunBillingAsync({ asOf: new Date(expires - 10 * 86_400_000).toISOString() });
    const charge = (await world.fresh.db('billing_charges').where({ domain_id: pies.id }).first('document_id', 'kind')) as { document_id: number; kind: string };
    expect(charge.kind).to.equal('renewal');
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    const lines = await invoiceLines(Number(charge.document_id));
    expect(lines).to.deep.include([`Domain bluebird-pies.com: renewal for 1 year, ${day(expires)} to ${day(addYears(new Date(expires), 1).getTime())}`, 'domain']);
    // The invoice's other kinds stay what they were (the tax line, if any, is `tax`).
    expect(lines.every(([, kind]) => kind !== 'adjustment')).to.equal(true);
  });
});
