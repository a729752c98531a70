import fs from 'node:fs';
import path from 'node:path';
import {
  failure,
  pending,
  success,
  type Outcome,
  type PluginContext,
  type PluginFactory,
  type ProvisionResult,
  type ProvisioningGate,
  type ResourceLimit,
  type ServiceRequest,
  type UsageReading,
} from '../../../src/plugins/sdk';

/**
 * The sandbox service gate: a pretend control panel for demos and tests.
 *
 * - `fail.<action>` in the settings makes an action always fail ("retryable" or "permanent").
 * - An order parameter `sandbox_fail` does the same per request, the way a test card number triggers a decline:
 *   "provision" (permanent), "provision:retryable" (every attempt), "provision:retryable:2" (the first 2 attempts
 *   of an operation, then it succeeds), "terminate:not_found" (answers NOT_FOUND, as a panel whose service was
 *   deleted by hand); several are separated by commas.
 * - An order parameter `sandbox_pending` ("provision:40") makes that action answer pending and happen on the n-th
 *   status poll, whatever `pendingFor` says (several separated by commas).
 * - An order parameter `sandbox_usage` ("disk=512,mailboxes=3") is what readUsage reports.
 * - `pendingFor: n` makes changing actions answer pending; the action happens on the n-th status poll.
 * - Operation ids are honoured: a repeated id answers the first outcome and does nothing again.
 * - Every action performed is journalled in order; `sandboxState(gate)` or the `stateFile` shows it.
 */

export const SANDBOX_ACTIONS = ['provision', 'suspend', 'resume', 'terminate', 'changeLimits', 'readUsage'] as const;
export type SandboxAction = (typeof SANDBOX_ACTIONS)[number];
type Failable = SandboxAction | 'testConnection';

export interface SandboxService {
  reference: string;
  subscriptionId: number;
  accountId: number;
  template: string;
  status: 'active' | 'suspended' | 'terminated';
  limits: ResourceLimit[];
  usage: Record<string, number>;
}

export interface SandboxOperation {
  action: SandboxAction;
  /** The final outcome; null while the operation is pending. */
  outcome: Outcome<unknown> | null;
  /** Status polls left before a pending operation finishes. */
  pollsLeft: number;
  request: ServiceRequest;
}

export interface SandboxJournalEntry {
  operationId: string;
  action: SandboxAction;
  reference: string | null;
  at: string;
}

export interface SandboxState {
  nextId: number;
  services: Record<string, SandboxService>;
  operations: Record<string, SandboxOperation>;
  /** Attempts refused with a retryable failure, by operation id (for "<action>:retryable:<n>"). */
  retries: Record<string, number>;
  /** Every action performed, in order (refused attempts and repeated operation ids are not in it). */
  journal: SandboxJournalEntry[];
}

interface SandboxSettings {
  delayMs: number;
  fail: Partial<Record<Failable, 'retryable' | 'permanent'>>;
  pendingFor: number;
  stateFile?: string;
}

type FailureRule = { retryable: boolean; attempts: number | null; notFound?: boolean };

const CHANGING: readonly SandboxAction[] = ['provision', 'suspend', 'resume', 'terminate', 'changeLimits'];

function emptyState(): SandboxState {
  return { nextId: 1, services: {}, operations: {}, retries: {}, journal: [] };
}

/** The state kept in a sandbox stateFile (for a test that restarts the process). */
export function readSandboxStateFile(file: string): SandboxState {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as SandboxState;
}

/** The `name:mode:count` parts of an order parameter that name `action`. */
function parameterParts(parameters: Record<string, string> | undefined, key: 'sandbox_fail' | 'sandbox_pending', action: Failable): { mode?: string; count?: string } | null {
  const spec = parameters?.[key];
  if (typeof spec !== 'string') return null;
  for (const part of spec.split(',')) {
    const [name, mode, count] = part.trim().split(':');
    if (name?.toLowerCase() === action.toLowerCase()) return { mode, count };
  }
  return null;
}

/** `sandbox_fail` rules for one action: "provision", "provision:retryable", "provision:retryable:2", "terminate:not_found". */
function parameterRule(parameters: Record<string, string> | undefined, action: Failable): FailureRule | null {
  const part = parameterParts(parameters, 'sandbox_fail', action);
  if (!part) return null;
  if (part.mode === 'retryable') return { retryable: true, attempts: part.count !== undefined && /^\d+$/.test(part.count) ? Number(part.count) : null };
  return { retryable: false, attempts: null, notFound: part.mode === 'not_found' };
}

/** `sandbox_pending` for one action ("provision:40": pending until the 40th status poll), else the settings' pendingFor. */
function pendingPolls(parameters: Record<string, string> | undefined, action: SandboxAction, pendingFor: number): number {
  const polls = parameterParts(parameters, 'sandbox_pending', action)?.mode;
  return polls !== undefined && /^\d+$/.test(polls) ? Number(polls) : pendingFor;
}

function parameterUsage(parameters: Record<string, string> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of (parameters?.sandbox_usage ?? '').split(',')) {
    const [resource, value] = part.split('=').map((s) => s.trim());
    if (resource && value !== undefined && Number.isFinite(Number(value))) out[resource] = Number(value);
  }
  return out;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class SandboxGate implements ProvisioningGate {
  private readonly state: SandboxState;
  private readonly settings: SandboxSettings;
  /** Calls under way by operation id: a repeat arriving meanwhile waits for the same answer. */
  private readonly inFlight = new Map<string, Promise<Outcome<unknown>>>();

  constructor(private readonly context: PluginContext) {
    const s = context.settings;
    this.settings = {
      delayMs: typeof s.delayMs === 'number' ? s.delayMs : 0,
      fail: (s.fail as SandboxSettings['fail'] | undefined) ?? {},
      pendingFor: typeof s.pendingFor === 'number' ? s.pendingFor : 0,
      stateFile: typeof s.stateFile === 'string' ? s.stateFile : undefined,
    };
    this.state = { ...emptyState(), ...(this.settings.stateFile && fs.existsSync(this.settings.stateFile) ? readSandboxStateFile(this.settings.stateFile) : {}) };
  }

  provision(req: ServiceRequest): Promise<Outcome<ProvisionResult>> {
    return this.call('provision', req) as Promise<Outcome<ProvisionResult>>;
  }
  suspend(req: ServiceRequest): Promise<Outcome<Record<string, never>>> {
    return this.call('suspend', req) as Promise<Outcome<Record<string, never>>>;
  }
  resume(req: ServiceRequest): Promise<Outcome<Record<string, never>>> {
    return this.call('resume', req) as Promise<Outcome<Record<string, never>>>;
  }
  terminate(req: ServiceRequest): Promise<Outcome<Record<string, never>>> {
    return this.call('terminate', req) as Promise<Outcome<Record<string, never>>>;
  }
  changeLimits(req: ServiceRequest): Promise<Outcome<Record<string, never>>> {
    return this.call('changeLimits', req) as Promise<Outcome<Record<string, never>>>;
  }
  readUsage(req: ServiceRequest): Promise<Outcome<{ usage: UsageReading[] }>> {
    return this.call('readUsage', req) as Promise<Outcome<{ usage: UsageReading[] }>>;
  }

  async status(operationId: string): Promise<Outcome<Record<string, unknown>>> {
    const op = this.state.operations[operationId];
    if (!op) return failure(`The sandbox knows no operation ${operationId}.`, false, 'NOT_FOUND');
    return this.serialised(operationId, async () => this.poll(operationId, op)) as Promise<Outcome<Record<string, unknown>>>;
  }

  async testConnection(): Promise<Outcome<{ message: string }>> {
    await this.delay();
    const mode = this.settings.fail.testConnection;
    if (mode) return failure(`The sandbox '${this.context.instanceName}' is set to fail testConnection.`, mode === 'retryable', 'SANDBOX_FAILURE');
    const active = Object.values(this.state.services).filter((s) => s.status !== 'terminated').length;
    return success({ message: `The sandbox '${this.context.instanceName}' answers; it keeps ${active} service(s).` });
  }

  /** Sets the usage readUsage reports for a service's resource (tests and demos). */
  setUsage(reference: string, resource: string, usage: number): void {
    const service = this.state.services[reference];
    if (!service) throw new Error(`The sandbox knows no service ${reference}.`);
    service.usage[resource] = usage;
    this.save();
  }

  /** A copy of everything the sandbox keeps. */
  snapshot(): SandboxState {
    return structuredClone(this.state);
  }

  // ---- the machinery ----

  private call(action: SandboxAction, req: ServiceRequest): Promise<Outcome<unknown>> {
    if (!req || typeof req.operationId !== 'string' || req.operationId === '') {
      return Promise.resolve(failure('The request carries no operationId.', false, 'BAD_REQUEST'));
    }
    return this.serialised(req.operationId, () => this.attempt(action, req));
  }

  private serialised(operationId: string, fn: () => Promise<Outcome<unknown>>): Promise<Outcome<unknown>> {
    const running = this.inFlight.get(operationId);
    if (running) return running;
    const p = fn().finally(() => this.inFlight.delete(operationId));
    this.inFlight.set(operationId, p);
    return p;
  }

  private async attempt(action: SandboxAction, req: ServiceRequest): Promise<Outcome<unknown>> {
    const known = this.state.operations[req.operationId];
    if (known && known.action !== action) {
      return failure(`Operation id ${req.operationId} was already used for ${known.action}.`, false, 'OPERATION_ID_REUSED');
    }
    if (known?.outcome) return known.outcome;
    // Only status polls move a pending operation along; a repeated call just hears that it is still under way.
    if (known) return pending(`The sandbox is still working on ${action}.`, 1);

    await this.delay();
    const op: SandboxOperation = { action, outcome: null, pollsLeft: 0, request: structuredClone(req) };
    const rule = parameterRule(req.parameters, action) ?? this.settingsRule(action);
    if (rule) {
      const attempts = (this.state.retries[req.operationId] ?? 0) + 1;
      if (rule.notFound) return this.finish(req.operationId, op, failure(`The sandbox knows no service ${req.reference ?? '(no reference)'} (it was told to answer so).`, false, 'NOT_FOUND'));
      if (!rule.retryable) return this.finish(req.operationId, op, failure(`The sandbox was told to refuse ${action}.`, false, 'SANDBOX_FAILURE'));
      if (rule.attempts === null || attempts <= rule.attempts) {
        // A retryable failure did nothing, so the operation id stays free for the next attempt.
        this.state.retries[req.operationId] = attempts;
        this.save();
        return failure(`The sandbox was told to fail ${action} for now (attempt ${attempts}); try again.`, true, 'SANDBOX_FAILURE');
      }
    }
    const polls = pendingPolls(req.parameters, action, this.settings.pendingFor);
    if (CHANGING.includes(action) && polls > 0) {
      const refusal = this.refusal(action, req);
      if (refusal) return this.finish(req.operationId, op, refusal);
      op.pollsLeft = polls;
      this.state.operations[req.operationId] = op;
      this.save();
      return pending(`The sandbox is working on ${action}.`, 1);
    }
    return this.finish(req.operationId, op, this.perform(action, req));
  }

  private settingsRule(action: Failable): FailureRule | null {
    const mode = this.settings.fail[action];
    return mode ? { retryable: mode === 'retryable', attempts: null } : null;
  }

  private poll(operationId: string, op: SandboxOperation): Outcome<unknown> {
    if (op.outcome) return op.outcome;
    op.pollsLeft -= 1;
    if (op.pollsLeft > 0) {
      this.save();
      return pending(`The sandbox is still working on ${op.action}.`, 1);
    }
    return this.finish(operationId, op, this.perform(op.action, op.request));
  }

  private finish(operationId: string, op: SandboxOperation, outcome: Outcome<unknown>): Outcome<unknown> {
    op.outcome = outcome;
    this.state.operations[operationId] = op;
    this.save();
    return outcome;
  }

  /** Why a request for an existing service cannot be carried out, if it cannot. */
  private refusal(action: SandboxAction, req: ServiceRequest): Outcome<unknown> | null {
    if (action === 'provision') return null;
    if (!req.reference) return failure(`${action} needs the reference the gate answered at provisioning.`, false, 'NO_REFERENCE');
    const service = this.state.services[req.reference];
    if (!service) return failure(`The sandbox knows no service ${req.reference}.`, false, 'NOT_FOUND');
    if (service.status === 'terminated' && action !== 'terminate' && action !== 'readUsage') {
      return failure(`Service ${req.reference} was terminated.`, false, 'TERMINATED');
    }
    return null;
  }

  private perform(action: SandboxAction, req: ServiceRequest): Outcome<unknown> {
    const refusal = this.refusal(action, req);
    if (refusal) return refusal;
    const at = this.context.now().toISOString();
    let outcome: Outcome<unknown>;
    let reference = req.reference ?? null;
    if (action === 'provision') {
      reference = `sbx-${this.state.nextId++}`;
      this.state.services[reference] = {
        reference,
        subscriptionId: req.subscriptionId,
        accountId: req.accountId,
        template: req.template,
        status: 'active',
        limits: structuredClone(req.limits ?? []),
        usage: {},
      };
      const login = req.parameters?.login ?? `sub${req.subscriptionId}`;
      outcome = success({ reference, details: { login, panelUrl: `https://sandbox.hostwright.invalid/${reference}` } });
    } else {
      const service = this.state.services[reference as string];
      if (action === 'suspend') service.status = 'suspended';
      else if (action === 'resume') service.status = 'active';
      else if (action === 'terminate') service.status = 'terminated';
      else if (action === 'changeLimits') service.limits = structuredClone(req.limits ?? []);
      if (action === 'readUsage') {
        const fromOrder = parameterUsage(req.parameters);
        const limits = req.limits?.length ? req.limits : service.limits;
        outcome = success({ usage: limits.map((l) => ({ resource: l.resource, usage: fromOrder[l.resource] ?? service.usage[l.resource] ?? 0 })) });
      } else {
        outcome = success({});
      }
    }
    this.state.journal.push({ operationId: req.operationId, action, reference, at });
    this.context.log.debug(`sandbox ${action}`, { operationId: req.operationId, reference });
    return outcome;
  }

  private async delay(): Promise<void> {
    if (this.settings.delayMs > 0) await sleep(this.settings.delayMs);
  }

  /** Written to a temporary file then renamed, so a crash mid-write leaves the previous state whole. */
  private save(): void {
    const file = this.settings.stateFile;
    if (!file) return;
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.state, null, 2));
    fs.renameSync(tmp, file);
  }
}

/** What a sandbox gate keeps (services, operations and the journal of actions), for tests. */
export function sandboxState(gate: ProvisioningGate): SandboxState {
  if (!(gate instanceof SandboxGate)) throw new TypeError('Not a sandbox gate.');
  return gate.snapshot();
}

const createSandbox: PluginFactory<SandboxGate> = (context) => new SandboxGate(context);
export default createSandbox;
