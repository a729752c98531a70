import path from 'node:path';
import type { Account } from '../../accounts/accounts-service';
import type { User } from '../../accounts/users-service';
import type { Plan } from '../../catalog/catalog-service';
import type { Role } from '../../context';
import type { PbaOrderStatus } from '../../domain/workflow';
import type { Order } from '../../orders/orders-service';
import { SERVICE_STATUS, SUBSCRIPTION_STATUS, type Subscription } from '../../subscriptions/subscriptions-service';
import { invalid } from '../../domain/errors';
import type { Services } from '../../services';
import type { Task, TaskStatus } from '../../jobs/task-queue';
import { VERSION } from '../../version';
import { SubscriptionActionsService, type ServiceAction } from '../../subscriptions/service-actions';
import { unavailable } from '../api-errors';
import { billingDocumentOps } from './ops-billing';
import { billingRunOps } from './ops-billing-run';
import type { SoapOperation, SoapServiceDefinition } from './soap-mount';
import { compact, dateTime, decimal, int, list, ORDER_STATUS_WIRE, quantity, resourceQuantities, text } from './wire';
import { lifecycleOperations } from './ops-lifecycle';
import { GATE_TASK_KINDS, gateTaskAction, gateTaskSubscriptionId } from '../../orders/gate-tasks';
import { domainOperations } from './ops-domains';

export const BILLING_NS = 'urn:hostwright:billing:v1';

type Args = Record<string, unknown>;
const obj = (v: unknown): Args => (v !== null && typeof v === 'object' ? (v as Args) : {});

export function accountWire(a: Account) {
  const c = a.contacts.admin;
  return compact({
    accountId: a.accountId,
    vendorAccountId: a.vendorAccountId ?? undefined,
    type: a.type,
    status: a.status,
    companyName: a.companyName || undefined,
    contact: compact({
      firstName: c?.firstName ?? '',
      lastName: c?.lastName ?? '',
      email: c?.email ?? '',
      phone: c?.phone || undefined,
      address1: a.address.address1 || undefined,
      city: a.address.city || undefined,
      state: a.address.state || undefined,
      zip: a.address.zip || undefined,
      // The schema requires an ISO code; ZZ is ISO 3166's user-assigned "unknown" for accounts created without one.
      country: a.address.country || 'ZZ',
    }),
    currency: a.currency,
    balance: decimal(a.balance, a.currency),
    createdAt: dateTime(a.createdAt),
    externalId: a.externalId ?? undefined,
    resellerKind: a.resellerKind ?? undefined,
    taxStatus: a.taxStatus,
  });
}

export function userWire(u: User) {
  return {
    userId: u.userId,
    accountId: u.accountId,
    login: u.login,
    email: u.email,
    firstName: u.firstName,
    lastName: u.lastName,
    roles: { role: u.roles },
    status: u.status,
    createdAt: dateTime(u.createdAt),
  };
}

export function planWire(p: Plan, full: boolean) {
  return compact({
    planId: p.planId,
    name: p.name,
    category: p.category,
    description: full ? p.description : undefined,
    serviceGate: p.serviceGate,
    trial: p.trial,
    published: full ? p.published : undefined,
    vendorAccountId: full ? p.vendorAccountId : undefined,
    periods: {
      period: p.periods
        .filter((x) => full || x.enabled)
        .map((x) => ({
          periodId: x.periodId,
          duration: x.duration,
          unit: x.unit,
          trial: x.trial,
          setupFee: decimal(x.setupFee, x.currency),
          recurringFee: decimal(x.recurringFee, x.currency),
          renewalFee: decimal(x.renewalFee, x.currency),
          transferFee: decimal(x.transferFee, x.currency),
          nonRefundableAmount: decimal(x.nonRefundableAmount, x.currency),
          refundPeriodDays: x.refundPeriodDays,
          enabled: x.enabled,
          currency: x.currency,
        })),
    },
    resources: full
      ? {
          resource: p.resources.map((r) =>
            compact({
              resourceId: r.resourceId,
              name: r.name,
              unit: r.unit,
              included: quantity(r.included),
              min: quantity(r.min),
              max: r.max === null ? undefined : quantity(r.max),
              setupFee: decimal(r.setupFee, r.currency),
              recurringFee: decimal(r.recurringFee, r.currency),
              overageFee: decimal(r.overageFee, r.currency),
              currency: r.currency,
            }),
          ),
        }
      : undefined,
  });
}

function contactInput(c: Args) {
  return {
    contact: { firstName: text(c.firstName), lastName: text(c.lastName), email: text(c.email), phone: text(c.phone) },
    address: { address1: text(c.address1), city: text(c.city), state: text(c.state), zip: text(c.zip), country: text(c.country) },
  };
}

const ORDER_STATUS_CODE = new Map(Object.entries(ORDER_STATUS_WIRE).map(([code, wire]) => [wire, code as PbaOrderStatus]));
/** WSDL OrderStatus and OrderType values no Hostwright order takes: a filter on them finds nothing. */
const UNUSED_ORDER_STATUSES = new Set(['failed']);
const UNUSED_ORDER_TYPES = new Set(['cancellation_charge', 'billing', 'payment']);

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const SUBSCRIPTION_STATUS_WIRE = new Map<number, string>(Object.entries(SUBSCRIPTION_STATUS).map(([k, v]) => [v, k]));
const SERVICE_STATUS_WIRE = new Map<number, string>(Object.entries(SERVICE_STATUS).map(([k, v]) => [v, snake(k)]));

/** An order in the XSD's sequence; lines and history only where the WSDL shows them (not in ListOrders). */
export function orderWire(o: Order, full: boolean) {
  const itemOf = (itemId: number | null) => o.items.find((i) => i.itemId === itemId);
  return compact({
    orderId: o.orderId,
    orderNumber: o.orderNumber,
    accountId: o.accountId,
    type: o.type,
    status: ORDER_STATUS_WIRE[o.status],
    total: decimal(o.total, o.currency),
    currency: o.currency,
    createdAt: dateTime(o.createdAt),
    lines: full
      ? {
          line: o.lines.map((l) => {
            const item = itemOf(l.itemId);
            return compact({
              lineId: l.lineId,
              description: l.description,
              planId: item?.planId,
              periodId: item?.periodId,
              subscriptionId: item?.subscriptionId ?? item?.targetSubscriptionId ?? undefined,
              resourceId: l.resourceId ?? undefined,
              quantity: quantity(l.quantity),
              unitPrice: decimal(l.unitPrice, o.currency),
              amount: decimal(l.amount, o.currency),
            });
          }),
        }
      : undefined,
    history: full
      ? { event: o.history.map((h) => compact({ status: ORDER_STATUS_WIRE[h.status], at: dateTime(h.at), comment: h.comment || undefined })) }
      : undefined,
  });
}

/** A subscription in the XSD's sequence; absent dates are absent elements, an unlimited resource has no limit. */
export function subscriptionWire(s: Subscription, withResources: boolean) {
  return compact({
    subscriptionId: s.subscriptionId,
    accountId: s.accountId,
    planId: s.planId,
    periodId: s.periodId,
    status: SUBSCRIPTION_STATUS_WIRE.get(s.status) ?? String(s.status),
    serviceStatus: SERVICE_STATUS_WIRE.get(s.serviceStatus) ?? String(s.serviceStatus),
    startDate: s.startDate ? dateTime(s.startDate) : undefined,
    expirationDate: s.expirationDate ? dateTime(s.expirationDate) : undefined,
    nextBillDate: s.nextBillDate ? dateTime(s.nextBillDate) : undefined,
    resources: withResources
      ? { resource: s.resources.map((r) => compact({ resourceId: r.resourceId, limit: r.limit === null ? undefined : quantity(r.limit), usage: quantity(r.usage) })) }
      : undefined,
  });
}

function orderItemInput(raw: unknown, i: number) {
  const item = obj(raw);
  const parameters: Record<string, string> = {};
  for (const p of list<Args>(item.parameters, 'parameter')) {
    const name = text(obj(p).name) ?? '';
    Object.defineProperty(parameters, name, { value: text(obj(p).value) ?? '', enumerable: true, writable: true, configurable: true });
  }
  return {
    planId: int(item.planId, `items[${i}].planId`) as number,
    periodId: int(item.periodId, `items[${i}].periodId`) as number,
    parameters,
    resources: resourceQuantities(item.resources, `items[${i}].resources`),
  };
}

function since(v: unknown): Date | undefined {
  const t = text(v)?.trim();
  if (t === undefined || t === '') return undefined;
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) throw invalid('since', 'since must be an xs:dateTime, e.g. 2026-01-31T00:00:00Z.');
  return d;
}

const read = (run: SoapOperation['run']): SoapOperation => ({ mutating: false, run });
const write = (run: SoapOperation['run']): SoapOperation => ({ mutating: true, run });

const ORDERS = 'orders, workflows and provisioning (issue #4)';
const BILLING = 'the billing engine (issue #5)';

export function billingService(services: Services, wsdlDir: string): SoapServiceDefinition {
  const { accounts, users, catalog } = services;
  const operations: Record<string, SoapOperation> = {
    CreateAccount: write(async (a, actor) => {
      const { contact, address } = contactInput(obj(a.contact));
      const accountId = await accounts.create(actor, {
        type: text(a.type) as 'reseller' | 'customer',
        vendorAccountId: int(a.vendorAccountId, 'vendorAccountId'),
        companyName: text(a.companyName),
        currency: text(a.currency),
        externalId: text(a.externalId),
        resellerKind: text(a.resellerKind) as never,
        taxStatus: text(a.taxStatus) as never,
        address,
        contacts: { admin: contact },
        idempotencyKey: text(a.idempotencyKey),
      });
      return { accountId };
    }),
    GetAccount: read(async (a, actor) => ({ account: accountWire(await accounts.get(actor, int(a.accountId, 'accountId') as number)) })),
    UpdateAccount: write(async (a, actor) => {
      const accountId = int(a.accountId, 'accountId') as number;
      const vendor = int(a.vendorAccountId, 'vendorAccountId');
      if (vendor !== undefined && vendor !== (await accounts.get(actor, accountId)).vendorAccountId) {
        throw invalid('vendorAccountId', 'An account cannot be moved to another vendor through UpdateAccount.');
      }
      const c = a.contact === undefined ? undefined : contactInput(obj(a.contact));
      const account = await accounts.update(actor, accountId, {
        companyName: text(a.companyName),
        currency: text(a.currency),
        externalId: text(a.externalId),
        resellerKind: text(a.resellerKind) as never,
        taxStatus: text(a.taxStatus) as never,
        status: text(a.status) as never,
        address: c?.address,
        contacts: c ? { admin: c.contact } : undefined,
      });
      return { account: accountWire(account) };
    }),
    ListAccounts: read(async (a, actor) => {
      const r = await accounts.list(actor, {
        vendorAccountId: int(a.vendorAccountId, 'vendorAccountId'),
        status: text(a.status),
        page: int(a.page, 'page'),
        pageSize: int(a.pageSize, 'pageSize'),
      });
      return { accounts: { account: r.items.map(accountWire) }, total: r.total };
    }),
    CreateUser: write(async (a, actor) => ({
      userId: await users.create(actor, {
        accountId: int(a.accountId, 'accountId') as number,
        login: text(a.login) ?? '',
        password: text(a.password) ?? '',
        email: text(a.email) ?? '',
        firstName: text(a.firstName) ?? '',
        lastName: text(a.lastName) ?? '',
        roles: list<string>(a.roles, 'role').map((r) => text(r) as Role),
      }),
    })),
    GetUser: read(async (a, actor) => ({ user: userWire(await users.get(actor, int(a.userId, 'userId') as number)) })),
    ListUsers: read(async (a, actor) => {
      const r = await users.listForAccount(actor, int(a.accountId, 'accountId') as number, { page: int(a.page, 'page'), pageSize: int(a.pageSize, 'pageSize') });
      return { users: { user: r.items.map(userWire) }, total: r.total };
    }),
    ValidateUser: read(async (a, actor) => {
      const r = await services.auth.checkPassword(actor, text(a.login) ?? '', text(a.password) ?? '', int(a.vendorAccountId, 'vendorAccountId'));
      return compact({ accountId: r.accountId, userId: r.userId, vendorAccountId: r.vendorAccountId ?? undefined });
    }),
    ListPlans: read(async (a, actor) => {
      const r = await catalog.listPlans(actor, {
        vendorAccountId: int(a.vendorAccountId, 'vendorAccountId'),
        category: text(a.category),
        page: int(a.page, 'page'),
        pageSize: int(a.pageSize, 'pageSize'),
      });
      return { plans: { plan: r.items.map((p) => planWire(p, false)) }, total: r.total };
    }),
    GetPlan: read(async (a, actor) => ({ plan: planWire(await catalog.getPlan(actor, int(a.planId, 'planId') as number), true) })),
    PlaceOrder: write(async (a, actor) => {
      const order = await services.orders.place(actor, {
        accountId: int(a.accountId, 'accountId') as number,
        items: list(a.items, 'item').map(orderItemInput),
        promoCode: text(a.promoCode),
        payToolId: int(a.payToolId, 'payToolId'),
        ipAddress: actor.remoteAddr,
        idempotencyKey: text(a.idempotencyKey),
      });
      return { orderId: order.orderId, orderNumber: order.orderNumber, status: ORDER_STATUS_WIRE[order.status], total: decimal(order.total, order.currency), currency: order.currency, invoiceId: (await services.documents.orderInvoiceId(order.orderId)) ?? undefined };
    }),
    GetOrder: read(async (a, actor) => ({ order: orderWire(await services.orders.get(actor, int(a.orderId, 'orderId') as number), true) })),
    ListOrders: read(async (a, actor) => {
      const wanted = text(a.status)?.trim() || undefined;
      if (wanted !== undefined && !ORDER_STATUS_CODE.has(wanted) && !UNUSED_ORDER_STATUSES.has(wanted)) {
        throw invalid('status', `status must be one of ${[...ORDER_STATUS_CODE.keys(), ...UNUSED_ORDER_STATUSES].join(', ')}.`);
      }
      const type = text(a.type)?.trim() || undefined;
      const unused = (wanted !== undefined && UNUSED_ORDER_STATUSES.has(wanted)) || (type !== undefined && UNUSED_ORDER_TYPES.has(type));
      const filter = {
        accountId: int(a.accountId, 'accountId'),
        status: wanted === undefined ? undefined : ORDER_STATUS_CODE.get(wanted),
        type: type !== undefined && UNUSED_ORDER_TYPES.has(type) ? undefined : type,
        since: since(a.since),
        page: int(a.page, 'page'),
        pageSize: int(a.pageSize, 'pageSize'),
      };
      const r = await services.orders.list(actor, filter);
      if (unused) return { orders: { order: [] }, total: 0 };
      return { orders: { order: r.items.map((o) => orderWire(o, false)) }, total: r.total };
    }),
    ApproveOrder: write(async (a, actor) => ({ order: orderWire(await services.orders.approve(actor, int(a.orderId, 'orderId') as number, text(a.comment)), true) })),
    RejectOrder: write(async (a, actor) => ({ order: orderWire(await services.orders.reject(actor, int(a.orderId, 'orderId') as number, text(a.comment)), true) })),
    GetSubscription: read(async (a, actor) => ({ subscription: subscriptionWire(await services.subscriptions.get(actor, int(a.subscriptionId, 'subscriptionId') as number), true) })),
    ListSubscriptions: read(async (a, actor) => {
      const wanted = text(a.status)?.trim() || undefined;
      const code = wanted === undefined ? undefined : (SUBSCRIPTION_STATUS as Record<string, number>)[wanted];
      if (wanted !== undefined && (code === undefined || !Object.prototype.hasOwnProperty.call(SUBSCRIPTION_STATUS, wanted))) {
        throw invalid('status', `status must be one of ${Object.keys(SUBSCRIPTION_STATUS).join(', ')}.`);
      }
      const r = await services.subscriptions.list(actor, {
        accountId: int(a.accountId, 'accountId') as number,
        status: code,
        page: int(a.page, 'page'),
        pageSize: int(a.pageSize, 'pageSize'),
      });
      return { subscriptions: { subscription: r.items.map((x) => subscriptionWire(x, true)) }, total: r.total };
    }),
    GetVersion: read(async () => ({ version: VERSION, apiVersion: 'v1' })),
    ...lifecycleOperations(services),
    ...billingDocumentOps(services),
    ...billingRunOps(services),
  };
  return {
    service: 'BillingService',
    port: 'BillingServiceSoap',
    path: '/soap/billing',
    wsdlFile: path.join(wsdlDir, 'BillingService.wsdl'),
    namespace: BILLING_NS,
    operations,
    unavailable: (op) =>
      /Order|Subscription$|Subscriptions$/.test(op) && !/ChangeSubscriptionPlan|RenewSubscription|CancelSubscription/.test(op)
        ? unavailable(op, ORDERS)
        : unavailable(op, BILLING),
  };
}

/** Background tasks as the contract shows them: gate calls (the provisioning queue, and orders' and subscriptions' gate tasks). */
function taskWire(t: Task) {
  return compact({
    taskId: t.taskId,
    subscriptionId: gateTaskSubscriptionId(t),
    action: gateTaskAction(t),
    status: t.status === 'done' ? 'succeeded' : t.status === 'pending' && t.attempts > 0 ? 'waiting_retry' : t.status,
    attempts: t.attempts,
    lastError: t.lastError ?? undefined,
    updatedAt: dateTime(t.updatedAt),
  });
}

const TASK_STATUS: Record<string, TaskStatus> = { pending: 'pending', waiting_retry: 'pending', running: 'running', succeeded: 'done', failed: 'failed', canceled: 'canceled' };

export function provisioningService(services: Services, wsdlDir: string): SoapServiceDefinition {
  const actions = new SubscriptionActionsService(services.deps, { tasks: services.tasks });
  const act = (action: ServiceAction) =>
    write(async (a, actor) => {
      const r = await actions.request(actor, int(a.subscriptionId, 'subscriptionId') as number, action, { reason: text(a.reason), idempotencyKey: text(a.idempotencyKey) });
      return { taskId: r.taskId, serviceStatus: SERVICE_STATUS_WIRE.get(r.serviceStatus) ?? String(r.serviceStatus) };
    });
  return {
    service: 'ProvisioningService',
    port: 'ProvisioningServiceSoap',
    path: '/soap/provisioning',
    wsdlFile: path.join(wsdlDir, 'ProvisioningService.wsdl'),
    namespace: 'urn:hostwright:provisioning:v1',
    operations: {
      GetVersion: read(async () => ({ version: VERSION, apiVersion: 'v1' })),
      ListTasks: read(async (a, actor) => {
        const wanted = text(a.status);
        if (wanted !== undefined && !(wanted in TASK_STATUS)) throw invalid('status', `status must be one of ${Object.keys(TASK_STATUS).join(', ')}.`);
        const r = await services.tasks.list(actor, {
          anyOf: { queues: ['provisioning'], kinds: GATE_TASK_KINDS },
          status: wanted ? TASK_STATUS[wanted] : undefined,
          page: int(a.page, 'page'),
          pageSize: int(a.pageSize, 'pageSize'),
        });
        return { tasks: { task: r.items.map(taskWire) }, total: r.total };
      }),
      RetryTask: write(async (a, actor) => ({ task: taskWire(await services.tasks.retry(actor, int(a.taskId, 'taskId') as number)) })),
      ProvisionSubscription: act('provision'),
      SuspendSubscription: act('suspend'),
      ResumeSubscription: act('resume'),
      TerminateSubscription: act('terminate'),
      GetProvisioningStatus: read(async (a, actor) => {
        const r = await actions.provisioningStatus(actor, int(a.subscriptionId, 'subscriptionId') as number);
        // Subscription tasks are named subscription.<action>; the contract's TaskAction is the bare action.
        const tasks = r.tasks.map((t) => taskWire({ ...t, kind: t.kind.replace(/^subscription\./, '') }));
        return { serviceStatus: SERVICE_STATUS_WIRE.get(r.serviceStatus) ?? String(r.serviceStatus), tasks: { task: tasks } };
      }),
      ListServiceGates: read(async (_a, actor) => {
        const gates = (await services.pluginInstances.listServiceGates(actor)).filter((g) => g.kind === 'provisioning');
        const wire = gates.map((g) => ({ name: g.name, plugin: g.plugin, kind: g.kind, status: g.status === 'active' ? 'enabled' : g.status }));
        // A provisioning plugin that failed to load is reported to the provider even before any gate uses it.
        if (actor.accountType === 'provider') {
          for (const p of services.plugins.list()) {
            if (p.kind === 'provisioning' && p.status === 'broken' && !gates.some((g) => g.plugin === p.name)) wire.push({ name: p.name, plugin: p.name, kind: p.kind, status: 'broken' });
          }
        }
        return { gates: { gate: wire } };
      }),
      ...domainOperations(services),
    },
    unavailable: (op) => (/^(Register|Transfer|Renew)Domain$/.test(op) ? unavailable(op, 'domain orders (issue #7, next round)') : unavailable(op, ORDERS)),
  };
}

