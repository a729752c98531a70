import path from 'node:path';
import type Router from '@koa/router';
import nunjucks from 'nunjucks';
import type { AccountRow } from '../accounts/scope';
import { clientAddress } from '../api/client-address';
import { isAppError } from '../domain/errors';
import { formatAmount } from '../domain/money';
import type { Role } from '../context';
import type { Services } from '../services';
import type { Application, DocumentWithLines } from './types';
import { billingSettingsOf } from './settings';

// The printable HTML view of a billing document (PDF-free: the browser prints it), served at GET /invoices/:id.

const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(path.join(__dirname, 'templates'), { noCache: false }), { autoescape: true, throwOnUndefined: false });

const TITLE: Record<DocumentWithLines['type'], string> = { invoice: 'Invoice', credit_memo: 'Credit memo', debit_memo: 'Debit memo', payment: 'Payment receipt', refund: 'Refund' };

/** What a line charges, as the printed invoice names it. */
const KIND_LABEL: Record<DocumentWithLines['lines'][number]['kind'], string> = {
  setup: 'Setup',
  recurring: 'Subscription',
  renewal: 'Renewal',
  trial_conversion: 'Trial conversion',
  overage: 'Usage overage',
  resource: 'Resources',
  late_fee: 'Late fee',
  proration: 'Proration',
  adjustment: 'Adjustment',
  domain: 'Domain',
  tax: 'Tax',
};

type Party = Pick<AccountRow, 'id' | 'company_name' | 'address1' | 'address2' | 'city' | 'state' | 'zip' | 'country'>;

function party(a: Party): { name: string; address: string[] } {
  const cityLine = [a.zip, a.city, a.state].filter((x) => x).join(' ');
  return { name: a.company_name || `Account ${a.id}`, address: [a.address1, a.address2, cityLine, a.country].filter((x): x is string => !!x) };
}

/** Renders a document as a standalone HTML page (every value escaped by the template engine). */
export function renderDocumentHtml(doc: DocumentWithLines, ctx: { vendor: Party; customer: Party; applications: Application[]; timeZone: string; now: Date }): string {
  const day = new Intl.DateTimeFormat('en-GB', { timeZone: ctx.timeZone, year: 'numeric', month: 'short', day: '2-digit' });
  const fmt = (v: bigint) => formatAmount(v, doc.currency);
  const charges = doc.lines.filter((l) => l.kind !== 'tax');
  const taxLine = doc.lines.find((l) => l.kind === 'tax');
  const overdue = doc.status === 'open' && doc.dueDate !== null && doc.dueDate.getTime() < ctx.now.getTime();
  return env.render('invoice.njk', {
    title: TITLE[doc.type],
    doc,
    status: overdue ? 'overdue' : doc.status,
    issueDate: day.format(doc.issueDate),
    dueDate: doc.dueDate && (doc.type === 'invoice' || doc.type === 'debit_memo') ? day.format(doc.dueDate) : null,
    vendor: party(ctx.vendor),
    customer: party(ctx.customer),
    lines: charges.map((l) => ({
      description: l.description,
      kind: KIND_LABEL[l.kind] ?? l.kind,
      period: l.periodStart && l.periodEnd ? `${day.format(l.periodStart)} – ${day.format(new Date(l.periodEnd.getTime() - 1))}` : null,
      quantity: l.quantity,
      unitPrice: fmt(l.unitPrice),
      amount: fmt(l.amount),
    })),
    subtotal: fmt(doc.subtotal),
    tax: fmt(doc.taxTotal),
    taxLabel: taxLine ? taxLine.description : 'Tax',
    total: fmt(doc.total),
    applications: ctx.applications
      .filter((a) => a.targetDocumentId === doc.documentId)
      .map((a) => ({ label: `${TITLE[a.sourceType]} ${a.sourceNumber}`, amount: fmt(a.amount) })),
    balanceDue: fmt(doc.type === 'invoice' || doc.type === 'debit_memo' ? doc.openAmount : 0n),
  });
}

const ROLES: readonly Role[] = ['api', 'admin', 'billing'];

/**
 * GET /invoices/:id: the printable page of a document the caller may see, for HTTP Basic credentials of a user of
 * the document's account or an account above it. Anything outside the caller's subtree is 404, like a missing id.
 */
export function mountInvoiceHtml(services: Services, router: Router): void {
  router.get('/invoices/:id', async (ctx) => {
    const auth = ctx.get('authorization');
    const decoded = /^Basic\s+/i.test(auth) ? Buffer.from(auth.replace(/^Basic\s+/i, ''), 'base64').toString('utf8') : '';
    const i = decoded.indexOf(':');
    const deny = () => {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Basic realm="Hostwright invoices", charset="UTF-8"');
      ctx.type = 'text/plain';
      ctx.body = 'Sign in with the login and password of a user of this account (or of its reseller or provider).';
    };
    if (i <= 0) return deny();
    let actor;
    try {
      actor = await services.auth.authenticate({ login: decoded.slice(0, i), password: decoded.slice(i + 1) }, { channel: 'console', remoteAddr: clientAddress(ctx.req, services.deps.config.trustProxy), requestId: ctx.state.requestId as string, requiredRoles: ROLES });
    } catch (e) {
      if (isAppError(e) && (e.code === 'UNAUTHENTICATED' || e.code === 'NOT_ALLOWED')) return deny();
      throw e;
    }
    const id = /^\d{1,15}$/.test(ctx.params.id ?? '') ? Number(ctx.params.id) : 0;
    let doc: DocumentWithLines;
    try {
      if (!id) throw new Error('bad id');
      doc = await services.documents.getDocument(actor, id);
    } catch (e) {
      if (isAppError(e) && e.code !== 'NOT_FOUND' && e.code !== 'INVALID_ARGUMENT') throw e;
      ctx.status = 404;
      ctx.type = 'text/plain';
      ctx.body = `Document ${ctx.params.id} does not exist.`;
      return;
    }
    const db = services.deps.db;
    const cols = ['id', 'company_name', 'address1', 'address2', 'city', 'state', 'zip', 'country'];
    const [vendor, customer] = (await Promise.all([db('accounts').where({ id: doc.vendorId }).first(cols), db('accounts').where({ id: doc.accountId }).first(cols)])) as Party[];
    const settings = await billingSettingsOf(db, doc.vendorId);
    const applications = await services.documents.listApplications(actor, doc.documentId);
    ctx.type = 'text/html; charset=utf-8';
    ctx.set('Cache-Control', 'private, no-store');
    ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'");
    ctx.body = renderDocumentHtml(doc, { vendor: vendor!, customer: customer!, applications, timeZone: settings.timeZone, now: services.deps.clock.now() });
  });
}
