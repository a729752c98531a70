import type { Actor, Deps } from '../context';
import { recordChange } from '../audit/record-change';
import { scopedAccount } from '../accounts/scope';
import { priceOrderTaxTx } from '../billing/order-tax';
import type { CatalogService, Plan, ServiceTemplate } from '../catalog/catalog-service';
import { money, toBigInt, toNumber, toOptionalNumber, type Conn } from '../db/knex';
import { inTransaction } from '../db/transaction';
import { invalid, notAllowed, notFound } from '../domain/errors';
import { oneOf, optionalText, paging, positiveId } from '../domain/fields';
import { priceItem, type LineKind, type PriceLine } from '../domain/pricing';
import { ORDER_TYPES, STATUS_OF_ACTION, isManual, type OrderType, type PbaOrderStatus } from '../domain/workflow';
import { idempotent } from '../idempotency';
import type { TaskQueue } from '../jobs/task-queue';
import { insertNumberedOrder } from './order-numbers';
import { asPricingPromo, type PromoCode, type PromoCodesService } from './promo-codes-service';
import { loadWorkflowDefinition, startOrder, transition } from './transitions';
import type { WorkflowsService } from './workflows-service';
import { settleHeldOrder } from './hold-settlement';
import { makeCtx, type EngineServices } from './step-handlers';
import { TldCatalogService } from '../domains/tld-catalog';
import { domainItemsOf, inlineDomain, insertDomainItems, prepareDomainItem, INLINE_PARAMETERS, type DomainItemInput, type OrderDomain, type PreparedDomain } from './domain-items';

export const ORDER_STATUSES: readonly PbaOrderStatus[] = ['NP', 'WP', 'SS', 'WA', 'HL', 'PR', 'PF', 'PC', 'CP', 'RJ', 'CA'];
const MAX_ITEMS = 50;
const MAX_PARAMETERS = 50;

export interface OrderItemInput {
  planId: number;
  periodId: number;
  parameters?: Record<string, string>;
  resources?: { resourceId: number; quantity: number }[];
  /** The 1-based position of an earlier item of this order that this one is an add-on of (PBA ParentItemID). */
  parentItemId?: number;
}

export interface PlaceOrderInput {
  accountId: number;
  items: OrderItemInput[];
  /** Domain items (register | transfer in a sales order, renew in a renewal order); see also INLINE_PARAMETERS. */
  domains?: DomainItemInput[];
  promoCode?: string;
  payToolId?: number;
  ipAddress?: string;
  comment?: string;
  idempotencyKey?: string;
}

export interface OrderLine {
  lineId: number;
  itemId: number | null;
  position: number;
  kind: LineKind;
  description: string;
  resourceId: number | null;
  quantity: number;
  unitPrice: bigint;
  amount: bigint;
}

export interface OrderItem {
  itemId: number;
  position: number;
  planId: number;
  periodId: number;
  parentItemId: number | null;
  parameters: Record<string, string>;
  resources: { resourceId: number; quantity: number }[];
  /** The subscription a sales item created. */
  subscriptionId: number | null;
  /** The existing subscription a renewal or cancellation item acts on. */
  targetSubscriptionId: number | null;
  /** Cancellation: refund | credit | none; and when: immediate | end_of_term. */
  cancelType: string | null;
  effective: string | null;
}

export interface OrderHistoryEntry {
  status: PbaOrderStatus;
  step: string;
  outcome: string | null;
  at: Date;
  comment: string;
  actorUserId: number | null;
}

export interface Order {
  orderId: number;
  orderNumber: string;
  accountId: number;
  vendorAccountId: number;
  type: OrderType;
  status: PbaOrderStatus;
  step: string;
  workflowId: number;
  currency: string;
  subtotal: bigint;
  discountTotal: bigint;
  taxTotal: bigint;
  total: bigint;
  promoCodeId: number | null;
  payToolId: number | null;
  paymentId: number | null;
  ipAddress: string | null;
  comment: string;
  failureReason: string | null;
  createdAt: Date;
  updatedAt: Date;
  items: OrderItem[];
  /** Domain items: what the order registers, transfers in or renews (never the auth code). */
  domains: OrderDomain[];
  lines: OrderLine[];
  history: OrderHistoryEntry[];
}

export interface OrderFilter {
  accountId?: number;
  status?: string;
  type?: string;
  since?: Date;
  page?: number;
  pageSize?: number;
}

export interface OrderRow {
  id: number;
  order_number: string;
  vendor_id: number;
  account_id: number;
  type: string;
  status: string;
  workflow_id: number;
  step: string;
  currency: string;
  subtotal: unknown;
  discount_total: unknown;
  tax_total: unknown;
  total: unknown;
  promo_code_id: number | null;
  pay_tool_id: number | null;
  payment_id: number | null;
  ip_address: string | null;
  comment: string;
  failure_reason: string | null;
  created_at: unknown;
  updated_at: unknown;
}

interface PreparedItem {
  plan: Plan;
  periodId: number;
  parameters: Record<string, string>;
  resources: { resourceId: number; quantity: number }[];
  parentPosition: number | null;
}

/** Reads any template, whoever owns it: the order's plan was already checked sellable to the account's vendor. */
const CATALOG_READER: Actor = { userId: null, accountId: 0, accountPath: '/', accountType: 'provider', roles: ['admin'], channel: 'system' };

/** The template behind a plan, read in the caller's connection. */
export async function templateForPlan(catalog: CatalogService, conn: Conn, plan: Plan): Promise<ServiceTemplate> {
  return catalog.getTemplate(CATALOG_READER, plan.templateId, conn);
}

/**
 * Orders: placed and priced from the catalog only, run through the vendor's pinned workflow version, with their
 * PBA status, full history, and approval of manual steps by the vendor side.
 */
export class OrdersService {
  private readonly tlds: TldCatalogService;

  constructor(
    private readonly deps: Deps,
    private readonly svc: {
      catalog: CatalogService;
      tasks: TaskQueue;
      workflows: WorkflowsService;
      promoCodes: PromoCodesService;
      /** What settling an order on hold needs (payments and the ledger); without it such an order cannot be decided. */
      settle?: Pick<EngineServices, 'pluginInstances' | 'payments' | 'documents'>;
    },
  ) {
    this.tlds = new TldCatalogService(deps);
  }

  async place(actor: Actor, input: PlaceOrderInput, type: OrderType = 'sales'): Promise<Order> {
    const orderType = oneOf(type, 'type', ORDER_TYPES);
    const { clock } = this.deps;
    const accountId = positiveId(input?.accountId, 'accountId');
    const domainInputs = input?.domains ?? [];
    if (!Array.isArray(domainInputs)) throw invalid('domains', 'domains is a list of {action, name, years}.');
    if (input && (input.items === undefined || input.items === null) && domainInputs.length > 0) input = { ...input, items: [] };
    if (!Array.isArray(input.items) || (input.items.length === 0 && domainInputs.length === 0)) throw invalid('items', 'An order needs at least one item.');
    if (domainInputs.length > MAX_ITEMS) throw invalid('domains', `An order may have at most ${MAX_ITEMS} domains.`);
    if (input.items.length > MAX_ITEMS) throw invalid('items', `An order may have at most ${MAX_ITEMS} items.`);
    const ipAddress = optionalText(input.ipAddress, 'ipAddress', 64) ?? null;
    const comment = optionalText(input.comment, 'comment', 1024) ?? '';
    const payToolId = input.payToolId === undefined || input.payToolId === null ? null : positiveId(input.payToolId, 'payToolId');
    const args = { input: { ...input, idempotencyKey: undefined }, type: orderType };
    // Everything is read in the placing transaction, after the idempotency key: a repeated call answers the first
    // order even when its promo code has been used up by it since.
    return idempotent(this.deps, actor, input.idempotencyKey, 'PlaceOrder', args, async (tx) => {
      const account = await scopedAccount(tx, actor, accountId);
      if (account.type === 'provider' || (account.type === 'reseller' && account.id !== actor.accountId)) {
        throw invalid('accountId', `Account ${accountId} is a ${account.type}; orders are placed for customers (or by a reseller for itself).`);
      }
      if (account.status !== 'active') throw notAllowed(`Account ${accountId} is ${account.status}; only an active account may order.`, 'accountId');
      const vendorId = toNumber(account.vendor_id);
      if (payToolId !== null && !(await tx('pay_tools').where({ id: payToolId, account_id: accountId }).first('id'))) {
        throw invalid('payToolId', `Pay tool ${payToolId} is not one of account ${accountId}'s.`);
      }
      const prepared: PreparedItem[] = [];
      let currency: string | undefined;
      for (let i = 0; i < input.items.length; i++) {
        prepared.push(await this.prepareItem(tx, vendorId, input.items[i]!, i));
        const planCurrency = prepared[i]!.plan.currency;
        if (currency !== undefined && planCurrency !== currency) {
          throw invalid(`items[${i}].planId`, `Plan ${prepared[i]!.plan.planId} is priced in ${planCurrency}, the order's earlier items in ${currency}; one order has one currency.`);
        }
        currency = planCurrency;
      }
      // Domain items: given as such, or in-line with a hosting item (its domain_action parameter).
      const domainPrepared: PreparedDomain[] = [];
      for (let i = 0; i < domainInputs.length; i++) {
        const d = domainInputs[i]!;
        if (orderType === 'sales' && d?.action === 'renew') throw invalid(`domains[${i}].action`, 'A renewal is an order of its own (RenewDomain).');
        if (orderType === 'renewal' && (d?.action !== 'renew' || input.items.length > 0)) throw invalid(`domains[${i}].action`, 'A renewal order renews domains only.');
        if (orderType !== 'sales' && orderType !== 'renewal') throw invalid('domains', `A ${orderType} order has no domain items.`);
        domainPrepared.push(await prepareDomainItem(tx, this.deps, this.tlds, account, d, `domains[${i}]`, null));
      }
      for (let i = 0; i < prepared.length; i++) {
        const field = `items[${i}]`;
        const inline = inlineDomain(prepared[i]!.parameters, field);
        if (!inline) continue;
        if (orderType !== 'sales') throw invalid(`${field}.parameters.${INLINE_PARAMETERS.action}`, 'Only a sales order registers or transfers a domain.');
        domainPrepared.push(await prepareDomainItem(tx, this.deps, this.tlds, account, inline, field, i + 1, (what) => `${field}.parameters.${INLINE_PARAMETERS[what]}`));
      }
      const names = new Set<string>();
      for (const [i, d] of domainPrepared.entries()) {
        if (names.has(d.name)) throw invalid(i < domainInputs.length ? `domains[${i}].name` : 'items', `${d.name} is ordered twice in this order.`);
        names.add(d.name);
        if (currency !== undefined && d.currency !== currency) throw invalid(i < domainInputs.length ? `domains[${i}].name` : 'items', `${d.name} is priced in ${d.currency}, the order's other items in ${currency}; one order has one currency.`);
        currency = d.currency;
      }
      const orderCurrency = currency as string;
      let promo: PromoCode | undefined;
      if (input.promoCode !== undefined && input.promoCode !== null && String(input.promoCode).trim() !== '') {
        promo = await this.svc.promoCodes.find(tx, vendorId, String(input.promoCode), clock.now());
        if (promo.kind === 'fixed' && promo.currency !== orderCurrency) {
          throw invalid('promoCode', `Promo code '${promo.code}' takes off an amount in ${promo.currency}; this order is in ${orderCurrency}.`);
        }
      }
      const priced = prepared.map((p, i) => {
        const period = p.plan.periods.find((x) => x.periodId === p.periodId)!;
        return priceItem({
          planName: p.plan.name,
          period: { setupFee: period.setupFee, recurringFee: period.recurringFee, trial: period.trial },
          rates: p.plan.resources,
          resources: p.resources,
          promo: promo ? asPricingPromo(promo) : undefined,
          field: `items[${i}]`,
        });
      });
      const subtotal = priced.reduce((s, p) => s + p.subtotal, 0n) + domainPrepared.reduce((s, d) => s + d.amount, 0n);
      const discount = priced.reduce((s, p) => s + p.discount, 0n);
      // The tax is priced once the lines are written (priceOrderTaxTx), exactly as the order's invoice will carry it.
      let tax = 0n;
      let total = subtotal - discount;

      const workflow = await this.svc.workflows.activeFor(tx, vendorId, orderType);
      const start = workflow.definition.start;
      const status = STATUS_OF_ACTION[workflow.definition.steps[start]!.action];
      const at = clock.now().getTime();
      const { orderId, number } = await insertNumberedOrder(tx, orderType, {
        vendor_id: vendorId,
        account_id: accountId,
        status,
        workflow_id: workflow.workflowId,
        step: start,
        currency: orderCurrency,
        subtotal: money(subtotal),
        discount_total: money(discount),
        tax_total: money(tax),
        total: money(total),
        promo_code_id: promo?.promoCodeId ?? null,
        pay_tool_id: payToolId,
        payment_id: null,
        ip_address: ipAddress,
        comment,
        failure_reason: null,
        created_at: at,
        updated_at: at,
      });
      const itemIds: number[] = [];
      let linePosition = 0;
      for (let i = 0; i < prepared.length; i++) {
        const p = prepared[i]!;
        const [itemId] = (await tx('order_items').insert({
          order_id: orderId,
          position: i + 1,
          plan_id: p.plan.planId,
          period_id: p.periodId,
          parent_item_id: p.parentPosition === null ? null : itemIds[p.parentPosition - 1],
          parameters: JSON.stringify(p.parameters),
          resources: JSON.stringify(p.resources),
          subscription_id: null,
        })) as number[];
        itemIds.push(toNumber(itemId));
        const lines = priced[i]!.lines.map((l: PriceLine) => ({
          order_id: orderId,
          item_id: toNumber(itemId),
          position: ++linePosition,
          kind: l.kind,
          description: l.description.slice(0, 255),
          resource_id: l.resourceId ?? null,
          quantity: l.quantity,
          unit_price: money(l.unitPrice),
          amount: money(l.amount),
        }));
        if (lines.length) await tx('order_lines').insert(lines);
      }
      await insertDomainItems(tx, this.deps, orderId, domainPrepared, itemIds, linePosition);
      ({ tax, total } = await priceOrderTaxTx(tx, orderId, total));
      await tx('order_history').insert({ order_id: orderId, status, step: start, outcome: null, actor_user_id: actor.userId, comment, at });
      if (promo) await this.svc.promoCodes.consume(tx, promo.promoCodeId);
      await recordChange(tx, actor, new Date(at), {
        operation: 'PlaceOrder',
        objectType: 'order',
        objectId: orderId,
        details: { orderNumber: number, accountId, type: orderType, items: prepared.length, domains: domainPrepared.length ? domainPrepared.map((d) => `${d.action} ${d.name}`) : undefined, total: total.toString(), currency: orderCurrency, promoCode: promo?.code },
        event: {
          name: 'order.placed',
          accountId,
          payload: { orderId, orderNumber: number, accountId, vendorAccountId: vendorId, type: orderType, status, step: start, total: total.toString(), currency: orderCurrency },
        },
      });
      await startOrder(tx, this.deps, this.svc.tasks, orderId);
      return this.view(tx, (await tx('orders').where({ id: orderId }).first()) as OrderRow);
    });
  }

  async get(actor: Actor, orderId: number): Promise<Order> {
    const row = await this.scopedRow(this.deps.db, actor, orderId);
    return this.view(this.deps.db, row);
  }

  async list(actor: Actor, filter: OrderFilter = {}): Promise<{ items: Order[]; total: number }> {
    const { offset, pageSize } = paging(filter.page, filter.pageSize);
    const db = this.deps.db;
    const q = db('orders as o').join('accounts as a', 'a.id', 'o.account_id').where('a.path', 'like', `${actor.accountPath}%`);
    if (filter.accountId !== undefined && filter.accountId !== null) {
      const account = await scopedAccount(db, actor, positiveId(filter.accountId, 'accountId'));
      q.andWhere('o.account_id', account.id);
    }
    if (filter.status !== undefined && filter.status !== null && filter.status !== '') q.andWhere('o.status', oneOf(filter.status, 'status', ORDER_STATUSES));
    if (filter.type !== undefined && filter.type !== null && filter.type !== '') q.andWhere('o.type', oneOf(filter.type, 'type', ORDER_TYPES));
    if (filter.since !== undefined && filter.since !== null) {
      const t = filter.since instanceof Date ? filter.since.getTime() : NaN;
      if (Number.isNaN(t)) throw invalid('since', 'since must be a valid date.');
      q.andWhere('o.created_at', '>=', t);
    }
    const [{ total }] = (await q.clone().count({ total: '*' })) as { total: number | string }[];
    const rows = (await q.select('o.*').orderBy('o.id', 'desc').limit(pageSize).offset(offset)) as OrderRow[];
    return { items: await this.views(db, rows), total: Number(total) };
  }

  /**
   * ApproveOrder: the vendor side moves an order waiting at a manual step on by `approved`; an order on hold (HL)
   * completes with the domains it kept, the rest of its payment refunded (hold-settlement.ts).
   */
  async approve(actor: Actor, orderId: number, comment?: string): Promise<Order> {
    return this.decide(actor, orderId, 'approved', comment);
  }

  /**
   * RejectOrder: the vendor side moves an order waiting at a manual step on by `rejected`; an order on hold (HL)
   * fails with its whole payment given back, the domains it kept left to lapse (hold-settlement.ts).
   */
  async reject(actor: Actor, orderId: number, comment?: string): Promise<Order> {
    return this.decide(actor, orderId, 'rejected', comment);
  }

  private async decide(actor: Actor, orderId: number, outcome: 'approved' | 'rejected', comment?: string): Promise<Order> {
    const text = optionalText(comment, 'comment', 1024) ?? '';
    const first = await this.decidableRow(this.deps.db, actor, orderId, outcome);
    if (first.status === 'HL') {
      if (!this.svc.settle) throw notAllowed(`Order ${first.order_number} is on hold; this orders service has no payments to settle it with.`, 'status');
      // Money goes back through the gateway first (no transaction open across it), then one transaction.
      const ctx = makeCtx(this.deps, { tasks: this.svc.tasks, ...this.svc.settle });
      await settleHeldOrder(ctx, actor, first, outcome, text);
      return this.get(actor, orderId);
    }
    return inTransaction(this.deps.db, async (tx) => {
      const row = await this.decidableRow(tx, actor, orderId, outcome);
      const def = await loadWorkflowDefinition(tx, toNumber(row.workflow_id));
      if (!def.steps[row.step] || !isManual(def, row.step)) {
        throw notAllowed(`Order ${row.order_number} is ${row.status} (step '${row.step}'), neither waiting for approval nor on hold; it cannot be ${outcome} now.`, 'status');
      }
      await transition(tx, this.deps, this.svc.tasks, { id: toNumber(row.id), account_id: toNumber(row.account_id), vendor_id: toNumber(row.vendor_id), workflow_id: toNumber(row.workflow_id), step: row.step }, outcome, actor, text);
      return this.view(tx, (await tx('orders').where({ id: row.id }).first()) as OrderRow);
    });
  }

  /** The order in the caller's scope, when the caller is its vendor side (an administrator or billing user). */
  private async decidableRow(conn: Conn, actor: Actor, orderId: number, outcome: 'approved' | 'rejected'): Promise<OrderRow> {
    const row = await this.scopedRow(conn, actor, orderId);
    const vendorSide = actor.accountType !== 'customer' && toNumber(row.account_id) !== actor.accountId;
    if (!vendorSide || !(actor.roles.includes('admin') || actor.roles.includes('billing'))) {
      throw notAllowed(`Only the vendor side (an administrator or billing user of a vendor above the account) may ${outcome === 'approved' ? 'approve' : 'reject'} order ${row.order_number}.`);
    }
    return row;
  }

  private async prepareItem(conn: Conn, vendorId: number, item: OrderItemInput, i: number): Promise<PreparedItem> {
    const f = `items[${i}]`;
    if (item === null || typeof item !== 'object') throw invalid(f, `${f} must be an object with planId and periodId.`);
    const planId = positiveId(item.planId, `${f}.planId`);
    const plan = await this.svc.catalog.getPlanForOrder(conn, planId);
    if (!plan || !(await this.svc.catalog.isSellable(conn, vendorId, planId))) {
      throw invalid(`${f}.planId`, `Plan ${planId} does not exist or is not for sale to this account.`);
    }
    const periodId = positiveId(item.periodId, `${f}.periodId`);
    const period = plan.periods.find((p) => p.periodId === periodId);
    if (!period || !period.enabled) throw invalid(`${f}.periodId`, `Period ${periodId} is not an available period of plan '${plan.name}'.`);
    const template = await templateForPlan(this.svc.catalog, conn, plan);
    const raw = item.parameters ?? {};
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(`${f}.parameters`, 'parameters maps names to text values.');
    const entries = Object.entries(raw);
    if (entries.length > MAX_PARAMETERS) throw invalid(`${f}.parameters`, `An item may have at most ${MAX_PARAMETERS} parameters.`);
    const parameters: Record<string, string> = {};
    for (const [name, value] of entries) {
      if (!/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(name)) throw invalid(`${f}.parameters`, `Parameter name '${name}' must start with a letter and use letters, digits and _.`);
      const v = optionalText(value, `${f}.parameters.${name}`, 255);
      if (v !== undefined) parameters[name] = v;
    }
    for (const p of template.parameters) {
      if (p.required && !parameters[p.name]) throw invalid(`${f}.parameters.${p.name}`, `${p.title} (${p.name}) is required for plan '${plan.name}'.`);
    }
    const resources = (item.resources ?? []).map((r, j) => ({
      resourceId: positiveId(r?.resourceId, `${f}.resources[${j}].resourceId`),
      quantity: typeof r?.quantity === 'string' ? Number(r.quantity) : (r?.quantity as number),
    }));
    let parentPosition: number | null = null;
    if (item.parentItemId !== undefined && item.parentItemId !== null) {
      parentPosition = positiveId(item.parentItemId, `${f}.parentItemId`);
      if (parentPosition > i) throw invalid(`${f}.parentItemId`, 'parentItemId is the position (1-based) of an earlier item of this order.');
    }
    return { plan, periodId, parameters, resources, parentPosition };
  }

  private async scopedRow(conn: Conn, actor: Actor, orderId: number): Promise<OrderRow> {
    const id = positiveId(orderId, 'orderId');
    const row = (await conn('orders as o')
      .join('accounts as a', 'a.id', 'o.account_id')
      .where('o.id', id)
      .andWhere('a.path', 'like', `${actor.accountPath}%`)
      .first('o.*')) as OrderRow | undefined;
    if (!row) throw notFound('Order', id);
    return row;
  }

  private async view(conn: Conn, r: OrderRow): Promise<Order> {
    return (await this.views(conn, [r]))[0]!;
  }

  /** Order views with their items, lines and history: three queries for the whole page. */
  private async views(conn: Conn, rows: OrderRow[]): Promise<Order[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => toNumber(r.id));
    const group = (list: Record<string, unknown>[]) => {
      const by = new Map<number, Record<string, unknown>[]>();
      for (const x of list) {
        const k = toNumber(x.order_id);
        const bucket = by.get(k);
        if (bucket) bucket.push(x);
        else by.set(k, [x]);
      }
      return by;
    };
    const allItems = group((await conn('order_items').whereIn('order_id', ids).orderBy([{ column: 'order_id' }, { column: 'position' }])) as Record<string, unknown>[]);
    const allLines = group((await conn('order_lines').whereIn('order_id', ids).orderBy([{ column: 'order_id' }, { column: 'position' }])) as Record<string, unknown>[]);
    const allDomains = await domainItemsOf(conn, ids);
    const allHistory = group((await conn('order_history').whereIn('order_id', ids).orderBy([{ column: 'order_id' }, { column: 'id' }])) as Record<string, unknown>[]);
    return rows.map((r) => {
      const id = toNumber(r.id);
      const items = allItems.get(id) ?? [];
      const lines = allLines.get(id) ?? [];
      const history = allHistory.get(id) ?? [];
      return {
        orderId: id,
        orderNumber: r.order_number,
        accountId: toNumber(r.account_id),
        vendorAccountId: toNumber(r.vendor_id),
        type: r.type as OrderType,
        status: r.status as PbaOrderStatus,
        step: r.step,
        workflowId: toNumber(r.workflow_id),
        currency: r.currency,
        subtotal: toBigInt(r.subtotal),
        discountTotal: toBigInt(r.discount_total),
        taxTotal: toBigInt(r.tax_total),
        total: toBigInt(r.total),
        promoCodeId: toOptionalNumber(r.promo_code_id),
        payToolId: toOptionalNumber(r.pay_tool_id),
        paymentId: toOptionalNumber(r.payment_id),
        ipAddress: r.ip_address,
        comment: r.comment,
        failureReason: r.failure_reason,
        createdAt: new Date(toNumber(r.created_at)),
        updatedAt: new Date(toNumber(r.updated_at)),
        items: items.map((it) => ({
          itemId: toNumber(it.id),
          position: toNumber(it.position),
          planId: toNumber(it.plan_id),
          periodId: toNumber(it.period_id),
          parentItemId: toOptionalNumber(it.parent_item_id),
          parameters: JSON.parse(String(it.parameters)) as Record<string, string>,
          resources: JSON.parse(String(it.resources)) as { resourceId: number; quantity: number }[],
          subscriptionId: toOptionalNumber(it.subscription_id),
          targetSubscriptionId: toOptionalNumber(it.target_subscription_id),
          cancelType: (it.cancel_type as string | null | undefined) ?? null,
          effective: (it.effective as string | null | undefined) ?? null,
        })),
        domains: allDomains.get(id) ?? [],
        lines: lines.map((l) => ({
          lineId: toNumber(l.id),
          itemId: toOptionalNumber(l.item_id),
          position: toNumber(l.position),
          kind: l.kind as LineKind,
          description: String(l.description),
          resourceId: toOptionalNumber(l.resource_id),
          quantity: Number(l.quantity),
          unitPrice: toBigInt(l.unit_price),
          amount: toBigInt(l.amount),
        })),
        history: history.map((h) => ({
          status: h.status as PbaOrderStatus,
          step: String(h.step),
          outcome: (h.outcome as string | null) ?? null,
          at: new Date(toNumber(h.at)),
          comment: String(h.comment ?? ''),
          actorUserId: toOptionalNumber(h.actor_user_id),
        })),
      };
    });
  }
}
