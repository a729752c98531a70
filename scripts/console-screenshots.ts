/**
 * Takes the screenshots of docs/console.md: starts a demo server on a throw-away SQLite database, gives it a day's
 * worth of work (completed orders, one suspect order waiting for approval, a failed task), signs in with headless
 * Chromium and saves 1280x800 PNGs as docs/img/console-*.png.
 *
 *   npx tsx scripts/console-screenshots.ts [--chromium /usr/bin/chromium]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { startServer } from '../src/server';
import type { Actor } from '../src/context';

const OUT = path.resolve(__dirname, '..', 'docs', 'img');
const PASSWORD = 'screenshot-admin-pass';

async function until(probe: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main(): Promise<void> {
  const exe = process.argv.includes('--chromium') ? process.argv[process.argv.indexOf('--chromium') + 1] : '/usr/bin/chromium';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostwright-shots-'));
  const config = loadConfig(process.env, {
    databaseUrl: `sqlite:${path.join(dir, 'demo.sqlite')}`,
    port: 0,
    host: '127.0.0.1',
    xmlrpcLegacyPort: 0,
    adminPassword: PASSWORD,
    seedDemo: true,
    logLevel: 'error',
    secretKey: 'screenshots-secret-key-0123456789abcdef',
  });
  const server = await startServer(config, { log: createLogger({ level: 'error', format: 'json', silent: true }) });
  const browser = await chromium.launch({ executablePath: exe, args: ['--headless', '--no-sandbox'] });
  try {
    const { db } = server.services.deps;
    const { orders, pluginInstances, tasks } = server.services;
    const providerRow = (await db('accounts').where({ type: 'provider' }).first('id', 'path')) as { id: number; path: string };
    const provider: Actor = { userId: null, accountId: providerRow.id, accountPath: providerRow.path, accountType: 'provider', roles: ['admin'], channel: 'system' };
    const customer = (await db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')) as { id: number };
    const planOf = async (name: string) => {
      const plan = (await db('plans').where({ name }).first('id')) as { id: number };
      const period = (await db('plan_periods').where({ plan_id: plan.id }).orderBy('sort_order').first('id')) as { id: number };
      return { planId: plan.id, periodId: period.id };
    };
    const done = async (orderId: number, status: string[]) =>
      until(async () => status.includes(((await db('orders').where({ id: orderId }).first('status')) as { status: string }).status), `order ${orderId}`);
    for (const [name, domain] of [['Shared Hosting Basic', 'bluebird-bakery.example'], ['Business Mail', 'mail.bluebird-bakery.example']] as const) {
      const o = await orders.place(provider, { accountId: customer.id, items: [{ ...(await planOf(name)), parameters: { domain } }] });
      await done(o.orderId, ['CP', 'PF', 'RJ']);
    }
    const fraud = (await db('plugin_instances').where({ name: 'fraud-rules' }).first('id')) as { id: number };
    await pluginInstances.update(provider, fraud.id, { settings: { amountThreshold: { amount: '2500', currency: 'USD' } } });
    const big = await orders.place(provider, { accountId: customer.id, items: [{ ...(await planOf('VPS Standard')), parameters: { hostname: 'oven.bluebird-bakery.example' } }] });
    await done(big.orderId, ['WA']);
    const failing = await tasks.enqueue(db, { kind: 'gate.provision', queue: 'screenshots', accountId: customer.id, objectType: 'subscription', objectId: 1, maxAttempts: 1 });
    await tasks.lease('screenshots', { queues: ['screenshots'], limit: 1, leaseMs: 60_000 });
    await tasks.fail(failing, 'screenshots', 'The control panel answered HTTP 503: maintenance window.', { retryable: false });

    const context = await browser.newContext({ baseURL: server.url, viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    fs.mkdirSync(OUT, { recursive: true });
    const shot = async (name: string) => {
      await page.screenshot({ path: path.join(OUT, `console-${name}.png`) });
      console.log(`docs/img/console-${name}.png`);
    };
    await page.goto('/console/login');
    await page.fill('input[name=login]', 'admin');
    await shot('login');
    await page.fill('input[name=password]', PASSWORD);
    await Promise.all([page.waitForURL((u) => u.pathname === '/console'), page.click('button[type=submit]')]);
    await shot('dashboard');
    await page.goto('/console/accounts');
    await shot('accounts');
    await page.goto(`/console/orders/${big.orderId}`);
    await shot('order');
    await page.goto(`/console/catalog/plans/${(await planOf('Shared Hosting Basic')).planId}`);
    await page.fill('#period-form input[name=duration]', '0');
    await page.click('button:has-text("Add period")');
    await page.locator('#period-form').scrollIntoViewIfNeeded();
    await shot('plan');
    // A service template's page: its limits table, a refused limit beside its row.
    const sharedTemplate = (await db('service_templates').where({ name: 'Shared Hosting' }).first('id')) as { id: number };
    const diskResource = (await db('resources').where({ code: 'disk' }).first('id')) as { id: number };
    await page.goto(`/console/catalog/templates/${sharedTemplate.id}`);
    await page.fill(`input[name="limit.${diskResource.id}"]`, '-10');
    await page.click('button:has-text("Save template")');
    await page.setViewportSize({ width: 1280, height: 1720 });
    await shot('template');
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto('/console/tasks');
    await shot('tasks');
    await page.goto(`/console/plugins/${fraud.id}`);
    await shot('plugin');
    await page.goto('/console/workflows/define?type=sales');
    const text = await page.inputValue('textarea[name=definition]');
    await page.fill('textarea[name=definition]', text.replace('"charge_card"', '"charge_the_card"'));
    await page.click('button:has-text("Validate and save")');
    await shot('workflow');
    // Billing: an invoice of the customer's (its reseller charges 10% tax), partly paid by cheque in the console.
    const { documents, taxRules } = server.services;
    const reseller = (await db('accounts').where({ company_name: 'Acme Web Reseller' }).first('id')) as { id: number };
    await taxRules.create(provider, reseller.id, { name: 'Sales tax 10%', country: 'US', ratePpm: 100_000 });
    const invoice = await documents.issueInvoice(provider, {
      accountId: customer.id,
      lines: [
        { kind: 'renewal', description: 'Shared Hosting Basic', quantity: '1', unitPrice: 999n, amount: 999n, periodStart: new Date('2026-03-01T00:00:00Z'), periodEnd: new Date('2026-04-01T00:00:00Z') },
        { kind: 'overage', description: 'Disk space over 10 GB', quantity: '2.5', unitPrice: 100n, amount: 250n },
      ],
    });
    await page.goto(`/console/invoices/${invoice.documentId}`);
    await page.fill('#record-payment input[name=amount]', '5.00');
    await page.fill('#record-payment input[name=reference]', 'CHQ-1001');
    await Promise.all([page.waitForURL((u) => u.pathname === `/console/invoices/${invoice.documentId}`), page.click('#record-payment button[type=submit]')]);
    await shot('invoice');
    await context.close();
  } finally {
    await browser.close();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
