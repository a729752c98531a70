import { expect } from 'chai';
import { XMLRPC_FAULT_CODES } from '../../../src/api/api-errors';
import { ManualClock } from '../../../src/clock';
import type { Actor } from '../../../src/context';
import { toNumber } from '../../../src/db/knex';
import { accountWithApiUser, providerActor, startApiWorld, type ApiWorld } from '../../helpers/api';
import type { World } from '../../helpers/world';
import { makeBook, makePlan, makeSubscription } from '../../billing/run-book';
import { bm, fault, result } from './client';

/**
 * BM SubscriptionTakeFromCreditHold_API through real XML-RPC bytes: a subscription the billing run billed and
 * dunning suspended for non-payment (its service stopped) is resumed through its gate once nothing is overdue.
 */
describe('XML-RPC SubscriptionTakeFromCreditHold_API', function () {
  this.timeout(60_000);
  const clock = new ManualClock('2026-01-15T00:00:00Z');
  let world: ApiWorld;
  let rpc: string;
  let provider: Actor;
  let customer: { accountId: number; login: string; password: string };
  let held: number;
  let suspendedByHand: number;
  let invoiceId: number;

  const subRow = async (id: number) => {
    const r = (await world.fresh.db('subscriptions').where({ id }).first('status', 'service_status')) as { status: unknown; service_status: unknown };
    return { status: toNumber(r.status), service: toNumber(r.service_status) };
  };

  before(async () => {
    world = await startApiWorld({ clock });
    rpc = `${world.url}/RPC2`;
    provider = await providerActor(world);
    const services = world.server.services;
    const asWorld = { deps: services.deps, services, clock, provider } as unknown as World;
    const book = await makeBook(asWorld);
    const web = await makePlan(asWorld, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    customer = await accountWithApiUser(world, 'customer', 'Held Customer');
    const row = (await world.fresh.db('accounts').where({ id: customer.accountId }).first('path')) as { path: string };
    const actor: Actor = { userId: null, accountId: customer.accountId, accountPath: row.path, accountType: 'customer', roles: ['admin'], channel: 'system' };
    held = await makeSubscription(asWorld, book, actor, web, { start: new Date('2026-01-05T00:00:00Z'), expiration: new Date('2026-02-05T00:00:00Z') });
    suspendedByHand = await makeSubscription(asWorld, book, actor, web, { start: new Date('2026-01-20T00:00:00Z'), expiration: new Date('2026-02-20T00:00:00Z') });
    // The renewal is billed on 02-01 (due 02-08); the customer has no card.
    clock.set('2026-02-01T00:00:00Z');
    await services.billingRun.run({ asOf: clock.now(), startedBy: 'test' });
    invoiceId = toNumber(((await world.fresh.db('document_lines').where({ subscription_id: held }).first('document_id')) as { document_id: number }).document_id);
    // What dunning and the gate leave 10 days past due: the suspend step taken, the service stopping (then stopped).
    clock.set('2026-02-18T00:00:00Z');
    await world.fresh.db('dunning_steps').insert([
      { document_id: invoiceId, step: 'grace', outcome: 'done', at: new Date('2026-02-11T00:00:00Z').getTime() },
      { document_id: invoiceId, step: 'suspend', outcome: 'requested', at: clock.now().getTime() },
    ]);
    await world.fresh.db('subscriptions').where({ id: held }).update({ status: 80, service_status: 60, hold_reason: 'credit' });
    await world.fresh.db('subscriptions').where({ id: suspendedByHand }).update({ status: 80, service_status: 30, hold_reason: 'admin' });
  });
  after(async () => world?.close());

  it('refuses while the invoice is overdue, names the amount, and changes nothing', async () => {
    await world.fresh.db('subscriptions').where({ id: held }).update({ service_status: 30 });
    const f = fault(await bm(rpc, 'SubscriptionTakeFromCreditHold_API', [held, 1, 'promised to pay']));
    expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_ALLOWED);
    expect(f.faultString).to.contain(`Account ${customer.accountId} still has 10.00 USD overdue`);
    expect(await subRow(held)).to.deep.equal({ status: 80, service: 30 });
    expect(await world.fresh.db('tasks').where({ kind: 'subscription.resume' })).to.have.length(0);
    await world.fresh.db('subscriptions').where({ id: held }).update({ service_status: 60 });
  });

  it('refuses a subscription suspended for another reason, the customer itself, and answers NOT_FOUND like PBA', async () => {
    const other = fault(await bm(rpc, 'SubscriptionTakeFromCreditHold_API', [suspendedByHand, 0, '']));
    expect(other.faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_ALLOWED);
    expect(other.faultString).to.contain('not for non-payment');
    const own = fault(await bm(rpc, 'SubscriptionTakeFromCreditHold_API', [held, 0, ''], { Username: customer.login, Password: customer.password }));
    expect(own.faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_ALLOWED);
    expect(own.faultString).to.contain('cannot take its own subscription from credit hold');
    expect(fault(await bm(rpc, 'SubscriptionTakeFromCreditHold_API', [999_999, 0, '']))).to.deep.equal({
      faultCode: XMLRPC_FAULT_CODES.NOT_FOUND,
      faultString: 'Table Subscription does not contain row with ID 999999.',
    });
  });

  it("answers another reseller's credential NOT_FOUND for the held subscription, exactly like a missing id, and changes nothing", async () => {
    const stranger = await accountWithApiUser(world, 'reseller', 'Stranger Reseller');
    const as = { Username: stranger.login, Password: stranger.password };
    const foreign = fault(await bm(rpc, 'SubscriptionTakeFromCreditHold_API', [held, 0, ''], as));
    const missing = fault(await bm(rpc, 'SubscriptionTakeFromCreditHold_API', [999_998, 0, ''], as));
    expect(foreign.faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
    expect(foreign.faultString).to.equal(`Table Subscription does not contain row with ID ${held}.`);
    expect(missing.faultString).to.equal('Table Subscription does not contain row with ID 999998.');
    expect(await subRow(held)).to.deep.equal({ status: 80, service: 60 });
    expect(await world.fresh.db('tasks').where({ kind: 'subscription.resume' })).to.have.length(0);
  });

  it('once paid (the payment came while the service was still stopping, so it was not resumed then): resumed through the gate, audited, event', async () => {
    // Paid by check while the suspension is still reaching the gate: the automatic resume is refused then.
    await world.server.services.documents.recordPayment(provider, { accountId: customer.accountId, amount: 1000n, currency: 'USD', method: 'check', reference: 'CHK-9', invoiceId });
    expect(await world.fresh.db('tasks').where({ kind: 'subscription.resume' })).to.have.length(0);
    // The gate finishes the suspension: the subscription stays on credit hold.
    await world.fresh.db('subscriptions').where({ id: held }).update({ service_status: 30 });

    const answer = result(await bm(rpc, 'SubscriptionTakeFromCreditHold_API', [held, 7, 'paid by check']));
    const task = (await world.fresh.db('tasks').where({ kind: 'subscription.resume', object_id: String(held) }).first('id', 'payload')) as { id: number; payload: string };
    expect(answer).to.deep.equal({ Status: `Operation done. Task ${toNumber(task.id)}.` });
    expect(JSON.parse(task.payload)).to.include({ subscriptionId: held, action: 'resume', reason: 'Taken from credit hold: Reason 7: paid by check' });
    const events = (await world.fresh.db('events').where({ name: 'subscription.credit_hold_lifted' }).select('object_id', 'payload')) as { object_id: string; payload: string }[];
    expect(events).to.have.length(1);
    expect(JSON.parse(events[0]!.payload)).to.deep.equal({ subscriptionId: held, accountId: customer.accountId, invoiceIds: [invoiceId], taskId: toNumber(task.id), reason: 'Reason 7: paid by check' });
    const audit = (await world.fresh.db('audit_log').where({ operation: 'TakeFromCreditHold' }).select('object_id')) as { object_id: unknown }[];
    expect(audit.map((a) => String(a.object_id))).to.deep.equal([String(held)]);
  });
});
