import { recordChange } from '../audit/record-change';
import type { Actor } from '../context';
import type { Tx } from '../db/knex';
import { ledgerWithoutListeners, type OrderLedger } from '../billing/documents-service';

export interface CreditDue {
  orderId: number;
  orderNumber: string;
  accountId: number;
  vendorAccountId: number;
  subscriptionId: number;
  /** Minor units, above 0: what the account is owed. */
  amount: bigint;
  currency: string;
  reason: string;
  /**
   * Where the credited money was paid: the invoice (a downgrade: the current term's), or the gateway payment (a
   * cancellation: the term's payment; the invoice it paid). The memo is then written against that invoice, carrying
   * its share of tax, when the invoice can still be credited that much.
   */
  invoiceId?: number;
  paymentId?: number;
}

/**
 * THE hook for money an order owes the customer as a credit rather than a refund (a cancellation with cancelType
 * credit; a downgrade's negative amount). Called in the order's transaction when the order applies it: a credit
 * memo on the account for the amount (orderId set; applied at once to the account's open debits, oldest due
 * first, like any credit memo) and the audit record + event `order.credit_due` as before. `ledger` is the
 * application's DocumentsService (its invoice-paid listeners run when the memo pays an invoice); without it a
 * ledger without listeners writes the same documents.
 */
export async function issueOrderCredit(tx: Tx, actor: Actor, at: Date, credit: CreditDue, ledger: OrderLedger = ledgerWithoutListeners()): Promise<void> {
  const room = credit.invoiceId ? await ledger.invoiceCreditTx(tx, credit.invoiceId) : credit.paymentId ? await ledger.paidInvoiceTx(tx, credit.paymentId) : undefined;
  const paid = room && room.left >= credit.amount ? room : undefined;
  await ledger.memoTx(tx, actor, at, 'credit_memo', {
    accountId: credit.accountId,
    amount: credit.amount,
    currency: credit.currency,
    description: `Order ${credit.orderNumber}: ${credit.reason}${paid ? ` (credit of ${paid.number})` : ''}`.slice(0, 1024),
    orderId: credit.orderId,
    invoiceId: paid?.id,
  });
  await recordChange(tx, actor, at, {
    operation: 'RecordOrderCredit',
    objectType: 'order',
    objectId: credit.orderId,
    details: { subscriptionId: credit.subscriptionId, amount: credit.amount.toString(), currency: credit.currency, reason: credit.reason },
    event: {
      name: 'order.credit_due',
      accountId: credit.accountId,
      payload: { orderId: credit.orderId, orderNumber: credit.orderNumber, accountId: credit.accountId, vendorAccountId: credit.vendorAccountId, subscriptionId: credit.subscriptionId, amount: credit.amount.toString(), currency: credit.currency, reason: credit.reason },
    },
  });
}
