import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Actor } from '../../src/context';
import { toNumber } from '../../src/db/knex';
import { Worker } from '../../src/jobs/worker';
import { orderHandlers, subscriptionHooks } from '../../src/orders/engine';
import { subscriptionActionHandlers } from '../../src/subscriptions/service-actions';
import type { World } from '../helpers/world';

/**
 * A small book of billing built with SQL on a makeWorld() world: resources, plans with periods and resource rates
 * (tiers included), customers in a currency with a sandbox card as default pay tool, and subscriptions in any
 * state. The billing run reads exactly these tables.
 */

export const CARDS = {
  approve: { number: '4242424242424242', expMonth: 12, expYear: 2030, cvv: '123' },
  decline: { number: '4000000000000341', expMonth: 12, expYear: 2030, cvv: '123' },
  timeout: { number: '4000000000000119', expMonth: 12, expYear: 2030, cvv: '123' },
} as const;

export const DAY = 86_400_000;

export interface Book {
  vendorId: number;
  gatewayId: number;
  resources: { bandwidth: number; disk: number };
}

export async function makeBook(world: World): Promise<Book> {
  const { db } = world.deps;
  const now = world.clock.now().getTime();
  const vendorId = world.provider.accountId;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostwright-billing-'));
  const gatewayId = await world.services.pluginInstances.create(world.provider, { kind: 'payment', plugin: 'sandbox', name: 'cards', settings: { stateFile: path.join(dir, 'cards.json') } });
  const [bandwidth] = (await db('resources').insert({ vendor_id: vendorId, name: 'Bandwidth', unit: 'GB', code: 'bandwidth', description: '', created_at: now })) as number[];
  const [disk] = (await db('resources').insert({ vendor_id: vendorId, name: 'Disk', unit: 'GB', code: 'disk', description: '', created_at: now })) as number[];
  return { vendorId, gatewayId, resources: { bandwidth: toNumber(bandwidth), disk: toNumber(disk) } };
}

export interface PlanSpec {
  name: string;
  currency: string;
  periods: { duration: number; unit: 'hour' | 'day' | 'month' | 'year'; trial?: boolean; recurringFee?: bigint; renewalFee?: bigint; sortOrder?: number }[];
  rates?: { resourceId: number; included: number; recurringFee?: bigint; overageFee?: bigint; tiers?: { upTo: number | null; fee: bigint }[] }[];
}

export async function makePlan(world: World, book: Book, spec: PlanSpec): Promise<{ planId: number; periodIds: number[] }> {
  const { db } = world.deps;
  const now = world.clock.now().getTime();
  const [templateId] = (await db('service_templates').insert({ vendor_id: book.vendorId, name: `${spec.name} template`, service_gate: 'sandbox', description: '', created_at: now })) as number[];
  const [planId] = (await db('plans').insert({ vendor_id: book.vendorId, template_id: templateId, name: spec.name, category: '', published: true, trial: spec.periods.every((p) => p.trial), resellable: false, currency: spec.currency, created_at: now, updated_at: now })) as number[];
  const periodIds: number[] = [];
  for (const [i, p] of spec.periods.entries()) {
    const [id] = (await db('plan_periods').insert({
      plan_id: planId,
      duration: p.duration,
      unit: p.unit,
      trial: p.trial ?? false,
      setup_fee: 0,
      recurring_fee: (p.recurringFee ?? 0n).toString(),
      renewal_fee: (p.renewalFee ?? 0n).toString(),
      sort_order: p.sortOrder ?? i,
    })) as number[];
    periodIds.push(toNumber(id));
  }
  for (const r of spec.rates ?? []) {
    await db('resource_rates').insert({
      plan_id: planId,
      resource_id: r.resourceId,
      included: r.included,
      min_quantity: 0,
      max_quantity: null,
      setup_fee: 0,
      recurring_fee: (r.recurringFee ?? 0n).toString(),
      overage_fee: (r.overageFee ?? 0n).toString(),
      tiers: r.tiers ? JSON.stringify(r.tiers.map((t) => ({ upTo: t.upTo, fee: t.fee.toString() }))) : null,
    });
  }
  return { planId: toNumber(planId), periodIds };
}

export async function makeCustomer(world: World, book: Book, name: string, opts: { currency?: string; card?: keyof typeof CARDS | null } = {}): Promise<Actor> {
  const id = await world.services.accounts.create(world.provider, {
    type: 'customer',
    companyName: name,
    currency: opts.currency ?? 'USD',
    address: { address1: '1 Main St', city: 'Town', zip: '12345', country: 'US' },
    contacts: { admin: { firstName: name, lastName: 'Admin', email: `${name.toLowerCase().replace(/\W+/g, '')}@example.com` } },
  });
  const card = opts.card === undefined ? 'approve' : opts.card;
  if (card) await world.services.payments.storePayTool(world.provider, id, book.gatewayId, CARDS[card], { makeDefault: true });
  const row = (await world.deps.db('accounts').where({ id }).first()) as { path: string };
  return { userId: null, accountId: id, accountPath: row.path, accountType: 'customer', roles: ['admin'], channel: 'system' };
}

export async function makeSubscription(
  world: World,
  book: Book,
  customer: Actor,
  plan: { planId: number; periodIds: number[] },
  opts: { period?: number; status?: number; start: Date; expiration: Date; resources?: { resourceId: number; included: number; additional?: number }[] },
): Promise<number> {
  const { db } = world.deps;
  const now = world.clock.now().getTime();
  const [id] = (await db('subscriptions').insert({
    account_id: customer.accountId,
    vendor_id: book.vendorId,
    plan_id: plan.planId,
    period_id: plan.periodIds[opts.period ?? 0],
    order_id: null,
    name: `Sub of ${customer.accountId}`,
    status: opts.status ?? 30,
    service_status: 50,
    service_gate: 'sandbox',
    gate_reference: null,
    parameters: '{}',
    start_date: opts.start.getTime(),
    expiration_date: opts.expiration.getTime(),
    last_bill_date: null,
    next_bill_date: opts.expiration.getTime(),
    created_at: now,
    updated_at: now,
  })) as number[];
  for (const r of opts.resources ?? []) {
    const additional = r.additional ?? 0;
    await db('subscription_resources').insert({ subscription_id: id, resource_id: r.resourceId, included: r.included, additional, limit_value: r.included + additional, usage: 0 });
  }
  return toNumber(id);
}

/** Documents and lines in a comparable form: what "the same documents" means between two runs. */
export async function documentsDump(world: World): Promise<string[]> {
  const docs = (await world.deps.db('documents').where({ type: 'invoice' }).orderBy('number').select('id', 'number', 'account_id', 'currency', 'subtotal', 'tax_total', 'total')) as Record<string, unknown>[];
  const out: string[] = [];
  for (const d of docs) {
    const lines = (await world.deps.db('document_lines as l')
      .leftJoin('billing_charges as c', 'c.id', 'l.charge_id')
      .where('l.document_id', d.id as number)
      .orderBy('l.position')
      .select('l.position', 'l.kind', 'l.amount', 'c.charge_key')) as Record<string, unknown>[];
    out.push(`${d.number} acct=${d.account_id} ${d.currency} ${d.subtotal}+${d.tax_total}=${d.total} [${lines.map((l) => `${l.position}:${l.kind}:${l.amount}:${l.charge_key ?? ''}`).join(' ')}]`);
  }
  return out;
}

export async function count(world: World, table: string): Promise<number> {
  const [{ n }] = (await world.deps.db(table).count({ n: '*' })) as { n: unknown }[];
  return toNumber(n);
}

export const MIXED_AS_OF = new Date('2026-02-03T00:00:00Z');

/**
 * A mixed book due as of MIXED_AS_OF: monthly renewals with extra disk bought, a trial that converts and one
 * that expires, tiered bandwidth overage of January, a declining card, and subscriptions not yet due.
 */
export async function makeMixedBook(world: World): Promise<Book & { subscriptions: number[] }> {
  world.clock.set('2026-01-01T00:00:00Z');
  const book = await makeBook(world);
  const { bandwidth, disk } = book.resources;
  const web = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n, renewalFee: 1200n }], rates: [{ resourceId: disk, included: 10, recurringFee: 50n, overageFee: 20n }] });
  const hosting = await makePlan(world, book, {
    name: 'Hosting',
    currency: 'USD',
    periods: [{ duration: 1, unit: 'month', recurringFee: 500n }],
    rates: [{ resourceId: bandwidth, included: 100, overageFee: 10n, tiers: [{ upTo: 500, fee: 10n }, { upTo: null, fee: 5n }] }],
  });
  const trialPaid = await makePlan(world, book, { name: 'Trial then paid', currency: 'USD', periods: [{ duration: 30, unit: 'day', trial: true }, { duration: 1, unit: 'month', recurringFee: 999n }] });
  const trialOnly = await makePlan(world, book, { name: 'Trial only', currency: 'USD', periods: [{ duration: 14, unit: 'day', trial: true }] });
  const d = (s: string) => new Date(s);
  const subs: number[] = [];
  const c1 = await makeCustomer(world, book, 'Alpha');
  subs.push(await makeSubscription(world, book, c1, web, { start: d('2026-01-09T00:00:00Z'), expiration: d('2026-02-09T00:00:00Z'), resources: [{ resourceId: disk, included: 10, additional: 3.5 }] }));
  subs.push(await makeSubscription(world, book, c1, hosting, { start: d('2026-01-01T00:00:00Z'), expiration: d('2026-02-01T00:00:00Z'), resources: [{ resourceId: bandwidth, included: 100 }] }));
  const c2 = await makeCustomer(world, book, 'Beta', { card: 'decline' });
  subs.push(await makeSubscription(world, book, c2, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z'), resources: [{ resourceId: disk, included: 10 }] }));
  const c3 = await makeCustomer(world, book, 'Gamma');
  subs.push(await makeSubscription(world, book, c3, trialPaid, { status: 15, start: d('2026-01-06T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z') }));
  subs.push(await makeSubscription(world, book, c3, trialOnly, { status: 15, start: d('2026-01-15T00:00:00Z'), expiration: d('2026-01-29T00:00:00Z') }));
  const c4 = await makeCustomer(world, book, 'Delta', { card: null });
  subs.push(await makeSubscription(world, book, c4, web, { start: d('2026-01-20T00:00:00Z'), expiration: d('2026-02-20T00:00:00Z') })); // not due yet
  subs.push(await makeSubscription(world, book, c4, hosting, { start: d('2026-01-01T00:00:00Z'), expiration: d('2026-02-01T00:00:00Z'), resources: [{ resourceId: bandwidth, included: 100 }] }));
  const c5 = await makeCustomer(world, book, 'Epsilon');
  subs.push(await makeSubscription(world, book, c5, trialOnly, { status: 15, start: d('2026-01-20T00:00:00Z'), expiration: d('2026-02-03T00:00:00Z') }));
  subs.push(await makeSubscription(world, book, c5, web, { start: d('2026-01-07T00:00:00Z'), expiration: d('2026-02-07T00:00:00Z'), resources: [{ resourceId: disk, included: 10, additional: 1 }] }));
  // January's bandwidth: 700 GB on subs[1] (600 over: 500 x 0.10 + 100 x 0.05 = 55.00), 150 GB on subs[6] (50 x 0.10 = 5.00).
  world.clock.set('2026-01-20T00:00:00Z');
  await world.services.usage.report(world.provider, { subscriptionId: subs[1]!, resourceId: bandwidth, quantity: '250.5', mode: 'increment', usageId: 'jan-1' });
  await world.services.usage.report(world.provider, { subscriptionId: subs[1]!, resourceId: bandwidth, quantity: '449.5', mode: 'increment', usageId: 'jan-2' });
  await world.services.usage.report(world.provider, { subscriptionId: subs[6]!, resourceId: bandwidth, quantity: '150', mode: 'set', usageId: 'jan-3' });
  world.clock.set(MIXED_AS_OF);
  return { ...book, subscriptions: subs };
}

/** A worker running the order engine's tasks (with the world's ledger) and the subscription actions' tasks. */
export function orderWorker(world: World, owner: string): Worker {
  return new Worker(
    world.deps,
    world.services.tasks,
    {
      ...orderHandlers(world.deps, {
        tasks: world.services.tasks,
        pluginInstances: world.services.pluginInstances,
        payments: world.services.payments,
        fraud: world.services.fraud,
        subscriptions: subscriptionHooks(world.deps, world.services.subscriptions, world.services.catalog),
        documents: world.services.documents,
      }),
      ...subscriptionActionHandlers(world.deps, { pluginInstances: world.services.pluginInstances, subscriptions: world.services.subscriptions }),
    },
    { owner, concurrency: 1, leaseMs: 60_000, pollMs: 20 },
  );
}
