import { takeFromCreditHold } from '../../billing/credit-hold';
import type { BillingDocument, DocumentType } from '../../billing/documents-service';
import { AppError, invalid } from '../../domain/errors';
import { formatAmount } from '../../domain/money';
import type { XmlRpcValue } from './codec';
import { done, read, write, type MethodTable } from './method-table';
import { INT_NULL, moneyDouble, sortRows } from './params';

// PBA billing document methods (issue #5, part A). Dates are epoch seconds, money <double> with its exact text.

/** PBA document type codes. */
export const DOC_TYPE: Record<DocumentType, number> = { invoice: 20, payment: 50, refund: 70, credit_memo: 80, debit_memo: 90 };
/** PBA document status codes: 1000 open, 3000 closed, 4000 voided, 5000 refunded. */
const OPEN = 1000;
const CLOSED = 3000;
const VOIDED = 4000;
const REFUNDED = 5000;
/** PBA pay tool types. */
const PAY_TOOL_CARD = 0;
const PAY_TOOL_CHECK = 3;

const seconds = (d: Date | null): number => (d === null ? INT_NULL : Math.floor(d.getTime() / 1000));
const m = (minor: bigint, currency: string) => moneyDouble(formatAmount(minor, currency));
/** ETransStatus: the gateway transaction's state as a number (0 none, i.e. recorded offline). */
const TRANS_STATUS: Record<string, number> = { success: 1, pending: 2, unknown: 3, declined: 4, plugin_failure: 5, voided: 6 };

export const billingMethods: MethodTable = {
  /**
   * (AccountID, Amount) -> [DocID]: a positive Amount raises what the customer owes (a debit memo), a negative one
   * lowers it (a credit memo), in the account's currency; DocID is the memo.
   */
  'BM.AccountBalanceAdjust_API': write(async (p, actor, s) => {
    const accountId = p.int(0, 'AccountID');
    const account = await s.accounts.get(actor, accountId);
    const amount = p.money(1, 'Amount', account.currency);
    const doc = await s.documents.adjustBalance(actor, { accountId, amount, currency: account.currency, description: 'Balance adjustment (AccountBalanceAdjust_API)' });
    return [doc.documentId];
  }),

  /** (VendorAccountID, SortNo) -> rows [AccountID, CompanyName, CurrencyID, Balance]: the balances of a vendor's customers. */
  'BM.GetAccountBalanceList': read(async (p, actor, s) => {
    const vendor = p.optInt(0, 'VendorAccountID') || actor.accountId;
    const rows = await s.documents.listBalances(actor, vendor);
    return sortRows(rows.map((r) => [r.accountId, r.companyName, r.currency, m(r.balance, r.currency)]), p.optInt(1, 'SortNo'));
  }),

  /**
   * (DocID) -> [DocID, DocNum, DocType, Status, CurrencyID, Total, TaxTotal, DocBBalance, AvailBal, Vendor_AccountID,
   * Customer_AccountID, Crtd_DateTime, Crtd_User_UsersID, DocDate, Description, BranchID, SalesID, PayToolID,
   * ETransStatus, FromIP, AuthCode, TrNumber, PTransActivityID, Benef_AccountID, PluginID, ChrgAttempts, PayToolType]
   * of a payment (50) or refund (70) document.
   */
  'BM.PaymentInfoGet_API': read(async (p, actor, s) => {
    const docId = p.int(0, 'DocID');
    const d = await s.documents.getDocument(actor, docId);
    if (d.type !== 'payment' && d.type !== 'refund') {
      const e = new AppError('NOT_FOUND', `Payment ${docId} does not exist.`);
      e.entity = 'Payment';
      e.entityId = String(docId);
      throw e;
    }
    const tx = d.paymentId === null ? null : await s.documents.getPayment(actor, d.paymentId).catch(() => null);
    const row = tx ? ((await s.deps.db('payments').where({ id: tx.paymentId }).first('pay_tool_id', 'gateway_instance_id')) as { pay_tool_id: number | null; gateway_instance_id: number | null }) : null;
    const refunded = d.type === 'payment' ? ((await s.deps.db('documents').where({ related_document_id: d.documentId, type: 'refund' }).sum({ r: 'total' }))[0] as { r: unknown }).r : 0;
    const status = statusOf(d, BigInt(String(refunded ?? 0).split('.')[0] || '0'));
    const gateway = tx !== null && tx.gateway !== null;
    return [
      d.documentId,
      d.number,
      DOC_TYPE[d.type],
      status,
      d.currency,
      m(d.total, d.currency),
      m(d.taxTotal, d.currency),
      m(d.balanceEffect, d.currency),
      m(d.openAmount, d.currency),
      d.vendorId,
      d.accountId,
      seconds(d.createdAt),
      INT_NULL,
      seconds(d.issueDate),
      d.description,
      '',
      '',
      row?.pay_tool_id ?? INT_NULL,
      tx && gateway ? (TRANS_STATUS[tx.status] ?? 0) : 0,
      '',
      '',
      tx?.reference ?? d.reference ?? '',
      tx?.paymentId ?? INT_NULL,
      d.accountId,
      row?.gateway_instance_id ?? INT_NULL,
      gateway ? 1 : 0,
      gateway ? PAY_TOOL_CARD : PAY_TOOL_CHECK,
    ] as XmlRpcValue[];
  }),

  /** (AccountID) -> rows [PayToolID, PayToolType (0 card), Brand, MaskedNumber, ExpDate (MM/YYYY), IsDefault (1/0), GatewayInstanceID] */
  'BM.PayToolListForAccountGet_API': read(async (p, actor, s) => {
    const tools = await s.payments.listPayTools(actor, p.int(0, 'AccountID'));
    return tools.map((t) => [t.payToolId, PAY_TOOL_CARD, t.brand, `**** ${t.last4}`, `${String(t.expMonth).padStart(2, '0')}/${t.expYear}`, t.isDefault ? 1 : 0, t.gatewayInstanceId]);
  }),

  /**
   * (ID, Kind, SortNo) -> rows [DocID, DocNum, DocType, AppliedAmount, CurrencyID, AppliedDate]: what was applied to
   * document ID, or what it was applied to (Kind 2); with Kind 1, ID is an order and the rows are what was applied
   * to that order's documents.
   */
  'BM.AppliedDocsListGet_API': read(async (p, actor, s) => {
    const id = p.int(0, 'ID');
    const kind = p.int(1, 'Kind');
    if (kind !== 1 && kind !== 2) throw invalid('Params[1] (Kind)', 'Kind must be 1 (an order) or 2 (a document).');
    let docIds: number[];
    if (kind === 1) {
      await s.orders.get(actor, id);
      docIds = ((await s.deps.db('documents').where({ order_id: id }).pluck('id')) as unknown[]).map(Number);
    } else docIds = [(await s.documents.getDocument(actor, id)).documentId];
    const rows: XmlRpcValue[][] = [];
    for (const docId of docIds) {
      const doc = await s.documents.getDocument(actor, docId);
      for (const a of await s.documents.listApplications(actor, docId)) {
        const other = a.sourceDocumentId === docId ? { id: a.targetDocumentId, num: a.targetNumber, type: a.targetType } : { id: a.sourceDocumentId, num: a.sourceNumber, type: a.sourceType };
        rows.push([other.id, other.num, DOC_TYPE[other.type], m(a.amount, doc.currency), doc.currency, seconds(a.createdAt)]);
      }
    }
    return sortRows(rows, p.optInt(2, 'SortNo'));
  }),
  /**
   * (SubscriptionID, ReasonID, Comment) -> {Status}: takes a subscription suspended for non-payment (credit hold)
   * back: resumed through its gate (in the background, like SubscriptionStatusUpdate_API), once nothing on its
   * account is overdue (src/billing/credit-hold.ts). NOT_ALLOWED when it is not on credit hold or the account still
   * owes an overdue amount; ReasonID and Comment are kept in the audit record and the event.
   */
  'BM.SubscriptionTakeFromCreditHold_API': write(async (p, actor, s) => {
    const id = p.int(0, 'SubscriptionID');
    const reasonId = p.optInt(1, 'ReasonID');
    const comment = p.optStr(2, 'Comment')?.trim() ?? '';
    const reason = [reasonId ? `Reason ${reasonId}` : '', comment].filter(Boolean).join(': ');
    const r = await takeFromCreditHold(s.deps, s.tasks, actor, id, { reason });
    return done(`Task ${r.taskId}.`);
  }),
};

function statusOf(d: BillingDocument, refunded: bigint): number {
  if (d.status === 'void') return VOIDED;
  if (d.type === 'payment' && refunded > 0n && refunded >= d.total) return REFUNDED;
  return d.openAmount > 0n ? OPEN : CLOSED;
}
