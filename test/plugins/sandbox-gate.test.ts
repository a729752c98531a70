import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { readSandboxStateFile, sandboxState, type SandboxGate } from '../../plugins/provisioning/sandbox';
import type { ServiceRequest } from '../../src/plugins/sdk';
import { bundledGate } from './bundled';

let seq = 0;
function request(extra: Partial<ServiceRequest> = {}): ServiceRequest {
  return {
    operationId: `op-${++seq}`,
    subscriptionId: 7,
    accountId: 3,
    template: 'Shared Hosting',
    parameters: { domain: 'example.com' },
    limits: [{ resource: 'disk', limit: 10 }, { resource: 'mailboxes', limit: null }],
    ...extra,
  };
}

const sandbox = (settings: Record<string, unknown> = {}, now?: () => Date) => bundledGate<SandboxGate>('sandbox', settings, now);
const journal = (gate: SandboxGate) => sandboxState(gate).journal.map((j) => `${j.action} ${j.operationId}`);

async function provisioned(gate: SandboxGate): Promise<string> {
  const outcome = await gate.provision(request());
  if (outcome.status !== 'success') throw new Error(`provision: ${JSON.stringify(outcome)}`);
  return outcome.result.reference;
}

describe('sandbox service gate', () => {
  describe('sandbox_fail order parameter', () => {
    it('refuses provision permanently with sandbox_fail=provision, and answers a repeat of the operation the same without acting', async () => {
      const gate = sandbox();
      const req = request({ parameters: { sandbox_fail: 'provision' } });
      const first = await gate.provision(req);
      expect(first).to.deep.include({ status: 'failure', retryable: false, code: 'SANDBOX_FAILURE' });
      expect(await gate.provision(req)).to.deep.equal(first);
      expect(journal(gate)).to.deep.equal([]);
    });

    it('fails provision retryably on every attempt with sandbox_fail=provision:retryable', async () => {
      const gate = sandbox();
      const req = request({ parameters: { sandbox_fail: 'provision:retryable' } });
      for (let i = 0; i < 3; i++) expect(await gate.provision(req)).to.deep.include({ status: 'failure', retryable: true });
      expect(journal(gate)).to.deep.equal([]);
    });

    it('fails the first two attempts of an operation with sandbox_fail=provision:retryable:2, then provisions once', async () => {
      const gate = sandbox();
      const req = request({ parameters: { sandbox_fail: 'provision:retryable:2' } });
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push((await gate.provision(req)).status);
      expect(answers).to.deep.equal(['failure', 'failure', 'success', 'success']);
      expect(journal(gate)).to.deep.equal([`provision ${req.operationId}`]);
    });

    it('fails only the action it names: sandbox_fail=suspend lets provision through and refuses suspend', async () => {
      const gate = sandbox();
      const parameters = { sandbox_fail: 'terminate:retryable, suspend' };
      const outcome = await gate.provision(request({ parameters }));
      expect(outcome.status).to.equal('success');
      const reference = (outcome as { result: { reference: string } }).result.reference;
      expect(await gate.suspend(request({ reference, parameters }))).to.deep.include({ status: 'failure', retryable: false });
      expect(await gate.terminate(request({ reference, parameters }))).to.deep.include({ status: 'failure', retryable: true });
      expect(await gate.resume(request({ reference, parameters }))).to.deep.include({ status: 'success' });
    });
  });

  it('fails the actions its settings name in fail, retryably or permanently', async () => {
    const gate = sandbox({ fail: { suspend: 'retryable', testConnection: 'permanent' } });
    const reference = await provisioned(gate);
    expect(await gate.suspend(request({ reference }))).to.deep.include({ status: 'failure', retryable: true });
    expect(await gate.testConnection()).to.deep.include({ status: 'failure', retryable: false });
    expect(await gate.resume(request({ reference }))).to.deep.include({ status: 'success' });
  });

  it('waits delayMs before answering', async () => {
    const gate = sandbox({ delayMs: 150 });
    const started = Date.now();
    await gate.provision(request());
    expect(Date.now() - started).to.be.at.least(140);
  });

  it('answers pending and performs the action on the pendingFor-th status poll, then keeps answering its outcome', async () => {
    const gate = sandbox({ pendingFor: 3 });
    const req = request();
    expect(await gate.provision(req)).to.deep.include({ status: 'pending' });
    expect((await gate.status(req.operationId)).status).to.equal('pending');
    expect((await gate.status(req.operationId)).status).to.equal('pending');
    expect(await gate.provision(req), 'a repeat while pending').to.deep.include({ status: 'pending' });
    expect(journal(gate)).to.deep.equal([]);
    const done = await gate.status(req.operationId);
    expect(done).to.deep.include({ status: 'success' });
    expect(await gate.status(req.operationId)).to.deep.equal(done);
    expect(await gate.provision(req)).to.deep.equal(done);
    expect(journal(gate)).to.deep.equal([`provision ${req.operationId}`]);
  });

  it('reports the usage an order parameter sandbox_usage gives, else what setUsage set, else 0', async () => {
    const gate = sandbox();
    const reference = await provisioned(gate);
    gate.setUsage(reference, 'mailboxes', 4);
    expect(await gate.readUsage(request({ reference }))).to.deep.equal({ status: 'success', result: { usage: [{ resource: 'disk', usage: 0 }, { resource: 'mailboxes', usage: 4 }] } });
    expect(await gate.readUsage(request({ reference, parameters: { sandbox_usage: 'disk=7.5' } }))).to.deep.equal({
      status: 'success',
      result: { usage: [{ resource: 'disk', usage: 7.5 }, { resource: 'mailboxes', usage: 4 }] },
    });
  });

  it('journals every action it performs, in order, with the operation id, the reference and the core clock\'s time', async () => {
    const gate = sandbox({}, () => new Date('2031-02-03T04:05:06Z'));
    const reference = await provisioned(gate);
    const suspend = request({ reference });
    await gate.suspend(suspend);
    await gate.suspend(suspend);
    await gate.terminate(request({ reference }));
    const entries = sandboxState(gate).journal;
    expect(entries.map((e) => [e.action, e.reference, e.at])).to.deep.equal([
      ['provision', reference, '2031-02-03T04:05:06.000Z'],
      ['suspend', reference, '2031-02-03T04:05:06.000Z'],
      ['terminate', reference, '2031-02-03T04:05:06.000Z'],
    ]);
    expect(entries[1].operationId).to.equal(suspend.operationId);
    expect(sandboxState(gate).services[reference].status).to.equal('terminated');
  });

  it('finds its services and operations again after a restart when it keeps a stateFile', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostwright-sandbox-'));
    try {
      const stateFile = path.join(dir, 'state.json');
      const req = request();
      const before = await sandbox({ stateFile }).provision(req);
      const restarted = sandbox({ stateFile });
      expect(await restarted.provision(req), 'the repeated operation after the restart').to.deep.equal(before);
      const reference = (before as { result: { reference: string } }).result.reference;
      expect(await restarted.suspend(request({ reference }))).to.deep.include({ status: 'success' });
      expect(readSandboxStateFile(stateFile).journal.map((j) => j.action)).to.deep.equal(['provision', 'suspend']);
      expect(await provisioned(restarted), 'references keep counting').to.not.equal(reference);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers two concurrent calls with one operation id from a single action', async () => {
    const gate = sandbox({ delayMs: 50 });
    const req = request();
    const [a, b] = await Promise.all([gate.provision(req), gate.provision({ ...req })]);
    expect(a).to.deep.equal(b);
    expect(journal(gate)).to.deep.equal([`provision ${req.operationId}`]);
  });

  it('refuses an operation id already used for another action', async () => {
    const gate = sandbox();
    const req = request();
    const reference = ((await gate.provision(req)) as { result: { reference: string } }).result.reference;
    expect(await gate.suspend({ ...req, reference })).to.deep.include({ status: 'failure', code: 'OPERATION_ID_REUSED' });
    expect(sandboxState(gate).services[reference].status).to.equal('active');
  });
});
