import type { Actor } from '../../src/context';
import { OrdersService, type PlaceOrderInput } from '../../src/orders/orders-service';
import { PromoCodesService } from '../../src/orders/promo-codes-service';
import { WorkflowsService } from '../../src/orders/workflows-service';
import { SubscriptionsService } from '../../src/subscriptions/subscriptions-service';
import { accountActor, makeWorld, type World } from '../helpers/world';

/**
 * A provider selling Shared Hosting (disk limited to 10 GB, mailboxes unlimited, a required domain parameter) in
 * USD; an advanced reseller in EUR with its own plan and customer; a second reseller; a provider customer.
 */
export interface OrderWorld {
  world: World;
  orders: OrdersService;
  workflows: WorkflowsService;
  promoCodes: PromoCodesService;
  subscriptions: SubscriptionsService;
  disk: number;
  mailboxes: number;
  hostingTemplate: number;
  /** Provider plan: monthly (setup 5.00, 9.99) and yearly (99.90), disk 10 included at 1.00/GB, mailboxes 5 at 0.50. */
  basic: number;
  monthly: number;
  yearly: number;
  trialPeriod: number;
  /** Another provider plan, for "a period of another plan". */
  pro: number;
  proMonthly: number;
  /** Unpublished provider plan. */
  draft: number;
  draftMonthly: number;
  customer: Actor;
  reseller: Actor;
  resellerCustomer: Actor;
  /** The reseller's own EUR plan. */
  euroPlan: number;
  euroMonthly: number;
  otherReseller: Actor;
  otherCustomer: Actor;
  place(actor: Actor, input: Partial<PlaceOrderInput> & { accountId: number }): ReturnType<OrdersService['place']>;
}

export async function orderWorld(start?: string): Promise<OrderWorld> {
  const world = await makeWorld({ start });
  const { catalog, tasks } = world.services;
  const p = world.provider;
  const deps = world.deps;
  const workflows = new WorkflowsService(deps);
  const promoCodes = new PromoCodesService(deps);
  const subscriptions = new SubscriptionsService(deps);
  const orders = new OrdersService(deps, { catalog, tasks, workflows, promoCodes });
  const disk = await catalog.createResource(p, { name: 'Disk space', unit: 'GB', code: 'disk' });
  const mailboxes = await catalog.createResource(p, { name: 'Mailboxes', unit: 'mailbox' });
  const hostingTemplate = await catalog.createTemplate(p, {
    name: 'Shared Hosting',
    serviceGate: 'sandbox',
    resources: [
      { resourceId: disk, limit: 10 },
      { resourceId: mailboxes, limit: null },
    ],
    parameters: [
      { name: 'domain', title: 'Domain name', kind: 'domain' },
      { name: 'ftpLogin', kind: 'login', required: false },
    ],
  });
  const rates = [
    { resourceId: disk, included: 10, min: 10, max: 100, recurringFee: 100n },
    { resourceId: mailboxes, included: 5, recurringFee: 50n },
  ];
  const basic = await catalog.createPlan(p, {
    templateId: hostingTemplate,
    name: 'Basic',
    published: true,
    resellable: true,
    periods: [
      { duration: 1, unit: 'month', setupFee: 500n, recurringFee: 999n },
      { duration: 1, unit: 'year', recurringFee: 9990n, sortOrder: 2 },
      { duration: 14, unit: 'day', trial: true, sortOrder: 3 },
    ],
    rates,
  });
  const basicPlan = await catalog.getPlan(p, basic);
  const [monthly, yearly, trialPeriod] = basicPlan.periods.map((x) => x.periodId) as [number, number, number];
  const pro = await catalog.createPlan(p, { templateId: hostingTemplate, name: 'Pro', published: true, resellable: true, periods: [{ duration: 1, unit: 'month', recurringFee: 1999n }] });
  const proMonthly = (await catalog.getPlan(p, pro)).periods[0]!.periodId;
  const draft = await catalog.createPlan(p, { templateId: hostingTemplate, name: 'Draft', published: false, periods: [{ duration: 1, unit: 'month', recurringFee: 100n }] });
  const draftMonthly = (await catalog.getPlan(p, draft)).periods[0]!.periodId;

  const customer = await accountActor(world, p, 'customer', 'Carol');
  const resellerId = await world.services.accounts.create(p, { type: 'reseller', resellerKind: 'advanced', currency: 'EUR', companyName: 'Euro Hosting', contacts: { admin: { firstName: 'Eve', lastName: 'Euro', email: 'eve@example.com' } } });
  const resellerRow = (await deps.db('accounts').where({ id: resellerId }).first()) as { path: string };
  const reseller: Actor = { userId: null, accountId: resellerId, accountPath: resellerRow.path, accountType: 'reseller', roles: ['admin'], channel: 'system' };
  const resellerCustomer = await accountActor(world, reseller, 'customer', 'Rita');
  const euroTemplate = await catalog.createTemplate(reseller, { name: 'Euro Hosting', serviceGate: 'sandbox', resources: [{ resourceId: disk, limit: 20 }], parameters: [{ name: 'domain', title: 'Domain name', kind: 'domain' }] });
  const euroPlan = await catalog.createPlan(reseller, { templateId: euroTemplate, name: 'Euro Basic', published: true, periods: [{ duration: 1, unit: 'month', recurringFee: 899n }] });
  const euroMonthly = (await catalog.getPlan(reseller, euroPlan)).periods[0]!.periodId;
  const otherReseller = await accountActor(world, p, 'reseller', 'Otto');
  const otherCustomer = await accountActor(world, otherReseller, 'customer', 'Olga');

  const place = (actor: Actor, input: Partial<PlaceOrderInput> & { accountId: number }) =>
    orders.place(actor, { items: [{ planId: basic, periodId: monthly, parameters: { domain: 'example.com' } }], ...input });
  return {
    world,
    orders,
    workflows,
    promoCodes,
    subscriptions,
    disk,
    mailboxes,
    hostingTemplate,
    basic,
    monthly,
    yearly,
    trialPeriod,
    pro,
    proMonthly,
    draft,
    draftMonthly,
    customer,
    reseller,
    resellerCustomer,
    euroPlan,
    euroMonthly,
    otherReseller,
    otherCustomer,
    place,
  };
}

export async function count(w: World, table: string, where: Record<string, unknown> = {}): Promise<number> {
  const [{ n }] = (await w.deps.db(table).where(where).count({ n: '*' })) as { n: number | string }[];
  return Number(n);
}
