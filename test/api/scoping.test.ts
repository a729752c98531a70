/**
 * Access scoping through both API doors (reliability.md, "Access"; api-contract.md, "Common rules"):
 * for every operation that takes an id, reseller A's credential gets the same fault on reseller B's object
 * (and on its own vendor's, the provider's) as on an id that does not exist at all: same code, same field,
 * same SOAP faultcode / XML-RPC faultCode, same HTTP status, and a message that differs only by the id.
 * Each row also runs the operation on A's own object, so a row cannot pass because the call is broken.
 * A last test checks the table against the operations the server actually implements, so an operation
 * added later without a row here fails the suite.
 */
import { expect } from 'chai';
import path from 'node:path';
import { BasicAuthSecurity, createClientAsync, type Client } from 'soap';
import { XMLRPC_FAULT_CODES } from '../../src/api/api-errors';
import { billingService, provisioningService } from '../../src/api/soap/billing-service';
import { parseMethodResponse, serializeMethodCall, type XmlRpcValue } from '../../src/api/xmlrpc/codec';
import { ACCOUNT_ADD_PARAMS, accountMethods } from '../../src/api/xmlrpc/methods-accounts';
import { catalogMethods } from '../../src/api/xmlrpc/methods-catalog';
import { billingMethods } from '../../src/api/xmlrpc/methods-billing';
import { orderMethods, orderSignature } from '../../src/api/xmlrpc/methods-orders';
import { eventMethods } from '../../src/api/xmlrpc/methods-events';
import { lifecycleMethods } from '../../src/api/xmlrpc/methods-lifecycle';
import { usageMethods } from '../../src/api/xmlrpc/methods-usage';
import { domainMethods } from '../../src/api/xmlrpc/methods-domains';
import type { Registrar } from '../../src/plugins/sdk';
import type { Actor } from '../../src/context';
import { inTransaction } from '../../src/db/transaction';
import { accountWithApiUser, providerActor, startApiWorld, type ApiWorld } from '../helpers/api';

/** An id no table holds (int32, so XML-RPC sends it as <i4>). */
const MISSING_ID = 1_987_654_321;

interface Fault {
  code: string;
  message: string;
  field: string | null;
  /** SOAP faultcode or XML-RPC faultCode. */
  wireCode: string;
  status: number;
}
type Outcome = { ok: true; value: unknown } | { ok: false; fault: Fault };

const CODE_BY_NUMBER = new Map(Object.entries(XMLRPC_FAULT_CODES).map(([name, n]) => [n, name]));

/** The message with every whole-word occurrence of the id replaced: what must be equal between foreign and missing. */
function withoutId(message: string, id: number | string): string {
  const escaped = String(id).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return message.replace(new RegExp(`(?<![\\w-])${escaped}(?![\\w-])`, 'g'), '<id>');
}

/** A repeated element as node-soap hands it over: absent, one object, or an array. */
function arr<T>(v: unknown): T[] {
  return v === undefined || v === null ? [] : Array.isArray(v) ? (v as T[]) : [v as T];
}

function expectFault(o: Outcome, what: string): Fault {
  if (o.ok) expect.fail(`${what}: expected a fault, got a result: ${JSON.stringify(o.value)}`);
  return o.fault;
}

function expectOk(o: Outcome, what: string): unknown {
  if (!o.ok) expect.fail(`${what}: expected a result (positive control), got ${o.fault.code}: ${o.fault.message}`);
  return o.value;
}

describe('API scoping: a reseller cannot reach another reseller\'s objects by id, in either dialect', function () {
  this.timeout(60_000);

  let world: ApiWorld;
  let soap: Client;
  let provisioningSoap: Client;
  let soapUrl: string;

  // Reseller A (the caller) and what it owns.
  let A: { accountId: number; userId: number; login: string; password: string };
  let custA: { accountId: number; userId: number; login: string; password: string };
  let planA: number;
  // Reseller B and what it owns; the provider above both.
  let B: { accountId: number; userId: number; login: string; password: string };
  let custB: { accountId: number; userId: number; login: string; password: string };
  let planB: number;
  let provider: Actor;
  let providerAdminId: number;
  let providerPrivatePlan: number;
  // Orders and subscriptions: A's customer's and B's customer's.
  let orderA: { approve: number; reject: number; rpc: number; any: number };
  let orderB: number;
  let subA: number;
  let subB: number;
  // Billing documents: an invoice and a recorded payment of each customer; one more invoice of A's to pay by card.
  let invA: number;
  let invB: number;
  let invToPayA: number;
  let payA: number;
  let payB: number;
  let payDocA: number;
  let payDocB: number;
  // Domains: A's customer's, B's customer's and the provider's own (registered at the demo's sandbox registrar).
  let domainA: number;
  let domainB: number;
  let domainProvider: number;

  let seq = 0;
  const unique = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${++seq}`;

  // ---- the two doors, with A's credential ------------------------------------------------------------

  async function soapCall(op: string, args: Record<string, unknown>, client: Client = soap): Promise<Outcome> {
    const fn = (client as unknown as Record<string, (a: unknown) => Promise<unknown[]>>)[`${op}Async`];
    expect(fn, `the WSDL client has no operation ${op}`).to.be.a('function');
    try {
      const [result] = await fn.call(client, args);
      return { ok: true, value: result };
    } catch (e) {
      const res = (e as { response?: { status: number; data: unknown } }).response;
      if (!res || typeof res.data !== 'string') throw e;
      const xml = res.data;
      const pick = (re: RegExp) => re.exec(xml)?.[1] ?? null;
      const unescape = (s: string | null) => s?.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&') ?? null;
      const code = pick(/<tns:code>([^<]*)<\/tns:code>/);
      if (!code) throw new Error(`SOAP ${op}: HTTP ${res.status} without detail/tns:Error: ${xml.slice(0, 500)}`);
      expect(xml, 'no stack trace in a fault').not.to.match(/\bat \S+ \(|node_modules|\.ts:\d+/);
      return {
        ok: false,
        fault: {
          code,
          message: unescape(pick(/<tns:message>([^<]*)<\/tns:message>/)) ?? '',
          field: unescape(pick(/<tns:field>([^<]*)<\/tns:field>/)),
          wireCode: pick(/<faultcode>([^<]*)<\/faultcode>/) ?? '',
          status: res.status,
        },
      };
    }
  }

  async function rpcRaw(methodName: string, struct: Record<string, XmlRpcValue>): Promise<{ status: number; value?: XmlRpcValue; fault?: { faultCode: number; faultString: string } }> {
    const res = await fetch(`${world.url}/RPC2`, {
      method: 'POST',
      headers: { 'Content-Type': 'text/xml' },
      body: serializeMethodCall(methodName, [struct]),
    });
    const parsed = parseMethodResponse(await res.text());
    return { status: res.status, ...parsed };
  }

  function rpcOutcome(r: Awaited<ReturnType<typeof rpcRaw>>): Outcome {
    if (r.fault) {
      const code = CODE_BY_NUMBER.get(r.fault.faultCode);
      expect(code, `faultCode ${r.fault.faultCode} is one of the documented ones`).to.be.a('string');
      return { ok: false, fault: { code: code!, message: r.fault.faultString, field: null, wireCode: String(r.fault.faultCode), status: r.status } };
    }
    const v = r.value as { Result?: XmlRpcValue[] };
    expect(v, 'an Execute answer is a struct with Result').to.have.property('Result').that.is.an('array');
    return { ok: true, value: v.Result![0] };
  }

  async function rpc(method: string, params: XmlRpcValue[], creds = A, server = 'BM'): Promise<Outcome> {
    return rpcOutcome(await rpcRaw('Execute', { Server: server, Method: method, Params: params, Username: creds.login, Password: creds.password }));
  }

  // ---- fixtures --------------------------------------------------------------------------------------

  before(async () => {
    // Failed password checks count toward the lockouts (per login and address, per address, per login); this file
    // makes many on purpose, all from one address, and the lockout's own answer (which depends on the count, not on
    // who owns the login) is not what it tests.
    world = await startApiWorld({ demo: true, config: { authFailureLimit: 1000, authAddressFailureLimit: 100000, authLoginFailureCeiling: 100000 } });
    const { catalog } = world.server.services;
    provider = await providerActor(world);
    providerAdminId = ((await world.fresh.db('users').where({ login: 'admin', account_id: provider.accountId }).first('id')) as { id: number }).id;

    A = await accountWithApiUser(world, 'reseller', 'Scope Reseller A');
    B = await accountWithApiUser(world, 'reseller', 'Scope Reseller B');
    custA = await accountWithApiUser(world, 'customer', 'Scope Customer A', A.accountId);
    // A registrant needs a street, city and phone: A's customer may then register domains (RegisterDomain below).
    await world.server.services.accounts.update(provider, custA.accountId, { address: { address1: '1 Scope St', city: 'Springfield', country: 'US' }, contacts: { admin: { phone: '+1.5555550100' } } });
    custB = await accountWithApiUser(world, 'customer', 'Scope Customer B', B.accountId);

    const template = (await catalog.listTemplates(provider)).find((t) => t.name === 'Shared Hosting')!;
    const disk = template.resources.find((r) => r.name === 'Disk space')!.resourceId;
    const planInput = (name: string, vendorAccountId: number | undefined, published: boolean) => ({
      vendorAccountId,
      templateId: template.templateId,
      name,
      category: 'Scoping',
      published,
      resellable: true,
      periods: [{ duration: 1, unit: 'month', setupFee: 500n, recurringFee: 1234n }],
      rates: [{ resourceId: disk, included: 10, min: 10, max: 100, recurringFee: 50n, overageFee: 25n }],
    });
    // B's plan is published and resellable: as visible as a plan can be, yet only to B's own subtree.
    planB = await catalog.createPlan(provider, planInput('B private plan', B.accountId, true));
    // A's plan is unpublished: A sees it because A owns it (the positive control of every plan row).
    planA = await catalog.createPlan(provider, planInput('A own plan', A.accountId, false));
    // The provider's unpublished plan: above A, not in A's sellable catalog.
    providerPrivatePlan = await catalog.createPlan(provider, planInput('Provider private plan', undefined, false));


    // Orders: a workflow that provisions at once gives each customer a subscription; then A's asks for approval.
    const { orders, workflows } = world.server.services;
    const basic = ((await world.fresh.db('plans').where({ name: 'Shared Hosting Basic' }).first('id')) as { id: number }).id;
    const monthly = ((await world.fresh.db('plan_periods').where({ plan_id: basic, duration: 1, unit: 'month' }).first('id')) as { id: number }).id;
    orderPlanId = basic;
    orderPeriodId = monthly;
    const provisionAtOnce = {
      orderType: 'sales',
      start: 'provision',
      steps: { provision: { action: 'provision', next: { success: 'done', failure: 'failed' } }, done: { action: 'complete', next: {} }, failed: { action: 'fail', next: {} } },
    };
    const approveFirst = {
      orderType: 'sales',
      start: 'approval',
      steps: {
        approval: { action: 'wait_for_approval', next: { approved: 'provision', rejected: 'rejected' } },
        provision: { action: 'provision', next: { success: 'done', failure: 'failed' } },
        done: { action: 'complete', next: {} },
        rejected: { action: 'reject', next: {} },
        failed: { action: 'fail', next: {} },
      },
    };
    const placeFor = async (accountId: number, domain: string) => (await orders.place(provider, { accountId, items: [{ planId: basic, periodId: monthly, parameters: { domain } }] })).orderId;
    await workflows.define(provider, { vendorAccountId: A.accountId, orderType: 'sales', definition: provisionAtOnce });
    await workflows.define(provider, { vendorAccountId: B.accountId, orderType: 'sales', definition: provisionAtOnce });
    const subOrderA = await placeFor(custA.accountId, 'scope-a.example');
    orderB = await placeFor(custB.accountId, 'scope-b.example');
    const subscriptionOf = async (orderId: number) => {
      for (const until = Date.now() + 20_000; Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
        const row = (await world.fresh.db('subscriptions').where({ order_id: orderId }).first('id')) as { id: number } | undefined;
        if (row) return row.id;
      }
      throw new Error(`no subscription for order ${orderId}`);
    };
    subA = await subscriptionOf(subOrderA);
    subB = await subscriptionOf(orderB);
    await workflows.define(provider, { vendorAccountId: A.accountId, orderType: 'sales', definition: approveFirst });
    orderA = { approve: await placeFor(custA.accountId, 'scope-a2.example'), reject: await placeFor(custA.accountId, 'scope-a3.example'), rpc: await placeFor(custA.accountId, 'scope-a4.example'), any: subOrderA };

    {
      const { documents, payments } = world.server.services;
      const now = world.server.services.deps.clock.now();
      const invoiceFor = async (accountId: number, vendorId: number) =>
        (await inTransaction(world.fresh.db, (tx) => documents.issueInvoices(tx, now, [{ vendorId, accountId, currency: 'USD', issueDate: now, lines: [{ kind: 'recurring', description: 'Scope', quantity: '1', unitPrice: 1000n, amount: 1000n }] }])))[0]!.documentId;
      invA = await invoiceFor(custA.accountId, A.accountId);
      invB = await invoiceFor(custB.accountId, B.accountId);
      invToPayA = await invoiceFor(custA.accountId, A.accountId);
      const docA = await documents.recordPayment(provider, { accountId: custA.accountId, amount: 300n, currency: 'USD', method: 'cash' });
      const docB = await documents.recordPayment(provider, { accountId: custB.accountId, amount: 300n, currency: 'USD', method: 'cash' });
      [payA, payB, payDocA, payDocB] = [docA.paymentId!, docB.paymentId!, docA.documentId, docB.documentId];
      const gateway = (await world.fresh.db('plugin_instances').where({ kind: 'payment' }).orderBy('id').first('id')) as { id: number };
      await payments.storePayTool(provider, custA.accountId, gateway.id, { number: '4242424242424242', expMonth: 12, expYear: 2031, cvv: '123' }, { makeDefault: true });
    }
    const registrarRow = (await world.fresh.db('plugin_instances').where({ vendor_id: provider.accountId, name: 'sandbox-registrar' }).first('id')) as { id: number };
    const registrar = await world.server.services.pluginInstances.instantiate<Registrar>(Number(registrarRow.id));
    const domainFor = async (accountId: number, name: string) => {
      const contacts = { registrant: { name: 'Scope Owner', email: 'owner@example.com', phone: '+1.5555550100', street: ['1 Main St'], city: 'Springfield', countryCode: 'US' } };
      const r = await registrar.register({ operationId: `scope-${name}`, name, years: 1, contacts });
      if (r.status !== 'success') throw new Error(`sandbox refused ${name}`);
      return world.server.services.domains.recordRegisteredDomain(world.fresh.db, provider, { accountId, name, registrarInstanceId: Number(registrarRow.id), expiresAt: new Date(r.result.expiresAt) });
    };
    domainA = await domainFor(custA.accountId, 'scope-domain-a.com');
    domainB = await domainFor(custB.accountId, 'scope-domain-b.com');
    domainProvider = await domainFor(provider.accountId, 'scope-domain-provider.com');

    soapUrl = `${world.url}/soap/billing`;
    soap = await createClientAsync(`${soapUrl}?wsdl`);
    soap.setSecurity(new BasicAuthSecurity(A.login, A.password));
    provisioningSoap = await createClientAsync(`${world.url}/soap/provisioning?wsdl`);
    provisioningSoap.setSecurity(new BasicAuthSecurity(A.login, A.password));
  });

  after(async () => {
    await world?.close();
  });

  // ---- the table -------------------------------------------------------------------------------------

  interface Row {
    dialect: 'SOAP' | 'XML-RPC';
    op: string;
    /** The objects A must not reach, by name (for the failure message) and id. */
    foreign: () => [string, number][];
    /** A's own object: the call must work (positive control). */
    own: () => number;
    call: (id: number) => Promise<Outcome>;
    /** The fault every foreign and missing id gets. */
    code: string;
    field?: string | null;
    /** Checks the positive control's answer. */
    check?: (value: unknown, ownId: number) => void;
  }

  const accounts = (): [string, number][] => [
    ["B's reseller account", B.accountId],
    ["B's customer account", custB.accountId],
    ["the provider (A's own vendor)", provider.accountId],
  ];
  const users = (): [string, number][] => [
    ["B's API user", B.userId],
    ["B's customer's user", custB.userId],
    ["the provider's admin", providerAdminId],
  ];
  const plans = (): [string, number][] => [
    ["B's plan", planB],
    ["the provider's unpublished plan", providerPrivatePlan],
  ];
  /** Vendors A may not create accounts under: B, and B's customer (which would be NOT_ALLOWED if A could see it). */
  const vendors = (): [string, number][] => [
    ["B's reseller account", B.accountId],
    ["B's customer account", custB.accountId],
    ["the provider (A's own vendor)", provider.accountId],
  ];

  const foreignOrders = (): [string, number][] => [["B's customer's order", orderB]];
  const foreignSubscriptions = (): [string, number][] => [["B's customer's subscription", subB]];
  const resourceOfA = async (): Promise<number> => Number(((await world.fresh.db('subscription_resources').where({ subscription_id: subA }).orderBy('resource_id').first('resource_id')) as { resource_id: unknown }).resource_id);
  const foreignInvoices = (): [string, number][] => [["B's customer's invoice", invB]];
  const foreignPayments = (): [string, number][] => [["B's customer's payment", payB]];
  const foreignPaymentDocs = (): [string, number][] => [["B's customer's payment document", payDocB]];
  const foreignDomains = (): [string, number][] => [
    ["B's customer's domain", domainB],
    ["the provider's own domain", domainProvider],
  ];
  let orderPlanId = 0;
  let orderPeriodId = 0;
  const orderPlan = () => orderPlanId;
  const orderPeriod = () => orderPeriodId;

  const contact = (tag: string) => ({ firstName: 'Scope', lastName: tag, email: `${tag.toLowerCase()}@example.com`, country: 'US' });
  const newUser = (accountId: number) => {
    const login = unique('scope-user');
    return { accountId, login, password: `${login}-Pa55word!`, email: `${login}@example.com`, firstName: 'Scope', lastName: 'User', roles: { role: ['billing'] } };
  };
  /** AccountAdd_API's 61 positional parameters; AccountWithIDAdd_API appends the AccountID. */
  const accountAddParams = (vendorId: number, company: string): XmlRpcValue[] => {
    const p: XmlRpcValue[] = new Array(ACCOUNT_ADD_PARAMS).fill('');
    p[0] = vendorId;
    p[1] = 'C';
    p[2] = company;
    p[8] = 'US'; // CountryID
    p[10] = 'Scope'; // Admin FName
    p[12] = 'Added'; // Admin LName
    p[13] = `${company.toLowerCase().replace(/\W+/g, '')}@example.com`; // Admin Email
    p[60] = 1; // TaxStatus
    return p;
  };
  const userAddParams = (accountId: number): XmlRpcValue[] => {
    const login = unique('scope-rpc-user');
    const p: XmlRpcValue[] = new Array(23).fill('');
    p[0] = accountId;
    p[2] = login;
    p[3] = `XXX${login}-Pa55word!`;
    p[4] = 'Scope';
    p[6] = 'User';
    p[7] = `${login}@example.com`;
    p[22] = 0;
    return p;
  };

  const rows: Row[] = [
    // ---- SOAP BillingService: billing documents ----------------------------------------------------------
    {
      dialect: 'SOAP', op: 'ListInvoices', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('ListInvoices', { accountId: id }),
      check: (v) => expect(Number((v as { total: unknown }).total)).to.equal(2),
    },
    {
      dialect: 'SOAP', op: 'GetInvoice', foreign: foreignInvoices, own: () => invA, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('GetInvoice', { invoiceId: id }),
      check: (v, own) => expect(Number((v as { invoice: { invoiceId: unknown } }).invoice.invoiceId)).to.equal(own),
    },
    {
      dialect: 'SOAP', op: 'PayInvoice', foreign: foreignInvoices, own: () => invToPayA, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('PayInvoice', { invoiceId: id, idempotencyKey: `scope-pay-${id}` }),
      check: (v) => expect((v as { payment: { status: string } }).payment.status).to.equal('success'),
    },
    {
      dialect: 'SOAP', op: 'RecordPayment', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('RecordPayment', { accountId: id, amount: '1.00', currency: 'USD', method: 'check', reference: 'scope' }),
      check: (v) => expect((v as { payment: { method: string } }).payment.method).to.equal('check'),
    },
    {
      dialect: 'SOAP', op: 'RefundPayment', foreign: foreignPayments, own: () => payA, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('RefundPayment', { paymentId: id, amount: '1.00', reason: 'scope' }),
      check: (v) => expect((v as { payment: { kind: string } }).payment.kind).to.equal('refund'),
    },
    {
      dialect: 'SOAP', op: 'ListPayments', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('ListPayments', { accountId: id }),
      check: (v) => expect(Number((v as { total: unknown }).total)).to.be.above(0),
    },
    {
      dialect: 'SOAP', op: 'GetAccountBalance', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('GetAccountBalance', { accountId: id }),
      check: (v) => expect((v as { currency: string }).currency).to.equal('USD'),
    },
    {
      dialect: 'SOAP', op: 'AdjustBalance', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('AdjustBalance', { accountId: id, amount: '-0.50', currency: 'USD', reason: 'scope goodwill' }),
      check: (v) => expect((v as { currency: string }).currency).to.equal('USD'),
    },
    // ---- SOAP BillingService --------------------------------------------------------------------------
    {
      dialect: 'SOAP', op: 'GetAccount', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('GetAccount', { accountId: id }),
      check: (v, own) => expect(Number((v as { account: { accountId: unknown } }).account.accountId)).to.equal(own),
    },
    {
      dialect: 'SOAP', op: 'UpdateAccount', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('UpdateAccount', { accountId: id, companyName: 'Renamed by A' }),
      check: (v) => expect((v as { account: { companyName: string } }).account.companyName).to.equal('Renamed by A'),
    },
    {
      dialect: 'SOAP', op: 'UpdateAccount (vendorAccountId given)', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: async (id) => {
        // The vendor check reads the account first: it must not become an oracle either.
        const vendor = id === custA.accountId ? A.accountId : id === custB.accountId ? B.accountId : id;
        return soapCall('UpdateAccount', { accountId: id, vendorAccountId: vendor, companyName: 'Renamed by A again' });
      },
    },
    {
      dialect: 'SOAP', op: 'ListAccounts', foreign: vendors, own: () => A.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('ListAccounts', { vendorAccountId: id }),
      check: (v) => {
        const ids = arr<{ accountId: unknown }>((v as { accounts: { account?: unknown } }).accounts.account).map((a) => Number(a.accountId));
        expect(ids).to.include(custA.accountId).and.not.include(custB.accountId);
      },
    },
    {
      dialect: 'SOAP', op: 'CreateAccount', foreign: vendors, own: () => A.accountId, code: 'INVALID_ARGUMENT', field: 'vendorAccountId',
      call: (id) => soapCall('CreateAccount', { type: 'customer', vendorAccountId: id, companyName: unique('Scope Co'), contact: contact('Created') }),
      check: (v) => expect(Number((v as { accountId: unknown }).accountId)).to.be.above(0),
    },
    {
      dialect: 'SOAP', op: 'CreateUser', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('CreateUser', newUser(id)),
      check: (v) => expect(Number((v as { userId: unknown }).userId)).to.be.above(0),
    },
    {
      dialect: 'SOAP', op: 'GetUser', foreign: users, own: () => custA.userId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('GetUser', { userId: id }),
      check: (v) => expect((v as { user: { login: string } }).user.login).to.equal(custA.login),
    },
    {
      dialect: 'SOAP', op: 'ListUsers', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('ListUsers', { accountId: id }),
      check: (v) => {
        expect(arr<{ login: string }>((v as { users: { user?: unknown } }).users.user).map((u) => u.login)).to.include(custA.login);
      },
    },
    {
      dialect: 'SOAP', op: 'GetPlan', foreign: plans, own: () => planA, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('GetPlan', { planId: id }),
      check: (v) => expect((v as { plan: { name: string } }).plan.name).to.equal('A own plan'),
    },
    {
      dialect: 'SOAP', op: 'ListPlans', foreign: vendors, own: () => A.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('ListPlans', { vendorAccountId: id }),
      check: (v) => {
        const names = arr<{ name: string }>((v as { plans: { plan?: unknown } }).plans.plan).map((p) => p.name);
        expect(names).to.include('Shared Hosting Basic').and.not.include('B private plan');
      },
    },
    {
      dialect: 'SOAP', op: 'ValidateUser (vendorAccountId)', foreign: vendors, own: () => A.accountId, code: 'UNAUTHENTICATED', field: 'login',
      call: (id) => soapCall('ValidateUser', { login: id === A.accountId ? custA.login : custB.login, password: id === A.accountId ? custA.password : custB.password, vendorAccountId: id }),
      check: (v) => expect(Number((v as { userId: unknown }).userId)).to.equal(custA.userId),
    },

    {
      dialect: 'SOAP', op: 'PlaceOrder', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('PlaceOrder', { accountId: id, items: { item: [{ planId: orderPlan(), periodId: orderPeriod(), parameters: { parameter: [{ name: 'domain', value: unique('scope-order') + '.example' }] } }] } }),
      check: (v) => expect((v as { status: string }).status).to.equal('waiting_approval'),
    },
    {
      dialect: 'SOAP', op: 'GetOrder', foreign: foreignOrders, own: () => orderA.any, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('GetOrder', { orderId: id }),
      check: (v, own) => expect(Number((v as { order: { orderId: unknown } }).order.orderId)).to.equal(own),
    },
    {
      dialect: 'SOAP', op: 'ListOrders', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('ListOrders', { accountId: id }),
      check: (v) => expect(arr<{ orderId: unknown }>((v as { orders: { order?: unknown } }).orders.order).map((o) => Number(o.orderId))).to.include(orderA.any).and.not.include(orderB),
    },
    {
      dialect: 'SOAP', op: 'ApproveOrder', foreign: foreignOrders, own: () => orderA.approve, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('ApproveOrder', { orderId: id, comment: 'scope' }),
      check: (v) => expect((v as { order: { status: string } }).order.status).not.to.equal('waiting_approval'),
    },
    {
      dialect: 'SOAP', op: 'RejectOrder', foreign: foreignOrders, own: () => orderA.reject, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('RejectOrder', { orderId: id, comment: 'scope' }),
      check: (v) => expect((v as { order: { status: string } }).order.status).to.equal('rejected'),
    },
    {
      dialect: 'SOAP', op: 'GetSubscription', foreign: foreignSubscriptions, own: () => subA, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('GetSubscription', { subscriptionId: id }),
      check: (v, own) => expect(Number((v as { subscription: { subscriptionId: unknown } }).subscription.subscriptionId)).to.equal(own),
    },
    {
      dialect: 'SOAP', op: 'GetProvisioningStatus', foreign: foreignSubscriptions, own: () => subA, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('GetProvisioningStatus', { subscriptionId: id }, provisioningSoap),
      check: (v) => expect((v as { serviceStatus: unknown }).serviceStatus).to.be.a('string'),
    },
    {
      dialect: 'SOAP', op: 'ListSubscriptions', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('ListSubscriptions', { accountId: id }),
      check: (v) => expect(arr<{ subscriptionId: unknown }>((v as { subscriptions: { subscription?: unknown } }).subscriptions.subscription).map((x) => Number(x.subscriptionId))).to.include(subA).and.not.include(subB),
    },

    // ---- XML-RPC Execute, Server BM ---------------------------------------------------------------------
    {
      dialect: 'XML-RPC', op: 'AccountDetailsGet_API', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND',
      call: (id) => rpc('AccountDetailsGet_API', [id]),
      check: (v, own) => expect((v as XmlRpcValue[])[0]).to.equal(own),
    },
    {
      dialect: 'XML-RPC', op: 'AccountUpdate_API', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND',
      call: (id) => rpc('AccountUpdate_API', [id, 'Renamed over XML-RPC']),
      check: (v) => expect(v).to.deep.equal({ Status: 'Operation done.' }),
    },
    {
      dialect: 'XML-RPC', op: 'UserAdd_API', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND',
      call: (id) => rpc('UserAdd_API', userAddParams(id)),
      check: (v) => expect((v as number[])[0]).to.be.a('number').above(0),
    },
    {
      dialect: 'XML-RPC', op: 'UserDetailsGet_API', foreign: users, own: () => custA.userId, code: 'NOT_FOUND',
      call: (id) => rpc('UserDetailsGet_API', [id]),
      check: (v) => expect((v as XmlRpcValue[]).slice(0, 3)).to.deep.equal([custA.userId, custA.login, custA.accountId]),
    },
    {
      dialect: 'XML-RPC', op: 'GetUsersListForAccount_API', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND',
      call: (id) => rpc('GetUsersListForAccount_API', [id, 1]),
      check: (v) => expect((v as XmlRpcValue[][]).map((r) => r[1])).to.include(custA.login),
    },
    {
      dialect: 'XML-RPC', op: 'PlanDetailsGet_API', foreign: plans, own: () => planA, code: 'NOT_FOUND',
      call: (id) => rpc('PlanDetailsGet_API', [id]),
      check: (v) => expect((v as XmlRpcValue[]).slice(0, 3)).to.deep.equal([planA, A.accountId, 'A own plan']),
    },
    {
      dialect: 'XML-RPC', op: 'PlanPeriodListGet_API', foreign: plans, own: () => planA, code: 'NOT_FOUND',
      call: (id) => rpc('PlanPeriodListGet_API', [id, 1]),
      check: (v) => expect(v as XmlRpcValue[][]).to.have.length(1),
    },
    {
      dialect: 'XML-RPC', op: 'PlanRateListFullGet_API', foreign: plans, own: () => planA, code: 'NOT_FOUND',
      call: (id) => rpc('PlanRateListFullGet_API', [id, 1]),
      check: (v) => expect((v as XmlRpcValue[][]).map((r) => r[1])).to.deep.equal(['Disk space']),
    },
    {
      dialect: 'XML-RPC', op: 'PlanListAvailableGet_API', foreign: vendors, own: () => A.accountId, code: 'NOT_FOUND',
      call: (id) => rpc('PlanListAvailableGet_API', [id, '', '', 1]),
      check: (v) => expect((v as XmlRpcValue[][]).map((r) => r[1])).to.include('Shared Hosting Basic').and.not.include('B private plan'),
    },
    {
      dialect: 'XML-RPC', op: 'AccountAdd_API', foreign: vendors, own: () => A.accountId, code: 'INVALID_ARGUMENT',
      call: (id) => rpc('AccountAdd_API', accountAddParams(id, unique('Scope Added'))),
      check: (v) => expect((v as number[])[0]).to.be.a('number').above(0),
    },
    {
      dialect: 'XML-RPC', op: 'UserForVendorValidate_API', foreign: vendors, own: () => A.accountId, code: 'UNAUTHENTICATED',
      call: (id) => rpc('UserForVendorValidate_API', id === A.accountId ? [custA.login, custA.password, id] : [custB.login, custB.password, id]),
      check: (v) => expect(v).to.deep.equal([custA.accountId, A.accountId, custA.userId]),
    },
    {
      dialect: 'XML-RPC', op: 'PlaceOrderAndAuthorize_API', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND',
      call: (id) => rpc('PlaceOrderAndAuthorize_API', [0, 1, `${orderPlan()}=${orderPeriod()}=1=-1`, 1, 1, 1, `domain=${unique('scope-pao')}.example`, 1, `AccountID=${id}`, 0, 0]),
      check: (v, own) => expect((v as XmlRpcValue[])[0]).to.equal(own),
    },
    {
      dialect: 'XML-RPC', op: 'AccountBalanceAdjust_API', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND',
      call: (id) => rpc('AccountBalanceAdjust_API', [id, -0.25]),
      check: (v) => expect((v as number[])[0]).to.be.a('number').above(0),
    },
    {
      dialect: 'XML-RPC', op: 'GetAccountBalanceList', foreign: vendors, own: () => A.accountId, code: 'NOT_FOUND',
      call: (id) => rpc('GetAccountBalanceList', [id, 1]),
      check: (v) => expect((v as XmlRpcValue[][]).map((r) => r[0])).to.include(custA.accountId).and.not.include(custB.accountId),
    },
    {
      dialect: 'XML-RPC', op: 'PaymentInfoGet_API', foreign: foreignPaymentDocs, own: () => payDocA, code: 'NOT_FOUND',
      call: (id) => rpc('PaymentInfoGet_API', [id]),
      check: (v, own) => expect((v as XmlRpcValue[])[0]).to.equal(own),
    },
    {
      dialect: 'XML-RPC', op: 'PayToolListForAccountGet_API', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND',
      call: (id) => rpc('PayToolListForAccountGet_API', [id]),
      check: (v) => expect(v as XmlRpcValue[][]).to.have.length(1),
    },
    {
      dialect: 'XML-RPC', op: 'AppliedDocsListGet_API', foreign: foreignInvoices, own: () => invA, code: 'NOT_FOUND',
      call: (id) => rpc('AppliedDocsListGet_API', [id, 2, 1]),
      check: (v) => expect(v as XmlRpcValue[][]).to.have.length.above(0),
    },
    {
      dialect: 'XML-RPC', op: 'GetOrder_API', foreign: foreignOrders, own: () => orderA.any, code: 'NOT_FOUND',
      call: (id) => rpc('GetOrder_API', [id]),
      check: (v, own) => expect((v as XmlRpcValue[]).slice(0, 1)).to.deep.equal([own]),
    },
    {
      dialect: 'XML-RPC', op: 'OrderStatusChange_API', foreign: foreignOrders, own: () => orderA.rpc, code: 'NOT_FOUND',
      call: async (id) => {
        // A's own order gets its true signature; any other id a well-formed one (it must fail before the check).
        const signature = id === orderA.rpc ? orderSignature(await world.server.services.orders.get(provider, id)) : 'f'.repeat(32);
        return rpc('OrderStatusChange_API', [id, 'RJ', signature]);
      },
      check: (v) => expect(v).to.deep.equal({ Status: 'Operation done. RJ' }),
    },
    {
      dialect: 'XML-RPC', op: 'OrderByStatusListGet_API', foreign: vendors, own: () => A.accountId, code: 'NOT_FOUND',
      call: (id) => rpc('OrderByStatusListGet_API', [id, '', '', 0, 1]),
      check: (v) => expect((v as XmlRpcValue[][]).map((r) => r[0])).to.include(orderA.any).and.not.include(orderB),
    },
    {
      dialect: 'XML-RPC', op: 'SubscriptionDetailsGet_API', foreign: foreignSubscriptions, own: () => subA, code: 'NOT_FOUND',
      call: (id) => rpc('SubscriptionDetailsGet_API', [id]),
      check: (v, own) => expect((v as XmlRpcValue[])[0]).to.equal(own),
    },
    {
      dialect: 'XML-RPC', op: 'SubscriptionDetailsGetEx_API', foreign: foreignSubscriptions, own: () => subA, code: 'NOT_FOUND',
      call: (id) => rpc('SubscriptionDetailsGetEx_API', [id]),
      check: (v, own) => expect((v as XmlRpcValue[])[0]).to.equal(own),
    },
    {
      dialect: 'XML-RPC', op: 'SubscriptionResourcesListGet_API', foreign: foreignSubscriptions, own: () => subA, code: 'NOT_FOUND',
      call: (id) => rpc('SubscriptionResourcesListGet_API', [id, 1]),
      check: (v) => expect(v as XmlRpcValue[][]).to.have.length.above(0),
    },
    // Usage (billing run part): the subscription is looked up in the caller's subtree before anything else.
    {
      dialect: 'SOAP', op: 'ReportUsage', foreign: foreignSubscriptions, own: () => subA, code: 'NOT_FOUND', field: null,
      call: async (id) => soapCall('ReportUsage', { subscriptionId: id, resourceId: await resourceOfA(), quantity: '1.5', mode: 'increment', usageId: unique('scope-usage') }),
      check: (v) => expect(Number((v as { usage: unknown }).usage)).to.be.greaterThan(0),
    },
    ...(['DUMMYGATE.IncrementResourceUsage_API', 'DUMMYGATE.SetResourceUsage_API', 'IncrementResourceUsage_API', 'SetResourceUsage_API'] as const).map(
      (op): Row => ({
        dialect: 'XML-RPC', op, foreign: foreignSubscriptions, own: () => subA, code: 'NOT_FOUND',
        call: async (id) => rpc(op.replace(/^DUMMYGATE\./, ''), [id, await resourceOfA(), 2], A, op.startsWith('DUMMYGATE.') ? 'DUMMYGATE' : 'BM'),
        check: (v, own) => expect(v).to.equal(`Resources on subscription ${own} have been updated.`),
      }),
    ),
    {
      dialect: 'XML-RPC', op: 'GetCustomerSubscriptionList_API', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND',
      call: (id) => rpc('GetCustomerSubscriptionList_API', [id, 1]),
      check: (v) => expect((v as XmlRpcValue[][]).map((r) => r[0])).to.include(subA).and.not.include(subB),
    },
    {
      dialect: 'XML-RPC', op: 'PostEvent', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND',
      call: (id) => rpc('PostEvent', ['ScopeCheck', `AccountID=${id}; Note=scoping`, 0], A, 'TASKMAN'),
      check: (v) => expect(v).to.deep.equal({ Status: 'Operation done.' }),
    },
    {
      dialect: 'XML-RPC', op: 'SendSubscriptionNotificationForUser_API', foreign: foreignSubscriptions, own: () => subA, code: 'NOT_FOUND',
      call: (id) => rpc('SendSubscriptionNotificationForUser_API', ['subscription.expiring', id, custA.userId, 'Note', 'scoping'], A, 'MESSAGE'),
      check: (v) => expect(v).to.deep.equal({ Status: 'Operation done.' }),
    },
    // ---- domains ---------------------------------------------------------------------------------------
    {
      dialect: 'SOAP', op: 'GetDomain', foreign: foreignDomains, own: () => domainA, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('GetDomain', { domainId: id }, provisioningSoap),
      check: (v, own) => expect(Number((v as { domain: { domainId: unknown } }).domain.domainId)).to.equal(own),
    },
    {
      dialect: 'SOAP', op: 'ListDomains', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('ListDomains', { accountId: id }, provisioningSoap),
      check: (v) => expect(([] as { name: string }[]).concat((v as { domains: { domain?: { name: string } | { name: string }[] } }).domains.domain ?? []).map((d) => d.name)).to.include('scope-domain-a.com').and.not.include('scope-domain-b.com'),
    },
    {
      dialect: 'SOAP', op: 'SetNameservers', foreign: foreignDomains, own: () => domainA, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('SetNameservers', { domainId: id, nameservers: { nameserver: ['ns1.scope-a.example'] } }, provisioningSoap),
      check: (v) => expect((v as { domain: { nameservers: { nameserver: unknown } } }).domain.nameservers.nameserver).to.deep.equal(['ns1.scope-a.example']),
    },
    {
      dialect: 'SOAP', op: 'SetDomainAutoRenew', foreign: foreignDomains, own: () => domainA, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('SetDomainAutoRenew', { domainId: id, autoRenew: true }, provisioningSoap),
      check: (v, own) => expect(Number((v as { domain: { domainId: unknown } }).domain.domainId)).to.equal(own),
    },
    {
      dialect: 'SOAP', op: 'RegisterDomain', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('RegisterDomain', { accountId: id, name: `${unique('scope-reg')}.com`, years: 1 }, provisioningSoap),
      check: (v) => expect(Number((v as { orderId: unknown }).orderId)).to.be.above(0),
    },
    {
      dialect: 'SOAP', op: 'TransferDomain', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('TransferDomain', { accountId: id, name: `${unique('taken-scope')}.com`, years: 1, eppCode: 'sandbox-auth' }, provisioningSoap),
      check: (v) => expect(Number((v as { orderId: unknown }).orderId)).to.be.above(0),
    },
    {
      // A name B's customer holds, renewed for account ids A must not reach, then A's customer's own.
      dialect: 'SOAP', op: 'RenewDomain', foreign: accounts, own: () => custA.accountId, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('RenewDomain', { accountId: id, name: id === custA.accountId ? 'scope-domain-a.com' : 'scope-domain-b.com', years: 1 }, provisioningSoap),
      check: (v) => expect(Number((v as { orderId: unknown }).orderId)).to.be.above(0),
    },
    {
      dialect: 'SOAP', op: 'GetEppCode', foreign: foreignDomains, own: () => domainA, code: 'NOT_FOUND', field: null,
      call: (id) => soapCall('GetEppCode', { domainId: id }, provisioningSoap),
      check: (v) => expect((v as { eppCode: string }).eppCode).to.be.a('string').and.not.be.empty,
    },
    {
      dialect: 'XML-RPC', op: 'DomainInfoGet_API', foreign: foreignDomains, own: () => domainA, code: 'NOT_FOUND',
      call: (id) => rpc('DomainInfoGet_API', [id], A, 'DOMAINGATE'),
      check: (v, own) => expect((v as XmlRpcValue[]).slice(2, 4)).to.deep.equal([own, 'scope-domain-a.com']),
    },
    {
      dialect: 'XML-RPC', op: 'DomainExpirationDateGet_API', foreign: foreignDomains, own: () => domainA, code: 'NOT_FOUND',
      call: (id) => rpc('DomainExpirationDateGet_API', [id], A, 'DOMAINGATE'),
      check: (v) => expect((v as XmlRpcValue[])[0]).to.be.a('number').above(0),
    },
  ];

  for (const row of rows) {
    it(`${row.dialect} ${row.op}: another reseller's and the vendor's ids answer like a missing id; A's own works`, async () => {
      const own = row.own();
      const ownValue = expectOk(await row.call(own), `${row.op} on A's own id ${own}`);
      row.check?.(ownValue, own);

      const missing = expectFault(await row.call(MISSING_ID), `${row.op} on missing id ${MISSING_ID}`);
      expect(missing.code, `${row.op} on a missing id`).to.equal(row.code);
      if (row.field !== undefined) expect(missing.field, `${row.op}: field of the fault`).to.equal(row.field);
      if (row.dialect === 'SOAP') {
        expect(missing.wireCode).to.equal('soap:Client');
        expect(missing.status).to.equal(500);
      } else {
        expect(missing.wireCode).to.equal(String(XMLRPC_FAULT_CODES[row.code as keyof typeof XMLRPC_FAULT_CODES]));
        expect(missing.status).to.equal(200);
      }

      for (const [name, id] of row.foreign()) {
        const fault = expectFault(await row.call(id), `${row.op} on ${name} (${id})`);
        const label = `${row.op} on ${name} (${id}) vs. missing id`;
        expect({ ...fault, message: withoutId(fault.message, id) }, label).to.deep.equal({ ...missing, message: withoutId(missing.message, MISSING_ID) });
      }
    });
  }

  it("XML-RPC UserValidate_API and SOAP ValidateUser: B's customer's real login and password fail from A's credential exactly like a wrong password", async () => {
    const positive = expectOk(await rpc('UserValidate_API', [custA.login, `XXX${custA.password}`]), 'UserValidate_API on A\'s customer');
    expect(positive).to.deep.equal([custA.accountId, A.accountId, custA.userId]);
    const soapPositive = expectOk(await soapCall('ValidateUser', { login: custA.login, password: custA.password }), "ValidateUser on A's customer");
    expect(Number((soapPositive as { userId: unknown }).userId)).to.equal(custA.userId);

    const attempts: [string, string][] = [
      [custB.login, custB.password], // B's customer, right password
      [B.login, B.password], // B itself, right password
      ['admin', 'admin-pass-123'], // the provider's administrator, right password
      [custB.login, 'wrong-password-123'], // wrong password
      ['no-such-login', 'whatever-123'], // no such login
    ];
    const rpcFaults = await Promise.all(attempts.map(async ([l, p]) => expectFault(await rpc('UserValidate_API', [l, p]), `UserValidate_API(${l})`)));
    const soapFaults = await Promise.all(attempts.map(async ([l, p]) => expectFault(await soapCall('ValidateUser', { login: l, password: p }), `ValidateUser(${l})`)));
    for (const faults of [rpcFaults, soapFaults]) {
      expect(faults[0].code).to.equal('UNAUTHENTICATED');
      for (const f of faults) expect(f).to.deep.equal(faults[0]);
    }
    // Nothing of B's leaks into the text.
    for (const f of [...rpcFaults, ...soapFaults]) expect(f.message).not.to.contain(custB.login).and.not.contain(String(custB.accountId));
  });

  it("XML-RPC transactions: another caller's TransactionID answers like an unknown one", async () => {
    // B opens a transaction; A tries to use, commit and roll back B's TransactionID.
    const opened = await rpcRaw('Execute', { Server: 'BM', Method: 'AccountDetailsGet_API', Params: [custB.accountId], Username: B.login, Password: B.password, AutoCommit: 'No' });
    expect(opened.fault, 'B opens a transaction').to.equal(undefined);
    const txB = (opened.value as { TransactionID: string }).TransactionID;
    expect(txB).to.be.a('string').and.not.be.empty;
    const unknownTx = '00000000-0000-4000-8000-000000000000';

    const tries = async (tx: string) => [
      rpcOutcome(await rpcRaw('Execute', { Server: 'BM', Method: 'AccountDetailsGet_API', Params: [custA.accountId], Username: A.login, Password: A.password, TransactionID: tx })),
      rpcOutcome(await rpcRaw('CommitTransaction', { TransactionID: tx, Username: A.login, Password: A.password })),
      rpcOutcome(await rpcRaw('RollbackTransaction', { TransactionID: tx, Username: A.login, Password: A.password })),
    ];
    const foreign = await tries(txB);
    const missing = await tries(unknownTx);
    foreign.forEach((o, k) => {
      const f = expectFault(o, `A using B's transaction (call ${k})`);
      const m = expectFault(missing[k], `A using an unknown transaction (call ${k})`);
      expect(m.code).to.equal('NOT_FOUND');
      expect({ ...f, message: withoutId(f.message, txB) }).to.deep.equal({ ...m, message: withoutId(m.message, unknownTx) });
    });

    // B's transaction is still B's: B can use and commit it (positive control).
    const again = await rpcRaw('Execute', { Server: 'BM', Method: 'AccountDetailsGet_API', Params: [custB.accountId], Username: B.login, Password: B.password, TransactionID: txB });
    expect(again.fault, 'B still uses its transaction').to.equal(undefined);
    const commit = await rpcRaw('CommitTransaction', { TransactionID: txB, Username: B.login, Password: B.password });
    expect(commit.value).to.deep.equal({ Result: [{ Status: 'Operation done.' }] });
  });

  it("nothing of B's or the provider's was changed by A's attempts", async () => {
    const db = world.fresh.db;
    for (const id of [B.accountId, custB.accountId, provider.accountId]) {
      const row = (await db('accounts').where({ id }).first('company_name')) as { company_name: string };
      expect(row.company_name, `account ${id}`).not.to.match(/Renamed/);
    }
    for (const id of [B.accountId, custB.accountId, provider.accountId]) {
      const logins = ((await db('users').where({ account_id: id }).select('login')) as { login: string }[]).map((u) => u.login);
      expect(logins.filter((l) => l.startsWith('scope-')), `users of account ${id}`).to.deep.equal([]);
    }
    const underForeign = (await db('accounts').whereIn('vendor_id', [B.accountId, custB.accountId, provider.accountId]).andWhere('company_name', 'like', 'Scope %').select('company_name', 'vendor_id')) as {
      company_name: string;
    }[];
    expect(underForeign.map((a) => a.company_name).sort()).to.deep.equal(['Scope Customer B', 'Scope Reseller A', 'Scope Reseller B']);
    // ... and A's own positive controls did land.
    const customerA = (await db('accounts').where({ id: custA.accountId }).first('company_name')) as { company_name: string };
    expect(customerA.company_name).to.match(/^Renamed/);
  });

  it('XML-RPC AccountWithIDAdd_API: a reseller may not choose ids at all, so free and taken ids answer alike', async () => {
    const taken = expectFault(await rpc('AccountWithIDAdd_API', [...accountAddParams(A.accountId, unique('Taken Id')), B.accountId]), 'taken id');
    const free = expectFault(await rpc('AccountWithIDAdd_API', [...accountAddParams(A.accountId, unique('Free Id')), 1_900_000_000 + ++seq]), 'free id');
    expect(taken.code).to.equal('NOT_ALLOWED');
    expect(free).to.deep.equal(taken);
  });

  it('the table covers every implemented operation that takes an id (a new operation needs a row here)', () => {
    const covered = new Set(rows.map((r) => `${r.dialect} ${r.op.replace(/ \(.*\)$/, '')}`));
    for (const extra of ['SOAP ValidateUser', 'XML-RPC UserValidate_API']) covered.add(extra); // the login/password test above
    covered.add('XML-RPC AccountWithIDAdd_API'); // provider-only: the test below
    covered.add('SOAP ListTasks'); // scoped lists and RetryTask by id: test/api/soap/provisioning-tasks.test.ts
    covered.add('SOAP RetryTask');
    // Suspend/resume/terminate/provision change state: another reseller's subscription answers like a missing id,
    // door by door, in test/api/soap/subscription-actions.test.ts (A's own is suspended, resumed and terminated there).
    for (const op of ['SOAP SuspendSubscription', 'SOAP ResumeSubscription', 'SOAP TerminateSubscription', 'SOAP ProvisionSubscription', 'XML-RPC SubscriptionStop_API', 'XML-RPC SubscriptionStatusUpdate_API']) covered.add(op);
    // Renewal, cancellation, change and resource orders change state likewise: another reseller's subscription answers like a missing
    // id, door by door, in test/subscriptions/lifecycle-api.test.ts.
    for (const op of ['SOAP RenewSubscription', 'SOAP CancelSubscription', 'SOAP ChangeSubscriptionPlan', 'SOAP AddSubscriptionResources', 'XML-RPC PlaceSubscriptionCancellationOrder_API']) covered.add(op);
    // Taking a subscription from credit hold needs one dunning suspended: another reseller's answers like a missing
    // id in test/api/xmlrpc/credit-hold.test.ts.
    covered.add('XML-RPC SubscriptionTakeFromCreditHold_API');
    const withoutIds = new Set(['SOAP GetVersion', 'XML-RPC GetVersion_API', 'SOAP ListServiceGates', 'SOAP RunBilling']);
    // Availability and the transfer-key question take names of domains not held yet, never an object's id.
    for (const op of ['SOAP CheckDomain', 'XML-RPC SingleDomainNameAvailability_API', 'XML-RPC DomainNamesAvailability_API', 'XML-RPC DomainTransferKeyIsRequired_API']) withoutIds.add(op);
    const wsdlDir = path.resolve(__dirname, '..', '..', 'wsdl');
    const implemented = [
      ...Object.keys(billingService(world.server.services, wsdlDir).operations).map((op) => `SOAP ${op}`),
      ...Object.keys(provisioningService(world.server.services, wsdlDir).operations).map((op) => `SOAP ${op}`),
      ...Object.keys({ ...accountMethods, ...catalogMethods, ...orderMethods, ...lifecycleMethods, ...usageMethods, ...billingMethods }).map((key) => `XML-RPC ${key.replace(/^BM\./, '')}`),
      ...Object.keys({ ...eventMethods, ...domainMethods }).map((key) => `XML-RPC ${key.replace(/^[A-Z]+\./, '')}`),
    ];
    const missingRows = implemented.filter((op) => !covered.has(op) && !withoutIds.has(op));
    expect(missingRows, 'implemented operations without a scoping row').to.deep.equal([]);
  });
});
