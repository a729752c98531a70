import type { BillingRunSummary } from '../../billing/run/billing-run';
import { invalid, notAllowed } from '../../domain/errors';
import type { Services } from '../../services';
import type { SoapOperation } from './soap-mount';
import { bool, decimal, int, text } from './wire';

// SOAP operations of the billing run and usage (issue #5, part B): ReportUsage, RunBilling.
// Responses follow the XSD sequences of wsdl/BillingService.wsdl.

const write = (run: SoapOperation['run']): SoapOperation => ({ mutating: true, run });

function instant(v: unknown, field: string): Date | undefined {
  const t = text(v)?.trim();
  if (t === undefined || t === '') return undefined;
  const d = new Date(t);
  if (!/^\d{4}-\d\d-\d\dT/.test(t) || Number.isNaN(d.getTime())) throw invalid(field, `${field} must be an xs:dateTime, e.g. 2026-01-31T00:00:00Z.`);
  return d;
}

/** BillingSummary in its XSD order; totals are one Money per currency. */
export function billingSummaryWire(s: BillingRunSummary) {
  return {
    subscriptionsExamined: s.subscriptionsExamined,
    invoicesCreated: s.invoices,
    linesCreated: s.lines,
    paymentsAttempted: s.payments.tried,
    paymentsSucceeded: s.payments.succeeded,
    paymentsDeclined: s.payments.declined,
    paymentsUnknown: s.payments.unknown,
    suspensions: s.suspensions,
    terminations: s.terminations,
    totals: {
      total: Object.entries(s.totals)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([currency, amount]) => ({ amount: decimal(amount, currency), currency })),
    },
  };
}

export function billingRunOps(services: Services): Record<string, SoapOperation> {
  return {
    ReportUsage: write(async (a, actor) => {
      const mode = text(a.mode)?.trim();
      if (mode !== 'increment' && mode !== 'set') throw invalid('mode', "mode must be 'increment' or 'set'.");
      const r = await services.usage.report(actor, {
        subscriptionId: int(a.subscriptionId, 'subscriptionId') as number,
        resourceId: int(a.resourceId, 'resourceId') as number,
        quantity: text(a.quantity)?.trim() ?? '',
        mode,
        usageId: text(a.usageId) ?? '',
        at: instant(a.at, 'at'),
      });
      return { usage: r.usage };
    }),
    // The run is idempotent by itself (a second run as of the same instant bills nothing new), so a retried
    // call with the same idempotencyKey is harmless; the key is accepted and not otherwise used.
    RunBilling: write(async (a, actor) => {
      if (actor.accountType !== 'provider' || !actor.roles.includes('admin')) {
        throw notAllowed('RunBilling is for the provider\'s administrators: the run bills every vendor\'s subscriptions.');
      }
      const dryRun = bool(a.dryRun, 'dryRun') ?? false;
      const summary = await services.billingRun.run({ asOf: instant(a.asOf, 'asOf'), dryRun, startedBy: `api:${actor.userId ?? actor.accountId}` });
      return { summary: billingSummaryWire(summary) };
    }),
  };
}
