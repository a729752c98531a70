import { expect } from 'chai';
import { DEFAULT_BILLING_SETTINGS } from '../../src/billing/settings';
import { inTransaction } from '../../src/db/transaction';
import { failure } from '../helpers/assertions';
import { dialect } from '../helpers/db';
import { accountActor, makeWorld, type World } from '../helpers/world';

const AT = new Date('2026-02-01T00:00:00Z');

describe(`billing settings per vendor (${dialect})`, function () {
  this.timeout(60_000);
  let world: World;
  before(async () => {
    world = await makeWorld({ start: AT.toISOString() });
  });
  after(async () => world.close());

  it('a vendor without settings gets the documented defaults; set changes only the given fields, audited', async () => {
    const settings = world.services.billingSettings;
    const reseller = await accountActor(world, world.provider, 'reseller', 'Settings Reseller');
    expect(await settings.get(world.provider, reseller.accountId)).to.deep.equal(DEFAULT_BILLING_SETTINGS);
    expect(DEFAULT_BILLING_SETTINGS).to.include({ renewDaysBefore: 7, invoiceDueDays: 7, graceDays: 3, suspendDays: 10, terminateDays: 30, lateFee: null, timeZone: 'UTC' });
    const s = await settings.set(reseller, reseller.accountId, { invoiceDueDays: 30, lateFee: 500n, timeZone: 'Europe/Berlin' });
    expect(s).to.deep.include({ invoiceDueDays: 30, lateFee: 500n, lateFeeDays: 0, timeZone: 'Europe/Berlin', renewDaysBefore: 7 });
    expect(await settings.get(world.provider, reseller.accountId)).to.deep.equal(s);
    const again = await settings.set(reseller, reseller.accountId, { renewDaysBefore: 14 });
    expect(again).to.deep.include({ renewDaysBefore: 14, invoiceDueDays: 30, lateFee: 500n });
    const audit = (await world.deps.db('audit_log').where({ operation: 'billing.settings.set' }).count({ n: '*' })) as { n: unknown }[];
    expect(Number(audit[0]!.n)).to.equal(2);

    // The due date of a new invoice follows the vendor's invoiceDueDays.
    const customer = await accountActor(world, reseller, 'customer', 'Settings Customer', reseller.accountId);
    const [inv] = await inTransaction(world.deps.db, (tx) =>
      world.services.documents.issueInvoices(tx, AT, [{ vendorId: reseller.accountId, accountId: customer.accountId, currency: 'USD', issueDate: AT, lines: [{ kind: 'recurring', description: 'x', quantity: '1', unitPrice: 100n, amount: 100n }] }]),
    );
    expect(inv!.dueDate.toISOString()).to.equal('2026-03-03T00:00:00.000Z');
  });

  it('refuses bad values naming the field, customers, and accounts outside the caller', async () => {
    const settings = world.services.billingSettings;
    const reseller = await accountActor(world, world.provider, 'reseller', 'Settings Reseller 2');
    await failure(settings.set(reseller, reseller.accountId, { invoiceDueDays: -1 }), 'INVALID_ARGUMENT', 'invoiceDueDays');
    await failure(settings.set(reseller, reseller.accountId, { graceDays: 20, suspendDays: 10 }), 'INVALID_ARGUMENT', 'suspendDays');
    await failure(settings.set(reseller, reseller.accountId, { autopayRetryDays: [3, 1] }), 'INVALID_ARGUMENT', 'autopayRetryDays');
    await failure(settings.set(reseller, reseller.accountId, { timeZone: 'Mars/Olympus' }), 'INVALID_ARGUMENT', 'timeZone');
    await failure(settings.set(reseller, reseller.accountId, { lateFee: 0n }), 'INVALID_ARGUMENT', 'lateFee');
    const customer = await accountActor(world, reseller, 'customer', 'Settings Customer 2', reseller.accountId);
    await failure(settings.set(reseller, customer.accountId, { invoiceDueDays: 1 }), 'NOT_ALLOWED', 'vendorId');
    await failure(settings.get(reseller, world.provider.accountId), 'NOT_FOUND');
  });
});
