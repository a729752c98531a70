import { recordChange } from '../audit/record-change';
import type { Actor } from '../context';
import type { Tx } from '../db/knex';

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
}

/**
 * THE hook for money an order owes the customer as a credit rather than a refund (a cancellation with cancelType
 * credit; a downgrade's negative amount). Called in the order's transaction when the order applies it. Today it
 * records the credit as due (audit + event `order.credit_due`, and the order's 'credit' line says how much);
 * turning it into a credit memo on the account is for the billing documents: replace the body with the credit
 * memo's creation, keeping this signature.
 */
export async function issueOrderCredit(tx: Tx, actor: Actor, at: Date, credit: CreditDue): Promise<void> {
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
