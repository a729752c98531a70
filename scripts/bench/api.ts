/**
 * API benchmark: GetAccount over SOAP and AccountDetailsGet_API over XML-RPC against our server, and the same
 * responses from a bare node-soap server and a bare xml2js-parsing HTTP server. 50 connections, 10 s each
 * (override with --connections N --seconds S). Prints requests/s, p50 and p99 latency, and our/bare ratios.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { ManualClock } from '../../src/clock';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { startServer } from '../../src/server';
import { accountWire } from '../../src/api/soap/billing-service';
import { serializeMethodCall } from '../../src/api/xmlrpc/codec';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const CONNECTIONS = arg('connections', 50);
const SECONDS = arg('seconds', 10);
const PASSWORD = 'bench-admin-password';
const AUTH = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;

function spawn(kind: string, port: number, env: NodeJS.ProcessEnv, payload?: string): Promise<ChildProcess> {
  const child = fork(path.join(__dirname, 'serve.ts'), [kind, String(port), payload ?? ''], {
    env: { ...process.env, ...env },
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
}

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function load(url: string, headers: Record<string, string>, body: string): Promise<Figures> {
  const r = await autocannon({ url, method: 'POST', headers, body, connections: CONNECTIONS, duration: SECONDS });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostwright-bench-'));
  const databaseUrl = `sqlite:${path.join(dir, 'bench.sqlite')}`;
  // Prepare the database (migrate, provider, admin) and capture the account the bare servers will answer.
  const prep = await startServer(loadConfig(process.env, { databaseUrl, port: 0, xmlrpcLegacyPort: 0, adminPassword: PASSWORD, logLevel: 'error' }), {
    log: createLogger({ level: 'error', format: 'json', silent: true }),
    demo: false,
    clock: new ManualClock(new Date()),
  });
  const provider = await prep.services.deps.db('accounts').where({ type: 'provider' }).first();
  const actor = { userId: null, accountId: provider.id, accountPath: provider.path, accountType: 'provider' as const, roles: ['admin' as const], channel: 'system' as const };
  const accountFile = path.join(dir, 'account.json');
  fs.writeFileSync(accountFile, JSON.stringify(accountWire(await prep.services.accounts.get(actor, provider.id))));
  await prep.close();

  const env = { DATABASE_URL: databaseUrl, HOSTWRIGHT_ADMIN_PASSWORD: PASSWORD, HOSTWRIGHT_SECRET_KEY: 'bench-secret-key-0123456789abcdefghijkl' };
  const soapBody =
    '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tns="urn:hostwright:billing:v1">' +
    `<soap:Body><tns:GetAccount><tns:accountId>${provider.id}</tns:accountId></tns:GetAccount></soap:Body></soap:Envelope>`;
  const soapHeaders = { 'content-type': 'text/xml; charset=utf-8', soapaction: '"urn:hostwright:billing:v1#GetAccount"', authorization: AUTH };
  const rpcBody = serializeMethodCall('Execute', [{ Server: 'BM', Method: 'AccountDetailsGet_API', Params: [provider.id], Username: 'admin', Password: PASSWORD }]);
  const rpcHeaders = { 'content-type': 'text/xml' };

  const ours = await spawn('ours', 18090, env);
  const rpcFile = path.join(dir, 'xmlrpc-response.xml');
  const probe = await fetch('http://127.0.0.1:18090/RPC2', { method: 'POST', headers: rpcHeaders, body: rpcBody });
  fs.writeFileSync(rpcFile, await probe.text());
  const soapProbe = await fetch('http://127.0.0.1:18090/soap/billing', { method: 'POST', headers: soapHeaders, body: soapBody });
  if (soapProbe.status !== 200) throw new Error(`our SOAP server answered ${soapProbe.status}: ${await soapProbe.text()}`);
  const bareSoap = await spawn('bare-soap', 18091, env, accountFile);
  const bareRpc = await spawn('bare-xmlrpc', 18092, env, rpcFile);

  const results: [string, Figures][] = [];
  try {
    results.push(['SOAP GetAccount, ours', await load('http://127.0.0.1:18090/soap/billing', soapHeaders, soapBody)]);
    results.push(['SOAP GetAccount, bare node-soap', await load('http://127.0.0.1:18091/soap/billing', soapHeaders, soapBody)]);
    results.push(['XML-RPC AccountDetailsGet_API, ours', await load('http://127.0.0.1:18090/RPC2', rpcHeaders, rpcBody)]);
    results.push(['XML-RPC AccountDetailsGet_API, bare xml2js', await load('http://127.0.0.1:18092/RPC2', rpcHeaders, rpcBody)]);
  } finally {
    for (const c of [ours, bareSoap, bareRpc]) c.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\n${CONNECTIONS} connections, ${SECONDS} s each, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown cpu'})\n`);
  console.log('server'.padEnd(46) + 'req/s'.padStart(10) + 'p50 ms'.padStart(9) + 'p99 ms'.padStart(9) + 'errors'.padStart(8));
  for (const [name, f] of results) {
    console.log(name.padEnd(46) + f.rps.toFixed(0).padStart(10) + String(f.p50).padStart(9) + String(f.p99).padStart(9) + String(f.errors).padStart(8));
  }
  const ratio = (a: Figures, b: Figures) => (a.rps / b.rps).toFixed(2);
  console.log(`\nour/bare throughput: SOAP ${ratio(results[0][1], results[1][1])}, XML-RPC ${ratio(results[2][1], results[3][1])} (target >= 0.60)`);
}

main().catch((e: Error) => {
  console.error(`benchmark failed: ${e.message}`);
  process.exit(1);
});
