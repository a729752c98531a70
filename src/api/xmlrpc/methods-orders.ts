import crypto from 'node:crypto';
import type { Actor } from '../../context';
import { invalid, notAllowed } from '../../domain/errors';
import { formatAmount } from '../../domain/money';
import { periodUnitToPba } from '../../domain/period';
import type { OrderType, PbaOrderStatus } from '../../domain/workflow';
import type { Order, OrderItemInput } from '../../orders/orders-service';
import type { TokenizedCard } from '../../payments/payments-service';
import type { Account } from '../../accounts/accounts-service';
import { createServices, type Services } from '../../services';
import type { Tx } from '../../db/knex';
import { SUBSCRIPTION_STATUS, type Subscription } from '../../subscriptions/subscriptions-service';
import { SubscriptionActionsService } from '../../subscriptions/service-actions';
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

/** One "Slot=Value" (or "Name=Value") string, split at the first '='. */
function slot(p: Params, i: number, what: string): [string, string] {
  const v = p.str(i, what);
  const at = v.indexOf('=');
  if (at <= 0) throw invalid(`Params[${i}] (${what})`, `${what} must read "Name=Value".`);
  return [v.slice(0, at).trim(), v.slice(at + 1)];
}

/** A counter of PlaceOrderAndAuthorize_API: how many strings follow. Absent trailing counters are 0. */
function counter(p: Params, i: number, name: string): number {
  if (i >= p.length) return 0;
  const n = p.optInt(i, name) ?? 0;
  if (n < 0 || n > 500) throw invalid(`Params[${i}] (${name})`, `${name} must be between 0 and 500.`);
  if (n > 0 && i + n >= p.length) throw invalid(`Params[${i}] (${name})`, `${name} says ${n} but fewer parameters follow.`);
  return n;
}

/** MM/YY, MM/YYYY, MMYY or MMYYYY. */
function expiry(v: string, field: string): { expMonth: number; expYear: number } {
  const m = /^(\d{1,2})\s*[/-]?\s*(\d{2}|\d{4})$/.exec(v.trim());
  if (!m) throw invalid(field, 'ExpDateID must be MM/YY or MM/YYYY.');
  const year = Number(m[2]);
  return { expMonth: Number(m[1]), expYear: year < 100 ? 2000 + year : year };
}

interface PlaceOrderCall {
  vendorId: number | undefined;
  items: OrderItemInput[];
  contact: Map<string, string>;
  payTool: Map<string, string>;
}

/** Reads PlaceOrderAndAuthorize_API's counted layout (legacy-xmlrpc.md; docs/api/xmlrpc.md 9.4). */
function readPlaceOrder(p: Params): PlaceOrderCall {
  const vendorId = p.optInt(0, 'VendorAccountID') || undefined;
  let at = 1;
  const itemCount = counter(p, at, 'ProvisioningItemsCounter');
  if (itemCount === 0) throw invalid('Params[1] (ProvisioningItemsCounter)', 'An order needs at least one item.');
  at++;
  const items: OrderItemInput[] = [];
  const positionOfItemId = new Map<number, number>();
  for (let k = 0; k < itemCount; k++, at++) {
    const f = `Params[${at}] (Item)`;
    const parts = p.str(at, 'Item').split('=').map((x) => x.trim());
    if (parts.length !== 4 || !parts.every((x) => /^-?\d{1,15}$/.test(x))) throw invalid(f, 'An item reads "PlanID=PlanPeriodID=ItemID=ParentItemID", e.g. "20=36=0=-1".');
    const [planId, periodId, itemId, parentId] = parts.map(Number);
    if (positionOfItemId.has(itemId)) throw invalid(f, `ItemID ${itemId} is used twice.`);
    positionOfItemId.set(itemId, k + 1);
    let parentItemId: number | undefined;
    if (parentId !== -1) {
      parentItemId = positionOfItemId.get(parentId);
      if (parentItemId === undefined || parentItemId === k + 1) throw invalid(f, `ParentItemID ${parentId} is not the ItemID of an earlier item (-1: none).`);
    }
    items.push({ planId, periodId, parentItemId, parameters: {} });
  }
  const slots = counter(p, at, 'ProvisioningDataSlotCounter');
  at++;
  for (let k = 0; k < slots; k++) {
    const itemId = p.int(at, 'ProvisioningItemID');
    const position = positionOfItemId.get(itemId);
    if (position === undefined) throw invalid(`Params[${at}] (ProvisioningItemID)`, `ProvisioningItemID ${itemId} is not the ItemID of an item of this order.`);
    at++;
    const params = counter(p, at, 'ParamCounter');
    at++;
    const target = items[position - 1]!.parameters!;
    for (let j = 0; j < params; j++, at++) {
      const [name, value] = slot(p, at, 'Param');
      Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true });
    }
  }
  const readSlots = (name: string, secrets: readonly string[]): Map<string, string> => {
    const n = counter(p, at, name);
    at++;
    const out = new Map<string, string>();
    for (let j = 0; j < n; j++, at++) {
      const [k, v] = slot(p, at, 'Slot');
      const key = k.toLowerCase();
      out.set(key, secrets.includes(key) && v.startsWith('XXX') ? v.slice(3) : v);
    }
    return out;
  };
  const contact = readSlots('ContactDataCounter', ['passwordid']);
  const payTool = readSlots('PayToolCounter', ['cardnumberid', 'cvcid']);
  // AdditionalContactsDataCounter and its strings are read past and not used.
  return { vendorId, items, contact, payTool };
}

const given = (m: Map<string, string>, key: string): string | undefined => {
  const v = m.get(key.toLowerCase())?.trim();
  return v ? v : undefined;
};

/**
 * PlaceOrderAndAuthorize_API as one unit of work: the account (found, or created with its login), its pay tool and
 * the order commit together, so a refused order leaves no new customer behind. Inside a client-held transaction
 * (AutoCommit "No") that transaction is the unit; otherwise the call opens its own. A card given in the call is
 * handed to the gateway first, outside the transaction (no database transaction waits on a gateway): if the call
 * is then refused, the gateway keeps a token nobody uses, and nothing is stored here.
 */
async function placeOrderAndAuthorize(s: Services, actor: Actor, call: PlaceOrderCall): Promise<XmlRpcValue[]> {
  const c = call.contact;
  const t = call.payTool;
  let existing: Account | undefined;
  if (given(c, 'AccountID') !== undefined) {
    const accountId = Number(given(c, 'AccountID'));
    if (!Number.isSafeInteger(accountId) || accountId <= 0) throw invalid('ContactData (AccountID)', 'AccountID= must be an account id.');
    existing = await s.accounts.get(actor, accountId);
    if (call.vendorId !== undefined && existing.vendorAccountId !== call.vendorId && existing.accountId !== call.vendorId) {
      throw invalid('Params[0] (VendorAccountID)', `Account ${accountId} is not a customer of vendor ${call.vendorId}.`);
    }
  }
  let payToolId: number | undefined;
  let card: TokenizedCard | undefined;
  if (given(t, 'PayToolID') !== undefined) {
    payToolId = Number(given(t, 'PayToolID'));
    if (!Number.isSafeInteger(payToolId) || payToolId <= 0) throw invalid('PayTool (PayToolID)', 'PayToolID= must be a pay tool id.');
  } else if (given(t, 'CardNumberID') !== undefined) {
    const type = given(t, 'PayToolTypeID') ?? '0';
    if (type !== '0') throw invalid('PayTool (PayToolTypeID)', 'Only cards (PayToolTypeID=0) can be given in the call; store other pay tools first and pass PayToolID=.');
    // The card goes to a payment gateway the caller keeps: the customer's vendor's, else the caller's own, else the first.
    const vendorOfCustomer = existing ? existing.vendorAccountId : (call.vendorId ?? actor.accountId);
    const gateways = (await s.pluginInstances.list(actor, { kind: 'payment' })).filter((g) => g.status === 'active');
    const gateway = gateways.find((g) => g.vendorAccountId === vendorOfCustomer) ?? gateways.find((g) => g.vendorAccountId === actor.accountId) ?? gateways[0];
    if (!gateway) throw invalid('PayTool (CardNumberID)', 'No payment gateway of yours can keep this card; store it with the vendor that owns the gateway and pass PayToolID=.');
    card = await s.payments.tokenizeCard(gateway.instanceId, { number: given(t, 'CardNumberID')!, cvv: given(t, 'CVCID'), ...expiry(given(t, 'ExpDateID') ?? '', 'PayTool (ExpDateID)') }, existing?.accountId);
  }
  const work = async (ts: Services): Promise<XmlRpcValue[]> => {
    let accountId: number;
    let login = '';
    if (existing) {
      accountId = existing.accountId;
    } else {
      const firstName = given(c, 'FirstNameID');
      const email = given(c, 'EmailID');
      const company = given(c, 'CompanyNameID');
      const lastName = given(c, 'LastNameID') ?? company ?? firstName;
      accountId = await ts.accounts.create(actor, {
        type: 'customer',
        vendorAccountId: call.vendorId,
        companyName: company,
        address: { country: given(c, 'CountryID') },
        contacts: { admin: { firstName, lastName, email } },
      });
      const wantedLogin = given(c, 'LoginID');
      if (wantedLogin !== undefined) {
        await ts.users.create(actor, { accountId, login: wantedLogin, password: c.get('passwordid') ?? '', email: email ?? '', firstName: firstName ?? '', lastName: lastName ?? '', roles: ['admin'] });
        login = wantedLogin;
      }
    }
    if (card) payToolId = (await ts.payments.savePayTool(actor, accountId, card)).payToolId;
    const order = await ts.orders.place(actor, { accountId, items: call.items, promoCode: given(c, 'PromoCodeID'), payToolId, ipAddress: given(t, 'IPAddressID') ?? actor.remoteAddr });
    const m = (v: bigint) => moneyDouble(formatAmount(v, order.currency));
    return [accountId, order.orderId, login, String(seconds(order.createdAt)), INT_NULL, m(order.total), m(order.taxTotal), m(order.discountTotal), m(order.subtotal), order.comment, order.orderNumber, ''];
  };
  if ((s.deps.db as Tx).isTransaction) return work(s);
  // Services over the transaction for the writes; the gateway was called above with the process's own.
  return s.deps.db.transaction((tx) => work(createServices({ ...s.deps, db: tx as never }, s.plugins)));
}

export const orderMethods: MethodTable = {

  /**
   * (VendorAccountID, ProvisioningItemsCounter, items..., ProvisioningDataSlotCounter, slots..., ContactDataCounter,
   * "Slot=Value"..., PayToolCounter, "Slot=Value"..., AdditionalContactsDataCounter, ...)
   * -> [AccountID, OrderID, Login, CreationTimeStr, DocID, Total, TaxTotal, DiscTotal, MerchTotal, Descr, OrderNbr, RedirectURL]
   */
  'BM.PlaceOrderAndAuthorize_API': write(async (p, actor, s) => placeOrderAndAuthorize(s, actor, readPlaceOrder(p))),
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

  /**
   * (SubscriptionID, Status, ServStatus) -> {Status}: Status 80 suspends the service through its gate; Status 30
   * resumes a suspended one. Any other Status is NOT_ALLOWED; ServStatus is not set by hand (the gate's task sets
   * it). The change finishes in the background: SubscriptionDetailsGet_API shows Stopping, then Suspended/Stopped.
   */
  'BM.SubscriptionStatusUpdate_API': write(async (p, actor, s) => {
    const id = p.int(0, 'SubscriptionID');
    const status = p.int(1, 'Status');
    const actions = new SubscriptionActionsService(s.deps, { tasks: s.tasks });
    const current = await s.subscriptions.get(actor, id);
    let action: 'suspend' | 'resume';
    if (status === SUBSCRIPTION_STATUS.suspended) action = 'suspend';
    else if (status === SUBSCRIPTION_STATUS.active && current.status === SUBSCRIPTION_STATUS.suspended) action = 'resume';
    else throw notAllowed(`Status ${status} cannot be set on subscription ${id} (status ${current.status}): only 80 (suspend) and 30 on a suspended subscription (resume) can; terminate with SubscriptionStop_API.`, 'Params[1] (Status)');
    const r = await actions.request(actor, id, action, {});
    return done(`Task ${r.taskId}.`);
  }),

  /** (SubscriptionID, Comment) -> {Status}: terminates the service through its gate (in the background). */
  'BM.SubscriptionStop_API': write(async (p, actor, s) => {
    const id = p.int(0, 'SubscriptionID');
    const comment = p.optStr(1, 'Comment')?.trim();
    const r = await new SubscriptionActionsService(s.deps, { tasks: s.tasks }).request(actor, id, 'terminate', { reason: comment || undefined });
    return done(`Task ${r.taskId}.`);
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
