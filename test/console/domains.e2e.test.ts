import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import { toNumber } from '../../src/db/knex';
import { ADMIN_PASSWORD, accountWithApiUser, registeredDomain, startApiWorld, type ApiWorld } from '../helpers/api';
import { consoleSignIn, launchChromium } from '../helpers/console';
import { dialect } from '../helpers/db';

const SCRIPT_COMPANY = '<script>alert("pwned")</script> Corp';

/** The console's domain pages in headless Chromium against a real server with the demo seed. */
describe(`the console\u2019s domains in a real browser (demo seed, real server, headless Chromium, ${dialect})`, function () {
  this.timeout(90_000);
  let world: ApiWorld;
  let browser: Browser;
  let resellerPassword: string;
  let bluebirdId: number;
  let bluebirdDomain: number;
  let pendingDomain: number;
  let otherDomain: number;

  before(async () => {
    world = await startApiWorld({ demo: true });
    resellerPassword = world.server.seed.logins.find((l) => l.login === 'reseller')!.password;
    bluebirdId = (await world.fresh.db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id;
    const other = await accountWithApiUser(world, 'reseller', 'Other Reseller');
    const scriptCustomer = await accountWithApiUser(world, 'customer', SCRIPT_COMPANY, other.accountId);
    bluebirdDomain = await registeredDomain(world, bluebirdId, 'bluebird-bakery-console.com', { nameservers: ['ns1.bluebird.example', 'ns2.bluebird.example'] });
    pendingDomain = await registeredDomain(world, bluebirdId, 'bluebird-pending-console.net', { status: 'pending' });
    otherDomain = await registeredDomain(world, scriptCustomer.accountId, 'other-reseller-console.org');
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await world?.close();
  });

  const signedIn = (login: string, password: string) => consoleSignIn(browser, world.url, login, password);

  const autoRenewOf = async (id: number) => Boolean(toNumber(((await world.fresh.db('domains').where({ id }).first('auto_renew')) as { auto_renew: unknown }).auto_renew));
  const auditOf = async (id: number) =>
    (await world.fresh.db('audit_log').where({ operation: 'SetDomainAutoRenew', object_type: 'domain', object_id: String(id) }).orderBy('id').select('channel', 'outcome', 'details', 'actor_user_id')) as {
      channel: string;
      outcome: string;
      details: string;
      actor_user_id: unknown;
    }[];

  it('lists the domains, filters them by name and status, opens one and switches its auto-renew off (audited); a pending one is refused with the service\u2019s message', async () => {
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await Promise.all([page.waitForURL((u) => u.pathname === '/console/domains'), page.click('nav.side a:has-text("Domains")')]);
      expect(await page.textContent('h1')).to.equal('Domains');
      const all = await page.textContent('#domains');
      expect(all).to.contain('bluebird-bakery-console.com').and.contain('bluebird-pending-console.net').and.contain('other-reseller-console.org').and.contain('Bluebird Bakery');

      // Sorted by name (the default), reversed by clicking its header.
      const names = async () => (await page.locator('#domains tbody tr td:first-child').allTextContents()).map((t) => t.trim());
      const ascending = await names();
      expect(ascending).to.have.length(3).and.deep.equal([...ascending].sort());
      await page.click('#domains th a:has-text("Name")');
      expect(await names()).to.deep.equal([...ascending].reverse());

      await page.fill('.filters input[name=q]', 'BAKERY-console');
      await Promise.all([page.waitForURL((u) => u.searchParams.get('q') === 'BAKERY-console'), page.click('.filters button[type=submit]')]);
      const filtered = await page.textContent('#domains');
      expect(filtered).to.contain('bluebird-bakery-console.com').and.not.contain('bluebird-pending-console.net').and.not.contain('other-reseller-console.org');
      await page.goto('/console/domains?status=pending');
      expect(await page.textContent('#domains')).to.contain('bluebird-pending-console.net').and.not.contain('bluebird-bakery-console.com');
      // A LIKE wildcard typed is a character, not "anything".
      await page.goto('/console/domains?q=%25');
      expect(await page.textContent('#domains')).to.contain('No domain matches');

      await page.goto('/console/domains?q=bakery');
      await Promise.all([page.waitForURL((u) => u.pathname === `/console/domains/${bluebirdDomain}`), page.click('a:has-text("bluebird-bakery-console.com")')]);
      expect(await page.textContent('h1')).to.contain('bluebird-bakery-console.com');
      expect(await page.textContent('#domain-status')).to.equal('active');
      expect(await page.getAttribute('#account-link', 'href')).to.equal(`/console/accounts/${bluebirdId}`);
      expect(await page.textContent('#account-link')).to.equal('Bluebird Bakery');
      expect(await page.textContent('#nameservers')).to.equal('ns1.bluebird.example, ns2.bluebird.example');
      expect(await page.textContent('body')).to.contain('sandbox-registrar');
      const expires = (await world.fresh.db('domains').where({ id: bluebirdDomain }).first('expires_at')) as { expires_at: unknown };
      expect(await page.textContent('#expires')).to.equal(new Date(toNumber(expires.expires_at)).toISOString().slice(0, 16).replace('T', ' '));
      expect(await page.textContent('#auto-renew')).to.equal('on');
      expect(await autoRenewOf(bluebirdDomain)).to.equal(true);

      await Promise.all([page.waitForURL((u) => u.pathname === `/console/domains/${bluebirdDomain}`), page.click('#auto-renew-form button:has-text("Switch auto-renew off")')]);
      expect(await page.textContent('.flash.ok')).to.contain('Auto-renew of bluebird-bakery-console.com is off');
      expect(await page.textContent('#auto-renew')).to.equal('off');
      expect(await autoRenewOf(bluebirdDomain)).to.equal(false);
      const audit = await auditOf(bluebirdDomain);
      expect(audit).to.have.length(1);
      expect(audit[0]).to.include({ channel: 'console', outcome: 'ok' });
      expect(audit[0].actor_user_id).to.not.equal(null);
      expect(JSON.parse(audit[0].details)).to.include({ name: 'bluebird-bakery-console.com', autoRenew: false });
      const events = await world.fresh.db('events').where({ name: 'domain.auto_renew_changed', object_id: String(bluebirdDomain) }).select('payload');
      expect(events.map((e: { payload: string }) => JSON.parse(e.payload))).to.deep.equal([{ domainId: bluebirdDomain, name: 'bluebird-bakery-console.com', autoRenew: false }]);
      // Its history links to the audit record written.
      await page.click('a:has-text("its audit records")');
      expect(await page.textContent('table')).to.contain('SetDomainAutoRenew');

      // The account page lists its domains, each linked.
      await page.goto(`/console/accounts/${bluebirdId}`);
      expect(await page.textContent('#account-domains')).to.contain('bluebird-bakery-console.com').and.contain('bluebird-pending-console.net');
      expect(await page.getAttribute('#account-domains a:has-text("bluebird-bakery-console.com")', 'href')).to.equal(`/console/domains/${bluebirdDomain}`);

      // A pending domain's auto-renew is refused with the service's message, nothing written.
      await page.goto(`/console/domains/${pendingDomain}`);
      const [refused] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('#auto-renew-form button[type=submit]')]);
      expect(refused.status()).to.equal(422);
      expect(await page.textContent('.flash.error')).to.contain('bluebird-pending-console.net is pending: auto-renew can be changed only on an active domain');
      expect(await autoRenewOf(pendingDomain)).to.equal(true);
      expect(await auditOf(pendingDomain)).to.have.length(0);

      // Without the session's CSRF token the form is refused and nothing changes.
      const forged = await page.request.post(`/console/domains/${pendingDomain}/auto-renew`, { form: { autoRenew: 'on' }, maxRedirects: 0 });
      expect(forged.status()).to.equal(403);
      await page.goto(`/console/domains/${bluebirdDomain}`);
      const csrf = await page.getAttribute('#auto-renew-form input[name=_csrf]', 'value');
      const forgedOn = await page.request.post(`/console/domains/${bluebirdDomain}/auto-renew`, { form: { autoRenew: 'on', _csrf: 'x'.repeat(csrf!.length) }, maxRedirects: 0 });
      expect(forgedOn.status()).to.equal(403);
      expect(await autoRenewOf(bluebirdDomain)).to.equal(false);
    } finally {
      await context.close();
    }
  });

  it('escapes an account\u2019s company name on the domain pages', async () => {
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/domains?q=other-reseller');
      expect(await page.textContent('#domains')).to.contain(SCRIPT_COMPANY);
      expect(await page.content()).to.contain('&lt;script&gt;alert("pwned")&lt;/script&gt; Corp');
      expect(await page.locator('main script').count()).to.equal(0);
      await page.goto(`/console/domains/${otherDomain}`);
      expect(await page.textContent('#account-link')).to.equal(SCRIPT_COMPANY);
      expect(await page.content()).to.contain('&lt;script&gt;alert("pwned")&lt;/script&gt; Corp');
      expect(await page.locator('script').count()).to.equal(0);
    } finally {
      await context.close();
    }
  });

  it('shows a reseller administrator its customers\u2019 domains only: another reseller\u2019s is not listed and is 404 by URL, its form too', async () => {
    const { context, page } = await signedIn('reseller', resellerPassword);
    try {
      await page.goto('/console/domains');
      const list = await page.textContent('#domains');
      expect(list).to.contain('bluebird-bakery-console.com').and.not.contain('other-reseller-console.org').and.not.contain('Corp');
      await page.goto('/console/domains?q=other-reseller');
      expect(await page.textContent('#domains')).to.contain('No domain matches');

      const own = await page.goto(`/console/domains/${bluebirdDomain}`);
      expect(own!.status()).to.equal(200);
      const csrf = await page.getAttribute('#auto-renew-form input[name=_csrf]', 'value');
      const res = await page.goto(`/console/domains/${otherDomain}`);
      expect(res!.status()).to.equal(404);
      expect(await page.textContent('h1')).to.equal('Not found');
      expect(await page.textContent('body')).to.not.contain('other-reseller-console.org');
      const posted = await page.request.post(`/console/domains/${otherDomain}/auto-renew`, { form: { autoRenew: 'off', _csrf: csrf! }, maxRedirects: 0 });
      expect(posted.status()).to.equal(404);
      expect(await autoRenewOf(otherDomain)).to.equal(true);
      expect(await auditOf(otherDomain)).to.have.length(0);
    } finally {
      await context.close();
    }
  });
});
