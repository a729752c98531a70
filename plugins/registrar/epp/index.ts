import crypto from 'node:crypto';
import {
  checkDomainContacts,
  CONTACT_ROLES,
  createMemoryStore,
  failure,
  isOperationId,
  MAX_NAMES_PER_CALL,
  parseDomainName,
  parseNameservers,
  pending,
  success,
  type CheckAvailabilityRequest,
  type ContactRole,
  type DomainAvailability,
  type DomainCall,
  type DomainContact,
  type DomainContacts,
  type DomainInfo,
  type DomainRegistration,
  type DomainState,
  type DomainTransfer,
  type Outcome,
  type PluginContext,
  type PluginFactory,
  type PluginStore,
  type Registrar,
  type RegisterDomainRequest,
  type RenewDomainRequest,
  type SetContactsRequest,
  type SetLockRequest,
  type SetNameserversRequest,
  type SyncDomainsRequest,
  type SyncedDomain,
  type TransferDomainRequest,
} from '../../../src/plugins/sdk';
import * as cmd from './commands';
import { EppConnection, EppConnectionError, readGreeting, readResponse, type EppResponse } from './connection';
import { all, attr, first, NS, text, XmlInputError, type XmlElement, type XNode } from './xml';

/**
 * The EPP registrar: speaks RFC 5730 over TLS (RFC 5734 framing) to any registry or registrar that offers EPP,
 * with the domain, contact and host mappings (RFC 5731, 5733, 5732). Settings in manifest.json and
 * docs/plugins.md. One connection per instance, used by one call at a time (calls queue); it logs in on first use,
 * says hello before reuse after a quiet spell, and logs out after idleTimeoutMs without calls.
 *
 * Operation ids: the main command of a call carries the core's operation id as its clTRID. The plugin keeps each
 * operation's final outcome in its store (op/<id>), so a repeated id answers it without a second command; a
 * retry after a lost answer is recognised (started/<id>) and settled by reading the registry (a create that
 * reports "object exists" is ours when we sponsor it, a renewal already applied shows in the expiry).
 *
 * Action pending (EPP 1001, RFC 5730 section 3; RFC 5731 section 3.3 "offline review"): a create or renew the
 * registry accepted but has not carried out answers pending, and the domain shows pendingCreate / pendingRenew
 * meanwhile. The same operation id asked again (the core's task retries and its late-completion check) does not
 * repeat the command: it reads the domain (<domain:info>): still pending -> pending; created / the expiry moved by
 * the years asked -> success with the registry's dates; gone / the expiry unchanged -> failure ACTION_REJECTED
 * (not retryable). The registry's poll queue (<domain:panData>) tells the same, but is one queue per registrar
 * login, not per object; info is what every registry answers.
 */

interface Settings {
  host: string;
  port: number;
  username: string;
  password: string;
  newPassword?: string;
  caCert?: string;
  clientCert?: string;
  clientKey?: string;
  serverName?: string;
  rejectUnauthorized: boolean;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  idleTimeoutMs: number;
  maxFrameBytes: number;
  nameserverMode: cmd.NameserverMode;
  contactIdPrefix: string;
  contactRoles: Exclude<ContactRole, 'registrant'>[];
  lockStatuses: string[];
  checkBatchSize: number;
  extURIs: string[];
}

interface OperationRecord {
  action: string;
  name: string;
  outcome: Outcome<unknown> | null;
}

interface Started {
  action: string;
  name: string;
  curExpDate?: string;
  /** This operation's update was answered 1001 (held by the registry). */
  held?: boolean;
}

type Send = (body: XmlElement, step?: string) => Promise<EppResponse>;

class LoginError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly code: string,
  ) {
    super(message);
  }
}

class ProtocolError extends Error {}

const LOCK_DEFAULT = ['clientTransferProhibited', 'clientDeleteProhibited'];

/** A failure outcome for an EPP error result: its code, whether retrying may help, and the registry's words. */
export function failureOfResult(r: Pick<EppResponse, 'code' | 'message' | 'reason'>, context: 'info' | 'other' = 'other'): Outcome<never> {
  const said = `The registry answered ${r.code} ${r.message}${r.reason ? ` (${r.reason})` : ''}.`;
  const f = (code: string, retryable = false) => failure(said, retryable, code);
  switch (r.code) {
    case 2302:
      return f('OBJECT_EXISTS');
    case 2303:
      return f('NOT_FOUND');
    case 2201:
      return f(context === 'info' ? 'NOT_SPONSORED' : 'AUTHORIZATION_ERROR');
    case 2202:
      return f('AUTHORIZATION_ERROR');
    case 2200:
    case 2501:
      return f('AUTHENTICATION_ERROR');
    case 2304:
      return f('STATUS_PROHIBITS');
    case 2305:
      return f('ASSOCIATION_PROHIBITS');
    case 2306:
    case 2308:
      return f('POLICY_ERROR');
    case 2104:
      return f('BILLING_FAILURE', true); // the registrar's account at the registry: retry once it is funded
    case 2105:
    case 2106:
      return f('NOT_ELIGIBLE');
    case 2300:
      return f('TRANSFER_PENDING');
    case 2301:
      return f('NOT_PENDING_TRANSFER');
    case 2307:
    case 2100:
    case 2101:
    case 2102:
    case 2103:
      return f('UNIMPLEMENTED');
    case 2400:
    case 2500:
    case 2502:
      return f('REGISTRY_ERROR', true);
    default:
      if (r.code >= 2000 && r.code < 2100) return f('INVALID_ARGUMENT');
      return f('REGISTRY_ERROR', r.code >= 2400);
  }
}

const isoOf = (s: string | undefined): string | undefined => {
  if (!s) return undefined;
  const t = new Date(s);
  return Number.isNaN(t.getTime()) ? undefined : t.toISOString();
};

function addYears(iso: string, years: number): string {
  const d = new Date(iso);
  const month = d.getUTCMonth();
  d.setUTCFullYear(d.getUTCFullYear() + years);
  if (d.getUTCMonth() !== month) d.setUTCDate(0);
  return d.toISOString();
}

function randomAuthCode(): string {
  // Letters, digits and a punctuation mark: what registries' authInfo password policies ask for.
  return `${crypto.randomBytes(12).toString('base64url')}-7a`;
}

interface ParsedInfo {
  name: string;
  clID: string;
  statuses: string[];
  registrant?: string;
  contacts: { type: string; id: string }[];
  nameservers: string[];
  createdAt?: string;
  expiresAt?: string;
  authCode?: string;
}

function parseDomainInfo(resData: XNode | undefined): ParsedInfo | null {
  const inf = first(resData, 'infData');
  if (!inf) return null;
  const ns = first(inf, 'ns');
  return {
    name: text(first(inf, 'name')).toLowerCase(),
    clID: text(first(inf, 'clID')),
    statuses: all(inf, 'status').map((s) => attr(s, 's') ?? '').filter(Boolean),
    registrant: text(first(inf, 'registrant')) || undefined,
    contacts: all(inf, 'contact').map((c) => ({ type: attr(c, 'type') ?? '', id: text(c) })),
    nameservers: [...all(ns, 'hostObj').map(text), ...all(ns, 'hostAttr').map((a) => text(first(a, 'hostName')))].map((n) => n.toLowerCase()),
    createdAt: isoOf(text(first(inf, 'crDate'))),
    expiresAt: isoOf(text(first(inf, 'exDate'))),
    authCode: text(first(inf, 'authInfo', 'pw')) || undefined,
  };
}

function parseContactInfo(resData: XNode | undefined): DomainContact | null {
  const inf = first(resData, 'infData');
  if (!inf) return null;
  const postal = all(inf, 'postalInfo');
  const p = postal.find((x) => attr(x, 'type') === 'loc') ?? postal[0];
  const addr = first(p, 'addr');
  const out: DomainContact = {
    name: text(first(p, 'name')),
    email: text(first(inf, 'email')),
    phone: text(first(inf, 'voice')),
    street: all(addr, 'street').map(text),
    city: text(first(addr, 'city')),
    countryCode: text(first(addr, 'cc')),
  };
  const org = text(first(p, 'org'));
  const sp = text(first(addr, 'sp'));
  const pc = text(first(addr, 'pc'));
  const fax = text(first(inf, 'fax'));
  if (org) out.organization = org;
  if (sp) out.state = sp;
  if (pc) out.postalCode = pc;
  if (fax) out.fax = fax;
  return out;
}

export class EppRegistrar implements Registrar {
  private readonly s: Settings;
  private readonly store: PluginStore;
  private connection: EppConnection | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly inFlight = new Map<string, Promise<Outcome<unknown>>>();

  constructor(private readonly context: PluginContext) {
    const x = context.settings as Partial<Settings>;
    this.s = {
      host: String(x.host),
      port: x.port ?? 700,
      username: String(x.username),
      password: String(x.password),
      newPassword: x.newPassword,
      caCert: x.caCert,
      clientCert: x.clientCert,
      clientKey: x.clientKey,
      serverName: x.serverName,
      rejectUnauthorized: x.rejectUnauthorized ?? true,
      connectTimeoutMs: x.connectTimeoutMs ?? 10_000,
      commandTimeoutMs: x.commandTimeoutMs ?? 30_000,
      idleTimeoutMs: x.idleTimeoutMs ?? 300_000,
      maxFrameBytes: x.maxFrameBytes ?? 4_194_304,
      nameserverMode: x.nameserverMode ?? 'hostObj',
      contactIdPrefix: x.contactIdPrefix ?? 'hw',
      contactRoles: x.contactRoles ?? ['admin', 'tech'],
      lockStatuses: x.lockStatuses ?? LOCK_DEFAULT,
      checkBatchSize: x.checkBatchSize ?? 10,
      extURIs: x.extURIs ?? [],
    };
    if (!context.store) context.log.warn('The EPP registrar got no store: it remembers operation ids in memory only.');
    this.store = context.store ?? createMemoryStore();
  }

  // ---- reading calls ----

  checkAvailability(req: CheckAvailabilityRequest): Promise<Outcome<{ results: DomainAvailability[] }>> {
    if (!isOperationId(req?.operationId)) return Promise.resolve(noOperationId());
    if (!Array.isArray(req.names) || req.names.length === 0 || req.names.length > MAX_NAMES_PER_CALL) {
      return Promise.resolve(failure(`names must list 1 to ${MAX_NAMES_PER_CALL} domain names.`, false, 'INVALID_ARGUMENT'));
    }
    const names: string[] = [];
    for (const raw of req.names) {
      const parsed = parseDomainName(raw);
      if (!parsed.ok) return Promise.resolve(failure(parsed.message, false, 'INVALID_NAME'));
      names.push(parsed.name);
    }
    return this.run(req.operationId, async (send) => {
      const found = new Map<string, DomainAvailability>();
      const distinct = [...new Set(names)];
      for (let i = 0; i < distinct.length; i += this.s.checkBatchSize) {
        const batch = distinct.slice(i, i + this.s.checkBatchSize);
        const r = await send(cmd.domainCheck(batch), i === 0 ? undefined : `check${i}`);
        if (r.code !== 1000) return failureOfResult(r);
        for (const cd of all(first(r.resData, 'chkData'), 'cd')) {
          const n = first(cd, 'name');
          const name = text(n).toLowerCase();
          const avail = attr(n, 'avail');
          const reason = text(first(cd, 'reason'));
          found.set(name, { name, available: avail === '1' || avail === 'true', ...(reason ? { reason } : {}) });
        }
      }
      const missing = names.find((n) => !found.has(n));
      if (missing) return failure(`The registry's check answer did not mention ${missing}.`, true, 'REGISTRY_ERROR');
      return success({ results: names.map((n) => found.get(n) as DomainAvailability) });
    });
  }

  getInfo(req: DomainCall): Promise<Outcome<DomainInfo>> {
    return this.reading(req, async (name, send) => {
      const info = await this.info(send, name);
      if (info.status !== 'success') return info;
      return success(this.domainInfo(info.result));
    });
  }

  getContacts(req: DomainCall): Promise<Outcome<DomainContacts>> {
    return this.reading(req, async (name, send) => {
      const info = await this.info(send, name);
      if (info.status !== 'success') return info;
      const byId = new Map<string, DomainContact>();
      const wanted = [...(info.result.registrant ? [info.result.registrant] : []), ...info.result.contacts.map((c) => c.id)];
      for (const id of new Set(wanted)) {
        const r = await send(cmd.contactInfo(id), `ci-${byId.size}`);
        if (r.code !== 1000) return failureOfResult(r);
        const contact = parseContactInfo(r.resData);
        if (contact) byId.set(id, contact);
      }
      const registrant = info.result.registrant ? byId.get(info.result.registrant) : undefined;
      if (!registrant) return failure(`The registry shows no registrant for ${name}.`, false, 'REGISTRY_ERROR');
      const out: DomainContacts = { registrant };
      for (const c of info.result.contacts) {
        if ((CONTACT_ROLES as readonly string[]).includes(c.type) && c.type !== 'registrant' && byId.has(c.id)) (out as Record<string, DomainContact>)[c.type] = byId.get(c.id) as DomainContact;
      }
      return success(out);
    });
  }

  sync(req: SyncDomainsRequest): Promise<Outcome<{ domains: SyncedDomain[] }>> {
    if (!isOperationId(req?.operationId)) return Promise.resolve(noOperationId());
    if (!Array.isArray(req.names) || req.names.length > MAX_NAMES_PER_CALL) return Promise.resolve(failure(`names must list at most ${MAX_NAMES_PER_CALL} domain names.`, false, 'INVALID_ARGUMENT'));
    const names: string[] = [];
    for (const raw of req.names) {
      const parsed = parseDomainName(raw);
      if (!parsed.ok) return Promise.resolve(failure(parsed.message, false, 'INVALID_NAME'));
      names.push(parsed.name);
    }
    return this.run(req.operationId, async (send) => {
      const domains: SyncedDomain[] = [];
      for (const [i, name] of names.entries()) {
        const info = await this.info(send, name, i === 0 ? undefined : `sync${i}`);
        if (info.status === 'success') domains.push({ name, found: true, state: this.state(info.result), ...(info.result.expiresAt ? { expiresAt: info.result.expiresAt } : {}) });
        else if (info.status === 'failure' && ['NOT_FOUND', 'NOT_SPONSORED'].includes(info.code ?? '')) domains.push({ name, found: false });
        else return info;
      }
      return success({ domains });
    });
  }

  async testConnection(): Promise<Outcome<{ message: string }>> {
    return this.run(`hello-${crypto.randomUUID().slice(0, 8)}`, async () => {
      const conn = this.connection as EppConnection;
      const { root } = await conn.exchange(cmd.helloDoc());
      const g = readGreeting(root);
      if (!g) return failure('The EPP server did not answer hello with a greeting.', true, 'REGISTRY_ERROR');
      return success({ message: `Logged in to ${g.svID || this.s.host} as ${this.s.username}; the server's time is ${g.svDate || 'unknown'}.` });
    });
  }

  // ---- changing calls ----

  register(req: RegisterDomainRequest): Promise<Outcome<DomainRegistration>> {
    return this.operation('register', req, async (name, send, started) => {
      if (!Number.isInteger(req.years) || req.years < 1 || req.years > 10) return failure('years must be a whole number from 1 to 10.', false, 'INVALID_ARGUMENT');
      const problem = checkDomainContacts(req.contacts);
      if (problem) return failure(problem, false, 'INVALID_ARGUMENT');
      const ns = parseNameservers(req.nameservers);
      if (!ns.ok) return failure(ns.message, false, 'INVALID_ARGUMENT');
      // Held pending by the registry: what became of it, read from the registry, never a second create.
      if (started.pending) return this.createdYet(send, name, 'pending');
      const hosts = await this.ensureHosts(send, ns.hosts);
      if (hosts) return hosts;
      const ids = await this.createContacts(send, req.operationId, req.contacts);
      if (typeof ids !== 'object' || 'status' in ids) return ids as Outcome<never>;
      const r = await send(cmd.domainCreate({ name, years: req.years, nameservers: ns.hosts, nsMode: this.s.nameserverMode, registrant: ids.registrant, contacts: ids.others, authCode: randomAuthCode() }), undefined);
      if (r.code === 1000) {
        const cre = first(r.resData, 'creData');
        const createdAt = isoOf(text(first(cre, 'crDate'))) ?? this.context.now().toISOString();
        const expiresAt = isoOf(text(first(cre, 'exDate'))) ?? addYears(createdAt, req.years);
        return success({ name, createdAt, expiresAt });
      }
      if (r.code === 1001) return heldPending('registration', name);
      if (r.code === 2302 && started.retried) {
        // Our earlier attempt may have created it (or had it held) before its answer was lost: ours if we sponsor it.
        const found = await this.createdYet(send, name, 'verify');
        if (found.status !== 'failure' || found.code !== 'ACTION_REJECTED') return found;
      }
      return failureOfResult(r);
    }) as Promise<Outcome<DomainRegistration>>;
  }

  renew(req: RenewDomainRequest): Promise<Outcome<DomainRegistration>> {
    return this.operation('renew', req, async (name, send, started) => {
      if (!Number.isInteger(req.years) || req.years < 1 || req.years > 10) return failure('years must be a whole number from 1 to 10.', false, 'INVALID_ARGUMENT');
      let curExpDate = started.record.curExpDate ?? (req.currentExpiresAt ? isoOf(req.currentExpiresAt)?.slice(0, 10) : undefined);
      if (req.currentExpiresAt !== undefined && !curExpDate) return failure('currentExpiresAt is not a date.', false, 'INVALID_ARGUMENT');
      if (started.retried || !curExpDate) {
        const info = await this.info(send, name, started.pending ? 'pending' : 'before');
        if (info.status !== 'success') return info;
        const now = info.result.expiresAt;
        if (!now) return failure(`The registry shows no expiry for ${name}.`, false, 'REGISTRY_ERROR');
        const renewed = (): Outcome<DomainRegistration> => success({ name, ...(info.result.createdAt ? { createdAt: info.result.createdAt } : {}), expiresAt: now });
        // Held by the registry (answered 1001, or a lost answer to a renew it held): not renewed again meanwhile.
        if (info.result.statuses.includes('pendingRenew')) return heldPending('renewal', name);
        if (started.retried && curExpDate && now.slice(0, 10) === addYears(`${curExpDate}T00:00:00.000Z`, req.years).slice(0, 10)) return renewed(); // our lost or held renewal did happen
        if (started.pending) {
          // The registry decided the renewal it held: the expiry did not move by the years asked, so it refused it.
          return failure(`The registry did not carry out the renewal of ${name} it held pending: the expiry is ${now.slice(0, 10)}, not ${addYears(`${curExpDate}T00:00:00.000Z`, req.years).slice(0, 10)}.`, false, 'ACTION_REJECTED');
        }
        curExpDate ??= now.slice(0, 10);
      }
      await started.remember({ curExpDate });
      const r = await send(cmd.domainRenew(name, curExpDate, req.years));
      if (r.code === 1000) {
        const expiresAt = isoOf(text(first(first(r.resData, 'renData'), 'exDate'))) ?? addYears(`${curExpDate}T00:00:00.000Z`, req.years);
        return success({ name, expiresAt });
      }
      // The renData of a held renewal names the expiry it would have, not one it has: not taken as done.
      if (r.code === 1001) return heldPending('renewal', name);
      return failureOfResult(r);
    }) as Promise<Outcome<DomainRegistration>>;
  }

  transfer(req: TransferDomainRequest): Promise<Outcome<DomainTransfer>> {
    return this.operation('transfer', req, async (name, send, started) => {
      if (typeof req.authCode !== 'string' || req.authCode === '') return failure('authCode is required for a transfer.', false, 'INVALID_ARGUMENT');
      const years = req.years ?? 1;
      if (!Number.isInteger(years) || years < 0 || years > 10) return failure('years must be a whole number from 0 to 10.', false, 'INVALID_ARGUMENT');
      if (started.pending) return this.queryTransfer(send, name);
      const r = await send(cmd.domainTransfer('request', name, req.authCode, years || undefined));
      if (r.code === 1000) return this.transferOutcome(name, r);
      if (r.code === 1001 || (r.code === 2300 && started.retried)) return pending(`The registry holds the transfer of ${name} for the losing registrar's answer.`, 3600);
      return failureOfResult(r);
    }) as Promise<Outcome<DomainTransfer>>;
  }

  async pollTransfer(req: DomainCall): Promise<Outcome<DomainTransfer>> {
    if (!isOperationId(req?.operationId)) return noOperationId();
    const parsed = parseDomainName(req.name);
    if (!parsed.ok) return failure(parsed.message, false, 'INVALID_NAME');
    const record = await this.store.get<OperationRecord>(`op/${req.operationId}`);
    if (!record || record.action !== 'transfer' || record.name !== parsed.name) return failure(`No transfer of ${parsed.name} was started with operation id ${req.operationId}.`, false, 'NOT_FOUND');
    if (record.outcome) return record.outcome as Outcome<DomainTransfer>;
    const outcome = await this.run(req.operationId, (send) => this.queryTransfer(send, parsed.name));
    if (outcome.status === 'success' || (outcome.status === 'failure' && !outcome.retryable)) {
      await this.store.put(`op/${req.operationId}`, { ...record, outcome } satisfies OperationRecord);
      await this.store.delete(`started/${req.operationId}`);
    }
    return outcome;
  }

  setNameservers(req: SetNameserversRequest): Promise<Outcome<{ nameservers: string[] }>> {
    return this.operation('setNameservers', req, async (name, send, started) => {
      const ns = parseNameservers(req.nameservers);
      if (!ns.ok) return failure(ns.message, false, 'INVALID_ARGUMENT');
      const info = await this.info(send, name, started.pending ? 'pending' : 'before');
      if (info.status !== 'success') return info;
      const add = ns.hosts.filter((h) => !info.result.nameservers.includes(h));
      const rem = info.result.nameservers.filter((h) => !ns.hosts.includes(h));
      const held = heldUpdate(name, info.result, started.record.held === true, add.length + rem.length > 0);
      if (held) return held;
      if (add.length || rem.length) {
        const hosts = await this.ensureHosts(send, add);
        if (hosts) return hosts;
        const r = await send(cmd.domainUpdate(name, this.s.nameserverMode, { nameservers: add }, { nameservers: rem }));
        if (r.code === 1001) return heldChange(name, started);
        if (r.code !== 1000) return failureOfResult(r);
      }
      return success({ nameservers: ns.hosts });
    }) as Promise<Outcome<{ nameservers: string[] }>>;
  }

  setLock(req: SetLockRequest): Promise<Outcome<{ locked: boolean }>> {
    return this.operation('setLock', req, async (name, send, started) => {
      if (typeof req.locked !== 'boolean') return failure('locked must be true or false.', false, 'INVALID_ARGUMENT');
      const info = await this.info(send, name, started.pending ? 'pending' : 'before');
      if (info.status !== 'success') return info;
      const has = new Set(info.result.statuses);
      const add = req.locked ? this.s.lockStatuses.filter((st) => !has.has(st)) : [];
      const rem = req.locked ? [] : this.s.lockStatuses.filter((st) => has.has(st));
      const held = heldUpdate(name, info.result, started.record.held === true, add.length + rem.length > 0);
      if (held) return held;
      if (add.length || rem.length) {
        const r = await send(cmd.domainUpdate(name, this.s.nameserverMode, { statuses: add }, { statuses: rem }));
        if (r.code === 1001) return heldChange(name, started);
        if (r.code !== 1000) return failureOfResult(r);
      }
      return success({ locked: req.locked });
    }) as Promise<Outcome<{ locked: boolean }>>;
  }

  getAuthCode(req: DomainCall): Promise<Outcome<{ authCode: string }>> {
    return this.operation('getAuthCode', req, async (name, send) => {
      const info = await this.info(send, name);
      if (info.status !== 'success') return info;
      if (info.result.authCode) return success({ authCode: info.result.authCode });
      // The registry does not show it (some never do): set a new one, which only we and the registrant then know.
      const authCode = randomAuthCode();
      const r = await send(cmd.domainUpdate(name, this.s.nameserverMode, {}, {}, { authCode }), 'set');
      if (r.code !== 1000) return failureOfResult(r);
      return success({ authCode });
    }) as Promise<Outcome<{ authCode: string }>>;
  }

  setContacts(req: SetContactsRequest): Promise<Outcome<Record<string, never>>> {
    return this.operation('setContacts', req, async (name, send, started) => {
      const problem = checkDomainContacts(req.contacts);
      if (problem) return failure(problem, false, 'INVALID_ARGUMENT');
      const info = await this.info(send, name, started.pending ? 'pending' : 'before');
      if (info.status !== 'success') return info;
      const earlier = heldUpdate(name, info.result, false, false);
      if (earlier) return earlier;
      const ids = await this.createContacts(send, req.operationId, req.contacts);
      if (typeof ids !== 'object' || 'status' in ids) return ids as Outcome<never>;
      const types = new Set(ids.others.map((c) => c.type));
      const rem = info.result.contacts.filter((c) => types.has(c.type as 'admin') && !ids.others.some((o) => o.type === c.type && o.id === c.id));
      const add = ids.others.filter((o) => !info.result.contacts.some((c) => c.type === o.type && c.id === o.id));
      const registrant = info.result.registrant === ids.registrant ? undefined : ids.registrant;
      const held = heldUpdate(name, info.result, started.record.held === true, add.length + rem.length > 0 || registrant !== undefined);
      if (held) return held;
      if (add.length || rem.length || registrant) {
        const r = await send(cmd.domainUpdate(name, this.s.nameserverMode, { contacts: add }, { contacts: rem }, { registrant }));
        if (r.code === 1001) return heldChange(name, started);
        if (r.code !== 1000) return failureOfResult(r);
      }
      return success({});
    }) as Promise<Outcome<Record<string, never>>>;
  }

  delete(req: DomainCall): Promise<Outcome<Record<string, never>>> {
    return this.operation('delete', req, async (name, send, started) => {
      const r = await send(cmd.domainDelete(name));
      // 1001: the registry took the deletion and purges the name later (pendingDelete): it is no longer the
      // customer's, and nothing else is asked of us, so the deletion stands (a saga's rollback is done).
      if (r.code === 1000 || r.code === 1001) return success({});
      if (r.code === 2303 && started.retried) return success({}); // our earlier attempt deleted it
      if (r.code === 2304 && started.retried) {
        // Our earlier attempt's answer was lost and the registry held that deletion: the domain shows pendingDelete.
        const info = await this.info(send, name, 'verify');
        if (info.status === 'success' && info.result.statuses.includes('pendingDelete')) return success({});
      }
      return failureOfResult(r);
    }) as Promise<Outcome<Record<string, never>>>;
  }

  /** Logs out and closes the connection. */
  close(): Promise<void> {
    return this.exclusive(async () => {
      this.clearIdle();
      await this.endSession();
    });
  }

  // ---- machinery ----

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Runs one call's command sequence on the (logged-in) connection; every trouble becomes an outcome. */
  private run<T>(operationId: string, fn: (send: Send) => Promise<Outcome<T>>): Promise<Outcome<T>> {
    return this.exclusive(async () => {
      this.clearIdle();
      try {
        const conn = await this.session();
        const send: Send = async (body, step) => {
          const clTRID = step ? auxTrid(operationId, step) : operationId;
          const { root, raw } = await conn.exchange(cmd.commandDoc(body, clTRID));
          const r = readResponse(root, raw);
          if (!r) throw new ProtocolError('The EPP server answered a command with something that is not a response.');
          if (r.code >= 2500) conn.close(); // 25xx: the server ends the session
          return r;
        };
        return await fn(send);
      } catch (e) {
        if (e instanceof EppConnectionError) {
          this.dropConnection();
          return failure(`${e.message} The operation can be tried again with the same operation id.`, true, e.kind === 'timeout' ? 'TIMEOUT' : 'CONNECTION_ERROR');
        }
        if (e instanceof LoginError) return failure(e.message, e.retryable, e.code);
        if (e instanceof XmlInputError) return failure(e.message, false, 'INVALID_ARGUMENT');
        this.dropConnection();
        return failure(`The EPP registrar failed: ${(e as Error).message}`, true, 'REGISTRY_ERROR');
      } finally {
        this.armIdle();
      }
    });
  }

  private reading<T>(req: DomainCall, fn: (name: string, send: Send) => Promise<Outcome<T>>): Promise<Outcome<T>> {
    if (!isOperationId(req?.operationId)) return Promise.resolve(noOperationId());
    const parsed = parseDomainName(req.name);
    if (!parsed.ok) return Promise.resolve(failure(parsed.message, false, 'INVALID_NAME'));
    return this.run(req.operationId, (send) => fn(parsed.name, send));
  }

  /**
   * A changing call under the operation-id rules: a final outcome already kept answers at once; otherwise the
   * attempt is marked started (so a retry knows an earlier attempt may have acted) and its final outcome kept.
   */
  private operation<T>(
    action: string,
    req: DomainCall,
    fn: (name: string, send: Send, started: { retried: boolean; pending: boolean; record: Started; remember(extra: Partial<Started>): Promise<void> }) => Promise<Outcome<T>>,
  ): Promise<Outcome<T>> {
    if (!isOperationId(req?.operationId)) return Promise.resolve(noOperationId());
    // The same operation id arriving while it is under way waits for the same answer (no second command).
    const running = this.inFlight.get(req.operationId);
    if (running) return running as Promise<Outcome<T>>;
    const p = this.operationOnce(action, req, fn).finally(() => this.inFlight.delete(req.operationId));
    this.inFlight.set(req.operationId, p);
    return p;
  }

  private async operationOnce<T>(
    action: string,
    req: DomainCall,
    fn: (name: string, send: Send, started: { retried: boolean; pending: boolean; record: Started; remember(extra: Partial<Started>): Promise<void> }) => Promise<Outcome<T>>,
  ): Promise<Outcome<T>> {
    const parsed = parseDomainName(req.name);
    if (!parsed.ok) return failure(parsed.message, false, 'INVALID_NAME');
    const name = parsed.name;
    const opKey = `op/${req.operationId}`;
    const startedKey = `started/${req.operationId}`;
    const known = await this.store.get<OperationRecord>(opKey);
    if (known && (known.action !== action || known.name !== name)) return failure(`Operation id ${req.operationId} was already used for ${known.action} of ${known.name}.`, false, 'OPERATION_ID_REUSED');
    if (known?.outcome) return known.outcome as Outcome<T>;
    const before = await this.store.get<Started>(startedKey);
    if (before && (before.action !== action || before.name !== name)) return failure(`Operation id ${req.operationId} was already used for ${before.action} of ${before.name}.`, false, 'OPERATION_ID_REUSED');
    const record: Started = before ?? { action, name };
    if (!before) await this.store.put(startedKey, record);
    const outcome = await this.run(req.operationId, (send) =>
      fn(name, send, {
        retried: before !== undefined,
        pending: known !== undefined,
        record,
        remember: async (extra) => {
          Object.assign(record, extra);
          await this.store.put(startedKey, record);
        },
      }),
    );
    if (outcome.status === 'pending') await this.store.put(opKey, { action, name, outcome: null } satisfies OperationRecord);
    else if (outcome.status === 'success' || !outcome.retryable) {
      await this.store.put(opKey, { action, name, outcome } satisfies OperationRecord);
      await this.store.delete(startedKey);
    }
    return outcome;
  }

  private async info(send: Send, name: string, step?: string): Promise<Outcome<ParsedInfo>> {
    const r = await send(cmd.domainInfo(name), step ?? undefined);
    if (r.code !== 1000) return failureOfResult(r, 'info');
    const info = parseDomainInfo(r.resData);
    if (!info) return failure(`The registry's info answer for ${name} has no domain data.`, true, 'REGISTRY_ERROR');
    if (info.clID && info.clID !== this.s.username) return failure(`${name} is held by another registrar (${info.clID}).`, false, 'NOT_SPONSORED');
    return success(info);
  }

  private state(info: ParsedInfo): DomainState {
    const st = new Set(info.statuses);
    if (st.has('pendingDelete')) return 'deleting';
    if (st.has('pendingTransfer')) return 'transferring';
    if (st.has('pendingCreate')) return 'pending';
    if (st.has('serverHold') || st.has('clientHold')) return 'suspended';
    if (info.expiresAt && new Date(info.expiresAt).getTime() <= this.context.now().getTime()) return 'expired';
    return 'active';
  }

  private domainInfo(info: ParsedInfo): DomainInfo {
    return {
      name: info.name,
      state: this.state(info),
      registryStatuses: info.statuses,
      ...(info.createdAt ? { createdAt: info.createdAt } : {}),
      expiresAt: info.expiresAt ?? '',
      nameservers: info.nameservers,
      locked: info.statuses.includes('clientTransferProhibited') || info.statuses.includes('serverTransferProhibited'),
    };
  }

  /**
   * What became of a create the registry held pending (or whose answer was lost), from <domain:info>: ours and
   * pendingCreate -> pending; ours and created -> success with its dates; not there -> ACTION_REJECTED.
   */
  private async createdYet(send: Send, name: string, step: string): Promise<Outcome<DomainRegistration>> {
    const info = await this.info(send, name, step);
    if (info.status === 'failure' && info.code === 'NOT_FOUND') return failure(`The registry did not create ${name}: it no longer shows the registration it held pending.`, false, 'ACTION_REJECTED');
    if (info.status !== 'success') return info;
    if (info.result.statuses.includes('pendingCreate')) return heldPending('registration', name);
    return success({ name, ...(info.result.createdAt ? { createdAt: info.result.createdAt } : {}), expiresAt: info.result.expiresAt ?? '' });
  }

  private async queryTransfer(send: Send, name: string): Promise<Outcome<DomainTransfer>> {
    const r = await send(cmd.domainTransfer('query', name), 'query');
    if (r.code !== 1000) return failureOfResult(r);
    return this.transferOutcome(name, r);
  }

  private transferOutcome(name: string, r: EppResponse): Outcome<DomainTransfer> {
    const tr = first(r.resData, 'trnData');
    const status = text(first(tr, 'trStatus'));
    const expiresAt = isoOf(text(first(tr, 'exDate')));
    if (status === 'clientApproved' || status === 'serverApproved' || (r.code === 1000 && status === '')) return success({ name, transferStatus: 'approved', ...(expiresAt ? { expiresAt } : {}) });
    if (status === 'pending') return pending(`The transfer of ${name} waits for the losing registrar.`, 3600);
    return failure(`The transfer of ${name} ended ${status}.`, false, 'TRANSFER_REJECTED');
  }

  /** In hostObj mode the registry must know every nameserver as a host object: creates those it does not. */
  private async ensureHosts(send: Send, hosts: string[]): Promise<Outcome<never> | null> {
    if (this.s.nameserverMode !== 'hostObj' || hosts.length === 0) return null;
    const r = await send(cmd.hostCheck(hosts), 'hchk');
    if (r.code !== 1000) return failureOfResult(r);
    const missing = all(first(r.resData, 'chkData'), 'cd')
      .map((cd) => first(cd, 'name'))
      .filter((n) => attr(n, 'avail') === '1' || attr(n, 'avail') === 'true')
      .map((n) => text(n).toLowerCase());
    for (const [i, host] of missing.entries()) {
      const c = await send(cmd.hostCreate(host), `hcre${i}`);
      if (c.code !== 1000 && c.code !== 1001 && c.code !== 2302) return failureOfResult(c);
    }
    return null;
  }

  /**
   * Creates the contact objects a registration (or a change of contacts) needs, with ids derived from the
   * operation id, so a retry finds its own contacts ("object exists") instead of making more.
   */
  private async createContacts(send: Send, operationId: string, contacts: DomainContacts): Promise<{ registrant: string; others: { type: 'admin' | 'tech' | 'billing'; id: string }[] } | Outcome<never>> {
    const idFor = (role: string) => `${this.s.contactIdPrefix}${crypto.createHash('sha256').update(`${operationId}:${role}`).digest('hex')}`.slice(0, 16);
    const made = new Map<ContactRole, string>();
    let n = 0;
    for (const role of CONTACT_ROLES) {
      const contact = (contacts as Record<string, DomainContact | undefined>)[role];
      if (!contact) continue;
      const id = idFor(role);
      const r = await send(cmd.contactCreate(id, contact, randomAuthCode()), `c${n++}`);
      if (r.code !== 1000 && r.code !== 1001 && r.code !== 2302) return failureOfResult(r);
      made.set(role, id);
    }
    const registrant = made.get('registrant') as string;
    const roles = new Set<Exclude<ContactRole, 'registrant'>>([...this.s.contactRoles, ...(['admin', 'tech', 'billing'] as const).filter((r) => made.has(r))]);
    const others = [...roles].map((type) => ({ type, id: made.get(type) ?? registrant }));
    return { registrant, others };
  }

  private async session(): Promise<EppConnection> {
    const conn = this.connection;
    if (conn?.alive) {
      // A connection quiet for a while may have been dropped by the server: hello proves it (wall time: sockets).
      if (Date.now() - conn.lastUsed <= 30_000) return conn;
      try {
        await conn.exchange(cmd.helloDoc());
        return conn;
      } catch {
        this.dropConnection();
      }
    }
    this.dropConnection();
    const { connection, greeting } = await EppConnection.open({
      host: this.s.host,
      port: this.s.port,
      connectTimeoutMs: this.s.connectTimeoutMs,
      commandTimeoutMs: this.s.commandTimeoutMs,
      maxFrameBytes: this.s.maxFrameBytes,
      tls: {
        ...(this.s.caCert ? { ca: this.s.caCert } : {}),
        ...(this.s.clientCert ? { cert: this.s.clientCert } : {}),
        ...(this.s.clientKey ? { key: this.s.clientKey } : {}),
        ...(this.s.serverName ? { servername: this.s.serverName } : {}),
        rejectUnauthorized: this.s.rejectUnauthorized,
        minVersion: 'TLSv1.2',
      },
    });
    const offered = greeting.objURIs;
    const objURIs = [NS.domain, NS.contact, NS.host].filter((u) => offered.length === 0 || offered.includes(u));
    if (!objURIs.includes(NS.domain)) {
      connection.close();
      throw new LoginError(`The EPP server ${greeting.svID || this.s.host} does not offer the domain mapping (${NS.domain}).`, false, 'UNIMPLEMENTED');
    }
    const extURIs = this.s.extURIs.filter((u) => greeting.extURIs.includes(u));
    const { root, raw } = await connection.exchange(cmd.commandDoc(cmd.login(this.s.username, this.s.password, objURIs, extURIs, this.s.newPassword), `login-${crypto.randomUUID().slice(0, 12)}`));
    const r = readResponse(root, raw);
    if (!r || r.code !== 1000) {
      connection.close();
      const said = r ? `${r.code} ${r.message}` : 'no response';
      const retryable = r ? r.code === 2502 || r.code === 2400 || r.code === 2500 : true;
      throw new LoginError(`The EPP server refused the login of ${this.s.username}: ${said}.`, retryable, r && (r.code === 2200 || r.code === 2501 || r.code === 2201) ? 'AUTHENTICATION_ERROR' : 'REGISTRY_ERROR');
    }
    this.connection = connection;
    return connection;
  }

  private dropConnection(): void {
    this.connection?.close();
    this.connection = null;
  }

  private async endSession(): Promise<void> {
    const conn = this.connection;
    if (conn?.alive) {
      try {
        await conn.exchange(cmd.commandDoc(cmd.logout(), `logout-${crypto.randomUUID().slice(0, 12)}`));
      } catch {
        // closing anyway
      }
    }
    this.dropConnection();
  }

  private armIdle(): void {
    this.clearIdle();
    if (!this.connection) return;
    this.idleTimer = setTimeout(() => void this.exclusive(() => this.endSession()), this.s.idleTimeoutMs);
    this.idleTimer.unref();
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }
}

/** EPP 1001 on a create, renew or update: accepted, carried out later (the same operation id asks again). */
function heldPending(what: 'registration' | 'renewal' | 'change', name: string): Outcome<never> {
  return pending(`The registry holds the ${what} of ${name} pending (EPP 1001); asking again with the same operation id reads the outcome from the registry.`, 3600);
}

/**
 * Before a domain update: the registry still holds a change of the domain (pendingUpdate, this operation's or
 * another's) -> pending, nothing sent (a second update would be refused); the update this operation sent was held
 * (`sentHeld`) and the registry now shows the domain without it (`stillToDo`) -> it refused the change:
 * ACTION_REJECTED, not retried. Otherwise null (the update goes ahead, or there is nothing left to change).
 */
function heldUpdate(name: string, info: ParsedInfo, sentHeld: boolean, stillToDo: boolean): Outcome<never> | null {
  if (info.statuses.includes('pendingUpdate')) return heldPending('change', name);
  if (sentHeld && stillToDo) return failure(`The registry did not carry out the change of ${name} it held pending: the domain does not show it.`, false, 'ACTION_REJECTED');
  return null;
}

/** An update answered 1001: remembered as sent and held (heldUpdate), then pending. */
async function heldChange(name: string, started: { remember(extra: Partial<Started>): Promise<void> }): Promise<Outcome<never>> {
  await started.remember({ held: true });
  return heldPending('change', name);
}

function noOperationId(): Outcome<never> {
  return failure('The request needs an operationId of 3-64 characters without spaces.', false, 'INVALID_ARGUMENT');
}

/** The clTRID of a helper command of an operation: the operation id with a short step name, within 64 characters. */
function auxTrid(operationId: string, step: string): string {
  const suffix = `~${step}`;
  return `${operationId.slice(0, 64 - suffix.length)}${suffix}`;
}

export { failureOfResult as eppFailure };

const createEppRegistrar: PluginFactory<EppRegistrar> = (context) => new EppRegistrar(context);
export default createEppRegistrar;
