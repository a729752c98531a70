/**
 * The same domain ordered several times at once (different idempotency keys, as a customer clicking twice or two
 * operators would): one order takes the name, the others are refused with CONFLICT, so the registrar is asked (and
 * the card charged) once. A real server over SQLite or MariaDB (TEST_DATABASE_URL), node-soap's client, real HTTP.
 */
import { expect } from 'chai';
import * as soap from 'soap';
import { defaultWorkflow } from '../../src/domain/workflow';
import { ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { eventually } from '../helpers/assertions';
import { textsOf } from '../orders/fixtures';

describe('the same domain ordered at once, several times: one order, one registrar call, one charge', function () {
  this.timeout(120_000);
  let world: ApiWorld;
  let customerId: number;
  const db = () => world.fresh.db;

  async function client(): Promise<soap.Client> {
    const c = await soap.createClientAsync(`${world.url}/soap/provisioning?wsdl`);
    c.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
    return c;
  }

  /** Sends `call` from 4 clients at once; the order ids placed and the fault codes of the others. */
  async function atOnce(call: (c: soap.Client, k: number) => Promise<[{ orderId: number | string }]>): Promise<{ placed: number[]; codes: string[] }> {
    const clients = await Promise.all([1, 2, 3, 4].map(() => client()));
    const answers = await Promise.all(
      clients.map(async (c, k) => {
        try {
          const [r] = await call(c, k);
          return { orderId: Number(r.orderId), code: null };
        } catch (e) {
          return { orderId: null, code: textsOf((e as { body?: string }).body ?? '', 'code')[0] ?? String(e) };
        }
      }),
    );
    return { placed: answers.flatMap((a) => (a.orderId === null ? [] : [a.orderId])), codes: answers.flatMap((a) => (a.code === null ? [] : [a.code])) };
  }

  const finished = (orderId: number) =>
    eventually(async () => {
      const o = await db()('orders').where({ id: orderId }).first('status');
      return o && ['CP', 'PF', 'RJ', 'HL'].includes(o.status) ? String(o.status) : undefined;
    }, `order ${orderId} to finish`);

  before(async () => {
    world = await startApiWorld({ demo: true });
    customerId = (await db()('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id;
  });
  after(() => world?.close());

  it('4 RegisterDomain of one name at once with 4 keys: one order, the others CONFLICT', async () => {
    const { placed, codes } = await atOnce((c, k) => c.RegisterDomainAsync({ accountId: customerId, name: 'race-bakery.com', years: 1, idempotencyKey: `register-race-${k}` }));
    expect(placed, JSON.stringify({ placed, codes })).to.have.length(1);
    expect(codes).to.deep.equal(['CONFLICT', 'CONFLICT', 'CONFLICT']);
    expect(await finished(placed[0]!)).to.equal('CP');
    const orders = await db()('order_domains').where({ name: 'race-bakery.com' }).pluck('order_id');
    expect(orders.map(Number)).to.deep.equal(placed);
  });

  it('4 RenewDomain of one domain at once with 4 keys: one renewal order (one charge, one registrar renewal), the others CONFLICT', async () => {
    const c = await client();
    const [reg] = await c.RegisterDomainAsync({ accountId: customerId, name: 'race-renew.com', years: 1 });
    expect(await finished(Number(reg.orderId))).to.equal('CP');
    const before = Number((await db()('domains').where({ name: 'race-renew.com' }).first('expires_at')).expires_at);
    // Renewal orders wait for the vendor: the first is still open while the others are placed, on SQLite too.
    const { start: first, steps } = defaultWorkflow('renewal');
    await world.server.services.workflows.define(await providerActor(world), {
      orderType: 'renewal',
      definition: { orderType: 'renewal', start: 'review', steps: { ...steps, review: { action: 'wait_for_approval', next: { approved: first, rejected: 'reject_order' } } } },
    });
    const { placed, codes } = await atOnce((x, k) => x.RenewDomainAsync({ accountId: customerId, name: 'race-renew.com', years: 1, idempotencyKey: `renew-race-${k}` }));
    expect(placed, JSON.stringify({ placed, codes })).to.have.length(1);
    expect(codes).to.deep.equal(['CONFLICT', 'CONFLICT', 'CONFLICT']);
    const billing = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    billing.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
    await billing.ApproveOrderAsync({ orderId: placed[0] });
    expect(await finished(placed[0]!)).to.equal('CP');
    const renewals = await db()('order_domains').where({ name: 'race-renew.com', action: 'renew' }).pluck('order_id');
    expect(renewals.map(Number)).to.deep.equal(placed);
    const charges = await db()('payments').whereIn('id', db()('orders').whereIn('id', placed).select('payment_id')).where({ kind: 'purchase', status: 'success' }).pluck('amount');
    expect(charges.map(Number)).to.deep.equal([1499]);
    const year = new Date(before);
    year.setUTCFullYear(year.getUTCFullYear() + 1);
    expect(Number((await db()('domains').where({ name: 'race-renew.com' }).first('expires_at')).expires_at)).to.equal(year.getTime());
  });
});
