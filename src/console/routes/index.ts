import type { ConsoleRoutes } from '../app';
import { dashboardPages } from './dashboard';
import { accountPages } from './accounts';
import { orderPages } from './orders';
import { subscriptionPages } from './subscriptions';
import { domainPages } from './domains';
import { catalogPages } from './catalog';
import { pluginPages } from './plugins';
import { taskPages } from './tasks';
import { auditPages } from './audit';
import { workflowPages } from './workflows';
import { eventPages } from './events';
import { notificationPages } from './notifications';
import { billingPages } from './billing';

/** Every console page, in the order of the navigation. */
export function registerPages(r: ConsoleRoutes): void {
  for (const pages of [dashboardPages, accountPages, orderPages, subscriptionPages, domainPages, catalogPages, billingPages, pluginPages, taskPages, eventPages, notificationPages, auditPages, workflowPages]) pages(r);
}
