import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { signature, type WebhookGate } from '../../plugins/provisioning/webhook';
import type { ServiceRequest } from '../../src/plugins/sdk';
import { startWebhookPanel, verifySignature, type WebhookPanel } from '../fixtures/plugins/webhook-panel';
import { bundledGate } from './bundled';

const SECRET = 'webhook-test-secret-42';

let seq = 0;
const request = (extra: Partial<ServiceRequest> = {}): ServiceRequest => ({
  operationId: `hook-op-${++seq}`,
  subscriptionId: 21,
  accountId: 8,
  template: 'Mail',
  parameters: { domain: 'mail.example' },
  limits: [{ resource: 'mailboxes', limit: 25 }],
  ...extra,
});

describe('webhook service gate', () => {
  let panel: WebhookPanel;
  const gate = (settings: Record<string, unknown> = {}, now?: () => Date) => bundledGate<WebhookGate>('webhook', { url: panel.url, secret: SECRET, backoffMs: 10, ...settings }, now);

  beforeEach(async () => {
    panel = await startWebhookPanel(SECRET);
  });
  afterEach(async () => {
    await panel.close();
  });

  it('POSTs {action, request} signed with HMAC-SHA256 of "<timestamp>.<body>", the timestamp taken from the core clock', async () => {
    const now = new Date();
    const req = request();
    expect((await gate({}, () => now).provision(req)).status).to.equal('success');
    const [call] = panel.received;
    expect(JSON.parse(call.body)).to.deep.equal({ action: 'provision', request: req });
    expect(call.headers['content-type']).to.equal('application/json');
    expect(call.headers['x-hostwright-timestamp']).to.equal(String(Math.floor(now.getTime() / 1000)));
    expect(call.headers['x-hostwright-operation-id']).to.equal(req.operationId);
    expect(call.headers['x-hostwright-signature']).to.equal(signature(SECRET, String(Math.floor(now.getTime() / 1000)), call.body));
    expect(call.verified).to.equal(true);
  });

  it('is refused by a panel holding another secret: a permanent failure, not retried', async () => {
    const outcome = await gate({ secret: 'some-other-secret-000' }).provision(request());
    expect(outcome).to.deep.include({ status: 'failure', retryable: false, code: 'HTTP_401' });
    expect((outcome as { message: string }).message).to.match(/HTTP 401: The signature does not match/);
    expect(panel.received.map((r) => r.verified)).to.deep.equal([false]);
  });

  it('has its signature refused when the body or the timestamp was tampered with, or the timestamp is stale', () => {
    const body = JSON.stringify({ action: 'suspend', request: { operationId: 'x' } });
    const ts = String(Math.floor(Date.now() / 1000));
    const sig = signature(SECRET, ts, body);
    expect(verifySignature(SECRET, ts, sig, body)).to.equal(true);
    expect(verifySignature(SECRET, ts, sig, body.replace('suspend', 'terminate'))).to.equal(false);
    expect(verifySignature(SECRET, String(Number(ts) + 1), sig, body)).to.equal(false);
    const old = String(Number(ts) - 3600);
    expect(verifySignature(SECRET, old, signature(SECRET, old, body), body)).to.equal(false);
  });

  it('retries a 5xx with backoff, signing each attempt afresh, then takes the success, and the panel acts once', async () => {
    panel.upcoming.push(503, 500);
    const req = request();
    let tick = 0;
    const clock = () => new Date(Date.now() + 1000 * tick++); // one second on per reading of the clock
    const outcome = await gate({ retries: 2 }, clock).provision(req);
    expect(outcome.status).to.equal('success');
    expect(panel.received.map((r) => [r.operationId, r.verified])).to.deep.equal([
      [req.operationId, true],
      [req.operationId, true],
      [req.operationId, true],
    ]);
    expect(new Set(panel.received.map((r) => r.headers['x-hostwright-timestamp'])).size, 'a timestamp per attempt').to.equal(3);
    expect(panel.panel.performed).to.have.length(1);
  });

  it('answers a retryable failure once the retries are spent', async () => {
    panel.upcoming.push(503, 502, 500);
    const outcome = await gate({ retries: 2 }).suspend(request({ reference: 'fp-1' }));
    expect(outcome).to.deep.include({ status: 'failure', retryable: true, code: 'UNREACHABLE' });
    expect((outcome as { message: string }).message).to.match(/answered HTTP 500: scripted HTTP 500 \(3 attempts\)/);
    expect(panel.received).to.have.length(3);
  });

  it('gives up on an attempt the panel does not answer within timeoutMs, and retries it', async () => {
    panel.upcoming.push('hang', 'hang');
    const started = Date.now();
    const outcome = await gate({ timeoutMs: 200, retries: 1 }).provision(request());
    expect(outcome).to.deep.include({ status: 'failure', retryable: true });
    expect((outcome as { message: string }).message).to.match(/did not answer within 200 ms \(2 attempts\)/);
    expect(panel.received).to.have.length(2);
    expect(Date.now() - started).to.be.below(3000);
  });

  it('answers a 4xx with a permanent failure carrying the panel\'s message, without retrying', async () => {
    panel.upcoming.push(422);
    const outcome = await gate({ retries: 3 }).provision(request());
    expect(outcome).to.deep.include({ status: 'failure', retryable: false, code: 'HTTP_422', message: 'The control panel refused provision with HTTP 422: scripted HTTP 422' });
    expect(panel.received).to.have.length(1);
  });

  it('retries 429 Too Many Requests like a 5xx', async () => {
    panel.upcoming.push(429);
    expect((await gate({ retries: 1 }).testConnection()).status).to.equal('success');
    expect(panel.received).to.have.length(2);
  });

  it('answers a 2xx reply that is not an outcome with a permanent failure', async () => {
    panel.upcoming.push(200);
    expect(await gate().provision(request())).to.deep.include({ status: 'failure', retryable: false, code: 'BAD_REPLY' });
  });

  it('answers a URL where nothing listens with a retryable failure, not a throw', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const outcome = await gate({ url: `http://127.0.0.1:${port}/`, retries: 1 }).provision(request());
    expect(outcome).to.deep.include({ status: 'failure', retryable: true, code: 'UNREACHABLE' });
    expect((outcome as { message: string }).message).to.match(/could not be reached/);
  });
});
