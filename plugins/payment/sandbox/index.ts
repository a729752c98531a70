import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  GatewayTimeoutError,
  failure,
  success,
  type CardDetails,
  type Money,
  type Outcome,
  type PaymentGateway,
  type PaymentRequest,
  type PaymentResult,
  type PluginContext,
  type PluginFactory,
  type StoredPayTool,
} from '../../../src/plugins/sdk';

/**
 * A test-mode card processor. It keeps what a real one keeps (operations by idempotency key, transactions by
 * reference, stored cards by token) in memory, optionally in a JSON file, and never a card number.
 */

type Behaviour = 'approve' | 'decline' | 'insufficient_funds' | 'timeout' | 'attach_then_decline';

/** The test cards and what each does; any other valid number is refused, as a processor in test mode does. */
export const TEST_CARDS: Readonly<Record<string, Behaviour>> = Object.freeze({
  '4242424242424242': 'approve',
  '5555555555554444': 'approve',
  '378282246310005': 'approve',
  '4000000000000002': 'decline',
  '4000000000009995': 'insufficient_funds',
  // Charged on the processor, then the answer is lost: the caller sees a timeout, a later status() the charge.
  '4000000000000119': 'timeout',
  // Stored as a token fine, declined when charged.
  '4000000000000341': 'attach_then_decline',
});

/**
 * Fixed test tokens, valid in every sandbox without being stored first (as a processor's test mode has them): for
 * seeding many stored cards at once (the billing benchmark's book) or a pay tool written by hand. Each behaves like
 * the test card named; `tok_visa_<suffix>` (letters, digits, '-') is tok_visa too, so that many pay tools, each with
 * a token of its own, can use one.
 */
export const TEST_TOKENS: Readonly<Record<string, StoredCard>> = Object.freeze({
  tok_visa: { brand: 'visa', last4: '4242', expMonth: 12, expYear: 2099, behaviour: 'approve' },
  tok_mastercard: { brand: 'mastercard', last4: '4444', expMonth: 12, expYear: 2099, behaviour: 'approve' },
  tok_amex: { brand: 'amex', last4: '0005', expMonth: 12, expYear: 2099, behaviour: 'approve' },
  tok_chargeDeclined: { brand: 'visa', last4: '0341', expMonth: 12, expYear: 2099, behaviour: 'attach_then_decline' },
  tok_insufficientFunds: { brand: 'visa', last4: '9995', expMonth: 12, expYear: 2099, behaviour: 'insufficient_funds' },
  tok_timeout: { brand: 'visa', last4: '0119', expMonth: 12, expYear: 2099, behaviour: 'timeout' },
});

function testToken(token: string): StoredCard | undefined {
  const m = /^(tok_[A-Za-z]+)(?:_[A-Za-z0-9-]{1,64})?$/.exec(token);
  return m && Object.hasOwn(TEST_TOKENS, m[1]!) ? TEST_TOKENS[m[1]!] : undefined;
}

type OperationKind = 'purchase' | 'authorize' | 'capture' | 'void' | 'refund' | 'store';
type GatewayState = 'succeeded' | 'declined' | 'voided' | 'refunded' | 'pending' | 'not_found';

interface Transaction {
  reference: string;
  kind: 'charge' | 'authorization';
  amount: string;
  currency: string;
  captured: string;
  refunded: string;
  state: 'authorized' | 'succeeded' | 'voided' | 'refunded';
}

interface Operation {
  kind: OperationKind;
  /** What the key was first used for: the same key with other parameters is refused. */
  fingerprint: string;
  outcome: Outcome<PaymentResult> | Outcome<StoredPayTool>;
  transaction?: string;
}

interface StoredCard {
  brand: string;
  last4: string;
  expMonth: number;
  expYear: number;
  behaviour: Behaviour;
}

interface ProcessorState {
  operations: Record<string, Operation>;
  transactions: Record<string, Transaction>;
  tokens: Record<string, StoredCard>;
}

export interface SandboxSettings {
  delayMs: number;
  stateFile?: string;
}

function readSettings(raw: Record<string, unknown>): SandboxSettings {
  const delayMs = raw.delayMs === undefined ? 0 : Number(raw.delayMs);
  if (!Number.isInteger(delayMs) || delayMs < 0) throw new Error('sandbox: delayMs must be a whole number of milliseconds, 0 or more.');
  const stateFile = raw.stateFile === undefined || raw.stateFile === '' ? undefined : String(raw.stateFile);
  return { delayMs, stateFile };
}

function brandOf(number: string): string {
  if (/^4/.test(number)) return 'visa';
  if (/^(5[1-5]|2(2[2-9]|[3-6]\d|7[01]|720))/.test(number)) return 'mastercard';
  if (/^3[47]/.test(number)) return 'amex';
  if (/^(6011|65|64[4-9])/.test(number)) return 'discover';
  return 'unknown';
}

function luhn(number: string): boolean {
  let sum = 0;
  for (let i = 0; i < number.length; i++) {
    let d = number.charCodeAt(number.length - 1 - i) - 48;
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

/** Maps without a prototype: a key or reference named 'toString' or 'constructor' finds nothing. */
function emptyState(): ProcessorState {
  return { operations: Object.create(null) as ProcessorState['operations'], transactions: Object.create(null) as ProcessorState['transactions'], tokens: Object.create(null) as ProcessorState['tokens'] };
}

const newId = (prefix: string) => `${prefix}_${crypto.randomBytes(12).toString('hex')}`;

export class SandboxGateway implements PaymentGateway {
  private state: ProcessorState = emptyState();
  /** Calls under way by key: a concurrent twin waits for the first one's answer instead of acting again. */
  private readonly running = new Map<string, Promise<Outcome<PaymentResult> | Outcome<StoredPayTool>>>();
  readonly settings: SandboxSettings;

  constructor(private readonly context: PluginContext) {
    this.settings = readSettings(context.settings);
    if (this.settings.stateFile && fs.existsSync(this.settings.stateFile)) {
      const saved = JSON.parse(fs.readFileSync(this.settings.stateFile, 'utf8')) as ProcessorState;
      this.state = emptyState();
      Object.assign(this.state.operations, saved.operations);
      Object.assign(this.state.transactions, saved.transactions);
      Object.assign(this.state.tokens, saved.tokens);
    }
  }

  authorize(req: PaymentRequest): Promise<Outcome<PaymentResult>> {
    return this.once(req.idempotencyKey, 'authorize', this.chargeFingerprint(req), () => this.charge(req, 'authorization'));
  }

  purchase(req: PaymentRequest): Promise<Outcome<PaymentResult>> {
    return this.once(req.idempotencyKey, 'purchase', this.chargeFingerprint(req), () => this.charge(req, 'charge'));
  }

  capture(req: { idempotencyKey: string; reference: string; money: Money }): Promise<Outcome<PaymentResult>> {
    return this.once(req.idempotencyKey, 'capture', `${req.reference}|${req.money.amount}|${req.money.currency}`, () => {
      const txn = this.state.transactions[req.reference];
      const amount = this.amount(req.money);
      if (!txn) return { outcome: failure(`No transaction ${req.reference}.`, false, 'no_such_transaction') };
      if (typeof amount !== 'bigint') return { outcome: amount };
      if (txn.kind !== 'authorization' || txn.state !== 'authorized') return { outcome: failure(`Transaction ${req.reference} is not an open authorization.`, false, 'not_capturable') };
      if (req.money.currency !== txn.currency) return { outcome: failure(`Capture currency ${req.money.currency} differs from the authorization's ${txn.currency}.`, false, 'currency_mismatch') };
      if (amount > BigInt(txn.amount)) return { outcome: failure('Capture amount is more than the authorized amount.', false, 'amount_too_large') };
      txn.captured = amount.toString();
      txn.state = 'succeeded';
      return { outcome: success({ reference: txn.reference }), transaction: txn.reference };
    });
  }

  void(req: { idempotencyKey: string; reference: string }): Promise<Outcome<PaymentResult>> {
    return this.once(req.idempotencyKey, 'void', req.reference, () => {
      const txn = this.state.transactions[req.reference];
      if (!txn) return { outcome: failure(`No transaction ${req.reference}.`, false, 'no_such_transaction') };
      if (txn.state === 'voided') return { outcome: failure(`Transaction ${req.reference} is already voided.`, false, 'already_voided') };
      if (txn.state === 'refunded' || txn.refunded !== '0') return { outcome: failure(`Transaction ${req.reference} is refunded; it can no longer be voided.`, false, 'not_voidable') };
      txn.state = 'voided';
      return { outcome: success({ reference: newId('vd') }), transaction: txn.reference };
    });
  }

  refund(req: { idempotencyKey: string; reference: string; money: Money }): Promise<Outcome<PaymentResult>> {
    return this.once(req.idempotencyKey, 'refund', `${req.reference}|${req.money.amount}|${req.money.currency}`, () => {
      const txn = this.state.transactions[req.reference];
      const amount = this.amount(req.money);
      if (!txn) return { outcome: failure(`No transaction ${req.reference}.`, false, 'no_such_transaction') };
      if (typeof amount !== 'bigint') return { outcome: amount };
      if (txn.state !== 'succeeded') return { outcome: failure(`Transaction ${req.reference} is ${txn.state}; only a settled charge can be refunded.`, false, 'not_refundable') };
      if (req.money.currency !== txn.currency) return { outcome: failure(`Refund currency ${req.money.currency} differs from the charge's ${txn.currency}.`, false, 'currency_mismatch') };
      const settled = BigInt(txn.kind === 'authorization' ? txn.captured : txn.amount);
      const refunded = BigInt(txn.refunded) + amount;
      if (refunded > settled) return { outcome: failure('Refund amount is more than what is left of the charge.', false, 'amount_too_large') };
      txn.refunded = refunded.toString();
      if (refunded === settled) txn.state = 'refunded';
      return { outcome: success({ reference: newId('re') }), transaction: txn.reference };
    });
  }

  async status(idempotencyKey: string): Promise<Outcome<PaymentResult & { state: GatewayState }>> {
    await this.delay();
    const op = this.state.operations[idempotencyKey];
    if (!op) return success({ reference: '', state: 'not_found' });
    if (op.outcome.status === 'failure') return success({ reference: '', state: 'declined' });
    if (op.outcome.status === 'pending') return success({ reference: '', state: 'pending' });
    const result = op.outcome.result as Partial<PaymentResult & StoredPayTool>;
    const reference = result.reference ?? result.token ?? '';
    if (op.kind === 'void') return success({ reference, state: 'voided' });
    if (op.kind === 'refund') return success({ reference, state: 'refunded' });
    const txn = op.transaction ? this.state.transactions[op.transaction] : undefined;
    if (op.kind !== 'capture' && (txn?.state === 'voided' || txn?.state === 'refunded')) return success({ reference, state: txn.state });
    return success({ reference, state: 'succeeded' });
  }

  storePayTool(req: { idempotencyKey: string; card: CardDetails; customerReference: string }): Promise<Outcome<StoredPayTool>> {
    const last4 = String(req.card?.number ?? '').slice(-4);
    return this.once(req.idempotencyKey, 'store', `${last4}|${req.card?.expMonth}|${req.card?.expYear}|${req.customerReference}`, () => {
      const card = this.readCard(req.card);
      if (card.status === 'failure') return { outcome: card };
      if (card.behaviour === 'decline') return { outcome: failure('Your card was declined.', false, 'card_declined') };
      const token = newId('tok');
      const stored: StoredCard = { brand: card.brand, last4: card.last4, expMonth: req.card.expMonth, expYear: req.card.expYear, behaviour: card.behaviour };
      this.state.tokens[token] = stored;
      return { outcome: success({ token, brand: stored.brand, last4: stored.last4, expMonth: stored.expMonth, expYear: stored.expYear }) };
    }) as Promise<Outcome<StoredPayTool>>;
  }

  // ---- the processor ----

  private chargeFingerprint(req: PaymentRequest): string {
    const tool = 'token' in (req.payTool ?? {}) ? `token:${(req.payTool as { token: string }).token}` : `card:${String((req.payTool as { card?: CardDetails })?.card?.number ?? '').slice(-4)}`;
    return `${req.money?.amount}|${req.money?.currency}|${tool}|${req.customerReference}`;
  }

  private charge(req: PaymentRequest, kind: Transaction['kind']): { outcome: Outcome<PaymentResult>; transaction?: string; timeout?: boolean } {
    const amount = this.amount(req.money);
    if (typeof amount !== 'bigint') return { outcome: amount };
    let behaviour: Behaviour;
    let last4: string;
    if ('token' in req.payTool) {
      const token = req.payTool.token;
      const stored = this.state.tokens[token] ?? testToken(token);
      if (!stored) return { outcome: failure('No such stored card.', false, 'invalid_token') };
      behaviour = stored.behaviour;
      last4 = stored.last4;
    } else {
      const card = this.readCard(req.payTool.card);
      if (card.status === 'failure') return { outcome: card };
      behaviour = card.behaviour;
      last4 = card.last4;
    }
    this.context.log.debug('sandbox charge', { kind, last4, amount: req.money.amount, currency: req.money.currency, behaviour });
    if (behaviour === 'decline' || behaviour === 'attach_then_decline') return { outcome: failure('Your card was declined.', false, 'card_declined') };
    if (behaviour === 'insufficient_funds') return { outcome: failure('Your card has insufficient funds.', false, 'insufficient_funds') };
    const reference = newId(kind === 'charge' ? 'ch' : 'au');
    this.state.transactions[reference] = {
      reference,
      kind,
      amount: amount.toString(),
      currency: req.money.currency,
      captured: '0',
      refunded: '0',
      state: kind === 'charge' ? 'succeeded' : 'authorized',
    };
    return { outcome: success({ reference }), transaction: reference, timeout: behaviour === 'timeout' };
  }

  private amount(money: Money): bigint | Outcome<never> {
    if (!money || typeof money.amount !== 'string' || !/^\d{1,19}$/.test(money.amount) || BigInt(money.amount) <= 0n) {
      return failure('The amount must be a positive whole number of minor units.', false, 'invalid_amount');
    }
    if (typeof money.currency !== 'string' || !/^[A-Z]{3}$/.test(money.currency)) return failure('The currency must be an ISO 4217 code.', false, 'invalid_currency');
    return BigInt(money.amount);
  }

  private readCard(card: CardDetails): (Outcome<never> & { status: 'failure' }) | { status: 'ok'; behaviour: Behaviour; brand: string; last4: string } {
    const number = typeof card?.number === 'string' ? card.number.replace(/[\s-]/g, '') : '';
    if (!/^\d{12,19}$/.test(number) || !luhn(number)) return { status: 'failure', retryable: false, message: 'The card number is not valid.', code: 'invalid_number' };
    const now = this.context.now();
    const month = Number(card.expMonth);
    const year = Number(card.expYear);
    if (!Number.isInteger(month) || month < 1 || month > 12 || !Number.isInteger(year)) return { status: 'failure', retryable: false, message: 'The expiry date is not valid.', code: 'invalid_expiry' };
    if (year < now.getUTCFullYear() || (year === now.getUTCFullYear() && month < now.getUTCMonth() + 1)) {
      return { status: 'failure', retryable: false, message: 'The card has expired.', code: 'expired_card' };
    }
    if (card.cvv !== undefined && !/^\d{3,4}$/.test(String(card.cvv))) return { status: 'failure', retryable: false, message: 'The security code is not valid.', code: 'invalid_cvc' };
    const behaviour = TEST_CARDS[number];
    if (!behaviour) return { status: 'failure', retryable: false, message: 'The sandbox accepts test cards only.', code: 'card_declined' };
    return { status: 'ok', behaviour, brand: brandOf(number), last4: number.slice(-4) };
  }

  /**
   * Acts at most once per idempotency key: a repeat answers the first outcome, a concurrent repeat waits for it,
   * the same key with other parameters is refused. A timeout card's charge is kept, then the answer is "lost".
   */
  private once<T extends Outcome<PaymentResult> | Outcome<StoredPayTool>>(
    key: string,
    kind: OperationKind,
    fingerprint: string,
    act: () => { outcome: T; transaction?: string; timeout?: boolean },
  ): Promise<T> {
    const under = this.running.get(key);
    if (under) return under as Promise<T>;
    const run = (async () => {
      await this.delay();
      if (typeof key !== 'string' || key === '') return failure('An idempotency key is required.', false, 'missing_idempotency_key') as T;
      const earlier = this.state.operations[key];
      if (earlier) {
        if (earlier.kind !== kind || earlier.fingerprint !== fingerprint) return failure('The idempotency key was already used with other parameters.', false, 'idempotency_key_reused') as T;
        return earlier.outcome as T;
      }
      const { outcome, transaction, timeout } = act();
      this.state.operations[key] = { kind, fingerprint, outcome, transaction };
      this.save();
      if (timeout) throw new GatewayTimeoutError('The sandbox processor did not answer in time.');
      return outcome;
    })();
    this.running.set(key, run);
    const forget = () => this.running.delete(key);
    run.then(forget, forget);
    return run;
  }

  private async delay(): Promise<void> {
    if (this.settings.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.settings.delayMs));
  }

  private save(): void {
    const file = this.settings.stateFile;
    if (!file) return;
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    // Write then rename, so a crash never leaves half a file.
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.state));
    fs.renameSync(tmp, file);
  }
}

const createSandboxGateway: PluginFactory<PaymentGateway> = (context) => new SandboxGateway(context);
export default createSandboxGateway;
