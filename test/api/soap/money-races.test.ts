/**
 * Money under concurrency and hostile arguments, through the SOAP door: a real server over a real database
 * (SQLite, or MariaDB with TEST_DATABASE_URL, where the row locks are real), node-soap's client, real HTTP.
 */
import { expect } from 'chai';
import * as soap from 'soap';
import { ManualClock } from '../../../src/clock';
import type { Actor } from '../../../src/context';
import { billingActor } from '../../../src/billing/documents-service';
import { ADMIN_PASSWORD, billedCustomer, issuedInvoice, providerActor, startApiWorld, type ApiWorld } from '../../helpers/api';

type Reply = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const textsOf = (xml: string, local: string): string[] => [...xml.matchAll(new RegExp(`<(?:[\\w.-]+:)?${local}>([^<]*)</(?:[\\w.-]+:)?${local}>`, 'g'))].map((m) => m[1]!);

describe('SOAP money races and hostile amounts', function () {
  this.timeout(60_000);
  const clock = new ManualClock('2026-03-01T10:00:00Z');
  let world: ApiWorld;
  let provider: Actor;
  let gatewayId: number;

  async function client(): Promise<soap.Client> {
    const c = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    c.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
    return c;
  }
  /** One call on its own client (its own HTTP connection): the answer, or the fault's code, field and message. */
  async function attempt(op: string, args: Record<string, unknown>, c?: soap.Client): Promise<{ ok: Reply } | { code: string; field?: string; message: string }> {
    const cl = c ?? (await client());
    try {
      const [r] = await (cl as unknown as Record<string, (a: unknown) => Promise<[Reply]>>)[`${op}Async`]!(args);
      return { ok: r ?? {} };
    } catch (e) {
      const xml = (e as { body?: string }).body ?? '';
      if (!xml) throw e;
      return { code: textsOf(xml, 'code')[0]!, field: textsOf(xml, 'field')[0], message: textsOf(xml, 'message')[0]! };
    }
  }

  const customer = (currency: string, country: string, card?: string) => billedCustomer(world, provider, { label: 'Money Race', currency, country, card, gatewayId });
  const invoice = (accountId: number, currency: string, amounts: bigint[], due?: string) => issuedInvoice(world, provider, accountId, currency, amounts, due);


  const purchases = async (accountId: number) =>
    ((await world.fresh.db('payments').where({ account_id: accountId, kind: 'purchase' }).whereNotNull('gateway_instance_id').select('status', 'amount')) as { status: string; amount: unknown }[]).map((p) => `${p.status}:${String(p.amount)}`);

  before(async () => {
    world = await startApiWorld({ demo: true, clock });
    provider = await providerActor(world);
    gatewayId = ((await world.fresh.db('plugin_instances').where({ kind: 'payment' }).orderBy('id').first('id')) as { id: number }).id;
  });
  after(() => world.close());

  it('PayInvoice sent 4 times at once with 4 different keys charges the card once; the others are refused, nothing is over-paid', async () => {
    const c = await customer('USD', 'US', '4242424242424242');
    const id = await invoice(c, 'USD', [4999n]);
    const clients = await Promise.all([1, 2, 3, 4].map(() => client()));
    const answers = await Promise.all(clients.map((cl, k) => attempt('PayInvoice', { invoiceId: id, idempotencyKey: `race-pay-${k}` }, cl)));
    const paid = answers.filter((a) => 'ok' in a);
    const refused = answers.filter((a) => !('ok' in a)) as { code: string; field?: string }[];
    expect(paid, JSON.stringify(answers)).to.have.length(1);
    for (const r of refused) expect(['CONFLICT', 'NOT_ALLOWED']).to.include(r.code);
    expect(await purchases(c)).to.deep.equal(['success:4999']);
    const b = await world.server.services.documents.getBalance(provider, c);
    expect(b.balance).to.equal(0n);
  });


  it('PayInvoice sent 4 times at once under one key charges once and answers all 4 with that payment', async () => {
    const c = await customer('USD', 'US', '4242424242424242');
    const id = await invoice(c, 'USD', [1234n]);
    const clients = await Promise.all([1, 2, 3, 4].map(() => client()));
    const answers = await Promise.all(clients.map((cl) => attempt('PayInvoice', { invoiceId: id, idempotencyKey: 'race-same-key' }, cl)));
    const ids = answers.map((a) => ('ok' in a ? `${a.ok.payment.status}:${a.ok.payment.paymentId}` : a.code));
    expect(new Set(ids).size, JSON.stringify(answers)).to.equal(1);
    expect(ids[0]).to.match(/^success:\d+$/);
    expect(await purchases(c)).to.deep.equal(['success:1234']);
    expect((await world.server.services.documents.getBalance(provider, c)).balance).to.equal(0n);
  });

  it('auto-pay (payInvoices, as the billing run calls it) and PayInvoice over SOAP on the same invoice at once charge it once', async () => {
    // One invoice per account; for each, PayInvoice now and auto-pay k * 50 ms later (a SOAP call takes a while to pass authentication): some auto-pays read the
    // invoice before PayInvoice wrote its payment and write theirs after it.
    const accounts: number[] = [];
    for (let k = 0; k < 32; k++) accounts.push(await customer('USD', 'US', '4242424242424242'));
    const ids = await Promise.all(accounts.map((a, k) => invoice(a, 'USD', [1000n + BigInt(k)])));
    const clients = await Promise.all(ids.map(() => client()));
    const vendor = billingActor(provider.accountId);
    await Promise.all(
      ids.flatMap((invoiceId, k) => [
        attempt('PayInvoice', { invoiceId, idempotencyKey: 'by-hand' }, clients[k]),
        new Promise((r) => setTimeout(r, k * 50)).then(() => world.server.services.documents.payInvoices(vendor, [{ invoiceId, idempotencyKey: 'autopay:1' }])),
      ]),
    );
    const charged = await Promise.all(accounts.map((a) => purchases(a)));
    expect(charged).to.deep.equal(accounts.map((_, k) => [`success:${1000 + k}`]));
    for (const a of accounts) expect((await world.server.services.documents.getBalance(provider, a)).balance).to.equal(0n);
  });

  it('PayInvoice: the same key again with another payToolId is CONFLICT (field idempotencyKey), not the first answer; the same arguments answer the first payment', async () => {
    const c = await customer('USD', 'US', '4000000000000341');
    const other = await world.server.services.payments.storePayTool(provider, c, gatewayId, { number: '4242424242424242', expMonth: 12, expYear: 2040, cvv: '123' });
    const declinedTool = ((await world.fresh.db('pay_tools').where({ account_id: c, is_default: true }).first('id')) as { id: number }).id;
    const id = await invoice(c, 'USD', [700n]);
    const first = await attempt('PayInvoice', { invoiceId: id, payToolId: Number(declinedTool), idempotencyKey: 'tool-key' });
    expect(first).to.include({ code: 'PAYMENT_DECLINED' });
    expect(await attempt('PayInvoice', { invoiceId: id, payToolId: Number(declinedTool), idempotencyKey: 'tool-key' })).to.include({ code: 'PAYMENT_DECLINED' });
    const again = await attempt('PayInvoice', { invoiceId: id, payToolId: other.payToolId, idempotencyKey: 'tool-key' });
    expect(again).to.include({ code: 'CONFLICT', field: 'idempotencyKey' });
    // A new key with the other card pays it.
    const paid = await attempt('PayInvoice', { invoiceId: id, payToolId: other.payToolId, idempotencyKey: 'tool-key-2' });
    expect('ok' in paid && paid.ok.payment.status).to.equal('success');
  });

  it('an invoice above 2^53 minor units (90,071,992,547,409.93 USD) paid 0.01 shows 90,071,992,547,409.92 due, to the cent, on both databases', async () => {
    const c = await customer('USD', 'US');
    const id = await invoice(c, 'USD', [9_007_199_254_740_993n]);
    const cl = await client();
    const paid = await attempt('RecordPayment', { accountId: c, amount: '0.01', currency: 'USD', method: 'wire', reference: 'cent', invoiceId: id }, cl);
    expect(paid).to.have.property('ok');
    await attempt('GetInvoice', { invoiceId: id }, cl);
    expect([textsOf(cl.lastResponse as string, 'total')[0], textsOf(cl.lastResponse as string, 'balanceDue')[0]]).to.deep.equal(['90071992547409.93', '90071992547409.92']);
    await attempt('GetAccountBalance', { accountId: c }, cl);
    expect(textsOf(cl.lastResponse as string, 'balance')).to.deep.equal(['90071992547409.92']);
    // The rest, to the cent, pays it: nothing left open, nothing left over.
    expect(await attempt('RecordPayment', { accountId: c, amount: '90071992547409.92', currency: 'USD', method: 'wire', reference: 'rest', invoiceId: id }, cl)).to.have.property('ok');
    await attempt('GetInvoice', { invoiceId: id }, cl);
    expect([textsOf(cl.lastResponse as string, 'status')[0], textsOf(cl.lastResponse as string, 'balanceDue')[0]]).to.deep.equal(['paid', '0.00']);
    const open = (await world.fresh.db('documents').where({ account_id: c, type: 'payment' }).orderBy('id').pluck('open_amount')).map(String);
    expect(open).to.deep.equal(['0', '0']);
  });
});
