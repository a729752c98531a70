import { scopedAccount } from '../accounts/scope';
import { recordChanges, type BulkChange } from '../audit/record-changes';
import { insertBatched } from '../db/batch';
import { updateByKey } from '../db/case-update';
import type { Actor, Deps } from '../context';
import { isSqlite, money, toBigInt, type Conn, type Tx } from '../db/knex';
import { currency as currencyOf } from '../domain/currency';
import { AppError, conflict, invalid, notAllowed, notFound } from '../domain/errors';
import { oneOf, optionalText, paging, positiveId, requiredText } from '../domain/fields';
import { formatAmount } from '../domain/money';
import { isUniqueViolation } from '../idempotency';
import { safeErrorMessage } from '../logger';
import type { CardDetails, Outcome, PaymentGateway, PaymentResult, StoredPayTool } from '../plugins/sdk';
import { checkCard, last4Of, scrubCardNumbers } from './card';
import { insertPayTool, payToolsOf, tokenize, type PayTool, type PayToolRow } from './pay-tools';
import {
  callerKey,
  derivedGatewayKey,
  eventPayload,
  positiveAmount,
  randomGatewayKey,
  requestHash,
  toPayment,
  type Payment,
  type PaymentRow,
} from './payment-records';
import { eventNameOf, isOpen, OPEN_STATUSES, PLUGIN_ERROR_CODE, settlementOf, settlementOfState, type PaymentKind, type PaymentStatus, type Settlement } from './payment-states';

export type { Payment } from './payment-records';

/** A card the gateway keeps, not yet stored for an account (tokenizeCard, then savePayTool). No card number. */
export interface TokenizedCard {
  gatewayInstanceId: number;
  tool: StoredPayTool;
  card: { expMonth: number; expYear: number };
}
export type { PayTool } from './pay-tools';

/**
 * Runs in the transaction that settles a refund transaction to success, whoever settles it (the gateway's first
 * answer, the reconciler, a late answer): the ledger writes its refund document there (DocumentsService).
 */
export type RefundSettledListener = (tx: Tx, actor: Actor, at: Date, refund: Payment) => Promise<void>;

/** Finds the gateway of a payment plugin instance; the caller (plugin loader) owns how. */
export type GatewayResolver = (gatewayInstanceId: number) => Promise<PaymentGateway>;

export interface ChargeInput {
  accountId: number;
  orderId?: number;
  amount: bigint;
  currency: string;
  /** Required with a card; with a stored pay tool, the tool's own gateway (and must match it when given). */
  gatewayInstanceId?: number;
  payTool: { payToolId: number } | { card: CardDetails };
  description: string;
  /** The caller's key: the same key with the same arguments answers the first payment and charges once. */
  idempotencyKey?: string;
  /** authorize holds the amount for a later capture; purchase (the default) charges it. */
  mode?: 'purchase' | 'authorize';
  /**
   * Runs first in the transaction that writes the pending payment, before the gateway is called: the caller's last
   * check under its own locks (e.g. PayInvoice: the invoice is still open for this amount and nothing else is
   * paying it), and whatever it writes with the payment. Throw to refuse (nothing is written); answer 'twin' when
   * a concurrent request under the same key got there first (its payment is answered).
   */
  guard?: (tx: Tx) => Promise<'twin' | void>;
}

export interface PaymentsOptions {
  /** A pending payment younger than this may still have its gateway call under way: the reconciler leaves it. */
  pendingGraceMs?: number;
  /** How long a repeat of a request under way in another process waits for its answer before answering pending. */
  twinWaitMs?: number;
}

export interface ReconcileSummary {
  checked: number;
  settled: number;
  stillOpen: number;
  failed: number;
}

interface NewPayment {
  account_id: number;
  vendor_id: number;
  gateway_instance_id: number;
  kind: PaymentKind;
  parent_payment_id: number | null;
  order_id: number | null;
  amount: bigint;
  currency: string;
  pay_tool_id: number | null;
  description: string;
}

interface Attempt {
  operation: string;
  /** The account whose keys the caller's key is private to. */
  accountId: number;
  callerKey?: string;
  hash: string;
  gatewayInstanceId: number;
  /** Builds the row inside the creating transaction, after any lock and state check; throws TwinFound on its own key. */
  build(tx: Tx, key: string): Promise<NewPayment>;
  call(gateway: PaymentGateway, key: string, row: NewPayment): Promise<Outcome<PaymentResult>>;
  /** New money (a charge or an authorization): refused on a disabled gateway instance. */
  newCharge?: { field: string };
}

/** A charge to a stored pay tool, for createPendingTx (the pay tool's gateway and token already looked up). */
export interface ToolCharge {
  accountId: number;
  vendorId: number;
  payToolId: number;
  gatewayInstanceId: number;
  token: string;
  amount: bigint;
  currency: string;
  description: string;
  /** The caller's key, as charge() takes it: the gateway key is derived from it and the account. */
  callerKey: string;
}

/** A pending payment of createPendingTx; created: written now (its gateway call is still to make). */
export interface PendingCharge {
  payment: PaymentRow;
  created: boolean;
  token: string;
}

/** A charge's request fingerprint: the same for charge() and createPendingTx() given the same arguments. */
function chargeHash(r: Pick<NewPayment, 'kind' | 'account_id' | 'order_id' | 'amount' | 'currency' | 'gateway_instance_id' | 'description'>, tool: string): string {
  return requestHash({ op: r.kind, accountId: r.account_id, orderId: r.order_id, amount: r.amount, currency: r.currency, gatewayInstanceId: r.gateway_instance_id, tool, description: r.description });
}

const toolChargeHash = (r: NewPayment): string => chargeHash(r, `tool:${r.pay_tool_id}`);

/** The gateway request of a purchase or an authorization. */
function gatewayCharge(gw: PaymentGateway, kind: 'purchase' | 'authorize', idempotencyKey: string, amount: bigint, currency: string, payTool: { token: string } | { card: CardDetails }, description: string, accountId: number): Promise<Outcome<PaymentResult>> {
  return gw[kind]({ idempotencyKey, money: { amount: amount.toString(), currency }, payTool, description, customerReference: `account-${accountId}` });
}

/** Payments by id, 500 per statement, in id order; locking (FOR UPDATE) when asked. */
async function paymentRowsById(tx: Tx, ids: readonly number[], lock: boolean): Promise<Map<number, PaymentRow>> {
  const out = new Map<number, PaymentRow>();
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  for (let i = 0; i < sorted.length; i += 500) {
    const q = tx('payments').whereIn('id', sorted.slice(i, i + 500)).orderBy('id');
    for (const r of (await (lock ? q.forUpdate() : q)) as PaymentRow[]) out.set(Number(r.id), r);
  }
  return out;
}

/** A concurrent request with the same key got there first: answer its payment. */
class TwinFound extends Error {}

const isTimeout = (e: unknown): boolean => (e as Error)?.name === 'GatewayTimeoutError';
const clip = (text: string | null | undefined, max = 512): string | null => (text === null || text === undefined ? null : scrubCardNumbers(String(text)).slice(0, max));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Payments through payment gateways. The core writes each payment `pending` with its own idempotency key and
 * commits, calls the gateway outside any transaction, then settles the row from the outcome (see
 * payment-states.ts). Card numbers and CVVs pass through to the gateway and are never stored, logged or echoed.
 */
export class PaymentsService {
  /** Gateway calls under way in this process, by key: a concurrent repeat shares the first call's answer. */
  private readonly running = new Map<string, Promise<Payment>>();
  private readonly pendingGraceMs: number;
  private readonly twinWaitMs: number;
  private readonly refundSettledListeners: RefundSettledListener[] = [];

  constructor(
    private readonly deps: Deps,
    private readonly gatewayFor: GatewayResolver,
    options: PaymentsOptions = {},
  ) {
    this.pendingGraceMs = options.pendingGraceMs ?? 5 * 60_000;
    this.twinWaitMs = options.twinWaitMs ?? 10_000;
  }

  /** Called in the settling transaction of every refund transaction that settles to success (see RefundSettledListener). */
  onRefundSettled(listener: RefundSettledListener): void {
    this.refundSettledListeners.push(listener);
  }

  // ---- charging ----

  /** Charges (or authorizes) an amount to a stored pay tool or a one-off card. Answers the payment in any state. */
  async charge(actor: Actor, input: ChargeInput): Promise<Payment> {
    const accountId = positiveId(input.accountId, 'accountId');
    const account = await scopedAccount(this.deps.db, actor, accountId);
    const kind = input.mode === undefined ? 'purchase' : oneOf(input.mode, 'mode', ['purchase', 'authorize'] as const);
    const amount = positiveAmount(input.amount, 'amount');
    const currency = currencyOf(input.currency).code;
    const orderId = input.orderId === undefined || input.orderId === null ? null : positiveId(input.orderId, 'orderId');
    const description = requiredText(input.description, 'description', 255);
    const key = callerKey(input.idempotencyKey);
    let gatewayInstanceId = input.gatewayInstanceId === undefined || input.gatewayInstanceId === null ? undefined : positiveId(input.gatewayInstanceId, 'gatewayInstanceId');

    let payTool: { token: string } | { card: CardDetails };
    let payToolId: number | null = null;
    let toolFingerprint: string;
    if (input.payTool && 'payToolId' in input.payTool) {
      payToolId = positiveId(input.payTool.payToolId, 'payTool.payToolId');
      const tool = (await this.deps.db('pay_tools').where({ id: payToolId, account_id: accountId }).first()) as PayToolRow | undefined;
      if (!tool) throw invalid('payTool.payToolId', `Pay tool ${payToolId} does not exist for account ${accountId}.`);
      if (gatewayInstanceId !== undefined && gatewayInstanceId !== Number(tool.gateway_instance_id)) {
        throw invalid('gatewayInstanceId', `Pay tool ${payToolId} is kept by gateway instance ${tool.gateway_instance_id}, not ${gatewayInstanceId}.`);
      }
      gatewayInstanceId = Number(tool.gateway_instance_id);
      payTool = { token: tool.token };
      toolFingerprint = `tool:${payToolId}`;
    } else if (input.payTool && 'card' in input.payTool) {
      const card = checkCard(input.payTool.card, this.deps.clock.now(), 'payTool.card');
      if (gatewayInstanceId === undefined) throw invalid('gatewayInstanceId', 'gatewayInstanceId is required to charge a card.');
      payTool = { card };
      // Enough to tell two requests apart without keeping anything of the number beyond what a receipt shows.
      toolFingerprint = `card:${last4Of(card)}:${card.expMonth}/${card.expYear}`;
    } else {
      throw invalid('payTool', 'payTool must give a payToolId or a card.');
    }

    const gateway = gatewayInstanceId;
    return this.attempt(actor, {
      operation: kind === 'purchase' ? 'ChargePayment' : 'AuthorizePayment',
      accountId,
      callerKey: key,
      hash: chargeHash({ kind, account_id: accountId, order_id: orderId, amount, currency, gateway_instance_id: gateway, description }, toolFingerprint),
      gatewayInstanceId: gateway,
      newCharge: { field: payToolId !== null ? 'payTool.payToolId' : 'gatewayInstanceId' },
      build: async (tx) => {
        if (input.guard && (await input.guard(tx)) === 'twin') throw new TwinFound();
        return {
        account_id: accountId,
        vendor_id: account.vendor_id ?? account.id,
        gateway_instance_id: gateway,
        kind,
        parent_payment_id: null,
        order_id: orderId,
        amount,
        currency,
        pay_tool_id: payToolId,
        description,
        };
      },
      call: (gw, idempotencyKey) => gatewayCharge(gw, kind, idempotencyKey, amount, currency, payTool, description, accountId),
    });
  }

  /** Captures a successful authorization, in full or in part, once. */
  async capture(actor: Actor, paymentId: number, opts: { amount?: bigint; idempotencyKey?: string } = {}): Promise<Payment> {
    const parent = await this.load(this.deps.db, actor, paymentId);
    const requested = opts.amount === undefined ? undefined : positiveAmount(opts.amount, 'amount');
    return this.child(actor, parent, 'capture', opts.idempotencyKey, { amount: requested }, (p, children) => {
      if (p.kind !== 'authorize') throw notAllowed(`Payment ${p.id} is a ${p.kind}; only an authorization can be captured.`);
      this.requireSuccess(p, 'captured');
      if (children.some((c) => c.kind === 'capture' && c.status === 'success')) throw notAllowed(`Authorization ${p.id} is already captured.`);
      const authorized = toBigInt(p.amount);
      const amount = requested ?? authorized;
      if (amount > authorized) throw invalid('amount', `At most ${formatAmount(authorized, p.currency)} ${p.currency} can be captured.`);
      return { amount, call: (gw, key, row) => gw.capture({ idempotencyKey: key, reference: p.gateway_reference ?? '', money: { amount: row.amount.toString(), currency: row.currency } }) };
    });
  }

  /** Voids a successful purchase or an uncaptured authorization; when the gateway agrees, the payment is voided. */
  async void(actor: Actor, paymentId: number, opts: { idempotencyKey?: string } = {}): Promise<Payment> {
    const parent = await this.load(this.deps.db, actor, paymentId);
    return this.child(actor, parent, 'void', opts.idempotencyKey, {}, (p, children) => {
      if (p.kind !== 'purchase' && p.kind !== 'authorize') throw notAllowed(`Payment ${p.id} is a ${p.kind}; only a purchase or an authorization can be voided.`);
      this.requireSuccess(p, 'voided');
      if (children.some((c) => c.kind === 'capture' && c.status === 'success')) throw notAllowed(`Authorization ${p.id} is captured; refund the capture instead.`);
      if (children.some((c) => c.kind === 'refund' && c.status === 'success')) throw notAllowed(`Payment ${p.id} is partly refunded; refund the rest instead of voiding it.`);
      return { amount: toBigInt(p.amount), call: (gw, key) => gw.void({ idempotencyKey: key, reference: p.gateway_reference ?? '' }) };
    });
  }

  /** Refunds a successful purchase or capture, in full (the default: what is left) or in part. */
  async refund(actor: Actor, paymentId: number, opts: { amount?: bigint; idempotencyKey?: string; reason?: string } = {}): Promise<Payment> {
    const parent = await this.load(this.deps.db, actor, paymentId);
    const requested = opts.amount === undefined ? undefined : positiveAmount(opts.amount, 'amount');
    const reason = optionalText(opts.reason, 'reason', 200);
    return this.child(actor, parent, 'refund', opts.idempotencyKey, { amount: requested, reason }, (p, children) => {
      if (p.kind !== 'purchase' && p.kind !== 'capture') throw notAllowed(`Payment ${p.id} is a ${p.kind}; only a purchase or a capture can be refunded.`);
      this.requireSuccess(p, 'refunded');
      const refunded = children.filter((c) => c.kind === 'refund' && c.status === 'success').reduce((sum, c) => sum + toBigInt(c.amount), 0n);
      const left = toBigInt(p.amount) - refunded;
      if (left <= 0n) throw notAllowed(`Payment ${p.id} is already refunded in full.`);
      const amount = requested ?? left;
      if (amount > left) throw invalid('amount', `At most ${formatAmount(left, p.currency)} ${p.currency} of payment ${p.id} can still be refunded.`);
      return {
        amount,
        description: `Refund of payment ${p.id}${reason ? `: ${reason}` : ''}`,
        call: (gw, key, row) => gw.refund({ idempotencyKey: key, reference: p.gateway_reference ?? '', money: { amount: row.amount.toString(), currency: row.currency } }),
      };
    });
  }

  // ---- reading ----

  async get(actor: Actor, paymentId: number): Promise<Payment> {
    return toPayment(await this.load(this.deps.db, actor, paymentId));
  }

  async list(actor: Actor, accountId: number, opts: { page?: number; pageSize?: number } = {}): Promise<{ payments: Payment[]; total: number }> {
    const account = await scopedAccount(this.deps.db, actor, positiveId(accountId, 'accountId'));
    const { offset, pageSize } = paging(opts.page, opts.pageSize);
    const [{ n }] = (await this.deps.db('payments').where({ account_id: account.id }).count({ n: '*' })) as { n: number | string }[];
    const rows = (await this.deps.db('payments').where({ account_id: account.id }).orderBy('id', 'desc').offset(offset).limit(pageSize)) as PaymentRow[];
    return { payments: rows.map(toPayment), total: Number(n) };
  }

  // ---- reconciling ----

  /** Asks the gateway about a pending or unknown payment and settles it; any other payment is answered as is. */
  async reconcile(actor: Actor, paymentId: number): Promise<Payment> {
    return this.reconcileRow(actor, await this.load(this.deps.db, actor, paymentId));
  }

  /** The reconciler's run: unknown payments, and pending ones older than the grace period, oldest check first. */
  async reconcilePending(actor: Actor, limit = 100): Promise<ReconcileSummary> {
    const now = this.deps.clock.now().getTime();
    const rows = (await this.deps.db('payments as p')
      .join('accounts as a', 'a.id', 'p.account_id')
      .where('a.path', 'like', `${actor.accountPath}%`)
      .whereNotNull('p.gateway_instance_id')
      .where((q) => q.where('p.status', 'unknown').orWhere((q2) => q2.where('p.status', 'pending').andWhere('p.updated_at', '<=', now - this.pendingGraceMs)))
      .orderBy([{ column: 'p.checked_at', order: 'asc' }, { column: 'p.id', order: 'asc' }])
      .limit(Math.max(1, Math.min(limit, 1000)))
      .select('p.*')) as PaymentRow[];
    const summary: ReconcileSummary = { checked: 0, settled: 0, stillOpen: 0, failed: 0 };
    for (const row of rows) {
      summary.checked++;
      try {
        const after = await this.reconcileRow(actor, row);
        if (isOpen(after.status)) summary.stillOpen++;
        else summary.settled++;
      } catch (e) {
        summary.failed++;
        this.deps.log.warn('payment reconcile failed', { paymentId: row.id, error: safeErrorMessage(e) });
      }
    }
    return summary;
  }

  // ---- pay tools ----

  /** Has the gateway keep a card and stores only its token, brand, last 4 digits and expiry. */
  async storePayTool(actor: Actor, accountId: number, gatewayInstanceId: number, card: CardDetails, opts: { makeDefault?: boolean } = {}): Promise<PayTool> {
    const account = await scopedAccount(this.deps.db, actor, positiveId(accountId, 'accountId'));
    const instanceId = positiveId(gatewayInstanceId, 'gatewayInstanceId');
    const checked = checkCard(card, this.deps.clock.now(), 'card');
    const gateway = await this.gatewayFor(instanceId);
    const tool = await tokenize(gateway, checked, account.id);
    return insertPayTool(this.deps, actor, { accountId: account.id, gatewayInstanceId: instanceId, tool, card: checked, makeDefault: opts.makeDefault === true });
  }

  /**
   * The first half of storePayTool, for a caller that must call the gateway before the account exists (XML-RPC
   * PlaceOrderAndAuthorize_API creating the customer in one transaction): the gateway keeps the card and answers a
   * token; nothing is stored until savePayTool. customerReference defaults to "account-new".
   */
  async tokenizeCard(gatewayInstanceId: number, card: CardDetails, customerReference?: number): Promise<TokenizedCard> {
    const instanceId = positiveId(gatewayInstanceId, 'gatewayInstanceId');
    const checked = checkCard(card, this.deps.clock.now(), 'card');
    const gateway = await this.gatewayFor(instanceId);
    const tool = await tokenize(gateway, checked, customerReference ?? 'new');
    return { gatewayInstanceId: instanceId, tool, card: { expMonth: checked.expMonth, expYear: checked.expYear } };
  }

  /** The second half: stores a token from tokenizeCard for an account (in the caller's transaction when deps.db is one). */
  async savePayTool(actor: Actor, accountId: number, tokenized: TokenizedCard, opts: { makeDefault?: boolean } = {}): Promise<PayTool> {
    const account = await scopedAccount(this.deps.db, actor, positiveId(accountId, 'accountId'));
    return insertPayTool(this.deps, actor, {
      accountId: account.id,
      gatewayInstanceId: tokenized.gatewayInstanceId,
      tool: tokenized.tool,
      card: tokenized.card,
      makeDefault: opts.makeDefault === true,
    });
  }

  async listPayTools(actor: Actor, accountId: number): Promise<PayTool[]> {
    const account = await scopedAccount(this.deps.db, actor, positiveId(accountId, 'accountId'));
    return payToolsOf(this.deps.db, account.id);
  }

  // ---- the life of one gateway call ----

  /**
   * Creates the pending row under its key (the unique index makes a concurrent twin fail here and read the
   * first one's row instead), commits, then calls the gateway and settles.
   */
  private async attempt(actor: Actor, a: Attempt): Promise<Payment> {
    const key = a.callerKey === undefined ? randomGatewayKey() : derivedGatewayKey(a.accountId, a.callerKey);
    const earlier = await this.byKey(key);
    if (earlier) return this.replay(earlier, a);
    if (a.newCharge) await this.requireEnabled(a.gatewayInstanceId, a.newCharge.field);
    const gateway = await this.gatewayFor(a.gatewayInstanceId);
    let created: { id: number; row: NewPayment };
    try {
      created = await this.deps.db.transaction(async (tx) => {
        const row = await a.build(tx, key);
        const [payment] = await this.insertPendingTx(tx, actor, this.deps.clock.now(), [{ operation: a.operation, key, hash: a.hash, row }]);
        return { id: payment!.id, row };
      });
    } catch (e) {
      if (!(e instanceof TwinFound) && !isUniqueViolation(e)) throw e;
      const twin = await this.byKey(key);
      if (!twin) throw e;
      return this.replay(twin, a);
    }
    const run = this.callAndSettle(actor, created.id, () => a.call(gateway, key, created.row));
    this.running.set(key, run);
    const forget = () => this.running.delete(key);
    run.then(forget, forget);
    return run;
  }

  /** The same key again: the first payment, once its call is over (or as it stands after twinWaitMs). */
  private async replay(row: PaymentRow, a: Attempt): Promise<Payment> {
    if (row.request_hash !== a.hash) throw conflict(`Idempotency key '${a.callerKey}' was already used with other arguments.`, 'idempotencyKey');
    if (row.status !== 'pending') return toPayment(row);
    const under = this.running.get(row.idempotency_key);
    if (under) return under;
    const deadline = Date.now() + this.twinWaitMs;
    let latest = row;
    while (latest.status === 'pending' && Date.now() < deadline && !this.running.has(row.idempotency_key)) {
      await sleep(25);
      latest = (await this.byKey(row.idempotency_key)) ?? latest;
    }
    return this.running.get(row.idempotency_key) ?? toPayment(latest);
  }

  private async callAndSettle(actor: Actor, paymentId: number, call: () => Promise<Outcome<PaymentResult>>): Promise<Payment> {
    return this.settle(actor, paymentId, await this.settlementOfCall(paymentId, call), ['pending']);
  }

  /** What a gateway call makes of its pending payment (the SDK contract); never throws. */
  private async settlementOfCall(paymentId: number, call: () => Promise<Outcome<PaymentResult>>): Promise<Settlement> {
    let settlement: Settlement;
    try {
      const outcome = await call();
      settlement = wellFormed(outcome)
        ? settlementOf(outcome)
        : { status: 'unknown', message: 'The payment plugin answered something other than an outcome; the reconciler will ask the gateway.' };
    } catch (e) {
      // The SDK contract: a plugin that may have reached the processor throws GatewayTimeoutError; any other
      // throw means it failed before the processor acted.
      settlement = isTimeout(e)
        ? { status: 'unknown', message: 'The gateway did not answer in time; the reconciler will ask it what happened.' }
        : { status: 'plugin_failure', failureCode: PLUGIN_ERROR_CODE, message: `The payment plugin failed before reaching the gateway: ${safeErrorMessage(e)}` };
    }
    if (settlement.status === 'unknown' || settlement.status === 'plugin_failure') {
      this.deps.log.warn(`payment ${settlement.status}`, { paymentId });
    }
    return settlement;
  }

  /** Moves a payment from one of `from` to the settlement's state, with its audit record and event; at most once. */
  private async settle(actor: Actor, paymentId: number, s: Settlement, from: readonly PaymentStatus[], checkedAt?: number): Promise<Payment> {
    return this.deps.db.transaction(async (tx) => (await this.settleTx(tx, actor, this.deps.clock.now(), [{ paymentId, settlement: s }], from, checkedAt))[0]!);
  }

  /**
   * Settles many payments in the caller's transaction: each moves from one of `from` to its settlement's state at
   * most once, with its audit record and event. Answers the payments in the order given, as they now stand.
   */
  async settleTx(tx: Tx, actor: Actor, now: Date, items: readonly { paymentId: number; settlement: Settlement }[], from: readonly PaymentStatus[] = ['pending'], checkedAt?: number): Promise<Payment[]> {
    if (items.length === 0) return [];
    const ids = items.map((i) => i.paymentId);
    // Locking reads, in id order: on MariaDB a plain read could answer from a snapshot older than a racing settle.
    const before = await paymentRowsById(tx, ids, !isSqlite(tx));
    const changes: BulkChange[] = [];
    const changed: number[] = [];
    // The same change for many payments (all the successes but for their references) in one statement.
    const alike = new Map<string, { set: Record<string, unknown>; references: Map<number, string>; ids: number[] }>();
    for (const { paymentId, settlement: s } of items) {
      const row = before.get(paymentId)!;
      // Already settled by someone else (the reconciler, a twin): nothing to do.
      if (!from.includes(row.status)) continue;
      const set: Record<string, unknown> = { status: s.status, updated_at: now.getTime() };
      if (s.failureCode !== undefined) set.failure_code = s.failureCode === null ? null : s.failureCode.slice(0, 64);
      if (s.retryable !== undefined) set.retryable = s.retryable;
      if (s.message !== undefined) set.message = clip(s.message);
      if (checkedAt !== undefined) set.checked_at = checkedAt;
      const key = `${s.reference !== undefined}|${JSON.stringify(set)}`;
      const group = alike.get(key) ?? { set, references: new Map<number, string>(), ids: [] };
      alike.set(key, group);
      group.ids.push(paymentId);
      if (s.reference !== undefined) group.references.set(paymentId, s.reference.slice(0, 255));
      // Still pending (the gateway will finish later): no change of state to record.
      if (row.status !== s.status) changed.push(paymentId);
    }
    for (const g of alike.values()) {
      if (g.references.size) await updateByKey(tx, 'payments', 'id', 'gateway_reference', g.references, { also: g.set });
      else for (let i = 0; i < g.ids.length; i += 500) await tx('payments').whereIn('id', g.ids.slice(i, i + 500)).update(g.set);
    }
    const after = await paymentRowsById(tx, ids, false);
    for (const paymentId of changed) {
      const p = toPayment(after.get(paymentId)!);
      const was = before.get(paymentId)!.status;
      if (p.kind === 'void' && p.status === 'success' && p.parentPaymentId !== null) {
        await tx('payments').where({ id: p.parentPaymentId, status: 'success' }).update({ status: 'voided', updated_at: now.getTime() });
      }
      changes.push({
        operation: 'SettlePayment',
        objectType: 'payment',
        objectId: paymentId,
        details: { kind: p.kind, from: was, to: p.status, failureCode: p.failureCode, parentPaymentId: p.parentPaymentId },
        event: { name: eventNameOf(p.kind, p.status), objectType: 'payment', objectId: paymentId, accountId: p.accountId, payload: eventPayload(p) },
      });
    }
    await recordChanges(tx, actor, now, changes);
    for (const paymentId of changed) {
      const p = toPayment(after.get(paymentId)!);
      if (p.kind === 'refund' && p.status === 'success') for (const listener of this.refundSettledListeners) await listener(tx, actor, now, p);
    }
    return ids.map((id) => toPayment(after.get(id)!));
  }

  // ---- many charges to stored pay tools (the billing run's auto-pay) ----

  /**
   * The first step of charging many stored pay tools at once: their pending payments, in the caller's transaction
   * (with whatever else it writes, e.g. the invoices' payment attempts), under the keys charge() would derive from
   * the same caller keys. A key already used with the same arguments is not written again (created: false); with
   * other arguments it is a CONFLICT. Call the gateways with callPending() after commit, then settleTx().
   */
  async createPendingTx(tx: Tx, actor: Actor, now: Date, charges: readonly ToolCharge[]): Promise<PendingCharge[]> {
    const planned = charges.map((c) => {
      const key = derivedGatewayKey(c.accountId, c.callerKey);
      const row: NewPayment = { account_id: c.accountId, vendor_id: c.vendorId, gateway_instance_id: c.gatewayInstanceId, kind: 'purchase', parent_payment_id: null, order_id: null, amount: c.amount, currency: c.currency, pay_tool_id: c.payToolId, description: c.description };
      return { c, key, hash: toolChargeHash(row), row };
    });
    const earlier = new Map<string, PaymentRow>();
    for (let i = 0; i < planned.length; i += 500) {
      for (const r of (await tx('payments').whereIn('idempotency_key', planned.slice(i, i + 500).map((p) => p.key))) as PaymentRow[]) earlier.set(r.idempotency_key, r);
    }
    for (const p of planned) {
      const e = earlier.get(p.key);
      if (e && e.request_hash !== p.hash) throw conflict(`Idempotency key '${p.c.callerKey}' was already used with other arguments.`, 'idempotencyKey');
    }
    const fresh = planned.filter((p) => !earlier.has(p.key));
    const created = await this.insertPendingTx(tx, actor, now, fresh.map((p) => ({ operation: 'ChargePayment', key: p.key, hash: p.hash, row: p.row })));
    const byKey = new Map(created.map((r) => [r.idempotency_key, r]));
    return planned.map((p) => ({ payment: byKey.get(p.key) ?? earlier.get(p.key)!, created: byKey.has(p.key), token: p.c.token }));
  }

  /**
   * The second step: the gateway calls of the pending payments created here, outside any transaction, `concurrency`
   * at once, each under its payment's key; answers each payment's settlement (the rules of a single charge).
   */
  async callPending(pending: readonly PendingCharge[], concurrency: number): Promise<{ paymentId: number; settlement: Settlement }[]> {
    const todo = pending.filter((p) => p.created);
    const gateways = new Map<number, Promise<PaymentGateway>>();
    const gatewayOf = (id: number) => {
      if (!gateways.has(id)) gateways.set(id, this.gatewayFor(id));
      return gateways.get(id)!;
    };
    const out: { paymentId: number; settlement: Settlement }[] = new Array(todo.length);
    let next = 0;
    const worker = async () => {
      for (let k = next++; k < todo.length; k = next++) {
        const { payment: p, token } = todo[k]!;
        const row = p as PaymentRow;
        const settlement = await this.settlementOfCall(row.id, async () => gatewayCharge(await gatewayOf(Number(row.gateway_instance_id)), 'purchase', row.idempotency_key, toBigInt(row.amount), row.currency, { token }, row.description, Number(row.account_id)));
        out[k] = { paymentId: Number(row.id), settlement };
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(64, Math.floor(concurrency))) }, worker));
    return out;
  }

  /** Inserts pending payments under their keys with their audit records and payment.created events; answers the rows. */
  private async insertPendingTx(tx: Tx, actor: Actor, now: Date, items: readonly { operation: string; key: string; hash: string; row: NewPayment }[]): Promise<PaymentRow[]> {
    if (items.length === 0) return [];
    await insertBatched(
      tx,
      'payments',
      items.map(({ row, key, hash }) => ({
        ...row,
        amount: money(row.amount),
        status: 'pending',
        idempotency_key: key,
        request_hash: hash,
        retryable: false,
        created_at: now.getTime(),
        updated_at: now.getTime(),
      })),
    );
    const byKey = new Map<string, PaymentRow>();
    for (let i = 0; i < items.length; i += 500) {
      for (const r of (await tx('payments').whereIn('idempotency_key', items.slice(i, i + 500).map((x) => x.key))) as PaymentRow[]) byKey.set(r.idempotency_key, r);
    }
    const rows = items.map((x) => byKey.get(x.key)!);
    await recordChanges(
      tx,
      actor,
      now,
      items.map(({ operation, row }, k) => {
        const payment = toPayment(rows[k]!);
        return {
          operation,
          objectType: 'payment',
          objectId: payment.paymentId,
          details: { kind: row.kind, amount: row.amount, currency: row.currency, gatewayInstanceId: row.gateway_instance_id, parentPaymentId: row.parent_payment_id },
          event: { name: 'payment.created', objectType: 'payment', objectId: payment.paymentId, accountId: row.account_id, payload: eventPayload(payment) },
        };
      }),
    );
    return rows;
  }

  private async reconcileRow(actor: Actor, row: PaymentRow): Promise<Payment> {
    if (!isOpen(row.status) || row.gateway_instance_id === null) return toPayment(row);
    const under = this.running.get(row.idempotency_key);
    if (under) return under;
    const gateway = await this.gatewayFor(Number(row.gateway_instance_id));
    const checkedAt = this.deps.clock.now().getTime();
    let answer;
    try {
      answer = await gateway.status(row.idempotency_key);
    } catch (e) {
      await this.markChecked(row.id, checkedAt);
      if (isTimeout(e)) throw new AppError('UNAVAILABLE', `The gateway did not answer about payment ${row.id} in time; it stays ${row.status}.`);
      throw new AppError('PROVIDER_ERROR', `The payment plugin failed asking about payment ${row.id}: ${clip(safeErrorMessage(e))}`);
    }
    if (answer?.status !== 'success') {
      await this.markChecked(row.id, checkedAt);
      if (answer?.status === 'pending') return toPayment((await this.byKey(row.idempotency_key)) ?? row);
      throw new AppError('PROVIDER_ERROR', `The gateway could not say what became of payment ${row.id}: ${clip(answer?.message ?? 'no answer')}`);
    }
    const oldEnough = checkedAt - Number(row.created_at) >= this.pendingGraceMs;
    const settlement = settlementOfState(row.kind, answer.result.state, answer.result.reference ?? '', oldEnough);
    if (!settlement) {
      await this.markChecked(row.id, checkedAt);
      return toPayment((await this.byKey(row.idempotency_key)) ?? row);
    }
    return this.settle(actor, row.id, settlement, OPEN_STATUSES, checkedAt);
  }

  /**
   * Void, refund and capture: a child payment of its own, refused while the parent or another child of it is
   * pending or unknown. The parent is locked while the child is created, so two concurrent refunds cannot both
   * take what is left.
   */
  private async child(
    actor: Actor,
    parent: PaymentRow,
    kind: 'capture' | 'void' | 'refund',
    key: string | undefined,
    args: Record<string, unknown>,
    decide: (p: PaymentRow, children: PaymentRow[]) => { amount: bigint; description?: string; call: Attempt['call'] },
  ): Promise<Payment> {
    if (parent.gateway_instance_id === null) throw notAllowed(`Payment ${parent.id} was made offline; record its ${kind} offline too.`);
    let call: Attempt['call'] | undefined;
    const operation = { capture: 'CapturePayment', void: 'VoidPayment', refund: 'RefundPayment' }[kind];
    return this.attempt(actor, {
      operation,
      accountId: Number(parent.account_id),
      callerKey: callerKey(key),
      hash: requestHash({ op: kind, parentPaymentId: Number(parent.id), ...args }),
      gatewayInstanceId: Number(parent.gateway_instance_id),
      build: async (tx, gatewayKey) => {
        const p = await this.lock(tx, Number(parent.id));
        const children = (await tx('payments').where({ parent_payment_id: p.id })) as PaymentRow[];
        // A twin that held the lock before us has created this very child: its answer is ours.
        if (children.some((c) => c.idempotency_key === gatewayKey)) throw new TwinFound();
        if (isOpen(p.status)) throw notAllowed(`Payment ${p.id} is ${p.status} and being reconciled with the gateway; nothing else may act on it until it is settled.`);
        const open = children.find((c) => isOpen(c.status));
        if (open) throw notAllowed(`Payment ${p.id} has a ${open.kind} (payment ${open.id}) being reconciled with the gateway; wait until it is settled.`);
        const decided = decide(p, children);
        call = decided.call;
        return {
          account_id: Number(p.account_id),
          vendor_id: Number(p.vendor_id),
          gateway_instance_id: Number(p.gateway_instance_id),
          kind,
          parent_payment_id: Number(p.id),
          order_id: p.order_id === null ? null : Number(p.order_id),
          amount: decided.amount,
          currency: p.currency,
          pay_tool_id: p.pay_tool_id === null ? null : Number(p.pay_tool_id),
          description: (decided.description ?? `${kind[0]!.toUpperCase()}${kind.slice(1)} of payment ${p.id}`).slice(0, 255),
        };
      },
      call: (gw, k, row) => call!(gw, k, row),
    });
  }

  /**
   * A disabled payment gateway instance takes no new charge (its existing payments may still be voided, refunded,
   * captured and reconciled). An instance the database does not know is left to the resolver to refuse.
   */
  private async requireEnabled(gatewayInstanceId: number, field: string): Promise<void> {
    const row = (await this.deps.db('plugin_instances').where({ id: gatewayInstanceId }).first('name', 'status')) as { name: string; status: string } | undefined;
    if (row && row.status !== 'active') {
      throw notAllowed(`Payment gateway '${row.name}' (instance ${gatewayInstanceId}) is ${row.status}; it takes no new charges. Enable it, or pay with a pay tool of another gateway.`, field);
    }
  }

  private requireSuccess(p: PaymentRow, what: string): void {
    if (p.status !== 'success') throw notAllowed(`Payment ${p.id} is ${p.status}; only a successful payment can be ${what}.`);
  }

  private async lock(tx: Tx, paymentId: number): Promise<PaymentRow> {
    // SQLite has one writer at a time already; MariaDB needs the row lock.
    const q = tx('payments').where({ id: paymentId });
    return (await (isSqlite(tx) ? q : q.forUpdate()).first()) as PaymentRow;
  }

  private async load(conn: Conn, actor: Actor, paymentId: number): Promise<PaymentRow> {
    const id = positiveId(paymentId, 'paymentId');
    const row = (await conn('payments as p')
      .join('accounts as a', 'a.id', 'p.account_id')
      .where('p.id', id)
      .andWhere('a.path', 'like', `${actor.accountPath}%`)
      .first('p.*')) as PaymentRow | undefined;
    if (!row) throw notFound('Payment', id);
    return row;
  }

  private async byKey(key: string): Promise<PaymentRow | undefined> {
    return (await this.deps.db('payments').where({ idempotency_key: key }).first()) as PaymentRow | undefined;
  }

  private async markChecked(paymentId: number, at: number): Promise<void> {
    await this.deps.db('payments').where({ id: paymentId }).update({ checked_at: at });
  }
}

function wellFormed(outcome: Outcome<PaymentResult> | undefined): outcome is Outcome<PaymentResult> {
  if (!outcome || typeof outcome !== 'object') return false;
  if (outcome.status === 'success') return typeof outcome.result?.reference === 'string' && outcome.result.reference.length > 0;
  return outcome.status === 'failure' || outcome.status === 'pending';
}
