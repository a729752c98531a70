import crypto from 'node:crypto';
import { scopedAccount, type AccountRow } from '../accounts/scope';
import { recordChange } from '../audit/record-change';
import type { Actor, Deps } from '../context';
import { isSqlite, money, sumToBigInt, toBigInt, toNumber, toOptionalNumber, type Conn, type Db, type Tx } from '../db/knex';
import { insertBatched } from '../db/batch';
import { updateByKey } from '../db/case-update';
import { inTransaction, takeWriteLock } from '../db/transaction';
import { currency as currencyOf } from '../domain/currency';
import { AppError, conflict, invalid, notAllowed, notFound } from '../domain/errors';
import { oneOf, optionalText, paging, positiveId, requiredText } from '../domain/fields';
import { formatAmount, mulDivHalfUp } from '../domain/money';
import { idempotent } from '../idempotency';
import type { PaymentsService } from '../payments/payments-service';
import { derivedGatewayKey, isOrderRefundKey, type Payment } from '../payments/payment-records';
import { recordChanges, type BulkChange } from '../audit/record-changes';
import { billingSettingsOfMany } from './settings';
import { orderInvoiceLines, orderTaxFigures, quantityText } from './order-tax';
import { linesTax, TaxTable } from './taxes';
import {
  DOCUMENT_TYPES,
  OFFLINE_METHODS,
  type Application,
  type BillingDocument,
  type DocumentLine,
  type DocumentStatus,
  type DocumentType,
  type DocumentWithLines,
  type InvoicePaidEvent,
  type IssueInvoiceInput,
  type IssuedInvoice,
  type LineKind,
  type PaymentMethod,
} from './types';
import { addTo } from '../domain/group';

export type * from './types';

const DAY = 86_400_000;
const MAX_AMOUNT = 2n ** 62n;
const QUANTITY = /^\d{1,16}(\.\d{1,4})?$/;

export const NUMBER_PREFIX: Record<DocumentType, string> = {
  invoice: 'INV',
  credit_memo: 'CM',
  debit_memo: 'DM',
  payment: 'PAY',
  refund: 'RF',
};

/** "INV-000042": gapless per vendor and type. */
export function formatNumber(type: DocumentType, n: bigint | number): string {
  return `${NUMBER_PREFIX[type]}-${String(n).padStart(6, '0')}`;
}

/** Documents that add to what the customer owes, and can be paid. */
const DEBIT_TYPES: readonly DocumentType[] = ['invoice', 'debit_memo', 'refund'];
/** Documents in the customer's favour, applied to debits. */
const CREDIT_TYPES: readonly DocumentType[] = ['payment', 'credit_memo'];

export interface DocumentRow {
  id: number;
  vendor_id: number;
  account_id: number;
  type: DocumentType;
  number: string;
  status: DocumentStatus;
  currency: string;
  subtotal: unknown;
  tax_total: unknown;
  total: unknown;
  balance_effect: unknown;
  open_amount: unknown;
  issue_date: number;
  due_date: number | null;
  paid_at: number | null;
  related_document_id: number | null;
  payment_id: number | null;
  order_id: number | null;
  method: PaymentMethod | null;
  reference: string | null;
  description: string;
  created_by_user_id: number | null;
  created_at: number;
  updated_at: number;
}

interface LineRow {
  document_id: number;
  position: number;
  kind: LineKind;
  description: string;
  subscription_id: number | null;
  resource_id: number | null;
  period_start: number | null;
  period_end: number | null;
  quantity: unknown;
  unit_price: unknown;
  amount: unknown;
  tax_amount: unknown;
  charge_id: number | null;
}

const optDate = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(toNumber(v)));

export function toDocument(r: DocumentRow): BillingDocument {
  return {
    documentId: toNumber(r.id),
    vendorId: toNumber(r.vendor_id),
    accountId: toNumber(r.account_id),
    type: r.type,
    number: r.number,
    status: r.status,
    currency: r.currency,
    subtotal: toBigInt(r.subtotal),
    taxTotal: toBigInt(r.tax_total),
    total: toBigInt(r.total),
    balanceEffect: toBigInt(r.balance_effect),
    openAmount: toBigInt(r.open_amount),
    issueDate: new Date(toNumber(r.issue_date)),
    dueDate: optDate(r.due_date),
    paidAt: optDate(r.paid_at),
    relatedDocumentId: toOptionalNumber(r.related_document_id),
    paymentId: toOptionalNumber(r.payment_id),
    orderId: toOptionalNumber(r.order_id),
    method: r.method ?? null,
    reference: r.reference ?? null,
    description: r.description,
    createdAt: new Date(toNumber(r.created_at)),
  };
}

function toLine(r: LineRow): DocumentLine {
  return {
    position: toNumber(r.position),
    kind: r.kind,
    description: r.description,
    subscriptionId: toOptionalNumber(r.subscription_id),
    resourceId: toOptionalNumber(r.resource_id),
    periodStart: optDate(r.period_start),
    periodEnd: optDate(r.period_end),
    quantity: quantityText(r.quantity),
    unitPrice: toBigInt(r.unit_price),
    amount: toBigInt(r.amount),
    taxAmount: toBigInt(r.tax_amount),
    chargeId: toOptionalNumber(r.charge_id),
  };
}

function amountArg(value: unknown, field: string, opts: { allowZero?: boolean; allowNegative?: boolean } = {}): bigint {
  if (typeof value !== 'bigint') throw invalid(field, `${field} must be an amount in minor units.`);
  if (value > MAX_AMOUNT || value < -MAX_AMOUNT) throw invalid(field, `${field} is too large.`);
  if (!opts.allowNegative && value < 0n) throw invalid(field, `${field} must not be negative.`);
  if (!opts.allowZero && value === 0n) throw invalid(field, `${field} must not be 0.`);
  return value;
}

/** A system actor at a vendor, for changes the billing run makes. */
export function billingActor(vendorId: number): Actor {
  return { userId: null, accountId: vendorId, accountPath: '', accountType: 'provider', roles: ['admin'], channel: 'job' };
}

/** Reserves `count` consecutive numbers of a vendor's sequence in the caller's transaction: gapless, one update. */
export async function reserveNumbers(tx: Tx, vendorId: number, type: DocumentType, count: number): Promise<bigint> {
  const bump = () => tx('document_sequences').where({ vendor_id: vendorId, type }).increment('last_number', count);
  let updated = await bump();
  if (!updated) {
    // First document of this type for the vendor: create the counter (a concurrent creator wins harmlessly).
    await tx('document_sequences').insert({ vendor_id: vendorId, type, last_number: 0 }).onConflict(['vendor_id', 'type']).ignore();
    updated = await bump();
  }
  const row = (await tx('document_sequences').where({ vendor_id: vendorId, type }).first('last_number')) as { last_number: unknown };
  return toBigInt(row.last_number) - BigInt(count) + 1n;
}

/** Numbers for documents of one type, in the order of their vendors: each vendor's as one block of its sequence. */
async function numberBlocks(tx: Tx, type: DocumentType, vendorIds: readonly number[]): Promise<string[]> {
  const count = new Map<number, number>();
  for (const v of vendorIds) count.set(v, (count.get(v) ?? 0) + 1);
  const next = new Map<number, bigint>();
  for (const v of [...count.keys()].sort((a, b) => a - b)) next.set(v, await reserveNumbers(tx, v, type, count.get(v)!));
  return vendorIds.map((v) => {
    const n = next.get(v)!;
    next.set(v, n + 1n);
    return formatNumber(type, n);
  });
}

/** The ids of documents just inserted, by (vendor, number): exact on both databases whatever the auto-increment mode. */
async function documentIdsByNumber(tx: Tx, type: DocumentType, docs: readonly { vendorId: number; number: string }[]): Promise<number[]> {
  const byVendor = new Map<number, string[]>();
  for (const d of docs) addTo(byVendor, d.vendorId, d.number);
  const ids = new Map<string, number>();
  for (const [vendorId, list] of byVendor) {
    for (let i = 0; i < list.length; i += 500) {
      const rows = (await tx('documents').where({ vendor_id: vendorId, type }).whereIn('number', list.slice(i, i + 500)).select('id', 'number')) as { id: number; number: string }[];
      for (const r of rows) ids.set(`${vendorId}:${r.number}`, toNumber(r.id));
    }
  }
  return docs.map((d) => ids.get(`${d.vendorId}:${d.number}`)!);
}

/** Called in the transaction that marks invoices paid in full, with all the invoices it paid. */
export type InvoicesPaidListener = (tx: Tx, events: readonly InvoicePaidEvent[]) => Promise<void>;
/** The same, one invoice at a time. */
export type InvoicePaidListener = (tx: Tx, event: InvoicePaidEvent) => Promise<void>;

interface NewPaymentDocument {
  vendorId: number;
  accountId: number;
  amount: bigint;
  currency: string;
  method: PaymentMethod;
  reference: string | null;
  description: string;
  paymentId: number | null;
  issueDate: Date;
}

export interface PayInvoiceInput {
  invoiceId: number;
  /** The account's default pay tool when absent. */
  payToolId?: number;
  /** The caller's key: the same key charges the gateway at most once and answers the same outcome. */
  idempotencyKey?: string;
}

export type PayOutcome = 'paid' | 'declined' | 'pending' | 'unknown' | 'failed';

export interface PayInvoiceResult {
  outcome: PayOutcome;
  invoiceId: number;
  invoiceNumber: string;
  /** The gateway transaction (payments table). */
  paymentId: number;
  /** The payment document, when the charge succeeded. */
  paymentDocumentId: number | null;
  amount: bigint;
  currency: string;
  /** The gateway's reason when declined or failed. */
  message: string | null;
  failureCode: string | null;
}

export interface RecordPaymentInput {
  accountId: number;
  amount: bigint;
  currency?: string;
  method: PaymentMethod;
  reference?: string;
  /** Applied to this invoice first, then to the other open ones (oldest due first). */
  invoiceId?: number;
  receivedAt?: Date;
  description?: string;
  idempotencyKey?: string;
}

export interface MemoInput {
  accountId: number;
  amount: bigint;
  currency?: string;
  description: string;
  /** The issued invoice this memo corrects (its tax share is worked out from the invoice). */
  invoiceId?: number;
  idempotencyKey?: string;
}

export interface RefundInput {
  /** The payment document to refund ... */
  paymentDocumentId?: number;
  /** ... or the payment transaction (payments table), as the SOAP door names it. */
  paymentId?: number;
  /** Default: what is left to refund of the payment. */
  amount?: bigint;
  reason?: string;
  idempotencyKey?: string;
}

export type RefundOutcome = 'refunded' | 'pending' | 'unknown' | 'declined' | 'failed';

export interface RefundResult {
  outcome: RefundOutcome;
  refundDocumentId: number | null;
  refundNumber: string | null;
  /** The gateway refund transaction, for a payment made through a gateway. */
  paymentId: number | null;
  amount: bigint;
  currency: string;
  message: string | null;
}

/** A payment transaction as the doors show it. */
export interface PaymentView {
  paymentId: number;
  accountId: number;
  invoiceId: number | null;
  kind: 'payment' | 'refund';
  /** pending | success | declined | plugin_failure | unknown | voided */
  status: string;
  amount: bigint;
  currency: string;
  /** card for a gateway payment; check | wire | cash | external for a recorded one. */
  method: 'card' | PaymentMethod;
  /** The gateway instance's name; null for a recorded payment. */
  gateway: string | null;
  reference: string | null;
  /** The payment or refund document, once there is one. */
  documentId: number | null;
  message: string | null;
  createdAt: Date;
}

/**
 * Money an operator records (offline payments, refunds, memos, balance adjustments) is recorded by the account's
 * vendor or an account above it, never by the account itself: a customer (or a reseller, for what its own vendor
 * bills it) could otherwise mark its own invoices paid. Scoping (NOT_FOUND outside the subtree) is checked as well.
 */
function refuseOwnAccount(actor: Actor, accountId: unknown, what: string, field = 'accountId'): void {
  if (actor.userId !== null && Number(accountId) === actor.accountId) {
    throw notAllowed(`Only the account's vendor (an account above it) may ${what} for account ${actor.accountId}; an account cannot do it for itself.`, field);
  }
}

/**
 * What an account owes in its own currency (GetAccount's balance): the sum of its documents' balance effects, as
 * a scalar SQL expression with one parameter, the account id, that AccountsService reads in the same statement as
 * the account (NULL when it has no document). It names no column of the outer query, so SQLite evaluates it once
 * per statement, not once per contact row of the account read.
 */
export const ACCOUNT_BALANCE_SQL =
  '(SELECT SUM(d.balance_effect) FROM documents d JOIN accounts da ON da.id = d.account_id WHERE d.account_id = ? AND d.currency = da.currency)';

export interface AccountBalance {
  accountId: number;
  currency: string;
  /** What the customer owes: the sum of its documents' balance effects (negative: in credit). */
  balance: bigint;
  /** Sum of open invoices, debit memos and refunds still to pay. */
  openDebits: bigint;
  /** Payments and credit memos not yet applied. */
  unappliedCredits: bigint;
  /** Open amounts already past their due date. */
  overdue: bigint;
  /** Balances in other currencies than the account's, if any. */
  others: { currency: string; balance: bigint }[];
}

export interface ListDocumentsFilter {
  accountId?: number;
  types?: DocumentType[];
  status?: DocumentStatus;
  from?: Date;
  to?: Date;
  page?: number;
  pageSize?: number;
}

interface AttemptRow {
  gateway_key: string;
  document_id: number;
  account_id: number;
  amount: unknown;
  currency: string;
  payment_id: number | null;
  outcome: string | null;
  payment_document_id: number | null;
}

type AttemptWithStatus = AttemptRow & { payment_status: string | null; payment_tool_id?: unknown };

/** What settling an attempt reads of its payment. */
interface AttemptPayment {
  status: string;
  amount: unknown;
  currency: string;
  message: string | null;
  failure_code: string | null;
}

/** A new payment attempt on an invoice: the caller's key, the gateway key derived from it, the amount open now. */
interface NewAttempt {
  invoiceId: number;
  number: string;
  accountId: number;
  amount: bigint;
  currency: string;
  callerKey: string;
  gatewayKey: string;
}

/** One invoice of payInvoices: paid, declined ... as payInvoice answers, or skipped with the error payInvoice would throw. */
export type BatchPayResult = PayInvoiceResult | { invoiceId: number; skipped: string; field: string | null; message: string };

/**
 * What paying an invoice under a key comes to (payInvoice's and payInvoices' one decision): the earlier attempt of
 * the same key (answered, never charged again), else a new attempt of the open amount; NOT_ALLOWED when nothing is
 * open, CONFLICT while an earlier payment of it is pending at the gateway.
 */
function payPlan(invoice: DocumentRow, attempts: readonly AttemptWithStatus[], key: string | undefined): { earlier: AttemptWithStatus } | NewAttempt {
  const invoiceId = toNumber(invoice.id);
  const accountId = toNumber(invoice.account_id);
  if (key !== undefined) {
    const earlier = attempts.find((a) => a.gateway_key === derivedGatewayKey(accountId, `pay-invoice:${invoiceId}:${key}`));
    if (earlier && earlier.payment_id !== null) return { earlier };
  }
  const open = toBigInt(invoice.open_amount);
  if (invoice.status !== 'open' || open <= 0n) throw notAllowed(`Invoice ${invoice.number} is ${invoice.status === 'paid' ? 'already paid' : invoice.status}; there is nothing to pay.`, 'invoiceId');
  // A payment not yet applied (pending or unknown at the gateway, or taken and being applied now) may pay the
  // invoice: charging it again could take the money twice.
  const busy = attempts.find((a) => a.outcome === null && (a.payment_status === 'pending' || a.payment_status === 'unknown' || a.payment_status === 'success'));
  if (busy?.payment_status === 'success') throw conflict(`Payment ${String(busy.payment_id)} of invoice ${invoice.number} went through and is being applied to it; nothing more is charged.`, 'invoiceId');
  if (busy) throw conflict(`Payment ${String(busy.payment_id)} of invoice ${invoice.number} is still pending at the gateway; it is applied once settled.`, 'invoiceId');
  const callerKey = key !== undefined ? `pay-invoice:${invoiceId}:${key}` : `pay-invoice:${invoiceId}:try-${attempts.length + 1}`;
  return { invoiceId, number: invoice.number, accountId, amount: open, currency: invoice.currency, callerKey, gatewayKey: derivedGatewayKey(accountId, callerKey) };
}

/** The attempt row, written before the gateway is called: a crash in between still finds its payment later. */
function attemptRow(a: NewAttempt, at: Date) {
  return { gateway_key: a.gatewayKey, document_id: a.invoiceId, account_id: a.accountId, amount: money(a.amount), currency: a.currency, payment_id: null, outcome: null, payment_document_id: null, created_at: at.getTime(), settled_at: null };
}

/**
 * The payment attempts of invoices, each with its payment's id and state. The payment is found by the attempt's
 * gateway key: it is written in the same transaction as the attempt, before the attempt's payment_id is set.
 */
async function attemptsOf(conn: Conn, invoiceIds: readonly number[]): Promise<AttemptWithStatus[]> {
  const out: AttemptWithStatus[] = [];
  for (let i = 0; i < invoiceIds.length; i += 500) {
    const rows = (await conn('invoice_payment_attempts as t')
      .leftJoin('payments as p', 'p.idempotency_key', 't.gateway_key')
      .whereIn('t.document_id', invoiceIds.slice(i, i + 500))
      .select('t.*', 'p.id as paid_by', 'p.status as payment_status', 'p.pay_tool_id as payment_tool_id')) as (AttemptWithStatus & { paid_by: unknown })[];
    for (const { paid_by, ...r } of rows) out.push({ ...r, payment_id: r.payment_id ?? (paid_by === null || paid_by === undefined ? null : toNumber(paid_by)) });
  }
  return out;
}

/**
 * Writes new attempts in the caller's transaction (with their pending payments). An attempt of the same key left
 * without a payment (a crash before its charge was written) is charged at the amount open now, not its old one.
 */
async function writeAttemptsTx(tx: Tx, plans: readonly NewAttempt[], at: Date): Promise<Map<string, AttemptRow>> {
  const rows = plans.map((p) => attemptRow(p, at));
  for (let i = 0; i < rows.length; i += 500) await tx('invoice_payment_attempts').insert(rows.slice(i, i + 500)).onConflict('gateway_key').ignore();
  const written = new Map<string, AttemptRow>();
  for (let i = 0; i < rows.length; i += 500) for (const t of (await tx('invoice_payment_attempts').whereIn('gateway_key', rows.slice(i, i + 500).map((r) => r.gateway_key))) as AttemptRow[]) written.set(t.gateway_key, t);
  for (const p of plans) {
    const t = written.get(p.gatewayKey)!;
    if (toBigInt(t.amount) === p.amount && t.currency === p.currency) continue;
    await tx('invoice_payment_attempts').where({ gateway_key: p.gatewayKey }).update({ amount: money(p.amount), currency: p.currency });
    written.set(p.gatewayKey, { ...t, amount: money(p.amount), currency: p.currency });
  }
  return written;
}

/** What the credit memos written against invoice `invoiceId` add up to (what of it is credited already). */
async function creditedTx(conn: Conn, invoiceId: number): Promise<bigint> {
  const [{ c }] = (await conn('documents').where({ related_document_id: invoiceId, type: 'credit_memo' }).sum({ c: 'total' })) as { c: unknown }[];
  return sumToBigInt(c);
}

/**
 * Accounts receivable: invoices, credit and debit memos, payments and refunds as documents. Numbers are gapless
 * per vendor and type (a counter incremented in the issuing transaction); an issued document never changes its
 * lines or totals, only its open amount and status as payments and credits are applied to it. An account's
 * balance is the sum of its documents' balance effects.
 */
export class DocumentsService {
  private readonly paidListeners: InvoicesPaidListener[] = [];

  constructor(
    private readonly deps: Deps,
    private readonly payments: PaymentsService,
  ) {
    // ledgerTx() builds one without a payment service: only the application's instance listens.
    payments?.onRefundSettled((tx, actor, at, refund) => this.refundSettledTx(tx, actor, at, refund));
  }

  /** Called in the transaction that marks an invoice paid in full (the billing run extends a renewal there). */
  onInvoicePaid(listener: InvoicePaidListener): void {
    this.paidListeners.push(async (tx, events) => {
      for (const e of events) await listener(tx, e);
    });
  }

  /** The same for all the invoices one transaction pays (the billing run's auto-pay pays hundreds at once). */
  onInvoicesPaid(listener: InvoicesPaidListener): void {
    this.paidListeners.push(listener);
  }

  // ---- issuing invoices ----

  /**
   * Issues many invoices in the caller's transaction: one sequence update per vendor for all its numbers,
   * batched inserts of documents, lines, audit records and `invoice.issued` events. Taxes are worked out per
   * line from the vendor's rules for the customer's address (none for exempt accounts); an account's unapplied
   * credits are applied to its new invoices at once. Answers in the order of `inputs`.
   */
  async issueInvoices(tx: Tx, at: Date, inputs: readonly IssueInvoiceInput[], actor?: Actor): Promise<IssuedInvoice[]> {
    if (inputs.length === 0) return [];
    const accounts = new Map<number, AccountRow>();
    const accountIds = [...new Set(inputs.map((i) => i.accountId))].sort((a, b) => a - b);
    // The accounts are locked first, in id order, as a payment or credit locks its account before it numbers and
    // applies documents: an invoice numbered first and its account locked (by the FK check of its insert) after
    // deadlocked with a payment recorded at the same moment, every retry (MariaDB).
    for (let i = 0; i < accountIds.length; i += 500) {
      const q = tx('accounts').whereIn('id', accountIds.slice(i, i + 500)).orderBy('id');
      const rows = (await (isSqlite(tx) ? q : q.forUpdate()).select('id', 'vendor_id', 'country', 'state', 'tax_status', 'type', 'path', 'currency')) as AccountRow[];
      for (const r of rows) accounts.set(toNumber(r.id), r);
    }
    const vendorIds = [...new Set(inputs.map((i) => i.vendorId))];
    const taxes = await TaxTable.load(tx, vendorIds);
    const settings = await billingSettingsOfMany(tx, vendorIds);
    const nowMs = at.getTime();

    // Work out every invoice before writing anything: a bad input fails the batch with the input named.
    const planned = inputs.map((input, index) => {
      const where = `inputs[${index}]`;
      const account = accounts.get(input.accountId);
      if (!account) throw invalid(`${where}.accountId`, `Account ${input.accountId} does not exist.`);
      if (toOptionalNumber(account.vendor_id) !== input.vendorId) {
        throw invalid(`${where}.vendorId`, `Account ${input.accountId} is not a customer of vendor ${input.vendorId}.`);
      }
      const code = currencyOf(input.currency).code;
      if (!Array.isArray(input.lines) || input.lines.length === 0) throw invalid(`${where}.lines`, 'An invoice needs at least one line.');
      const rule = taxes.ruleFor({ vendorId: input.vendorId, country: account.country, state: account.state, taxStatus: account.tax_status });
      let subtotal = 0n;
      let taxTotal = 0n;
      input.lines.forEach((l, n) => amountArg(l.amount, `${where}.lines[${n}].amount`, { allowZero: true, allowNegative: true }));
      const taxed = linesTax(input.lines.map((l) => l.amount), rule, input.tax);
      const inclusive = input.tax ? input.tax.inclusive : rule?.inclusive === true;
      const lines = input.lines.map((l, n) => {
        const f = `${where}.lines[${n}]`;
        if (l.kind === 'tax') throw invalid(`${f}.kind`, 'Tax lines are worked out from the tax rules, not given.');
        const quantity = typeof l.quantity === 'string' ? l.quantity : String(l.quantity);
        if (!QUANTITY.test(quantity)) throw invalid(`${f}.quantity`, 'quantity must be a decimal number with at most 4 decimals.');
        amountArg(l.unitPrice, `${f}.unitPrice`, { allowZero: true, allowNegative: true });
        const t = taxed[n]!;
        subtotal += t.net;
        taxTotal += t.tax;
        return {
          position: n + 1,
          kind: l.kind as LineKind,
          description: requiredText(l.description, `${f}.description`, 255),
          subscription_id: l.subscriptionId ?? null,
          resource_id: l.resourceId ?? null,
          period_start: l.periodStart ? l.periodStart.getTime() : null,
          period_end: l.periodEnd ? l.periodEnd.getTime() : null,
          quantity,
          unit_price: money(l.unitPrice),
          amount: money(l.amount),
          tax_amount: money(t.tax),
          charge_id: l.chargeId ?? null,
        };
      });
      if (taxTotal !== 0n) {
        const name = rule?.name ?? 'Tax';
        lines.push({
          position: lines.length + 1,
          kind: 'tax',
          description: inclusive ? `${name} (included)` : name,
          subscription_id: null,
          resource_id: null,
          period_start: null,
          period_end: null,
          quantity: '1',
          unit_price: money(taxTotal),
          amount: money(taxTotal),
          tax_amount: '0',
          charge_id: null,
        });
      }
      const total = subtotal + taxTotal;
      if (total < 0n) throw invalid(`${where}.lines`, 'An invoice cannot total less than 0; issue a credit memo instead.');
      const dueDate = input.dueDate ?? new Date(input.issueDate.getTime() + settings.get(input.vendorId)!.invoiceDueDays * DAY);
      return { input, code, lines, subtotal, taxTotal, total, dueDate, number: '' };
    });

    // Numbers: one counter update per vendor for all of its invoices.
    const numbers = await numberBlocks(tx, 'invoice', planned.map((p) => p.input.vendorId));
    planned.forEach((p, k) => (p.number = numbers[k]!));

    await insertBatched(
      tx,
      'documents',
      planned.map((p) => ({
        vendor_id: p.input.vendorId,
        account_id: p.input.accountId,
        type: 'invoice',
        number: p.number,
        status: p.total === 0n ? 'paid' : 'open',
        currency: p.code,
        subtotal: money(p.subtotal),
        tax_total: money(p.taxTotal),
        total: money(p.total),
        balance_effect: money(p.total),
        open_amount: money(p.total),
        issue_date: p.input.issueDate.getTime(),
        due_date: p.dueDate.getTime(),
        paid_at: p.total === 0n ? nowMs : null,
        related_document_id: null,
        payment_id: null,
        order_id: p.input.orderId ?? null,
        method: null,
        reference: null,
        description: (p.input.description ?? '').slice(0, 1024),
        created_by_user_id: actor?.userId ?? null,
        created_at: nowMs,
        updated_at: nowMs,
      })),
    );

    const ids = await documentIdsByNumber(tx, 'invoice', planned.map((p) => ({ vendorId: p.input.vendorId, number: p.number })));
    const issued: IssuedInvoice[] = planned.map((p, k) => ({
      documentId: ids[k]!,
      number: p.number,
      accountId: p.input.accountId,
      vendorId: p.input.vendorId,
      currency: p.code,
      subtotal: p.subtotal,
      taxTotal: p.taxTotal,
      total: p.total,
      dueDate: p.dueDate,
    }));

    await insertBatched(tx, 'document_lines', planned.flatMap((p, k) => p.lines.map((l) => ({ document_id: issued[k]!.documentId, ...l }))));

    // The charges are now on an invoice (the unique charge_id of document_lines already refuses a second one).
    const chargeIds = planned.flatMap((p) => p.input.lines.map((l) => l.chargeId).filter((c): c is number => typeof c === 'number'));
    for (let i = 0; i < chargeIds.length; i += 500) {
      await tx('billing_charges')
        .whereIn('id', chargeIds.slice(i, i + 500))
        .update({ document_id: tx.raw('(SELECT dl.document_id FROM document_lines dl WHERE dl.charge_id = billing_charges.id)') });
    }

    const changes: BulkChange[] = issued.map((inv, k) => ({
      operation: 'invoice.issue',
      objectType: 'document',
      objectId: inv.documentId,
      details: { number: inv.number, accountId: inv.accountId, total: inv.total, currency: inv.currency, lines: planned[k]!.lines.length },
      event: {
        name: 'invoice.issued',
        objectType: 'document',
        objectId: inv.documentId,
        accountId: inv.accountId,
        payload: { documentId: inv.documentId, number: inv.number, accountId: inv.accountId, vendorId: inv.vendorId, currency: inv.currency, subtotal: inv.subtotal, taxTotal: inv.taxTotal, total: inv.total, dueDate: inv.dueDate.toISOString(), orderId: planned[k]!.input.orderId ?? null },
      },
    }));
    const who = actor ?? billingActor(inputs[0]!.vendorId);
    await recordChanges(tx, who, at, changes);

    // Free invoices are paid as issued.
    await this.firePaid(tx, who, at, issued.filter((inv) => inv.total === 0n).map((inv) => ({ type: 'invoice' as const, e: { documentId: inv.documentId, number: inv.number, accountId: inv.accountId, vendorId: inv.vendorId, currency: inv.currency, total: 0n, paidAt: at } })));

    // Credits the customers already have (a prepayment, a credit memo) pay the new invoices at once.
    const withCredit = await this.accountsWithOpenCredit(tx, [...new Set(issued.filter((i) => i.total > 0n).map((i) => i.accountId))]);
    for (const accountId of withCredit) await this.applyOpenCredits(tx, who, at, accountId);
    return issued;
  }

  /** One invoice, in the caller's transaction. */
  async issueInvoiceTx(tx: Tx, at: Date, input: IssueInvoiceInput, actor?: Actor): Promise<IssuedInvoice> {
    const [one] = await this.issueInvoices(tx, at, [input], actor);
    return one!;
  }

  /** One invoice for an account the actor sees (issued by the account's vendor), in its own transaction. */
  async issueInvoice(actor: Actor, input: Omit<IssueInvoiceInput, 'vendorId' | 'issueDate' | 'currency'> & { currency?: string; issueDate?: Date; idempotencyKey?: string }): Promise<IssuedInvoice> {
    const account = await scopedAccount(this.deps.db, actor, positiveId(input.accountId, 'accountId'));
    if (account.vendor_id === null) throw notAllowed(`Account ${account.id} has no vendor to invoice it.`, 'accountId');
    const { idempotencyKey, ...rest } = input;
    return idempotent(this.deps, actor, idempotencyKey, 'IssueInvoice', rest, async (tx) => {
      const at = this.deps.clock.now();
      return this.issueInvoiceTx(tx, at, { ...rest, vendorId: toNumber(account.vendor_id), currency: rest.currency ?? account.currency, issueDate: rest.issueDate ?? at }, actor);
    });
  }

  // ---- orders in the ledger ----

  /**
   * An order's successful charge, in the transaction of the step that records it: an invoice of the order's lines
   * (orderId set; taxes worked out as for any invoice) and a payment document for the gateway transaction
   * (linked by its payment_id; documents.order_id marks the order's own documents, the invoice and credit memos),
   * applied to it. Once per payment: a repeat (the payment already has its document) answers the first documents.
   * Its lines (orderInvoiceLines) add up to the order's net (an adjustment line for a difference; orders inserted
   * without priced lines get one line of it) and its tax is the order's (priceOrderTaxTx, charged at checkout), so
   * the invoice's total equals the order's total, which the charge paid.
   */
  async recordOrderChargeTx(tx: Tx, actor: Actor, at: Date, orderId: number, paymentId: number): Promise<{ invoiceId: number; paymentDocumentId: number } | null> {
    const earlier = (await tx('documents').where({ type: 'payment', payment_id: paymentId }).first('id')) as { id: number } | undefined;
    if (earlier) {
      const inv = (await tx('documents').where({ type: 'invoice', order_id: orderId }).orderBy('id').first('id')) as { id: number } | undefined;
      return inv ? { invoiceId: toNumber(inv.id), paymentDocumentId: toNumber(earlier.id) } : null;
    }
    const order = (await tx('orders').where({ id: orderId }).first('id', 'order_number', 'vendor_id', 'account_id', 'currency', 'subtotal', 'discount_total', 'tax_total', 'total')) as
      | { id: number; order_number: string; vendor_id: number; account_id: number; currency: string; subtotal: unknown; discount_total: unknown; tax_total: unknown; total: unknown }
      | undefined;
    const payment = (await tx('payments').where({ id: paymentId }).first('amount', 'currency', 'status')) as { amount: unknown; currency: string; status: string } | undefined;
    if (!order || !payment || payment.status !== 'success') return null;
    // The invoice carries the tax the order was priced and charged with, so the charge pays it in full.
    const { net, ...tax } = orderTaxFigures(order);
    const lines = await orderInvoiceLines(tx, { id: toNumber(order.id), order_number: order.order_number }, net);
    const vendorId = toNumber(order.vendor_id);
    const accountId = toNumber(order.account_id);
    const invoice = await this.issueInvoiceTx(tx, at, { vendorId, accountId, currency: order.currency, issueDate: at, dueDate: at, orderId, description: `Order ${order.order_number}`, lines, tax }, actor);
    const paymentDocumentId = await this.insertPayment(tx, actor, at, {
      vendorId,
      accountId,
      amount: toBigInt(payment.amount),
      currency: payment.currency,
      method: 'gateway',
      reference: null,
      description: `Payment of ${invoice.number} (order ${order.order_number})`,
      paymentId,
      issueDate: at,
    });
    if ((await this.applyUpTo(tx, actor, at, paymentDocumentId, invoice.documentId)) > 0n) await this.applyOpenCredits(tx, actor, at, accountId);
    return { invoiceId: invoice.documentId, paymentDocumentId };
  }

  /**
   * An order's charge undone (the saga voided or refunded it after provisioning failed), in the transaction that
   * fails the order: a refund document for the voided or refunded amount and a credit memo for what of the
   * order's invoice is not yet credited, so the account's balance returns to what it was before the order.
   * Nothing when the charge has no payment document or is neither voided nor refunded; once per order.
   */
  async reverseOrderChargeTx(tx: Tx, actor: Actor, at: Date, orderId: number, paymentId: number, reason: string): Promise<{ creditMemoId: number | null; refundDocumentId: number | null }> {
    const none = { creditMemoId: null, refundDocumentId: null };
    const paymentDoc = (await tx('documents').where({ type: 'payment', payment_id: paymentId }).first()) as DocumentRow | undefined;
    if (!paymentDoc) return none;
    if (await tx('documents').where({ order_id: orderId, type: 'credit_memo' }).first('id')) return none;
    const payment = (await tx('payments').where({ id: paymentId }).first('status', 'amount')) as { status: string; amount: unknown };
    const children = (await tx('payments').where({ parent_payment_id: paymentId, status: 'success' }).whereIn('kind', ['void', 'refund']).orderBy('id').select('id', 'kind', 'amount')) as { id: number; kind: string; amount: unknown }[];
    let refundTx: number | null = null;
    let refunded = 0n;
    if (payment.status === 'voided') {
      refundTx = toOptionalNumber(children.find((c) => c.kind === 'void')?.id ?? null);
      refunded = toBigInt(payment.amount);
    } else {
      // A refund already in the ledger (RefundPayment by an operator, settled at once or by the reconciler) has its
      // own refund document: only the order's own refunds are recorded here.
      const documented = new Set(((await tx('documents').where({ type: 'refund' }).whereIn('payment_id', children.map((c) => c.id)).select('payment_id')) as { payment_id: unknown }[]).map((d) => toNumber(d.payment_id)));
      const refunds = children.filter((c) => c.kind === 'refund' && !documented.has(toNumber(c.id)));
      refunded = refunds.reduce((a, c) => a + toBigInt(c.amount), 0n);
      refundTx = refunds.length ? toNumber(refunds[refunds.length - 1]!.id) : null;
    }
    if (refunded <= 0n) return none;
    const accountId = toNumber(paymentDoc.account_id);
    await this.lockAccount(tx, accountId);
    const refundDocumentId = await this.insertRefund(tx, actor, at, paymentDoc, refunded, refundTx, `order ${orderId}: ${reason}`);
    let creditMemoId: number | null = null;
    const invoice = (await tx('documents').where({ type: 'invoice', order_id: orderId }).orderBy('id').first('id', 'total', 'number')) as { id: number; total: unknown; number: string } | undefined;
    if (invoice) {
      const left = toBigInt(invoice.total) - (await creditedTx(tx, toNumber(invoice.id)));
      if (left > 0n) {
        creditMemoId = await this.memoTx(tx, actor, at, 'credit_memo', { accountId, amount: left, description: `Credit of ${invoice.number}: ${reason}`.slice(0, 1024), invoiceId: toNumber(invoice.id), orderId, applyUpTo: true, settleLater: true });
      }
    }
    await this.settleOrderCreditTx(tx, actor, at, accountId, creditMemoId, refundDocumentId);
    return { creditMemoId, refundDocumentId };
  }

  /**
   * A cancellation's refund, or the part of a held order's payment given back when an operator approves it
   * (hold-settlement.ts) (the gateway already paid `amount` back on `paymentId` as refund transaction
   * `refundPaymentId`) into the ledger, in the transaction that completes the cancellation order: a credit memo of
   * the amount against the invoice the payment paid (the cancellation order's id on it; on a paid invoice the credit
   * stays unapplied), then a refund document of the payment document, which takes that credit back. The balance is
   * unchanged (-amount + amount) and every document is settled. `credit`: the memo's amount when it is not the
   * refunded amount (an approved held order credits the undelivered items with their tax; when tax is open on the
   * invoice, the memo also pays it). Nothing when the payment has no payment document;
   * once per refund transaction.
   */
  async refundOnCancellationTx(
    tx: Tx,
    actor: Actor,
    at: Date,
    input: { orderId: number; orderNumber: string; paymentId: number; refundPaymentId: number; amount: bigint; reason: string; credit?: bigint },
  ): Promise<{ creditMemoId: number; refundDocumentId: number } | null> {
    if (input.amount <= 0n) return null;
    const credit = input.credit ?? input.amount;
    const paymentDoc = (await tx('documents').where({ type: 'payment', payment_id: input.paymentId }).first()) as DocumentRow | undefined;
    if (!paymentDoc) return null;
    if (await tx('documents').where({ type: 'refund', payment_id: input.refundPaymentId }).first('id')) return null;
    const accountId = toNumber(paymentDoc.account_id);
    await this.lockAccount(tx, accountId);
    const paid = await this.paidInvoiceTx(tx, input.paymentId);
    const creditMemoId = await this.memoTx(tx, actor, at, 'credit_memo', {
      accountId,
      amount: credit,
      currency: paymentDoc.currency,
      description: `Order ${input.orderNumber}: ${input.reason}${paid ? ` (credit of ${paid.number})` : ''}`.slice(0, 1024),
      invoiceId: paid && paid.left >= credit ? paid.id : undefined,
      orderId: input.orderId,
      applyUpTo: true,
      settleLater: true,
    });
    const refundDocumentId = await this.insertRefund(tx, actor, at, paymentDoc, input.amount, input.refundPaymentId, `order ${input.orderNumber}: ${input.reason}`);
    await this.settleOrderCreditTx(tx, actor, at, accountId, creditMemoId, refundDocumentId);
    return { creditMemoId, refundDocumentId };
  }

  /**
   * An order credited back (reverseOrderChargeTx, refundOnCancellationTx): the order's credit memo (written with
   * settleLater, so it has taken only what the order's own invoice still had open) is applied first to the refund
   * document of the order's payment, as much as both allow; only then do the account's unapplied credits, what is
   * left of that memo among them, go to its other open debits (oldest due first). Without this order the memo's
   * credit paid an unrelated open invoice first and left part of the refund open: the same balance, but not the
   * documents a person reading the account expects.
   */
  private async settleOrderCreditTx(tx: Tx, actor: Actor, at: Date, accountId: number, creditMemoId: number | null, refundDocumentId: number): Promise<void> {
    if (creditMemoId !== null) await this.applyUpTo(tx, actor, at, creditMemoId, refundDocumentId);
    await this.applyOpenCredits(tx, actor, at, accountId);
  }

  /**
   * The invoice gateway payment `paymentId` paid (its payment document's first application to an invoice), with
   * what of it can still be credited (invoiceCreditTx). Undefined when the payment has no payment document or paid
   * no invoice.
   */
  async paidInvoiceTx(tx: Tx, paymentId: number): Promise<InvoiceCreditRoom | undefined> {
    const paid = (await tx('documents as p')
      .join('document_applications as a', 'a.source_document_id', 'p.id')
      .join('documents as d', 'd.id', 'a.target_document_id')
      .where({ 'p.type': 'payment', 'p.payment_id': paymentId, 'd.type': 'invoice' })
      .orderBy('a.id')
      .first('d.id')) as { id: number } | undefined;
    return paid ? this.invoiceCreditTx(tx, toNumber(paid.id)) : undefined;
  }

  /**
   * What of invoice `invoiceId` can still be credited (`left`: its total less its credit memos; memoTx refuses more):
   * a credit memo for money paid on it is written against it when it fits, carrying its share of tax. Undefined when
   * there is no such invoice.
   */
  async invoiceCreditTx(tx: Conn, invoiceId: number): Promise<InvoiceCreditRoom | undefined> {
    const inv = (await tx('documents').where({ id: invoiceId, type: 'invoice' }).first('id', 'number', 'status', 'total')) as { id: number; number: string; status: DocumentStatus; total: unknown } | undefined;
    if (!inv) return undefined;
    return { id: toNumber(inv.id), number: inv.number, status: inv.status, left: toBigInt(inv.total) - (await creditedTx(tx, toNumber(inv.id))) };
  }

  /** The invoice of an order, once its charge is recorded (PlaceOrder's and GetOrder's invoiceId), or a renewal order's billing-run invoice. */
  async orderInvoiceId(orderId: number, conn: Conn = this.deps.db): Promise<number | null> {
    const row = (await conn('documents').where({ type: 'invoice', order_id: orderId }).orderBy('id').first('id')) as { id: number } | undefined;
    if (row) return toNumber(row.id);
    // A billing run's renewal order is billed on the account's invoice of its run (with other lines): by its charges.
    const charge = (await conn('billing_charges').where({ order_id: orderId }).whereNotNull('document_id').orderBy('id').first('document_id')) as { document_id: number } | undefined;
    return charge ? toNumber(charge.document_id) : null;
  }

  // ---- reading ----

  async getDocument(actor: Actor, documentId: number, conn: Conn = this.deps.db): Promise<DocumentWithLines> {
    const row = await this.scopedDocument(conn, actor, documentId);
    const lines = (await conn('document_lines').where({ document_id: row.id }).orderBy('position')) as LineRow[];
    return { ...toDocument(row), lines: lines.map(toLine) };
  }

  async listDocuments(actor: Actor, filter: ListDocumentsFilter = {}): Promise<{ documents: BillingDocument[]; total: number }> {
    const { offset, pageSize } = paging(filter.page, filter.pageSize);
    const q = this.deps.db('documents as d').join('accounts as a', 'a.id', 'd.account_id').where('a.path', 'like', `${actor.accountPath}%`);
    if (filter.accountId !== undefined) {
      const account = await scopedAccount(this.deps.db, actor, positiveId(filter.accountId, 'accountId'));
      q.where('d.account_id', account.id);
    }
    if (filter.types && filter.types.length) {
      for (const t of filter.types) oneOf(t, 'type', DOCUMENT_TYPES);
      q.whereIn('d.type', filter.types);
    }
    if (filter.status !== undefined) q.where('d.status', oneOf(filter.status, 'status', ['open', 'paid', 'void', 'issued'] as const));
    if (filter.from) q.where('d.issue_date', '>=', filter.from.getTime());
    if (filter.to) q.where('d.issue_date', '<', filter.to.getTime());
    const [{ n }] = (await q.clone().count({ n: '*' })) as { n: number | string }[];
    const rows = (await q.orderBy('d.id', 'desc').offset(offset).limit(pageSize).select('d.*')) as DocumentRow[];
    return { documents: rows.map(toDocument), total: Number(n) };
  }

  /** What was applied to a document, and what it was applied to. */
  async listApplications(actor: Actor, documentId: number): Promise<Application[]> {
    const doc = await this.scopedDocument(this.deps.db, actor, documentId);
    const rows = (await this.deps.db('document_applications as x')
      .join('documents as s', 's.id', 'x.source_document_id')
      .join('documents as t', 't.id', 'x.target_document_id')
      .where((q) => q.where('x.source_document_id', doc.id).orWhere('x.target_document_id', doc.id))
      .orderBy('x.id')
      .select('x.*', 's.number as s_number', 's.type as s_type', 't.number as t_number', 't.type as t_type')) as {
      source_document_id: number;
      target_document_id: number;
      amount: unknown;
      created_at: number;
      s_number: string;
      s_type: DocumentType;
      t_number: string;
      t_type: DocumentType;
    }[];
    return rows.map((r) => ({
      sourceDocumentId: toNumber(r.source_document_id),
      sourceNumber: r.s_number,
      sourceType: r.s_type,
      targetDocumentId: toNumber(r.target_document_id),
      targetNumber: r.t_number,
      targetType: r.t_type,
      amount: toBigInt(r.amount),
      createdAt: new Date(toNumber(r.created_at)),
    }));
  }

  async getBalance(actor: Actor, accountId: number): Promise<AccountBalance> {
    const account = await scopedAccount(this.deps.db, actor, positiveId(accountId, 'accountId'));
    return this.balanceOf(this.deps.db, account);
  }

  /** Balances of a vendor's customers (the accounts whose vendor it is), in their own currencies. */
  async listBalances(actor: Actor, vendorAccountId: number): Promise<{ accountId: number; companyName: string; currency: string; balance: bigint }[]> {
    const vendor = await scopedAccount(this.deps.db, actor, positiveId(vendorAccountId, 'VendorAccountID'));
    const rows = (await this.deps.db('accounts as a')
      .leftJoin('documents as d', (j) => j.on('d.account_id', '=', 'a.id').andOn('d.currency', '=', 'a.currency'))
      .where('a.vendor_id', vendor.id)
      .groupBy('a.id', 'a.company_name', 'a.currency')
      .orderBy('a.id')
      .select('a.id', 'a.company_name', 'a.currency')
      .sum({ b: 'd.balance_effect' })) as { id: number; company_name: string | null; currency: string; b: unknown }[];
    return rows.map((r) => ({ accountId: toNumber(r.id), companyName: r.company_name ?? '', currency: r.currency, balance: toBigInt(r.b) }));
  }

  async balanceOf(conn: Conn, account: Pick<AccountRow, 'id' | 'currency'>): Promise<AccountBalance> {
    const id = toNumber(account.id);
    const sums = (await conn('documents').where({ account_id: id }).groupBy('currency').select('currency').sum({ b: 'balance_effect' })) as { currency: string; b: unknown }[];
    const main = sums.find((s) => s.currency === account.currency);
    const now = this.deps.clock.now().getTime();
    const open = (await conn('documents')
      .where({ account_id: id, currency: account.currency })
      .where('open_amount', '>', 0)
      .select('type', 'open_amount', 'due_date')) as { type: DocumentType; open_amount: unknown; due_date: number | null }[];
    let openDebits = 0n;
    let unappliedCredits = 0n;
    let overdue = 0n;
    for (const d of open) {
      const amount = toBigInt(d.open_amount);
      if (CREDIT_TYPES.includes(d.type)) unappliedCredits += amount;
      else {
        openDebits += amount;
        if (d.due_date !== null && toNumber(d.due_date) < now) overdue += amount;
      }
    }
    return {
      accountId: id,
      currency: account.currency,
      balance: main ? toBigInt(main.b) : 0n,
      openDebits,
      unappliedCredits,
      overdue,
      others: sums.filter((s) => s.currency !== account.currency).map((s) => ({ currency: s.currency, balance: toBigInt(s.b) })),
    };
  }

  // ---- memos ----

  /** A credit memo: lowers what the customer owes; correcting an invoice, or standalone. */
  async issueCreditMemo(actor: Actor, input: MemoInput): Promise<BillingDocument> {
    refuseOwnAccount(actor, input.accountId, 'issue credit memos');
    return this.memo(actor, 'credit_memo', input);
  }

  /** A debit memo: raises what the customer owes; correcting an invoice, or standalone. */
  async issueDebitMemo(actor: Actor, input: MemoInput): Promise<BillingDocument> {
    refuseOwnAccount(actor, input.accountId, 'issue debit memos');
    return this.memo(actor, 'debit_memo', input);
  }

  /** AdjustBalance: a positive amount raises what the customer owes (debit memo), a negative one lowers it (credit memo). */
  async adjustBalance(actor: Actor, input: Omit<MemoInput, 'invoiceId'>): Promise<BillingDocument> {
    refuseOwnAccount(actor, input.accountId, 'adjust the balance');
    const amount = amountArg(input.amount, 'amount', { allowNegative: true });
    return amount > 0n ? this.memo(actor, 'debit_memo', input) : this.memo(actor, 'credit_memo', { ...input, amount: -amount });
  }

  private async memo(actor: Actor, type: 'credit_memo' | 'debit_memo', input: MemoInput): Promise<BillingDocument> {
    const accountId = positiveId(input.accountId, 'accountId');
    const amount = amountArg(input.amount, 'amount');
    const description = requiredText(input.description, 'description', 1024);
    const invoiceId = input.invoiceId === undefined || input.invoiceId === null ? undefined : positiveId(input.invoiceId, 'invoiceId');
    const account = await scopedAccount(this.deps.db, actor, accountId);
    if (account.vendor_id === null) throw notAllowed(`Account ${accountId} has no vendor to issue documents to it.`, 'accountId');
    const args = { type, accountId, amount, currency: input.currency, description, invoiceId };
    return idempotent(this.deps, actor, input.idempotencyKey, type === 'credit_memo' ? 'IssueCreditMemo' : 'IssueDebitMemo', args, async (tx) => {
      const at = this.deps.clock.now();
      const documentId = await this.memoTx(tx, actor, at, type, { accountId, amount, currency: input.currency, description, invoiceId }, account);
      return toDocument((await tx('documents').where({ id: documentId }).first()) as DocumentRow);
    });
  }

  /**
   * A credit or debit memo in the caller's transaction (the checks of the caller's input are the caller's):
   * numbered, with the corrected invoice's share of tax, applied to that invoice (a credit memo) and then to the
   * account's open debits. `applyUpTo`: a credit memo takes only what the invoice still has open (an order's
   * reversal of a paid invoice) instead of requiring its whole amount to fit. `settleLater`: the memo is applied to
   * its invoice only, and the caller applies the rest (settleOrderCreditTx: an order's credit goes to the refund of
   * the order's payment before any other open debit). Answers the memo's id.
   */
  async memoTx(
    tx: Tx,
    actor: Actor,
    at: Date,
    type: 'credit_memo' | 'debit_memo',
    input: { accountId: number; amount: bigint; currency?: string; description: string; invoiceId?: number; orderId?: number; applyUpTo?: boolean; settleLater?: boolean },
    known?: Pick<AccountRow, 'vendor_id' | 'currency'>,
  ): Promise<number> {
    const { accountId, amount, description, invoiceId } = input;
    const acc = known ?? ((await tx('accounts').where({ id: accountId }).first('vendor_id', 'currency')) as Pick<AccountRow, 'vendor_id' | 'currency'> | undefined);
    if (!acc) throw notFound('Account', accountId);
    if (acc.vendor_id === null) throw notAllowed(`Account ${accountId} has no vendor to issue documents to it.`, 'accountId');
    const account = acc;
    await this.lockAccount(tx, accountId);
    let currency = currencyOf(input.currency ?? account.currency).code;
    let tax = 0n;
    let invoice: DocumentRow | undefined;
    if (invoiceId !== undefined) {
      invoice = (await tx('documents').where({ id: invoiceId, account_id: accountId }).first()) as DocumentRow | undefined;
      if (!invoice || invoice.type !== 'invoice') throw invalid('invoiceId', `Invoice ${invoiceId} of account ${accountId} does not exist.`);
      if (input.currency !== undefined && input.currency !== invoice.currency) throw invalid('currency', `Invoice ${invoice.number} is in ${invoice.currency}, not ${input.currency}.`);
      currency = invoice.currency;
      const total = toBigInt(invoice.total);
      if (type === 'credit_memo') {
        const left = total - (await creditedTx(tx, toNumber(invoice.id)));
        if (amount > left) throw invalid('amount', `At most ${formatAmount(left, currency)} ${currency} of invoice ${invoice.number} can still be credited.`);
      }
      // The memo carries the invoice's share of tax, so tax reports stay right.
      if (total > 0n) tax = mulDivHalfUp(amount, toBigInt(invoice.tax_total), total);
    }
    const n = await reserveNumbers(tx, toNumber(account.vendor_id), type, 1);
    const dueDays = (await billingSettingsOfMany(tx, [toNumber(account.vendor_id)])).get(toNumber(account.vendor_id))!.invoiceDueDays;
    const number = formatNumber(type, n);
    const nowMs = at.getTime();
    const [id] = await tx('documents').insert({
      vendor_id: account.vendor_id,
      account_id: accountId,
      type,
      number,
      status: type === 'credit_memo' ? 'issued' : 'open',
      currency,
      subtotal: money(amount - tax),
      tax_total: money(tax),
      total: money(amount),
      balance_effect: money(type === 'credit_memo' ? -amount : amount),
      open_amount: money(amount),
      issue_date: nowMs,
      due_date: type === 'debit_memo' ? nowMs + dueDays * DAY : null,
      paid_at: null,
      related_document_id: invoice ? invoice.id : null,
      order_id: input.orderId ?? null,
      description,
      created_by_user_id: actor.userId,
      created_at: nowMs,
      updated_at: nowMs,
    });
    const documentId = toNumber(id);
    await tx('document_lines').insert({
      document_id: documentId,
      position: 1,
      kind: 'adjustment',
      description: description.slice(0, 255),
      quantity: '1',
      unit_price: money(amount - tax),
      amount: money(amount - tax),
      tax_amount: money(tax),
    });
    await recordChange(tx, actor, at, {
      operation: `${type}.issue`,
      objectType: 'document',
      objectId: documentId,
      details: { number, accountId, amount, currency, invoiceId: invoice?.id ?? null, description },
      event: { name: `${type}.issued`, accountId, payload: { documentId, number, accountId, amount, currency, invoiceId: invoice ? toNumber(invoice.id) : null } },
    });
    // A credit memo takes what its invoice still has open; the rest (all of it, on a paid invoice) stays as credit
    // on the account, applied below to other open debits or kept for a refund or the next invoice.
    if (type === 'credit_memo' && invoice) await this.applyUpTo(tx, actor, at, documentId, toNumber(invoice.id));
    if (!input.settleLater) await this.applyOpenCredits(tx, actor, at, accountId);
    return documentId;
  }

  // ---- payments ----

  /** An offline payment an operator received (check, wire, cash, external): a payment document, applied at once. */
  async recordPayment(actor: Actor, input: RecordPaymentInput): Promise<BillingDocument> {
    const accountId = positiveId(input.accountId, 'accountId');
    refuseOwnAccount(actor, accountId, 'record payments');
    const amount = amountArg(input.amount, 'amount');
    const method = oneOf(input.method, 'method', OFFLINE_METHODS);
    const reference = optionalText(input.reference, 'reference', 255) || null;
    const description = optionalText(input.description, 'description', 1024) ?? '';
    const invoiceId = input.invoiceId === undefined || input.invoiceId === null ? undefined : positiveId(input.invoiceId, 'invoiceId');
    const account = await scopedAccount(this.deps.db, actor, accountId);
    if (account.vendor_id === null) throw notAllowed(`Account ${accountId} has no vendor to pay.`, 'accountId');
    const currency = currencyOf(input.currency ?? account.currency).code;
    const args = { accountId, amount, currency, method, reference, description, invoiceId, receivedAt: input.receivedAt?.getTime() };
    return idempotent(this.deps, actor, input.idempotencyKey, 'RecordPayment', args, async (tx) => {
      const at = this.deps.clock.now();
      await this.lockAccount(tx, accountId);
      if (invoiceId !== undefined) {
        const inv = (await tx('documents').where({ id: invoiceId, account_id: accountId }).first()) as DocumentRow | undefined;
        if (!inv || !DEBIT_TYPES.includes(inv.type)) throw invalid('invoiceId', `Invoice ${invoiceId} of account ${accountId} does not exist.`);
        if (inv.currency !== currency) throw invalid('currency', `Invoice ${inv.number} is in ${inv.currency}, not ${currency}.`);
      }
      const paymentId = await this.insertOfflineTransaction(tx, at, { accountId, vendorId: toNumber(account.vendor_id), kind: 'purchase', parentPaymentId: null, amount, currency, reference, description: description || `Payment by ${method}` });
      const doc = await this.insertPayment(tx, actor, at, { vendorId: toNumber(account.vendor_id), accountId, amount, currency, method, reference, description, paymentId, issueDate: input.receivedAt ?? at });
      if (invoiceId !== undefined) await this.applyUpTo(tx, actor, at, doc, invoiceId);
      await this.applyOpenCredits(tx, actor, at, accountId);
      return toDocument((await tx('documents').where({ id: doc }).first()) as DocumentRow);
    });
  }

  /**
   * Pays an open invoice with a pay tool (the given one, or the account's default) through its gateway, under an
   * idempotency key the core derives from the invoice and the caller's key. Success: a payment document applied
   * to the invoice. Declined or failed: nothing applied. Pending or unknown: nothing applied until the payment is
   * settled by the reconciler; settlePayments() (and a repeat of the same call) then applies it.
   */
  async payInvoice(actor: Actor, input: PayInvoiceInput): Promise<PayInvoiceResult> {
    const invoiceId = positiveId(input.invoiceId, 'invoiceId');
    const invoice = await this.scopedDocument(this.deps.db, actor, invoiceId);
    if (!DEBIT_TYPES.includes(invoice.type) || invoice.type === 'refund') throw invalid('invoiceId', `Document ${invoice.number} is a ${invoice.type.replace('_', ' ')}; only invoices and debit memos are paid.`);
    const accountId = toNumber(invoice.account_id);
    const key = input.idempotencyKey === undefined || input.idempotencyKey === null || input.idempotencyKey === '' ? undefined : requiredText(input.idempotencyKey, 'idempotencyKey', 100);

    // Every attempt on this invoice, with its transaction's state, in one read.
    const plan = payPlan(invoice, await attemptsOf(this.deps.db, [invoiceId]), key);
    // A repeat of a key already used: answer from its attempt (the gateway is not called again for it), unless it
    // asks for another pay tool: that is another request, and answering the first one's outcome would mislead.
    if ('earlier' in plan) {
      const usedTool = plan.earlier.payment_tool_id;
      const asked = input.payToolId === undefined || input.payToolId === null ? undefined : positiveId(input.payToolId, 'payToolId');
      if (asked !== undefined && usedTool !== null && usedTool !== undefined && toNumber(usedTool) !== asked) {
        throw conflict(`Idempotency key '${key}' was already used to pay invoice ${invoice.number} with pay tool ${toNumber(usedTool)}, not ${asked}; use a new key to pay with another pay tool.`, 'idempotencyKey');
      }
      return this.settleAttempt(actor, plan.earlier);
    }

    let payToolId: number;
    if (input.payToolId !== undefined && input.payToolId !== null) {
      payToolId = positiveId(input.payToolId, 'payToolId');
      const tool = await this.deps.db('pay_tools').where({ id: payToolId, account_id: accountId }).first('id');
      if (!tool) throw invalid('payToolId', `Pay tool ${payToolId} does not belong to account ${accountId}.`);
    } else {
      const tool = (await this.deps.db('pay_tools').where({ account_id: accountId, is_default: true }).first('id')) as { id: number } | undefined;
      if (!tool) throw invalid('payToolId', `Account ${accountId} has no default pay tool; give payToolId.`);
      payToolId = toNumber(tool.id);
    }
    const { callerKey, gatewayKey } = plan;
    const payment = await this.payments.charge(actor, {
      accountId,
      amount: plan.amount,
      currency: plan.currency,
      payTool: { payToolId },
      description: `Invoice ${invoice.number}`,
      idempotencyKey: callerKey,
      // Under the account's lock, in the transaction of the pending payment: the decision again, on the invoice and
      // attempts as they stand now (a concurrent PayInvoice, auto-pay or offline payment may have got there first),
      // and the attempt row, written with the payment (a crash after it finds the payment; one before, neither).
      guard: async (tx) => {
        await this.lockForPaying(tx, [accountId]);
        const attempts = await attemptsOf(tx, [invoiceId]);
        if (attempts.some((a) => a.gateway_key === gatewayKey && a.payment_id !== null)) return 'twin';
        const now = payPlan((await tx('documents').where({ id: invoiceId }).first()) as DocumentRow, attempts, key);
        if ('earlier' in now) return 'twin';
        if (now.amount !== plan.amount || now.currency !== plan.currency) {
          throw conflict(`Invoice ${invoice.number} changed while it was being paid: ${formatAmount(now.amount, now.currency)} ${now.currency} is open now. Nothing was charged; ask again.`, 'invoiceId');
        }
        await writeAttemptsTx(tx, [plan], this.deps.clock.now());
      },
    });
    await this.deps.db('invoice_payment_attempts').where({ gateway_key: gatewayKey }).whereNull('payment_id').update({ payment_id: payment.paymentId });
    const attempt = (await this.deps.db('invoice_payment_attempts').where({ gateway_key: gatewayKey }).first()) as AttemptRow;
    return this.settleAttempt(actor, { ...attempt, payment_id: payment.paymentId });
  }

  /**
   * PayInvoice for many invoices of the actor's vendor, each with its account's default pay tool, under the
   * caller's key per invoice (the same keys, decisions and outcomes as payInvoice), in three steps:
   * 1. one transaction writes every attempt and its pending payment (audit records, payment.created events);
   * 2. the gateway calls, outside any transaction, `concurrency` at once, each under its payment's key;
   * 3. one transaction settles the payments and applies the successful ones (payment documents numbered as a
   *    block, invoices paid, the invoice-paid listeners told of all of them together).
   * A crash between 1 and 3 leaves pending payments for the reconciler (settlePayments applies them later); a
   * repeat of a key answers its first attempt without calling the gateway again. An invoice that cannot be paid
   * now (paid meanwhile, a payment still pending, no default pay tool, a disabled gateway) is answered `skipped`.
   */
  async payInvoices(actor: Actor, requests: readonly { invoiceId: number; idempotencyKey: string }[], opts: { concurrency?: number } = {}): Promise<BatchPayResult[]> {
    if (requests.length === 0) return [];
    const db = this.deps.db;
    const invoices = new Map<number, DocumentRow>();
    const attempts = new Map<number, AttemptWithStatus[]>();
    const ids = [...new Set(requests.map((r) => r.invoiceId))];
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      for (const d of (await db('documents').whereIn('id', chunk).where({ vendor_id: actor.accountId })) as DocumentRow[]) invoices.set(toNumber(d.id), d);
      for (const t of await attemptsOf(db, chunk)) addTo(attempts, toNumber(t.document_id), t);
    }
    const tools = new Map<number, { id: number; gateway_instance_id: number; token: string; gateway_status: string | null }>();
    const accountIds = [...new Set([...invoices.values()].map((d) => toNumber(d.account_id)))];
    for (let i = 0; i < accountIds.length; i += 500) {
      const rows = (await db('pay_tools as t')
        .leftJoin('plugin_instances as g', 'g.id', 't.gateway_instance_id')
        .whereIn('t.account_id', accountIds.slice(i, i + 500))
        .where('t.is_default', true)
        .select('t.id', 't.account_id', 't.gateway_instance_id', 't.token', 'g.status as gateway_status')) as { id: number; account_id: number; gateway_instance_id: number; token: string; gateway_status: string | null }[];
      for (const r of rows) tools.set(toNumber(r.account_id), r);
    }

    const out: BatchPayResult[] = new Array(requests.length);
    const settle: { k: number; attempt: AttemptRow }[] = [];
    const charge: { k: number; plan: NewAttempt; tool: { id: number; gateway_instance_id: number; token: string } }[] = [];
    requests.forEach((r, k) => {
      const invoice = invoices.get(r.invoiceId);
      if (!invoice) return void (out[k] = { invoiceId: r.invoiceId, skipped: 'NOT_FOUND', field: 'invoiceId', message: `Invoice ${r.invoiceId} of vendor ${actor.accountId} does not exist.` });
      try {
        const plan = payPlan(invoice, attempts.get(r.invoiceId) ?? [], r.idempotencyKey);
        if ('earlier' in plan) return void settle.push({ k, attempt: plan.earlier });
        const tool = tools.get(toNumber(invoice.account_id));
        if (!tool) throw invalid('payToolId', `Account ${toNumber(invoice.account_id)} has no default pay tool; give payToolId.`);
        if (tool.gateway_status !== null && tool.gateway_status !== 'active') throw notAllowed(`The payment gateway (instance ${tool.gateway_instance_id}) of the pay tool is ${tool.gateway_status}; it takes no new charges.`, 'payToolId');
        charge.push({ k, plan, tool });
      } catch (e) {
        if (!(e instanceof AppError)) throw e;
        out[k] = { invoiceId: r.invoiceId, skipped: e.code, field: e.field ?? null, message: e.message };
      }
    });

    // 1. Under the accounts' locks, the decision again on the invoices and attempts as they stand now (a PayInvoice,
    //    or an offline payment, may have got there since they were read above), then the attempts and their pending
    //    payments, together.
    const step1 = await inTransaction(db, async (tx) => {
      const now = this.deps.clock.now();
      await this.lockForPaying(tx, charge.map((c) => c.plan.accountId));
      const ids = charge.map((c) => c.plan.invoiceId);
      const latest = new Map<number, DocumentRow>();
      for (let i = 0; i < ids.length; i += 500) for (const d of (await tx('documents').whereIn('id', ids.slice(i, i + 500))) as DocumentRow[]) latest.set(toNumber(d.id), d);
      const latestAttempts = new Map<number, AttemptWithStatus[]>();
      for (const t of await attemptsOf(tx, ids)) addTo(latestAttempts, toNumber(t.document_id), t);
      const go: typeof charge = [];
      const earlier: { k: number; attempt: AttemptRow }[] = [];
      const refused: { k: number; e: AppError }[] = [];
      const taken = new Set<number>();
      for (const c of charge) {
        try {
          // The same invoice twice in one batch is paid once.
          if (taken.has(c.plan.invoiceId)) throw conflict(`Invoice ${c.plan.number} is already being paid in this batch.`, 'invoiceId');
          const plan = payPlan(latest.get(c.plan.invoiceId)!, latestAttempts.get(c.plan.invoiceId) ?? [], requests[c.k]!.idempotencyKey);
          if ('earlier' in plan) earlier.push({ k: c.k, attempt: plan.earlier });
          else {
            taken.add(plan.invoiceId);
            go.push({ ...c, plan });
          }
        } catch (e) {
          if (!(e instanceof AppError)) throw e;
          refused.push({ k: c.k, e });
        }
      }
      const written = await writeAttemptsTx(tx, go.map((c) => c.plan), now);
      const made = await this.payments.createPendingTx(
        tx,
        actor,
        now,
        go.map((c) => ({ accountId: c.plan.accountId, vendorId: actor.accountId, payToolId: toNumber(c.tool.id), gatewayInstanceId: toNumber(c.tool.gateway_instance_id), token: c.tool.token, amount: c.plan.amount, currency: c.plan.currency, description: `Invoice ${c.plan.number}`, callerKey: c.plan.callerKey })),
      );
      await updateByKey(tx, 'invoice_payment_attempts', 'gateway_key', 'payment_id', new Map(go.map((c, n) => [c.plan.gatewayKey, toNumber(made[n]!.payment.id)])));
      return { made, earlier, refused, attempts: go.map((c, n) => ({ k: c.k, attempt: { ...written.get(c.plan.gatewayKey)!, payment_id: toNumber(made[n]!.payment.id) } })) };
    });
    for (const { k, e } of step1.refused) out[k] = { invoiceId: requests[k]!.invoiceId, skipped: e.code, field: e.field ?? null, message: e.message };
    settle.push(...step1.earlier, ...step1.attempts);
    // 2. The gateway calls, outside any transaction.
    const settlements = await this.payments.callPending(step1.made, opts.concurrency ?? 8);
    // 3. Settled and applied, together; the accounts' locks first, so that on MariaDB every read of this transaction
    //    (the invoices' open amounts among them) sees what was committed before them.
    const results = await inTransaction(db, async (tx) => {
      const now = this.deps.clock.now();
      await this.lockForPaying(tx, settle.map((x) => toNumber(x.attempt.account_id)));
      await this.payments.settleTx(tx, actor, now, settlements);
      return this.settleAttemptsTx(tx, actor, now, settle.map((x) => x.attempt));
    });
    settle.forEach((x, n) => (out[x.k] = results[n]!));
    return out;
  }

  /**
   * Applies the invoice payments the gateway has settled since (success: a payment document applied to its
   * invoice; declined: recorded as such). Run after the payments reconciler, e.g. by the billing run.
   */
  async settlePayments(actor?: Actor, limit = 500): Promise<{ paid: number; declined: number; stillOpen: number }> {
    // The payment by the attempt's gateway key: a crash right after their transaction leaves payment_id unset.
    const rows = (
      (await this.deps.db('invoice_payment_attempts as t')
        .join('payments as p', 'p.idempotency_key', 't.gateway_key')
        .whereNull('t.outcome')
        .whereNotIn('p.status', ['pending', 'unknown'])
        .orderBy('t.created_at')
        .limit(limit)
        .select('t.*', 'p.vendor_id', 'p.id as paid_by')) as (AttemptRow & { vendor_id: number; paid_by: unknown })[]
    ).map(({ paid_by, ...r }) => ({ ...r, payment_id: toNumber(paid_by) }));
    const out = { paid: 0, declined: 0, stillOpen: 0 };
    // One transaction per vendor (the actor of its audit records) for all of its payments.
    const byVendor = new Map<number, AttemptRow[]>();
    for (const r of rows) addTo(byVendor, toNumber(r.vendor_id), r);
    for (const [vendorId, list] of byVendor) {
      const results = await inTransaction(this.deps.db, (tx) => this.settleAttemptsTx(tx, actor ?? billingActor(vendorId), this.deps.clock.now(), list));
      for (const r of results) {
        if (r.outcome === 'paid') out.paid++;
        else if (r.outcome === 'pending' || r.outcome === 'unknown') out.stillOpen++;
        else out.declined++;
      }
    }
    const [{ n }] = (await this.deps.db('invoice_payment_attempts').whereNull('outcome').whereNotNull('payment_id').count({ n: '*' })) as { n: unknown }[];
    out.stillOpen = toNumber(n);
    return out;
  }

  /** Applies a settled gateway payment to its invoice once (the attempt row is the latch). */
  private async settleAttempt(actor: Actor, attempt: AttemptRow): Promise<PayInvoiceResult> {
    return inTransaction(this.deps.db, async (tx) => (await this.settleAttemptsTx(tx, actor, this.deps.clock.now(), [attempt]))[0]!);
  }

  /**
   * Applies settled gateway payments to their invoices, each once (its attempt row is the latch), in the caller's
   * transaction: success makes payment documents (numbered as a block) applied to the invoices, what an invoice
   * paid meanwhile does not take going to the account's other open debits; declined and failed are recorded;
   * pending and unknown are left for the reconciler. Answers per attempt, in order.
   */
  private async settleAttemptsTx(tx: Tx, actor: Actor, at: Date, attempts: readonly AttemptRow[]): Promise<PayInvoiceResult[]> {
    // The locks come first, in id order: on MariaDB, every read after them sees what the previous holder committed.
    await this.lockAccounts(tx, attempts.map((a) => toNumber(a.account_id)));
    const invoices = new Map<number, DocumentRow>();
    const current = new Map<string, AttemptRow>();
    const payments = new Map<number, AttemptPayment>();
    for (let i = 0; i < attempts.length; i += 500) {
      const chunk = attempts.slice(i, i + 500);
      for (const d of (await tx('documents').whereIn('id', chunk.map((a) => toNumber(a.document_id)))) as DocumentRow[]) invoices.set(toNumber(d.id), d);
      for (const c of (await tx('invoice_payment_attempts').whereIn('gateway_key', chunk.map((a) => a.gateway_key))) as AttemptRow[]) current.set(c.gateway_key, c);
      const rows = (await tx('payments').whereIn('id', chunk.map((a) => toNumber(a.payment_id))).select('id', 'status', 'amount', 'currency', 'message', 'failure_code')) as (AttemptPayment & { id: number })[];
      for (const r of rows) payments.set(toNumber(r.id), r);
    }
    const results: PayInvoiceResult[] = [];
    const paying: { k: number; invoice: DocumentRow; paymentId: number; amount: bigint; currency: string; key: string }[] = [];
    const failing: { k: number; invoice: DocumentRow; paymentId: number; outcome: PayOutcome; key: string }[] = [];
    attempts.forEach((attempt, k) => {
      const paymentId = toNumber(attempt.payment_id);
      const invoice = invoices.get(toNumber(attempt.document_id))!;
      const payment = payments.get(paymentId)!;
      const now = current.get(attempt.gateway_key)!;
      const result = (outcome: PayOutcome, docId: number | null): PayInvoiceResult => ({
        outcome,
        invoiceId: toNumber(invoice.id),
        invoiceNumber: invoice.number,
        paymentId,
        paymentDocumentId: docId,
        amount: toBigInt(payment.amount),
        currency: payment.currency,
        message: outcome === 'paid' ? null : payment.message,
        failureCode: payment.failure_code,
      });
      if (now.outcome !== null) results.push(result(now.outcome === 'applied' ? 'paid' : payment.status === 'plugin_failure' ? 'failed' : 'declined', toOptionalNumber(now.payment_document_id)));
      else if (payment.status === 'pending' || payment.status === 'unknown') results.push(result(payment.status, null));
      else if (payment.status === 'success') {
        results.push(result('paid', null));
        paying.push({ k, invoice, paymentId, amount: toBigInt(payment.amount), currency: payment.currency, key: attempt.gateway_key });
      } else {
        const outcome: PayOutcome = payment.status === 'plugin_failure' ? 'failed' : 'declined';
        results.push(result(outcome, null));
        failing.push({ k, invoice, paymentId, outcome, key: attempt.gateway_key });
      }
    });

    const docs = await this.insertPayments(
      tx,
      actor,
      at,
      paying.map((p) => ({ vendorId: toNumber(p.invoice.vendor_id), accountId: toNumber(p.invoice.account_id), amount: p.amount, currency: p.currency, method: 'gateway', reference: null, description: `Payment of ${p.invoice.number}`, paymentId: p.paymentId, issueDate: at })),
    );
    // Each payment to its invoice, as much as both allow (open amounts as read under the accounts' locks).
    const open = new Map([...invoices.values()].map((d) => [toNumber(d.id), toBigInt(d.open_amount)]));
    const leftover = new Set<number>();
    const apps = paying.map((p, n) => {
      const id = toNumber(p.invoice.id);
      const left = open.get(id)!;
      const amount = left < p.amount ? (left > 0n ? left : 0n) : p.amount;
      open.set(id, left - amount);
      if (amount < p.amount) leftover.add(toNumber(p.invoice.account_id));
      results[p.k]!.paymentDocumentId = docs[n]!;
      return { sourceId: docs[n]!, targetId: id, amount };
    });
    await this.applyMany(tx, actor, at, apps);
    // What an invoice did not take (it was paid meanwhile) goes to the account's other open debits.
    for (const accountId of [...leftover].sort((x, y) => x - y)) await this.applyOpenCredits(tx, actor, at, accountId);
    await updateByKey(tx, 'invoice_payment_attempts', 'gateway_key', 'payment_document_id', new Map(paying.map((p, n) => [p.key, docs[n]!])), { also: { outcome: 'applied', settled_at: at.getTime() } });

    for (const outcome of ['failed', 'declined'] as const) {
      const keys = failing.filter((f) => f.outcome === outcome).map((f) => f.key);
      for (let i = 0; i < keys.length; i += 500) await tx('invoice_payment_attempts').whereIn('gateway_key', keys.slice(i, i + 500)).update({ outcome, settled_at: at.getTime() });
    }
    await recordChanges(
      tx,
      actor,
      at,
      failing.map((f) => {
        const documentId = toNumber(f.invoice.id);
        const { failureCode, message } = results[f.k]!;
        return {
          operation: 'invoice.pay',
          objectType: 'document',
          objectId: documentId,
          details: { number: f.invoice.number, paymentId: f.paymentId, outcome: f.outcome, failureCode },
          event: { name: 'invoice.payment_failed', objectType: 'document', objectId: documentId, accountId: toNumber(f.invoice.account_id), payload: { documentId, number: f.invoice.number, paymentId: f.paymentId, outcome: f.outcome, failureCode, message } },
        };
      }),
    );
    return results;
  }

  /** Refunds a payment document: through its gateway when it was a gateway payment, else recorded as paid back. */
  async refundPayment(actor: Actor, input: RefundInput): Promise<RefundResult> {
    let documentId = input.paymentDocumentId;
    if (documentId === undefined || documentId === null) {
      const paymentId = positiveId(input.paymentId, 'paymentId');
      const doc = (await this.deps.db('documents').where({ payment_id: paymentId, type: 'payment' }).first('id')) as { id: number } | undefined;
      if (!doc) {
        // A gateway payment without a payment document (an order's first charge): refunded through its gateway only.
        const owner = (await this.deps.db('payments').where({ id: paymentId }).first('account_id')) as { account_id: unknown } | undefined;
        if (owner) refuseOwnAccount(actor, toNumber(owner.account_id), 'refund payments', 'paymentId');
        const amount = input.amount === undefined ? undefined : amountArg(input.amount, 'amount');
        const key = input.idempotencyKey ? `refund-payment:${paymentId}:${requiredText(input.idempotencyKey, 'idempotencyKey', 100)}` : undefined;
        const p = await this.payments.refund(actor, paymentId, { amount, idempotencyKey: key, reason: optionalText(input.reason, 'reason', 200) || undefined });
        const outcome: RefundOutcome = p.status === 'success' ? 'refunded' : p.status === 'pending' || p.status === 'unknown' ? p.status : p.status === 'declined' ? 'declined' : 'failed';
        return { outcome, refundDocumentId: null, refundNumber: null, paymentId: p.paymentId, amount: p.amount, currency: p.currency, message: p.message };
      }
      documentId = toNumber(doc.id);
    }
    const source = await this.scopedDocument(this.deps.db, actor, positiveId(documentId, 'paymentDocumentId'));
    refuseOwnAccount(actor, toNumber(source.account_id), 'refund payments', input.paymentDocumentId === undefined || input.paymentDocumentId === null ? 'paymentId' : 'paymentDocumentId');
    if (source.type !== 'payment') throw invalid('paymentDocumentId', `Document ${source.number} is a ${source.type.replace('_', ' ')}; only payments are refunded.`);
    const reason = optionalText(input.reason, 'reason', 200) ?? '';
    const requested = input.amount === undefined ? undefined : amountArg(input.amount, 'amount');
    const key = input.idempotencyKey === undefined || input.idempotencyKey === '' ? undefined : requiredText(input.idempotencyKey, 'idempotencyKey', 100);
    const accountId = toNumber(source.account_id);
    const left = async (conn: Conn): Promise<bigint> => {
      const [{ s }] = (await conn('documents').where({ related_document_id: source.id, type: 'refund' }).sum({ s: 'total' })) as { s: unknown }[];
      return toBigInt(source.total) - toBigInt(s);
    };
    const result = (outcome: RefundOutcome, doc: DocumentRow | null, paymentId: number | null, amount: bigint, message: string | null): RefundResult => ({
      outcome,
      refundDocumentId: doc ? toNumber(doc.id) : null,
      refundNumber: doc ? doc.number : null,
      paymentId,
      amount,
      currency: source.currency,
      message,
    });

    let gatewayRefund: { paymentId: number; amount: bigint } | null = null;
    if (source.method === 'gateway' && source.payment_id !== null) {
      // Through the gateway, under a key derived from the payment document and the caller's key.
      const callerKey = key !== undefined ? `refund:${source.id}:${key}` : undefined;
      const existing = callerKey ? ((await this.deps.db('payments').where({ idempotency_key: derivedGatewayKey(accountId, callerKey) }).first('id', 'amount')) as { id: number; amount: unknown } | undefined) : undefined;
      const amount = existing ? toBigInt(existing.amount) : requested ?? (await left(this.deps.db));
      if (!existing) {
        const l = await left(this.deps.db);
        if (l <= 0n) throw notAllowed(`Payment ${source.number} is already refunded in full.`, 'paymentDocumentId');
        if (amount > l) throw invalid('amount', `At most ${formatAmount(l, source.currency)} ${source.currency} of payment ${source.number} can still be refunded.`);
      }
      const p = await this.payments.refund(actor, toNumber(source.payment_id), { amount, idempotencyKey: callerKey, reason: reason || undefined });
      if (p.status !== 'success') {
        const outcome: RefundOutcome = p.status === 'pending' || p.status === 'unknown' ? p.status : p.status === 'declined' ? 'declined' : 'failed';
        return result(outcome, null, p.paymentId, p.amount, p.message);
      }
      gatewayRefund = { paymentId: p.paymentId, amount: p.amount };
    }

    const args = { paymentDocumentId: toNumber(source.id), amount: requested, reason };
    return idempotent(this.deps, actor, key, 'RefundPayment', args, async (tx) => {
      const at = this.deps.clock.now();
      await this.lockAccount(tx, accountId);
      if (gatewayRefund) {
        const done = (await tx('documents').where({ type: 'refund', payment_id: gatewayRefund.paymentId }).first()) as DocumentRow | undefined;
        if (done) return result('refunded', done, gatewayRefund.paymentId, toBigInt(done.total), null);
      }
      const l = await left(tx);
      const amount = gatewayRefund?.amount ?? requested ?? l;
      if (!gatewayRefund) {
        if (l <= 0n) throw notAllowed(`Payment ${source.number} is already refunded in full.`, 'paymentDocumentId');
        if (amount > l) throw invalid('amount', `At most ${formatAmount(l, source.currency)} ${source.currency} of payment ${source.number} can still be refunded.`);
      }
      // An offline refund (paid back by check, wire, cash) is a transaction of its own, like the offline payment.
      const offlineId = gatewayRefund
        ? null
        : await this.insertOfflineTransaction(tx, at, { accountId, vendorId: toNumber(source.vendor_id), kind: 'refund', parentPaymentId: toOptionalNumber(source.payment_id), amount, currency: source.currency, reference: source.reference, description: `Refund of ${source.number}` });
      const documentId = await this.insertRefund(tx, actor, at, source, amount, gatewayRefund?.paymentId ?? offlineId, reason);
      await this.applyOpenCredits(tx, actor, at, accountId);
      const doc = (await tx('documents').where({ id: documentId }).first()) as DocumentRow;
      return result('refunded', doc, gatewayRefund?.paymentId ?? offlineId, amount, null);
    });
  }

  /**
   * A gateway refund transaction settled to success (RefundPayment's own answer, or the reconciler's or a late
   * answer after a pending or unknown one), in the settling transaction: the refund document of its payment
   * document, as RefundPayment writes it, once per refund transaction (documents.payment_id), whoever gets here
   * first. Left alone: a payment without a payment document (an order's first charge: refunded at the gateway
   * only), and an order's own refunds (cancellation, failed or held order: their keys, see orderRefundKey), whose
   * ledger entries the order writes when its task or decision runs again (refundOnCancellationTx,
   * reverseOrderChargeTx).
   */
  private async refundSettledTx(tx: Tx, actor: Actor, at: Date, refund: Payment): Promise<void> {
    if (refund.parentPaymentId === null) return;
    const source = (await tx('documents').where({ type: 'payment', payment_id: refund.parentPaymentId }).first()) as DocumentRow | undefined;
    if (!source) return;
    const orderIds = ((await tx('orders').where({ account_id: refund.accountId }).orWhere({ id: refund.orderId ?? 0 }).select('id')) as { id: unknown }[]).map((o) => toNumber(o.id));
    if (isOrderRefundKey(refund.idempotencyKey, refund.accountId, orderIds, refund.parentPaymentId)) return;
    await this.lockAccount(tx, toNumber(source.account_id));
    if (await tx('documents').where({ type: 'refund', payment_id: refund.paymentId }).first('id')) return;
    // The caller's reason, as PaymentsService.refund put it in the description.
    const prefix = `Refund of payment ${refund.parentPaymentId}: `;
    const reason = refund.description.startsWith(prefix) ? refund.description.slice(prefix.length) : '';
    await this.insertRefund(tx, actor, at, source, refund.amount, refund.paymentId, reason);
    await this.applyOpenCredits(tx, actor, at, toNumber(source.account_id));
  }

  /**
   * A refund document of a payment document (its gateway or offline refund transaction `paymentId`), taking back
   * first what of the payment is still unapplied. Answers the refund's id.
   */
  private async insertRefund(tx: Tx, actor: Actor, at: Date, source: DocumentRow, amount: bigint, paymentId: number | null, reason: string): Promise<number> {
    const accountId = toNumber(source.account_id);
    const number = formatNumber('refund', await reserveNumbers(tx, toNumber(source.vendor_id), 'refund', 1));
    const nowMs = at.getTime();
    const [id] = await tx('documents').insert({
      vendor_id: source.vendor_id,
      account_id: accountId,
      type: 'refund',
      number,
      status: 'issued',
      currency: source.currency,
      subtotal: money(amount),
      tax_total: '0',
      total: money(amount),
      balance_effect: money(amount),
      open_amount: money(amount),
      issue_date: nowMs,
      due_date: null,
      related_document_id: source.id,
      payment_id: paymentId,
      method: source.method,
      reference: source.reference,
      description: reason ? `Refund of ${source.number}: ${reason}` : `Refund of ${source.number}`,
      created_by_user_id: actor.userId,
      created_at: nowMs,
      updated_at: nowMs,
    });
    const documentId = toNumber(id);
    await tx('document_lines').insert({ document_id: documentId, position: 1, kind: 'adjustment', description: `Refund of ${source.number}`, quantity: '1', unit_price: money(amount), amount: money(amount), tax_amount: '0' });
    await recordChange(tx, actor, at, {
      operation: 'refund.issue',
      objectType: 'document',
      objectId: documentId,
      details: { number, paymentDocument: source.number, amount, currency: source.currency, reason, paymentId },
      event: { name: 'refund.issued', accountId, payload: { documentId, number, accountId, paymentDocumentId: toNumber(source.id), amount, currency: source.currency, paymentId } },
    });
    // The refund first takes back what of the payment is still unapplied, then other unapplied credits.
    // A locking read on MariaDB: a settlement's transaction (refundSettledTx) read before it took the account's lock.
    const openQ = tx('documents').where({ id: source.id }).select('open_amount');
    const unapplied = toBigInt(((await (isSqlite(tx) ? openQ : openQ.forUpdate())) as { open_amount: unknown }[])[0]!.open_amount);
    if (unapplied > 0n) await this.apply(tx, actor, at, toNumber(source.id), documentId, unapplied < amount ? unapplied : amount);
    return documentId;
  }

  // ---- payment transactions (the payments table: gateway charges and refunds, and offline ones) ----

  /** An offline payment or refund as a settled transaction (no gateway), so every payment has one id space. */
  private async insertOfflineTransaction(
    tx: Tx,
    at: Date,
    p: { accountId: number; vendorId: number; kind: 'purchase' | 'refund'; parentPaymentId: number | null; amount: bigint; currency: string; reference: string | null; description: string },
  ): Promise<number> {
    const [id] = await tx('payments').insert({
      account_id: p.accountId,
      vendor_id: p.vendorId,
      gateway_instance_id: null,
      kind: p.kind,
      parent_payment_id: p.parentPaymentId,
      order_id: null,
      amount: money(p.amount),
      currency: p.currency,
      status: 'success',
      idempotency_key: `offline-${crypto.randomBytes(24).toString('hex')}`,
      request_hash: 'offline',
      gateway_reference: p.reference,
      pay_tool_id: null,
      description: p.description.slice(0, 255),
      retryable: false,
      created_at: at.getTime(),
      updated_at: at.getTime(),
    });
    return toNumber(id);
  }

  /** One payment transaction with what the documents know of it (its invoice, its method). */
  async getPayment(actor: Actor, paymentId: number, conn: Conn = this.deps.db): Promise<PaymentView> {
    positiveId(paymentId, 'paymentId');
    const rows = await this.paymentRows(conn.from('payments as p').join('accounts as a', 'a.id', 'p.account_id').where('p.id', paymentId).andWhere('a.path', 'like', `${actor.accountPath}%`));
    if (!rows[0]) throw notFound('Payment', paymentId);
    return rows[0];
  }

  /** An account's payments and refunds, newest first (authorizations, captures' parents and voids are left out). */
  async listPayments(actor: Actor, accountId: number, opts: { page?: number; pageSize?: number } = {}): Promise<{ payments: PaymentView[]; total: number }> {
    const account = await scopedAccount(this.deps.db, actor, positiveId(accountId, 'accountId'));
    const { offset, pageSize } = paging(opts.page, opts.pageSize);
    const base = () => this.deps.db.from('payments as p').where('p.account_id', account.id).whereIn('p.kind', ['purchase', 'capture', 'refund']);
    const [{ n }] = (await base().count({ n: '*' })) as { n: unknown }[];
    const payments = await this.paymentRows(base().orderBy('p.id', 'desc').offset(offset).limit(pageSize));
    return { payments, total: toNumber(n) };
  }

  private async paymentRows(q: ReturnType<Db['from']>): Promise<PaymentView[]> {
    const rows = (await q
      .leftJoin('plugin_instances as g', 'g.id', 'p.gateway_instance_id')
      .leftJoin('documents as d', (j) => j.on('d.payment_id', '=', 'p.id').andOnIn('d.type', ['payment', 'refund']))
      .select('p.id', 'p.account_id', 'p.kind', 'p.status', 'p.amount', 'p.currency', 'p.gateway_reference', 'p.gateway_instance_id', 'p.created_at', 'p.message', 'g.name as gateway', 'd.id as document_id', 'd.method', 'd.reference')) as {
      id: number;
      account_id: number;
      kind: string;
      status: string;
      amount: unknown;
      currency: string;
      gateway_reference: string | null;
      gateway_instance_id: number | null;
      created_at: number;
      message: string | null;
      gateway: string | null;
      document_id: number | null;
      method: PaymentMethod | null;
      reference: string | null;
    }[];
    if (rows.length === 0) return [];
    const ids = rows.map((r) => toNumber(r.id));
    // The invoice a payment was for: the PayInvoice attempt, else the first invoice its document was applied to.
    const invoiceOf = new Map<number, number>();
    for (const a of (await this.deps.db('invoice_payment_attempts').whereIn('payment_id', ids).select('payment_id', 'document_id')) as { payment_id: number; document_id: number }[]) {
      invoiceOf.set(toNumber(a.payment_id), toNumber(a.document_id));
    }
    const docIds = rows.filter((r) => r.document_id !== null && !invoiceOf.has(toNumber(r.id))).map((r) => toNumber(r.document_id));
    if (docIds.length) {
      const apps = (await this.deps.db('document_applications as x')
        .join('documents as t', 't.id', 'x.target_document_id')
        .join('documents as s', 's.id', 'x.source_document_id')
        .whereIn('x.source_document_id', docIds)
        .where('t.type', 'invoice')
        .orderBy('x.id')
        .select('s.payment_id', 't.id')) as { payment_id: number; id: number }[];
      for (const a of apps) if (!invoiceOf.has(toNumber(a.payment_id))) invoiceOf.set(toNumber(a.payment_id), toNumber(a.id));
    }
    return rows.map((r) => ({
      paymentId: toNumber(r.id),
      accountId: toNumber(r.account_id),
      invoiceId: invoiceOf.get(toNumber(r.id)) ?? null,
      kind: r.kind === 'refund' ? 'refund' : 'payment',
      status: r.status,
      amount: toBigInt(r.amount),
      currency: r.currency,
      method: r.gateway_instance_id !== null ? 'card' : (r.method ?? 'external'),
      gateway: r.gateway ?? null,
      reference: r.gateway_reference ?? r.reference ?? null,
      documentId: toOptionalNumber(r.document_id),
      message: r.message,
      createdAt: new Date(toNumber(r.created_at)),
    }));
  }

  // ---- applying credits to debits ----

  private async insertPayment(tx: Tx, actor: Actor, at: Date, p: NewPaymentDocument): Promise<number> {
    return (await this.insertPayments(tx, actor, at, [p]))[0]!;
  }

  /** Payment documents, numbered as a block per vendor, with their lines, audit records and payment.received events. */
  private async insertPayments(tx: Tx, actor: Actor, at: Date, list: readonly NewPaymentDocument[]): Promise<number[]> {
    if (list.length === 0) return [];
    const nowMs = at.getTime();
    const numbers = await numberBlocks(tx, 'payment', list.map((p) => p.vendorId));
    await insertBatched(
      tx,
      'documents',
      list.map((p, k) => ({
        vendor_id: p.vendorId,
        account_id: p.accountId,
        type: 'payment',
        number: numbers[k]!,
        status: 'issued',
        currency: p.currency,
        subtotal: money(p.amount),
        tax_total: '0',
        total: money(p.amount),
        balance_effect: money(-p.amount),
        open_amount: money(p.amount),
        issue_date: p.issueDate.getTime(),
        due_date: null,
        related_document_id: null,
        payment_id: p.paymentId,
        order_id: null,
        paid_at: null,
        method: p.method,
        reference: p.reference,
        description: (p.description || `Payment by ${p.method}`).slice(0, 1024),
        created_by_user_id: actor.userId,
        created_at: nowMs,
        updated_at: nowMs,
      })),
    );
    const ids = await documentIdsByNumber(tx, 'payment', list.map((p, k) => ({ vendorId: p.vendorId, number: numbers[k]! })));
    await insertBatched(
      tx,
      'document_lines',
      list.map((p, k) => ({ document_id: ids[k]!, position: 1, kind: 'adjustment', description: p.method === 'gateway' ? 'Card payment' : `Payment by ${p.method}`, quantity: '1', unit_price: money(p.amount), amount: money(p.amount), tax_amount: '0' })),
    );
    await recordChanges(
      tx,
      actor,
      at,
      list.map((p, k) => {
        const documentId = ids[k]!;
        const number = numbers[k]!;
        return {
          operation: 'payment.record',
          objectType: 'document',
          objectId: documentId,
          details: { number, accountId: p.accountId, amount: p.amount, currency: p.currency, method: p.method, reference: p.reference, paymentId: p.paymentId },
          event: { name: 'payment.received', objectType: 'document', objectId: documentId, accountId: p.accountId, payload: { documentId, number, accountId: p.accountId, amount: p.amount, currency: p.currency, method: p.method, paymentId: p.paymentId } },
        };
      }),
    );
    return ids;
  }

  /** Serialises changes of one account's open amounts (a no-op on SQLite, whose writer is already alone). */
  private async lockAccount(tx: Tx, accountId: number): Promise<void> {
    await this.lockAccounts(tx, [accountId]);
  }

  /**
   * Before deciding to charge invoices: the accounts' locks on MariaDB, SQLite's write lock (so another process
   * cannot write between this transaction's reads and its writes). Every read after it sees the latest commits.
   */
  private async lockForPaying(tx: Tx, accountIds: readonly number[]): Promise<void> {
    await takeWriteLock(tx);
    await this.lockAccounts(tx, accountIds);
  }

  /** The same for many accounts, in id order (so two holders of overlapping sets cannot deadlock). */
  private async lockAccounts(tx: Tx, accountIds: readonly number[]): Promise<void> {
    if (isSqlite(tx)) return;
    const ids = [...new Set(accountIds)].sort((a, b) => a - b);
    for (let i = 0; i < ids.length; i += 500) await tx('accounts').whereIn('id', ids.slice(i, i + 500)).orderBy('id').forUpdate().select('id');
  }

  private async accountsWithOpenCredit(tx: Tx, accountIds: number[]): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < accountIds.length; i += 500) {
      const rows = (await tx('documents').whereIn('account_id', accountIds.slice(i, i + 500)).whereIn('type', CREDIT_TYPES).where('open_amount', '>', 0).distinct('account_id')) as { account_id: number }[];
      for (const r of rows) out.push(toNumber(r.account_id));
    }
    return out.sort((a, b) => a - b);
  }

  /** Applies a credit to one debit, as much as both allow; answers what is left of the credit. */
  private async applyUpTo(tx: Tx, actor: Actor, at: Date, sourceId: number, targetId: number): Promise<bigint> {
    // Locking reads on MariaDB: the latest committed open amounts, whatever this transaction's snapshot.
    const read = (id: number) => {
      const q = tx('documents').where({ id }).first('open_amount');
      return isSqlite(tx) ? q : q.forUpdate();
    };
    const s = (await read(sourceId)) as { open_amount: unknown } | undefined;
    const t = (await read(targetId)) as { open_amount: unknown } | undefined;
    const a = toBigInt(s!.open_amount);
    const b = toBigInt(t!.open_amount);
    const amount = a < b ? a : b;
    if (amount > 0n) await this.apply(tx, actor, at, sourceId, targetId, amount);
    return a - amount;
  }

  /** Every unapplied credit of the account (oldest first) to its open debits (oldest due first), per currency. */
  async applyOpenCredits(tx: Tx, actor: Actor, at: Date, accountId: number): Promise<void> {
    await this.lockAccount(tx, accountId);
    const q = tx('documents').where({ account_id: accountId }).where('open_amount', '>', 0).whereIn('type', [...CREDIT_TYPES, ...DEBIT_TYPES]).select('id', 'type', 'currency', 'open_amount', 'due_date', 'issue_date');
    const open = (await (isSqlite(tx) ? q : q.forUpdate())) as DocumentRow[];
    const credits = open.filter((d) => CREDIT_TYPES.includes(d.type)).sort((x, y) => toNumber(x.id) - toNumber(y.id));
    if (credits.length === 0) return;
    const dueOf = (d: DocumentRow) => toNumber(d.due_date ?? d.issue_date);
    const debits = open.filter((d) => DEBIT_TYPES.includes(d.type)).sort((x, y) => dueOf(x) - dueOf(y) || toNumber(x.id) - toNumber(y.id));
    const left = new Map(open.map((d) => [toNumber(d.id), toBigInt(d.open_amount)]));
    for (const c of credits) {
      for (const d of debits) {
        if (d.currency !== c.currency) continue;
        const ca = left.get(toNumber(c.id))!;
        if (ca <= 0n) break;
        const da = left.get(toNumber(d.id))!;
        if (da <= 0n) continue;
        const amount = ca < da ? ca : da;
        await this.apply(tx, actor, at, toNumber(c.id), toNumber(d.id), amount);
        left.set(toNumber(c.id), ca - amount);
        left.set(toNumber(d.id), da - amount);
      }
    }
  }

  /** One application: lowers both open amounts; a debit paid in full becomes paid and tells the listeners. */
  private async apply(tx: Tx, actor: Actor, at: Date, sourceId: number, targetId: number, amount: bigint): Promise<void> {
    await this.applyMany(tx, actor, at, [{ sourceId, targetId, amount }]);
  }

  /**
   * Many applications at once (a few statements for all): each lowers its credit's and its debit's open amounts;
   * the debits paid in full become paid and the listeners hear of them together. The caller holds the accounts'
   * locks and has read the open amounts it applies under them.
   */
  private async applyMany(tx: Tx, actor: Actor, at: Date, apps: readonly { sourceId: number; targetId: number; amount: bigint }[]): Promise<void> {
    const list = apps.filter((a) => a.amount > 0n);
    if (list.length === 0) return;
    const nowMs = at.getTime();
    await insertBatched(tx, 'document_applications', list.map((a) => ({ source_document_id: a.sourceId, target_document_id: a.targetId, amount: money(a.amount), created_at: nowMs })));
    const lower = new Map<number, bigint>();
    for (const a of list) {
      lower.set(a.sourceId, (lower.get(a.sourceId) ?? 0n) + a.amount);
      lower.set(a.targetId, (lower.get(a.targetId) ?? 0n) + a.amount);
    }
    // The CASE answers its amounts as strings; MariaDB would subtract a string as a DOUBLE (exact only below 2^53
    // minor units), so each is cast to an integer first (SIGNED: BIGINT on MariaDB, an integer on SQLite).
    await updateByKey(tx, 'documents', 'id', 'open_amount', new Map([...lower].map(([id, v]) => [id, money(v)])), { expr: (c) => `open_amount - CAST((${c}) AS SIGNED)`, also: { updated_at: nowMs } });
    const docs = new Map<number, DocumentRow>();
    const ids = [...lower.keys()];
    for (let i = 0; i < ids.length; i += 500) for (const d of (await tx('documents').whereIn('id', ids.slice(i, i + 500))) as DocumentRow[]) docs.set(toNumber(d.id), d);
    const paid: DocumentRow[] = [];
    for (const a of list) {
      const source = docs.get(a.sourceId)!;
      const target = docs.get(a.targetId)!;
      if (toBigInt(target.open_amount) < 0n) throw new AppError('INTERNAL', `Applying ${a.amount} to ${target.number} would overpay it.`);
      if (toBigInt(source.open_amount) < 0n) throw new AppError('INTERNAL', `Applying ${a.amount} of ${source.number} would apply more than it holds.`);
      if (toBigInt(target.open_amount) === 0n && target.status === 'open' && !paid.includes(target)) paid.push(target);
    }
    const paidIds = paid.map((d) => toNumber(d.id));
    for (let i = 0; i < paidIds.length; i += 500) await tx('documents').whereIn('id', paidIds.slice(i, i + 500)).update({ status: 'paid', paid_at: nowMs });
    await this.firePaid(
      tx,
      actor,
      at,
      paid.map((d) => ({ type: d.type, e: { documentId: toNumber(d.id), number: d.number, accountId: toNumber(d.account_id), vendorId: toNumber(d.vendor_id), currency: d.currency, total: toBigInt(d.total), paidAt: at } })),
    );
  }

  /** Invoices and debit memos paid in full: their audit records and events, then the invoice-paid listeners, for all at once. */
  private async firePaid(tx: Tx, actor: Actor, at: Date, paid: readonly { e: InvoicePaidEvent; type: DocumentType }[]): Promise<void> {
    const debits = paid.filter((p) => p.type === 'invoice' || p.type === 'debit_memo');
    if (debits.length === 0) return;
    await recordChanges(
      tx,
      actor,
      at,
      debits.map(({ e, type }) => ({
        operation: `${type}.paid`,
        objectType: 'document',
        objectId: e.documentId,
        details: { number: e.number, total: e.total, currency: e.currency },
        event: { name: `${type}.paid`, objectType: 'document', objectId: e.documentId, accountId: e.accountId, payload: { documentId: e.documentId, number: e.number, accountId: e.accountId, total: e.total, currency: e.currency } },
      })),
    );
    const invoices = debits.filter((p) => p.type === 'invoice').map((p) => p.e);
    if (invoices.length) for (const l of this.paidListeners) await l(tx, invoices);
  }

  private async scopedDocument(conn: Conn, actor: Actor, documentId: number): Promise<DocumentRow> {
    positiveId(documentId, 'documentId');
    const row = (await conn('documents as d').join('accounts as a', 'a.id', 'd.account_id').where('d.id', documentId).andWhere('a.path', 'like', `${actor.accountPath}%`).first('d.*')) as DocumentRow | undefined;
    if (!row) throw notFound('Document', documentId);
    return row;
  }
}

/** What the order engine writes to the ledger, in its own transactions. */
export type OrderLedger = Pick<DocumentsService, 'memoTx' | 'recordOrderChargeTx' | 'reverseOrderChargeTx' | 'refundOnCancellationTx' | 'paidInvoiceTx' | 'invoiceCreditTx'>;

/** An invoice and what of it can still be credited (DocumentsService.invoiceCreditTx). */
export interface InvoiceCreditRoom {
  id: number;
  number: string;
  status: DocumentStatus;
  left: bigint;
}

/**
 * A DocumentsService for the transaction-taking methods only (memoTx, recordOrderChargeTx, reverseOrderChargeTx
 * use neither deps nor payments), with no invoice-paid listeners: for an order engine built without the
 * application's DocumentsService (tests, tools). The server passes services.documents instead.
 */
export function ledgerWithoutListeners(): OrderLedger {
  return new DocumentsService(undefined as unknown as Deps, undefined as unknown as PaymentsService);
}
