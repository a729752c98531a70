import path from 'node:path';
import type { Account } from '../../accounts/accounts-service';
import type { User } from '../../accounts/users-service';
import type { Plan } from '../../catalog/catalog-service';
import type { Role } from '../../context';
import { invalid } from '../../domain/errors';
import type { Services } from '../../services';
import type { Task, TaskStatus } from '../../jobs/task-queue';
import { VERSION } from '../../version';
import { unavailable } from '../api-errors';
import type { SoapOperation, SoapServiceDefinition } from './soap-mount';
import { compact, dateTime, decimal, int, list, quantity, text } from './wire';

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
    GetVersion: read(async () => ({ version: VERSION, apiVersion: 'v1' })),
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

/** Background tasks as the contract shows them: gate calls on the provisioning queue. */
function taskWire(t: Task) {
  return compact({
    taskId: t.taskId,
    subscriptionId: t.objectType === 'subscription' && t.objectId ? Number(t.objectId) : undefined,
    action: t.kind.replace(/^(gate|domain)\./, ''),
    status: t.status === 'done' ? 'succeeded' : t.status === 'pending' && t.attempts > 0 ? 'waiting_retry' : t.status,
    attempts: t.attempts,
    lastError: t.lastError ?? undefined,
    updatedAt: dateTime(t.updatedAt),
  });
}

const TASK_STATUS: Record<string, TaskStatus> = { pending: 'pending', waiting_retry: 'pending', running: 'running', succeeded: 'done', failed: 'failed', canceled: 'canceled' };

export function provisioningService(services: Services, wsdlDir: string): SoapServiceDefinition {
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
          queue: 'provisioning',
          status: wanted ? TASK_STATUS[wanted] : undefined,
          page: int(a.page, 'page'),
          pageSize: int(a.pageSize, 'pageSize'),
        });
        return { tasks: { task: r.items.map(taskWire) }, total: r.total };
      }),
      RetryTask: write(async (a, actor) => ({ task: taskWire(await services.tasks.retry(actor, int(a.taskId, 'taskId') as number)) })),
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
    },
    unavailable: (op) => (/Domain|EppCode|Nameservers/.test(op) ? unavailable(op, 'domains (issue #7)') : unavailable(op, ORDERS)),
  };
}

