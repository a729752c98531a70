import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sandboxState } from '../../plugins/provisioning/sandbox';
import { startWebhookPanel } from '../fixtures/plugins/webhook-panel';
import { bundledGate } from './bundled';
import { provisioningGateContract } from './provisioning-contract';

// Every bundled service gate passes the same contract any plugin author can run against theirs.

const SCRIPT_PANEL = path.resolve(__dirname, '..', 'fixtures', 'plugins', 'script-panel.js');
const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'hostwright-gate-'));

provisioningGateContract('sandbox', async () => {
  const gate = bundledGate('sandbox', {});
  return { gate, cleanup: async () => {}, performed: async () => sandboxState(gate).journal };
});

provisioningGateContract('sandbox answering pending until the second status poll', async () => {
  const gate = bundledGate('sandbox', { pendingFor: 2 });
  return { gate, cleanup: async () => {}, performed: async () => sandboxState(gate).journal };
});

provisioningGateContract('sandbox keeping its state in a file', async () => {
  const dir = tempDir();
  const gate = bundledGate('sandbox', { stateFile: path.join(dir, 'sandbox.json') });
  return { gate, cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }), performed: async () => sandboxState(gate).journal };
});

provisioningGateContract('script (a node script speaking JSON on stdin and stdout)', async () => {
  const dir = tempDir();
  const state = path.join(dir, 'panel.json');
  const command = `"${process.execPath}" "${SCRIPT_PANEL}" panel`;
  const actions = ['provision', 'suspend', 'resume', 'terminate', 'changeLimits', 'readUsage', 'status', 'testConnection'];
  const gate = bundledGate('script', { commands: Object.fromEntries(actions.map((a) => [a, command])), env: { PANEL_STATE: state }, timeoutMs: 10000 });
  return {
    gate,
    cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
    performed: async () => (fs.existsSync(state) ? (JSON.parse(fs.readFileSync(state, 'utf8')) as { performed: { action: string; operationId: string }[] }).performed : []),
  };
});

provisioningGateContract('webhook (a control panel on a local port checking the signature)', async () => {
  const secret = 'contract-secret-0123456789';
  const panel = await startWebhookPanel(secret);
  const gate = bundledGate('webhook', { url: panel.url, secret, retries: 0 });
  return { gate, cleanup: () => panel.close(), performed: async () => panel.panel.performed };
});
