import { expect } from 'chai';
import { XMLRPC_FAULT_CODES } from '../../../src/api/api-errors';
import type { Actor } from '../../../src/context';
import { accountWithApiUser, providerActor, startApiWorld, type ApiWorld } from '../../helpers/api';
import { bm, execute, fault, result } from './client';
import { XmlRpcDouble, type XmlRpcValue } from '../../../src/api/xmlrpc/codec';

const INT_NULL = -2147483648;

/** Money cells arrive as XmlRpcDouble; this reads a row with each double as its exact wire text. */
const asText = (row: XmlRpcValue[]): XmlRpcValue[] => row.map((v) => (v instanceof XmlRpcDouble ? v.text : v));

/** Catalog methods of the BM gate over the demo catalog, through real XML-RPC bytes. */
describe('XML-RPC catalog methods', () => {
  let world: ApiWorld;
  let rpc: string;
  let provider: Actor;
  let plans: Record<string, number>;

  before(async () => {
    world = await startApiWorld({ demo: true });
    rpc = `${world.url}/RPC2`;
    provider = await providerActor(world);
    const rows = (await world.fresh.db('plans').select('id', 'name')) as { id: number; name: string }[];
    plans = Object.fromEntries(rows.map((r) => [r.name, r.id]));
  });
  after(async () => {
    await world?.close();
  });

  describe('PlanDetailsGet_API', () => {
    it('answers [PlanID, VendorAccountID, Name, ShortDescription, LongDescription, ServiceTemplateID, GateName, Category, Published, Trial, Currency]', async () => {
      const id = plans['Shared Hosting Basic'];
      const template = ((await world.fresh.db('plans').where({ id }).first('template_id')) as { template_id: number }).template_id;
      expect(result(await bm(rpc, 'PlanDetailsGet_API', [id]))).to.deep.equal([
        id,
        provider.accountId,
        'Shared Hosting Basic',
        'One site, 10 GB disk, 100 GB traffic, 10 mailboxes.',
        'One site, 10 GB disk, 100 GB traffic, 10 mailboxes.',
        template,
        'sandbox',
        'Web Hosting',
        1,
        0,
        'USD',
      ]);
    });

    it('marks a trial plan with Trial 1', async () => {
      expect((result(await bm(rpc, 'PlanDetailsGet_API', [plans['Shared Hosting Trial']])) as unknown[])[9]).to.equal(1);
    });

    it('answers a missing plan with NOT_FOUND reading "Table Plan does not contain row with ID 99999999."', async () => {
      const f = fault(await bm(rpc, 'PlanDetailsGet_API', [99999999]));
      expect(f).to.deep.equal({ faultCode: XMLRPC_FAULT_CODES.NOT_FOUND, faultString: 'Table Plan does not contain row with ID 99999999.' });
    });
  });

  describe('PlanListAvailableGet_API', () => {
    it('lists the caller\'s sellable plans as [PlanID, Name, ShortDescription, GateName, Category, Trial] rows', async () => {
      const rows = result(await bm(rpc, 'PlanListAvailableGet_API', [INT_NULL, '', '', INT_NULL])) as unknown[][];
      expect(rows).to.have.length(6);
      expect(rows[0]).to.deep.equal([plans['Shared Hosting Basic'], 'Shared Hosting Basic', 'One site, 10 GB disk, 100 GB traffic, 10 mailboxes.', 'sandbox', 'Web Hosting', 0]);
      expect(rows.map((r) => r[0])).to.deep.equal([...rows.map((r) => r[0] as number)].sort((a, b) => a - b));
    });

    it('sorts by the SortNo column (2: Name)', async () => {
      const rows = result(await bm(rpc, 'PlanListAvailableGet_API', [INT_NULL, '', '', 2])) as unknown[][];
      expect(rows.map((r) => r[1])).to.deep.equal(['Business Mail', 'Domain Registration', 'Shared Hosting Basic', 'Shared Hosting Pro', 'Shared Hosting Trial', 'VPS Standard']);
    });

    it('filters by GateName and by category', async () => {
      const mail = result(await bm(rpc, 'PlanListAvailableGet_API', [INT_NULL, 'sandbox', 'Mail', 1])) as unknown[][];
      expect(mail.map((r) => r[1])).to.deep.equal(['Business Mail']);
      expect(result(await bm(rpc, 'PlanListAvailableGet_API', [INT_NULL, 'no-such-gate', '', 1]))).to.deep.equal([]);
    });

    it('lists a vendor\'s catalog for the VendorID given', async () => {
      const rows = result(await bm(rpc, 'PlanListAvailableGet_API', [provider.accountId, '', 'VPS', 1])) as unknown[][];
      expect(rows.map((r) => r[1])).to.deep.equal(['VPS Standard']);
    });

    it('shows a customer its vendor\'s published catalog', async () => {
      const customer = await accountWithApiUser(world, 'customer', 'Catalog Shopper');
      const reply = await execute(rpc, { Server: 'BM', Method: 'PlanListAvailableGet_API', Params: [INT_NULL, '', '', 1], Username: customer.login, Password: customer.password });
      expect((result(reply) as unknown[][]).map((r) => r[1])).to.include.members(['Shared Hosting Basic', 'VPS Standard']);
    });
  });

  describe('PlanPeriodListGet_API', () => {
    it('answers rows [PlanPeriodID, Period, PeriodType, Trial, SetupFee, SubscriptionFee, RenewalFee, TransferFee, NonRefundableAmt, RefundPeriod, Enabled]', async () => {
      const rows = (result(await bm(rpc, 'PlanPeriodListGet_API', [plans['Shared Hosting Basic'], INT_NULL])) as XmlRpcValue[][]).map(asText);
      const ids = rows.map((r) => r[0]);
      expect(rows).to.deep.equal([
        [ids[0], 1, 2, 0, '9.99', '4.99', '4.99', '0.00', '0.00', 14, 1],
        [ids[1], 3, 2, 0, '9.99', '14.22', '14.22', '0.00', '0.00', 30, 1],
        [ids[2], 6, 2, 0, '0.00', '26.95', '26.95', '0.00', '0.00', 30, 1],
        [ids[3], 12, 2, 0, '0.00', '49.90', '49.90', '0.00', '4.99', 30, 1],
      ]);
    });

    it('writes the fees as <double> rounded to the currency\'s two decimals on the wire', async () => {
      const reply = await bm(rpc, 'PlanPeriodListGet_API', [plans['Shared Hosting Basic'], 1]);
      for (const text of ['9.99', '4.99', '14.22', '26.95', '49.90', '0.00']) expect(reply.body).to.contain(`<value><double>${text}</double></value>`);
      // 3 months at 4.99 less 5% is 14.2215: stored and sent rounded, never as a float's tail.
      expect(reply.body).not.to.match(/<double>\d+\.\d{3,}<\/double>/);
      expect(reply.body).not.to.match(/<double>[^<]*[eE][^<]*<\/double>/);
      expect(reply.body).to.contain('<value><i4>14</i4></value>');
    });

    it('answers PeriodType 1 for days (the trial) and 3 for years (the domain), with renewal and transfer fees', async () => {
      const trial = (result(await bm(rpc, 'PlanPeriodListGet_API', [plans['Shared Hosting Trial'], 1])) as XmlRpcValue[][]).map(asText);
      expect(trial).to.have.length(1);
      expect(trial[0].slice(1, 5)).to.deep.equal([30, 1, 1, '0.00']);
      const domain = (result(await bm(rpc, 'PlanPeriodListGet_API', [plans['Domain Registration'], 1])) as XmlRpcValue[][]).map(asText);
      expect(domain[0].slice(1, 8)).to.deep.equal([1, 3, 0, '0.00', '12.99', '14.99', '9.99']);
    });

    it('sorts by the SortNo column (1: PlanPeriodID, 6: SubscriptionFee)', async () => {
      const byFee = (result(await bm(rpc, 'PlanPeriodListGet_API', [plans['Shared Hosting Pro'], 6])) as XmlRpcValue[][]).map(asText);
      expect(byFee.map((r) => r[5])).to.deep.equal(['12.99', '37.02', '70.15', '129.90']);
      const byId = result(await bm(rpc, 'PlanPeriodListGet_API', [plans['Shared Hosting Pro'], 1])) as number[][];
      expect(byId.map((r) => r[0])).to.deep.equal([...byId.map((r) => r[0])].sort((a, b) => a - b));
    });

    it('rounds to the currency of the plan: no decimals in JPY, three in KWD', async () => {
      const { catalog, accounts } = world.server.services;
      const template = ((await world.fresh.db('service_templates').where({ name: 'Mail' }).first('id')) as { id: number }).id;
      const contact = { firstName: 'Cu', lastName: 'Rrency', email: 'cu@rrency.example' };
      const jpy = await accounts.create(provider, { type: 'reseller', resellerKind: 'advanced', currency: 'JPY', companyName: 'Yen Reseller', contacts: { admin: contact } });
      const kwd = await accounts.create(provider, { type: 'reseller', resellerKind: 'advanced', currency: 'KWD', companyName: 'Dinar Reseller', contacts: { admin: contact } });
      const period = (setup: bigint, recurring: bigint) => [{ duration: 1, unit: 'month', setupFee: setup, recurringFee: recurring }];
      const yenPlan = await catalog.createPlan(provider, { vendorAccountId: jpy, templateId: template, name: 'Yen Mail', published: true, periods: period(500n, 1980n) });
      const dinarPlan = await catalog.createPlan(provider, { vendorAccountId: kwd, templateId: template, name: 'Dinar Mail', published: true, periods: period(1234n, 5n) });
      const yen = await bm(rpc, 'PlanPeriodListGet_API', [yenPlan, 1]);
      expect(asText((result(yen) as XmlRpcValue[][])[0]).slice(4, 8)).to.deep.equal(['500', '1980', '1980', '0']);
      expect(yen.body).to.contain('<double>1980</double>');
      const dinar = await bm(rpc, 'PlanPeriodListGet_API', [dinarPlan, 1]);
      expect(asText((result(dinar) as XmlRpcValue[][])[0]).slice(4, 8)).to.deep.equal(['1.234', '0.005', '0.005', '0.000']);
      expect(dinar.body).to.contain('<double>1.234</double>');
      expect((result(await bm(rpc, 'PlanDetailsGet_API', [dinarPlan])) as unknown[])[10]).to.equal('KWD');
    });
  });

  describe('PlanRateListFullGet_API', () => {
    it('answers rows [ResourceID, Name, Unit, Included, Min, Max, SetupFee, RecurringFee, OveruseFee] with -1 for unlimited', async () => {
      const rows = (result(await bm(rpc, 'PlanRateListFullGet_API', [plans['Shared Hosting Basic'], 2])) as XmlRpcValue[][]).map(asText);
      expect(rows.map((r) => r.slice(1))).to.deep.equal([
        ['Bandwidth', 'GB', 100, 100, -1, '0.00', '0.00', '0.10'],
        ['Disk space', 'GB', 10, 10, 50, '0.00', '0.50', '0.25'],
        ['Domains', 'domain', 1, 1, 1, '0.00', '0.00', '0.00'],
        ['Mailboxes', 'mailbox', 10, 10, 100, '0.00', '0.75', '0.75'],
      ]);
    });

    it('writes the unlimited maximum as <i4>-1</i4> and the fees as <double>', async () => {
      const reply = await bm(rpc, 'PlanRateListFullGet_API', [plans['VPS Standard'], 1]);
      expect(reply.body).to.contain('<value><i4>-1</i4></value>');
      expect(reply.body).to.contain('<value><double>0.02</double></value>');
    });

    it('answers a missing plan with NOT_FOUND', async () => {
      expect(fault(await bm(rpc, 'PlanRateListFullGet_API', [99999999, 1])).faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
    });
  });
});
