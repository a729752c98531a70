/**
 * The Hostwright plugin SDK: the only module a plugin imports. Documented in docs/plugins.md.
 *
 * A plugin is a folder `plugins/<kind>/<name>/` with `manifest.json` and an entry module whose default export is
 * a factory: `(context: PluginContext) => ProvisioningGate | PaymentGateway | FraudScreen | Registrar`.
 * The core owns every operation id it hands a plugin: repeating a call with the same id must have no extra effect.
 */

import { domainToASCII } from 'node:url';

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
  /**
   * A small persistent key-value store of this plugin instance (kept in the core's database, shared by every
   * process of the server, gone with the instance). The core always gives one; it is optional here only so that
   * contexts built by hand in older tests still type-check. See PluginStore.
   */
  store?: PluginStore;
}

/**
 * Persistent key-value storage scoped to one plugin instance. Keys are text of 1-255 characters compared exactly
 * (case matters); values are anything JSON can carry (objects, arrays, strings, numbers, booleans, null), at most
 * 1 MiB once serialised. `put` replaces a key's value as a whole; there is no transaction across keys, so a plugin
 * that updates several keys for one operation must tolerate a crash between them (or serialise its own calls).
 */
export interface PluginStore {
  /** The value kept under `key`, or undefined when there is none. */
  get<T = unknown>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): Promise<void>;
  /** Removes `key`; true when it was there. */
  delete(key: string): Promise<boolean>;
  /** Every entry whose key starts with `prefix` (all of them for ""), in key order. */
  list<T = unknown>(prefix?: string): Promise<{ key: string; value: T }[]>;
}

export const MAX_STORE_KEY_LENGTH = 255;
export const MAX_STORE_VALUE_BYTES = 1024 * 1024;

/** Checks a store key and value the way every PluginStore must; returns the JSON text of the value. */
export function checkStoreEntry(key: string, value?: unknown): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_STORE_KEY_LENGTH) throw new TypeError(`A store key is text of 1 to ${MAX_STORE_KEY_LENGTH} characters; got ${JSON.stringify(key)}.`);
  if (arguments.length < 2) return '';
  if (value === undefined) throw new TypeError(`The value for store key '${key}' is undefined; use delete() to remove a key.`);
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`The value for store key '${key}' cannot be written as JSON.`);
  if (Buffer.byteLength(json) > MAX_STORE_VALUE_BYTES) throw new RangeError(`The value for store key '${key}' is over ${MAX_STORE_VALUE_BYTES} bytes as JSON.`);
  return json;
}

/** A PluginStore kept in memory, for a plugin's own unit tests (the core gives a database-backed one). */
export function createMemoryStore(): PluginStore {
  const entries = new Map<string, string>();
  return {
    async get<T>(key: string) {
      checkStoreEntry(key);
      const json = entries.get(key);
      return json === undefined ? undefined : (JSON.parse(json) as T);
    },
    async put(key, value) {
      entries.set(key, checkStoreEntry(key, value));
    },
    async delete(key) {
      checkStoreEntry(key);
      return entries.delete(key);
    },
    async list<T>(prefix = '') {
      return [...entries.keys()]
        .filter((k) => k.startsWith(prefix))
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
        .map((key) => ({ key, value: JSON.parse(entries.get(key) as string) as T }));
    },
  };
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
  /** A service the gate does not have: a non-retryable failure with code NOT_FOUND, which the core counts as terminated. */
  terminate(req: ServiceRequest): Promise<Outcome<Record<string, never>>>;
  changeLimits(req: ServiceRequest): Promise<Outcome<Record<string, never>>>;
  readUsage(req: ServiceRequest): Promise<Outcome<{ usage: UsageReading[] }>>;
  /** The outcome of an earlier call that answered pending, by its operation id; an id never seen: failure code NOT_FOUND. */
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

// ---------------------------------------------------------------------------------------------------------------
// Domain registrars

/** A person or organisation a domain is registered to (or administered by). Text as the registry should show it. */
export interface DomainContact {
  name: string;
  organization?: string;
  email: string;
  /** E.164 style with a dot after the country code, as EPP wants it: "+1.5555550100". */
  phone: string;
  fax?: string;
  /** One to three lines. */
  street: string[];
  city: string;
  state?: string;
  postalCode?: string;
  /** ISO 3166-1 alpha-2, e.g. "US". */
  countryCode: string;
}

export const CONTACT_ROLES = ['registrant', 'admin', 'tech', 'billing'] as const;
export type ContactRole = (typeof CONTACT_ROLES)[number];

/** The registrant is required; a role left out is filled by the registrant where the registry needs one. */
export type DomainContacts = { registrant: DomainContact } & Partial<Record<Exclude<ContactRole, 'registrant'>, DomainContact>>;

/** Every registrar call: the core's operation id, the same id repeated must have no extra effect. */
export interface RegistrarCall {
  /** 3-64 characters, no spaces (EPP sends it as the clTRID, so a retried command is recognisable). */
  operationId: string;
}

/** A call about one domain. `name` is normalised by the plugin with parseDomainName (IDN to punycode, lowercase). */
export interface DomainCall extends RegistrarCall {
  name: string;
}

export interface CheckAvailabilityRequest extends RegistrarCall {
  /** One or more names (at most 100). */
  names: string[];
}

export interface DomainAvailability {
  /** The normalised name (punycode, lowercase). */
  name: string;
  available: boolean;
  /** Why it is not available, as the registry says it ("In use", "Reserved"). */
  reason?: string;
}

export interface RegisterDomainRequest extends DomainCall {
  /** Registration period in whole years (1-10). */
  years: number;
  /** Host names; an empty list or none leaves the domain without nameservers (the registry may refuse). */
  nameservers?: string[];
  contacts: DomainContacts;
}

export interface TransferDomainRequest extends DomainCall {
  /** The EPP auth code (authInfo) the losing registrar gave the registrant. */
  authCode: string;
  /** Years added by the transfer, where the registry allows a choice (usually 1). */
  years?: number;
}

export interface RenewDomainRequest extends DomainCall {
  years: number;
  /** The expiry the core believes current; guards against renewing twice (EPP's curExpDate). Read from the registry when omitted. */
  currentExpiresAt?: string;
}

export interface SetNameserversRequest extends DomainCall {
  /** The complete new list (replaces the old one). */
  nameservers: string[];
}

export interface SetContactsRequest extends DomainCall {
  contacts: DomainContacts;
}

export interface SetLockRequest extends DomainCall {
  /** true: refuse transfers away (and deletion); false: allow them. */
  locked: boolean;
}

export interface SyncDomainsRequest extends RegistrarCall {
  names: string[];
}

/** What the core shows of a domain, derived from the registry's statuses. */
export const DOMAIN_STATES = ['active', 'pending', 'transferring', 'expired', 'suspended', 'deleting'] as const;
export type DomainState = (typeof DOMAIN_STATES)[number];

export interface DomainInfo {
  name: string;
  state: DomainState;
  /** The registry's own statuses as it reported them (EPP: "ok", "clientTransferProhibited", ...). */
  registryStatuses: string[];
  /** ISO 8601 instants. */
  createdAt?: string;
  expiresAt: string;
  nameservers: string[];
  /** Transfers away refused (EPP clientTransferProhibited). */
  locked: boolean;
}

export interface DomainRegistration {
  name: string;
  expiresAt: string;
  createdAt?: string;
}

export interface DomainTransfer {
  name: string;
  /** pending until the losing side approves or the registry's time runs out; then approved (success) or a failure. */
  transferStatus: 'approved';
  expiresAt?: string;
}

export interface SyncedDomain {
  name: string;
  /** false: the registrar does not hold the domain (deleted, transferred away, never ours). */
  found: boolean;
  state?: DomainState;
  expiresAt?: string;
}

/**
 * A domain registrar. Every call answers an Outcome and never throws for a remote refusal or a broken connection:
 * success; failure (retryable: trying the same operation id later may succeed, e.g. the registry timed out;
 * not retryable: it will not, e.g. the name is taken, code "OBJECT_EXISTS"); or pending (the registry accepted
 * the request and finishes later, as transfers do: the core polls with pollTransfer and the same operation id;
 * a register or renew answered pending is asked again with the same operation id, which must then answer what
 * the registry did, never act twice). The failure codes a registrar uses: INVALID_NAME, INVALID_ARGUMENT,
 * OBJECT_EXISTS, NOT_FOUND, NOT_SPONSORED, AUTHORIZATION_ERROR, STATUS_PROHIBITS, POLICY_ERROR, BILLING_FAILURE,
 * GRACE_PERIOD_OVER, TRANSFER_REJECTED, ACTION_REJECTED (an action held pending then not carried out),
 * OPERATION_ID_REUSED, CONNECTION_ERROR, TIMEOUT, REGISTRY_ERROR (and others of the plugin's own).
 */
export interface Registrar {
  checkAvailability(req: CheckAvailabilityRequest): Promise<Outcome<{ results: DomainAvailability[] }>>;
  register(req: RegisterDomainRequest): Promise<Outcome<DomainRegistration>>;
  /** Usually pending first; then pollTransfer with the same operation id until success or failure. */
  transfer(req: TransferDomainRequest): Promise<Outcome<DomainTransfer>>;
  /** The state of the transfer started with `operationId` for `name`. */
  pollTransfer(req: DomainCall): Promise<Outcome<DomainTransfer>>;
  renew(req: RenewDomainRequest): Promise<Outcome<DomainRegistration>>;
  getInfo(req: DomainCall): Promise<Outcome<DomainInfo>>;
  setNameservers(req: SetNameserversRequest): Promise<Outcome<{ nameservers: string[] }>>;
  getContacts(req: DomainCall): Promise<Outcome<DomainContacts>>;
  setContacts(req: SetContactsRequest): Promise<Outcome<Record<string, never>>>;
  setLock(req: SetLockRequest): Promise<Outcome<{ locked: boolean }>>;
  getAuthCode(req: DomainCall): Promise<Outcome<{ authCode: string }>>;
  /** State and expiry of many names at once (the daily sync); a name the registrar does not hold is found: false. */
  sync(req: SyncDomainsRequest): Promise<Outcome<{ domains: SyncedDomain[] }>>;
  /** Deletes a domain, for a saga rolling back a registration; registries allow it only in the add grace period. */
  delete(req: DomainCall): Promise<Outcome<Record<string, never>>>;
  testConnection(): Promise<Outcome<{ message: string }>>;
  /** Releases connections (optional): called when the core drops the instance and by tests. */
  close?(): Promise<void>;
}

export const MAX_NAMES_PER_CALL = 100;

export type NameCheck = { ok: true; name: string; tld: string } | { ok: false; message: string };

/**
 * A domain (or host) name as registries want it: trimmed, without a trailing dot, IDN labels in punycode
 * (node:url domainToASCII, which also lowercases), 2 to 127 labels of 1-63 letters, digits or hyphens not at
 * either end, at most 253 characters, and a top-level label that is not all digits.
 */
export function parseDomainName(input: unknown): NameCheck {
  if (typeof input !== 'string' || input.trim() === '') return { ok: false, message: 'A domain name is required.' };
  const raw = input.trim().replace(/\.$/, '');
  if (/[\s/\\@:]/.test(raw)) return { ok: false, message: `'${input}' is not a domain name: it contains a space or one of / \\ @ :.` };
  const ascii = domainToASCII(raw);
  if (!ascii) return { ok: false, message: `'${input}' is not a domain name.` };
  const labels = ascii.split('.');
  if (labels.length < 2) return { ok: false, message: `'${input}' is not a domain name: it needs a name and a top-level domain, such as example.com.` };
  if (ascii.length > 253) return { ok: false, message: `'${input}' is not a domain name: it is longer than 253 characters.` };
  for (const label of labels) {
    if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(label)) return { ok: false, message: `'${input}' is not a domain name: '${label}' is not a label of 1-63 letters, digits and inner hyphens.` };
  }
  const tld = labels[labels.length - 1];
  if (/^\d+$/.test(tld)) return { ok: false, message: `'${input}' is not a domain name: its top-level domain is a number.` };
  return { ok: true, name: ascii, tld };
}

/** An operation id the registrar SDK accepts: 3-64 printable characters without spaces. */
export function isOperationId(id: unknown): id is string {
  return typeof id === 'string' && /^[\x21-\x7e]{3,64}$/.test(id);
}

function checkContact(c: unknown, role: string): string | null {
  if (!c || typeof c !== 'object') return `contacts.${role} is required.`;
  const x = c as Partial<DomainContact>;
  for (const f of ['name', 'email', 'phone', 'city', 'countryCode'] as const) {
    if (typeof x[f] !== 'string' || (x[f] as string).trim() === '') return `contacts.${role}.${f} is required.`;
  }
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(x.email as string)) return `contacts.${role}.email is not an email address.`;
  if (!/^\+\d{1,3}\.\d{4,14}$/.test(x.phone as string)) return `contacts.${role}.phone must look like +1.5555550100.`;
  if (!/^[A-Z]{2}$/.test(x.countryCode as string)) return `contacts.${role}.countryCode must be two capital letters (ISO 3166).`;
  if (!Array.isArray(x.street) || x.street.length < 1 || x.street.length > 3 || !x.street.every((s) => typeof s === 'string' && s.trim() !== '')) return `contacts.${role}.street must be 1 to 3 lines.`;
  return null;
}

/** Why these contacts cannot be sent to a registry (naming the field, e.g. contacts.registrant.phone), or null. */
export function checkDomainContacts(contacts: unknown): string | null {
  if (!contacts || typeof contacts !== 'object') return 'contacts.registrant is required.';
  for (const role of ['registrant', 'admin', 'tech', 'billing'] as const) {
    const c = (contacts as Record<string, unknown>)[role];
    if (role !== 'registrant' && c === undefined) continue;
    const problem = checkContact(c, role);
    if (problem) return problem;
  }
  return null;
}

/** Nameserver host names normalised like domain names, duplicates dropped, at most 13; or why not. */
export function parseNameservers(list: unknown): { ok: true; hosts: string[] } | { ok: false; message: string } {
  if (list === undefined || list === null) return { ok: true, hosts: [] };
  if (!Array.isArray(list)) return { ok: false, message: 'nameservers must be a list of host names.' };
  if (list.length > 13) return { ok: false, message: 'At most 13 nameservers.' };
  const hosts: string[] = [];
  for (const h of list) {
    const parsed = parseDomainName(h);
    if (!parsed.ok) return { ok: false, message: `Nameserver ${parsed.message}` };
    if (!hosts.includes(parsed.name)) hosts.push(parsed.name);
  }
  return { ok: true, hosts };
}

export type PluginInstance = ProvisioningGate | PaymentGateway | FraudScreen | Registrar;
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
