import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { splitCommand, type ScriptGate } from '../../plugins/provisioning/script';
import type { ServiceRequest } from '../../src/plugins/sdk';
import { bundledGate } from './bundled';

const SCRIPT_PANEL = path.resolve(__dirname, '..', 'fixtures', 'plugins', 'script-panel.js');
const script = (mode: string) => `"${process.execPath}" "${SCRIPT_PANEL}" ${mode}`;

let seq = 0;
const request = (extra: Partial<ServiceRequest> = {}): ServiceRequest => ({
  operationId: `script-op-${++seq}`,
  subscriptionId: 11,
  accountId: 5,
  template: 'VPS',
  parameters: { hostname: 'vps1.example.com' },
  limits: [{ resource: 'ram', limit: 2048 }],
  ...extra,
});

const gate = (settings: Record<string, unknown>) => bundledGate<ScriptGate>('script', settings);

/** Alive and not a zombie waiting to be reaped. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

describe('script service gate', () => {
  it('passes {action, request} on stdin and its env and secretEnv, but neither the server\'s environment nor a secret on the command line', async () => {
    process.env.HOSTWRIGHT_TEST_SERVER_ONLY = 'not for scripts';
    try {
      const req = request();
      const outcome = await gate({ commands: { provision: script('echo') }, env: { REGION: 'eu-1' }, secretEnv: { PANEL_TOKEN: 'tok-123' } }).provision(req);
      expect(outcome.status).to.equal('success');
      const result = (outcome as unknown as { result: { stdin: unknown; argv: string[]; env: Record<string, string> } }).result;
      expect(result.stdin).to.deep.equal({ action: 'provision', request: req });
      expect(result.argv).to.deep.equal(['echo']);
      expect(result.env).to.include({ REGION: 'eu-1', PANEL_TOKEN: 'tok-123', HOSTWRIGHT_ACTION: 'provision', HOSTWRIGHT_OPERATION_ID: req.operationId, HOSTWRIGHT_INSTANCE: 'test-script' });
      expect(result.env).to.not.have.property('HOSTWRIGHT_TEST_SERVER_ONLY');
    } finally {
      delete process.env.HOSTWRIGHT_TEST_SERVER_ONLY;
    }
  });

  it('stops a command still running after timeoutMs, together with its own children, and answers a retryable failure', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostwright-script-'));
    try {
      const pidFile = path.join(dir, 'grandchild.pid');
      const started = Date.now();
      const outcome = await gate({ commands: { provision: script('sleep') }, timeoutMs: 500, env: { PID_FILE: pidFile } }).provision(request());
      expect(outcome).to.deep.include({ status: 'failure', retryable: true, code: 'TIMEOUT' });
      expect((outcome as { message: string }).message).to.match(/did not finish within 500 ms/);
      expect(Date.now() - started).to.be.below(5000);
      const grandchild = Number(fs.readFileSync(pidFile, 'utf8'));
      for (let i = 0; i < 50 && alive(grandchild); i++) await new Promise((r) => setTimeout(r, 20));
      expect(alive(grandchild), 'the script\'s own child').to.equal(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers a non-zero exit with a permanent failure carrying stderr\'s last line, clipped', async () => {
    const outcome = await gate({ commands: { suspend: script('crash') } }).suspend(request({ reference: 'x' }));
    expect(outcome).to.deep.include({ status: 'failure', retryable: false, code: 'EXIT_3' });
    const message = (outcome as { message: string }).message;
    expect(message).to.match(/^The suspend command exited with code 3: error: the panel refused the login for x+…$/);
    expect(message.length).to.be.below(600);
  });

  it('answers exit code 75 (EX_TEMPFAIL) with a retryable failure', async () => {
    expect(await gate({ commands: { resume: script('tempfail') } }).resume(request({ reference: 'x' }))).to.deep.include({
      status: 'failure',
      retryable: true,
      message: 'The resume command exited with code 75: panel busy, try later',
    });
  });

  it('answers a command that prints no JSON outcome with a permanent failure', async () => {
    expect(await gate({ commands: { provision: script('garbage') } }).provision(request())).to.deep.include({ status: 'failure', retryable: false, code: 'BAD_REPLY' });
  });

  it('answers an action that has no command with a permanent failure naming the action', async () => {
    const outcome = await gate({ commands: { provision: script('panel') } }).terminate(request({ reference: 'x' }));
    expect(outcome).to.deep.include({ status: 'failure', retryable: false, code: 'NOT_CONFIGURED' });
    expect((outcome as { message: string }).message).to.match(/no command for terminate/);
  });

  it('answers a command whose executable does not exist with a failure, not a throw', async () => {
    expect(await gate({ commands: { provision: '/nonexistent/hostwright/panel-tool --create' } }).provision(request())).to.deep.include({ status: 'failure', code: 'NOT_EXECUTABLE' });
  });

  it('tests the connection, when it has no testConnection command, by checking that every command can be run', async () => {
    expect((await gate({ commands: { provision: script('panel'), suspend: script('panel') } }).testConnection()).status).to.equal('success');
    const broken = await gate({ commands: { provision: script('panel'), suspend: '/nonexistent/suspend-tool' } }).testConnection();
    expect(broken).to.deep.include({ status: 'failure', retryable: false });
    expect((broken as { message: string }).message).to.match(/suspend: \/nonexistent\/suspend-tool is not an executable file/);
  });

  it('splits a command line without a shell: quotes group words, and nothing else is interpreted', () => {
    expect(splitCommand(`/opt/my\\ tools/run --name "a b" 'c "d"' $HOME;rm -rf *`)).to.deep.equal(['/opt/my tools/run', '--name', 'a b', 'c "d"', '$HOME;rm', '-rf', '*']);
    expect(() => splitCommand('run "unclosed')).to.throw(/unclosed/);
  });
});
