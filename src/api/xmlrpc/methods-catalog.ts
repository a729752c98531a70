import { formatAmount } from '../../domain/money';
import { periodUnitToPba } from '../../domain/period';
import { VERSION } from '../../version';
import { XmlRpcDouble, type XmlRpcValue } from './codec';
import { read, type MethodTable } from './method-table';
import { moneyDouble, sortRows } from './params';

const flag = (b: boolean) => (b ? 1 : 0);
const qty = (n: number) => (Number.isInteger(n) ? n : new XmlRpcDouble(String(n)));

export const catalogMethods: MethodTable = {
  /** -> [PlanID, VendorAccountID, Name, ShortDescription, LongDescription, ServiceTemplateID, GateName, Category, Published, Trial, Currency] */
  'BM.PlanDetailsGet_API': read(async (p, actor, s) => {
    const plan = await s.catalog.getPlan(actor, p.int(0, 'PlanID'));
    const short = plan.description.split(/\r?\n/)[0].slice(0, 255);
    return [plan.planId, plan.vendorAccountId, plan.name, short, plan.description, plan.templateId, plan.serviceGate, plan.category, flag(plan.published), flag(plan.trial), plan.currency];
  }),
  /** (VendorID, GateName, CategoryID, SortNo) -> rows [PlanID, Name, ShortDescription, GateName, Category, Trial] */
  'BM.PlanListAvailableGet_API': read(async (p, actor, s) => {
    const vendor = p.optInt(0, 'VendorID');
    const gate = p.optStr(1, 'GateName')?.trim() || undefined;
    const rawCategory = p.raw(2);
    const category = typeof rawCategory === 'string' && rawCategory.trim() ? rawCategory.trim() : undefined;
    const rows: XmlRpcValue[][] = [];
    for (let page = 1; ; page++) {
      const r = await s.catalog.listPlans(actor, { vendorAccountId: vendor || undefined, serviceGate: gate, category, page, pageSize: 500 });
      for (const plan of r.items) rows.push([plan.planId, plan.name, plan.description.split(/\r?\n/)[0].slice(0, 255), plan.serviceGate, plan.category, flag(plan.trial)]);
      if (page * 500 >= r.total) break;
    }
    return sortRows(rows, p.optInt(3, 'SortNo'));
  }),
  /** (PlanID, SortNo) -> rows [PlanPeriodID, Period, PeriodType, Trial, SetupFee, SubscriptionFee, RenewalFee, TransferFee, NonRefundableAmt, RefundPeriod, Enabled] */
  'BM.PlanPeriodListGet_API': read(async (p, actor, s) => {
    const plan = await s.catalog.getPlan(actor, p.int(0, 'PlanID'));
    const m = (v: bigint) => moneyDouble(formatAmount(v, plan.currency));
    const rows = plan.periods.map((x) => [
      x.periodId,
      x.duration,
      periodUnitToPba(x.unit),
      flag(x.trial),
      m(x.setupFee),
      m(x.recurringFee),
      m(x.renewalFee),
      m(x.transferFee),
      m(x.nonRefundableAmount),
      x.refundPeriodDays,
      flag(x.enabled),
    ]);
    return sortRows(rows, p.optInt(1, 'SortNo'));
  }),
  /** (PlanID, SortNo) -> rows [ResourceID, ResourceName, UnitName, IncludedValue, MinValue, MaxValue (-1 unlimited), SetupFee, RecurringFee, OveruseFee] */
  'BM.PlanRateListFullGet_API': read(async (p, actor, s) => {
    const plan = await s.catalog.getPlan(actor, p.int(0, 'PlanID'));
    const m = (v: bigint) => moneyDouble(formatAmount(v, plan.currency));
    const rows = plan.resources.map((r) => [r.resourceId, r.name, r.unit, qty(r.included), qty(r.min), r.max === null ? -1 : qty(r.max), m(r.setupFee), m(r.recurringFee), m(r.overageFee)]);
    return sortRows(rows, p.optInt(1, 'SortNo'));
  }),
  'BM.GetVersion_API': read(async () => [`Hostwright ${VERSION}`]),
};
