import type { Services } from '../../services';
import type { SoapOperation } from './soap-mount';
import { decimal, int, ORDER_STATUS_WIRE, resourceQuantities, text } from './wire';

const write = (run: SoapOperation['run']): SoapOperation => ({ mutating: true, run });

/**
 * BillingService operations on existing subscriptions: RenewSubscription, ChangeSubscriptionPlan, CancelSubscription
 * and AddSubscriptionResources place orders (src/orders/subscription-orders.ts) that run through the vendor's
 * renewal / change / cancellation / resource workflow. Spread into billingService's operations.
 */
export function lifecycleOperations(services: Services): Record<string, SoapOperation> {
  const orders = services.subscriptionOrders;
  return {
    RenewSubscription: write(async (a, actor) => {
      const { orderId } = await orders.renew(actor, int(a.subscriptionId, 'subscriptionId') as number, {
        periodId: int(a.periodId, 'periodId'),
        idempotencyKey: text(a.idempotencyKey),
      });
      return { orderId };
    }),
    ChangeSubscriptionPlan: write(async (a, actor) => {
      const { orderId } = await orders.change(actor, int(a.subscriptionId, 'subscriptionId') as number, {
        planId: int(a.planId, 'planId') as number,
        periodId: int(a.periodId, 'periodId') as number,
        when: text(a.when) as string,
        idempotencyKey: text(a.idempotencyKey),
      });
      const order = await services.orders.get(actor, orderId);
      // The prorated amount: negative when the change gives a credit.
      return { orderId, amount: decimal(order.total, order.currency), currency: order.currency };
    }),
    AddSubscriptionResources: write(async (a, actor) => {
      const { orderId } = await orders.buyResources(actor, int(a.subscriptionId, 'subscriptionId') as number, {
        resources: resourceQuantities(a.resources, 'resources'),
        payToolId: int(a.payToolId, 'payToolId'),
        idempotencyKey: text(a.idempotencyKey),
      });
      const order = await services.orders.get(actor, orderId);
      // Setup fees plus the recurring fees for the rest of the current term.
      return { orderId, orderNumber: order.orderNumber, status: ORDER_STATUS_WIRE[order.status], amount: decimal(order.total, order.currency), currency: order.currency };
    }),
    CancelSubscription: write(async (a, actor) => {
      const { orderId } = await orders.cancel(actor, int(a.subscriptionId, 'subscriptionId') as number, {
        cancelType: text(a.cancelType) as string,
        when: text(a.when) as string,
        reason: text(a.reason),
        idempotencyKey: text(a.idempotencyKey),
      });
      return { orderId };
    }),
  };
}

