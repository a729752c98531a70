import crypto from 'node:crypto';
import { toNumber, type Tx } from '../db/knex';
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

/**
 * Inserts an order row and gives it its number, derived from its id (so the row goes in under a unique placeholder
 * number first). `row` is every column but order_number; answers the id and the number.
 */
export async function insertNumberedOrder(tx: Tx, type: OrderType, row: Record<string, unknown>): Promise<{ orderId: number; number: string }> {
  const [rawId] = (await tx('orders').insert({ ...row, type, order_number: `tmp-${crypto.randomBytes(12).toString('hex')}` })) as number[];
  const orderId = toNumber(rawId);
  const number = orderNumber(type, orderId);
  await tx('orders').where({ id: orderId }).update({ order_number: number });
  return { orderId, number };
}
