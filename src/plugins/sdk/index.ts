/**
 * The Hostwright plugin SDK: the only module a plugin imports. Documented in docs/plugins.md.
 *
 * A plugin is a folder `plugins/<kind>/<name>/` with `manifest.json` and an entry module whose default export is
 * a factory: `(context: PluginContext) => ProvisioningGate | PaymentGateway | FraudScreen | Registrar`.
 * The core owns every operation id it hands a plugin: repeating a call with the same id must have no extra effect.
 */

export const SDK_VERSION = '1.0.0';

export type PluginKind = 'provisioning' | 'payment' | 'registrar' | 'fraud';

export interface PluginManifest {
  /** Unique within its kind; the folder name. */
  name: string;
  kind: PluginKind;
  version: string;
  /** Semver range of SDK_VERSION the plugin was written for, e.g. "^1.0.0". */
  sdk: string;
  description?: string;
  /** Entry module relative to the plugin folder (default "index.ts" or "index.js"). */
  entry?: string;
  /** JSON Schema (draft 2020-12 subset) of the instance settings. */
  settingsSchema: Record<string, unknown>;
  /** Settings kept encrypted at rest and never shown back (e.g. ["apiKey", "password"]). */
  secretSettings?: string[];
}

/** What the core gives a plugin instance. */
export interface PluginContext {
  /** The instance's validated settings, secrets decrypted. */
  settings: Record<string, unknown>;
  /** The instance's name (unique per vendor), for messages. */
  instanceName: string;
  log: PluginLogger;
  /** The core's clock: plugins never read the system time directly. */
  now(): Date;
}

export interface PluginLogger {
  debug(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

/**
 * Every plugin call answers one of three outcomes. `failure.retryable` tells the core whether trying again later
 * may succeed (a timeout, a remote 503) or not (a refused request). `pending` means the remote system accepted
 * the request and will finish later: the core polls with `status`-style calls using the same operation id.
 */
export type Outcome<T = Record<string, unknown>> =
  | { status: 'success'; result: T }
  | { status: 'failure'; retryable: boolean; message: string; code?: string }
  | { status: 'pending'; message?: string; retryAfterSeconds?: number };

export const success = <T>(result: T): Outcome<T> => ({ status: 'success', result });
export const failure = (message: string, retryable = false, code?: string): Outcome<never> => ({ status: 'failure', retryable, message, code });
export const pending = (message?: string, retryAfterSeconds?: number): Outcome<never> => ({ status: 'pending', message, retryAfterSeconds });

// ---------------------------------------------------------------------------------------------------------------
// Provisioning (service gates)

export interface ResourceLimit {
  /** Resource code from the catalog, e.g. "disk", "mailboxes". */
  resource: string;
  /** null = unlimited. */
  limit: number | null;
}

export interface ServiceRequest {
  /** The core's id for this call; the same id repeated must not act twice. */
  operationId: string;
  subscriptionId: number;
  accountId: number;
  /** The service template's name, e.g. "Shared Hosting". */
  template: string;
  /** Order parameters collected for the template (domain, login, ...). */
  parameters: Record<string, string>;
  limits: ResourceLimit[];
  /** The gate's own reference for this service, once provisioned (from ProvisionResult.reference). */
  reference?: string;
}

export interface ProvisionResult {
  /** The remote system's id for the service; passed back in every later request. */
  reference: string;
  /** Anything the customer needs (login URL, host name), shown and sent in notifications. */
  details?: Record<string, string>;
}

export interface UsageReading {
  resource: string;
  usage: number;
}

export interface ProvisioningGate {
  provision(req: ServiceRequest): Promise<Outcome<ProvisionResult>>;
  suspend(req: ServiceRequest): Promise<Outcome<Record<string, never>>>;
  resume(req: ServiceRequest): Promise<Outcome<Record<string, never>>>;
  terminate(req: ServiceRequest): Promise<Outcome<Record<string, never>>>;
  changeLimits(req: ServiceRequest): Promise<Outcome<Record<string, never>>>;
  readUsage(req: ServiceRequest): Promise<Outcome<{ usage: UsageReading[] }>>;
  /** The outcome of an earlier call that answered pending, by its operation id. */
  status(operationId: string): Promise<Outcome<Record<string, unknown>>>;
  testConnection(): Promise<Outcome<{ message: string }>>;
}

// ---------------------------------------------------------------------------------------------------------------
// Payments

export interface Money {
  /** Integer minor units as a decimal string ("1999" = 19.99 USD): never a float. */
  amount: string;
  currency: string;
}

export interface CardDetails {
  number: string;
  expMonth: number;
  expYear: number;
  cvv?: string;
  holder?: string;
}

export interface StoredPayTool {
  /** The gateway's token; the core stores only this, the brand, the last 4 digits and the expiry. */
  token: string;
  brand: string;
  last4: string;
  expMonth: number;
  expYear: number;
}

export interface PaymentRequest {
  /** Idempotency key owned by the core: the same key twice must reach the processor's effect once. */
  idempotencyKey: string;
  money: Money;
  /** A stored token, or card details for a one-off charge (never stored by the core). */
  payTool: { token: string } | { card: CardDetails };
  description: string;
  customerReference: string;
}

export interface PaymentResult {
  /** The gateway's reference for the transaction. */
  reference: string;
}

export interface PaymentGateway {
  authorize(req: PaymentRequest): Promise<Outcome<PaymentResult>>;
  capture(req: { idempotencyKey: string; reference: string; money: Money }): Promise<Outcome<PaymentResult>>;
  purchase(req: PaymentRequest): Promise<Outcome<PaymentResult>>;
  void(req: { idempotencyKey: string; reference: string }): Promise<Outcome<PaymentResult>>;
  refund(req: { idempotencyKey: string; reference: string; money: Money }): Promise<Outcome<PaymentResult>>;
  /** What the gateway knows of the transaction made with this idempotency key (for pending and unknown payments). */
  status(idempotencyKey: string): Promise<Outcome<PaymentResult & { state: 'succeeded' | 'declined' | 'voided' | 'refunded' | 'pending' | 'not_found' }>>;
  storePayTool(req: { idempotencyKey: string; card: CardDetails; customerReference: string }): Promise<Outcome<StoredPayTool>>;
}

/** A call that did not answer in time: the core records the payment as UNKNOWN, never as failed or succeeded. */
export class GatewayTimeoutError extends Error {
  constructor(message = 'The payment gateway did not answer in time.') {
    super(message);
    this.name = 'GatewayTimeoutError';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Fraud screening

export interface FraudCheckRequest {
  orderId: number;
  accountId: number;
  money: Money;
  email: string;
  ipAddress?: string;
  ipCountry?: string;
  billingCountry?: string;
  /** Recent orders, for velocity rules: counted by the core within the screen's window. */
  ordersByAccountInWindow: number;
  ordersByIpInWindow: number;
}

export interface FraudVerdict {
  verdict: 'pass' | 'suspect' | 'reject';
  /** One line each, shown to the operator. */
  reasons: string[];
  score?: number;
}

export interface FraudScreen {
  /** Window (seconds) over which the core counts orders for the velocity rules. */
  windowSeconds(): number;
  screen(req: FraudCheckRequest): Promise<Outcome<FraudVerdict>>;
}

export type PluginInstance = ProvisioningGate | PaymentGateway | FraudScreen;
export type PluginFactory<T extends PluginInstance = PluginInstance> = (context: PluginContext) => T;

// ---------------------------------------------------------------------------------------------------------------
// Helpers for gates that forward to another system (a script, a control panel's HTTP API)

export type GateAction = 'provision' | 'suspend' | 'resume' | 'terminate' | 'changeLimits' | 'readUsage' | 'status' | 'testConnection';

const MAX_REPLY_MESSAGE = 500;
const clipMessage = (text: string) => (text.length > MAX_REPLY_MESSAGE ? `${text.slice(0, MAX_REPLY_MESSAGE)}…` : text);
const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Reads another system's JSON reply `{status: "success", result} | {status: "failure", message, retryable?, code?}
 * | {status: "pending", message?, retryAfterSeconds?}` as a well-formed outcome for `action`, or returns why it is
 * not one (a string), so the gate can answer a failure naming the fault. `source` names the system in messages,
 * e.g. "The script" or "The control panel".
 */
export function outcomeFromReply(action: GateAction, reply: unknown, source: string): Outcome<unknown> | string {
  if (!isRecord(reply)) return 'the reply is not a JSON object';
  if (reply.status === 'success') {
    const result = reply.result === undefined ? {} : reply.result;
    if (!isRecord(result)) return 'its "result" is not an object';
    if (action === 'provision' && (typeof result.reference !== 'string' || result.reference === '')) return 'its provision result has no "reference"';
    if (action === 'readUsage' && !(Array.isArray(result.usage) && result.usage.every((u) => isRecord(u) && typeof u.resource === 'string' && typeof u.usage === 'number'))) {
      return 'its readUsage result has no "usage" list of {resource, usage}';
    }
    if (action === 'testConnection' && typeof result.message !== 'string') result.message = `${source} answered.`;
    return { status: 'success', result };
  }
  if (reply.status === 'failure') {
    const message = typeof reply.message === 'string' && reply.message ? clipMessage(reply.message) : `${source} reported a failure without a message.`;
    return { status: 'failure', retryable: reply.retryable === true, message, ...(typeof reply.code === 'string' ? { code: reply.code } : {}) };
  }
  if (reply.status === 'pending') {
    return {
      status: 'pending',
      ...(typeof reply.message === 'string' ? { message: clipMessage(reply.message) } : {}),
      ...(typeof reply.retryAfterSeconds === 'number' && reply.retryAfterSeconds >= 0 ? { retryAfterSeconds: reply.retryAfterSeconds } : {}),
    };
  }
  return 'its "status" is not success, failure or pending';
}
