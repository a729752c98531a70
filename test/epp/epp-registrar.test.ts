import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { expect } from 'chai';
import { eppFailure, type EppRegistrar } from '../../plugins/registrar/epp';
import { frame } from '../../plugins/registrar/epp/framing';
import { createMemoryStore, type Outcome, type PluginStore } from '../../src/plugins/sdk';
import { bundledPlugins, silentLog } from '../plugins/bundled';
import { CONTRACT_CONTACTS } from '../plugins/registrar-contract';
import { startTestEppServer, type TestEppServer } from './server';
import { testCertificate } from './tls';

const rand = () => crypto.randomBytes(4).toString('hex');
const op = () => `epp-op-${rand()}${rand()}`;

function epp(server: { host: string; port: number; ca?: string }, extra: Record<string, unknown> = {}, store: PluginStore = createMemoryStore()): EppRegistrar {
  const plugin = bundledPlugins().get('registrar', 'epp');
  expect(plugin, 'bundled registrar plugin epp').to.not.equal(undefined);
  const checked = plugin!.checkSettings({ host: server.host, port: server.port, username: 'hw-registrar', password: 'registrar-pw', ...(server.ca ? { caCert: server.ca } : {}), commandTimeoutMs: 3000, connectTimeoutMs: 3000, ...extra });
  if (!checked.ok) throw new Error(checked.errors.map((e) => e.message).join(' '));
  return plugin!.factory({ settings: checked.value, instanceName: 'test-epp', log: silentLog, now: () => new Date(), store }) as EppRegistrar;
}

function code(outcome: Outcome<unknown>): string | undefined {
  return outcome.status === 'failure' ? outcome.code : outcome.status;
}

/** A TLS server that greets with `greeting` (raw bytes), for answers the test registry would never give. */
async function rogueServer(greeting: Buffer): Promise<{ host: string; port: number; ca: string; close(): Promise<void> }> {
  const { key, cert } = testCertificate();
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ key, cert }, (s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.write(greeting);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    ca: cert,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('EPP registrar', () => {
  let server: TestEppServer;
  let reg: EppRegistrar;
  beforeEach(async () => {
    server = await startTestEppServer();
    reg = epp(server);
  });
  afterEach(async () => {
    await reg?.close();
    await server?.close();
  });

  const register = (name: string, operationId = op()) => reg.register({ operationId, name, years: 1, nameservers: ['ns1.dns.test'], contacts: CONTRACT_CONTACTS });

  it('sends the operation id as the clTRID of the main command, and operation-id-derived clTRIDs on helper commands', async () => {
    const operationId = op();
    const name = `trid-${rand()}.test`;
    expect((await register(name, operationId)).status).to.equal('success');
    const mine = server.log.filter((l) => l.clTRID.startsWith(operationId));
    expect(mine.find((l) => l.command === 'domain:create')?.clTRID).to.equal(operationId);
    expect(mine.map((l) => l.command)).to.deep.equal(['host:check', 'host:create', 'contact:create', 'contact:create', 'domain:create']);
    for (const l of mine.filter((x) => x.command !== 'domain:create')) expect(l.clTRID).to.match(new RegExp(`^${operationId}~`));
    const d = server.domains.get(name)!;
    expect(d.contacts.map((c) => c.type).sort(), 'admin and tech filled (tech given, admin from the registrant)').to.deep.equal(['admin', 'tech']);
    expect(d.contacts.find((c) => c.type === 'admin')!.id).to.equal(d.registrant);
  });

  it('recognises its own registration when the first answer was lost: the retry answers success, one domain', async () => {
    const name = `lost-${rand()}.test`;
    const operationId = op();
    server.dropAnswer('domain:create');
    const first = await register(name, operationId);
    expect(first).to.deep.include({ status: 'failure', retryable: true, code: 'CONNECTION_ERROR' });
    expect(server.domains.get(name)?.clID, 'the registry did create it').to.equal('hw-registrar');
    const retry = await register(name, operationId);
    expect(retry.status).to.equal('success');
    expect(server.log.filter((l) => l.command === 'domain:create' && l.clTRID === operationId).map((l) => l.code)).to.deep.equal([1000, 2302]);
    expect(await register(name, operationId), 'now kept: answered without a command').to.deep.equal(retry);
    expect(server.log.filter((l) => l.command === 'domain:create' && l.clTRID === operationId)).to.have.length(2);
    expect(await register(name), 'another operation for the same name').to.deep.include({ status: 'failure', code: 'OBJECT_EXISTS' });
  });

  it('renews once when the first answer was lost', async () => {
    const name = `renew-lost-${rand()}.test`;
    expect((await register(name)).status).to.equal('success');
    const before = server.domains.get(name)!.exDate.toISOString();
    const operationId = op();
    server.dropAnswer('domain:renew');
    expect(await reg.renew({ operationId, name, years: 1 })).to.deep.include({ status: 'failure', retryable: true });
    const retry = await reg.renew({ operationId, name, years: 1 });
    expect(retry.status).to.equal('success');
    const after = server.domains.get(name)!.exDate.toISOString();
    expect(Number(after.slice(0, 4)) - Number(before.slice(0, 4))).to.equal(1);
    expect(server.log.filter((l) => l.command === 'domain:renew' && l.clTRID === operationId)).to.have.length(1);
  });

  /** The commands sent under `operationId` (its own clTRID and its helpers'), as "command code". */
  const sentUnder = (operationId: string) => server.log.filter((l) => l.clTRID === operationId || l.clTRID.startsWith(`${operationId}~`)).map((l) => `${l.command} ${l.code}`);

  it('a registration held for review (1001) is pending; the same operation id reads the registry until it is approved, never creating twice', async () => {
    const name = `held-${rand()}.test`;
    const operationId = op();
    server.holdForReview('domain:create');
    expect(await register(name, operationId)).to.deep.include({ status: 'pending' });
    expect([...server.domains.get(name)!.statuses]).to.deep.equal(['pendingCreate']);
    // The late-completion check: the same call, the same id; the registry still shows pendingCreate.
    expect(await register(name, operationId)).to.deep.include({ status: 'pending' });
    server.review(name, true);
    const done = await register(name, operationId);
    const d = server.domains.get(name)!;
    expect(done).to.deep.equal({ status: 'success', result: { name, createdAt: d.crDate.toISOString(), expiresAt: d.exDate.toISOString() } });
    expect(await register(name, operationId), 'now kept: answered without a command').to.deep.equal(done);
    expect(sentUnder(operationId).filter((c) => c.startsWith('domain:'))).to.deep.equal(['domain:create 1001', 'domain:info 1000', 'domain:info 1000']);
  });

  it('a registration held for review and then rejected ends in a failure that is not retried', async () => {
    const name = `held-no-${rand()}.test`;
    const operationId = op();
    server.holdForReview('domain:create');
    expect((await register(name, operationId)).status).to.equal('pending');
    server.review(name, false);
    expect(await register(name, operationId)).to.deep.include({ status: 'failure', retryable: false, code: 'ACTION_REJECTED' });
    expect(server.domains.has(name)).to.equal(false);
    expect(sentUnder(operationId).filter((c) => c.startsWith('domain:'))).to.deep.equal(['domain:create 1001', 'domain:info 2303']);
  });

  it('a registration held for review whose answer was lost: the retry finds it pendingCreate and answers pending', async () => {
    const name = `held-lost-${rand()}.test`;
    const operationId = op();
    server.holdForReview('domain:create');
    server.dropAnswer('domain:create');
    expect(await register(name, operationId)).to.deep.include({ status: 'failure', retryable: true });
    expect(await register(name, operationId)).to.deep.include({ status: 'pending' });
    server.review(name, true);
    expect((await register(name, operationId)).status).to.equal('success');
  });

  it('a renewal held for review (1001) is pending; the follow-up reads the expiry instead of renewing again, once approved it answers the new expiry', async () => {
    const name = `renew-held-${rand()}.test`;
    expect((await register(name)).status).to.equal('success');
    const before = server.domains.get(name)!.exDate;
    const operationId = op();
    server.holdForReview('domain:renew');
    expect(await reg.renew({ operationId, name, years: 1 })).to.deep.include({ status: 'pending' });
    expect(server.domains.get(name)!.exDate.getTime(), 'not renewed yet').to.equal(before.getTime());
    expect(await reg.renew({ operationId, name, years: 1 })).to.deep.include({ status: 'pending' });
    server.review(name, true);
    const after = server.domains.get(name)!.exDate;
    expect(after.getUTCFullYear() - before.getUTCFullYear()).to.equal(1);
    const done = await reg.renew({ operationId, name, years: 1 });
    expect(done).to.deep.include({ status: 'success' });
    expect(done.status === 'success' && done.result.expiresAt).to.equal(after.toISOString());
    expect(server.domains.get(name)!.exDate.getTime(), 'renewed once').to.equal(after.getTime());
    expect(sentUnder(operationId).filter((c) => c.startsWith('domain:'))).to.deep.equal(['domain:info 1000', 'domain:renew 1001', 'domain:info 1000', 'domain:info 1000']);
  });

  it('a renewal held for review and then rejected ends in a failure that is not retried; the expiry stays', async () => {
    const name = `renew-no-${rand()}.test`;
    expect((await register(name)).status).to.equal('success');
    const before = server.domains.get(name)!.exDate.getTime();
    const operationId = op();
    server.holdForReview('domain:renew');
    expect((await reg.renew({ operationId, name, years: 1, currentExpiresAt: new Date(before).toISOString() })).status).to.equal('pending');
    server.review(name, false);
    expect(await reg.renew({ operationId, name, years: 1, currentExpiresAt: new Date(before).toISOString() })).to.deep.include({ status: 'failure', retryable: false, code: 'ACTION_REJECTED' });
    expect(server.domains.get(name)!.exDate.getTime()).to.equal(before);
    expect(sentUnder(operationId).filter((c) => c === 'domain:renew 1001' || c.startsWith('domain:renew'))).to.deep.equal(['domain:renew 1001']);
  });

  it('a renewal held for review whose answer was lost: the retry finds it pendingRenew and answers pending, not a second renew', async () => {
    const name = `renew-held-lost-${rand()}.test`;
    expect((await register(name)).status).to.equal('success');
    const operationId = op();
    server.holdForReview('domain:renew');
    server.dropAnswer('domain:renew');
    expect(await reg.renew({ operationId, name, years: 1 })).to.deep.include({ status: 'failure', retryable: true });
    expect(await reg.renew({ operationId, name, years: 1 })).to.deep.include({ status: 'pending' });
    server.review(name, true);
    expect((await reg.renew({ operationId, name, years: 1 })).status).to.equal('success');
    expect(sentUnder(operationId).filter((c) => c.startsWith('domain:renew'))).to.deep.equal(['domain:renew 1001']);
  });

  it('a nameserver change held for review (1001) is pending, and no second update is sent while the domain shows pendingUpdate; once approved it answers success', async () => {
    const name = `ns-held-${rand()}.test`;
    expect((await register(name)).status).to.equal('success');
    const operationId = op();
    server.holdForReview('domain:update');
    const ask = (id: string) => reg.setNameservers({ operationId: id, name, nameservers: ['ns2.dns.test'] });
    expect(await ask(operationId)).to.deep.include({ status: 'pending' });
    expect(server.domains.get(name)!.ns, 'not changed yet').to.deep.equal(['ns1.dns.test']);
    // The same change asked again under a new operation id (a caller trying again later): pending, nothing sent.
    const other = op();
    expect(await ask(other)).to.deep.include({ status: 'pending' });
    expect(sentUnder(other).filter((c) => c.startsWith('domain:update'))).to.deep.equal([]);
    server.review(name, true);
    expect(await ask(operationId)).to.deep.equal({ status: 'success', result: { nameservers: ['ns2.dns.test'] } });
    expect(server.domains.get(name)!.ns).to.deep.equal(['ns2.dns.test']);
    expect(sentUnder(operationId).filter((c) => c.startsWith('domain:'))).to.deep.equal(['domain:info 1000', 'domain:update 1001', 'domain:info 1000']);
  });

  it('a lock held for review and then rejected ends in a failure that is not retried; the domain stays unlocked', async () => {
    const name = `lock-held-${rand()}.test`;
    expect((await register(name)).status).to.equal('success');
    const operationId = op();
    server.holdForReview('domain:update');
    expect(await reg.setLock({ operationId, name, locked: true })).to.deep.include({ status: 'pending' });
    // Another operation asking the same while the registry decides: pending, nothing sent.
    const other = op();
    expect(await reg.setLock({ operationId: other, name, locked: true })).to.deep.include({ status: 'pending' });
    server.review(name, false);
    expect(await reg.setLock({ operationId, name, locked: true })).to.deep.include({ status: 'failure', retryable: false, code: 'ACTION_REJECTED' });
    expect([...server.domains.get(name)!.statuses]).to.deep.equal(['ok']);
    expect(sentUnder(operationId).filter((c) => c.startsWith('domain:update'))).to.deep.equal(['domain:update 1001']);
    // The other operation never sent its change: asked again, it sends it now instead of calling it refused.
    expect(await reg.setLock({ operationId: other, name, locked: true })).to.deep.equal({ status: 'success', result: { locked: true } });
    expect(sentUnder(other).filter((c) => c.startsWith('domain:update'))).to.deep.equal(['domain:update 1000']);
  });

  it('a deletion the registry holds (1001, pendingDelete) stands; a retry after its lost answer finds pendingDelete and answers success', async () => {
    const name = `del-held-${rand()}.test`;
    expect((await register(name)).status).to.equal('success');
    server.holdForReview('domain:delete');
    expect(await reg.delete({ operationId: op(), name })).to.deep.equal({ status: 'success', result: {} });
    expect([...server.domains.get(name)!.statuses]).to.deep.equal(['pendingDelete']);
    const lost = `del-lost-${rand()}.test`;
    expect((await register(lost)).status).to.equal('success');
    const operationId = op();
    server.holdForReview('domain:delete');
    server.dropAnswer('domain:delete');
    expect(await reg.delete({ operationId, name: lost })).to.deep.include({ status: 'failure', retryable: true });
    expect(await reg.delete({ operationId, name: lost })).to.deep.equal({ status: 'success', result: {} });
    expect(sentUnder(operationId).filter((c) => c.startsWith('domain:'))).to.deep.equal(['domain:delete 1001', 'domain:delete 2304', 'domain:info 1000']);
  });

  it('answers a command the server never answers with a retryable TIMEOUT, then works again on a new connection', async () => {
    reg = epp(server, { commandTimeoutMs: 300 });
    const name = `slow-${rand()}.test`;
    expect((await register(name)).status).to.equal('success');
    server.stall('domain:info');
    const started = Date.now();
    expect(await reg.getInfo({ operationId: op(), name })).to.deep.include({ status: 'failure', retryable: true, code: 'TIMEOUT' });
    expect(Date.now() - started).to.be.below(2000);
    expect((await reg.getInfo({ operationId: op(), name })).status).to.equal('success');
  });

  it('uses one connection for calls one after another and for concurrent calls, and logs out on close', async () => {
    const name = `one-conn-${rand()}.test`;
    expect((await register(name)).status).to.equal('success');
    const answers = await Promise.all([1, 2, 3, 4, 5].map(() => reg.getInfo({ operationId: op(), name })));
    expect(answers.map((a) => a.status)).to.deep.equal(['success', 'success', 'success', 'success', 'success']);
    expect(server.log.filter((l) => l.command === 'login')).to.have.length(1);
    expect(server.connections()).to.equal(1);
    await reg.close();
    expect(server.log.at(-1)?.command).to.equal('logout');
  });

  it('reconnects and logs in again when the registry dropped its connection between calls', async () => {
    const name = `dropped-${rand()}.test`;
    expect((await register(name)).status).to.equal('success');
    server.disconnectAll();
    await new Promise((r) => setTimeout(r, 20));
    expect((await reg.getInfo({ operationId: op(), name })).status).to.equal('success');
    expect(server.log.filter((l) => l.command === 'login')).to.have.length(2);
  });

  it('logs out after idleTimeoutMs without calls', async () => {
    reg = epp(server, { idleTimeoutMs: 150 });
    expect((await reg.testConnection()).status).to.equal('success');
    expect(server.connections()).to.equal(1);
    await new Promise((r) => setTimeout(r, 400));
    expect(server.log.at(-1)?.command).to.equal('logout');
    expect(server.connections()).to.equal(0);
    expect((await reg.testConnection()).status, 'and logs in again when needed').to.equal('success');
  });

  it('answers a wrong password with AUTHENTICATION_ERROR that is not retryable', async () => {
    reg = epp(server, { password: 'not-the-password' });
    const outcome = await reg.checkAvailability({ operationId: op(), names: ['x.test'] });
    expect(outcome).to.deep.include({ status: 'failure', retryable: false, code: 'AUTHENTICATION_ERROR' });
    expect((outcome as { message: string }).message).to.contain('2200');
  });

  it('refuses a server whose certificate it cannot verify', async () => {
    reg = epp({ host: server.host, port: server.port });
    expect(await reg.testConnection()).to.deep.include({ status: 'failure', code: 'CONNECTION_ERROR' });
  });

  it('answers an unreachable server with a retryable CONNECTION_ERROR', async () => {
    const port = server.port;
    await server.close();
    reg = epp({ host: '127.0.0.1', port, ca: server.ca });
    expect(await reg.getInfo({ operationId: op(), name: 'a.test' })).to.deep.include({ status: 'failure', retryable: true, code: 'CONNECTION_ERROR' });
    server = await startTestEppServer();
  });

  it('refuses an answer carrying a DOCTYPE, and an answer frame over maxFrameBytes', async () => {
    const doctype = await rogueServer(frame('<?xml version="1.0"?><!DOCTYPE epp [<!ENTITY x "y">]><epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><greeting><svID>&x;</svID></greeting></epp>'));
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(64 * 1024 * 1024, 0);
    const oversize = await rogueServer(huge);
    try {
      const a = await epp(doctype).testConnection();
      expect(a).to.deep.include({ status: 'failure', code: 'CONNECTION_ERROR' });
      expect((a as { message: string }).message).to.contain('DOCTYPE');
      const b = await epp(oversize, { maxFrameBytes: 4096 }).testConnection();
      expect(b).to.deep.include({ status: 'failure', code: 'CONNECTION_ERROR' });
      expect((b as { message: string }).message).to.match(/more than the 4096 allowed/);
    } finally {
      await doctype.close();
      await oversize.close();
    }
  });

  it('ends a refused transfer with TRANSFER_REJECTED', async () => {
    await server.close();
    server = await startTestEppServer({ transferOutcome: 'clientRejected', approveAfterQueries: 1 });
    reg = epp(server);
    const name = `refused-${rand()}.test`;
    server.seedDomain(name, 'other-reg', 'the-code');
    const operationId = op();
    expect(await reg.transfer({ operationId, name, authCode: 'the-code' })).to.deep.include({ status: 'pending' });
    expect(await reg.pollTransfer({ operationId, name })).to.deep.include({ status: 'failure', retryable: false, code: 'TRANSFER_REJECTED' });
    expect(server.domains.get(name)!.clID).to.equal('other-reg');
  });

  it('does not transfer a name locked at its registrar (2304)', async () => {
    const name = `locked-${rand()}.test`;
    server.seedDomain(name, 'other-reg', 'the-code').statuses = new Set(['clientTransferProhibited']);
    expect(await reg.transfer({ operationId: op(), name, authCode: 'the-code' })).to.deep.include({ status: 'failure', code: 'STATUS_PROHIBITS' });
  });

  it('refuses to delete a locked domain, and outside the registry\'s grace period', async () => {
    const locked = `locked-${rand()}.test`;
    expect((await register(locked)).status).to.equal('success');
    expect(await reg.setLock({ operationId: op(), name: locked, locked: true })).to.deep.equal({ status: 'success', result: { locked: true } });
    expect([...server.domains.get(locked)!.statuses].sort()).to.deep.equal(['clientDeleteProhibited', 'clientTransferProhibited']);
    expect(await reg.delete({ operationId: op(), name: locked })).to.deep.include({ status: 'failure', code: 'STATUS_PROHIBITS' });
    expect(server.domains.has(locked)).to.equal(true);

    await reg.close();
    await server.close();
    server = await startTestEppServer({ graceDays: 0 });
    reg = epp(server);
    const name = `old-${rand()}.test`;
    expect((await register(name)).status).to.equal('success');
    await new Promise((r) => setTimeout(r, 5));
    expect(await reg.delete({ operationId: op(), name })).to.deep.include({ status: 'failure', code: 'STATUS_PROHIBITS' });
    expect(server.domains.has(name)).to.equal(true);
  });

  it('carries markup-like text in contacts safely, and reads it back', async () => {
    const name = `escape-${rand()}.test`;
    const registrant = { ...CONTRACT_CONTACTS.registrant, name: `O'Brien <&> "Sons"`, street: ['1 <b>Bold</b> & Co Street'] };
    expect((await reg.register({ operationId: op(), name, years: 1, contacts: { registrant } })).status).to.equal('success');
    const contacts = await reg.getContacts({ operationId: op(), name });
    expect(contacts.status === 'success' && contacts.result.registrant).to.deep.include({ name: `O'Brien <&> "Sons"`, street: ['1 <b>Bold</b> & Co Street'] });
  });

  it('lets hostAttr mode send nameservers inside the domain, creating no host objects', async () => {
    reg = epp(server, { nameserverMode: 'hostAttr' });
    const name = `attr-${rand()}.test`;
    const operationId = op();
    const outcome = await reg.register({ operationId, name, years: 1, nameservers: ['ns9.attr.test'], contacts: CONTRACT_CONTACTS });
    expect(outcome.status).to.equal('success');
    expect(server.log.filter((l) => l.clTRID.startsWith(operationId)).map((l) => l.command)).to.deep.equal(['contact:create', 'contact:create', 'domain:create']);
    expect(server.domains.get(name)!.ns).to.deep.equal(['ns9.attr.test']);
    const info = await reg.getInfo({ operationId: op(), name });
    expect(info.status === 'success' && info.result.nameservers).to.deep.equal(['ns9.attr.test']);
  });

  it('maps EPP result codes to outcomes: which are retryable and with which code', () => {
    const table: [number, string, boolean][] = [
      [2302, 'OBJECT_EXISTS', false],
      [2303, 'NOT_FOUND', false],
      [2201, 'AUTHORIZATION_ERROR', false],
      [2202, 'AUTHORIZATION_ERROR', false],
      [2304, 'STATUS_PROHIBITS', false],
      [2306, 'POLICY_ERROR', false],
      [2005, 'INVALID_ARGUMENT', false],
      [2104, 'BILLING_FAILURE', true],
      [2400, 'REGISTRY_ERROR', true],
      [2500, 'REGISTRY_ERROR', true],
      [2501, 'AUTHENTICATION_ERROR', false],
      [2502, 'REGISTRY_ERROR', true],
    ];
    for (const [c, expected, retryable] of table) {
      const f = eppFailure({ code: c, message: 'Something', reason: 'because' });
      expect(f, String(c)).to.deep.include({ status: 'failure', code: expected, retryable });
      expect((f as { message: string }).message).to.contain(String(c)).and.contain('because');
    }
    expect(code(eppFailure({ code: 2201, message: 'x' }, 'info'))).to.equal('NOT_SPONSORED');
  });
});
