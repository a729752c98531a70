import type { OrderType } from '../domain/workflow';

/** PBA-style order number prefixes per order type. */
export const ORDER_NUMBER_PREFIX: Record<OrderType, string> = {
  sales: 'SO',
  renewal: 'RN',
  change: 'CH',
  cancellation: 'CL',
  resource: 'RS',
};

/** e.g. orderNumber('sales', 123) === 'SO000123' (at least 6 digits; longer ids keep all theirs). */
export function orderNumber(type: OrderType, id: number): string {
  return `${ORDER_NUMBER_PREFIX[type]}${String(id).padStart(6, '0')}`;
}
