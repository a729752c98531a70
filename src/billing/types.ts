// Types shared by the documents service (invoices, memos, payments) and the billing run.
// Money is bigint minor units of the document's currency; instants are Dates (epoch ms in the database).

import type { FixedTax } from './taxes';

export type DocumentType = 'invoice' | 'credit_memo' | 'debit_memo' | 'payment' | 'refund';
export const DOCUMENT_TYPES: readonly DocumentType[] = ['invoice', 'credit_memo', 'debit_memo', 'payment', 'refund'];

/** Invoices and debit memos: open | paid | void. Payments, refunds and credit memos: issued. */
export type DocumentStatus = 'open' | 'paid' | 'void' | 'issued';

export type LineKind =
  | 'setup'
  | 'recurring'
  | 'renewal'
  | 'trial_conversion'
  | 'overage'
  | 'resource'
  | 'late_fee'
  | 'proration'
  | 'adjustment'
  /** A domain's registration, transfer or renewal. */
  | 'domain'
  | 'tax';

export type PaymentMethod = 'gateway' | 'check' | 'wire' | 'cash' | 'external';
export const OFFLINE_METHODS: readonly PaymentMethod[] = ['check', 'wire', 'cash', 'external'];

export interface InvoiceLineInput {
  kind: LineKind;
  description: string;
  subscriptionId?: number | null;
  resourceId?: number | null;
  periodStart?: Date | null;
  periodEnd?: Date | null;
  /** Decimal text with at most 4 decimals, e.g. "1" or "12.5". */
  quantity: string;
  unitPrice: bigint;
  /** The line's amount as printed: net of tax when the vendor's tax is exclusive, tax included when inclusive. */
  amount: bigint;
  /** billing_charges.id this line bills (a charge lands on one invoice: unique). */
  chargeId?: number | null;
}

export interface IssueInvoiceInput {
  vendorId: number;
  accountId: number;
  currency: string;
  issueDate: Date;
  /** Default: issueDate + the vendor's invoice_due_days. */
  dueDate?: Date;
  orderId?: number | null;
  description?: string;
  lines: InvoiceLineInput[];
  /** An order's tax, charged at checkout: the invoice carries exactly it (taxes.ts linesTax), whatever the rule says now. */
  tax?: FixedTax;
}

export interface IssuedInvoice {
  documentId: number;
  number: string;
  accountId: number;
  vendorId: number;
  currency: string;
  /** Net of tax. */
  subtotal: bigint;
  taxTotal: bigint;
  /** subtotal + taxTotal: what the customer owes. */
  total: bigint;
  dueDate: Date;
}

export interface DocumentLine {
  position: number;
  kind: LineKind;
  description: string;
  subscriptionId: number | null;
  resourceId: number | null;
  periodStart: Date | null;
  periodEnd: Date | null;
  quantity: string;
  unitPrice: bigint;
  amount: bigint;
  taxAmount: bigint;
  chargeId: number | null;
}

export interface BillingDocument {
  documentId: number;
  vendorId: number;
  accountId: number;
  type: DocumentType;
  number: string;
  status: DocumentStatus;
  currency: string;
  subtotal: bigint;
  taxTotal: bigint;
  total: bigint;
  /** What the document adds to the account's balance (+ owed by the customer, - in the customer's favour). */
  balanceEffect: bigint;
  /** Invoices/debit memos: still to pay; payments/credit memos: still to apply. */
  openAmount: bigint;
  issueDate: Date;
  dueDate: Date | null;
  paidAt: Date | null;
  relatedDocumentId: number | null;
  paymentId: number | null;
  orderId: number | null;
  method: PaymentMethod | null;
  reference: string | null;
  description: string;
  createdAt: Date;
}

export interface DocumentWithLines extends BillingDocument {
  lines: DocumentLine[];
}

export interface Application {
  sourceDocumentId: number;
  sourceNumber: string;
  sourceType: DocumentType;
  targetDocumentId: number;
  targetNumber: string;
  targetType: DocumentType;
  amount: bigint;
  createdAt: Date;
}

/** What a paid invoice tells its listeners (the billing run extends a renewed subscription). */
export interface InvoicePaidEvent {
  documentId: number;
  number: string;
  accountId: number;
  vendorId: number;
  currency: string;
  total: bigint;
  paidAt: Date;
}
