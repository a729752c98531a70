import { expect } from 'chai';
import { toNumber } from '../../src/db/knex';
import { DOMAIN_RENEW_LATE_TASK, domainLifecycleHandlers, pollDomainTransfers, TRANSFER_POLL_MIN_INTERVAL_MS } from '../../src/domains/lifecycle';
import { LATE_FIRST_DELAY_MS, LATE_MAX_ATTEMPTS } from '../../src/jobs/late-completion';
import { Worker } from '../../src/jobs/worker';
import { GATE_TASK_KINDS, gateTaskAction } from '../../src/orders/gate-tasks';
import type { Registrar } from '../../src/plugins/sdk';
import { asSandboxRegistrar } from '../../plugins/registrar/sandbox';
import { makeBook, makeCustomer, type Book } from '../billing/run-book';
import { failure } from '../helpers/assertions';
import { dialect } from '../helpers/db';
import { makeWorld, type World } from '../helpers/world';
import type { Actor } from '../../src/context';
import { drive } from '../orders/fixtures';

const CONTACTS = { registrant: { name: 'Lee Life', email: 'lee@example.com', phone: '+1.5555550100', street: ['1 Main St'], city: 'Springfield', countryCode: 'US' } };
const DAY = 86_400_000;
const d = (s: string) => new Date(s);

/** A sandbox registrar instance selling one TLD for the provider (register 12.99, renew 14.99 a year). */
async function registrarFor(world: World, name: string, tld: string, settings: Record<string, unknown> = {}) {
  const { pluginInstances, tlds } = world.services;
  const instanceId = await pluginInstances.create(world.provider, { kind: 'registrar', plugin: 'sandbox', name, settings });
  await tlds.create(world.provider, { tld, registrarInstanceId: instanceId, prices: [{ action: 'register', years: 1, amount: 1299n }, { action: 'renew', years: 1, amount: 1499n }] });
  return { instanceId, registrar: await pluginInstances.instantiate<Registrar>(instanceId) };
}

/** Registers `name` at the sandbox registrar (now) and records it for the customer. */
async function domainOf(world: World, reg: { instanceId: number; registrar: Registrar }, customer: Actor, name: string) {
  const r = await reg.registrar.register({ operationId: `reg-${name}`, name, years: 1, contacts: CONTACTS });
  if (r.status !== 'success') throw new Error(`sandbox refused ${name}`);
  const domainId = await world.services.domains.recordRegisteredDomain(world.deps.db, world.provider, { accountId: customer.accountId, name, registrarInstanceId: reg.instanceId, expiresAt: new Date(r.result.expiresAt) });
  return { domainId, expiresAt: new Date(r.result.expiresAt) };
}

const expiry = async (world: World, id: number) => new Date(toNumber(((await world.deps.db('domains').where({ id }).first('expires_at')) as { expires_at: unknown }).expires_at)).toISOString();
const events = async (world: World, name: string, id: number) => (await world.deps.db('events').where({ name, object_type: 'domain', object_id: String(id) }).select('payload')).map((e: { payload: string }) => JSON.parse(e.payload) as Record<string, unknown>);

describe(`domains lifecycle: renewals billed by the billing run (${dialect})`, function () {
  this.timeout(120_000);
  let world: World;
  let book: Book;
  let worker: Worker;

  before(async () => {
    world = await makeWorld({ start: '2026-01-15T00:00:00Z' });
    book = await makeBook(world);
    worker = new Worker(world.deps, world.services.tasks, domainLifecycleHandlers(world.deps, { pluginInstances: world.services.pluginInstances }), { owner: 'test-worker', queues: ['orders'] });
  });
  after(async () => world.close());

  const run = (asOf: string, more: { dryRun?: boolean } = {}) => world.services.billingRun.run({ asOf: d(asOf), startedBy: 'test', ...more });

  it('a renewal billed and sent once: one line, reruns and concurrent runs add nothing, payment renews at the registrar once, expiry + 1 year', async () => {
    const reg = await registrarFor(world, 'life-registrar', 'com');
    const dora = await makeCustomer(world, book, 'Dora');
    const renewing = await domainOf(world, reg, dora, 'renew-me.com');
    const manual = await domainOf(world, reg, dora, 'renew-by-hand.com');
    const off = await world.services.domains.setAutoRenew(dora, { domainId: manual.domainId }, false);
    expect(off.autoRenew).to.equal(false);
    expect(renewing.expiresAt.toISOString()).to.equal('2027-01-15T00:00:00.000Z');

    // 31 days before expiry: outside the default 30-day lead.
    world.clock.set('2026-12-15T00:00:00Z');
    expect((await run('2026-12-15T00:00:00Z')).domainRenewals).to.equal(0);

    // 26 days before: the dry run reports the line and writes nothing.
    world.clock.set('2026-12-20T00:00:00Z');
    const dry = await run('2026-12-20T00:00:00Z', { dryRun: true });
    expect(dry).to.deep.include({ domainRenewals: 1, charges: 1, lines: 1, invoices: 1 });
    expect(dry.totals).to.deep.equal({ USD: 1499n });
    expect(await world.deps.db('billing_charges').whereNotNull('domain_id')).to.have.length(0);

    const first = await run('2026-12-20T00:00:00Z');
    expect(first).to.deep.include({ domainRenewals: 1, charges: 1, invoices: 1 });
    expect(first.payments).to.deep.equal({ tried: 1, succeeded: 1, declined: 0, unknown: 0 });
    const charges = (await world.deps.db('billing_charges').whereNotNull('domain_id').select('charge_key', 'domain_id', 'document_id', 'amount')) as { charge_key: string; domain_id: number; document_id: number; amount: unknown }[];
    expect(charges.map((c) => c.charge_key)).to.deep.equal([`domain:${renewing.domainId}:renew:${renewing.expiresAt.getTime()}`]);
    const lines = (await world.deps.db('document_lines').where({ document_id: charges[0]!.document_id }).select('kind', 'description', 'amount', 'period_start', 'period_end')) as { kind: string; description: string; amount: unknown; period_start: unknown; period_end: unknown }[];
    expect(lines).to.have.length(1);
    expect(lines[0]).to.deep.include({ kind: 'domain', description: 'Domain renew-me.com: renewal for 1 year, 2027-01-15 to 2028-01-15' });
    expect(toNumber(lines[0]!.amount)).to.equal(1499);
    const invoice = (await world.deps.db('documents').where({ id: charges[0]!.document_id }).first('status', 'account_id', 'total')) as { status: string; account_id: number; total: unknown };
    expect([invoice.status, toNumber(invoice.account_id), toNumber(invoice.total)]).to.deep.equal(['paid', dora.accountId, 1499]);

    // A second run, and two at once, add nothing (the paid renewal waits for its task; the expiry has not moved yet).
    const again = [await run('2026-12-20T00:00:00Z'), ...(await Promise.all([run('2026-12-20T00:00:00Z'), run('2026-12-20T00:00:00Z')]))];
    expect(again.map((s) => [s.charges, s.domainRenewals, s.invoices, s.payments.tried])).to.deep.equal([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]);
    expect(await world.deps.db('billing_charges').whereNotNull('domain_id')).to.have.length(1);
    expect(await world.deps.db('documents').where({ type: 'invoice', account_id: dora.accountId })).to.have.length(1);

    // Paid -> one renew task; the worker renews at the registrar once.
    expect((await events(world, 'domain.renewal_requested', renewing.domainId)).map((p) => p.invoiceId)).to.deep.equal([toNumber(charges[0]!.document_id)]);
    expect(await worker.runOnce()).to.equal(1);
    expect(await worker.runOnce()).to.equal(0);
    expect(await expiry(world, renewing.domainId)).to.equal('2028-01-15T00:00:00.000Z');
    expect(await expiry(world, manual.domainId)).to.equal('2027-01-15T00:00:00.000Z');
    const renews = (await asSandboxRegistrar(reg.registrar).journalEntries()).filter((e) => e.action === 'renew');
    expect(renews.map((e) => [e.name, e.operationId])).to.deep.equal([['renew-me.com', `hw-renew-${renewing.domainId}-${renewing.expiresAt.getTime()}`]]);
    expect((await events(world, 'domain.renewed', renewing.domainId)).map((p) => p.expiresAt)).to.deep.equal(['2028-01-15T00:00:00.000Z']);

    // The task run again (a worker that crashed before settling it): the registrar is not asked to renew twice.
    const task = (await world.services.tasks.list(world.provider, { kind: 'domain.renew' })).items[0]!;
    const handler = domainLifecycleHandlers(world.deps, { pluginInstances: world.services.pluginInstances })['domain.renew']!;
    expect((await handler(task, { operationId: task.operationId, attempt: 2, signal: new AbortController().signal, extendLease: async () => true, log: world.deps.log })).status).to.equal('done');
    expect((await asSandboxRegistrar(reg.registrar).journalEntries()).filter((e) => e.action === 'renew')).to.have.length(1);
    expect(await expiry(world, renewing.domainId)).to.equal('2028-01-15T00:00:00.000Z');

    // The next run bills nothing more: the new expiry is a year away; the auto-renew-off domain is never billed.
    expect((await run('2027-01-10T00:00:00Z')).domainRenewals).to.equal(0);
    expect(await world.deps.db('billing_charges').where({ domain_id: manual.domainId })).to.have.length(0);
  });

  it('a registrar refusing the renewal: the task fails with the last error visible, domain.renewal_failed once, the expiry stays', async () => {
    world.clock.set('2027-02-01T00:00:00Z');
    const reg = await registrarFor(world, 'refusing-registrar', 'net', { failures: { 'no-renew.net': 'renew' } });
    const eve = await makeCustomer(world, book, 'Eve');
    const dom = await domainOf(world, reg, eve, 'no-renew.net');
    world.clock.set('2028-01-20T00:00:00Z');
    const s = await run('2028-01-20T00:00:00Z');
    // This one, and renew-me.com's next year (it expires 2028-01-15): one invoice each, both paid.
    expect(s).to.deep.include({ domainRenewals: 2, invoices: 2 });
    expect(s.payments.succeeded).to.equal(2);
    expect(await world.deps.db('billing_charges').where({ domain_id: dom.domainId })).to.have.length(1);
    expect(await worker.runOnce()).to.equal(2);
    const task = (await world.deps.db('tasks').where({ kind: 'domain.renew', object_id: String(dom.domainId) }).first('status', 'last_error')) as { status: string; last_error: string };
    expect(task.status).to.equal('failed');
    expect(task.last_error).to.contain('no-renew.net').and.contain('SANDBOX_FAILURE');
    expect((await events(world, 'domain.renewal_failed', dom.domainId)).map((p) => p.code)).to.deep.equal(['SANDBOX_FAILURE']);
    expect(await expiry(world, dom.domainId)).to.equal(dom.expiresAt.toISOString());
    // Not renewed: once the expiry has passed, the sync moves it to expired.
    world.clock.set('2028-02-02T00:00:00Z');
    await world.services.domains.sync(world.provider);
    expect(((await world.deps.db('domains').where({ id: dom.domainId }).first('status')) as { status: string }).status).to.equal('expired');
    await failure(world.services.domains.setAutoRenew(eve, { domainId: dom.domainId }, 'yes'), 'INVALID_ARGUMENT', 'autoRenew');
  });
});

describe(`domains lifecycle: a paid renewal the registrar still has pending after the task's attempts (${dialect})`, function () {
  this.timeout(120_000);
  let world: World;
  let reg: { instanceId: number; registrar: Registrar };
  let slow: { domainId: number; expiresAt: Date };
  let stuck: { domainId: number; expiresAt: Date };
  let paidAt: number;
  const renewTask = async (domainId: number) =>
    (await world.deps.db('tasks').where({ kind: 'domain.renew', object_id: String(domainId) }).first('status', 'attempts', 'result', 'max_attempts')) as { status: string; attempts: number; result: string; max_attempts: number };
  const lateTask = async (domainId: number) =>
    (await world.deps.db('tasks').where({ kind: DOMAIN_RENEW_LATE_TASK, object_id: String(domainId) }).first('id', 'status', 'attempts', 'last_error', 'run_at', 'created_at')) as
      | { id: number; status: string; attempts: number; last_error: string | null; run_at: unknown; created_at: unknown }
      | undefined;

  before(async () => {
    world = await makeWorld({ start: '2026-01-15T00:00:00Z' });
    const book = await makeBook(world);
    // The registry accepts both renewals; one finishes on the 13th call of its operation id, the other never.
    reg = await registrarFor(world, 'slow-registrar', 'com', { failures: { 'slow-renew.com': 'renew:pending:12', 'stuck-renew.com': 'renew:pending' } });
    const sam = await makeCustomer(world, book, 'Sam');
    slow = await domainOf(world, reg, sam, 'slow-renew.com');
    stuck = await domainOf(world, reg, sam, 'stuck-renew.com');
    world.clock.set('2026-12-20T00:00:00Z');
    const s = await world.services.billingRun.run({ asOf: d('2026-12-20T00:00:00Z'), startedBy: 'test' });
    // One invoice with both renewals, paid by the customer's card: one domain.renew task per domain.
    expect(s).to.deep.include({ domainRenewals: 2, invoices: 1 });
    expect(s.payments.succeeded).to.equal(1);
    paidAt = world.clock.now().getTime();
    const worker = new Worker(world.deps, world.services.tasks, domainLifecycleHandlers(world.deps, { pluginInstances: world.services.pluginInstances }), { owner: 'test-worker', queues: ['orders'] });
    // Run the renew tasks to their last attempt: both hand over, nothing is renewed or failed yet.
    for (let i = 0; i < 100 && !((await lateTask(slow.domainId)) && (await lateTask(stuck.domainId))); i++) {
      if ((await worker.runOnce()) === 0) world.clock.advance(60_000);
    }
    for (const dom of [slow, stuck]) {
      const first = await renewTask(dom.domainId);
      expect([first.status, toNumber(first.attempts)]).to.deep.equal(['done', toNumber(first.max_attempts)]);
      expect(JSON.parse(first.result)).to.include({ late: true });
      const late = (await lateTask(dom.domainId))!;
      expect(toNumber(late.run_at) - toNumber(late.created_at)).to.equal(LATE_FIRST_DELAY_MS);
      expect(await expiry(world, dom.domainId)).to.equal(dom.expiresAt.toISOString());
    }
    expect(await events(world, 'domain.renewal_failed', stuck.domainId)).to.have.length(0);
    // Operators see the handed-over renewals among the gate and registrar calls (ListTasks), as renew_domain.
    const listed = (await world.services.tasks.list(world.provider, { anyOf: { queues: ['provisioning'], kinds: GATE_TASK_KINDS }, pageSize: 100 })).items.filter((t) => t.kind === DOMAIN_RENEW_LATE_TASK);
    expect(listed.map(gateTaskAction)).to.deep.equal(['renew_domain', 'renew_domain']);
    // ... and the paid renewals' first tasks (domain.renew) too.
    const first = (await world.services.tasks.list(world.provider, { anyOf: { queues: ['provisioning'], kinds: GATE_TASK_KINDS }, pageSize: 100 })).items.filter((t) => t.kind === 'domain.renew');
    expect(first.map(gateTaskAction)).to.deep.equal(['renew_domain', 'renew_domain']);
    await drive(world.deps, world.clock, worker);
  });
  after(async () => world?.close());

  it('completes late: the expiry extended once (audited RenewDomain, one domain.renewed), one renew at the registrar under the original operation id', async () => {
    const late = (await lateTask(slow.domainId))!;
    // The renew task used 10 calls, the sweep 2 more pending ones; the 13th renewed.
    expect([late.status, toNumber(late.attempts)]).to.deep.equal(['done', 3]);
    expect(await expiry(world, slow.domainId)).to.equal('2028-01-15T00:00:00.000Z');
    const renews = (await asSandboxRegistrar(reg.registrar).journalEntries()).filter((e) => e.action === 'renew');
    expect(renews.map((e) => [e.name, e.operationId])).to.deep.equal([['slow-renew.com', `hw-renew-${slow.domainId}-${slow.expiresAt.getTime()}`]]);
    expect((await events(world, 'domain.renewed', slow.domainId)).map((p) => [p.previousExpiresAt, p.expiresAt])).to.deep.equal([['2027-01-15T00:00:00.000Z', '2028-01-15T00:00:00.000Z']]);
    expect(await world.deps.db('audit_log').where({ operation: 'RenewDomain', object_type: 'domain', object_id: String(slow.domainId) })).to.have.length(1);
    expect(await events(world, 'domain.renewal_failed', slow.domainId)).to.have.length(0);
  });

  it('still pending after the last check: fails with domain.renewal_failed once, the expiry stays, nothing renewed at the registrar', async () => {
    const late = (await lateTask(stuck.domainId))!;
    expect([late.status, toNumber(late.attempts)]).to.deep.equal(['failed', LATE_MAX_ATTEMPTS]);
    expect(late.last_error).to.contain('stuck-renew.com').and.contain(`${LATE_MAX_ATTEMPTS} late checks`);
    // The checks spread over about a day (10 minutes, then 5 s doubling up to an hour).
    expect(world.clock.now().getTime() - paidAt).to.be.greaterThan(12 * 3_600_000);
    const failed = await events(world, 'domain.renewal_failed', stuck.domainId);
    expect(failed.map((p) => [p.name, p.code])).to.deep.equal([['stuck-renew.com', 'STILL_PENDING']]);
    expect(failed[0]!.message).to.contain('still pending');
    expect(await world.deps.db('audit_log').where({ operation: 'RenewDomainFailed', object_id: String(stuck.domainId) })).to.have.length(1);
    expect(await expiry(world, stuck.domainId)).to.equal(stuck.expiresAt.toISOString());
    expect(await events(world, 'domain.renewed', stuck.domainId)).to.have.length(0);
    expect((await asSandboxRegistrar(reg.registrar).journalEntries()).filter((e) => e.name === 'stuck-renew.com' && e.action === 'renew')).to.have.length(0);
  });
});

describe(`domains lifecycle: expiry reminders and transfer polling (${dialect})`, function () {
  this.timeout(120_000);
  let world: World;

  before(async () => {
    world = await makeWorld({ start: '2026-03-01T00:00:00Z' });
  });
  after(async () => world.close());

  it('reminds 30, 7 and 1 days before expiry, each once per domain and expiry, across repeated scans', async () => {
    const reg = await registrarFor(world, 'remind-registrar', 'org');
    const book = await makeBook(world);
    const cid = await makeCustomer(world, book, 'Cid', { card: null });
    const dom = await domainOf(world, reg, cid, 'remind-me.org');
    await world.services.notificationSchedules.set(world.provider, { basis: 'domain_expiration', daysBefore: [1, 30, 7] });
    const exp = dom.expiresAt.getTime();
    const { notificationSchedules } = world.services;
    for (const at of [exp - 40 * DAY, exp - 30 * DAY + 3_600_000, exp - 20 * DAY, exp - 7 * DAY, exp - 6 * DAY, exp - 12 * 3_600_000]) {
      world.clock.set(new Date(at).toISOString());
      await notificationSchedules.scan();
      await notificationSchedules.scan();
    }
    const sent = await events(world, 'domain.expiring', dom.domainId);
    expect(sent.map((p) => [p.daysBefore, p.name, p.expiresAt])).to.deep.equal([
      [30, 'remind-me.org', dom.expiresAt.toISOString()],
      [7, 'remind-me.org', dom.expiresAt.toISOString()],
      [1, 'remind-me.org', dom.expiresAt.toISOString()],
    ]);
  });

  it('polls transfers until done: approved -> active with the expiry, unknown to the registrar -> transferred away, pending stays pending; at most every 10 minutes', async () => {
    world.clock.set('2026-04-01T00:00:00Z');
    const { pluginInstances, domains } = world.services;
    const instanceId = await pluginInstances.create(world.provider, { kind: 'registrar', plugin: 'sandbox', name: 'transfer-registrar', settings: { transferPolls: 2 } });
    const registrar = await pluginInstances.instantiate<Registrar>(instanceId);
    const started = await registrar.transfer({ operationId: 'hw-transfer-moving', name: 'taken-moving.com', authCode: 'sandbox-auth' });
    expect(started.status).to.equal('pending');
    const record = (name: string, transferOperationId: string | null) =>
      domains.recordRegisteredDomain(world.deps.db, world.provider, { accountId: world.provider.accountId, name, registrarInstanceId: instanceId, expiresAt: null, status: 'transfer_pending', transferOperationId });
    const moving = await record('taken-moving.com', 'hw-transfer-moving');
    const lost = await record('taken-lost.com', 'hw-transfer-never-started');
    const waiting = await record('taken-waiting.com', null);
    const parts = { pluginInstances };
    const status = async (id: number) => ((await world.deps.db('domains').where({ id }).first('status')) as { status: string }).status;

    expect(await pollDomainTransfers(world.deps, parts)).to.deep.equal({ checked: 3, completed: 0, failed: 1, pending: 2 });
    expect([await status(moving), await status(lost), await status(waiting)]).to.deep.equal(['transfer_pending', 'transferred_away', 'transfer_pending']);
    expect((await events(world, 'domain.transfer_failed', lost)).map((p) => p.code)).to.deep.equal(['NOT_FOUND']);
    // Asked again at once: nobody is due yet.
    expect((await pollDomainTransfers(world.deps, parts)).checked).to.equal(0);

    world.clock.advance(TRANSFER_POLL_MIN_INTERVAL_MS);
    expect(await pollDomainTransfers(world.deps, parts)).to.deep.equal({ checked: 2, completed: 1, failed: 0, pending: 1 });
    const row = (await world.deps.db('domains').where({ id: moving }).first('status', 'expires_at')) as { status: string; expires_at: unknown };
    expect(row.status).to.equal('active');
    // The sandbox completes the transfer on this poll (10 minutes later), adding a year from then.
    expect(new Date(toNumber(row.expires_at)).toISOString()).to.equal('2027-04-01T00:10:00.000Z');
    expect((await events(world, 'domain.transfer_completed', moving)).map((p) => p.expiresAt)).to.deep.equal(['2027-04-01T00:10:00.000Z']);
    expect(await status(waiting)).to.equal('transfer_pending');
    expect(await events(world, 'domain.transfer_completed', waiting)).to.have.length(0);
  });
});
