import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import cron from 'node-cron';
import { ManualClock } from '../../src/clock';
import { loadConfig } from '../../src/config';
import type { Actor } from '../../src/context';
import { AppError } from '../../src/domain/errors';
import { RECONCILER_TASK_NAME } from '../../src/payments/reconcile-schedule';
import { PaymentsService } from '../../src/payments/payments-service';
import type { PaymentGateway } from '../../src/plugins/sdk';
import { providerActor, startApiWorld, type ApiWorld } from '../helpers/api';
import { accountActor, makeWorld, type World } from '../helpers/world';

const APPROVED = { number: '4242424242424242', expMonth: 12, expYear: 2030, cvv: '123' };
const TIMES_OUT = { number: '4000000000000119', expMonth: 12, expYear: 2030, cvv: '123' };

async function refusal(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(AppError);
    return e as AppError;
  }
  throw new Error('expected the call to be refused, but it succeeded');
}

describe('a disabled payment gateway instance', () => {
  let world: World;
  let payments: PaymentsService;
  let customer: Actor;
  let gatewayId: number;

  beforeEach(async () => {
    world = await makeWorld();
    const { pluginInstances } = world.services;
    payments = new PaymentsService(world.deps, (id) => pluginInstances.instantiate<PaymentGateway>(id), { pendingGraceMs: 60_000, twinWaitMs: 1_000 });
    // The processor's state in a file: the instance is built again after its status changes.
    const stateFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hw-gw-')), 'cards.json');
    gatewayId = await pluginInstances.create(world.provider, { kind: 'payment', plugin: 'sandbox', name: 'Main cards', settings: { stateFile } });
    customer = await accountActor(world, world.provider, 'customer', 'Dora');
  });
  afterEach(() => world?.close());

  it('takes no new charge (NOT_ALLOWED naming the gateway), but its earlier payments can still be refunded and voided', async () => {
    const tool = await payments.storePayTool(world.provider, customer.accountId, gatewayId, APPROVED, { makeDefault: true });
    const first = await payments.charge(world.provider, { accountId: customer.accountId, amount: 1000n, currency: 'USD', payTool: { payToolId: tool.payToolId }, description: 'First' });
    const second = await payments.charge(world.provider, { accountId: customer.accountId, amount: 500n, currency: 'USD', payTool: { payToolId: tool.payToolId }, description: 'Second', idempotencyKey: 'second' });
    expect([first.status, second.status]).to.deep.equal(['success', 'success']);

    await world.services.pluginInstances.update(world.provider, gatewayId, { status: 'disabled' });
    const before = Number(((await world.deps.db('payments').count({ n: '*' })) as { n: number }[])[0]!.n);

    const byTool = await refusal(payments.charge(world.provider, { accountId: customer.accountId, amount: 700n, currency: 'USD', payTool: { payToolId: tool.payToolId }, description: 'Third' }));
    expect({ code: byTool.code, field: byTool.field }).to.deep.equal({ code: 'NOT_ALLOWED', field: 'payTool.payToolId' });
    expect(byTool.message).to.contain("'Main cards'").and.to.contain('disabled');
    const byCard = await refusal(payments.charge(world.provider, { accountId: customer.accountId, amount: 700n, currency: 'USD', gatewayInstanceId: gatewayId, payTool: { card: APPROVED }, description: 'Card', mode: 'authorize' }));
    expect({ code: byCard.code, field: byCard.field }).to.deep.equal({ code: 'NOT_ALLOWED', field: 'gatewayInstanceId' });
    expect(Number(((await world.deps.db('payments').count({ n: '*' })) as { n: number }[])[0]!.n)).to.equal(before);

    // The same key again still answers the payment it made while the gateway was enabled.
    const replay = await payments.charge(world.provider, { accountId: customer.accountId, amount: 500n, currency: 'USD', payTool: { payToolId: tool.payToolId }, description: 'Second', idempotencyKey: 'second' });
    expect(replay.paymentId).to.equal(second.paymentId);

    const refund = await payments.refund(world.provider, first.paymentId, { amount: 400n });
    expect(refund).to.include({ status: 'success', kind: 'refund', amount: 400n });
    const voided = await payments.void(world.provider, second.paymentId);
    expect(voided.status).to.equal('success');
    expect((await payments.get(world.provider, second.paymentId)).status).to.equal('voided');

    await world.services.pluginInstances.update(world.provider, gatewayId, { status: 'active' });
    const again = await payments.charge(world.provider, { accountId: customer.accountId, amount: 700n, currency: 'USD', payTool: { payToolId: tool.payToolId }, description: 'Third' });
    expect(again.status).to.equal('success');
  });
});

describe('the payment reconciler schedule', () => {
  it('validates PAYMENT_RECONCILE_CRON, defaulting to every 5 minutes', () => {
    expect(loadConfig({ NODE_ENV: 'test' } as NodeJS.ProcessEnv).paymentReconcileCron).to.equal('*/5 * * * *');
    expect(loadConfig({ NODE_ENV: 'test', PAYMENT_RECONCILE_CRON: '0 * * * *' } as NodeJS.ProcessEnv).paymentReconcileCron).to.equal('0 * * * *');
    expect(() => loadConfig({ NODE_ENV: 'test', PAYMENT_RECONCILE_CRON: 'every five minutes' } as NodeJS.ProcessEnv)).to.throw(/PAYMENT_RECONCILE_CRON: must be a cron expression/);
  });

  describe('on a running server', () => {
    let api: ApiWorld;
    const clock = new ManualClock('2026-03-01T12:00:00Z');
    const reconcilers = () => [...cron.getTasks().values()].filter((t) => t.name === RECONCILER_TASK_NAME);

    beforeEach(async () => {
      api = await startApiWorld({ clock, config: { paymentReconcileCron: '*/7 * * * *' } });
    });
    afterEach(async () => {
      await api?.close();
    });

    it('is installed with the configured expression, and a run it triggers settles an unknown payment; closing the server removes it', async () => {
      const installed = reconcilers();
      expect(installed).to.have.length(1);
      expect(installed[0]!.getPattern()).to.equal('*/7 * * * *');

      const { services } = api.server;
      const provider = await providerActor(api);
      const gatewayId = await services.pluginInstances.create(provider, { kind: 'payment', plugin: 'sandbox', name: 'cards' });
      const customer = await services.accounts.create(provider, { type: 'customer', companyName: 'Late Answers', contacts: { admin: { firstName: 'L', lastName: 'A', email: 'la@example.com' } } });
      const p = await services.payments.charge(provider, { accountId: customer, amount: 2500n, currency: 'USD', gatewayInstanceId: gatewayId, payTool: { card: TIMES_OUT }, description: 'Order' });
      expect(p.status).to.equal('unknown');

      // The cron trigger, fired by hand instead of waiting for the minute.
      await installed[0]!.execute();
      const after = await services.payments.get(provider, p.paymentId);
      expect(after.status).to.equal('success');
      expect(after.reference).to.match(/^ch_/);

      await api.close();
      api = undefined as unknown as ApiWorld;
      expect(reconcilers()).to.have.length(0);
    });
  });
});
