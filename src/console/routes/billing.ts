import crypto from 'node:crypto';
import type { ConsoleRoutes } from '../app';
import type { Page } from '../page';
import { renderDocumentHtml } from '../../billing/invoice-html';
import { billingSettingsOf } from '../../billing/settings';
import type { PaymentView } from '../../billing/documents-service';
import type { BillingDocument, DocumentWithLines } from '../../billing/types';
import { toBigInt, toNumber } from '../../db/knex';
import { invalid, notAllowed } from '../../domain/errors';
import { formatAmount, parseAmount } from '../../domain/money';
import { PAYMENT_STATUSES } from '../../payments/payment-states';
import { likeTerm, listPage } from '../lists';
import { inSubtree } from './scope';

/** The documents the Invoices section lists (payments and refunds are in Payments). */
const BILL_TYPES = ['invoice', 'debit_memo', 'credit_memo'] as const;
const BILL_STATUSES = ['open', 'overdue', 'paid', 'void', 'issued'] as const;
/** Methods an operator records by hand in the console. */
const RECORD_METHODS = ['check', 'wire', 'cash'] as const;
const PAYMENT_METHODS = ['card', 'check', 'wire', 'cash', 'external'] as const;
const DAY = 86_400_000;
const PRINT_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

type PrintParty = Parameters<typeof renderDocumentHtml>[1]['vendor'];

/** A `YYYY-MM-DD` filter as the UTC midnight it names; a malformed one is noted beside its field and ignored. */
function dayFilter(page: Page, name: string): number | undefined {
  const text = page.query(name).trim();
  if (!text) return undefined;
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(text) ? Date.parse(`${text}T00:00:00Z`) : NaN;
  if (Number.isNaN(ms)) {
    page.errors[name] = 'Give a date as YYYY-MM-DD (UTC), e.g. 2026-03-01.';
    return undefined;
  }
  return ms;
}

/** A positive amount typed by a person, as minor units of `currency`. */
function typedAmount(page: Page, currency: string): bigint {
  const text = page.text('amount');
  if (text === undefined) throw invalid('amount', 'Give the amount, e.g. 12.50.');
  const minor = parseAmount(text, currency, 'amount');
  if (minor <= 0n) throw invalid('amount', `The amount must be more than 0 ${currency}.`);
  return minor;
}

/** A fresh key per rendered form: the same form sent twice (a double click, a reload) records once. */
const formKey = () => `console:${crypto.randomBytes(16).toString('base64url')}`;

/** What of a payment document is left to refund: its total less the refunds already issued against it. */
async function refundableOf(page: Page, doc: { documentId: number; total: bigint }): Promise<bigint> {
  const [{ s }] = (await page.services.deps.db('documents').where({ related_document_id: doc.documentId, type: 'refund' }).sum({ s: 'total' })) as { s: unknown }[];
  return BigInt(doc.total) - toBigInt(s);
}

/**
 * Billing: invoices and memos (list, page, printable view, record an offline payment), payments and refunds
 * (list, page, refund). Reads and changes go through the DocumentsService with the operator's Actor; lists keep
 * the operator's subtree like every console list.
 */
export function billingPages(r: ConsoleRoutes): void {
  // ---- invoices ----

  r.get('/invoices', async (page) => {
    const { db, clock } = page.services.deps;
    const q = inSubtree(db('documents as d').join('accounts as a', 'a.id', 'd.account_id'), page.actor).select(
      'd.id',
      'd.number',
      'd.type',
      'd.status',
      'd.currency',
      'd.total',
      'd.open_amount',
      'd.issue_date',
      'd.due_date',
      'a.id as account_id',
      'a.company_name',
    );
    const type = (BILL_TYPES as readonly string[]).includes(page.query('type')) ? page.query('type') : '';
    if (type) q.andWhere('d.type', type);
    else q.whereIn('d.type', BILL_TYPES);
    const now = clock.now().getTime();
    const status = (BILL_STATUSES as readonly string[]).includes(page.query('status')) ? page.query('status') : '';
    if (status === 'overdue') q.andWhere('d.status', 'open').andWhere('d.due_date', '<', now);
    else if (status) q.andWhere('d.status', status);
    const account = /^\d{1,15}$/.test(page.query('account')) ? Number(page.query('account')) : undefined;
    if (account !== undefined) q.andWhere('a.id', account);
    const from = dayFilter(page, 'from');
    const to = dayFilter(page, 'to');
    if (from !== undefined) q.andWhere('d.issue_date', '>=', from);
    if (to !== undefined) q.andWhere('d.issue_date', '<', to + DAY);
    const search = page.query('q').trim();
    if (search) q.andWhere((w) => w.whereRaw("d.number LIKE ? ESCAPE '!'", [likeTerm(search)]).orWhereRaw("a.company_name LIKE ? ESCAPE '!'", [likeTerm(search)]));
    const list = await listPage<Record<string, unknown>>(page, q, {
      sorts: { id: 'd.id', number: 'd.number', account: 'a.company_name', type: 'd.type', status: 'd.status', total: 'd.total', open: 'd.open_amount', issued: 'd.issue_date', due: 'd.due_date' },
      defaultSort: 'id',
      defaultDir: 'desc',
      filters: ['type', 'status', 'account', 'from', 'to', 'q'],
      tieBreaker: 'd.id',
    });
    const rows = list.rows.map((d) => ({ ...d, overdue: d.status === 'open' && d.due_date !== null && toNumber(d.due_date) < now }));
    await page.render('billing-invoices.njk', {
      title: 'Invoices',
      list: { ...list, rows },
      types: BILL_TYPES,
      statuses: BILL_STATUSES,
      type,
      status,
      account: page.query('account'),
      from: page.query('from'),
      to: page.query('to'),
      q: search,
    });
  });

  /** The operator may record payments for and refund to the accounts below it, never to its own account. */
  const mayCollect = (page: Page, accountId: number) => accountId !== page.actor.accountId;
  const payable = (doc: BillingDocument) => (doc.type === 'invoice' || doc.type === 'debit_memo') && doc.status === 'open' && BigInt(doc.openAmount) > 0n;

  const showInvoice = async (page: Page, status = 200) => {
    const { documents, accounts } = page.services;
    const doc = await documents.getDocument(page.actor, page.param('id'));
    const [applications, account, vendor] = await Promise.all([
      documents.listApplications(page.actor, doc.documentId),
      accounts.get(page.actor, doc.accountId),
      page.services.deps.db('accounts').where({ id: doc.vendorId }).first('id', 'company_name') as Promise<{ id: number; company_name: string | null } | undefined>,
    ]);
    const now = page.services.deps.clock.now().getTime();
    // Payment transactions behind the documents applied to this one, for links to their pages.
    const sourceIds = applications.filter((a) => a.targetDocumentId === doc.documentId).map((a) => a.sourceDocumentId);
    const paymentOf = new Map<number, number>();
    if (sourceIds.length) {
      for (const s of (await page.services.deps.db('documents').whereIn('id', sourceIds).whereNotNull('payment_id').select('id', 'payment_id')) as { id: unknown; payment_id: unknown }[]) {
        paymentOf.set(toNumber(s.id), toNumber(s.payment_id));
      }
    }
    await page.render(
      'billing-invoice.njk',
      {
        title: `${doc.type === 'invoice' ? 'Invoice' : doc.type === 'credit_memo' ? 'Credit memo' : doc.type === 'debit_memo' ? 'Debit memo' : doc.type === 'payment' ? 'Payment' : 'Refund'} ${doc.number}`,
        doc,
        charges: doc.lines.filter((l) => l.kind !== 'tax'),
        taxes: doc.lines.filter((l) => l.kind === 'tax'),
        appliedHere: applications.filter((a) => a.targetDocumentId === doc.documentId).map((a) => ({ ...a, paymentId: paymentOf.get(a.sourceDocumentId) ?? null })),
        appliedElsewhere: applications.filter((a) => a.sourceDocumentId === doc.documentId),
        account,
        vendorName: vendor?.company_name || `Account ${doc.vendorId}`,
        overdue: doc.status === 'open' && doc.dueDate !== null && doc.dueDate.getTime() < now,
        canRecord: payable(doc) && mayCollect(page, doc.accountId),
        methods: RECORD_METHODS,
        formKey: formKey(),
        defaultAmount: formatAmount(BigInt(doc.openAmount), doc.currency),
      },
      status,
    );
  };
  r.get('/invoices/:id', (page) => showInvoice(page));

  // The printable page, rendered by the same function as GET /invoices/:id, for the signed-in operator.
  r.get('/invoices/:id/print', async (page) => {
    const { documents, deps } = page.services;
    const doc: DocumentWithLines = await documents.getDocument(page.actor, page.param('id'));
    const cols = ['id', 'company_name', 'address1', 'address2', 'city', 'state', 'zip', 'country'];
    const [vendor, customer, settings, applications] = await Promise.all([
      deps.db('accounts').where({ id: doc.vendorId }).first(cols) as Promise<PrintParty>,
      deps.db('accounts').where({ id: doc.accountId }).first(cols) as Promise<PrintParty>,
      billingSettingsOf(deps.db, doc.vendorId),
      documents.listApplications(page.actor, doc.documentId),
    ]);
    const ctx = page.ctx;
    ctx.status = 200;
    ctx.type = 'text/html; charset=utf-8';
    // The printable template carries its own inline stylesheet (it is also sent on its own, outside the console).
    ctx.set('Content-Security-Policy', PRINT_CSP);
    ctx.body = renderDocumentHtml(doc, { vendor, customer, applications, timeZone: settings.timeZone, now: deps.clock.now() });
  });

  r.post('/invoices/:id/payments', async (page) => {
    const id = page.param('id');
    const doc = await page.services.documents.getDocument(page.actor, id);
    const done = await page.attempt(async () => {
      if (!mayCollect(page, doc.accountId)) throw notAllowed(`Invoice ${doc.number} is your own account's: its vendor records its payments.`, 'amount');
      if (!payable(doc)) throw notAllowed(`${doc.number} is ${doc.status}; there is nothing to pay.`, 'amount');
      const method = page.text('method') ?? '';
      if (!(RECORD_METHODS as readonly string[]).includes(method)) throw invalid('method', 'Choose how the payment was received: check, wire or cash.');
      const amount = typedAmount(page, doc.currency);
      const received = page.text('receivedOn');
      let receivedAt: Date | undefined;
      if (received !== undefined) {
        const ms = /^\d{4}-\d{2}-\d{2}$/.test(received) ? Date.parse(`${received}T00:00:00Z`) : NaN;
        if (Number.isNaN(ms)) throw invalid('receivedOn', 'Give the date received as YYYY-MM-DD, or leave it empty for today.');
        if (ms > page.services.deps.clock.now().getTime()) throw invalid('receivedOn', 'The date received cannot be in the future.');
        receivedAt = new Date(ms);
      }
      return page.services.documents.recordPayment(page.actor, {
        accountId: doc.accountId,
        invoiceId: doc.documentId,
        amount,
        currency: doc.currency,
        method: method as (typeof RECORD_METHODS)[number],
        reference: page.text('reference'),
        receivedAt,
        idempotencyKey: page.text('key'),
      });
    });
    if (!done) return showInvoice(page, 422);
    const after = await page.services.documents.getDocument(page.actor, id);
    const left = BigInt(after.openAmount);
    await page.redirect(`/console/invoices/${id}`, {
      kind: 'ok',
      text: `Payment ${done.number} of ${formatAmount(BigInt(done.total), done.currency)} ${done.currency} recorded; ${after.number} is ${after.status === 'paid' ? 'paid' : `open, ${formatAmount(left, after.currency)} ${after.currency} still due`}.`,
    });
  });

  // ---- payments ----

  r.get('/payments', async (page) => {
    const { db } = page.services.deps;
    const q = inSubtree(db('payments as p').join('accounts as a', 'a.id', 'p.account_id'), page.actor)
      .whereIn('p.kind', ['purchase', 'capture', 'refund'])
      .leftJoin('plugin_instances as g', 'g.id', 'p.gateway_instance_id')
      .leftJoin('documents as d', (j) => j.on('d.payment_id', '=', 'p.id').andOnIn('d.type', ['payment', 'refund']))
      .select('p.id', 'p.kind', 'p.status', 'p.amount', 'p.currency', 'p.created_at', 'p.gateway_reference', 'p.gateway_instance_id', 'g.name as gateway', 'd.id as document_id', 'd.number as document_number', 'd.method', 'd.reference', 'a.id as account_id', 'a.company_name');
    const status = (PAYMENT_STATUSES as readonly string[]).includes(page.query('status')) ? page.query('status') : '';
    if (status) q.andWhere('p.status', status);
    const method = (PAYMENT_METHODS as readonly string[]).includes(page.query('method')) ? page.query('method') : '';
    if (method === 'card') q.whereNotNull('p.gateway_instance_id');
    else if (method) q.whereNull('p.gateway_instance_id').andWhere('d.method', method);
    const kind = page.query('kind') === 'payment' || page.query('kind') === 'refund' ? page.query('kind') : '';
    if (kind === 'refund') q.andWhere('p.kind', 'refund');
    else if (kind === 'payment') q.whereIn('p.kind', ['purchase', 'capture']);
    const account = /^\d{1,15}$/.test(page.query('account')) ? Number(page.query('account')) : undefined;
    if (account !== undefined) q.andWhere('a.id', account);
    const search = page.query('q').trim();
    if (search) {
      q.andWhere((w) =>
        w
          .whereRaw("a.company_name LIKE ? ESCAPE '!'", [likeTerm(search)])
          .orWhereRaw("d.number LIKE ? ESCAPE '!'", [likeTerm(search)])
          .orWhereRaw("p.gateway_reference LIKE ? ESCAPE '!'", [likeTerm(search)])
          .orWhereRaw("d.reference LIKE ? ESCAPE '!'", [likeTerm(search)]),
      );
    }
    const list = await listPage<Record<string, unknown>>(page, q, {
      sorts: { id: 'p.id', account: 'a.company_name', kind: 'p.kind', status: 'p.status', amount: 'p.amount', created: 'p.created_at', document: 'd.number' },
      defaultSort: 'id',
      defaultDir: 'desc',
      filters: ['status', 'method', 'kind', 'account', 'q'],
      tieBreaker: 'p.id',
    });
    const rows = list.rows.map((p) => ({ ...p, methodName: p.gateway_instance_id !== null ? 'card' : (p.method ?? 'external'), kindName: p.kind === 'refund' ? 'refund' : 'payment' }));
    await page.render('billing-payments.njk', { title: 'Payments', list: { ...list, rows }, statuses: PAYMENT_STATUSES, methods: PAYMENT_METHODS, status, method, kind, account: page.query('account'), q: search });
  });

  const showPayment = async (page: Page, status = 200) => {
    const { documents, accounts, deps } = page.services;
    const payment: PaymentView = await documents.getPayment(page.actor, page.param('id'));
    const account = await accounts.get(page.actor, payment.accountId);
    const doc = payment.documentId !== null ? await documents.getDocument(page.actor, payment.documentId) : null;
    const applications = doc ? await documents.listApplications(page.actor, doc.documentId) : [];
    // A payment document's refunds; a refund document's payment.
    let refunds: { id: number; number: string; total: bigint; currency: string; issueDate: number; paymentId: number | null }[] = [];
    let refundable = 0n;
    let refundOf: { documentId: number; number: string; paymentId: number | null } | null = null;
    if (doc && doc.type === 'payment') {
      refunds = ((await deps.db('documents').where({ related_document_id: doc.documentId, type: 'refund' }).orderBy('id').select('id', 'number', 'total', 'currency', 'issue_date', 'payment_id')) as Record<string, unknown>[]).map((x) => ({
        id: toNumber(x.id),
        number: String(x.number),
        total: toBigInt(x.total),
        currency: String(x.currency),
        issueDate: toNumber(x.issue_date),
        paymentId: x.payment_id === null ? null : toNumber(x.payment_id),
      }));
      refundable = await refundableOf(page, doc);
    } else if (!doc && payment.kind === 'payment') {
      // A gateway charge without a payment document (an order's first charge): its refunds are child transactions.
      const [{ s }] = (await deps.db('payments').where({ parent_payment_id: payment.paymentId, kind: 'refund' }).whereIn('status', ['success', 'pending', 'unknown']).sum({ s: 'amount' })) as { s: unknown }[];
      refundable = BigInt(payment.amount) - toBigInt(s);
    } else if (doc && doc.type === 'refund' && doc.relatedDocumentId !== null) {
      const source = await documents.getDocument(page.actor, doc.relatedDocumentId);
      refundOf = { documentId: source.documentId, number: source.number, paymentId: source.paymentId };
    }
    const canRefund = payment.kind === 'payment' && payment.status === 'success' && refundable > 0n && mayCollect(page, payment.accountId);
    await page.render(
      'billing-payment.njk',
      {
        title: `${payment.kind === 'refund' ? 'Refund' : 'Payment'} ${payment.paymentId}`,
        payment,
        account,
        doc,
        applications,
        refunds,
        refundOf,
        refundable,
        canRefund,
        formKey: formKey(),
        defaultAmount: formatAmount(refundable, payment.currency),
      },
      status,
    );
  };
  r.get('/payments/:id', (page) => showPayment(page));

  r.post('/payments/:id/refund', async (page) => {
    const id = page.param('id');
    const payment = await page.services.documents.getPayment(page.actor, id);
    const done = await page.attempt(async () => {
      if (!mayCollect(page, payment.accountId)) throw notAllowed('This payment is your own account\u2019s: its vendor refunds it.', 'amount');
      if (payment.kind !== 'payment' || payment.status !== 'success') throw notAllowed(`Only a settled payment is refunded; this one is ${payment.kind === 'refund' ? 'a refund' : payment.status}.`, 'amount');
      const amount = typedAmount(page, payment.currency);
      const reason = page.text('reason');
      const target = payment.documentId !== null ? { paymentDocumentId: payment.documentId } : { paymentId: payment.paymentId };
      return page.services.documents.refundPayment(page.actor, { ...target, amount, reason, idempotencyKey: page.text('key') });
    });
    if (!done) return showPayment(page, 422);
    if (done.outcome === 'declined' || done.outcome === 'failed') {
      page.formError = `The gateway refused the refund: ${done.message ?? done.outcome}.`;
      page.errors.amount = page.formError;
      return showPayment(page, 422);
    }
    const amount = `${formatAmount(BigInt(done.amount), done.currency)} ${done.currency}`;
    await page.redirect(`/console/payments/${id}`, {
      kind: 'ok',
      text:
        done.outcome === 'refunded'
          ? `Refund ${done.refundNumber ?? ''} of ${amount} issued.`
          : `The refund of ${amount} is ${done.outcome} at the gateway; it is recorded once the gateway confirms it.`,
    });
  });
}
