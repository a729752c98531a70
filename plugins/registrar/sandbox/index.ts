import {
  checkDomainContacts,
  createMemoryStore,
  failure,
  isOperationId,
  MAX_NAMES_PER_CALL,
  parseDomainName,
  parseNameservers,
  pending,
  success,
  type CheckAvailabilityRequest,
  type DomainAvailability,
  type DomainCall,
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

/**
 * The sandbox registrar: a pretend registry kept in the instance's key-value store (the core's database), so
 * registrations survive restarts and are seen by every server process.
 *
 * - Names containing `takenWord` ("taken") are registered elsewhere: unavailable, registering them fails with
 *   OBJECT_EXISTS, and they can be transferred in with `transferAuthCode`.
 * - `failures` maps a domain name to forced failures for its actions, e.g. {"fail.example": "register"} or
 *   {"flaky.example": "register:retryable:2, renew"}; "*" stands for every action. A changing action may also be
 *   made slow: "register:pending:3" answers pending to the first 3 calls of an operation id (the registry accepted
 *   it), then performs it on the next call with that id; "register:pending" stays pending.
 * - Transfers answer pending and complete on the `transferPolls`-th pollTransfer.
 * - delete works only within `graceDays` of the registration (so a saga can roll a registration back).
 * - Operation ids are honoured: a repeated id answers the first outcome and does nothing again.
 *
 * Calls of one instance object are serialised; two server processes acting on the same name at the same moment
 * are not (this is a sandbox).
 */

export const SANDBOX_REGISTRAR_ACTIONS = ['check', 'register', 'transfer', 'renew', 'info', 'setNameservers', 'getContacts', 'setContacts', 'setLock', 'getAuthCode', 'sync', 'delete'] as const;
export type SandboxRegistrarAction = (typeof SANDBOX_REGISTRAR_ACTIONS)[number];

export interface SandboxDomain {
  name: string;
  createdAt: string;
  expiresAt: string;
  nameservers: string[];
  contacts: DomainContacts;
  locked: boolean;
  authCode: string;
}

interface OperationRecord {
  action: SandboxRegistrarAction;
  name: string;
  /** null while pending (transfers). */
  outcome: Outcome<unknown> | null;
  pollsLeft?: number;
  years?: number;
}

export interface SandboxRegistrarJournalEntry {
  operationId: string;
  action: SandboxRegistrarAction;
  name: string;
  at: string;
}

interface Settings {
  takenWord: string;
  transferAuthCode: string;
  transferPolls: number;
  graceDays: number;
  failures: Record<string, string>;
}

const DAY_MS = 86_400_000;
const MAX_YEARS = 10;

export function addYears(iso: string, years: number): string {
  const d = new Date(iso);
  const month = d.getUTCMonth();
  d.setUTCFullYear(d.getUTCFullYear() + years);
  if (d.getUTCMonth() !== month) d.setUTCDate(0); // 29 February + 1 year = 28 February
  return d.toISOString();
}

type FailureRule = { mode: 'refuse' | 'retryable' | 'pending'; attempts: number | null };

export class SandboxRegistrar implements Registrar {
  private readonly settings: Settings;
  private readonly store: PluginStore;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly context: PluginContext) {
    const s = context.settings;
    this.settings = {
      takenWord: typeof s.takenWord === 'string' ? s.takenWord.toLowerCase() : 'taken',
      transferAuthCode: typeof s.transferAuthCode === 'string' ? s.transferAuthCode : 'sandbox-auth',
      transferPolls: typeof s.transferPolls === 'number' ? s.transferPolls : 2,
      graceDays: typeof s.graceDays === 'number' ? s.graceDays : 5,
      failures: (s.failures as Record<string, string> | undefined) ?? {},
    };
    if (!context.store) context.log.warn('The sandbox registrar got no store: it keeps its registry in memory only.');
    this.store = context.store ?? createMemoryStore();
  }

  // ---- the Registrar interface ----

  checkAvailability(req: CheckAvailabilityRequest): Promise<Outcome<{ results: DomainAvailability[] }>> {
    return this.guard(req, async () => {
      if (!Array.isArray(req.names) || req.names.length === 0) return failure('names must list at least one domain name.', false, 'INVALID_ARGUMENT');
      if (req.names.length > MAX_NAMES_PER_CALL) return failure(`At most ${MAX_NAMES_PER_CALL} names per check.`, false, 'INVALID_ARGUMENT');
      const results: DomainAvailability[] = [];
      for (const raw of req.names) {
        const parsed = parseDomainName(raw);
        if (!parsed.ok) return failure(parsed.message, false, 'INVALID_NAME');
        const forced = await this.forced('check', parsed.name, req.operationId);
        if (forced) return forced;
        if (this.isTaken(parsed.name) || (await this.domain(parsed.name))) results.push({ name: parsed.name, available: false, reason: 'In use' });
        else results.push({ name: parsed.name, available: true });
      }
      return success({ results });
    }) as Promise<Outcome<{ results: DomainAvailability[] }>>;
  }

  register(req: RegisterDomainRequest): Promise<Outcome<DomainRegistration>> {
    return this.operation('register', req, async (name) => {
      if (!Number.isInteger(req.years) || req.years < 1 || req.years > MAX_YEARS) return failure(`years must be a whole number from 1 to ${MAX_YEARS}.`, false, 'INVALID_ARGUMENT');
      const problem = checkDomainContacts(req.contacts);
      if (problem) return failure(problem, false, 'INVALID_ARGUMENT');
      const ns = parseNameservers(req.nameservers);
      if (!ns.ok) return failure(ns.message, false, 'INVALID_ARGUMENT');
      if (this.isTaken(name) || (await this.domain(name))) return failure(`${name} is already registered.`, false, 'OBJECT_EXISTS');
      const now = this.context.now().toISOString();
      const domain: SandboxDomain = {
        name,
        createdAt: now,
        expiresAt: addYears(now, req.years),
        nameservers: ns.hosts,
        contacts: structuredClone(req.contacts),
        locked: false,
        authCode: `sbx-${req.operationId.replace(/[^A-Za-z0-9]/g, '').slice(-12)}-${name.length}`,
      };
      await this.store.put(`domain/${name}`, domain);
      await this.journal(req.operationId, 'register', name);
      return success({ name, createdAt: domain.createdAt, expiresAt: domain.expiresAt });
    }) as Promise<Outcome<DomainRegistration>>;
  }

  transfer(req: TransferDomainRequest): Promise<Outcome<DomainTransfer>> {
    return this.operation('transfer', req, async (name, record) => {
      if (typeof req.authCode !== 'string' || req.authCode === '') return failure('authCode is required for a transfer.', false, 'INVALID_ARGUMENT');
      const years = req.years ?? 1;
      if (!Number.isInteger(years) || years < 0 || years > MAX_YEARS) return failure(`years must be a whole number from 0 to ${MAX_YEARS}.`, false, 'INVALID_ARGUMENT');
      if (await this.domain(name)) return failure(`${name} is already held by this registrar.`, false, 'OBJECT_EXISTS');
      if (!this.isTaken(name)) return failure(`${name} is not registered, so it cannot be transferred; register it instead.`, false, 'NOT_FOUND');
      if (req.authCode !== this.settings.transferAuthCode) return failure(`The auth code for ${name} is wrong.`, false, 'AUTHORIZATION_ERROR');
      record.years = years;
      if (this.settings.transferPolls === 0) return this.completeTransfer(req.operationId, name, years);
      record.pollsLeft = this.settings.transferPolls;
      return pending(`The transfer of ${name} waits for the losing registrar.`, 60);
    }) as Promise<Outcome<DomainTransfer>>;
  }

  pollTransfer(req: DomainCall): Promise<Outcome<DomainTransfer>> {
    return this.guard(req, async () => {
      const parsed = parseDomainName(req.name);
      if (!parsed.ok) return failure(parsed.message, false, 'INVALID_NAME');
      const record = await this.store.get<OperationRecord>(`op/${req.operationId}`);
      if (!record || record.action !== 'transfer' || record.name !== parsed.name) return failure(`No transfer of ${parsed.name} was started with operation id ${req.operationId}.`, false, 'NOT_FOUND');
      if (record.outcome) return record.outcome;
      record.pollsLeft = (record.pollsLeft ?? 1) - 1;
      if (record.pollsLeft > 0) {
        await this.store.put(`op/${req.operationId}`, record);
        return pending(`The transfer of ${parsed.name} still waits for the losing registrar.`, 60);
      }
      record.outcome = await this.completeTransfer(req.operationId, parsed.name, record.years ?? 1);
      await this.store.put(`op/${req.operationId}`, record);
      return record.outcome;
    }) as Promise<Outcome<DomainTransfer>>;
  }

  renew(req: RenewDomainRequest): Promise<Outcome<DomainRegistration>> {
    return this.operation('renew', req, async (name) => {
      if (!Number.isInteger(req.years) || req.years < 1 || req.years > MAX_YEARS) return failure(`years must be a whole number from 1 to ${MAX_YEARS}.`, false, 'INVALID_ARGUMENT');
      const domain = await this.domain(name);
      if (!domain) return this.notHeld(name);
      if (req.currentExpiresAt !== undefined && String(req.currentExpiresAt).slice(0, 10) !== domain.expiresAt.slice(0, 10)) {
        return failure(`${name} expires on ${domain.expiresAt.slice(0, 10)}, not ${String(req.currentExpiresAt).slice(0, 10)}: it may have been renewed already.`, false, 'POLICY_ERROR');
      }
      const expiresAt = addYears(domain.expiresAt, req.years);
      if (new Date(expiresAt).getTime() > new Date(addYears(this.context.now().toISOString(), MAX_YEARS)).getTime()) {
        return failure(`${name} cannot be registered for more than ${MAX_YEARS} years ahead.`, false, 'POLICY_ERROR');
      }
      domain.expiresAt = expiresAt;
      await this.store.put(`domain/${name}`, domain);
      await this.journal(req.operationId, 'renew', name);
      return success({ name, createdAt: domain.createdAt, expiresAt });
    }) as Promise<Outcome<DomainRegistration>>;
  }

  getInfo(req: DomainCall): Promise<Outcome<DomainInfo>> {
    return this.read('info', req, async (name) => {
      const domain = await this.domain(name);
      if (!domain) return this.notHeld(name);
      return success(this.info(domain));
    }) as Promise<Outcome<DomainInfo>>;
  }

  setNameservers(req: SetNameserversRequest): Promise<Outcome<{ nameservers: string[] }>> {
    return this.operation('setNameservers', req, async (name) => {
      const ns = parseNameservers(req.nameservers);
      if (!ns.ok) return failure(ns.message, false, 'INVALID_ARGUMENT');
      const domain = await this.domain(name);
      if (!domain) return this.notHeld(name);
      domain.nameservers = ns.hosts;
      await this.store.put(`domain/${name}`, domain);
      await this.journal(req.operationId, 'setNameservers', name);
      return success({ nameservers: ns.hosts });
    }) as Promise<Outcome<{ nameservers: string[] }>>;
  }

  getContacts(req: DomainCall): Promise<Outcome<DomainContacts>> {
    return this.read('getContacts', req, async (name) => {
      const domain = await this.domain(name);
      if (!domain) return this.notHeld(name);
      return success(domain.contacts);
    }) as Promise<Outcome<DomainContacts>>;
  }

  setContacts(req: SetContactsRequest): Promise<Outcome<Record<string, never>>> {
    return this.operation('setContacts', req, async (name) => {
      const problem = checkDomainContacts(req.contacts);
      if (problem) return failure(problem, false, 'INVALID_ARGUMENT');
      const domain = await this.domain(name);
      if (!domain) return this.notHeld(name);
      domain.contacts = structuredClone(req.contacts);
      await this.store.put(`domain/${name}`, domain);
      await this.journal(req.operationId, 'setContacts', name);
      return success({});
    }) as Promise<Outcome<Record<string, never>>>;
  }

  setLock(req: SetLockRequest): Promise<Outcome<{ locked: boolean }>> {
    return this.operation('setLock', req, async (name) => {
      if (typeof req.locked !== 'boolean') return failure('locked must be true or false.', false, 'INVALID_ARGUMENT');
      const domain = await this.domain(name);
      if (!domain) return this.notHeld(name);
      domain.locked = req.locked;
      await this.store.put(`domain/${name}`, domain);
      await this.journal(req.operationId, 'setLock', name);
      return success({ locked: req.locked });
    }) as Promise<Outcome<{ locked: boolean }>>;
  }

  getAuthCode(req: DomainCall): Promise<Outcome<{ authCode: string }>> {
    return this.read('getAuthCode', req, async (name) => {
      const domain = await this.domain(name);
      if (!domain) return this.notHeld(name);
      return success({ authCode: domain.authCode });
    }) as Promise<Outcome<{ authCode: string }>>;
  }

  sync(req: SyncDomainsRequest): Promise<Outcome<{ domains: SyncedDomain[] }>> {
    return this.guard(req, async () => {
      if (!Array.isArray(req.names) || req.names.length > MAX_NAMES_PER_CALL) return failure(`names must list at most ${MAX_NAMES_PER_CALL} domain names.`, false, 'INVALID_ARGUMENT');
      const domains: SyncedDomain[] = [];
      for (const raw of req.names) {
        const parsed = parseDomainName(raw);
        if (!parsed.ok) return failure(parsed.message, false, 'INVALID_NAME');
        const forced = await this.forced('sync', parsed.name, req.operationId);
        if (forced) return forced;
        const domain = await this.domain(parsed.name);
        if (!domain) domains.push({ name: parsed.name, found: false });
        else domains.push({ name: parsed.name, found: true, state: this.state(domain), expiresAt: domain.expiresAt });
      }
      return success({ domains });
    }) as Promise<Outcome<{ domains: SyncedDomain[] }>>;
  }

  delete(req: DomainCall): Promise<Outcome<Record<string, never>>> {
    return this.operation('delete', req, async (name) => {
      const domain = await this.domain(name);
      if (!domain) return this.notHeld(name);
      if (domain.locked) return failure(`${name} is locked; unlock it before deleting it.`, false, 'STATUS_PROHIBITS');
      const age = this.context.now().getTime() - new Date(domain.createdAt).getTime();
      if (age > this.settings.graceDays * DAY_MS) {
        return failure(`${name} was registered more than ${this.settings.graceDays} days ago: its grace period is over and it can no longer be deleted for a refund.`, false, 'GRACE_PERIOD_OVER');
      }
      await this.store.delete(`domain/${name}`);
      await this.journal(req.operationId, 'delete', name);
      return success({});
    }) as Promise<Outcome<Record<string, never>>>;
  }

  async testConnection(): Promise<Outcome<{ message: string }>> {
    const held = (await this.store.list('domain/')).length;
    return success({ message: `The sandbox registrar '${this.context.instanceName}' answers; it holds ${held} domain(s).` });
  }

  // ---- for tests and demos ----

  /** Every change performed, in order (refused attempts and repeated operation ids are not in it). */
  async journalEntries(): Promise<SandboxRegistrarJournalEntry[]> {
    return (await this.store.list<SandboxRegistrarJournalEntry>('journal/')).map((e) => e.value);
  }

  /** The domains the sandbox holds. */
  async domains(): Promise<SandboxDomain[]> {
    return (await this.store.list<SandboxDomain>('domain/')).map((e) => e.value);
  }

  // ---- the machinery ----

  /** Serialises every call of this object, and answers a malformed operation id with a failure. */
  private guard(req: { operationId?: unknown } | undefined, fn: () => Promise<Outcome<unknown>>): Promise<Outcome<unknown>> {
    if (!req || !isOperationId(req.operationId)) return Promise.resolve(failure('The request needs an operationId of 3-64 characters without spaces.', false, 'INVALID_ARGUMENT'));
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run.catch((e: unknown) => failure(`The sandbox registrar failed: ${(e as Error).message}`, true, 'REGISTRY_ERROR'));
  }

  /** A reading call: the name checked, forced failures applied; nothing recorded. */
  private read(action: SandboxRegistrarAction, req: DomainCall, fn: (name: string) => Promise<Outcome<unknown>>): Promise<Outcome<unknown>> {
    return this.guard(req, async () => {
      const parsed = parseDomainName(req.name);
      if (!parsed.ok) return failure(parsed.message, false, 'INVALID_NAME');
      return (await this.forced(action, parsed.name, req.operationId)) ?? fn(parsed.name);
    });
  }

  /**
   * A changing call: a repeated operation id answers its first outcome (or pending) without acting; a retryable
   * failure leaves the id free for the next attempt; anything else is recorded under the id.
   */
  private operation(action: SandboxRegistrarAction, req: DomainCall, fn: (name: string, record: OperationRecord) => Promise<Outcome<unknown>>): Promise<Outcome<unknown>> {
    return this.guard(req, async () => {
      const parsed = parseDomainName(req.name);
      if (!parsed.ok) return failure(parsed.message, false, 'INVALID_NAME');
      const name = parsed.name;
      const key = `op/${req.operationId}`;
      const known = await this.store.get<OperationRecord>(key);
      if (known && (known.action !== action || known.name !== name)) {
        return failure(`Operation id ${req.operationId} was already used for ${known.action} of ${known.name}.`, false, 'OPERATION_ID_REUSED');
      }
      if (known) return known.outcome ?? pending(`The ${action} of ${name} is still under way.`, 60);
      const slow = await this.slow(action, name, req.operationId);
      if (slow) return slow;
      const forced = await this.forced(action, name, req.operationId);
      if (forced) {
        if (!forced.retryable) await this.store.put(key, { action, name, outcome: forced } satisfies OperationRecord);
        return forced;
      }
      const record: OperationRecord = { action, name, outcome: null };
      const outcome = await fn(name, record);
      if (outcome.status === 'failure' && outcome.retryable) return outcome;
      record.outcome = outcome.status === 'pending' ? null : outcome;
      await this.store.put(key, record);
      return outcome;
    });
  }

  private async completeTransfer(operationId: string, name: string, years: number): Promise<Outcome<DomainTransfer>> {
    const now = this.context.now().toISOString();
    const domain: SandboxDomain = {
      name,
      createdAt: now,
      expiresAt: addYears(now, Math.max(1, years)),
      nameservers: [],
      contacts: { registrant: { name: 'Transferred Registrant', email: 'registrant@example.invalid', phone: '+1.5555550100', street: ['1 Transfer Way'], city: 'Sandbox', countryCode: 'US' } },
      locked: false,
      authCode: `sbx-${operationId.replace(/[^A-Za-z0-9]/g, '').slice(-12)}-${name.length}`,
    };
    await this.store.put(`domain/${name}`, domain);
    await this.journal(operationId, 'transfer', name);
    return success({ name, transferStatus: 'approved', expiresAt: domain.expiresAt });
  }

  private isTaken(name: string): boolean {
    return name.includes(this.settings.takenWord);
  }

  private domain(name: string): Promise<SandboxDomain | undefined> {
    return this.store.get<SandboxDomain>(`domain/${name}`);
  }

  private notHeld(name: string): Outcome<never> {
    return this.isTaken(name) ? failure(`${name} is held by another registrar.`, false, 'NOT_SPONSORED') : failure(`${name} is not registered with this registrar.`, false, 'NOT_FOUND');
  }

  private state(domain: SandboxDomain): DomainState {
    return new Date(domain.expiresAt).getTime() <= this.context.now().getTime() ? 'expired' : 'active';
  }

  private info(domain: SandboxDomain): DomainInfo {
    const registryStatuses = domain.locked ? ['clientTransferProhibited', 'clientDeleteProhibited'] : ['ok'];
    return { name: domain.name, state: this.state(domain), registryStatuses, createdAt: domain.createdAt, expiresAt: domain.expiresAt, nameservers: domain.nameservers, locked: domain.locked };
  }

  /** The forced failure the settings give this action on this name, if any. */
  private async forced(action: SandboxRegistrarAction, name: string, operationId: string): Promise<(Outcome<never> & { status: 'failure' }) | null> {
    const rule = this.rule(action, name);
    if (!rule || rule.mode === 'pending') return null;
    if (rule.mode === 'refuse') return failure(`The sandbox registrar was told to refuse ${action} of ${name}.`, false, 'SANDBOX_FAILURE') as Outcome<never> & { status: 'failure' };
    const attempts = await this.countCall(`retry/${operationId}`, rule);
    if (attempts === null) return null;
    return failure(`The sandbox registrar was told to fail ${action} of ${name} for now (attempt ${attempts}); try again.`, true, 'SANDBOX_FAILURE') as Outcome<never> & { status: 'failure' };
  }

  /** Pending for the first calls of the operation id when the settings make this action slow on this name. */
  private async slow(action: SandboxRegistrarAction, name: string, operationId: string): Promise<Outcome<never> | null> {
    const rule = this.rule(action, name);
    if (rule?.mode !== 'pending') return null;
    const calls = await this.countCall(`slow/${operationId}`, rule);
    if (calls === null) return null;
    return pending(`The registry accepted the ${action} of ${name} and has not finished it yet (call ${calls}).`, 60);
  }

  /** Counts one more call of an operation under `key`; null once the rule's count of calls has been used up. */
  private async countCall(key: string, rule: FailureRule): Promise<number | null> {
    const calls = ((await this.store.get<number>(key)) ?? 0) + 1;
    if (rule.attempts !== null && calls > rule.attempts) return null;
    await this.store.put(key, calls);
    return calls;
  }

  private rule(action: SandboxRegistrarAction, name: string): FailureRule | null {
    const spec = this.settings.failures[name];
    if (typeof spec !== 'string') return null;
    for (const part of spec.split(',')) {
      const [what, mode, count] = part.trim().split(':');
      if (what !== '*' && what?.toLowerCase() !== action.toLowerCase()) continue;
      if (mode === 'retryable' || mode === 'pending') return { mode, attempts: count !== undefined && /^\d+$/.test(count) ? Number(count) : null };
      return { mode: 'refuse', attempts: null };
    }
    return null;
  }

  private async journal(operationId: string, action: SandboxRegistrarAction, name: string): Promise<void> {
    const seq = ((await this.store.get<number>('seq')) ?? 0) + 1;
    await this.store.put('seq', seq);
    await this.store.put(`journal/${String(seq).padStart(10, '0')}`, { operationId, action, name, at: this.context.now().toISOString() } satisfies SandboxRegistrarJournalEntry);
  }
}

/** The sandbox registrar behind a Registrar object (tests). */
export function asSandboxRegistrar(registrar: Registrar): SandboxRegistrar {
  if (!(registrar instanceof SandboxRegistrar)) throw new TypeError('Not a sandbox registrar.');
  return registrar;
}

const createSandboxRegistrar: PluginFactory<SandboxRegistrar> = (context) => new SandboxRegistrar(context);
export default createSandboxRegistrar;
