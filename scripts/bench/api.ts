/**
 * API benchmark: GetAccount over SOAP and AccountDetailsGet_API over XML-RPC against our server, and the same
 * responses from a bare node-soap server and a bare xml2js-parsing HTTP server. 50 connections; every server is
 * warmed up for 3 s, then measured 10 s per run in 3 interleaved rounds (ours and bare alternate which goes first).
 * Prints requests/s, p50 and p99 latency and the server's CPU time per request for every run, and the our/bare
 * ratios (median and range over the rounds).
 * Options: --connections N --seconds S --rounds R --warmup S --only soap|xmlrpc --no-pin --cpu-prof DIR (profile
 * our server with node's --cpu-prof into DIR/ours; add --cpu-prof-bare to profile the bare servers too).
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
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
const ROUNDS = arg('rounds', 3);
const WARMUP = arg('warmup', 3);
const ONLY = (() => {
  const i = process.argv.indexOf('--only');
  return i > 0 ? process.argv[i + 1] : undefined;
})();
/**
 * On a machine with at least 2 cores, each server runs pinned to CPU 1 and this process (the load generator) to
 * CPU 0, so the generator never takes the server's core; ours and the bare servers get exactly the same
 * treatment. --no-pin turns it off.
 */
const PIN = !process.argv.includes('--no-pin') && os.cpus().length >= 2 && fs.existsSync('/usr/bin/taskset');

function pin(pid: number, cpu: number): void {
  if (PIN) execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}

interface Round {
  soap?: { ours: Figures; bare: Figures };
  rpc?: { ours: Figures; bare: Figures };
}
const PASSWORD = 'bench-admin-password';
const AUTH = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;

const PROFILE_DIR = (() => {
  const i = process.argv.indexOf('--cpu-prof');
  return i > 0 ? path.resolve(process.argv[i + 1]) : undefined;
})();

function spawn(kind: string, port: number, env: NodeJS.ProcessEnv, payload?: string): Promise<ChildProcess> {
  const profile = PROFILE_DIR && (kind === 'ours' || process.argv.includes('--cpu-prof-bare')) ? ['--cpu-prof', '--cpu-prof-dir', path.join(PROFILE_DIR, kind)] : [];
  const child = fork(path.join(__dirname, 'serve.ts'), [kind, String(port), payload ?? ''], {
    env: { ...process.env, ...env },
    // The young-generation size `npm start` gives our server (docs/install.md); every server gets it, bare ones too.
    execArgv: ['--import', 'tsx', '--max-semi-space-size=64', ...profile],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', () => {
      pin(child.pid as number, 1);
      resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
}

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** The server's CPU time per answered request (µs): what it costs, whatever else the machine is doing. */
  cpuPerRequest?: number;
}

/** CPU time (user + system, all threads) a process has used so far, in µs; undefined where /proc is missing. */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();
function cpuMicros(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

async function load(server: ChildProcess, url: string, headers: Record<string, string>, body: string): Promise<Figures> {
  const before = cpuMicros(server.pid as number);
  const r = await autocannon({ url, method: 'POST', headers, body, connections: CONNECTIONS, duration: SECONDS });
  const after = cpuMicros(server.pid as number);
  const cpuPerRequest = before !== undefined && after !== undefined && r.requests.total > 0 ? (after - before) / r.requests.total : undefined;
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx, cpuPerRequest };
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

  pin(process.pid, 0);
  const ours = await spawn('ours', 18090, env);
  const rpcFile = path.join(dir, 'xmlrpc-response.xml');
  const probe = await fetch('http://127.0.0.1:18090/RPC2', { method: 'POST', headers: rpcHeaders, body: rpcBody });
  fs.writeFileSync(rpcFile, await probe.text());
  const soapProbe = await fetch('http://127.0.0.1:18090/soap/billing', { method: 'POST', headers: soapHeaders, body: soapBody });
  if (soapProbe.status !== 200) throw new Error(`our SOAP server answered ${soapProbe.status}: ${await soapProbe.text()}`);
  const bareSoap = await spawn('bare-soap', 18091, env, accountFile);
  const bareRpc = await spawn('bare-xmlrpc', 18092, env, rpcFile);

  const rounds: Round[] = [];
  const runSoap = ONLY === undefined || ONLY === 'soap';
  const runRpc = ONLY === undefined || ONLY === 'xmlrpc';
  try {
    // Warm-up, not measured: each server answers a few seconds of the same load first, so that the JIT has
    // compiled the hot paths of all of them before any figure is taken.
    const warm = (url: string, headers: Record<string, string>, body: string) =>
      autocannon({ url, method: 'POST', headers, body, connections: CONNECTIONS, duration: WARMUP });
    if (runSoap) {
      await warm('http://127.0.0.1:18090/soap/billing', soapHeaders, soapBody);
      await warm('http://127.0.0.1:18091/soap/billing', soapHeaders, soapBody);
    }
    if (runRpc) {
      await warm('http://127.0.0.1:18090/RPC2', rpcHeaders, rpcBody);
      await warm('http://127.0.0.1:18092/RPC2', rpcHeaders, rpcBody);
    }
    for (let r = 0; r < ROUNDS; r++) {
      // Interleaved, and the order flips every round, so a burst of load elsewhere on the machine does not land
      // on one side only.
      const pair = async (ours: () => Promise<Figures>, bare: () => Promise<Figures>) => {
        if (r % 2 === 0) {
          const o = await ours();
          return { ours: o, bare: await bare() };
        }
        const b = await bare();
        return { ours: await ours(), bare: b };
      };
      rounds.push({
        soap: runSoap ? await pair(() => load(ours, 'http://127.0.0.1:18090/soap/billing', soapHeaders, soapBody), () => load(bareSoap, 'http://127.0.0.1:18091/soap/billing', soapHeaders, soapBody)) : undefined,
        rpc: runRpc ? await pair(() => load(ours, 'http://127.0.0.1:18090/RPC2', rpcHeaders, rpcBody), () => load(bareRpc, 'http://127.0.0.1:18092/RPC2', rpcHeaders, rpcBody)) : undefined,
      });
    }
  } finally {
    for (const c of [ours, bareSoap, bareRpc]) c.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 500));
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const cpu = `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown cpu'})`;
  console.log(`\n${CONNECTIONS} connections, ${SECONDS} s per run, ${ROUNDS} round(s), ${cpu}, ${PIN ? 'servers pinned to CPU 1 and the load generator to CPU 0' : 'no CPU pinning'}\n`);
  console.log('server'.padEnd(46) + 'req/s'.padStart(10) + 'p50 ms'.padStart(9) + 'p99 ms'.padStart(9) + 'errors'.padStart(8) + 'CPU µs/req'.padStart(12));
  const line = (name: string, f: Figures) =>
    console.log(
      name.padEnd(46) +
        f.rps.toFixed(0).padStart(10) +
        String(f.p50).padStart(9) +
        String(f.p99).padStart(9) +
        String(f.errors).padStart(8) +
        (f.cpuPerRequest === undefined ? '-' : f.cpuPerRequest.toFixed(0)).padStart(12),
    );
  rounds.forEach((r, i) => {
    const tag = ROUNDS > 1 ? ` #${i + 1}` : '';
    if (r.soap) {
      line(`SOAP GetAccount, ours${tag}`, r.soap.ours);
      line(`SOAP GetAccount, bare node-soap${tag}`, r.soap.bare);
    }
    if (r.rpc) {
      line(`XML-RPC AccountDetailsGet_API, ours${tag}`, r.rpc.ours);
      line(`XML-RPC AccountDetailsGet_API, bare xml2js${tag}`, r.rpc.bare);
    }
  });
  type Pair = { ours: Figures; bare: Figures } | undefined;
  const summary = (label: string, pairs: Pair[], ratio: (p: { ours: Figures; bare: Figures }) => number | undefined) => {
    const ratios = pairs
      .map((p) => (p === undefined ? undefined : ratio(p)))
      .filter((x): x is number => x !== undefined && Number.isFinite(x))
      .sort((a, b) => a - b);
    if (!ratios.length) return undefined;
    const median = ratios.length % 2 ? ratios[(ratios.length - 1) / 2] : (ratios[ratios.length / 2 - 1] + ratios[ratios.length / 2]) / 2;
    return `${label} ${median.toFixed(2)}` + (ratios.length > 1 ? ` (${ratios[0].toFixed(2)}-${ratios[ratios.length - 1].toFixed(2)})` : '');
  };
  const report = (what: string, ratio: (p: { ours: Figures; bare: Figures }) => number | undefined) => {
    const parts = [summary('SOAP', rounds.map((r) => r.soap), ratio), summary('XML-RPC', rounds.map((r) => r.rpc), ratio)].filter(Boolean);
    if (parts.length) console.log(`${what}${ROUNDS > 1 ? ', median (min-max) over the rounds' : ''}: ${parts.join(', ')}`);
  };
  console.log('');
  report('our/bare throughput (target >= 0.60)', (p) => p.ours.rps / p.bare.rps);
  // The same comparison by CPU cost: bare's CPU per request over ours. It does not move when other processes
  // take turns on the server's core, so it is the steadier figure on a busy machine.
  report('bare/our CPU per request', (p) => (p.ours.cpuPerRequest && p.bare.cpuPerRequest ? p.bare.cpuPerRequest / p.ours.cpuPerRequest : undefined));
  const errors = rounds.flatMap((r) => [r.soap, r.rpc]).filter((p) => p !== undefined).some((p) => p.ours.errors + p.bare.errors > 0);
  if (errors) console.log('WARNING: some requests failed or answered non-2xx; the figures above are not comparable.');
}

main().catch((e: Error) => {
  console.error(`benchmark failed: ${e.message}`);
  process.exit(1);
});
