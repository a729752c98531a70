import { expect } from 'chai';
import { toNumber } from '../../src/db/knex';
import type { Task } from '../../src/jobs/task-queue';
import type { TaskContext, TaskOutcome } from '../../src/jobs/worker';
import { templateForPlan } from '../../src/orders/orders-service';
import type { Outcome, ProvisioningGate, ServiceRequest } from '../../src/plugins/sdk';
import { SubscriptionActionsService, subscriptionActionHandlers } from '../../src/subscriptions/service-actions';
import { failure } from '../helpers/assertions';
import { quietLog } from '../helpers/world';
import { orderWorld, type OrderWorld } from './order-world';

let w: OrderWorld;
let svc: SubscriptionActionsService;
let handlers: ReturnType<typeof subscriptionActionHandlers>;
/** What the fake gate answers next, per action (then success); the calls it heard. */
let script: Record<string, Outcome<unknown>[]>;
let heard: { call: string; operationId: string; reference?: string }[];

const fakeGate = {
  async provision(req: ServiceRequest) {
    return next('provision', req.operationId, { status: 'success', result: { reference: `ref-${req.subscriptionId}` } });
  },
  suspend: (req: ServiceRequest) => next('suspend', req.operationId),
  resume: (req: ServiceRequest) => next('resume', req.operationId),
  terminate: (req: ServiceRequest) => next('terminate', req.operationId, undefined, req.reference),
  status: (operationId: string) => next('status', operationId),
} as unknown as ProvisioningGate;

async function next(call: string, operationId: string, fallback: Outcome<unknown> = { status: 'success', result: {} }, reference?: string): Promise<Outcome<never>> {
  heard.push({ call, operationId, ...(reference ? { reference } : {}) });
  return (script[call]?.shift() ?? fallback) as Outcome<never>;
}

/** A not provisioned subscription whose order has finished (as when its saga gave up), unless `openOrder`. */
async function subscribe(openOrder = false): Promise<number> {
  const order = await w.place(w.customer, { accountId: w.customer.accountId });
  const { catalog } = w.world.services;
  if (!openOrder) await w.world.deps.db('orders').where({ id: order.orderId }).update({ status: 'PF' });
  return w.world.deps.db.transaction(async (tx) => {
    const o = (await tx('orders').where({ id: order.orderId }).first()) as { id: number; account_id: number; vendor_id: number };
    const item = (await tx('order_items').where({ order_id: order.orderId }).first()) as { id: number; plan_id: number; period_id: number; parameters: string; resources: string };
    const plan = (await catalog.getPlanForOrder(tx, Number(item.plan_id)))!;
    return w.subscriptions.createForItem(tx, o, item, plan, await templateForPlan(catalog, tx, plan));
  });
}

async function run(taskId: number, attempt = 1): Promise<TaskOutcome> {
  const task: Task = await w.world.services.tasks.get(w.world.provider, taskId);
  const kind = task.kind;
  const ctx = { operationId: task.operationId, attempt, signal: new AbortController().signal, extendLease: async () => true, log: quietLog } as TaskContext;
  return handlers[kind]!(task, ctx);
}

async function state(id: number) {
  const r = (await w.world.deps.db('subscriptions').where({ id }).first('status', 'service_status', 'gate_reference')) as { status: number; service_status: number; gate_reference: string | null };
  return { status: Number(r.status), serviceStatus: Number(r.service_status), reference: r.gate_reference };
}

describe('SubscriptionActionsService and its gate tasks (a scripted gate)', () => {
  beforeEach(async () => {
    w = await orderWorld('2026-03-01T10:00:00Z');
    svc = new SubscriptionActionsService(w.world.deps, { tasks: w.world.services.tasks });
    handlers = subscriptionActionHandlers(w.world.deps, {
      pluginInstances: { resolveGate: async () => ({ gate: fakeGate }) as never },
      subscriptions: w.subscriptions,
    });
    script = {};
    heard = [];
  });
  afterEach(async () => {
    await w?.world.close();
  });

  it('provisions a not provisioned subscription, then suspends (pending, then polled with the same operation id), resumes and terminates it', async () => {
    const id = await subscribe();
    const p = await svc.request(w.customer, id, 'provision', {});
    expect(p.serviceStatus).to.equal(20);
    const task = await w.world.services.tasks.get(w.world.provider, p.taskId);
    expect(task).to.include({ kind: 'subscription.provision', queue: 'orders', objectType: 'subscription', objectId: String(id), accountId: w.customer.accountId });
    expect(task.payload).to.include({ subscriptionId: id, action: 'provision' });
    expect(await run(p.taskId)).to.deep.equal({ status: 'done' });
    expect(await state(id)).to.deep.equal({ status: 30, serviceStatus: 50, reference: `ref-${id}` });

    script.suspend = [{ status: 'pending', message: 'stopping the site' }];
    const s = await svc.request(w.customer, id, 'suspend', { reason: 'unpaid' });
    expect(s.serviceStatus).to.equal(60);
    const first = await run(s.taskId, 1);
    expect(first).to.include({ status: 'retry', retryable: true });
    expect(await state(id)).to.include({ status: 30, serviceStatus: 60 });
    expect(await run(s.taskId, 2)).to.deep.equal({ status: 'done' });
    expect(heard.slice(-2).map((h) => h.call)).to.deep.equal(['suspend', 'status']);
    expect(heard.at(-1)!.operationId).to.equal(heard.at(-2)!.operationId);
    expect(await state(id)).to.include({ status: 80, serviceStatus: 30 });
    // A repeated run of a settled task does nothing.
    expect(await run(s.taskId, 3)).to.deep.include({ status: 'done' });

    const r = await svc.request(w.customer, id, 'resume');
    expect(r.serviceStatus).to.equal(40);
    await run(r.taskId);
    expect(await state(id)).to.include({ status: 30, serviceStatus: 50 });

    const t = await svc.request(w.customer, id, 'terminate', { reason: 'closing' });
    expect(t.serviceStatus).to.equal(70);
    await run(t.taskId);
    expect(await state(id)).to.include({ status: 60, serviceStatus: 90 });

    const status = await svc.provisioningStatus(w.customer, id);
    expect(status.serviceStatus).to.equal(90);
    expect(status.tasks.map((x) => x.kind)).to.deep.equal(['subscription.terminate', 'subscription.resume', 'subscription.suspend', 'subscription.provision']);
    const events = ((await w.world.deps.db('events').where({ object_type: 'subscription', object_id: String(id) }).orderBy('id').select('name')) as { name: string }[]).map((e) => e.name);
    expect(events).to.include.members(['subscription.provision_requested', 'subscription.suspend_requested', 'subscription.suspended', 'subscription.resume_requested', 'subscription.resumed', 'subscription.terminate_requested', 'subscription.terminated']);
  });

  it('a suspension for non-payment carries its reason to the subscription.suspended event, and the built-in dunning notices render from the real payloads', async () => {
    const id = await subscribe();
    await run((await svc.request(w.customer, id, 'provision')).taskId);
    await run((await svc.request(w.customer, id, 'suspend', { reason: 'non-payment of invoice INV-000042' })).taskId);
    const payloadOf = async (name: string) => JSON.parse(((await w.world.deps.db('events').where({ name, object_id: String(id) }).first('payload')) as { payload: string }).payload) as Record<string, unknown>;
    const suspended = await payloadOf('subscription.suspended');
    expect(suspended).to.include({ subscriptionId: id, reason: 'non-payment of invoice INV-000042' });
    const { notifications } = w.world.services;
    const builtIn = notifications.builtInTemplates();
    const context = (payload: Record<string, unknown>) => ({ payload, account: { companyName: 'Beta' }, contact: { firstName: 'Bea' }, vendor: { companyName: 'Demo Hosting' } });
    const notice = notifications.render(builtIn['subscription.suspended']!, context(suspended));
    expect(notice.text).to.contain(`Your subscription ${id} is suspended (non-payment of invoice INV-000042). Paying the invoice in full resumes it.`);
    // Suspended for another reason: no word of paying.
    expect(notifications.render(builtIn['subscription.suspended']!, context({ subscriptionId: id, reason: 'abuse report' })).text).to.contain(`is suspended (abuse report).\n`);
    // The grace notice, from the dunning step's payload (src/billing/run/dunning.ts), for one and for two subscriptions.
    expect(notifications.render(builtIn['subscription.graced']!, context({ invoiceId: 7, invoiceNumber: 'INV-000042', subscriptionIds: [id] })).text).to.contain(
      'Invoice INV-000042 is past its due date and unpaid. Please pay it to keep your service running; otherwise it will be suspended.',
    );
    expect(notifications.render(builtIn['subscription.graced']!, context({ invoiceId: 7, invoiceNumber: 'INV-000042', subscriptionIds: [id, id + 1] })).text).to.contain('to keep your services running; otherwise they will be suspended.');
    await run((await svc.request(w.customer, id, 'terminate')).taskId);
    expect(notifications.render(builtIn['subscription.terminated']!, context(await payloadOf('subscription.terminated'))).subject).to.equal(`Subscription ${id} terminated`);
  });

  it('a permanent gate failure puts the service status back and fails the task with the gate message', async () => {
    const id = await subscribe();
    await run((await svc.request(w.customer, id, 'provision')).taskId);
    script.suspend = [{ status: 'failure', retryable: false, message: 'panel says no', code: 'REFUSED' }];
    const s = await svc.request(w.customer, id, 'suspend');
    const out = await run(s.taskId);
    expect(out).to.include({ status: 'retry', retryable: false });
    expect((out as { error: string }).error).to.contain('panel says no');
    expect(await state(id)).to.include({ status: 30, serviceStatus: 50 });
  });

  it('refuses requests in the wrong state (NOT_ALLOWED naming the status) and outside the subtree (NOT_FOUND); one idempotency key, one task', async () => {
    const id = await subscribe();
    const e1 = await failure(svc.request(w.customer, id, 'suspend'), 'NOT_ALLOWED', 'subscriptionId');
    expect(e1.message).to.contain('notProvisioned');
    const e2 = await failure(svc.request(w.customer, id, 'resume'), 'NOT_ALLOWED', 'subscriptionId');
    expect(e2.message).to.contain('ordered');
    await failure(svc.request(w.otherReseller, id, 'terminate'), 'NOT_FOUND');
    await failure(svc.provisioningStatus(w.otherCustomer, id), 'NOT_FOUND');
    const a = await svc.request(w.customer, id, 'provision', { idempotencyKey: 'once' });
    const b = await svc.request(w.customer, id, 'provision', { idempotencyKey: 'once' });
    expect(b).to.deep.equal(a);
    await failure(svc.request(w.customer, id, 'provision'), 'NOT_ALLOWED', 'subscriptionId');
    await run(a.taskId);
    await failure(svc.request(w.customer, id, 'provision'), 'NOT_ALLOWED', 'subscriptionId');
    const t = await svc.request(w.customer, id, 'terminate');
    await run(t.taskId);
    const e3 = await failure(svc.request(w.customer, id, 'terminate'), 'NOT_ALLOWED', 'subscriptionId');
    expect(e3.message).to.contain('terminated');
  });

  it('refuses to provision a subscription while its order is still being processed (its saga provisions it)', async () => {
    const id = await subscribe(true);
    const e = await failure(svc.request(w.customer, id, 'provision'), 'NOT_ALLOWED', 'subscriptionId');
    expect(e.message).to.match(/still being processed/);
    expect(await w.world.deps.db('tasks').where({ kind: 'subscription.provision', object_id: String(id) })).to.have.length(0);
  });
  it('hands a suspend still pending at the last attempt to the late-completion sweep, which finishes it later under the same operation id, or puts the service back when it never finishes', async () => {
    const id = await subscribe();
    await run((await svc.request(w.customer, id, 'provision', {})).taskId);
    const s = await svc.request(w.customer, id, 'suspend', {});
    const task = await w.world.services.tasks.get(w.world.provider, s.taskId);
    script.suspend = [{ status: 'pending', message: 'stopping' }];
    expect(await run(s.taskId, 1)).to.include({ status: 'retry', retryable: true });
    script.status = [{ status: 'pending', message: 'stopping' }];
    expect(await run(s.taskId, task.maxAttempts)).to.deep.include({ status: 'done' });
    // Not failed: the service is still stopping, and a late-completion task polls again in 10 minutes.
    expect(await state(id)).to.include({ status: 30, serviceStatus: 60 });
    const [late] = (await w.world.services.tasks.list(w.world.provider, { kind: 'subscription.late_completion' })).items;
    expect(late).to.include({ queue: 'orders', objectType: 'subscription', objectId: String(id), maxAttempts: 30 });
    expect(late!.payload).to.include({ action: 'suspend', operationId: task.operationId, taskId: s.taskId });
    expect(late!.runAt.getTime() - w.world.clock.now().getTime()).to.equal(10 * 60_000);

    script.status = [{ status: 'pending', message: 'still stopping' }];
    expect(await run(late!.taskId, 1)).to.include({ status: 'retry', retryable: true });
    expect(await run(late!.taskId, 2)).to.deep.equal({ status: 'done' });
    expect(heard.slice(-2)).to.deep.equal([
      { call: 'status', operationId: task.operationId },
      { call: 'status', operationId: task.operationId },
    ]);
    expect(heard.filter((h) => h.call === 'suspend')).to.have.length(1);
    expect(await state(id)).to.include({ status: 80, serviceStatus: 30 });

    // A resume that never finishes: after the sweep's last check the service is put back as it was.
    const r = await svc.request(w.customer, id, 'resume');
    const rTask = await w.world.services.tasks.get(w.world.provider, r.taskId);
    script.status = [{ status: 'pending' }];
    await run(r.taskId, rTask.maxAttempts);
    const lateResume = (await w.world.services.tasks.list(w.world.provider, { kind: 'subscription.late_completion' })).items.find((t) => t.payload.action === 'resume')!;
    script.status = [{ status: 'pending' }];
    const out = await run(lateResume.taskId, lateResume.maxAttempts);
    expect(out).to.include({ status: 'retry', retryable: false });
    expect((out as { error: string }).error).to.match(/did not finish the resume .* still pending after 30 late checks/);
    expect(await state(id)).to.include({ status: 80, serviceStatus: 30 });
    const failed = await w.world.deps.db('events').where({ name: 'subscription.resume_failed', object_id: String(id) }).first('id');
    expect(failed).to.not.equal(undefined);
  });

  it('a provision given up while the gate was still at it is put back, and what the gate finishes later is terminated by a provision_undo task (NOT_FOUND counts as done)', async () => {
    const id = await subscribe();
    const p = await svc.request(w.customer, id, 'provision');
    const task = await w.world.services.tasks.get(w.world.provider, p.taskId);
    script.provision = [{ status: 'pending', message: 'creating' }];
    await run(p.taskId, 1);
    script.status = [{ status: 'pending' }];
    expect(await run(p.taskId, task.maxAttempts)).to.deep.include({ status: 'done' });
    const late = (await w.world.services.tasks.list(w.world.provider, { kind: 'subscription.late_completion' })).items[0]!;
    script.status = [{ status: 'pending' }];
    const out = await run(late.taskId, late.maxAttempts);
    expect((out as { error: string }).error).to.match(/did not finish the provision .* still pending after 30 late checks/);
    // Put back, not provisioned: it may be provisioned again.
    expect(await state(id)).to.deep.equal({ status: 10, serviceStatus: 10, reference: null });

    const [undo] = (await w.world.services.tasks.list(w.world.provider, { kind: 'subscription.provision_undo' })).items;
    expect(undo).to.include({ queue: 'orders', objectType: 'subscription', objectId: String(id), maxAttempts: 30 });
    expect(undo!.payload).to.include({ subscriptionId: id, provisionOperationId: task.operationId, action: 'terminate' });
    const failed = (await w.world.deps.db('events').where({ name: 'subscription.provision_failed', object_id: String(id) }).first('payload')) as { payload: string };
    expect(JSON.parse(failed.payload)).to.include({ undoTaskId: undo!.taskId });

    // The provision is still under way: the undo waits.
    script.status = [{ status: 'pending' }];
    expect(await run(undo!.taskId, 1)).to.include({ status: 'retry', retryable: true });
    expect(heard.at(-1)).to.deep.equal({ call: 'status', operationId: task.operationId });
    // Then the gate finishes it (late-ref), and the panel has no such service any more when told to terminate it.
    script.status = [failure404(), { status: 'success', result: { reference: 'late-ref' } }];
    script.terminate = [failure404()];
    expect(await run(undo!.taskId, 2)).to.deep.include({ status: 'done' });
    expect(heard.slice(-3)).to.deep.equal([
      { call: 'status', operationId: undo!.operationId },
      { call: 'status', operationId: task.operationId },
      { call: 'terminate', operationId: undo!.operationId, reference: 'late-ref' },
    ]);
    expect(await state(id)).to.deep.equal({ status: 10, serviceStatus: 10, reference: null });
    const undone = (await w.world.deps.db('events').where({ name: 'subscription.provision_undone', object_id: String(id) }).select('payload')) as { payload: string }[];
    expect(undone.map((e) => JSON.parse(e.payload) as Record<string, unknown>)).to.deep.equal([
      { subscriptionId: id, accountId: w.customer.accountId, orderId: toNumber(((await w.world.deps.db('subscriptions').where({ id }).first('order_id')) as { order_id: number }).order_id), operationId: task.operationId, terminated: true, reference: 'late-ref' },
    ]);
  });

  it('a provision refused outright leaves nothing to undo; one whose gate timed out to the last attempt is undone (nothing made: no terminate)', async () => {
    const refusedId = await subscribe();
    script.provision = [{ status: 'failure', retryable: false, message: 'no such template', code: 'REFUSED' }];
    await run((await svc.request(w.customer, refusedId, 'provision')).taskId);
    expect(await state(refusedId)).to.include({ serviceStatus: 10 });
    expect((await w.world.services.tasks.list(w.world.provider, { kind: 'subscription.provision_undo' })).items).to.deep.equal([]);

    const id = await subscribe();
    const p = await svc.request(w.customer, id, 'provision');
    const task = await w.world.services.tasks.get(w.world.provider, p.taskId);
    script.status = [failure404()];
    script.provision = [{ status: 'failure', retryable: true, message: 'timed out', code: 'UNREACHABLE' }];
    await run(p.taskId, task.maxAttempts);
    expect(await state(id)).to.include({ serviceStatus: 10 });
    const [undo] = (await w.world.services.tasks.list(w.world.provider, { kind: 'subscription.provision_undo' })).items;
    expect(undo!.payload).to.include({ subscriptionId: id, provisionOperationId: task.operationId });
    // The gate never received it: nothing to terminate.
    script.status = [failure404()];
    expect(await run(undo!.taskId, 1)).to.deep.include({ status: 'done' });
    expect(heard.filter((h) => h.call === 'terminate')).to.deep.equal([]);
    const undone = (await w.world.deps.db('events').where({ name: 'subscription.provision_undone', object_id: String(id) }).first('payload')) as { payload: string };
    expect(JSON.parse(undone.payload)).to.include({ terminated: false, reference: null });
  });

  it('a suspend that fails for good under an overlapping terminate: a terminate failing next puts back running (what the suspend left), not stopping', async () => {
    const id = await subscribe();
    await run((await svc.request(w.customer, id, 'provision')).taskId);
    script.suspend = [{ status: 'pending', message: 'stopping the site' }];
    const s = await svc.request(w.customer, id, 'suspend');
    expect(await run(s.taskId, 1)).to.include({ status: 'retry', retryable: true });
    const t = await svc.request(w.customer, id, 'terminate');
    expect(t.serviceStatus).to.equal(70);
    // The suspend's next attempt polls its operation: the gate refused it for good.
    script.status = [{ status: 'failure', retryable: false, message: 'The panel refused the suspend.', code: 'REFUSED' }];
    expect(await run(s.taskId, 2)).to.include({ status: 'retry', retryable: false });
    expect(await state(id)).to.include({ status: 30, serviceStatus: 70 });
    const failed = (await w.world.deps.db('events').where({ name: 'subscription.suspend_failed', object_id: String(id) }).first('payload')) as { payload: string };
    expect(JSON.parse(failed.payload).terminateTaskIds).to.deep.equal([t.taskId]);
    script.terminate = [{ status: 'failure', retryable: false, message: 'The panel refused the terminate.', code: 'REFUSED' }];
    expect(await run(t.taskId)).to.include({ status: 'retry', retryable: false });
    expect(await state(id)).to.include({ status: 30, serviceStatus: 50 });
  });

  it('a terminate the gate answers NOT_FOUND (no such service) terminates the subscription', async () => {
    const id = await subscribe();
    await run((await svc.request(w.customer, id, 'provision')).taskId);
    script.terminate = [failure404()];
    expect(await run((await svc.request(w.customer, id, 'terminate')).taskId)).to.deep.equal({ status: 'done' });
    expect(await state(id)).to.include({ status: 60, serviceStatus: 90 });
  });
});

function failure404(): Outcome<never> {
  return { status: 'failure', retryable: false, message: 'The panel knows no such thing.', code: 'NOT_FOUND' };
}
