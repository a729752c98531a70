import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import type { IssuedInvoice } from '../../src/billing/types';
import type { Actor } from '../../src/context';
import { formatAmount } from '../../src/domain/money';
import { ADMIN_PASSWORD, accountWithApiUser, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { consoleSignIn, launchChromium } from '../helpers/console';

const usd = (minor: bigint) => `${formatAmount(minor, 'USD')} USD`;

/** The console's billing pages in headless Chromium against a real server with the demo seed. */
describe('the console\u2019s invoices and payments in a real browser (demo seed, real server, headless Chromium)', function () {
  this.timeout(90_000);
  let world: ApiWorld;
  let browser: Browser;
  let provider: Actor;
  let resellerId: number;
  let resellerPassword: string;
  let bluebirdId: number;
  let otherCustomerId: number;
  let invoice: IssuedInvoice;
  let otherInvoice: IssuedInvoice;
  let resellerOwnInvoice: IssuedInvoice;

  before(async () => {
    world = await startApiWorld({ demo: true });
    provider = await providerActor(world);
    const { documents, taxRules } = world.server.services;
    resellerPassword = world.server.seed.logins.find((l) => l.login === 'reseller')!.password;
    bluebirdId = (await world.fresh.db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id;
    resellerId = (await world.fresh.db('accounts').where({ company_name: 'Acme Web Reseller' }).first('id')).id;
    const other = await accountWithApiUser(world, 'reseller', 'Other Reseller');
    otherCustomerId = (await accountWithApiUser(world, 'customer', 'Other Reseller Customer', other.accountId)).accountId;
    // Bluebird's vendor (the demo reseller) charges 10% sales tax in the US.
    await taxRules.create(provider, resellerId, { name: 'Sales tax 10%', country: 'US', ratePpm: 100_000 });
    invoice = await documents.issueInvoice(provider, {
      accountId: bluebirdId,
      lines: [
        { kind: 'renewal', description: 'Web hosting "Pro" <monthly>', quantity: '1', unitPrice: 1999n, amount: 1999n, periodStart: new Date('2026-03-01T00:00:00Z'), periodEnd: new Date('2026-04-01T00:00:00Z') },
        { kind: 'overage', description: 'Traffic over 100 GB', quantity: '2.5', unitPrice: 100n, amount: 250n },
      ],
    });
    otherInvoice = await documents.issueInvoice(provider, { accountId: otherCustomerId, lines: [{ kind: 'recurring', description: 'Foreign hosting', quantity: '1', unitPrice: 500n, amount: 500n }] });
    resellerOwnInvoice = await documents.issueInvoice(provider, { accountId: resellerId, lines: [{ kind: 'recurring', description: 'Reseller plan', quantity: '1', unitPrice: 9900n, amount: 9900n }] });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await world?.close();
  });

  const signedIn = (login: string, password: string) => consoleSignIn(browser, world.url, login, password);

  const paymentDocs = async (accountId: number) => Number((await world.fresh.db('documents').where({ account_id: accountId, type: 'payment' }).count({ n: '*' }).first())!.n);

  it('lists an invoice issued through the documents service, filters it, opens it and its printable view', async () => {
    expect(invoice.total).to.equal(2474n); // 22.49 + 10% tax (2.25)
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/invoices');
      expect(await page.textContent('#invoices')).to.contain(invoice.number).and.contain('Bluebird Bakery').and.contain(usd(invoice.total));
      // Filters: by account and status it stays; issued from the day after its issue date it goes.
      const issued = (await world.server.services.documents.getDocument(provider, invoice.documentId)).issueDate;
      const day = (d: Date) => d.toISOString().slice(0, 10);
      await page.goto(`/console/invoices?account=${bluebirdId}&status=open`);
      // (Numbers are per vendor: the other reseller's customer may hold the same number; its company shows it.)
      expect(await page.textContent('#invoices')).to.contain(invoice.number).and.contain('Bluebird Bakery').and.not.contain('Other Reseller Customer');
      await page.goto(`/console/invoices?status=paid`);
      expect(await page.textContent('#invoices')).to.not.contain(invoice.number);
      await page.goto(`/console/invoices?from=${day(issued)}&to=${day(issued)}`);
      expect(await page.textContent('#invoices')).to.contain(invoice.number);
      await page.goto(`/console/invoices?from=${day(new Date(issued.getTime() + 86_400_000))}`);
      expect(await page.textContent('#invoices')).to.not.contain(invoice.number);
      await page.goto('/console/invoices?from=March');
      expect(await page.textContent('.filters .field-error')).to.contain('YYYY-MM-DD');

      await page.goto(`/console/invoices?account=${bluebirdId}`);
      await Promise.all([page.waitForURL((u) => u.pathname === `/console/invoices/${invoice.documentId}`), page.click(`a:has-text("${invoice.number}")`)]);
      expect(await page.textContent('h1')).to.contain(invoice.number);
      expect(await page.textContent('#doc-status')).to.equal('open');
      expect(await page.textContent('#lines')).to.contain('Web hosting "Pro" <monthly>').and.contain('Traffic over 100 GB').and.contain('19.99').and.contain('2.50');
      expect(await page.textContent('#taxes')).to.contain('Sales tax 10%').and.contain('2.25 USD');
      expect(await page.textContent('#open-amount')).to.equal(usd(invoice.total));
      expect(await page.getAttribute('#account-link', 'href')).to.equal(`/console/accounts/${bluebirdId}`);
      expect(await page.textContent('#applied')).to.contain('Nothing applied yet');

      await Promise.all([page.waitForURL((u) => u.pathname === `/console/invoices/${invoice.documentId}/print`), page.click('#print-link')]);
      const html = await page.content();
      expect(html).to.contain(invoice.number).and.contain('24.74 USD').and.contain('@media print').and.contain('Web hosting "Pro" &lt;monthly&gt;');
      expect(await page.locator('monthly').count()).to.equal(0); // the customer's text is escaped, never markup
      // Its own inline stylesheet applies (the console's stricter policy would block it): the page is 52rem wide.
      expect(await page.evaluate('getComputedStyle(document.body).maxWidth')).to.equal('832px');
    } finally {
      await context.close();
    }
  });

  it('records a cheque payment through the form: 0 is refused beside the field, then the invoice is paid and the balance drops', async () => {
    const { documents } = world.server.services;
    const before = (await documents.getBalance(provider, bluebirdId)).balance;
    const paymentsBefore = await paymentDocs(bluebirdId);
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto(`/console/accounts/${bluebirdId}`);
      expect(await page.textContent('#balance')).to.equal(usd(before));
      expect(await page.textContent('#account-documents')).to.contain(invoice.number);

      await page.goto(`/console/invoices/${invoice.documentId}`);
      expect(await page.inputValue('#record-payment input[name=amount]')).to.equal('24.74');
      await page.fill('#record-payment input[name=amount]', '0');
      await page.selectOption('#record-payment select[name=method]', 'check');
      await page.click('#record-payment button[type=submit]');
      expect(await page.textContent('#record-payment label:has(input[name=amount]) .field-error')).to.contain('more than 0');
      expect(await page.textContent('#doc-status')).to.equal('open');
      expect(await paymentDocs(bluebirdId)).to.equal(paymentsBefore);

      await page.fill('#record-payment input[name=amount]', '24.74');
      await page.selectOption('#record-payment select[name=method]', 'check');
      await page.fill('#record-payment input[name=reference]', 'CHQ-1001');
      await Promise.all([page.waitForURL((u) => u.pathname === `/console/invoices/${invoice.documentId}`), page.click('#record-payment button[type=submit]')]);
      expect(await page.textContent('.flash.ok')).to.contain('recorded').and.contain('is paid');
      expect(await page.textContent('#doc-status')).to.equal('paid');
      expect(await page.textContent('#open-amount')).to.equal(usd(0n));
      expect(await page.locator('#record-payment').count()).to.equal(0);
      const payment = (await world.fresh.db('documents').where({ account_id: bluebirdId, type: 'payment', reference: 'CHQ-1001' }).first('number', 'method', 'total'))!;
      expect(payment.method).to.equal('check');
      expect(await page.textContent('#applied')).to.contain(payment.number).and.contain('24.74 USD');
      expect(await paymentDocs(bluebirdId)).to.equal(paymentsBefore + 1);
      const paymentDocId = (await world.fresh.db('documents').where({ account_id: bluebirdId, type: 'payment', reference: 'CHQ-1001' }).first('id'))!.id;
      const audit = await world.fresh.db('audit_log').where({ operation: 'payment.record', object_id: String(paymentDocId), channel: 'console' }).first('actor_user_id');
      const admin = await world.fresh.db('users').where({ login: 'admin' }).first('id');
      expect(Number(audit.actor_user_id), 'recorded as the console user').to.equal(Number(admin.id));

      const after = (await documents.getBalance(provider, bluebirdId)).balance;
      expect(after).to.equal(before - 2474n);
      await page.goto(`/console/accounts/${bluebirdId}`);
      expect(await page.textContent('#balance')).to.equal(usd(after));
      expect(await page.locator('.flash').count()).to.equal(0); // the message was shown once
    } finally {
      await context.close();
    }
  });

  it('lists the payment by method, and refunds part of it through the form (more than paid is refused beside the field)', async () => {
    const { documents } = world.server.services;
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/payments?method=card');
      expect(await page.textContent('#payments')).to.not.contain('CHQ-1001');
      await page.goto('/console/payments?method=check&status=success');
      expect(await page.textContent('#payments')).to.contain('CHQ-1001').and.contain('cheque').and.contain('24.74 USD');
      await page.click('#payments a:has-text("Bluebird Bakery") >> xpath=ancestor::tr//td[1]/a');
      expect(await page.textContent('#payment-status')).to.equal('success');
      expect(await page.textContent('#refundable')).to.equal('24.74 USD');

      const before = (await documents.getBalance(provider, bluebirdId)).balance;
      await page.fill('#refund-form input[name=amount]', '30.00');
      await page.click('#refund-form button[type=submit]');
      expect(await page.textContent('#refund-form label:has(input[name=amount]) .field-error')).to.contain('At most 24.74 USD');
      expect((await documents.getBalance(provider, bluebirdId)).balance).to.equal(before);

      await page.fill('#refund-form input[name=amount]', '5.00');
      await page.fill('#refund-form input[name=reason]', 'Goodwill');
      await page.click('#refund-form button[type=submit]');
      expect(await page.textContent('.flash.ok')).to.contain('Refund').and.contain('5.00 USD issued');
      expect(await world.fresh.db('audit_log').where({ operation: 'refund.issue', channel: 'console' })).to.have.length(1);
      expect(await page.textContent('#refundable')).to.equal('19.74 USD');
      expect(await page.textContent('#refunds')).to.contain('5.00 USD');
      expect((await documents.getBalance(provider, bluebirdId)).balance).to.equal(before + 500n);

      await page.goto('/console/payments?kind=refund');
      expect(await page.textContent('#payments')).to.contain('Bluebird Bakery').and.contain('5.00 USD');
    } finally {
      await context.close();
    }
  });

  it('records once when the same form is sent twice, and sorts the invoices by the column clicked', async () => {
    const { documents } = world.server.services;
    const second = await documents.issueInvoice(provider, { accountId: bluebirdId, lines: [{ kind: 'recurring', description: 'Mailbox', quantity: '1', unitPrice: 300n, amount: 300n }] });
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto(`/console/invoices/${second.documentId}`);
      const form = { _csrf: (await page.getAttribute('#record-payment input[name=_csrf]', 'value'))!, key: (await page.getAttribute('#record-payment input[name=key]', 'value'))!, amount: '1.00', method: 'cash' };
      const before = await paymentDocs(bluebirdId);
      for (let i = 0; i < 2; i++) {
        const res = await context.request.post(`/console/invoices/${second.documentId}/payments`, { form, maxRedirects: 0 });
        expect(res.status()).to.equal(303);
      }
      expect(await paymentDocs(bluebirdId)).to.equal(before + 1);
      expect((await documents.getDocument(provider, second.documentId)).openAmount).to.equal(second.total - 100n);

      await page.goto(`/console/invoices?account=${bluebirdId}`);
      await page.click('#invoices th a:has-text("Total")');
      const totals = async () => (await page.locator('#invoices tbody tr td:nth-child(5)').allTextContents()).map((t) => Number(t.replace(' USD', '')));
      const up = await totals();
      expect(up).to.deep.equal([...up].sort((a, b) => a - b)).and.have.length(2);
      expect(new URL(page.url()).searchParams.get('account')).to.equal(String(bluebirdId)); // the filter stays
      await page.click('#invoices th a:has-text("Total")');
      expect(await totals()).to.deep.equal([...up].reverse());
    } finally {
      await context.close();
    }
  });

  it('refunds a card payment through its gateway, and shows a payment document’s own page', async () => {
    const { documents } = world.server.services;
    const card = await documents.issueInvoice(provider, { accountId: bluebirdId, lines: [{ kind: 'recurring', description: 'Backup add-on', quantity: '1', unitPrice: 1000n, amount: 1000n }] });
    const paid = await documents.payInvoice(provider, { invoiceId: card.documentId }); // the demo's sandbox test card
    expect(paid.outcome).to.equal('paid');
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/payments?method=card&kind=payment');
      expect(await page.textContent('#payments')).to.contain('11.00 USD').and.contain('sandbox-payments');
      await page.goto(`/console/payments/${paid.paymentId}`);
      expect(await page.textContent('#applied')).to.contain(card.number);
      expect(await page.textContent('section.decide')).to.contain('through sandbox-payments');
      await page.fill('#refund-form input[name=amount]', '11.00');
      await page.click('#refund-form button[type=submit]');
      expect(await page.textContent('.flash.ok')).to.contain('11.00 USD issued');
      expect(await page.textContent('#refundable')).to.equal('0.00 USD');
      expect(await page.locator('#refund-form').count()).to.equal(0); // nothing left to refund
      const refund = await world.fresh.db('payments').where({ parent_payment_id: paid.paymentId, kind: 'refund' }).first('status', 'gateway_instance_id');
      expect(refund.status).to.equal('success');
      expect(refund.gateway_instance_id).to.not.equal(null);

      // The payment document opens on its own page too (the account page links every document there).
      const res = await page.goto(`/console/invoices/${paid.paymentDocumentId!}`);
      expect(res!.status()).to.equal(200);
      expect(await page.textContent('h1')).to.contain('Payment');
      expect(await page.locator('#record-payment').count()).to.equal(0);
    } finally {
      await context.close();
    }
  });

  it('gives a reseller administrator its customers\u2019 invoices, 404 for another reseller\u2019s customer\u2019s, and no payment form on its own', async () => {
    const { documents } = world.server.services;
    const otherPayment = await documents.recordPayment(provider, { accountId: otherCustomerId, amount: 100n, method: 'wire', invoiceId: otherInvoice.documentId });
    const { context, page } = await signedIn('reseller', resellerPassword);
    try {
      await page.goto('/console/invoices');
      const list = await page.textContent('#invoices');
      expect(list).to.contain(invoice.number).and.not.contain('Other Reseller Customer');
      expect((await page.goto(`/console/invoices/${invoice.documentId}`))!.status()).to.equal(200);
      for (const url of [`/console/invoices/${otherInvoice.documentId}`, `/console/invoices/${otherInvoice.documentId}/print`, `/console/payments/${otherPayment.paymentId!}`]) {
        const res = await page.goto(url);
        expect(res!.status(), url).to.equal(404);
        expect(await page.textContent('h1')).to.equal('Not found');
        expect(await page.textContent('body')).to.not.contain('Other Reseller Customer').and.not.contain('Foreign hosting');
      }
      await page.goto('/console/payments');
      expect(await page.textContent('#payments')).to.not.contain('Other Reseller Customer');

      // Its own account's invoice (issued by the provider) shows, but a reseller does not mark it paid itself.
      const own = await page.goto(`/console/invoices/${resellerOwnInvoice.documentId}`);
      expect(own!.status()).to.equal(200);
      expect(await page.locator('#record-payment').count()).to.equal(0);
      const csrf = await page.getAttribute('input[name=_csrf]', 'value');
      const forced = await context.request.post(`/console/invoices/${resellerOwnInvoice.documentId}/payments`, { form: { _csrf: csrf!, amount: '99.00', method: 'cash', key: 'forced-1' }, maxRedirects: 0 });
      expect(forced.status()).to.equal(422);
      expect(await forced.text()).to.contain('its vendor records its payments');
      expect(await paymentDocs(resellerId)).to.equal(0);
      expect((await documents.getDocument(provider, resellerOwnInvoice.documentId)).status).to.equal('open');
    } finally {
      await context.close();
    }
  });
});
