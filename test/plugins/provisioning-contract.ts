import crypto from 'node:crypto';
import { expect } from 'chai';
import type { Outcome, ProvisioningGate, ServiceRequest } from '../../src/plugins/sdk';

/**
 * The contract every provisioning gate passes: a mocha suite a plugin author runs against their own gate.
 *
 *   import { provisioningGateContract } from '<hostwright>/test/plugins/provisioning-contract';
 *   provisioningGateContract('my panel', async () => ({ gate: createMyGate(context), cleanup: async () => {} }));
 *
 * `make` is called before every test and `cleanup` after it. When the subject can say which actions its remote
 * system really performed (`performed`), the suite also checks that a repeated operation id acted only once.
 */
export interface ContractSubject {
  gate: ProvisioningGate;
  cleanup(): Promise<void>;
  /** The actions the remote system performed, in order (optional). */
  performed?(): Promise<{ action: string; operationId: string }[]>;
}

export interface ContractOptions {
  /** How many status polls a pending answer may take before the suite gives up (default 20). */
  maxPolls?: number;
}

const opId = () => `contract-${crypto.randomUUID()}`;

function request(extra: Partial<ServiceRequest> = {}): ServiceRequest {
  return {
    operationId: opId(),
    subscriptionId: 4242,
    accountId: 1001,
    template: 'Contract Hosting',
    parameters: { domain: 'contract.example', login: 'contract' },
    limits: [
      { resource: 'disk', limit: 10 },
      { resource: 'mailboxes', limit: null },
    ],
    ...extra,
  };
}

/** A well-formed outcome: one of the three shapes, and plain JSON the core can store and read back unchanged. */
export function expectWellFormed(outcome: unknown, what: string): asserts outcome is Outcome<Record<string, unknown>> {
  expect(outcome, `${what}: an outcome object`).to.be.an('object');
  const o = outcome as Record<string, unknown>;
  expect(['success', 'failure', 'pending'], `${what}: status ${String(o.status)}`).to.include(o.status);
  if (o.status === 'success') {
    expect(o.result, `${what}: success carries a result object`).to.be.an('object').and.not.equal(null);
    expect(Array.isArray(o.result), `${what}: result is not an array`).to.equal(false);
  } else if (o.status === 'failure') {
    expect(o.retryable, `${what}: failure says whether it is retryable`).to.be.a('boolean');
    expect(o.message, `${what}: failure has a message`).to.be.a('string').and.not.equal('');
    if (o.code !== undefined) expect(o.code, `${what}: code`).to.be.a('string');
  } else {
    if (o.message !== undefined) expect(o.message, `${what}: pending message`).to.be.a('string');
    if (o.retryAfterSeconds !== undefined) expect(o.retryAfterSeconds, `${what}: retryAfterSeconds`).to.be.a('number').and.at.least(0);
  }
  const copy = JSON.parse(JSON.stringify(outcome)) as unknown;
  expect(JSON.parse(JSON.stringify(copy)), `${what}: survives a JSON round trip`).to.deep.equal(copy);
}

export function provisioningGateContract(label: string, make: () => Promise<ContractSubject>, options: ContractOptions = {}): void {
  const maxPolls = options.maxPolls ?? 20;

  describe(`provisioning gate contract: ${label}`, () => {
    let subject: ContractSubject;
    let gate: ProvisioningGate;

    beforeEach(async () => {
      subject = await make();
      gate = subject.gate;
    });
    afterEach(async () => {
      await subject?.cleanup();
    });

    /** Calls, then polls status with the same operation id while the gate answers pending. */
    async function settle<T>(what: string, operationId: string, call: () => Promise<Outcome<T>>): Promise<Outcome<Record<string, unknown>>> {
      let outcome = (await call()) as Outcome<Record<string, unknown>>;
      expectWellFormed(outcome, what);
      for (let polls = 0; outcome.status === 'pending'; polls++) {
        expect(polls, `${what}: still pending after ${maxPolls} status polls`).to.be.below(maxPolls);
        outcome = await gate.status(operationId);
        expectWellFormed(outcome, `${what} (status poll ${polls + 1})`);
      }
      return outcome;
    }

    async function succeed(what: string, req: ServiceRequest, call: (r: ServiceRequest) => Promise<Outcome<unknown>>): Promise<Record<string, unknown>> {
      const outcome = await settle(what, req.operationId, () => call(req));
      expect(outcome, `${what} should succeed`).to.deep.include({ status: 'success' });
      return (outcome as { result: Record<string, unknown> }).result;
    }

    async function provisioned(): Promise<string> {
      const result = await succeed('provision', request(), (r) => gate.provision(r));
      return result.reference as string;
    }

    async function performedCount(action: string, operationId: string): Promise<number | null> {
      if (!subject.performed) return null;
      return (await subject.performed()).filter((p) => p.action === action && p.operationId === operationId).length;
    }

    it('provisions a service and answers the reference it gave it', async () => {
      const result = await succeed('provision', request(), (r) => gate.provision(r));
      expect(result.reference).to.be.a('string').and.not.equal('');
      if (result.details !== undefined) {
        expect(result.details).to.be.an('object');
        for (const v of Object.values(result.details as object)) expect(v, 'details are text').to.be.a('string');
      }
    });

    it('provisions once when the same operation id comes twice: the same reference, one action', async () => {
      const req = request();
      const first = await succeed('provision', req, (r) => gate.provision(r));
      const again = await succeed('provision (repeated)', { ...req }, (r) => gate.provision(r));
      expect(again.reference).to.equal(first.reference);
      const n = await performedCount('provision', req.operationId);
      if (n !== null) expect(n, 'provision actions performed for one operation id').to.equal(1);
    });

    it('provisions two services for two operation ids, with different references', async () => {
      expect(await provisioned()).to.not.equal(await provisioned());
    });

    it('suspends, resumes, changes the limits of and terminates a provisioned service', async () => {
      const reference = await provisioned();
      await succeed('suspend', request({ reference }), (r) => gate.suspend(r));
      await succeed('resume', request({ reference }), (r) => gate.resume(r));
      await succeed('changeLimits', request({ reference, limits: [{ resource: 'disk', limit: 20 }, { resource: 'mailboxes', limit: 50 }] }), (r) => gate.changeLimits(r));
      await succeed('terminate', request({ reference }), (r) => gate.terminate(r));
    });

    it('suspends once when the same operation id comes twice', async () => {
      const reference = await provisioned();
      const req = request({ reference });
      await succeed('suspend', req, (r) => gate.suspend(r));
      await succeed('suspend (repeated)', { ...req }, (r) => gate.suspend(r));
      const n = await performedCount('suspend', req.operationId);
      if (n !== null) expect(n, 'suspend actions performed for one operation id').to.equal(1);
    });

    it('reads usage as one number per resource', async () => {
      const reference = await provisioned();
      const result = await succeed('readUsage', request({ reference }), (r) => gate.readUsage(r));
      expect(result.usage).to.be.an('array');
      for (const reading of result.usage as unknown[]) {
        expect(reading).to.have.property('resource').that.is.a('string');
        expect((reading as { usage: unknown }).usage).to.be.a('number').and.satisfy(Number.isFinite);
      }
    });

    it('answers a connection test with success and a message', async () => {
      const outcome = await gate.testConnection();
      expectWellFormed(outcome, 'testConnection');
      expect(outcome.status).to.equal('success');
      expect((outcome as { result: { message: unknown } }).result.message).to.be.a('string');
    });

    for (const action of ['suspend', 'resume', 'terminate', 'changeLimits', 'readUsage'] as const) {
      it(`answers ${action} of a reference it never gave with a failure, not a throw`, async () => {
        const req = request({ reference: `never-given-${crypto.randomUUID()}` });
        const outcome = await settle(action, req.operationId, () => (gate[action] as (r: ServiceRequest) => Promise<Outcome<unknown>>).call(gate, req));
        expect(outcome.status, `${action} of an unknown reference`).to.equal('failure');
      });
    }

    it('answers suspend without any reference with a failure, not a throw', async () => {
      const req = request();
      const outcome = await settle('suspend', req.operationId, () => gate.suspend(req));
      expect(outcome.status).to.equal('failure');
    });

    it('answers the status of an operation id it never saw with a failure, not a throw', async () => {
      const outcome = await gate.status(opId());
      expectWellFormed(outcome, 'status');
      expect(outcome.status).to.equal('failure');
    });
  });
}
