import { expect } from 'chai';
import * as soap from 'soap';
import { XMLRPC_FAULT_CODES } from '../../../src/api/api-errors';
import { accountWithApiUser, ADMIN_PASSWORD, startApiWorld, type ApiWorld } from '../../helpers/api';
import { bm, fault, ok } from '../xmlrpc/client';
import { eventually } from '../../helpers/assertions';

interface SoapFaultError {
  response?: { data?: unknown };
}
function faultCode(e: unknown): string | null {
  const data = (e as SoapFaultError).response?.data;
  return typeof data === 'string' ? (/<tns:code>([^<]*)<\/tns:code>/.exec(data)?.[1] ?? null) : null;
}
function faultMessage(e: unknown): string {
  const data = (e as SoapFaultError).response?.data;
  return typeof data === 'string' ? (/<tns:message>([^<]*)<\/tns:message>/.exec(data)?.[1] ?? data) : String(e);
}

describe('subscription suspend / resume / terminate through the service gate (SOAP and XML-RPC, a running demo server)', function () {
  this.timeout(120_000);
  let world: ApiWorld;
  let admin: soap.Client;
  let customerId: number;
  let planId: number;
  let periodId: number;

  async function activeSubscription(domain: string): Promise<number> {
    const billing = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    billing.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
    const [placed] = await billing.PlaceOrderAsync({ accountId: customerId, items: { item: [{ planId, periodId, parameters: { parameter: [{ name: 'domain', value: domain }] } }] } });
    const db = world.fresh.db;
    return eventually(async () => {
      const sub = await db('subscriptions').where({ order_id: placed.orderId }).first('id', 'status', 'service_status');
      return sub && sub.status === 30 && sub.service_status === 50 ? Number(sub.id) : undefined;
    }, `the order for ${domain} to provision`);
  }

  async function settled(taskId: number) {
    return eventually(async () => {
      const t = await world.fresh.db('tasks').where({ id: taskId }).first('status', 'last_error');
      return t && (t.status === 'done' || t.status === 'failed') ? (t as { status: string; last_error: string | null }) : undefined;
    }, `task ${taskId}`);
  }

  async function state(id: number) {
    const r = (await world.fresh.db('subscriptions').where({ id }).first('status', 'service_status')) as { status: number; service_status: number };
    return { status: Number(r.status), serviceStatus: Number(r.service_status) };
  }

  before(async () => {
    world = await startApiWorld({ demo: true });
    const db = world.fresh.db;
    customerId = (await db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id;
    planId = (await db('plans').where({ name: 'Shared Hosting Basic' }).first('id')).id;
    periodId = (await db('plan_periods').where({ plan_id: planId, duration: 1, unit: 'month' }).first('id')).id;
    admin = await soap.createClientAsync(`${world.url}/soap/provisioning?wsdl`);
    admin.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
  });
  after(() => world?.close());

  it('suspends, resumes and terminates a subscription, each through a gate task, with its events', async () => {
    const id = await activeSubscription('actions-bakery.example');

    const [s] = await admin.SuspendSubscriptionAsync({ subscriptionId: id, reason: 'unpaid' });
    expect(s.serviceStatus).to.equal('stopping');
    expect(await settled(Number(s.taskId))).to.include({ status: 'done' });
    expect(await state(id)).to.deep.equal({ status: 80, serviceStatus: 30 });
    const [st] = await admin.GetProvisioningStatusAsync({ subscriptionId: id });
    expect(st.serviceStatus).to.equal('stopped');
    expect(st.tasks.task[0]).to.include({ taskId: Number(s.taskId), subscriptionId: id, action: 'suspend', status: 'succeeded' });

    const [r] = await admin.ResumeSubscriptionAsync({ subscriptionId: id });
    expect(r.serviceStatus).to.equal('starting');
    expect(await settled(Number(r.taskId))).to.include({ status: 'done' });
    expect(await state(id)).to.deep.equal({ status: 30, serviceStatus: 50 });

    const [t] = await admin.TerminateSubscriptionAsync({ subscriptionId: id, reason: 'closing' });
    expect(t.serviceStatus).to.equal('removing');
    expect(await settled(Number(t.taskId))).to.include({ status: 'done' });
    expect(await state(id)).to.deep.equal({ status: 60, serviceStatus: 90 });

    const [after] = await admin.GetProvisioningStatusAsync({ subscriptionId: id });
    expect(after.serviceStatus).to.equal('removed');
    expect(after.tasks.task.map((x: { action: string }) => x.action)).to.deep.equal(['terminate', 'resume', 'suspend']);

    const events = ((await world.fresh.db('events').where({ object_type: 'subscription', object_id: String(id) }).orderBy('id').select('name')) as { name: string }[]).map((e) => e.name);
    for (const name of ['subscription.suspend_requested', 'subscription.suspended', 'subscription.resume_requested', 'subscription.resumed', 'subscription.terminate_requested', 'subscription.terminated']) {
      expect(events, name).to.include(name);
    }
    const sandbox = ((await world.fresh.db('audit_log').where({ object_type: 'subscription', object_id: String(id) }).select('operation')) as { operation: string }[]).map((a) => a.operation);
    expect(sandbox).to.include.members(['SuspendSubscription', 'ResumeSubscription', 'TerminateSubscription']);

    // A terminated subscription cannot be terminated, suspended or resumed again.
    for (const op of ['TerminateSubscriptionAsync', 'SuspendSubscriptionAsync', 'ResumeSubscriptionAsync']) {
      const e = await (admin as unknown as Record<string, (a: unknown) => Promise<unknown>>)[op]!({ subscriptionId: id }).then(() => null, (x: unknown) => x);
      expect(faultCode(e), op).to.equal('NOT_ALLOWED');
      expect(faultMessage(e), op).to.contain('terminated');
    }
  });

  it('a gate that fails the suspend leaves the subscription active and running, and the task failed with its message', async () => {
    const id = await activeSubscription('actions-fail.example');
    const db = world.fresh.db;
    const row = await db('subscriptions').where({ id }).first('parameters');
    await db('subscriptions').where({ id }).update({ parameters: JSON.stringify({ ...JSON.parse(row.parameters || '{}'), sandbox_fail: 'suspend' }) });

    const [s] = await admin.SuspendSubscriptionAsync({ subscriptionId: id });
    const task = await settled(Number(s.taskId));
    expect(task.status).to.equal('failed');
    expect(task.last_error).to.match(/sandbox|suspend/i);
    expect(await state(id)).to.deep.equal({ status: 30, serviceStatus: 50 });
    const failed = await db('events').where({ name: 'task.failed', object_id: String(s.taskId) }).first('id');
    expect(failed).to.not.equal(undefined);
    const [st] = await admin.GetProvisioningStatusAsync({ subscriptionId: id });
    expect(st.serviceStatus).to.equal('running');
    expect(st.tasks.task[0]).to.include({ action: 'suspend', status: 'failed' });
    expect(st.tasks.task[0].lastError).to.equal(task.last_error);
  });

  it('refuses wrong-state requests with NOT_ALLOWED naming the current status; an unknown id is NOT_FOUND', async () => {
    const id = await activeSubscription('actions-state.example');
    for (const [op, words] of [
      ['ResumeSubscriptionAsync', 'active'],
      ['ProvisionSubscriptionAsync', 'running'],
    ] as const) {
      const e = await (admin as unknown as Record<string, (a: unknown) => Promise<unknown>>)[op]!({ subscriptionId: id }).then(() => null, (x: unknown) => x);
      expect(faultCode(e), op).to.equal('NOT_ALLOWED');
      expect(faultMessage(e), op).to.contain(words);
    }
    expect(await state(id)).to.deep.equal({ status: 30, serviceStatus: 50 });
    const missing = await admin.SuspendSubscriptionAsync({ subscriptionId: 987654321 }).then(() => null, (x: unknown) => x);
    expect(faultCode(missing)).to.equal('NOT_FOUND');
    // A suspend in flight: a second suspend is refused while the service is stopping.
    const [s] = await admin.SuspendSubscriptionAsync({ subscriptionId: id, idempotencyKey: 'suspend-once' });
    const [again] = await admin.SuspendSubscriptionAsync({ subscriptionId: id, idempotencyKey: 'suspend-once' });
    expect(Number(again.taskId)).to.equal(Number(s.taskId));
    await settled(Number(s.taskId));
    const twice = await admin.SuspendSubscriptionAsync({ subscriptionId: id }).then(() => null, (x: unknown) => x);
    expect(faultCode(twice)).to.equal('NOT_ALLOWED');
    expect(faultMessage(twice)).to.contain('suspended');
  });

  it("another reseller's requests on the subscription answer NOT_FOUND, exactly like a missing id", async () => {
    const id = await activeSubscription('actions-scope.example');
    const other = await accountWithApiUser(world, 'reseller', 'Actions Reseller B');
    const c = await soap.createClientAsync(`${world.url}/soap/provisioning?wsdl`);
    c.setSecurity(new soap.BasicAuthSecurity(other.login, other.password));
    for (const op of ['SuspendSubscriptionAsync', 'ResumeSubscriptionAsync', 'TerminateSubscriptionAsync', 'ProvisionSubscriptionAsync', 'GetProvisioningStatusAsync']) {
      const call = (c as unknown as Record<string, (a: unknown) => Promise<unknown>>)[op]!;
      const foreign = await call.call(c, { subscriptionId: id }).then(() => null, (x: unknown) => x);
      const missing = await call.call(c, { subscriptionId: 987654321 }).then(() => null, (x: unknown) => x);
      expect(faultCode(foreign), op).to.equal('NOT_FOUND');
      expect(faultMessage(foreign).replace(String(id), 'ID')).to.equal(faultMessage(missing).replace('987654321', 'ID'));
    }
    for (const [method, params] of [
      ['SubscriptionStop_API', [id, 'no']],
      ['SubscriptionStatusUpdate_API', [id, 80, 60]],
    ] as const) {
      const f = fault(await bm(`${world.url}/RPC2`, method, [...params], { Username: other.login, Password: other.password }));
      expect(f.faultCode, method).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
    }
    expect(await state(id)).to.deep.equal({ status: 30, serviceStatus: 50 });
  });

  it('XML-RPC: SubscriptionStatusUpdate_API suspends (80) and resumes (30), other statuses are NOT_ALLOWED; SubscriptionStop_API terminates', async () => {
    const id = await activeSubscription('actions-rpc.example');
    const rpc = `${world.url}/RPC2`;
    const creds = { Username: 'admin', Password: ADMIN_PASSWORD };
    const refused = fault(await bm(rpc, 'SubscriptionStatusUpdate_API', [id, 50, 30], creds));
    expect(refused.faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_ALLOWED);

    ok(await bm(rpc, 'SubscriptionStatusUpdate_API', [id, 80, 30], creds));
    await eventually(async () => ((await state(id)).status === 80 ? true : undefined), 'the suspend');
    expect(await state(id)).to.deep.equal({ status: 80, serviceStatus: 30 });
    ok(await bm(rpc, 'SubscriptionStatusUpdate_API', [id, 30, 50], creds));
    await eventually(async () => ((await state(id)).status === 30 ? true : undefined), 'the resume');
    expect(await state(id)).to.deep.equal({ status: 30, serviceStatus: 50 });

    const reply = ok(await bm(rpc, 'SubscriptionStop_API', [id, 'customer left'], creds));
    expect(String((reply.Result[0] as { Status: string }).Status)).to.match(/^Operation done\./);
    await eventually(async () => ((await state(id)).status === 60 ? true : undefined), 'the termination');
    expect(await state(id)).to.deep.equal({ status: 60, serviceStatus: 90 });
  });
});
