import { expect } from 'chai';
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { ManualClock } from '../../src/clock';
import type { Actor } from '../../src/context';
import { ADMIN_PASSWORD, accountWithApiUser, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { consoleSignIn, launchChromium } from '../helpers/console';
import { eventually } from '../helpers/assertions';
import { execute, ok } from '../api/xmlrpc/client';

const SECRET = 'console-whsec-0123456789abcdef';

/** A webhook receiver outside our walls: answers 500 while `failing`, verifies every signature as docs/events.md shows. */
interface Receiver {
  url: string;
  failing: boolean;
  got: { event: { id: number; name: string; objectId: string }; verified: boolean; status: number }[];
  close(): Promise<void>;
}

async function receiver(): Promise<Receiver> {
  const r = { url: '', failing: true, got: [] } as unknown as Receiver;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const parts = Object.fromEntries(String(req.headers['x-hostwright-signature'] ?? '').split(',').map((kv) => kv.split('=') as [string, string]));
      const expected = crypto.createHmac('sha256', SECRET).update(`${parts.t}.${body}`).digest('hex');
      const given = Buffer.from(parts.v1 ?? '', 'hex');
      const verified = given.length === 32 && crypto.timingSafeEqual(given, Buffer.from(expected, 'hex'));
      const status = r.failing ? 500 : verified ? 200 : 401;
      r.got.push({ event: JSON.parse(body) as Receiver['got'][number]['event'], verified, status });
      res.statusCode = status;
      res.end(status === 500 ? 'receiver is down for maintenance' : 'ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  r.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return r;
}

describe('the console\u2019s event pages in a real browser: events, deliveries, actions, templates, mail spool, schedules', function () {
  this.timeout(120_000);
  let world: ApiWorld;
  let clock: ManualClock;
  let browser: Browser;
  let hook: Receiver;
  let provider: Actor;
  let resellerPassword: string;
  let webhookId: number;

  before(async () => {
    clock = new ManualClock(new Date());
    world = await startApiWorld({ demo: true, clock });
    provider = await providerActor(world);
    resellerPassword = world.server.seed.logins.find((l) => l.login === 'reseller')!.password;
    hook = await receiver();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await hook?.close();
    await world?.close();
  });

  const signedIn = (login: string, password: string) => consoleSignIn(browser, world.url, login, password);

  const task = async (id: number) => {
    const t = await world.fresh.db('tasks').where({ id }).first('status', 'attempts', 'last_error');
    return { status: String(t.status), attempts: Number(t.attempts), lastError: (t.last_error as string | null) ?? null };
  };

  it('creates a webhook action (a refused secret beside its field first); its failed delivery shows the last error; Retry delivers it', async () => {
    let { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/events');
      await page.click('#section-tabs a:has-text("Actions")');
      await page.click('a:has-text("New webhook")');
      await page.fill('input[name=name]', 'CRM hook');
      await page.fill('input[name=eventPattern]', 'account.created');
      await page.fill('input[name=url]', hook.url);
      await page.fill('input[name=secret]', 'too-short');
      await page.click('button:has-text("Create action")');
      expect(await page.textContent('#action-form label:has(input[name=secret]) .field-error')).to.contain('at least 16 characters');
      expect(await page.inputValue('input[name=secret]'), 'a typed secret is not sent back either').to.equal('');
      expect(await page.inputValue('input[name=url]')).to.equal(hook.url);
      expect(await world.fresh.db('event_actions').where({ name: 'CRM hook' })).to.have.length(0);

      await page.fill('input[name=secret]', SECRET);
      await page.click('button:has-text("Create action")');
      expect(await page.textContent('.flash.ok')).to.contain('CRM hook');
      webhookId = Number(new URL(page.url()).pathname.split('/').pop());
      expect(await page.content()).to.not.contain(SECRET);
      expect(await page.getAttribute('input[name=secret]', 'placeholder')).to.contain('kept');

      // An event the action matches: the receiver is down, so the delivery fails with its answer as last error.
      const customer = await accountWithApiUser(world, 'customer', 'Hooked Customer');
      const delivery = await eventually(async () => {
        const d = await world.fresh.db('event_deliveries as d').join('events as e', 'e.id', 'd.event_id').where({ 'd.action_id': webhookId, 'e.object_id': String(customer.accountId), 'e.name': 'account.created' }).first('d.task_id', 'd.event_id');
        return d ? { taskId: Number(d.task_id), eventId: Number(d.event_id) } : undefined;
      }, 'the delivery');
      await eventually(async () => ((await task(delivery.taskId)).attempts >= 1 && (await task(delivery.taskId)).status === 'pending' ? true : undefined), 'the first attempt');
      await page.goto(`/console/events/deliveries?action=${webhookId}`);
      const row = page.locator(`#deliveries tr:has(a[href="/console/events/${delivery.eventId}"])`);
      expect(await row.textContent()).to.contain('HTTP 500').and.contain('receiver is down for maintenance').and.contain('pending');
      expect(await row.locator('button:has-text("Retry")').count(), 'no Retry while attempts are left').to.equal(0);

      // Time passes (the backoff is on the server's clock) until every attempt is used up.
      for (let i = 0; i < 20 && (await task(delivery.taskId)).status !== 'failed'; i++) {
        const before = (await task(delivery.taskId)).attempts;
        clock.advance(2 * 3_600_000);
        await eventually(async () => {
          const t = await task(delivery.taskId);
          return t.status === 'failed' || (t.attempts > before && t.status === 'pending') ? true : undefined;
        }, 'the next attempt');
      }
      const failed = await task(delivery.taskId);
      expect(failed).to.include({ status: 'failed', attempts: 10 });
      expect(hook.got.filter((g) => g.event.id === delivery.eventId)).to.have.length(10);
      expect(hook.got.every((g) => g.verified), 'every attempt was signed').to.equal(true);
      await context.close();

      // The session has ended meanwhile (the clock moved a day); sign in again and retry with the receiver back up.
      hook.failing = false;
      ({ context, page } = await signedIn('admin', ADMIN_PASSWORD));
      await page.goto('/console/events/deliveries?status=failed');
      const failedRow = page.locator(`#deliveries tr:has(a[href="/console/events/${delivery.eventId}"])`);
      expect(await failedRow.textContent()).to.contain('failed').and.contain('10/10').and.contain('HTTP 500');
      await failedRow.locator('details summary').click();
      expect(await failedRow.locator('ol.attempts li').count()).to.equal(10);
      await failedRow.locator('button:has-text("Retry")').click();
      expect(await page.textContent('.flash.ok')).to.contain(`event ${delivery.eventId}`).and.contain('CRM hook');
      expect(new URL(page.url()).searchParams.get('status'), 'back to the filtered list').to.equal('failed');
      await eventually(async () => ((await task(delivery.taskId)).status === 'done' ? true : undefined), 'the retried delivery to be done');
      const ok = hook.got.filter((g) => g.event.id === delivery.eventId && g.status === 200);
      expect(ok).to.have.length(1);
      expect(ok[0].event).to.include({ name: 'account.created', objectId: String(customer.accountId) });
      expect(ok[0].verified).to.equal(true);

      // The event's page: its payload, and its delivery, now done.
      await page.goto(`/console/events?name=account.*&objectId=${customer.accountId}`);
      await page.click(`#events a[href="/console/events/${delivery.eventId}"] >> nth=0`);
      expect(await page.textContent('#payload')).to.contain(`"accountId": ${customer.accountId}`);
      const done = page.locator('#deliveries tbody tr', { hasText: 'CRM hook' });
      expect(await done.textContent()).to.contain('done');
      expect(await task(delivery.taskId)).to.include({ status: 'done', attempts: 11 }); // the retry was one more attempt
      const audit = await world.fresh.db('audit_log').where({ operation: 'RetryTask', object_id: String(delivery.taskId), channel: 'console' });
      expect(audit).to.have.length(1);
    } finally {
      await context.close();
    }
  });

  it('refuses an event name filter that is no name, beside the field', async () => {
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/events?name=Not%20An%20Event');
      expect(await page.textContent('form.filters .field-error')).to.contain('must be an event name');
      expect(await page.textContent('#events tbody')).to.contain('No event matches');
    } finally {
      await context.close();
    }
  });

  it('edits a template: a syntax error is shown beside the field and nothing is kept; a good one becomes the provider\u2019s own and the reseller\u2019s inherited one', async () => {
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/notifications');
      const row = page.locator('#template-order-placed-en');
      expect(await row.locator('.source').textContent()).to.contain('built-in');
      await row.locator('a:has-text("Make your own")').click();
      expect(await page.inputValue('input[name=subject]')).to.contain('payload.orderNumber'); // starts from the built-in text
      await page.fill('textarea[name=html]', '<p>Order {{ payload.orderNumber </p>{% if %}');
      await page.click('button:has-text("Create template")');
      expect(await page.textContent('#template-form label:has(textarea[name=html]) .field-error')).to.contain('html is not a valid template');
      expect(await page.inputValue('textarea[name=html]'), 'the text typed is kept for fixing').to.contain('{% if %}');
      expect(await world.fresh.db('notification_templates').where({ name: 'order.placed' })).to.have.length(0);

      await page.fill('textarea[name=html]', '<p>Thank you for order {{ payload.orderNumber }}, {{ account.companyName }}.</p>');
      await page.click('button:has-text("Create template")');
      expect(await page.textContent('.flash.ok')).to.contain('order.placed');
      // Editing it: the same check on save.
      await page.fill('input[name=subject]', 'Order {{ payload.orderNumber');
      await page.click('button:has-text("Save template")');
      expect(await page.textContent('#template-form label:has(input[name=subject]) .field-error')).to.contain('subject is not a valid template');
      expect((await world.fresh.db('notification_templates').where({ name: 'order.placed' }).first('subject')).subject, 'the kept subject is unchanged').to.equal('Order {{ payload.orderNumber }} received');
      await page.goto('/console/notifications');
      expect(await page.locator('#template-order-placed-en .source').textContent()).to.contain('own');
    } finally {
      await context.close();
    }
    const reseller = await signedIn('reseller', resellerPassword);
    try {
      await reseller.page.goto('/console/notifications');
      const source = await reseller.page.locator('#template-order-placed-en .source').textContent();
      expect(source).to.contain('inherited');
      await reseller.page.locator('#template-order-placed-en a:has-text("Make your own")').click();
      expect(await reseller.page.inputValue('textarea[name=html]')).to.contain('Thank you for order');
      await reseller.page.click('button:has-text("Create template")');
      expect(await reseller.page.textContent('.flash.ok')).to.contain('order.placed');
      const resellerId = (await world.fresh.db('users').where({ login: 'reseller' }).first('account_id')).account_id;
      expect(await world.fresh.db('notification_templates').where({ name: 'order.placed', vendor_id: resellerId })).to.have.length(1);
      await reseller.page.goto('/console/notifications');
      expect(await reseller.page.locator('#template-order-placed-en .source').textContent()).to.contain('own');
    } finally {
      await reseller.context.close();
    }
  });

  it('shows a spooled mail: the HTML in a sandboxed frame with the customer\u2019s text escaped, and the text part', async () => {
    await world.server.services.notifications.createTemplate(provider, {
      name: 'account.created',
      subject: 'Welcome, {{ account.companyName }}',
      html: '<h2 id="welcome">Welcome {{ account.companyName }}</h2>',
      text: 'Welcome {{ account.companyName }}',
    });
    await world.server.services.eventActions.create(provider, { name: 'Welcome mail', eventPattern: 'account.created', type: 'notification', config: { recipient: 'admin' } });
    const customer = await accountWithApiUser(world, 'customer', '<b>Bold</b> & Co');
    const mail = await eventually(async () => {
      const m = await world.fresh.db('mail_spool').where({ account_id: customer.accountId, template: 'account.created' }).first('id');
      return m ? Number(m.id) : undefined;
    }, 'the welcome mail');
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/notifications/spool?template=account.created');
      await page.click(`#mail-${mail} a >> nth=0`);
      expect(await page.textContent('#mail-subject')).to.equal('Welcome, <b>Bold</b> & Co');
      expect(await page.getAttribute('#mail-html', 'sandbox')).to.equal('');
      // Rendered inside the frame, with the company name as text (escaped by the template engine), not markup.
      const heading = page.frameLocator('#mail-html').locator('#welcome');
      expect(await heading.textContent()).to.equal('Welcome <b>Bold</b> & Co');
      expect(await page.frameLocator('#mail-html').locator('b').count()).to.equal(0);
      expect(await page.textContent('#mail-text')).to.contain('Welcome <b>Bold</b> & Co');
      expect(await page.textContent('#mail-html-source')).to.contain('&lt;b&gt;Bold&lt;/b&gt; &amp; Co');
    } finally {
      await context.close();
    }
  });

  it('sets the days-before schedule, refusing a value that is no number of days beside the field', async () => {
    const { context, page } = await signedIn('reseller', resellerPassword);
    try {
      await page.goto('/console/notifications/schedules');
      await page.fill('input[name=daysBefore]', '7, soon');
      await page.click('button:has-text("Save schedule")');
      expect(await page.textContent('#schedule-form .field-error')).to.contain('daysBefore');
      await page.fill('input[name=daysBefore]', '1, 7');
      await page.click('button:has-text("Save schedule")');
      expect(await page.textContent('.flash.ok')).to.contain('7 and 1 day(s) before expiration');
      const resellerId = (await world.fresh.db('users').where({ login: 'reseller' }).first('account_id')).account_id;
      const rows = await world.fresh.db('notification_schedules').where({ vendor_id: resellerId }).orderBy('days_before');
      expect(rows.map((x: { days_before: unknown }) => Number(x.days_before))).to.deep.equal([1, 7]);
    } finally {
      await context.close();
    }
  });

  it('answers 404 to a reseller administrator for the provider\u2019s action, its deliveries and a system event, by URL', async () => {
    const systemEvent = await world.fresh.db('events').whereNull('account_id').first('id');
    const providerId = (await world.fresh.db('accounts').where({ type: 'provider' }).first('id')).id;
    const providerEvent = await world.fresh.db('events').where({ account_id: providerId }).first('id');
    const failedTask = await world.fresh.db('event_deliveries').where({ action_id: webhookId }).first('task_id');
    const { context, page } = await signedIn('reseller', resellerPassword);
    try {
      await page.goto('/console/events/actions');
      expect(await page.textContent('#actions')).to.not.contain('CRM hook');
      const res = await page.goto(`/console/events/actions/${webhookId}`);
      expect(res!.status()).to.equal(404);
      expect(await page.textContent('h1')).to.equal('Not found');
      expect(await page.content()).to.not.contain('CRM hook');
      for (const ev of [systemEvent, providerEvent].filter(Boolean)) {
        expect((await page.goto(`/console/events/${ev.id}`))!.status(), `event ${ev.id}`).to.equal(404);
      }
      await page.goto('/console/events/deliveries');
      expect(await page.textContent('#deliveries')).to.not.contain('CRM hook');
      const csrf = await page.getAttribute('input[name=_csrf]', 'value');
      const retry = await context.request.post(`/console/events/deliveries/${failedTask.task_id}/retry`, { form: { _csrf: csrf! }, maxRedirects: 0 });
      expect(retry.status()).to.equal(404);
      const disable = await context.request.post(`/console/events/actions/${webhookId}/disable`, { form: { _csrf: csrf! }, maxRedirects: 0 });
      expect(disable.status()).to.equal(404);
      expect(Boolean(Number((await world.fresh.db('event_actions').where({ id: webhookId }).first('enabled')).enabled))).to.equal(true);
    } finally {
      await context.close();
    }
  });

  it('offers a reseller administrator the object types of its own subtree\u2019s events only, not another account\u2019s', async () => {
    // A customer outside the reseller's subtree posts an event whose object type it chose.
    const outsider = await accountWithApiUser(world, 'customer', 'Outsider Poster');
    const reply = await execute(`${world.url}/RPC2`, { Server: 'TASKMAN', Method: 'PostEvent', Params: ['ProjectStarted', 'ObjectType=outsider_secret_project; ObjectID=1', 0], Username: outsider.login, Password: outsider.password });
    expect(ok(reply).Result[0]).to.deep.equal({ Status: 'Operation done.' });
    const { context, page } = await signedIn('reseller', resellerPassword);
    try {
      await page.goto('/console/events');
      const options = await page.$$eval('select[name=objectType] option', (os) => os.map((o) => o.textContent ?? ''));
      expect(options).to.include('any').and.not.include('outsider_secret_project');
    } finally {
      await context.close();
    }
    const admin = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await admin.page.goto('/console/events');
      expect(await admin.page.$$eval('select[name=objectType] option', (os) => os.map((o) => o.textContent ?? ''))).to.include('outsider_secret_project');
    } finally {
      await admin.context.close();
    }
  });

  it('disables an action from the list and enables it again, both audited as console changes', async () => {
    const { context, page } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      await page.goto('/console/events/actions');
      await page.locator(`#action-${webhookId} button:has-text("Disable")`).click();
      expect(await page.textContent('.flash.ok')).to.contain('CRM hook').and.contain('disabled');
      expect(await page.textContent(`#action-${webhookId}`)).to.contain('disabled');
      const enabled = async () => Boolean(Number((await world.fresh.db('event_actions').where({ id: webhookId }).first('enabled')).enabled));
      expect(await enabled()).to.equal(false);
      await page.locator(`#action-${webhookId} button:has-text("Enable")`).click();
      expect(await page.textContent('.flash.ok')).to.contain('enabled');
      expect(await enabled()).to.equal(true);
      expect(await world.fresh.db('audit_log').where({ operation: 'UpdateEventAction', object_id: String(webhookId), channel: 'console' })).to.have.length(2);
    } finally {
      await context.close();
    }
  });
});
