import { AccountsService } from './accounts/accounts-service';
import { Authenticator } from './accounts/authenticator';
import { UsersService } from './accounts/users-service';
import { CatalogService } from './catalog/catalog-service';
import type { Deps } from './context';
import { TaskQueue } from './jobs/task-queue';
import { PluginInstancesService } from './plugins/instances-service';
import { PaymentsService } from './payments/payments-service';
import { FraudService } from './fraud/fraud-service';
import { notFound } from './domain/errors';
import type { PaymentGateway } from './plugins/sdk';
import { OrdersService } from './orders/orders-service';
import { WorkflowsService } from './orders/workflows-service';
import { PromoCodesService } from './orders/promo-codes-service';
import { SubscriptionsService } from './subscriptions/subscriptions-service';
import { SubscriptionOrdersService } from './orders/subscription-orders';
import { ACCOUNT_BALANCE_SQL, DocumentsService } from './billing/documents-service';
import { BillingRun } from './billing/run/billing-run';
import { renewalOrdersPaid } from './billing/run/renewal-orders';
import { liftDunning } from './billing/run/dunning';
import { renewPaidDomains } from './billing/run/domain-renewals';
import { UsageService } from './billing/usage-service';
import { TaxRulesService } from './billing/taxes';
import { BillingSettingsService } from './billing/settings';
import { BUNDLED_PLUGINS_DIR, loadPlugins, type PluginRegistry } from './plugins/loader';
import { EventActionsService } from './events/actions-service';
import { NotificationsService } from './notifications/notifications-service';
import { NotificationSchedulesService } from './notifications/schedules';
import { TldCatalogService } from './domains/tld-catalog';
import { DomainsService } from './domains/domains-service';

/** Every service of the application, built once from its dependencies. Transports receive this. */
export interface Services {
  deps: Deps;
  accounts: AccountsService;
  users: UsersService;
  catalog: CatalogService;
  auth: Authenticator;
  tasks: TaskQueue;
  /** Plugins found on disk (loaded once per process), broken ones included with their reason. */
  plugins: PluginRegistry;
  pluginInstances: PluginInstancesService;
  payments: PaymentsService;
  fraud: FraudService;
  workflows: WorkflowsService;
  promoCodes: PromoCodesService;
  orders: OrdersService;
  subscriptions: SubscriptionsService;
  /** Event actions per vendor: notification, webhook, script (issue #6). */
  eventActions: EventActionsService;
  /** Notification templates, rendering, sending and the mail spool. */
  notifications: NotificationsService;
  notificationSchedules: NotificationSchedulesService;
  /** Renewal and cancellation orders on existing subscriptions. */
  subscriptionOrders: SubscriptionOrdersService;
  /** Billing documents (invoices, memos, payments, refunds), tax rules and per-vendor billing settings. */
  documents: DocumentsService;
  taxRules: TaxRulesService;
  billingSettings: BillingSettingsService;
  /** Reported usage of metered resources (ReportUsage, DUMMYGATE usage methods). */
  usage: UsageService;
  /** The billing run: renewals, trials, overage, invoices and auto-pay as of an instant (cron, CLI, RunBilling). */
  billingRun: BillingRun;
  /** The domain catalog (TLDs, registrar instances, prices) and the domains accounts hold (issue #7). */
  tlds: TldCatalogService;
  domains: DomainsService;
}

/** Builds every service; pass the registry when one is already loaded (it is loaded once per process). */
export function createServices(deps: Deps, plugins: PluginRegistry = loadPlugins(BUNDLED_PLUGINS_DIR, deps.log)): Services {
  const users = new UsersService(deps);
  const pluginInstances = new PluginInstancesService(deps, plugins);
  const catalog = new CatalogService(deps);
  const tasks = new TaskQueue(deps);
  const workflows = new WorkflowsService(deps);
  const promoCodes = new PromoCodesService(deps);
  const payments = new PaymentsService(deps, async (id) => {
    const row = (await deps.db('plugin_instances').where({ id }).first('kind')) as { kind: string } | undefined;
    if (!row || row.kind !== 'payment') throw notFound('Payment gateway instance', id);
    return pluginInstances.instantiate<PaymentGateway>(id);
  });
  const documents = new DocumentsService(deps, payments);
  // A paid renewal (or trial conversion) invoice moves its subscription's expiration forward.
  documents.onInvoicesPaid(renewalOrdersPaid(deps, tasks));
  // ... and payment in full lifts its dunning (graced -> active, a non-payment suspension resumed).
  documents.onInvoicesPaid(liftDunning(deps, tasks));
  // ... and a paid domain renewal is renewed at the registrar by a task (src/domains/lifecycle.ts).
  documents.onInvoicesPaid(renewPaidDomains(tasks));
  const tlds = new TldCatalogService(deps);
  const accounts = new AccountsService(deps, ACCOUNT_BALANCE_SQL);
  const auth = new Authenticator(deps, users);
  // A closed account signs nobody in: its users' cached sign-ins must not outlive the change.
  accounts.onStatusChanged((accountId) => auth.forgetAccount(accountId));
  users.onCredentialsChanged((login) => auth.forget(login));
  return {
    deps,
    accounts,
    users,
    catalog,
    auth,
    tasks,
    plugins,
    pluginInstances,
    payments,
    fraud: new FraudService(deps),
    workflows,
    promoCodes,
    orders: new OrdersService(deps, { catalog, tasks, workflows, promoCodes, settle: { pluginInstances, payments, documents } }),
    subscriptions: new SubscriptionsService(deps),
    eventActions: new EventActionsService(deps),
    notifications: new NotificationsService(deps),
    notificationSchedules: new NotificationSchedulesService(deps),
    subscriptionOrders: new SubscriptionOrdersService(deps, { catalog, tasks, workflows }),
    documents,
    taxRules: new TaxRulesService(deps),
    billingSettings: new BillingSettingsService(deps),
    usage: new UsageService(deps),
    billingRun: new BillingRun(deps, documents, tasks, workflows),
    tlds,
    domains: new DomainsService(deps, { tlds, pluginInstances, ledger: documents }),
  };
}
