import { money, toBigInt, toNumber, toOptionalNumber, type Conn, type Tx } from '../db/knex';
import { linesTax, TaxTable, type FixedTax } from './taxes';
import type { InvoiceLineInput, LineKind } from './types';

/**
 * An order's tax, charged at checkout with the order: priced from the lines its invoice will carry
 * (orderInvoiceLines), each line's tax worked out as issueInvoices works it out (linesTax), stored in
 * orders.tax_total; the order's total is its net plus an exclusive tax (an inclusive one is already in the prices).
 * recordOrderChargeTx then issues the invoice with exactly these figures (orderTaxFigures), so the charge pays it.
 */

/** A quantity as the database answers it, without trailing zeros ("2.5000" -> "2.5"). */
export function quantityText(v: unknown): string {
  const s = typeof v === 'number' ? String(v) : String(v ?? '0');
  if (!s.includes('.')) return s;
  const t = s.replace(/0+$/, '');
  return t.endsWith('.') ? t.slice(0, -1) : t;
}

const kindOf = (k: string): LineKind => (k === 'setup' || k === 'recurring' || k === 'renewal' || k === 'proration' || k === 'domain' ? k : k.startsWith('resource') ? 'resource' : 'adjustment');

/**
 * The lines of order `orderId`'s invoice: its order lines, and an adjustment line for the difference when they do
 * not add up to `net` (orders inserted without priced lines get one line of it).
 */
export async function orderInvoiceLines(conn: Conn, order: { id: number; order_number: string }, net: bigint): Promise<InvoiceLineInput[]> {
  const rows = (await conn('order_lines as l')
    .leftJoin('order_items as i', 'i.id', 'l.item_id')
    .where('l.order_id', order.id)
    .orderBy('l.position')
    .select('l.kind', 'l.description', 'l.resource_id', 'l.quantity', 'l.unit_price', 'l.amount', 'i.subscription_id', 'i.target_subscription_id')) as {
    kind: string;
    description: string;
    resource_id: number | null;
    quantity: unknown;
    unit_price: unknown;
    amount: unknown;
    subscription_id: number | null;
    target_subscription_id: number | null;
  }[];
  const lines: InvoiceLineInput[] = rows.map((r) => ({
    kind: kindOf(r.kind),
    description: r.description,
    subscriptionId: toOptionalNumber(r.target_subscription_id ?? r.subscription_id),
    resourceId: toOptionalNumber(r.resource_id),
    quantity: quantityText(r.quantity),
    unitPrice: toBigInt(r.unit_price),
    amount: toBigInt(r.amount),
  }));
  const sum = lines.reduce((a, l) => a + l.amount, 0n);
  if (sum !== net) lines.push({ kind: 'adjustment', description: rows.length ? `Order ${order.order_number}: adjustment` : `Order ${order.order_number}`, quantity: '1', unitPrice: net - sum, amount: net - sum });
  return lines;
}

/**
 * The order's net (what its lines charge before an exclusive tax) and its tax as priced: an exclusive tax when its
 * total is subtotal - discount + tax, else an inclusive one (in the total) or none.
 */
export function orderTaxFigures(order: { subtotal: unknown; discount_total: unknown; tax_total: unknown; total: unknown }): { net: bigint } & FixedTax {
  const tax = toBigInt(order.tax_total);
  const total = toBigInt(order.total);
  const exclusive = tax !== 0n && total === toBigInt(order.subtotal) - toBigInt(order.discount_total) + tax;
  return { net: exclusive ? total - tax : total, tax, inclusive: tax !== 0n && !exclusive };
}

/**
 * Prices the tax of order `orderId` (its lines written, `net` what they charge) for its customer: the vendor's rule
 * for the account's address, none when exempt; only an order that charges (net > 0) is taxed (a credit's tax share
 * comes from the invoice it credits). Stores tax_total and total (net plus an exclusive tax); answers them.
 */
export async function priceOrderTaxTx(tx: Tx, orderId: number, net: bigint): Promise<{ tax: bigint; total: bigint }> {
  if (net <= 0n) return { tax: 0n, total: net };
  const order = (await tx('orders as o').join('accounts as a', 'a.id', 'o.account_id').where('o.id', orderId).first('o.id', 'o.order_number', 'o.vendor_id', 'a.country', 'a.state', 'a.tax_status')) as {
    id: number;
    order_number: string;
    vendor_id: number;
    country: string | null;
    state: string | null;
    tax_status: string;
  };
  const vendorId = toNumber(order.vendor_id);
  const rule = (await TaxTable.load(tx, [vendorId])).ruleFor({ vendorId, country: order.country, state: order.state, taxStatus: order.tax_status });
  const lines = await orderInvoiceLines(tx, { id: toNumber(order.id), order_number: order.order_number }, net);
  const tax = linesTax(lines.map((l) => l.amount), rule).reduce((s, t) => s + t.tax, 0n);
  const total = rule && !rule.inclusive ? net + tax : net;
  if (tax !== 0n) await tx('orders').where({ id: orderId }).update({ tax_total: money(tax), total: money(total) });
  return { tax, total };
}
