import { expect } from 'chai';
import * as soap from 'soap';
import { accountWithApiUser, ADMIN_PASSWORD, startApiWorld, type ApiWorld } from '../helpers/api';
import { eventually } from '../helpers/assertions';

interface WireTask {
  taskId: number;
  subscriptionId?: number;
  action: string;
  status: string;
  attempts: number;
}

describe('ProvisioningService ListTasks lists the gate calls of orders and subscription actions (real SOAP, a running demo server)', function () {
  this.timeout(120_000);
  let world: ApiWorld;

  async function client(service: 'billing' | 'provisioning', login: string, password: string): Promise<soap.Client> {
    const c = await soap.createClientAsync(`${world.url}/soap/${service}?wsdl`);
    c.setSecurity(new soap.BasicAuthSecurity(login, password));
    return c;
  }

  before(async () => {
    world = await startApiWorld({ demo: true });
  });
  after(() => world?.close());

  it('shows the saga provision call and a suspend, each with its subscription and action, to the admin and the reseller above; not to another reseller', async () => {
    const db = world.fresh.db;
    const customerId = Number((await db('accounts').where({ company_name: 'Bluebird Bakery' }).first('id')).id);
    const planId = Number((await db('plans').where({ name: 'Shared Hosting Basic' }).first('id')).id);
    const periodId = Number((await db('plan_periods').where({ plan_id: planId, duration: 1, unit: 'month' }).first('id')).id);
    const billing = await client('billing', 'admin', ADMIN_PASSWORD);
    const [placed] = await billing.PlaceOrderAsync({ accountId: customerId, items: { item: [{ planId, periodId, parameters: { parameter: [{ name: 'domain', value: 'tasks-bakery.example' }] } }] } });
    const subscriptionId = await eventually(async () => {
      const sub = await db('subscriptions').where({ order_id: placed.orderId }).first('id', 'status');
      return sub && Number(sub.status) === 30 ? Number(sub.id) : undefined;
    }, 'the order to provision');

    const admin = await client('provisioning', 'admin', ADMIN_PASSWORD);
    const [s] = await admin.SuspendSubscriptionAsync({ subscriptionId });
    await eventually(async () => {
      const t = await db('tasks').where({ id: s.taskId }).first('status');
      return t?.status === 'done' ? true : undefined;
    }, 'the suspend task');

    const [all] = await admin.ListTasksAsync({});
    const mine = (all.tasks.task as WireTask[]).filter((t) => t.subscriptionId === subscriptionId);
    expect(mine.map((t) => [t.action, t.status])).to.deep.equal([
      ['suspend', 'succeeded'],
      ['provision', 'succeeded'],
    ]);
    expect(mine[0]!.taskId).to.equal(Number(s.taskId));
    // Only gate calls: no order.advance (workflow step) task is listed.
    const kinds = (await db('tasks').whereIn('id', (all.tasks.task as WireTask[]).map((t) => t.taskId)).select('kind')) as { kind: string }[];
    expect(kinds.map((k) => k.kind)).to.not.include('order.advance');
    expect(all.total).to.equal((all.tasks.task as WireTask[]).length);
    const [done] = await admin.ListTasksAsync({ status: 'succeeded' });
    expect((done.tasks.task as WireTask[]).map((t) => t.taskId)).to.include(Number(s.taskId));

    const reseller = await client('provisioning', 'reseller', world.server.seed.logins.find((l) => l.login === 'reseller')!.password);
    const [theirs] = await reseller.ListTasksAsync({});
    expect((theirs.tasks.task as WireTask[]).filter((t) => t.subscriptionId === subscriptionId).map((t) => t.action)).to.deep.equal(['suspend', 'provision']);

    const stranger = await accountWithApiUser(world, 'reseller', 'Tasks Stranger');
    const other = await client('provisioning', stranger.login, stranger.password);
    const [none] = await other.ListTasksAsync({});
    expect(none.total).to.equal(0);
  });
});
