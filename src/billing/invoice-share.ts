import { sumToBigInt, toBigInt, type Conn } from '../db/knex';
import { mulDivHalfUp } from '../domain/money';

/**
 * A share of an invoice with its tax on it: `net`, priced like the invoice's lines, times the invoice's total over
 * the sum of its priced (non-tax) lines, half-up. Exclusive tax adds the invoice's share of tax (10.00 + 8.875 % ->
 * 10.89, so 8.00 -> 8.71); inclusive tax is already in the price (the lines add up to the total: the share is
 * unchanged). A credit memo of `gross` against the invoice carries back the same tax (memo x tax_total / total).
 * `taxPaid`: how much of the invoice's tax is paid, counting what is still open on it as unpaid tax first.
 */
export async function withInvoiceTax(conn: Conn, invoiceId: number, net: bigint): Promise<{ gross: bigint; taxPaid: bigint }> {
  const inv = (await conn('documents').where({ id: invoiceId }).first('total', 'tax_total', 'open_amount')) as { total: unknown; tax_total: unknown; open_amount: unknown } | undefined;
  if (!inv) return { gross: net, taxPaid: 0n };
  const [{ p }] = (await conn('document_lines').where({ document_id: invoiceId }).whereNot('kind', 'tax').sum({ p: 'amount' })) as { p: unknown }[];
  const priced = sumToBigInt(p);
  const taxPaid = toBigInt(inv.tax_total) - toBigInt(inv.open_amount);
  const gross = priced > 0n && net > 0n ? mulDivHalfUp(net, toBigInt(inv.total), priced) : net;
  return { gross, taxPaid: taxPaid > 0n ? taxPaid : 0n };
}

/**
 * `net` with the tax the customer paid on it: the invoice's share of tax (withInvoiceTax), at most the invoice's
 * tax that was paid (tax still open on the invoice is not given back); no invoice: no tax.
 */
export async function withPaidTax(conn: Conn, invoiceId: number | null, net: bigint): Promise<bigint> {
  if (invoiceId === null || net <= 0n) return net;
  const { gross, taxPaid } = await withInvoiceTax(conn, invoiceId, net);
  const share = gross - net;
  return net + (share < taxPaid ? share : taxPaid);
}
