import type { BillingDocument, DocumentWithLines, PaymentView } from '../../billing/documents-service';
import { AppError, invalid } from '../../domain/errors';
import { positiveId } from '../../domain/fields';
import type { Services } from '../../services';
import type { SoapOperation } from './soap-mount';
import { compact, dateTime, decimal, int, money, text } from './wire';

// SOAP operations of billing documents: invoices, payments, refunds and balances (issue #5, part A).
// Every response follows the XSD sequence of wsdl/BillingService.wsdl.

const read = (run: SoapOperation['run']): SoapOperation => ({ mutating: false, run });
const write = (run: SoapOperation['run']): SoapOperation => ({ mutating: true, run });

const INVOICE_STATUSES = ['draft', 'open', 'partially_paid', 'paid', 'overdue', 'void'] as const;
type WireInvoiceStatus = (typeof INVOICE_STATUSES)[number];

/** The WSDL's richer invoice status, worked out from the stored one, the open amount and the due date. */
export function invoiceStatus(d: BillingDocument, now: Date): WireInvoiceStatus {
  if (d.status === 'paid' || d.status === 'void') return d.status;
  if (d.dueDate && d.dueDate.getTime() < now.getTime()) return 'overdue';
  if (d.openAmount < d.total) return 'partially_paid';
  return 'open';
}

export function invoiceWire(d: BillingDocument | DocumentWithLines, now: Date, withLines: boolean) {
  return compact({
    invoiceId: d.documentId,
    number: d.number,
    accountId: d.accountId,
    status: invoiceStatus(d, now),
    issueDate: dateTime(d.issueDate),
    dueDate: d.dueDate ? dateTime(d.dueDate) : undefined,
    currency: d.currency,
    subtotal: decimal(d.subtotal, d.currency),
    tax: decimal(d.taxTotal, d.currency),
    total: decimal(d.total, d.currency),
    balanceDue: decimal(d.openAmount, d.currency),
    lines:
      withLines && 'lines' in d
        ? {
            line: d.lines.map((l) =>
              compact({
                description: l.description,
                subscriptionId: l.subscriptionId ?? undefined,
                periodStart: l.periodStart ? dateTime(l.periodStart) : undefined,
                periodEnd: l.periodEnd ? dateTime(l.periodEnd) : undefined,
                quantity: l.quantity,
                unitPrice: decimal(l.unitPrice, d.currency),
                amount: decimal(l.amount, d.currency),
                kind: l.kind,
              }),
            ),
          }
        : undefined,
  });
}

export function paymentWire(p: PaymentView) {
  return compact({
    paymentId: p.paymentId,
    accountId: p.accountId,
    invoiceId: p.invoiceId ?? undefined,
    kind: p.kind,
    status: p.status,
    amount: decimal(p.amount, p.currency),
    currency: p.currency,
    method: p.method,
    gateway: p.gateway ?? undefined,
    reference: p.reference ?? undefined,
    createdAt: dateTime(p.createdAt),
  });
}

function since(v: unknown, field: string): Date | undefined {
  const t = text(v)?.trim();
  if (!t) return undefined;
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) throw invalid(field, `${field} must be an xsd:dateTime such as 2026-01-31T00:00:00Z.`);
  return d;
}

function currencyArg(v: unknown): string {
  const c = text(v)?.trim();
  if (!c) throw invalid('currency', 'currency is required.');
  return c;
}

export function billingDocumentOps(services: Services): Record<string, SoapOperation> {
  const docs = services.documents;
  const now = () => services.deps.clock.now();
  return {
    ListInvoices: read(async (a, actor) => {
      const wanted = text(a.status)?.trim() || undefined;
      if (wanted !== undefined && !(INVOICE_STATUSES as readonly string[]).includes(wanted)) throw invalid('status', `status must be one of ${INVOICE_STATUSES.join(', ')}.`);
      const accountId = int(a.accountId, 'accountId') as number;
      const base = { accountId, types: ['invoice' as const], from: since(a.from, 'from'), to: since(a.to, 'to') };
      const at = now();
      if (wanted === undefined || wanted === 'paid' || wanted === 'void' || wanted === 'draft') {
        // draft: invoices are issued as they are made, so none is ever a draft.
        if (wanted === 'draft') return { invoices: { invoice: [] }, total: 0 };
        const r = await docs.listDocuments(actor, { ...base, status: wanted, page: int(a.page, 'page'), pageSize: int(a.pageSize, 'pageSize') });
        return { invoices: { invoice: r.documents.map((d) => invoiceWire(d, at, false)) }, total: r.total };
      }
      // open / partially_paid / overdue are views of the stored 'open': filter, then page.
      const all = await docs.listDocuments(actor, { ...base, status: 'open', page: 1, pageSize: 500 });
      let rows = all.documents;
      for (let page = 2; rows.length < all.total; page++) rows = rows.concat((await docs.listDocuments(actor, { ...base, status: 'open', page, pageSize: 500 })).documents);
      const matching = rows.filter((d) => invoiceStatus(d, at) === wanted);
      const page = int(a.page, 'page') ?? 1;
      const pageSize = int(a.pageSize, 'pageSize') ?? 50;
      if (page < 1) throw invalid('page', 'page must be a positive whole number.');
      if (pageSize < 1 || pageSize > 500) throw invalid('pageSize', 'pageSize may be from 1 to 500.');
      return { invoices: { invoice: matching.slice((page - 1) * pageSize, page * pageSize).map((d) => invoiceWire(d, at, false)) }, total: matching.length };
    }),

    GetInvoice: read(async (a, actor) => {
      const d = await docs.getDocument(actor, positiveId(int(a.invoiceId, 'invoiceId'), 'invoiceId'));
      if (d.type !== 'invoice') throw new AppError('NOT_FOUND', `Invoice ${d.documentId} does not exist (document ${d.number} is a ${d.type.replace('_', ' ')}).`);
      return { invoice: invoiceWire(d, now(), true) };
    }),

    PayInvoice: write(async (a, actor) => {
      const r = await docs.payInvoice(actor, {
        invoiceId: int(a.invoiceId, 'invoiceId') as number,
        payToolId: int(a.payToolId, 'payToolId'),
        idempotencyKey: text(a.idempotencyKey),
      });
      if (r.outcome === 'declined') throw new AppError('PAYMENT_DECLINED', `Payment ${r.paymentId} of invoice ${r.invoiceNumber} was declined: ${r.message ?? r.failureCode ?? 'no reason given'}. Nothing was applied.`, 'payToolId');
      if (r.outcome === 'failed') throw new AppError('PROVIDER_ERROR', `Payment ${r.paymentId} of invoice ${r.invoiceNumber} failed in the payment plugin: ${r.message ?? 'no reason given'}. Nothing was applied.`);
      return { payment: paymentWire(await docs.getPayment(actor, r.paymentId)) };
    }),

    RecordPayment: write(async (a, actor) => {
      const currency = currencyArg(a.currency);
      const amount = money(a.amount, currency, 'amount');
      if (amount === undefined) throw invalid('amount', 'amount is required.');
      const doc = await docs.recordPayment(actor, {
        accountId: int(a.accountId, 'accountId') as number,
        amount,
        currency,
        method: text(a.method) as never,
        reference: text(a.reference),
        idempotencyKey: text(a.idempotencyKey),
      });
      return { payment: paymentWire(await docs.getPayment(actor, doc.paymentId!)) };
    }),

    RefundPayment: write(async (a, actor) => {
      const paymentId = int(a.paymentId, 'paymentId') as number;
      const original = await docs.getPayment(actor, paymentId);
      const r = await docs.refundPayment(actor, {
        paymentId,
        amount: money(a.amount, original.currency, 'amount'),
        reason: text(a.reason),
        idempotencyKey: text(a.idempotencyKey),
      });
      if (r.outcome === 'declined') throw new AppError('PAYMENT_DECLINED', `The gateway refused refund ${r.paymentId} of payment ${paymentId}: ${r.message ?? 'no reason given'}.`);
      if (r.outcome === 'failed') throw new AppError('PROVIDER_ERROR', `Refund ${r.paymentId} of payment ${paymentId} failed in the payment plugin: ${r.message ?? 'no reason given'}.`);
      return { payment: paymentWire(await docs.getPayment(actor, r.paymentId!)) };
    }),

    ListPayments: read(async (a, actor) => {
      const r = await docs.listPayments(actor, int(a.accountId, 'accountId') as number, { page: int(a.page, 'page'), pageSize: int(a.pageSize, 'pageSize') });
      return { payments: { payment: r.payments.map(paymentWire) }, total: r.total };
    }),

    GetAccountBalance: read(async (a, actor) => {
      const b = await docs.getBalance(actor, int(a.accountId, 'accountId') as number);
      return { balance: decimal(b.balance, b.currency), currency: b.currency };
    }),

    AdjustBalance: write(async (a, actor) => {
      const currency = currencyArg(a.currency);
      const amount = money(a.amount, currency, 'amount');
      if (amount === undefined) throw invalid('amount', 'amount is required.');
      const accountId = int(a.accountId, 'accountId') as number;
      const reason = text(a.reason)?.trim();
      if (!reason) throw invalid('reason', 'reason is required: it is printed on the memo.');
      await docs.adjustBalance(actor, { accountId, amount, currency, description: reason, idempotencyKey: text(a.idempotencyKey) });
      const b = await docs.getBalance(actor, accountId);
      return { balance: decimal(b.balance, b.currency), currency: b.currency };
    }),
  };
}
