import { expect } from 'chai';
import * as soap from 'soap';
import type { Actor } from '../../src/context';
import { ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { soapReads } from './fixtures';

/**
 * An order on hold that carried tax, settled over SOAP (the fixtures of held-orders-api.test.ts: the demo catalog,
 * Bluebird Bakery, a sandbox .io registrar without grace period refusing the second name). Bluebird's vendor taxes
 * the US 8.875 % exclusive, as the cancellation tests do. Each order is hosting 10.00 (a plan of 10.00 a month, no
 * setup fee) + <key>-kept.io 20.00 (registered, cannot be deleted: kept) + <key>-refused.io 20.00 (refused):
 *
 *   lines 10.00 + 20.00 + 20.00 = 50.00, tax 0.8875 -> 0.89, 1.775 -> 1.78, 1.78 = 4.45: order total 54.45 (tax
 *   4.45), charged 54.45 to the card; its invoice carries the same 50.00 + 4.45 = 54.45, all paid by the charge.
 */
describe('orders on hold with tax settled over SOAP: the customer keeps the kept domain with its tax; nothing is left owed', function () {
  this.timeout(120_000);
  let world: ApiWorld;
  let billing: soap.Client;
  let provider: Actor;
  let customerId: number;
  let payToolId: number;
  let planId: number;
  let periodId: number;
  let taxRuleId: number;
  let freePlanId: number;

  const db = () => world.fresh.db;
  const n = (v: unknown) => BigInt(String(v));
  const { getOrder, untilStatus, balance: balanceOf } = soapReads(() => billing);
  const balance = () => balanceOf(customerId);
  /** The order's invoice and credit memos: [type, subtotal, tax, total, open]. */
  const own = async (orderId: number) =>
    ((await db()('documents').where({ order_id: orderId }).orderBy('id').select('type', 'subtotal', 'tax_total', 'total', 'open_amount')) as Record<string, unknown>[]).map((d) => [d.type, n(d.subtotal), n(d.tax_total), n(d.total), n(d.open_amount)]);
  /** The order's payment document and its refund documents: [type, total, open]. */
  const paidBack = async (orderId: number) => {
    const order = (await db()('orders').where({ id: orderId }).first('payment_id')) as { payment_id: number };
    const pay = (await db()('documents').where({ payment_id: order.payment_id, type: 'payment' }).first('id', 'total', 'open_amount')) as { id: number; total: unknown; open_amount: unknown };
    const refunds = (await db()('documents').where({ type: 'refund', related_document_id: pay.id }).orderBy('id').select('total', 'open_amount')) as { total: unknown; open_amount: unknown }[];
    return [['payment', n(pay.total), n(pay.open_amount)], ...refunds.map((r) => ['refund', n(r.total), n(r.open_amount)])];
  };
  /** The order's invoice and credit memo ([subtotal, tax, total] each) and the refund document of its payment (54.45 unless said), all with nothing open. */
  const settled = async (orderId: number, invoice: bigint[], memo: bigint[], refund: bigint, paid = 5445n) => {
    expect(await own(orderId)).to.deep.equal([
      ['invoice', ...invoice, 0n],
      ['credit_memo', ...memo, 0n],
    ]);
    expect(await paidBack(orderId)).to.deep.equal([
      ['payment', paid, 0n],
      ['refund', refund, 0n],
    ]);
  };
  const gateway = async (orderId: number) => {
    const order = (await db()('orders').where({ id: orderId }).first('payment_id')) as { payment_id: number };
    const p = (await db()('payments').where({ id: order.payment_id }).first('status', 'amount')) as { status: string; amount: unknown };
    const children = (await db()('payments').where({ parent_payment_id: order.payment_id }).orderBy('id').select('kind', 'status', 'amount')) as { kind: string; status: string; amount: unknown }[];
    return { status: p.status, amount: n(p.amount), children: children.map((c) => [c.kind, c.status, n(c.amount)]) };
  };
  /** Places hosting 10.00 + two .io domains and waits for the hold (the figures checked are those of the exclusive tax). */
  const held = async (key: string, figures = true) => {
    const o = await world.server.services.orders.place(provider, {
      accountId: customerId,
      payToolId,
      items: [{ planId, periodId, parameters: { domain: `${key}-site.example` } }],
      domains: [
        { action: 'register', name: `${key}-kept.io` },
        { action: 'register', name: `${key}-refused.io` },
      ],
    });
    await untilStatus(o.orderId, ['on_hold', 'provisioning_failed', 'completed']);
    expect((await getOrder(o.orderId)).status).to.equal('on_hold');
    if (!figures) return o.orderId;
    // How the order, its charge and its invoice relate: the order is priced with its exclusive tax (total 54.45,
    // tax 4.45), the charge pays that 54.45, the invoice carries the same 50.00 + 4.45 and has nothing open.
    const row = (await db()('orders').where({ id: o.orderId }).first('total', 'tax_total')) as { total: unknown; tax_total: unknown };
    expect([n(row.total), n(row.tax_total)]).to.deep.equal([5445n, 445n]);
    expect(await gateway(o.orderId)).to.deep.equal({ status: 'success', amount: 5445n, children: [] });
    expect(await own(o.orderId)).to.deep.equal([['invoice', 5000n, 445n, 5445n, 0n]]);
    expect(await balance()).to.equal('0'); // 54.45 - 54.45
    return o.orderId;
  };

  before(async () => {
    world = await startApiWorld({ demo: true });
    provider = await providerActor(world);
    const customer = (await db()('accounts').where({ company_name: 'Bluebird Bakery' }).first('id', 'vendor_id')) as { id: number; vendor_id: number };
    customerId = customer.id;
    payToolId = (await db()('pay_tools').where({ account_id: customerId }).first('id')).id;
    const { pluginInstances, tlds, catalog, taxRules } = world.server.services;
    taxRuleId = (await taxRules.create(provider, Number(customer.vendor_id), { name: 'Sales tax 8.875%', country: 'US', ratePpm: 88_750 })).taxRuleId;
    const templateId = (await db()('plans').where({ name: 'Shared Hosting Basic' }).first('template_id')).template_id as number;
    planId = await catalog.createPlan(provider, { templateId: Number(templateId), name: 'Hosting 10', published: true, resellable: true, periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    periodId = (await db()('plan_periods').where({ plan_id: planId }).first('id')).id;
    const refused = ['approve-refused.io', 'reject-refused.io', 'rate-refused.io', 'incl-refused.io', 'short-refused.dev'];
    const registrarId = await pluginInstances.create(provider, { kind: 'registrar', plugin: 'sandbox', name: 'io-no-grace', settings: { graceDays: 0, failures: Object.fromEntries(refused.map((x) => [x, 'register'])) } });
    await tlds.create(provider, { tld: 'io', registrarInstanceId: registrarId, prices: [{ action: 'register', years: 1, amount: 2000n }] });
    await tlds.create(provider, { tld: 'dev', registrarInstanceId: registrarId, prices: [{ action: 'register', years: 1, amount: 50n }] });
    freePlanId = await catalog.createPlan(provider, { templateId: Number(templateId), name: 'Hosting free', published: true, resellable: true, periods: [{ duration: 1, unit: 'month', recurringFee: 0n }] });
    billing = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    billing.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
  });
  after(() => world?.close());

  it('ApproveOrder: keeps 20.00 + 1.78 tax, refunds 32.67 of the 54.45 paid; credit memo 32.67 (30.00 + 2.67 tax); balance 0', async () => {
    const id = await held('approve');
    await billing.ApproveOrderAsync({ orderId: id, comment: 'Customer keeps it' });
    const done = await untilStatus(id, ['completed']);
    // The kept domain with the invoice's share of tax: 20.00 x 54.45 / 50.00 = 21.78 (its line's 1.78 of tax).
    const approval = done.history.event.find((e) => e.comment?.startsWith('Approved on review'))!;
    expect(approval.comment).to.contain('The customer keeps approve-kept.io (21.78 USD: 20.00 USD and its tax).');
    expect(approval.comment).to.match(/Refunded 32\.67 USD of payment \d+ \(refund \d+\)/);
    // Refunded: what was paid less what is kept, 54.45 - 21.78 = 32.67.
    expect(await gateway(id)).to.deep.equal({ status: 'success', amount: 5445n, children: [['refund', 'success', 3267n]] });
    // The credit memo: the rest of the invoice, 54.45 - 21.78 = 32.67 (hosting 10.00 + 0.89, refused domain
    // 20.00 + 1.78); its tax share 32.67 x 4.45 / 54.45 = 2.67 exactly, net 30.00. The invoice being paid, all of
    // it is taken back by the refund document.
    await settled(id, [5000n, 445n, 5445n], [3000n, 267n, 3267n], 3267n);
    // 54.45 - 54.45 - 32.67 + 32.67 = 0: the customer paid 54.45 - 32.67 = 21.78, exactly the kept domain with its tax.
    expect(await balance()).to.equal('0');
    expect((await db()('documents').where({ order_id: id, type: 'invoice' }).first('status')).status).to.equal('paid');
  });

  it('RejectOrder: the 54.45 charge voided; credit memo 54.45 (50.00 + 4.45 tax) leaves the invoice with nothing open; balance 0', async () => {
    const id = await held('reject');
    await billing.RejectOrderAsync({ orderId: id, comment: 'Customer does not want the domain' });
    expect((await getOrder(id)).status).to.equal('provisioning_failed');
    expect(await gateway(id)).to.deep.equal({ status: 'voided', amount: 5445n, children: [['void', 'success', 5445n]] });
    // The whole invoice credited: 54.45, its tax share 54.45 x 4.45 / 54.45 = 4.45, net 50.00; the invoice being
    // paid, all of it is taken by the refund document of the void.
    await settled(id, [5000n, 445n, 5445n], [5000n, 445n, 5445n], 5445n);
    expect(await balance()).to.equal('0'); // 54.45 - 54.45 + 54.45 - 54.45
  });

  it('ApproveOrder after the tax rule changed while on hold: settles on the invoice\'s figures, refunds 32.67; balance 0', async () => {
    const id = await held('rate');
    // The vendor raises its rate to 10 % meanwhile: the order's invoice keeps the 4.45 it charged.
    await world.server.services.taxRules.update(provider, taxRuleId, { ratePpm: 100_000 });
    try {
      await billing.ApproveOrderAsync({ orderId: id });
      await untilStatus(id, ['completed']);
    } finally {
      await world.server.services.taxRules.update(provider, taxRuleId, { ratePpm: 88_750 });
    }
    // Kept 20.00 x 54.45 / 50.00 = 21.78 as above (not 22.00 at 10 %); refunded 54.45 - 21.78 = 32.67.
    expect(await gateway(id)).to.deep.equal({ status: 'success', amount: 5445n, children: [['refund', 'success', 3267n]] });
    // The memo of the undelivered items, 54.45 - 21.78 = 32.67 (tax 32.67 x 4.45 / 54.45 = 2.67, net 30.00), all of
    // it to the refund document.
    await settled(id, [5000n, 445n, 5445n], [3000n, 267n, 3267n], 3267n);
    expect(await balance()).to.equal('0'); // 54.45 - 54.45 - 32.67 + 32.67
  });

  it('ApproveOrder of a small order: keeps 21.78 of the 22.32 paid, refunds 0.54; credit memo 0.54 (0.50 + 0.04 tax); balance 0', async () => {
    // Free hosting + short-kept.io 20.00 + short-refused.dev 0.50: tax 0 + 1.78 + 0.044375 -> 0.04 = 1.82, order
    // total 20.50 + 1.82 = 22.32, charged 22.32; its invoice the same, nothing open.
    const o = await world.server.services.orders.place(provider, {
      accountId: customerId,
      payToolId,
      items: [{ planId: freePlanId, periodId: Number((await db()('plan_periods').where({ plan_id: freePlanId }).first('id')).id), parameters: { domain: 'short-site.example' } }],
      domains: [
        { action: 'register', name: 'short-kept.io' },
        { action: 'register', name: 'short-refused.dev' },
      ],
    });
    const id = o.orderId;
    await untilStatus(id, ['on_hold', 'provisioning_failed', 'completed']);
    expect((await getOrder(id)).status).to.equal('on_hold');
    expect((await own(id)).map((d) => d.slice(1))).to.deep.equal([[2050n, 182n, 2232n, 0n]]);
    await billing.ApproveOrderAsync({ orderId: id });
    const done = await untilStatus(id, ['completed']);
    // Kept 20.00 x 22.32 / 20.50 = 21.7756 -> 21.78 (its line's 1.78 of tax); refunded 22.32 - 21.78 = 0.54.
    expect(done.history.event.find((e) => e.comment?.startsWith('Approved on review'))!.comment).to.contain('The customer keeps short-kept.io (21.78 USD: 20.00 USD and its tax).').and.match(/Refunded 0\.54 USD/);
    expect((await gateway(id)).children).to.deep.equal([['refund', 'success', 54n]]);
    // The refused .dev with its tax credited: 22.32 - 21.78 = 0.54, tax 0.54 x 1.82 / 22.32 = 0.044 -> 0.04, net
    // 0.50; the invoice being paid, all of it is taken back by the refund document.
    await settled(id, [2050n, 182n, 2232n], [50n, 4n, 54n], 54n, 2232n);
    expect(await balance()).to.equal('0'); // 22.32 - 22.32 - 0.54 + 0.54
  });

  it('ApproveOrder with an inclusive tax: the tax is in the price; keeps 20.00, refunds 30.00, credit memo 30.00 with its 2.45 of tax; balance 0', async () => {
    await world.server.services.taxRules.update(provider, taxRuleId, { inclusive: true });
    const id = await held('incl', false);
    // 8.875 % inside the prices: 10.00 -> net 10.00 / 1.08875 = 9.1848 -> 9.18, tax 0.82; 20.00 -> net 18.3697 ->
    // 18.37, tax 1.63 (twice): tax 0.82 + 1.63 + 1.63 = 4.08, total 50.00 (the order's total, its tax_total 4.08),
    // all paid by the 50.00 charge.
    const row = (await db()('orders').where({ id }).first('total', 'tax_total')) as { total: unknown; tax_total: unknown };
    expect([n(row.total), n(row.tax_total)]).to.deep.equal([5000n, 408n]);
    expect(await own(id)).to.deep.equal([['invoice', 4592n, 408n, 5000n, 0n]]);
    await billing.ApproveOrderAsync({ orderId: id });
    const done = await untilStatus(id, ['completed']);
    // Kept 20.00 x 50.00 / 50.00 = 20.00 (nothing added); refunded 50.00 - 20.00 = 30.00.
    expect(done.history.event.find((e) => e.comment?.startsWith('Approved on review'))!.comment).to.contain('The customer keeps incl-kept.io (20.00 USD).');
    expect(await gateway(id)).to.deep.equal({ status: 'success', amount: 5000n, children: [['refund', 'success', 3000n]] });
    // The memo of 50.00 - 20.00 = 30.00 carries 30.00 x 4.08 / 50.00 = 2.448 -> 2.45 of tax (0.82 + 1.63, the
    // undelivered lines' tax), net 27.55; all of it to the refund document.
    await settled(id, [4592n, 408n, 5000n], [2755n, 245n, 3000n], 3000n, 5000n);
    expect(await balance()).to.equal('0'); // 50.00 - 50.00 - 30.00 + 30.00
  });
});
