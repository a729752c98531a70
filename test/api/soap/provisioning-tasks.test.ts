import { expect } from 'chai';
import * as soap from 'soap';
import { accountWithApiUser, startApiWorld, ADMIN_PASSWORD, type ApiWorld } from '../../helpers/api';

interface SoapFault {
  root?: { Envelope?: { Body?: { Fault?: { detail?: { Error?: { code?: string } } } } } };
}

describe('ProvisioningService ListTasks and RetryTask', () => {
  let world: ApiWorld;
  let customerA: { accountId: number };
  let resellerB: { login: string; password: string };
  let taskId: number;

  async function client(login: string, password: string) {
    const c = await soap.createClientAsync(`${world.url}/soap/provisioning?wsdl`);
    c.setSecurity(new soap.BasicAuthSecurity(login, password));
    return c;
  }

  before(async () => {
    world = await startApiWorld();
    const resellerA = await accountWithApiUser(world, 'reseller', 'Tasks Reseller A');
    resellerB = await accountWithApiUser(world, 'reseller', 'Tasks Reseller B');
    customerA = await accountWithApiUser(world, 'customer', 'Tasks Customer A', resellerA.accountId);
    const { tasks, deps } = world.server.services;
    taskId = await tasks.enqueue(deps.db, { kind: 'gate.provision', queue: 'provisioning', accountId: customerA.accountId, objectType: 'subscription', objectId: 77, maxAttempts: 1 });
    // On MariaDB a concurrent SKIP LOCKED scan (the server's own worker polling) can hide a due row for a moment.
    let leased: Awaited<ReturnType<typeof tasks.lease>>[number] | undefined;
    for (let i = 0; i < 50 && !leased; i++) {
      [leased] = await tasks.lease('test-worker', { queues: ['provisioning'], limit: 1, leaseMs: 60_000 });
      if (!leased) await new Promise((r) => setTimeout(r, 20));
    }
    if (!leased) throw new Error('the task was never leased');
    await tasks.fail(leased.taskId, 'test-worker', 'control panel answered 503', { retryable: true });
  });
  after(() => world.close());

  it('lists a failed gate call with its action, subscription, attempts and last error', async () => {
    const c = await client('admin', ADMIN_PASSWORD);
    const [r] = await c.ListTasksAsync({ status: 'failed' });
    expect(r.total).to.equal(1);
    const t = r.tasks.task[0];
    expect(t).to.include({ taskId, subscriptionId: 77, action: 'provision', status: 'failed', attempts: 1, lastError: 'control panel answered 503' });
  });

  it('retries it: the task is pending again and shows so in the list', async () => {
    const c = await client('admin', ADMIN_PASSWORD);
    const [r] = await c.RetryTaskAsync({ taskId });
    expect(r.task).to.include({ taskId, status: 'waiting_retry', attempts: 1 });
    const [pending] = await c.ListTasksAsync({ status: 'waiting_retry' });
    expect(pending.tasks.task.map((t: { taskId: number }) => t.taskId)).to.include(taskId);
    const audit = await world.fresh.db('audit_log').where({ operation: 'RetryTask', outcome: 'ok' }).first();
    expect(audit).to.not.equal(undefined);
  });

  it("hides another reseller's task: not in its list, and retrying it answers exactly like a missing id", async () => {
    const c = await client(resellerB.login, resellerB.password);
    const [r] = await c.ListTasksAsync({});
    expect(r.total).to.equal(0);
    const faultOf = async (id: number) => {
      let fault: SoapFault | undefined;
      await c.RetryTaskAsync({ taskId: id }).catch((e: SoapFault) => (fault = e));
      return fault?.root?.Envelope?.Body?.Fault?.detail?.Error as { code?: string; message?: string } | undefined;
    };
    const foreign = await faultOf(taskId);
    const missing = await faultOf(99999999);
    expect(foreign?.code).to.equal('NOT_FOUND');
    expect(foreign?.message?.replace(String(taskId), 'N')).to.equal(missing?.message?.replace('99999999', 'N'));
  });

  it('refuses an unknown status filter with INVALID_ARGUMENT on status', async () => {
    const res = await fetch(`${world.url}/soap/provisioning`, {
      method: 'POST',
      headers: { 'content-type': 'text/xml', authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` },
      body: '<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:p="urn:hostwright:provisioning:v1"><soap:Body><p:ListTasks><p:status>stuck</p:status></p:ListTasks></soap:Body></soap:Envelope>',
    });
    const body = await res.text();
    expect(body).to.contain('<tns:code>INVALID_ARGUMENT</tns:code>');
    expect(body).to.contain('<tns:field>status</tns:field>');
  });
});

describe('ProvisioningService ListServiceGates', () => {
  let world: ApiWorld;
  before(async () => {
    world = await startApiWorld({ demo: true });
  });
  after(() => world.close());

  it("lists the demo's sandbox gate as enabled, through real SOAP", async () => {
    const c = await soap.createClientAsync(`${world.url}/soap/provisioning?wsdl`);
    c.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
    const [r] = await c.ListServiceGatesAsync({});
    expect(r.gates.gate).to.deep.include({ name: 'sandbox', plugin: 'sandbox', kind: 'provisioning', status: 'enabled' });
    expect(c.lastResponse).to.match(/<gates><gate><name>sandbox<\/name><plugin>sandbox<\/plugin><kind>provisioning<\/kind><status>enabled<\/status><\/gate>/);
  });

  it('shows a disabled gate as disabled', async () => {
    await world.fresh.db('plugin_instances').where({ name: 'sandbox' }).update({ status: 'disabled' });
    const c = await soap.createClientAsync(`${world.url}/soap/provisioning?wsdl`);
    c.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
    const [r] = await c.ListServiceGatesAsync({});
    expect(r.gates.gate).to.deep.include({ name: 'sandbox', plugin: 'sandbox', kind: 'provisioning', status: 'disabled' });
  });
});
