import crypto from 'node:crypto';
import path from 'node:path';
import type { Deps } from '../context';
import { AccountsService } from '../accounts/accounts-service';
import { UsersService } from '../accounts/users-service';
import { CatalogService, type PeriodInput, type RateInput } from '../catalog/catalog-service';
import { bootstrapProvider } from './bootstrap';
import { PluginInstancesService } from '../plugins/instances-service';
import { TldCatalogService } from '../domains/tld-catalog';
import { PaymentsService } from '../payments/payments-service';
import type { PaymentGateway } from '../plugins/sdk';
import { BUNDLED_PLUGINS_DIR, loadPlugins, type PluginRegistry } from '../plugins/loader';
import { isUniqueViolation } from '../idempotency';

const SEEDED = 'demo_seeded';

export interface DemoSeed {
  created: boolean;
  logins: { login: string; password: string; role: string }[];
}

const usd = (dollars: number): bigint => BigInt(Math.round(dollars * 100));

function monthly(price: number, setup: number): PeriodInput[] {
  // Longer terms earn a discount; 12 months is billed as 10.
  return [
    { duration: 1, unit: 'month', setupFee: usd(setup), recurringFee: usd(price), refundPeriodDays: 14, sortOrder: 1 },
    { duration: 3, unit: 'month', setupFee: usd(setup), recurringFee: usd(price * 3 * 0.95), refundPeriodDays: 30, sortOrder: 2 },
    { duration: 6, unit: 'month', setupFee: 0n, recurringFee: usd(price * 6 * 0.9), refundPeriodDays: 30, sortOrder: 3 },
    { duration: 12, unit: 'month', setupFee: 0n, recurringFee: usd(price * 10), refundPeriodDays: 30, nonRefundableAmount: usd(price), sortOrder: 4 },
  ];
}

/**
 * The demo provider's catalog and accounts: idempotent (a marker row records that it ran; each object is looked
 * up by name first, so a half-finished earlier run is completed rather than duplicated).
 */
export async function seedDemo(deps: Deps, plugins?: PluginRegistry): Promise<DemoSeed> {
  const { db } = deps;
  const boot = await bootstrapProvider(deps);
  if (await db('system_settings').where({ name: SEEDED }).first()) return { created: false, logins: [] };
  // One process seeds; a claim older than ten minutes is taken to be from a start that died half-way.
  const claimedAt = deps.clock.now().getTime();
  const claim = (await db('system_settings').where({ name: 'demo_claimed' }).first()) as { value: string } | undefined;
  if (claim && claimedAt - Number(claim.value) < 600_000) return { created: false, logins: [] };
  if (claim) await db('system_settings').where({ name: 'demo_claimed' }).update({ value: String(claimedAt) });
  else {
    try {
      await db('system_settings').insert({ name: 'demo_claimed', value: String(claimedAt) });
    } catch (e) {
      if (isUniqueViolation(e)) return { created: false, logins: [] };
      throw e;
    }
  }
  const actor = boot.actor;
  const catalog = new CatalogService(deps);
  const accounts = new AccountsService(deps);
  const users = new UsersService(deps);

  const resourceIds: Record<string, number> = {};
  const existingResources = await catalog.listResources(actor);
  for (const [key, name, unit] of [
    ['mailboxes', 'Mailboxes', 'mailbox'],
    ['disk', 'Disk space', 'GB'],
    ['bandwidth', 'Bandwidth', 'GB'],
    ['ips', 'IP addresses', 'address'],
    ['domains', 'Domains', 'domain'],
  ] as const) {
    resourceIds[key] = existingResources.find((r) => r.name === name)?.resourceId ?? (await catalog.createResource(actor, { name, unit, code: key }));
  }
  const r = resourceIds;
  // The demo's templates are delivered by the sandbox gate, so a fresh start provisions orders at once.
  // The server's registry when it seeds at start-up (the plugins are loaded and logged once), else loaded here.
  const pluginInstances = new PluginInstancesService(deps, plugins ?? loadPlugins(BUNDLED_PLUGINS_DIR, deps.log));
  // ... a sandbox payment gateway (test cards) charges them, and the rules screen checks them for fraud.
  // The sandbox "processor" keeps stored cards in a state file beside the database, as a real processor keeps
  // them on its side: a card stored by one process (this seed, `npm run seed`) is known to the server's.
  const url = deps.config.databaseUrl;
  const stateDir = url.startsWith('sqlite:') ? path.dirname(path.resolve(url.slice('sqlite:'.length))) : path.resolve('data');
  const stateFile = path.join(stateDir, `sandbox-payments-${crypto.createHash('sha256').update(url).digest('hex').slice(0, 12)}.json`);
  for (const [kind, plugin, name, settings] of [
    ['provisioning', 'sandbox', 'sandbox', {}],
    ['payment', 'sandbox', 'sandbox-payments', { stateFile }],
    ['fraud', 'rules', 'fraud-rules', {}],
    ['registrar', 'sandbox', 'sandbox-registrar', {}],
  ] as const) {
    if (!(await deps.db('plugin_instances').where({ vendor_id: actor.accountId, name }).first('id'))) {
      await pluginInstances.create(actor, { kind, plugin, name, settings });
    }
  }
  // Domains: .com, .net and .org through the sandbox registrar (names containing "taken" are registered elsewhere).
  const registrar = (await db('plugin_instances').where({ vendor_id: actor.accountId, name: 'sandbox-registrar' }).first('id')) as { id: number };
  const tlds = new TldCatalogService(deps);
  for (const [tld, register, renew, transfer] of [
    ['com', 1299n, 1499n, 1299n],
    ['net', 1499n, 1699n, 1499n],
    ['org', 1199n, 1399n, 1199n],
  ] as const) {
    if (await db('tlds').where({ vendor_id: actor.accountId, tld }).first('id')) continue;
    const prices = [1, 2, 3, 5].flatMap((years) => [
      { action: 'register', years, amount: register + renew * BigInt(years - 1) },
      { action: 'renew', years, amount: renew * BigInt(years) },
    ]);
    await tlds.create(actor, { tld, registrarInstanceId: Number(registrar.id), prices: [...prices, { action: 'transfer', years: 1, amount: transfer }] });
  }
  const templates = await catalog.listTemplates(actor);
  const template = async (name: string, resources: [number, number | null][], parameters: { name: string; title: string; kind: string }[]) =>
    templates.find((t) => t.name === name)?.templateId ??
    (await catalog.createTemplate(actor, {
      name,
      serviceGate: 'sandbox',
      description: `${name} delivered by the sandbox service gate`,
      resources: resources.map(([resourceId, limit]) => ({ resourceId, limit })),
      parameters,
    }));
  const shared = await template('Shared Hosting', [[r.disk, 10], [r.bandwidth, 100], [r.mailboxes, 10], [r.domains, 1]], [{ name: 'domain', title: 'Domain name', kind: 'domain' }]);
  const mail = await template('Mail', [[r.mailboxes, 5], [r.disk, 5]], [{ name: 'domain', title: 'Mail domain', kind: 'domain' }]);
  const vps = await template('VPS', [[r.disk, 40], [r.bandwidth, 1000], [r.ips, 1]], [{ name: 'hostname', title: 'Host name', kind: 'string' }]);
  const domain = await template('Domain', [[r.domains, 1]], [{ name: 'domain', title: 'Domain name', kind: 'domain' }]);

  const existingPlans = (await catalog.listPlans(actor, { includeUnpublished: true, pageSize: 500 })).items;
  const plan = async (name: string, input: Omit<Parameters<CatalogService['createPlan']>[1], 'name'>) =>
    existingPlans.find((p) => p.name === name)?.planId ?? (await catalog.createPlan(actor, { name, published: true, resellable: true, ...input }));
  const overage = (resourceId: number, included: number, max: number | null, recurring: number, over: number, extra: Partial<RateInput> = {}): RateInput => ({
    resourceId,
    included,
    min: included,
    max,
    recurringFee: usd(recurring),
    overageFee: usd(over),
    ...extra,
  });
  await plan('Shared Hosting Basic', {
    templateId: shared,
    category: 'Web Hosting',
    description: 'One site, 10 GB disk, 100 GB traffic, 10 mailboxes.',
    periods: monthly(4.99, 9.99),
    rates: [
      overage(r.disk, 10, 50, 0.5, 0.25),
      overage(r.bandwidth, 100, null, 0, 0.1, { tiers: [{ upTo: 500, fee: usd(0.1) }, { upTo: null, fee: usd(0.05) }] }),
      overage(r.mailboxes, 10, 100, 0.75, 0.75),
      overage(r.domains, 1, 1, 0, 0),
    ],
  });
  await plan('Shared Hosting Pro', {
    templateId: shared,
    category: 'Web Hosting',
    description: 'For busy sites: 50 GB disk, 1 TB traffic, 50 mailboxes.',
    periods: monthly(12.99, 0),
    rates: [overage(r.disk, 50, 200, 0.4, 0.2), overage(r.bandwidth, 1000, null, 0, 0.05), overage(r.mailboxes, 50, 500, 0.5, 0.5), overage(r.domains, 1, 5, 2, 0)],
  });
  await plan('Business Mail', {
    templateId: mail,
    category: 'Mail',
    description: 'Five mailboxes with 5 GB storage.',
    periods: monthly(3.5, 0),
    rates: [overage(r.mailboxes, 5, 200, 1, 1), overage(r.disk, 5, 100, 0.3, 0.2)],
  });
  await plan('VPS Standard', {
    templateId: vps,
    category: 'VPS',
    description: '40 GB SSD, 1 TB traffic, one IPv4 address.',
    periods: monthly(19.99, 19.99),
    rates: [overage(r.disk, 40, 400, 0.2, 0.1), overage(r.bandwidth, 1000, null, 0, 0.02), overage(r.ips, 1, 8, 3, 0)],
  });
  await plan('Domain Registration', {
    templateId: domain,
    category: 'Domains',
    description: 'Register a domain name (priced per TLD once domains are enabled).',
    periods: [{ duration: 1, unit: 'year', recurringFee: usd(12.99), renewalFee: usd(14.99), transferFee: usd(9.99), sortOrder: 1 }],
    rates: [overage(r.domains, 1, 1, 0, 0)],
  });
  await plan('Shared Hosting Trial', {
    templateId: shared,
    category: 'Web Hosting',
    description: 'Try Shared Hosting Basic free for 30 days.',
    trial: true,
    periods: [{ duration: 30, unit: 'day', trial: true, sortOrder: 1 }],
    rates: [overage(r.disk, 10, 10, 0, 0), overage(r.bandwidth, 100, 100, 0, 0), overage(r.mailboxes, 10, 10, 0, 0), overage(r.domains, 1, 1, 0, 0)],
  });

  const logins: DemoSeed['logins'] = [];
  const password = () => crypto.randomBytes(9).toString('base64url');
  const existingChildren = (await accounts.list(actor, { pageSize: 500 })).items;
  let reseller = existingChildren.find((a) => a.companyName === 'Acme Web Reseller')?.accountId;
  if (!reseller) {
    reseller = await accounts.create(actor, {
      type: 'reseller',
      resellerKind: 'basic',
      companyName: 'Acme Web Reseller',
      address: { address1: '1 Market St', city: 'San Francisco', state: 'CA', zip: '94105', country: 'US' },
      contacts: { admin: { firstName: 'Rita', lastName: 'Reseller', email: 'rita@acme-web.example' } },
    });
    const pw = password();
    await users.create(actor, { accountId: reseller, login: 'reseller', password: pw, email: 'rita@acme-web.example', firstName: 'Rita', lastName: 'Reseller', roles: ['admin', 'api'] });
    logins.push({ login: 'reseller', password: pw, role: 'reseller administrator (Acme Web Reseller)' });
  }
  if (!existingChildren.find((a) => a.companyName === 'Bluebird Bakery')) {
    const customer = await accounts.create(actor, {
      type: 'customer',
      vendorAccountId: reseller,
      companyName: 'Bluebird Bakery',
      address: { address1: '22 Baker St', city: 'Portland', state: 'OR', zip: '97201', country: 'US' },
      // With a phone the demo customer can register domains (a registrant needs one: +1.5035550100).
      contacts: { admin: { firstName: 'Carla', lastName: 'Customer', email: 'carla@bluebird.example', phoneCountryCode: '1', phoneAreaCode: '503', phone: '5550100' } },
    });
    const pw = password();
    await users.create(actor, { accountId: customer, login: 'customer', password: pw, email: 'carla@bluebird.example', firstName: 'Carla', lastName: 'Customer', roles: ['admin'] });
    logins.push({ login: 'customer', password: pw, role: 'customer (Bluebird Bakery, under Acme Web Reseller)' });
    // The sandbox's always-approving test card as the customer's default pay tool, so a demo order is paid at once.
    const gateway = (await db('plugin_instances').where({ vendor_id: actor.accountId, name: 'sandbox-payments' }).first('id')) as { id: number };
    const payments = new PaymentsService(deps, (id) => pluginInstances.instantiate<PaymentGateway>(id));
    await payments.storePayTool(actor, customer, gateway.id, { number: '4242424242424242', expMonth: 12, expYear: deps.clock.now().getUTCFullYear() + 5, cvv: '123', holder: 'Carla Customer' }, { makeDefault: true });
  }
  await db('system_settings').insert({ name: SEEDED, value: new Date(deps.clock.now()).toISOString() });
  return { created: true, logins };
}
