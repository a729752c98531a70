import { expect } from 'chai';
import type { Actor } from '../../src/context';
import { inTransaction } from '../../src/db/transaction';
import { accountWithApiUser, ADMIN_PASSWORD, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';

/** GET /invoices/:id: the printable invoice over real HTTP, with HTTP Basic credentials. */
describe('printable invoice (GET /invoices/:id)', function () {
  this.timeout(60_000);
  let world: ApiWorld;
  let provider: Actor;
  let reseller: Awaited<ReturnType<typeof accountWithApiUser>>;
  let customer: Awaited<ReturnType<typeof accountWithApiUser>>;
  let other: Awaited<ReturnType<typeof accountWithApiUser>>;
  let invoiceId: number;
  let number: string;

  const get = (id: number | string, cred?: { login: string; password: string }) =>
    fetch(`${world.url}/invoices/${id}`, { headers: cred ? { Authorization: `Basic ${Buffer.from(`${cred.login}:${cred.password}`).toString('base64')}` } : {} });

  before(async () => {
    world = await startApiWorld();
    provider = await providerActor(world);
    reseller = await accountWithApiUser(world, 'reseller', 'Html Reseller');
    customer = await accountWithApiUser(world, 'customer', 'Html <Customer> & Co', reseller.accountId);
    other = await accountWithApiUser(world, 'customer', 'Html Other', reseller.accountId);
    await world.server.services.taxRules.create(provider, reseller.accountId, { name: 'Sales tax 10%', country: 'US', ratePpm: 100_000 });
    const now = world.server.services.deps.clock.now();
    const [inv] = await inTransaction(world.fresh.db, (tx) =>
      world.server.services.documents.issueInvoices(tx, now, [
        {
          vendorId: reseller.accountId,
          accountId: customer.accountId,
          currency: 'USD',
          issueDate: now,
          lines: [
            { kind: 'renewal', description: 'Web <b>hosting</b> "Pro"', quantity: '1', unitPrice: 1999n, amount: 1999n, periodStart: new Date('2026-03-01T00:00:00Z'), periodEnd: new Date('2026-04-01T00:00:00Z') },
            { kind: 'overage', description: 'Traffic over 100 GB', quantity: '2.5', unitPrice: 100n, amount: 250n },
            { kind: 'domain', description: 'Registration of html-shop.com, 1 year', quantity: '1', unitPrice: 1299n, amount: 1299n },
          ],
        },
      ]),
    );
    invoiceId = inv!.documentId;
    number = inv!.number;
    await world.server.services.documents.recordPayment(provider, { accountId: customer.accountId, amount: 1000n, method: 'check', invoiceId });
  });
  after(async () => world?.close());

  it('shows the invoice to its customer, its reseller and the provider, escaped, with totals, tax, payments and a print stylesheet', async () => {
    for (const cred of [customer, reseller, { login: 'admin', password: ADMIN_PASSWORD }]) {
      const res = await get(invoiceId, cred);
      expect(res.status, cred.login).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^text\/html/);
      const html = await res.text();
      expect(html).to.contain(number);
      expect(html).to.contain('Web &lt;b&gt;hosting&lt;/b&gt; &quot;Pro&quot;').and.not.contain('<b>hosting</b>');
      expect(html).to.contain('Html &lt;Customer&gt; &amp; Co');
      expect(html).to.contain('01 Mar 2026 – 31 Mar 2026');
      // 19.99 + 2.50 + 12.99 = 35.48; tax 2.00 + 0.25 + 1.30 = 3.55; total 39.03; paid 10.00 by check; 29.03 due
      for (const s of ['35.48', '3.55', '39.03 USD', '-10.00', '29.03 USD', '2.5', 'Sales tax 10%']) expect(html).to.contain(s);
      // Each line says what it charges: the domain's line is a Domain line.
      const kinds = [...html.matchAll(/<td class="kind">([^<]*)<\/td>/g)].map((m) => m[1]);
      expect(kinds).to.deep.equal(['Renewal', 'Usage overage', 'Domain']);
      expect(html).to.contain('@media print');
    }
  });

  it('401 without or with wrong credentials; 404 for another customer of the same reseller and for a missing id', async () => {
    const none = await get(invoiceId);
    expect(none.status).to.equal(401);
    expect(none.headers.get('www-authenticate')).to.match(/^Basic /);
    expect((await get(invoiceId, { login: customer.login, password: 'wrong-password' })).status).to.equal(401);
    const foreign = await get(invoiceId, other);
    const missing = await get(987654321, other);
    expect([foreign.status, missing.status]).to.deep.equal([404, 404]);
    expect((await foreign.text()).replace(String(invoiceId), 'N')).to.equal((await missing.text()).replace('987654321', 'N'));
    expect((await get('abc', customer)).status).to.equal(404);
  });
});
