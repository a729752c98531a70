import { expect } from 'chai';
import sinon from 'sinon';
import { billingActor } from '../../src/billing/documents-service';
import { toBigInt, toNumber } from '../../src/db/knex';
import type { PaymentGateway } from '../../src/plugins/sdk';
import { dialect } from '../helpers/db';
import { makeWorld, type World } from '../helpers/world';
import { makeBook, makeCustomer, makePlan, makeSubscription, type Book } from './run-book';

const d = (s: string) => new Date(s);

describe(`billing run: batched auto-pay (${dialect})`, function () {
  this.timeout(120_000);
  let world: World;
  let book: Book;
  let web: { planId: number; periodIds: number[] };
  /** The idempotency key of every purchase that reached the sandbox gateway. */
  let purchases: string[];
  /** When set, a purchase reaches the gateway but its answer never comes back (the process dies meanwhile). */
  let hang: boolean;

  beforeEach(async () => {
    world = await makeWorld({ start: '2026-01-15T10:00:00Z' });
    book = await makeBook(world);
    web = await makePlan(world, book, { name: 'Web', currency: 'USD', periods: [{ duration: 1, unit: 'month', recurringFee: 1000n }] });
    purchases = [];
    hang = false;
    const instances = world.services.pluginInstances;
    const original = instances.instantiate.bind(instances);
    // The gateway is the real sandbox plugin; the spy sees what reaches it.
    sinon.stub(instances, 'instantiate').callsFake(async (ref: Parameters<typeof original>[0]) => {
      const gw = (await original(ref)) as unknown as PaymentGateway;
      // The plugin instance is kept between calls: spied once.
      const purchase = 'callCount' in gw.purchase ? gw.purchase : sinon.spy(gw, 'purchase');
      return new Proxy(gw, {
        get(target, prop, recv) {
          if (prop === 'purchase') {
            return (req: Parameters<PaymentGateway['purchase']>[0]) => {
              purchases.push(req.idempotencyKey);
              const answer = purchase.call(target, req);
              return hang ? new Promise(() => undefined) : answer;
            };
          }
          const v = Reflect.get(target, prop, recv) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      }) as unknown as Awaited<ReturnType<typeof original>>;
    });
  });
  afterEach(async () => {
    sinon.restore();
    await world.close();
  });

  const run = (asOf: string) => {
    world.clock.set(asOf);
    return world.services.billingRun.run({ asOf: d(asOf), startedBy: 'test' });
  };
  const subscriber = async (name: string, card: 'approve' | 'decline' | 'timeout') => {
    const c = await makeCustomer(world, book, name, { card });
    const id = await makeSubscription(world, book, c, web, { start: d('2026-01-05T00:00:00Z'), expiration: d('2026-02-05T00:00:00Z') });
    return { c, id };
  };
  const expiration = async (id: number) => new Date(toNumber(((await world.deps.db('subscriptions').where({ id }).first('expiration_date')) as { expiration_date: unknown }).expiration_date)).toISOString().slice(0, 10);
  const invoiceOf = async (accountId: number) => (await world.deps.db('documents').where({ type: 'invoice', account_id: accountId }).first('id', 'status', 'open_amount')) as { id: number; status: string; open_amount: unknown };

  it('one batch: a card declines, a call times out (the reconciler settles it, the next run applies it and extends the renewal), a prepaid invoice is not charged; auto-pay twice reaches the gateway once per invoice', async () => {
    const alpha = await subscriber('Alpha', 'approve');
    const beta = await subscriber('Beta', 'approve');
    const decl = await subscriber('Decl', 'decline');
    const slow = await subscriber('Slow', 'timeout');
    const pre = await subscriber('Pre', 'approve');
    // Pre paid 10.00 by wire before the run: its invoice is paid by that credit as it is issued.
    await world.services.documents.recordPayment(world.provider, { accountId: pre.c.accountId, amount: 1000n, method: 'wire', reference: 'W-1' });

    const first = await run('2026-02-01T00:00:00Z');
    expect(first.invoices).to.equal(5);
    expect(first.payments).to.deep.equal({ tried: 4, succeeded: 2, declined: 1, unknown: 1 });
    expect(purchases).to.have.length(4);
    expect(new Set(purchases).size).to.equal(4);
    expect(await expiration(alpha.id)).to.equal('2026-03-05');
    expect(await expiration(beta.id)).to.equal('2026-03-05');
    expect(await expiration(pre.id)).to.equal('2026-03-05');
    expect(await expiration(decl.id)).to.equal('2026-02-05');
    expect(await expiration(slow.id)).to.equal('2026-02-05');
    const statuses = (await world.deps.db('payments').whereNotNull('gateway_instance_id').orderBy('id').select('status')) as { status: string }[];
    expect(statuses.map((s) => s.status).sort()).to.deep.equal(['declined', 'success', 'success', 'unknown']);
    // Two payment documents, numbered as one block after the wire payment's.
    const pays = (await world.deps.db('documents').where({ type: 'payment' }).orderBy('number').select('number', 'method')) as { number: string; method: string }[];
    expect(pays.map((p) => `${p.number}:${p.method}`)).to.deep.equal(['PAY-000001:wire', 'PAY-000002:gateway', 'PAY-000003:gateway']);
    expect(await world.deps.db('events').where({ name: 'invoice.payment_failed' }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);
    expect(await world.deps.db('events').where({ name: 'payment.created' }).count({ n: '*' })).to.deep.equal([{ n: 4 }]);

    // The same auto-pay again (the same keys): every invoice answered from its first attempt, no gateway call.
    const invoices = await Promise.all([alpha, beta, decl, slow].map((s) => invoiceOf(s.c.accountId)));
    const again = await world.services.documents.payInvoices(billingActor(book.vendorId), invoices.map((i) => ({ invoiceId: toNumber(i.id), idempotencyKey: 'autopay:1' })));
    expect(again.map((r) => ('skipped' in r ? r.skipped : r.outcome))).to.deep.equal(['paid', 'paid', 'declined', 'unknown']);
    expect(purchases).to.have.length(4);
    expect((await run('2026-02-01T00:00:00Z')).payments.tried).to.equal(0);
    expect(purchases).to.have.length(4);

    // The reconciler asks the gateway about the timeout: the charge happened. The next run applies it.
    world.clock.set('2026-02-01T01:00:00Z');
    expect((await world.services.payments.reconcilePending(world.provider)).settled).to.equal(1);
    await run('2026-02-01T01:00:00Z');
    expect(await expiration(slow.id)).to.equal('2026-03-05');
    const paid = await invoiceOf(slow.c.accountId);
    expect([paid.status, toBigInt(paid.open_amount)]).to.deep.equal(['paid', 0n]);

    // A day later the declined card is retried once (auto-pay retry 1, a key of its own), and declines again.
    const retry = await run('2026-02-02T00:00:00Z');
    expect(retry.payments).to.deep.equal({ tried: 1, succeeded: 0, declined: 1, unknown: 0 });
    expect(purchases).to.have.length(5);
    expect((await run('2026-02-02T00:00:00Z')).payments.tried).to.equal(0);
    expect(purchases).to.have.length(5);
    expect(await world.deps.db('payments').whereNotNull('gateway_instance_id').count({ n: '*' })).to.deep.equal([{ n: 5 }]);
  });

  it('an invoice paid between being picked and being charged is skipped, not charged', async () => {
    const alpha = await subscriber('Alpha', 'approve');
    const beta = await subscriber('Beta', 'approve');
    await run('2026-02-01T00:00:00Z');
    expect(purchases).to.have.length(2);
    // Two more open invoices; the customer of one pays it by check just before the auto-pay reaches it.
    const open = await Promise.all(
      [alpha, beta].map(async (s) => {
        const [inv] = await world.deps.db.transaction((tx) =>
          world.services.documents.issueInvoices(tx, d('2026-02-01T00:00:00Z'), [{ vendorId: book.vendorId, accountId: s.c.accountId, currency: 'USD', issueDate: d('2026-02-01T00:00:00Z'), lines: [{ kind: 'adjustment', description: 'Setup', quantity: '1', unitPrice: 700n, amount: 700n }] }]),
        );
        return inv!.documentId;
      }),
    );
    await world.services.documents.recordPayment(world.provider, { accountId: beta.c.accountId, amount: 700n, method: 'check', invoiceId: open[1] });
    const out = await world.services.documents.payInvoices(billingActor(book.vendorId), open.map((invoiceId) => ({ invoiceId, idempotencyKey: 'autopay:1' })));
    expect(out.map((r) => ('skipped' in r ? r.skipped : r.outcome))).to.deep.equal(['paid', 'NOT_ALLOWED']);
    expect(purchases).to.have.length(3);
    expect((await world.services.documents.getBalance(world.provider, beta.c.accountId)).balance).to.equal(0n);
  });

  it('a crash after the gateway charged but before settling: the rerun does not charge again, the reconciler settles it, the next run applies it', async () => {
    const alpha = await subscriber('Alpha', 'approve');
    hang = true;
    // The run reaches the gateway and never hears back: as if the process died there.
    let error: unknown;
    void run('2026-02-01T00:00:00Z').catch((e: unknown) => (error = e));
    for (let i = 0; i < 200 && purchases.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(error).to.equal(undefined);
    expect(purchases).to.have.length(1);
    hang = false;
    const pending = (await world.deps.db('payments').first('status')) as { status: string };
    expect(pending.status).to.equal('pending');
    // A rerun: the invoice's payment is still under way, so nothing is charged.
    world.clock.set('2026-02-01T00:01:00Z');
    expect((await world.services.billingRun.run({ asOf: d('2026-02-01T00:01:00Z'), startedBy: 'test' })).payments.tried).to.equal(0);
    expect(purchases).to.have.length(1);
    expect(await expiration(alpha.id)).to.equal('2026-02-05');
    // Past the grace period the reconciler asks the gateway, which charged it; the next run applies it.
    world.clock.set('2026-02-01T01:00:00Z');
    expect((await world.services.payments.reconcilePending(world.provider)).settled).to.equal(1);
    await run('2026-02-01T01:00:00Z');
    expect(await expiration(alpha.id)).to.equal('2026-03-05');
    expect((await invoiceOf(alpha.c.accountId)).status).to.equal('paid');
    expect(purchases).to.have.length(1);
  });
});
