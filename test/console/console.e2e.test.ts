import { expect } from 'chai';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { Actor } from '../../src/context';
import { ADMIN_PASSWORD, accountWithApiUser, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { eventually } from '../helpers/assertions';

const CHROMIUM = '/usr/bin/chromium';

describe('the operators\u2019 console in a real browser (demo seed, real server, headless Chromium)', function () {
  this.timeout(90_000);
  let world: ApiWorld;
  let browser: Browser;
  let provider: Actor;
  let resellerPassword: string;
  let customerPassword: string;
  let bluebirdId: number;
  let otherCustomerId: number;

  before(async () => {
    world = await startApiWorld({ demo: true });
    provider = await providerActor(world);
    resellerPassword = world.server.seed.logins.find((l) => l.login === 'reseller')!.password;
    customerPassword = world.server.seed.logins.find((l) => l.login === 'customer')!.password;
    bluebirdId = (await world.fresh.db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id;
    const other = await accountWithApiUser(world, 'reseller', 'Other Reseller');
    otherCustomerId = (await accountWithApiUser(world, 'customer', 'Other Reseller Customer', other.accountId)).accountId;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox'] });
  });
  after(async () => {
    await browser?.close();
    await world?.close();
  });

  async function signedIn(login: string, password: string): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ baseURL: world.url, viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto('/console');
    expect(new URL(page.url()).pathname).to.equal('/console/login');
    await page.fill('input[name=login]', login);
    await page.fill('input[name=password]', password);
    await Promise.all([page.waitForURL((u) => u.pathname === '/console'), page.click('button[type=submit]')]);
    return { context, page };
  }

  it('signs the provider administrator in with an HttpOnly SameSite=Lax session cookie, and signs out for good', async () => {
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      expect(await page.textContent('h1')).to.equal('Dashboard');
      const cookie = (await context.cookies()).find((c) => c.name === 'hw_console')!;
      expect(cookie).to.include({ httpOnly: true, sameSite: 'Lax' });
      expect(cookie.value).to.match(/^[A-Za-z0-9_-]{43}$/); // 256 random bits
      expect(await world.fresh.db('console_sessions').count({ n: '*' }).first()).to.satisfy((r: { n: unknown }) => Number(r.n) >= 1);
      await Promise.all([page.waitForURL((u) => u.pathname === '/console/login'), page.click('button:has-text("Sign out")')]);
      expect(await page.textContent('.flash')).to.contain('You have signed out');
      // The old cookie no longer opens anything, even sent by hand.
      const replay = await context.request.get('/console/accounts', { headers: { cookie: `hw_console=${cookie.value}` }, maxRedirects: 0 });
      expect(replay.status()).to.equal(302);
      expect(replay.headers().location).to.match(/^\/console\/login/);
    } finally {
      await context.close();
    }
  });

  it('refuses a wrong password (counted towards the lockout) and a customer user, however right its password', async () => {
    const context = await browser.newContext({ baseURL: world.url });
    const page = await context.newPage();
    try {
      await page.goto('/console/login');
      await page.fill('input[name=login]', 'admin');
      await page.fill('input[name=password]', 'not-the-password');
      await page.click('button[type=submit]');
      expect(await page.textContent('.flash.error')).to.contain('wrong');
      // One failure, counted by its three counters: admin from this address, this address, admin from anywhere.
      const counters = (await world.fresh.db('auth_failures').select('credential', 'failures')) as { credential: string; failures: number }[];
      expect(counters.map((c) => [c.credential.split(':')[0], Number(c.failures)]).sort()).to.deep.equal([['a', 1], ['l', 1], ['la', 1]]);
      await page.fill('input[name=login]', 'customer');
      await page.fill('input[name=password]', customerPassword);
      await page.click('button[type=submit]');
      expect(await page.textContent('.flash.error')).to.contain('administrators of the provider and of resellers');
      expect(new URL(page.url()).pathname).to.equal('/console/login');
    } finally {
      await context.close();
    }
  });

  it('approves a suspect order (fraud threshold set in the console) and the order is provisioned', async () => {
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      // Configure the demo fraud screen through its settings form: any order above 1.00 USD is suspect.
      const fraudId = (await world.fresh.db('plugin_instances').where({ name: 'fraud-rules' }).first('id')).id;
      await page.goto(`/console/plugins/${fraudId}`);
      await page.fill('textarea[name="s.amountThreshold"]', '{"amount": "100", "currency": "USD"}');
      await page.click('#settings-form button[type=submit]');
      expect(await page.textContent('.flash.ok')).to.contain('saved');

      const plan = await world.fresh.db('plans').where({ name: 'Shared Hosting Basic' }).first('id');
      const period = await world.fresh.db('plan_periods').where({ plan_id: plan.id, duration: 1, unit: 'month' }).first('id');
      const order = await world.server.services.orders.place(provider, { accountId: bluebirdId, items: [{ planId: plan.id, periodId: period.id, parameters: { domain: 'suspect-bakery.example' } }] });
      await eventually(async () => ((await world.fresh.db('orders').where({ id: order.orderId }).first('status')).status === 'WA' ? true : undefined), 'the order to wait for approval');

      await page.goto('/console/orders?status=WA');
      await page.click(`a:has-text("${order.orderNumber}")`);
      expect(await page.textContent('#order-status')).to.equal('waiting for approval');
      expect(await page.textContent('body')).to.contain('suspect');
      await Promise.all([page.waitForURL((u) => u.pathname === `/console/orders/${order.orderId}`), page.click('button:has-text("Approve")')]);
      expect(await page.textContent('.flash.ok')).to.contain('approved');

      await eventually(async () => ((await world.fresh.db('orders').where({ id: order.orderId }).first('status')).status === 'CP' ? true : undefined), 'the order to complete');
      await page.reload();
      expect(await page.textContent('#order-status')).to.equal('completed');
      const history = await page.textContent('#history');
      expect(history).to.contain('wait_for_approval').and.contain('approved').and.contain('provision_services');
      const sub = await world.fresh.db('subscriptions').where({ order_id: order.orderId }).first();
      expect(Number(sub.service_status)).to.equal(50); // running
      await page.click(`a[href="/console/subscriptions/${sub.id}"]`);
      expect(await page.textContent('#service-status')).to.contain('running');

      // Resume is refused while it runs, with the service's reason; suspend and resume then go through the gate.
      await page.click('button:has-text("Resume")');
      expect(await page.textContent('.flash.error')).to.contain('cannot be resumed');
      const statusOf = async () => Number((await world.fresh.db('subscriptions').where({ id: sub.id }).first('status')).status);
      await page.click('button:has-text("Suspend")');
      expect(await page.textContent('.flash.ok')).to.contain('queued as task');
      await eventually(async () => ((await statusOf()) === 80 ? true : undefined), 'the subscription to be suspended');
      await page.reload();
      expect(await page.textContent('#sub-status')).to.equal('suspended');
      await page.click('button:has-text("Resume")');
      await eventually(async () => ((await statusOf()) === 30 ? true : undefined), 'the subscription to be active again');
      const admin = await world.fresh.db('users').where({ login: 'admin' }).first('id');
      const audit = await world.fresh.db('audit_log').where({ object_type: 'order', object_id: String(order.orderId), channel: 'console' }).first('actor_user_id', 'details');
      expect(Number(audit.actor_user_id), 'the approval is audited as the console user').to.equal(Number(admin.id));
      expect(JSON.parse(audit.details)).to.include({ outcome: 'approved' });
    } finally {
      await context.close();
    }
  });

  it('shows on the dashboard this month\u2019s revenue from the successful payments, and the subscriptions by status', async () => {
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      const rows = await world.fresh.db('payments').where({ status: 'success', kind: 'purchase' }).select('amount');
      const cents = rows.reduce((sum: bigint, r: { amount: unknown }) => sum + BigInt(String(r.amount)), 0n);
      expect(cents > 0n, 'the approved order was paid').to.equal(true);
      const text = await page.textContent('.tiles');
      expect(text).to.contain(`${cents / 100n}.${String(cents % 100n).padStart(2, '0')} USD`);
      const active = await world.fresh.db('subscriptions').where({ status: 30 }).count({ n: '*' }).first();
      expect(text).to.match(new RegExp(`active\\s*${Number(active!.n)}`));
    } finally {
      await context.close();
    }
  });

  it('creates a plan, shows a field error beside the period field, adds a period, publishes it, and the plan is sellable', async () => {
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/catalog');
      await page.click('a:has-text("New plan")');
      const template = await world.fresh.db('service_templates').where({ name: 'Shared Hosting' }).first('id');
      await page.selectOption('select[name=templateId]', String(template.id));
      await page.fill('input[name=name]', 'Console Starter');
      await page.fill('input[name=category]', 'Web Hosting');
      await page.check('input[name=resellable]');
      await page.click('button:has-text("Create plan")');
      expect(await page.textContent('#sellable')).to.equal('not sellable');
      const planId = Number(new URL(page.url()).pathname.split('/').pop());

      await page.fill('#period-form input[name=duration]', '0');
      await page.fill('#period-form input[name=recurringFee]', '2.99');
      await page.click('button:has-text("Add period")');
      const fieldError = page.locator('#period-form label:has(input[name=duration]) .field-error');
      expect(await fieldError.count()).to.equal(1);
      expect(await world.fresh.db('plan_periods').where({ plan_id: planId })).to.have.length(0);

      await page.fill('#period-form input[name=duration]', '1');
      await page.fill('#period-form input[name=recurringFee]', '2.99');
      await page.click('button:has-text("Add period")');
      expect(await page.textContent('.flash.ok')).to.contain('added');
      expect(await page.textContent('#periods')).to.contain('2.99');

      await page.check('#plan-form input[name=published]');
      await page.click('button:has-text("Save plan")');
      expect(await page.textContent('#sellable')).to.equal('sellable');

      // Sellable means the demo customer (below the basic reseller) now finds it in its catalog.
      const customer = (await world.fresh.db('accounts').where({ id: bluebirdId }).first('path')).path as string;
      const asCustomer: Actor = { userId: null, accountId: bluebirdId, accountPath: customer, accountType: 'customer', roles: ['admin'], channel: 'system' };
      const catalog = await world.server.services.catalog.listPlans(asCustomer, { pageSize: 100 });
      const listed = catalog.items.find((p) => p.planId === planId);
      expect(listed?.periods.map((p) => [p.duration, p.unit, p.recurringFee])).to.deep.equal([[1, 'month', 299n]]);
      // The last enabled period of a published plan cannot be disabled: the refusal says why, nothing changes.
      await page.goto(`/console/catalog/plans/${planId}`);
      await page.click('#periods button:has-text("Disable")');
      expect(await page.textContent('.flash.error')).to.contain('unpublish the plan first');
      expect(await world.fresh.db('plan_periods').where({ plan_id: planId, enabled: true })).to.have.length(1);
      await page.fill('#period-form input[name=duration]', '12');
      await page.fill('#period-form input[name=recurringFee]', '29.90');
      await page.click('button:has-text("Add period")');
      await page.locator('#periods tr', { hasText: '12 months' }).locator('button:has-text("Disable")').click();
      expect(await page.textContent('.flash.ok')).to.contain('12-month period is disabled');
      const yearly = await world.fresh.db('plan_periods').where({ plan_id: planId, duration: 12 }).first('enabled', 'recurring_fee');
      expect([Boolean(Number(yearly.enabled)), String(yearly.recurring_fee)]).to.deep.equal([false, '2990']);
      await page.goto('/console/catalog');
      expect(await page.textContent('#sellable-list')).to.contain('Console Starter');
    } finally {
      await context.close();
    }
  });

  it('creates a resource and a service template using it, edits both (a refusal shown beside its field, then fixed), builds a plan on the template; a reseller gets 404 for another reseller\u2019s', async () => {
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/catalog');
      await page.click('#section-tabs a:has-text("Resources")');
      await page.fill('#resource-form input[name=name]', 'Console SSD');
      await page.fill('#resource-form input[name=unit]', 'GB');
      await page.fill('#resource-form input[name=code]', 'console_ssd');
      await page.click('button:has-text("Create resource")');
      expect(await page.textContent('.flash.ok')).to.contain('Console SSD created');
      const resourceId = Number(new URL(page.url()).pathname.split('/').pop());

      // An empty unit is refused beside the unit field, and nothing is saved; then the fix goes through.
      await page.fill('#resource-form input[name=name]', 'Console NVMe');
      await page.fill('#resource-form input[name=unit]', '');
      await page.click('button:has-text("Save resource")');
      expect(await page.textContent('#resource-form label:has(input[name=unit]) .field-error')).to.contain('unit is required');
      expect(await page.inputValue('#resource-form input[name=name]'), 'what was typed is kept').to.equal('Console NVMe');
      expect((await world.fresh.db('resources').where({ id: resourceId }).first('name')).name).to.equal('Console SSD');
      await page.fill('#resource-form input[name=unit]', 'TB');
      await page.click('button:has-text("Save resource")');
      expect(await page.textContent('.flash.ok')).to.contain('saved');
      expect(await world.fresh.db('resources').where({ id: resourceId }).first('name', 'unit')).to.deep.equal({ name: 'Console NVMe', unit: 'TB' });
      await page.goto('/console/catalog/resources?q=nvme');
      expect(await page.locator('#resources tbody tr').allTextContents()).to.have.length(1).and.satisfy((rows: string[]) => rows[0].includes('Console NVMe'));

      // A new template with that resource limited to 8 (TB).
      await page.goto('/console/catalog/templates');
      await page.click('a:has-text("New template")');
      await page.fill('#template-form input[name=name]', 'Console VPS');
      await page.fill('#template-form input[name=serviceGate]', 'sandbox');
      await page.check(`#limit-${resourceId} input[type=checkbox]`);
      await page.fill(`#limit-${resourceId} input[name="limit.${resourceId}"]`, '8');
      await page.fill('#param-0 input[name="param.0.name"]', 'host name');
      await page.fill('#param-0 input[name="param.0.title"]', 'Host name');
      await page.click('button:has-text("Create template")');
      // An order parameter's name with a space: refused beside it, the rest of the form as typed.
      expect(await page.textContent('#param-0 .field-error')).to.contain('letters, digits and _ only');
      expect(await page.isChecked(`#limit-${resourceId} input[type=checkbox]`)).to.equal(true);
      expect(await world.fresh.db('service_templates').where({ name: 'Console VPS' })).to.have.length(0);
      await page.fill('#param-0 input[name="param.0.name"]', 'hostname');
      await page.click('button:has-text("Create template")');
      expect(await page.textContent('.flash.ok')).to.contain('template created');
      const templateId = Number(new URL(page.url()).pathname.split('/').pop());
      expect(await page.inputValue(`input[name="limit.${resourceId}"]`)).to.equal('8');
      expect(await world.server.services.catalog.getTemplate(provider, templateId).then((t) => t.parameters)).to.deep.equal([{ name: 'hostname', title: 'Host name', kind: 'string', required: true }]);

      // Build a plan on it from the template's page, with 4 TB included.
      await page.click('#new-plan');
      expect(await page.inputValue('select[name=templateId]')).to.equal(String(templateId));
      await page.fill('input[name=name]', 'Console VPS Small');
      await page.click('button:has-text("Create plan")');
      const planId = Number(new URL(page.url()).pathname.split('/').pop());
      await page.fill('#rate-form input[name=included]', '4');
      await page.click('button:has-text("Set rate")');
      expect(await page.textContent('.flash.ok')).to.contain('rate saved');

      // A negative limit is refused beside that resource's limit (what was typed kept), then fixed.
      await page.goto(`/console/catalog/templates/${templateId}`);
      expect(await page.textContent('#template-plans')).to.contain('Console VPS Small');
      await page.fill('#template-form input[name=name]', 'Console VPS Gen2');
      await page.fill(`input[name="limit.${resourceId}"]`, '-2');
      await page.click('button:has-text("Save template")');
      expect(await page.textContent(`#limit-${resourceId} .field-error`)).to.contain('The limit of Console NVMe must be a number of 0 or more');
      expect(await page.inputValue(`input[name="limit.${resourceId}"]`)).to.equal('-2');
      expect(await page.inputValue('#template-form input[name=name]')).to.equal('Console VPS Gen2');
      expect((await world.fresh.db('service_templates').where({ id: templateId }).first('name')).name).to.equal('Console VPS');
      await page.fill(`input[name="limit.${resourceId}"]`, '16');
      await page.click('button:has-text("Save template")');
      expect(await page.textContent('.flash.ok')).to.contain('template saved');
      expect(await page.textContent('h1')).to.equal('Console VPS Gen2');
      const limit = await world.fresh.db('template_resources').where({ template_id: templateId, resource_id: resourceId }).first('limit_value');
      expect(Number(limit.limit_value)).to.equal(16);
      expect((await world.server.services.catalog.getTemplate(provider, templateId)).parameters.map((p) => p.name), 'the parameters sent back unchanged are kept').to.deep.equal(['hostname']);

      await page.goto('/console/catalog?q=Console+VPS');
      const plans = await page.textContent('table');
      expect(plans).to.contain('Console VPS Small').and.contain('Console VPS Gen2');
      expect(await page.locator(`a[href="/console/catalog/plans/${planId}"]`).count()).to.equal(1);
      const audit = await world.fresh.db('audit_log').where({ operation: 'UpdateServiceTemplate', object_id: String(templateId), channel: 'console' });
      expect(audit).to.have.length(1);

      // The demo reseller neither lists nor opens another reseller's template and resource, nor edits the provider's.
      const otherRow = await world.fresh.db('accounts').where({ company_name: 'Other Reseller' }).first('id', 'path');
      const other: Actor = { userId: null, accountId: otherRow.id, accountPath: otherRow.path, accountType: 'reseller', roles: ['admin'], channel: 'system' };
      const otherResource = await world.server.services.catalog.createResource(other, { name: 'Other Backup', unit: 'GB' });
      const otherTemplate = await world.server.services.catalog.createTemplate(other, { name: 'Other Backup Plan', serviceGate: 'sandbox', resources: [{ resourceId: otherResource, limit: 5 }] });
      const reseller = await signedIn('reseller', resellerPassword);
      try {
        await reseller.page.goto('/console/catalog/templates');
        expect(await reseller.page.textContent('#templates')).to.not.contain('Other Backup').and.not.contain('Console VPS');
        for (const url of [`/console/catalog/templates/${otherTemplate}`, `/console/catalog/resources/${otherResource}`, `/console/catalog/templates/${templateId}`, `/console/catalog/resources/${resourceId}`]) {
          const res = await reseller.page.goto(url);
          expect(res!.status(), url).to.equal(404);
          expect(await reseller.page.textContent('h1')).to.equal('Not found');
        }
      } finally {
        await reseller.context.close();
      }
    } finally {
      await context.close();
    }
  });

  async function failedTask(kind: string): Promise<number> {
    const { tasks } = world.server.services;
    // A queue of its own that no worker serves, so the task stays as the test leaves it.
    const queue = `console-test-${kind}`;
    const id = await tasks.enqueue(world.fresh.db, { kind, queue, accountId: bluebirdId, maxAttempts: 1 });
    // On MariaDB the lease skips rows another worker's transaction has locked just now: try again shortly.
    const leased = await eventually(async () => (await tasks.lease('test-owner', { queues: [queue], limit: 1, leaseMs: 60_000 }))[0], 'the task lease');
    expect(leased.taskId).to.equal(id);
    await tasks.fail(id, 'test-owner', 'the remote panel answered 500', { retryable: false });
    return id;
  }

  it('retries a failed task from the tasks list', async () => {
    const id = await failedTask('console.check');
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/tasks?status=failed');
      const row = page.locator(`#task-${id}`);
      expect(await row.textContent()).to.contain('the remote panel answered 500');
      await row.locator('button:has-text("Retry")').click();
      expect(await page.textContent('.flash.ok')).to.contain(`Task ${id}`);
      const task = await world.fresh.db('tasks').where({ id }).first('status', 'attempts');
      expect(task.status).to.equal('pending');
      expect(Number(task.attempts)).to.equal(1); // kept: the retry is one more attempt, same operation
    } finally {
      await context.close();
    }
  });

  it('refuses a form POSTed without its CSRF token: 403, and nothing changes', async () => {
    const id = await failedTask('console.csrf');
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/tasks?status=failed');
      const form = page.locator(`#task-${id} form[action$="/retry"]`);
      await form.locator('input[name=_csrf]').evaluate((input) => input.remove());
      const [response] = await Promise.all([page.waitForResponse((r) => r.url().endsWith(`/console/tasks/${id}/retry`)), form.locator('button').click()]);
      expect(response.status()).to.equal(403);
      expect(await page.textContent('h1')).to.equal('Form refused');
      // A forged token fares no better.
      const forged = await context.request.post(`/console/tasks/${id}/retry`, { form: { _csrf: 'x'.repeat(43) }, maxRedirects: 0 });
      expect(forged.status()).to.equal(403);
      const task = await world.fresh.db('tasks').where({ id }).first('status');
      expect(task.status).to.equal('failed');
      expect(await world.fresh.db('audit_log').where({ operation: 'RetryTask', object_id: String(id) })).to.have.length(0);
    } finally {
      await context.close();
    }
  });

  it('lets a reseller administrator see its own customer but answers 404 for another reseller\u2019s customer by URL', async () => {
    const { context, page } = await signedIn('reseller', resellerPassword);
    try {
      await page.goto('/console/accounts');
      const list = await page.textContent('table');
      expect(list).to.contain('Bluebird Bakery').and.not.contain('Other Reseller');
      const own = await page.goto(`/console/accounts/${bluebirdId}`);
      expect(own!.status()).to.equal(200);
      const other = await page.goto(`/console/accounts/${otherCustomerId}`);
      expect(other!.status()).to.equal(404);
      expect(await page.textContent('h1')).to.equal('Not found');
      expect(await page.textContent('body')).to.not.contain('Other Reseller Customer');
      // Its customers' orders open, though their workflow is the provider's (shown through the history).
      const order = await world.fresh.db('orders').where({ account_id: bluebirdId }).first('id', 'order_number');
      if (order) {
        const res = await page.goto(`/console/orders/${order.id}`);
        expect(res!.status()).to.equal(200);
        expect(await page.textContent('h1')).to.contain(order.order_number);
      }
    } finally {
      await context.close();
    }
  });

  for (const who of ['admin', 'reseller'] as const) {
    it(`opens every section of the navigation for the ${who === 'admin' ? 'provider' : 'reseller'} administrator`, async () => {
      const { context, page } = await signedIn(who, who === 'admin' ? ADMIN_PASSWORD : resellerPassword);
      try {
        const links = await Promise.all((await page.locator('nav.side a').all()).map(async (a) => (await a.getAttribute('href'))!));
        expect(links).to.have.length(14);
        for (const href of links) {
          const res = await page.goto(href);
          expect(res!.status(), href).to.equal(200);
          expect(await page.locator('nav.side a[aria-current="page"]').getAttribute('href'), href).to.equal(href);
        }
        for (const [p, h1] of [['/console/invoices', 'Invoices'], ['/console/payments', 'Payments'], ['/console/events', 'Events'], ['/console/notifications', 'Notification templates']]) {
          await page.goto(p);
          expect(await page.textContent('h1')).to.equal(h1);
          expect(await page.locator('.placeholder').count()).to.equal(0);
        }
      } finally {
        await context.close();
      }
    });
  }

  it('sorts a list by the column clicked, both ways, keeping its filters', async () => {
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/accounts?type=customer');
      await page.click('th a:has-text("No.")');
      const ids = async () => (await page.locator('tbody tr td.num').allTextContents()).map(Number);
      const ascending = await ids();
      expect(ascending.length).to.be.greaterThan(1);
      expect(ascending).to.deep.equal([...ascending].sort((a, b) => a - b));
      expect(new URL(page.url()).searchParams.get('type')).to.equal('customer');
      await page.click('th a:has-text("No.")');
      expect(await ids()).to.deep.equal([...ascending].reverse());
      const customers = await world.fresh.db('accounts').where({ type: 'customer' }).count({ n: '*' }).first();
      expect(ascending).to.have.length(Number(customers!.n));
    } finally {
      await context.close();
    }
  });

  it('keeps a workflow definition only when it is valid, naming the field at fault otherwise', async () => {
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      const before = await world.fresh.db('workflows').where({ order_type: 'renewal' }).count({ n: '*' }).first();
      await page.goto('/console/workflows');
      await page.click('a[href="/console/workflows/define?type=renewal"]');
      const text = await page.inputValue('textarea[name=definition]');
      await page.fill('textarea[name=definition]', text.replace('"success": "provision_changes"', '"success": "nowhere"'));
      await page.click('button:has-text("Validate and save")');
      expect(await page.textContent('.field-error')).to.contain('definition.steps.charge_card.next.success').and.contain("'nowhere' is not a step");
      expect(await world.fresh.db('workflows').where({ order_type: 'renewal' }).count({ n: '*' }).first()).to.deep.equal(before);
      await page.fill('textarea[name=definition]', text.replace('"approved": "provision_changes"', '"approved": "reject_order"'));
      await page.click('button:has-text("Validate and save")');
      expect(await page.textContent('.flash.ok')).to.contain('is now active for new orders');
      const active = await world.fresh.db('workflows').where({ order_type: 'renewal', active: true }).first('definition');
      expect(JSON.parse(active.definition).steps.wait_for_approval.next.approved).to.equal('reject_order');
    } finally {
      await context.close();
    }
  });

  it('never shows a plugin secret back, and keeps it when the settings form is saved with the field empty', async () => {
    const secret = 'console-secret-0123456789abcdef';
    const id = await world.server.services.pluginInstances.create(provider, { kind: 'provisioning', plugin: 'webhook', name: 'panel-hook', settings: { url: 'http://127.0.0.1:9/hook', secret } });
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto(`/console/plugins/${id}`);
      expect(await page.content()).to.not.contain(secret);
      await page.fill('input[name="s.timeoutMs"]', '2500');
      await page.click('#settings-form button[type=submit]');
      expect(await page.textContent('.flash.ok')).to.contain('saved');
      expect(await page.content()).to.not.contain(secret);
      const row = await world.fresh.db('plugin_instances').where({ id }).first('settings', 'secrets_enc');
      expect(JSON.parse(row.settings)).to.include({ timeoutMs: 2500 });
      expect(JSON.parse(world.server.services.deps.secrets.open(row.secrets_enc))).to.deep.equal({ secret });
      await page.click('button:has-text("Test connection")');
      expect(await page.textContent('.flash')).to.match(/Connection test/);
    } finally {
      await context.close();
    }
  });
});
