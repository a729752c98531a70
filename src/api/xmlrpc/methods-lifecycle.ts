import { invalid } from '../../domain/errors';
import type { CancelType } from '../../orders/subscription-orders';
import { write, type MethodTable } from './method-table';

/** PBA CancelType codes: 10 refund, 20 credit memo, 30 neither. */
const CANCEL_TYPE: Record<number, CancelType> = { 10: 'refund', 20: 'credit', 30: 'none' };

/** XML-RPC methods placing orders on existing subscriptions (src/orders/subscription-orders.ts). */
export const lifecycleMethods: MethodTable = {
  /**
   * (SubscriptionID, CancelType, ReasonID, Descr) -> [Message, OrderID]. CancelType 10 refund, 20 credit memo, 30
   * neither. The service is terminated through its gate when the order runs (as SOAP CancelSubscription with
   * when=immediate); ReasonID and Descr are kept as the order's comment.
   */
  'BM.PlaceSubscriptionCancellationOrder_API': write(async (p, actor, s) => {
    const subscriptionId = p.int(0, 'SubscriptionID');
    const code = p.int(1, 'CancelType');
    const cancelType = CANCEL_TYPE[code];
    if (!cancelType) throw invalid('Params[1] (CancelType)', 'CancelType must be 10 (refund), 20 (credit memo) or 30 (neither).');
    const reasonId = p.optInt(2, 'ReasonID');
    const descr = p.optStr(3, 'Descr')?.trim() ?? '';
    const reason = [reasonId ? `Reason ${reasonId}` : '', descr].filter(Boolean).join(': ');
    const { orderId } = await s.subscriptionOrders.cancel(actor, subscriptionId, { cancelType, when: 'immediate', reason });
    const order = await s.orders.get(actor, orderId);
    return [`Cancellation order ${order.orderNumber} is placed for subscription ${subscriptionId}.`, orderId];
  }),
};
