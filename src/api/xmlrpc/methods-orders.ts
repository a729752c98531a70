import crypto from 'node:crypto';
import type { Actor } from '../../context';
import { invalid } from '../../domain/errors';
import { formatAmount } from '../../domain/money';
import { periodUnitToPba } from '../../domain/period';
import type { OrderType, PbaOrderStatus } from '../../domain/workflow';
import type { Order } from '../../orders/orders-service';
import type { Services } from '../../services';
import type { Subscription } from '../../subscriptions/subscriptions-service';
import { XmlRpcDouble, type XmlRpcValue } from './codec';
import { done, read, write, type MethodTable } from './method-table';
import { INT_NULL, moneyDouble, sortRows, type Params } from './params';

/** PBA order type codes (legacy-xmlrpc.md). A resource order is a change of the subscription's amounts: CH. */
const ORDER_TYPE_CODE: Record<OrderType, string> = { sales: 'SO', renewal: 'RN', change: 'CH', cancellation: 'CL', resource: 'CH' };
/** OrderStatusChange_API: RJ rejects an order waiting for approval; a forward status approves it. */
const APPROVING: readonly string[] = ['WP', 'PR', 'PC', 'CP'];

const seconds = (d: Date | null): number => (d === null ? INT_NULL : Math.floor(d.getTime() / 1000));
const qty = (n: number) => (Number.isInteger(n) ? n : new XmlRpcDouble(String(n)));

/**
 * The OrderStatusChange_API signature: MD5 (lower-case hex) of OrderID, OrderNumber, CreationTime (Unix seconds),
 * Total (the amount as formatted text in the order's currency, e.g. "19.98") and Description (the order's
 * comment, possibly empty), concatenated without separators. Every part is in GetOrder_API's answer.
 */
export function orderSignature(o: Pick<Order, 'orderId' | 'orderNumber' | 'createdAt' | 'total' | 'currency' | 'comment'>): string {
  return crypto.createHash('md5').update(`${o.orderId}${o.orderNumber}${seconds(o.createdAt)}${formatAmount(o.total, o.currency)}${o.comment}`, 'utf8').digest('hex');
}

async function promoCodeText(s: Services, actor: Actor, o: Order): Promise<string> {
  if (o.promoCodeId === null || actor.accountType === 'customer') return '';
  // Only the vendor side sees its promo codes; anything else shows none.
  const codes = await s.promoCodes.list(actor, o.vendorAccountId).catch(() => []);
  return codes.find((c) => c.promoCodeId === o.promoCodeId)?.code ?? '';
}

/** GetOrder_API's row. */
async function orderDetails(s: Services, actor: Actor, o: Order): Promise<XmlRpcValue[]> {
  const m = (v: bigint) => moneyDouble(formatAmount(v, o.currency));
  return [
    o.orderId,
    o.orderNumber,
    o.vendorAccountId,
    o.accountId,
    o.status,
    ORDER_TYPE_CODE[o.type],
    seconds(o.createdAt),
    seconds(o.createdAt),
    m(o.total),
    m(o.taxTotal),
    m(o.discountTotal),
    m(o.subtotal),
    o.comment,
    INT_NULL,
    await promoCodeText(s, actor, o),
    INT_NULL,
    INT_NULL,
  ];
}

async function planOf(s: Services, planId: number) {
  // The subscription was already found in the caller's subtree; its plan is shown even if no longer published.
  return s.catalog.getPlanForOrder(s.deps.db, planId);
}

async function subscriptionRow(s: Services, sub: Subscription): Promise<XmlRpcValue[]> {
  const plan = await planOf(s, sub.planId);
  return [sub.subscriptionId, sub.name, sub.accountId, sub.planId, plan?.name ?? '', sub.status, sub.serviceStatus];
}

/** Reads the optional text of a slot: '', nil and the integer NULL are "not given". */
function optCode(p: Params, i: number, name: string): string | undefined {
  const v = p.optStr(i, name)?.trim();
  return v ? v.toUpperCase() : undefined;
}

export const orderMethods: MethodTable = {
  /** (OrderID) -> [OrderID, OrderNumber, VendorAccountID, CustomerID, OrderStatusID, OrderTypeID, CreationTime, OrderDate, Total, TaxTotal, DiscountTotal, MerchTotal, Comments, ExpirationDate, PromoCode, SalesBranchID, SalesPersonID] */
  'BM.GetOrder_API': read(async (p, actor, s) => orderDetails(s, actor, await s.orders.get(actor, p.int(0, 'OrderID')))),

  /** (VendorID, OrderTypeID, OrderStatusID, StartTime, SortNo) -> rows [OrderID, OrderNumber, VendorAccountID, CustomerID, OrderStatusID, OrderTypeID, CreationTime, Total] */
  'BM.OrderByStatusListGet_API': read(async (p, actor, s) => {
    const vendorId = p.optInt(0, 'VendorID') || undefined;
    if (vendorId !== undefined) await s.accounts.get(actor, vendorId);
    const typeCode = optCode(p, 1, 'OrderTypeID');
    const types = typeCode === undefined ? undefined : (Object.keys(ORDER_TYPE_CODE) as OrderType[]).filter((t) => ORDER_TYPE_CODE[t] === typeCode);
    if (types !== undefined && types.length === 0) throw invalid('Params[1] (OrderTypeID)', `OrderTypeID must be one of ${[...new Set(Object.values(ORDER_TYPE_CODE))].join(', ')}.`);
    const status = optCode(p, 2, 'OrderStatusID');
    const start = p.optInt(3, 'StartTime') || undefined;
    const rows: XmlRpcValue[][] = [];
    for (const type of types ?? [undefined]) {
      for (let page = 1; ; page++) {
        const r = await s.orders.list(actor, { status, type, since: start === undefined ? undefined : new Date(start * 1000), page, pageSize: 500 });
        for (const o of r.items) {
          if (vendorId !== undefined && o.vendorAccountId !== vendorId) continue;
          rows.push([o.orderId, o.orderNumber, o.vendorAccountId, o.accountId, o.status, ORDER_TYPE_CODE[o.type], seconds(o.createdAt), moneyDouble(formatAmount(o.total, o.currency))]);
        }
        if (page * 500 >= r.total) break;
      }
    }
    return sortRows(rows, p.optInt(4, 'SortNo'));
  }),

  /** (OrderID, NewStatus, Signature) or (OrderID, Signature, NewStatus) -> {Status} */
  'BM.OrderStatusChange_API': write(async (p, actor, s) => {
    const orderId = p.int(0, 'OrderID');
    const order = await s.orders.get(actor, orderId);
    const signatureFirst = /^[0-9a-f]{32}$/i.test(p.optStr(1, 'NewStatus')?.trim() ?? '') && !/^[0-9a-f]{32}$/i.test(p.optStr(2, 'Signature')?.trim() ?? '');
    const [statusAt, signatureAt] = signatureFirst ? [2, 1] : [1, 2];
    const status = p.str(statusAt, 'NewStatus').trim().toUpperCase() as PbaOrderStatus;
    if (status !== 'RJ' && !APPROVING.includes(status)) {
      throw invalid(`Params[${statusAt}] (NewStatus)`, `NewStatus must be RJ (reject) or one of ${APPROVING.join(', ')} (approve); the order's workflow decides the status it then takes.`);
    }
    const given = Buffer.from(p.str(signatureAt, 'Signature').trim().toLowerCase());
    const expected = Buffer.from(orderSignature(order));
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
      throw invalid(`Params[${signatureAt}] (Signature)`, 'The signature does not match the order: MD5 hex of OrderID, OrderNumber, CreationTime, Total and Description.');
    }
    const changed = status === 'RJ' ? await s.orders.reject(actor, orderId) : await s.orders.approve(actor, orderId);
    return done(changed.status);
  }),

  /** (SubscriptionID) -> [ID, Name, AccountID, PlanID, PlanName, Status, ServStatus] */
  'BM.SubscriptionDetailsGet_API': read(async (p, actor, s) => subscriptionRow(s, await s.subscriptions.get(actor, p.int(0, 'SubscriptionID')))),

  /** (SubscriptionID) -> [ID, Name, AccountID, PlanID, PlanName, Status, ServStatus, StartDate, ExpirationDate, LastBillDate, NextBillDate, BillingPeriodType, BillingPeriod] */
  'BM.SubscriptionDetailsGetEx_API': read(async (p, actor, s) => {
    const sub = await s.subscriptions.get(actor, p.int(0, 'SubscriptionID'));
    const plan = await planOf(s, sub.planId);
    const period = plan?.periods.find((x) => x.periodId === sub.periodId);
    return [
      ...(await subscriptionRow(s, sub)),
      seconds(sub.startDate),
      seconds(sub.expirationDate),
      seconds(sub.lastBillDate),
      seconds(sub.nextBillDate),
      period ? periodUnitToPba(period.unit) : INT_NULL,
      period ? period.duration : INT_NULL,
    ];
  }),

  /** (AccountID, SortNo) -> rows [ID, Name, AccountID, PlanID, PlanName, Status, ServStatus] */
  'BM.GetCustomerSubscriptionList_API': read(async (p, actor, s) => {
    const accountId = p.int(0, 'AccountID');
    const rows: XmlRpcValue[][] = [];
    for (let page = 1; ; page++) {
      const r = await s.subscriptions.list(actor, { accountId, page, pageSize: 500 });
      for (const sub of r.items) rows.push(await subscriptionRow(s, sub));
      if (page * 500 >= r.total) break;
    }
    return sortRows(rows, p.optInt(1, 'SortNo'));
  }),

  /** (SubscriptionID, SortNo) -> rows [ResourceID, ResourceName, UnitName, IncludedValue, AdditionalValue, UsedValue, OrderedValue, Limit (-1 unlimited), SetupFee, RecurringFee, OveruseFee] */
  'BM.SubscriptionResourcesListGet_API': read(async (p, actor, s) => {
    const sub = await s.subscriptions.get(actor, p.int(0, 'SubscriptionID'));
    const plan = await planOf(s, sub.planId);
    const currency = plan?.currency ?? 'USD';
    const m = (v: bigint | undefined) => moneyDouble(formatAmount(v ?? 0n, currency));
    const rows = sub.resources.map((r) => {
      const rate = plan?.resources.find((x) => x.resourceId === r.resourceId);
      return [r.resourceId, r.name, r.unit, qty(r.included), qty(r.additional), qty(r.usage), qty(r.included + r.additional), r.limit === null ? -1 : qty(r.limit), m(rate?.setupFee), m(rate?.recurringFee), m(rate?.overageFee)];
    });
    return sortRows(rows, p.optInt(1, 'SortNo'));
  }),
};
