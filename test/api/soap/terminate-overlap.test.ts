import { expect } from 'chai';
import * as soap from 'soap';
import { ManualClock } from '../../../src/clock';
import { toNumber } from '../../../src/db/knex';
import { sandboxState, type SandboxGate } from '../../../plugins/provisioning/sandbox';
import { ADMIN_PASSWORD, startApiWorld, type ApiWorld } from '../../helpers/api';
import { eventually } from '../../helpers/assertions';

/**
 * A TerminateSubscription requested while a SuspendSubscription is half-way (service `stopping`): the suspend still
 * finishes at the gate, and a terminate that then fails for good puts back what the suspend left (suspended,
 * stopped), not the half-way `stopping` it saw when it was requested. A manual clock orders the tasks' attempts.
 */
describe('TerminateSubscription overlapping a suspend still under way (SOAP, a running demo server)', function () {
  this.timeout(120_000);
  const clock = new ManualClock('2026-03-01T10:00:00Z');
  let world: ApiWorld;
  let admin: soap.Client;

  before(async () => {
    world = await startApiWorld({ demo: true, clock });
    admin = await soap.createClientAsync(`${world.url}/soap/provisioning?wsdl`);
    admin.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
  });
  after(() => world?.close());

  async function activeSubscription(domain: string): Promise<number> {
    const db = world.fresh.db;
    const customerId = (await db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id;
    const planId = (await db('plans').where({ name: 'Shared Hosting Basic' }).first('id')).id;
    const periodId = (await db('plan_periods').where({ plan_id: planId, duration: 1, unit: 'month' }).first('id')).id;
    const billing = await soap.createClientAsync(`${world.url}/soap/billing?wsdl`);
    billing.setSecurity(new soap.BasicAuthSecurity('admin', ADMIN_PASSWORD));
    const [placed] = await billing.PlaceOrderAsync({ accountId: customerId, items: { item: [{ planId, periodId, parameters: { parameter: [{ name: 'domain', value: domain }] } }] } });
    return eventually(async () => {
      const sub = await db('subscriptions').where({ order_id: placed.orderId }).first('id', 'status', 'service_status');
      return sub && sub.status === 30 && sub.service_status === 50 ? Number(sub.id) : undefined;
    }, `the order for ${domain} to provision`);
  }

  async function setSandbox(id: number, rules: Record<string, string>): Promise<void> {
    const db = world.fresh.db;
    const row = await db('subscriptions').where({ id }).first('parameters');
    const params = JSON.parse(row.parameters || '{}') as Record<string, string>;
    delete params.sandbox_fail;
    delete params.sandbox_pending;
    await db('subscriptions').where({ id }).update({ parameters: JSON.stringify({ ...params, ...rules }) });
  }

  /** The task once its attempts reached `attempts` and it is waiting again (pending), or once it has settled. */
  async function taskAt(taskId: number, want: { attempts?: number; settled?: boolean }) {
    return eventually(async () => {
      const t = (await world.fresh.db('tasks').where({ id: taskId }).first('status', 'attempts', 'last_error')) as { status: string; attempts: number; last_error: string | null } | undefined;
      if (!t) return undefined;
      if (want.settled) return t.status === 'done' || t.status === 'failed' ? t : undefined;
      return t.status === 'pending' && toNumber(t.attempts) >= want.attempts! ? t : undefined;
    }, `task ${taskId} ${JSON.stringify(want)}`);
  }

  async function gateService(id: number) {
    const sub = (await world.fresh.db('subscriptions').where({ id }).first('vendor_id', 'service_gate', 'gate_reference')) as { vendor_id: number; service_gate: string; gate_reference: string };
    const { gate } = await world.server.services.pluginInstances.resolveGate(toNumber(sub.vendor_id), sub.service_gate);
    return sandboxState(gate as SandboxGate).services[sub.gate_reference];
  }

  it('Suspend (gate pending) -> Terminate -> the suspend finishes -> the terminate fails for good: suspended and stopped, as at the gate', async () => {
    const id = await activeSubscription('overlap-suspend.example');
    // The gate answers the suspend pending (done at its first status poll) and fails every terminate attempt for now.
    await setSandbox(id, { sandbox_pending: 'suspend:1', sandbox_fail: 'terminate:retryable' });

    const [s] = await admin.SuspendSubscriptionAsync({ subscriptionId: id, reason: 'unpaid' });
    expect(s.serviceStatus).to.equal('stopping');
    await taskAt(Number(s.taskId), { attempts: 1 });

    // Terminate while the suspend is half-way (a few seconds later, so the suspend's next attempt comes first).
    clock.advance(3_000);
    const [t] = await admin.TerminateSubscriptionAsync({ subscriptionId: id, reason: 'dunning' });
    expect(t.serviceStatus).to.equal('removing');
    await taskAt(Number(t.taskId), { attempts: 1 });

    // The suspend's retry is due (the terminate's not yet): it polls the gate, which finishes the suspend.
    clock.advance(3_000);
    expect(await taskAt(Number(s.taskId), { settled: true })).to.include({ status: 'done' });
    const [mid] = await admin.GetProvisioningStatusAsync({ subscriptionId: id });
    expect(mid.serviceStatus).to.equal('removing');

    // Now the gate refuses the terminate for good.
    await setSandbox(id, { sandbox_fail: 'terminate' });
    clock.advance(60_000);
    const failed = await taskAt(Number(t.taskId), { settled: true });
    expect(failed.status).to.equal('failed');
    expect(failed.last_error).to.match(/terminate/);

    const [st] = await admin.GetProvisioningStatusAsync({ subscriptionId: id });
    expect(st.serviceStatus, 'the service status after the failed terminate').to.equal('stopped');
    const sub = (await world.fresh.db('subscriptions').where({ id }).first('status')) as { status: number };
    expect(toNumber(sub.status)).to.equal(80);
    expect((await gateService(id))?.status).to.equal('suspended');
    const open = st.tasks.task.filter((x: { status: string }) => ['pending', 'running'].includes(x.status));
    expect(open, 'no task left half-way').to.deep.equal([]);

    // Audited: the suspend says which terminate now puts back its result; the terminate's failure follows.
    const events = (await world.fresh.db('events').where({ object_type: 'subscription', object_id: String(id) }).orderBy('id').select('name', 'payload')) as { name: string; payload: string }[];
    const suspended = events.find((e) => e.name === 'subscription.suspended');
    expect(JSON.parse(suspended!.payload)).to.include({ taskId: Number(s.taskId), reason: 'unpaid' });
    expect(JSON.parse(suspended!.payload).terminateTaskIds).to.deep.equal([Number(t.taskId)]);
    expect(events.map((e) => e.name)).to.include('subscription.terminate_failed');

    // And the operator can resume it, as any suspended subscription.
    await setSandbox(id, {});
    const [r] = await admin.ResumeSubscriptionAsync({ subscriptionId: id });
    expect(await taskAt(Number(r.taskId), { settled: true })).to.include({ status: 'done' });
    const [after] = await admin.GetProvisioningStatusAsync({ subscriptionId: id });
    expect(after.serviceStatus).to.equal('running');
  });

  it('Provision (gate pending) -> Terminate: the terminate waits for the provision and terminates the service it made', async () => {
    const id = await activeSubscription('overlap-provision.example');
    const db = world.fresh.db;
    // As a subscription whose provisioning was given up: not provisioned, no service at the gate.
    const old = (await db('subscriptions').where({ id }).first('gate_reference')) as { gate_reference: string };
    await db('subscriptions').where({ id }).update({ service_status: 10, gate_reference: null });
    await setSandbox(id, { sandbox_pending: 'provision:1' });

    const [p] = await admin.ProvisionSubscriptionAsync({ subscriptionId: id });
    expect(p.serviceStatus).to.equal('provisioning');
    await taskAt(Number(p.taskId), { attempts: 1 });

    clock.advance(3_000);
    const [t] = await admin.TerminateSubscriptionAsync({ subscriptionId: id });
    expect(t.serviceStatus).to.equal('removing');
    // The provision's retry is due first: it polls the gate, which finishes the provision (a new service).
    clock.advance(3_000);
    expect(await taskAt(Number(p.taskId), { settled: true })).to.include({ status: 'done' });
    const made = (await db('subscriptions').where({ id }).first('gate_reference', 'service_status')) as { gate_reference: string | null; service_status: number };
    expect(made.gate_reference).to.be.a('string').and.not.equal(old.gate_reference);
    expect(toNumber(made.service_status), "still removing").to.equal(70);

    clock.advance(60_000);
    expect(await taskAt(Number(t.taskId), { settled: true })).to.include({ status: 'done' });
    const [st] = await admin.GetProvisioningStatusAsync({ subscriptionId: id });
    expect(st.serviceStatus).to.equal('removed');
    expect((await gateService(id))?.status, 'the service the provision made').to.equal('terminated');
    const names = ((await db('events').where({ object_type: 'subscription', object_id: String(id) }).orderBy('id').select('name')) as { name: string }[]).map((e) => e.name);
    expect(names).to.include.members(['subscription.provisioned_while_removing', 'subscription.terminated']);
  });
});
