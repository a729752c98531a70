/**
 * The SOAP door end to end: a real server on an ephemeral port, real HTTP, real SOAP bytes. Round trips go
 * through node-soap's own client; tests about bytes (hostile input, fault XML, SOAPAction, WS-Security tokens
 * built by hand) post hand-written envelopes. node-soap's client turns xs:decimal into floats, so money is read
 * from the raw response (client.lastResponse), never from the parsed result.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { expect } from 'chai';
import * as soap from 'soap';
import { parseStringPromise } from 'xml2js';
import { ManualClock } from '../../../src/clock';
import { formatAmount } from '../../../src/domain/money';
import { VERSION } from '../../../src/version';
import { billingService, provisioningService } from '../../../src/api/soap/billing-service';
import { ADMIN_PASSWORD, accountWithApiUser, providerActor, startApiWorld, type ApiWorld } from '../../helpers/api';

const NS = 'urn:hostwright:billing:v1';
const PROVISIONING_NS = 'urn:hostwright:provisioning:v1';
const SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/';
const WSSE = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd';
const WSU = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd';
const DIGEST_TYPE = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest';
const WSDL_DIR = path.resolve(__dirname, '..', '..', '..', 'wsdl');
const BILLING_WSDL = fs.readFileSync(path.join(WSDL_DIR, 'BillingService.wsdl'), 'utf8');


// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

type Client = soap.Client;
type Reply = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function clientFor(world: ApiWorld, security?: soap.ISecurity, service: 'billing' | 'provisioning' = 'billing'): Promise<Client> {
  const client = await soap.createClientAsync(`${world.url}/soap/${service}?wsdl`);
  if (security) client.setSecurity(security);
  return client;
}

const basicAuth = (login: string, password: string) => new soap.BasicAuthSecurity(login, password);

/** Calls an operation through node-soap's client and answers the parsed result. */
async function call(client: Client, operation: string, args: Record<string, unknown> = {}): Promise<Reply> {
  const fn = (client as unknown as Record<string, (a: unknown) => Promise<[Reply]>>)[`${operation}Async`];
  expect(fn, `node-soap's client has no ${operation}`).to.be.a('function');
  const [result] = await fn.call(client, args);
  return result ?? {};
}

/** Calls an operation that must fail; answers the HTTP status and the raw fault XML. */
async function callFault(client: Client, operation: string, args: Record<string, unknown> = {}): Promise<{ status: number; body: string }> {
  try {
    await call(client, operation, args);
  } catch (e) {
    const err = e as { response?: { status?: number }; body?: string };
    if (typeof err.body !== 'string') throw e;
    return { status: err.response?.status ?? 0, body: err.body };
  }
  throw new Error(`${operation} succeeded but a fault was expected`);
}

function envelope(body: string, opts: { ns?: string; header?: string; beforeBody?: string } = {}): string {
  return (
    '<?xml version="1.0" encoding="utf-8"?>' +
    `<soap:Envelope xmlns:soap="${SOAP_ENV}" xmlns:tns="${opts.ns ?? NS}">` +
    (opts.header ?? '') +
    (opts.beforeBody ?? '') +
    `<soap:Body>${body}</soap:Body></soap:Envelope>`
  );
}

const basicHeader = (login: string, password: string) => `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`;
const adminBasic = () => basicHeader('admin', ADMIN_PASSWORD);

interface RawReply {
  status: number;
  contentType: string | null;
  text: string;
}

/** POSTs bytes as they are (fetch sets Content-Length). */
async function post(world: ApiWorld, body: string | Buffer, headers: Record<string, string> = {}, servicePath = '/soap/billing'): Promise<RawReply> {
  const res = await fetch(`${world.url}${servicePath}`, { method: 'POST', body, headers: { 'content-type': 'text/xml; charset=utf-8', ...headers } });
  return { status: res.status, contentType: res.headers.get('content-type'), text: await res.text() };
}

/** A request through node's http client, for what fetch will not do (a chosen Host header, a chunked body). */
function rawRequest(
  world: ApiWorld,
  opts: { method: string; path: string; headers?: Record<string, string>; chunks?: Buffer[] },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const url = new URL(world.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method: opts.method, path: opts.path, headers: opts.headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    for (const c of opts.chunks ?? []) req.write(c);
    req.end();
  });
}

interface XNode {
  $ns?: { local: string; uri: string };
  _?: string;
  [child: string]: unknown;
}

function findAll(node: unknown, local: string, uri?: string, out: XNode[] = []): XNode[] {
  if (Array.isArray(node)) {
    for (const n of node) findAll(n, local, uri, out);
  } else if (node !== null && typeof node === 'object') {
    const x = node as XNode;
    if (x.$ns && x.$ns.local === local && (uri === undefined || x.$ns.uri === uri)) out.push(x);
    for (const [k, v] of Object.entries(x)) if (k !== '$' && k !== '$ns' && k !== '_') findAll(v, local, uri, out);
  }
  return out;
}

const textOf = (n: XNode | undefined): string | undefined => (n === undefined ? undefined : typeof n === 'string' ? n : (n._ ?? ''));

interface Fault {
  faultcode?: string;
  faultstring?: string;
  /** detail/Error in the billing (or provisioning) namespace, resolved through the XML namespaces. */
  error?: { code?: string; message?: string; field?: string };
}

async function parseFault(xml: string, ns = NS): Promise<Fault> {
  const doc = (await parseStringPromise(xml, { xmlns: true, explicitCharkey: true })) as unknown;
  const fault = findAll(doc, 'Fault', SOAP_ENV)[0];
  if (!fault) return {};
  const detail = findAll(fault, 'detail')[0];
  const error = detail ? findAll(detail, 'Error', ns)[0] : undefined;
  const child = (n: XNode, name: string) => textOf(findAll(n, name, ns)[0]);
  return {
    faultcode: textOf(findAll(fault, 'faultcode', '')[0]),
    faultstring: textOf(findAll(fault, 'faultstring', '')[0]),
    error: error ? { code: child(error, 'code'), message: child(error, 'message'), field: child(error, 'field') } : undefined,
  };
}

/** Asserts a fault as the contract shapes it: soap:Client/Server, faultstring = message, detail/tns:Error{code, message, field?}. */
async function expectFault(xml: string, want: { faultcode: 'soap:Client' | 'soap:Server'; code: string; field?: string }, ns = NS): Promise<Fault> {
  const f = await parseFault(xml, ns);
  expect(f.faultcode, xml).to.equal(want.faultcode);
  expect(f.error, `detail/tns:Error in ${ns}: ${xml}`).to.not.equal(undefined);
  expect(f.error!.code, xml).to.equal(want.code);
  expect(f.error!.message, xml).to.be.a('string').and.not.equal('');
  expect(f.faultstring).to.equal(f.error!.message);
  if (want.field !== undefined) expect(f.error!.field, xml).to.equal(want.field);
  expectNoInternals(xml);
  return f;
}

/**
 * No stack trace, source path or SQL. (A bare "at " cannot be the test: English has "that " and the XML guard
 * says "at offset 356"; a stack frame reads "at fn (file:line:col)" or "at file:line:col".)
 */
function expectNoInternals(body: string): void {
  const leaks: [string, RegExp][] = [
    ['a stack frame', /\bat (?:async )?[\w$.<>[\] ]+ \(|\bat (?:file:\/\/)?\/?[\w./\\-]+:\d+:\d+/],
    ['an error class name', /\b(?:TypeError|ReferenceError|RangeError|SyntaxError)\b/],
    ['a source path', /(?:\/(?:src|node_modules|work|home|usr|tmp)\/|\b[\w-]+\.(?:ts|js|cjs|mjs)\b|[A-Z]:\\)/],
    ['SQL', /\b(?:select\s+[\w*`"]|insert\s+into|update\s+`?\w+`?\s+set|delete\s+from)\b|SQLITE_|\bER_[A-Z_]{3,}|sqlMessage|\bknex\b/i],
  ];
  for (const [what, re] of leaks) expect(re.test(body), `${what} in ${body}`).to.equal(false);
}

/** The direct children (local names, in document order) of every element called `local` in `xml`. */
function childOrder(xml: string, local: string): string[][] {
  const found: string[][] = [];
  const stack: { name: string; children: string[] }[] = [];
  const tag = /<(\/?)(?:[\w.-]+:)?([\w.-]+)\b[^>]*?(\/?)>/g;
  for (let m = tag.exec(xml); m; m = tag.exec(xml)) {
    const [, close, name, selfClosing] = m;
    if (close) {
      const done = stack.pop();
      if (done && done.name === local) found.push(done.children);
      continue;
    }
    stack[stack.length - 1]?.children.push(name);
    if (selfClosing) {
      if (name === local) found.push([]);
    } else {
      stack.push({ name, children: [] });
    }
  }
  return found;
}

/** The xs:sequence of a named complexType of the WSDL: element names in order, with whether each is optional. */
function xsdSequence(type: string, wsdl = BILLING_WSDL): { name: string; optional: boolean }[] {
  const start = wsdl.indexOf(`<xsd:complexType name="${type}">`);
  expect(start, `complexType ${type} in the WSDL`).to.be.greaterThan(-1);
  const block = wsdl.slice(start, wsdl.indexOf('</xsd:complexType>', start));
  return [...block.matchAll(/<xsd:element name="(\w+)"([^>]*)>/g)].map((m) => ({ name: m[1], optional: /minOccurs="0"/.test(m[2]) }));
}

/** Every `element` in the response has its children in the order of `type`'s sequence, nothing undeclared, nothing required missing. */
function expectSequenceOrder(xml: string, element: string, type: string): void {
  const seq = xsdSequence(type);
  const names = seq.map((s) => s.name);
  const occurrences = childOrder(xml, element);
  expect(occurrences, `<${element}> in the response`).to.not.be.empty;
  for (const children of occurrences) {
    expect(children, `<${element}> children against ${type}'s xs:sequence`).to.deep.equal(names.filter((n) => children.includes(n)));
    for (const s of seq) if (!s.optional) expect(children, `required ${type}.${s.name}`).to.include(s.name);
  }
}

/** The text of every `<local>` in `xml`, as sent (money is compared as text, never through a float). */
function textsOf(xml: string, local: string): string[] {
  return [...xml.matchAll(new RegExp(`<(?:[\\w.-]+:)?${local}>([^<]*)</(?:[\\w.-]+:)?${local}>`, 'g'))].map((m) => m[1]);
}

/** A WS-Security UsernameToken with PasswordDigest = Base64(SHA-1(nonce + created + secret)), built by hand. */
function digestHeader(login: string, secret: string, opts: { nonce?: Buffer; created?: string } = {}): string {
  const nonce = opts.nonce ?? crypto.randomBytes(16);
  const created = opts.created ?? new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const digest = crypto.createHash('sha1').update(nonce).update(created).update(secret).digest('base64');
  return (
    `<soap:Header><wsse:Security xmlns:wsse="${WSSE}" xmlns:wsu="${WSU}" soap:mustUnderstand="1"><wsse:UsernameToken>` +
    `<wsse:Username>${login}</wsse:Username>` +
    `<wsse:Password Type="${DIGEST_TYPE}">${digest}</wsse:Password>` +
    `<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">${nonce.toString('base64')}</wsse:Nonce>` +
    `<wsu:Created>${created}</wsu:Created>` +
    `</wsse:UsernameToken></wsse:Security></soap:Header>`
  );
}

const contact = (email: string) => ({ firstName: 'Ada', lastName: 'Lovelace', email, country: 'GB' });

async function count(world: ApiWorld, table: string): Promise<number> {
  const [{ n }] = (await world.fresh.db(table).count({ n: '*' })) as { n: number | string }[];
  return Number(n);
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Round trips, 2. UNAVAILABLE operations, 3. faults, 6. audit, 7. WSDL: one world with the demo catalog
// ---------------------------------------------------------------------------------------------------------------

describe('SOAP API (node-soap client and raw envelopes over real HTTP)', function () {
  let world: ApiWorld;
  let admin: Client;

  before(async () => {
    world = await startApiWorld({ demo: true });
    admin = await clientFor(world, basicAuth('admin', ADMIN_PASSWORD));
  });
  after(async () => {
    await world?.close();
  });

  describe('round trips of the BillingService and ProvisioningService operations', () => {
    it('GetVersion answers the server version and apiVersion v1, version first', async () => {
      expect(await call(admin, 'GetVersion')).to.deep.equal({ version: VERSION, apiVersion: 'v1' });
      expect(admin.lastResponse).to.contain(`<GetVersionResponse xmlns="${NS}"><version>${VERSION}</version><apiVersion>v1</apiVersion></GetVersionResponse>`);
    });

    it('ProvisioningService GetVersion answers on /soap/provisioning in its own namespace', async () => {
      const client = await clientFor(world, basicAuth('admin', ADMIN_PASSWORD), 'provisioning');
      expect(await call(client, 'GetVersion')).to.deep.equal({ version: VERSION, apiVersion: 'v1' });
      expect(client.lastResponse).to.contain(`<GetVersionResponse xmlns="${PROVISIONING_NS}"><version>${VERSION}</version><apiVersion>v1</apiVersion></GetVersionResponse>`);
    });

    it('CreateAccount makes an account that GetAccount returns field for field, in the Account and Contact sequence order', async () => {
      const created = await call(admin, 'CreateAccount', {
        type: 'customer',
        companyName: 'Round Trip Ltd',
        contact: { firstName: 'Grace', lastName: 'Hopper', email: 'grace@roundtrip.example', phone: '+1 555 0100', address1: '1 Main St', city: 'Arlington', state: 'VA', zip: '22201', country: 'US' },
        currency: 'EUR',
        externalId: 'crm-4711',
        taxStatus: 'exempt',
      });
      const accountId = Number(created.accountId);
      expect(accountId).to.be.a('number').and.greaterThan(0);
      expect(admin.lastResponse).to.match(new RegExp(`<CreateAccountResponse xmlns="${NS}"><accountId>${accountId}</accountId></CreateAccountResponse>`));

      const before = Date.now();
      const { account } = await call(admin, 'GetAccount', { accountId });
      const provider = await providerActor(world);
      expect(account).to.deep.include({ accountId, vendorAccountId: provider.accountId, type: 'customer', status: 'active', companyName: 'Round Trip Ltd', currency: 'EUR', externalId: 'crm-4711', taxStatus: 'exempt' });
      expect(account.contact).to.deep.equal({ firstName: 'Grace', lastName: 'Hopper', email: 'grace@roundtrip.example', phone: '+1 555 0100', address1: '1 Main St', city: 'Arlington', state: 'VA', zip: '22201', country: 'US' });
      const xml = admin.lastResponse;
      expect(textsOf(xml, 'balance')).to.deep.equal(['0.00']);
      const [createdAt] = textsOf(xml, 'createdAt');
      expect(createdAt).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
      expect(Date.parse(createdAt)).to.be.at.most(before);
      expectSequenceOrder(xml, 'account', 'Account');
      expectSequenceOrder(xml, 'contact', 'Contact');
    });

    it('GetAccount writes the balance as exact decimal text in the currency exponent (KWD 0.000, JPY 0)', async () => {
      for (const [currency, zero] of [['KWD', '0.000'], ['JPY', '0']]) {
        const { accountId } = await call(admin, 'CreateAccount', { type: 'customer', contact: contact(`${currency.toLowerCase()}@money.example`), currency });
        await call(admin, 'GetAccount', { accountId });
        expect(textsOf(admin.lastResponse, 'balance'), currency).to.deep.equal([zero]);
        expect(textsOf(admin.lastResponse, 'currency'), currency).to.deep.equal([currency]);
      }
    });

    it('CreateAccount with an idempotencyKey twice answers the first id and creates one account', async () => {
      const args = { type: 'customer', companyName: 'Once Only', contact: contact('once@idem.example'), idempotencyKey: 'create-once-1' };
      const first = await call(admin, 'CreateAccount', args);
      const accounts = await count(world, 'accounts');
      const second = await call(admin, 'CreateAccount', args);
      expect(second.accountId).to.equal(first.accountId);
      expect(await count(world, 'accounts')).to.equal(accounts);
      expect(await world.fresh.db('accounts').where({ company_name: 'Once Only' })).to.have.length(1);
    });

    it('CreateAccount with a used idempotencyKey and other arguments is a CONFLICT fault and creates nothing', async () => {
      await call(admin, 'CreateAccount', { type: 'customer', companyName: 'Key Owner', contact: contact('owner@idem.example'), idempotencyKey: 'create-once-2' });
      const accounts = await count(world, 'accounts');
      const { status, body } = await callFault(admin, 'CreateAccount', { type: 'customer', companyName: 'Someone Else', contact: contact('else@idem.example'), idempotencyKey: 'create-once-2' });
      expect(status).to.equal(500);
      await expectFault(body, { faultcode: 'soap:Client', code: 'CONFLICT', field: 'idempotencyKey' });
      expect(await count(world, 'accounts')).to.equal(accounts);
    });

    it('UpdateAccount changes the fields it is given, keeps the others, and answers the whole account in sequence order', async () => {
      const { accountId } = await call(admin, 'CreateAccount', { type: 'customer', companyName: 'Before Co', contact: { ...contact('before@update.example'), city: 'Leeds' } });
      const { account } = await call(admin, 'UpdateAccount', { accountId, companyName: 'After Co', contact: { email: 'after@update.example' } });
      expect(account).to.deep.include({ accountId: Number(accountId), companyName: 'After Co', status: 'active' });
      expect(account.contact).to.deep.include({ firstName: 'Ada', lastName: 'Lovelace', email: 'after@update.example', city: 'Leeds', country: 'GB' });
      expectSequenceOrder(admin.lastResponse, 'account', 'Account');
      const again = await call(admin, 'GetAccount', { accountId });
      expect(again.account.companyName).to.equal('After Co');
      expect(again.account.contact.email).to.equal('after@update.example');
    });

    it("ListAccounts answers the caller's subtree with its total, and one account is still an <accounts><account> list", async () => {
      const reseller = await accountWithApiUser(world, 'reseller', 'List Reseller');
      const client = await clientFor(world, basicAuth(reseller.login, reseller.password));
      const { accountId: customerId } = await call(client, 'CreateAccount', { type: 'customer', companyName: 'Only Child', contact: contact('child@list.example') });
      const r = await call(client, 'ListAccounts', {});
      expect(Number(r.total)).to.equal(1);
      const xml = client.lastResponse;
      expect(xml).to.match(/<accounts><account><accountId>\d+<\/accountId>/);
      expect(childOrder(xml, 'accounts')).to.deep.equal([['account']]);
      expect(textsOf(xml, 'accountId')).to.deep.equal([String(customerId)]);
      expect(childOrder(xml, 'ListAccountsResponse')).to.deep.equal([['accounts', 'total']]);
      expectSequenceOrder(xml, 'account', 'Account');

      const filtered = await call(admin, 'ListAccounts', { vendorAccountId: reseller.accountId });
      expect(Number(filtered.total)).to.equal(1);
      expect(textsOf(admin.lastResponse, 'companyName')).to.deep.equal(['Only Child']);
    });

    it('CreateUser makes a user that GetUser returns with its roles, in the User sequence order', async () => {
      const { accountId } = await call(admin, 'CreateAccount', { type: 'customer', companyName: 'Users Inc', contact: contact('owner@users.example') });
      const { userId } = await call(admin, 'CreateUser', {
        accountId,
        login: 'users-inc-billing',
        password: 'correct horse battery',
        email: 'billing@users.example',
        firstName: 'Bill',
        lastName: 'Ing',
        roles: { role: ['billing', 'technical'] },
      });
      expect(Number(userId)).to.be.greaterThan(0);
      const { user } = await call(admin, 'GetUser', { userId });
      expect(user).to.deep.include({ userId: Number(userId), accountId: Number(accountId), login: 'users-inc-billing', email: 'billing@users.example', firstName: 'Bill', lastName: 'Ing', status: 'enabled' });
      expect(textsOf(admin.lastResponse, 'role')).to.deep.equal(['billing', 'technical']);
      expect(admin.lastResponse).to.not.contain('correct horse battery');
      expectSequenceOrder(admin.lastResponse, 'user', 'User');
    });

    it('ListUsers answers the users of an account with the total', async () => {
      const owner = await accountWithApiUser(world, 'customer', 'Listed Users');
      await call(admin, 'CreateUser', { accountId: owner.accountId, login: 'listed-second', password: 'second-password', email: 'second@listed.example', firstName: 'Sec', lastName: 'Ond' });
      const r = await call(admin, 'ListUsers', { accountId: owner.accountId });
      expect(Number(r.total)).to.equal(2);
      expect(textsOf(admin.lastResponse, 'login')).to.deep.equal([owner.login, 'listed-second']);
      expect(childOrder(admin.lastResponse, 'ListUsersResponse')).to.deep.equal([['users', 'total']]);
      expectSequenceOrder(admin.lastResponse, 'user', 'User');
    });

    it('ValidateUser answers the account, user and vendor of a right login and password', async () => {
      const reseller = await accountWithApiUser(world, 'reseller', 'Validating Reseller');
      const customer = await accountWithApiUser(world, 'customer', 'Validated Customer', reseller.accountId);
      const client = await clientFor(world, basicAuth(reseller.login, reseller.password));
      const r = await call(client, 'ValidateUser', { login: customer.login, password: customer.password });
      expect(r).to.deep.equal({ accountId: customer.accountId, userId: customer.userId, vendorAccountId: reseller.accountId });
      expect(childOrder(client.lastResponse, 'ValidateUserResponse')).to.deep.equal([['accountId', 'userId', 'vendorAccountId']]);
    });

    it('ValidateUser with a wrong password is an UNAUTHENTICATED fault', async () => {
      const customer = await accountWithApiUser(world, 'customer', 'Wrongly Validated');
      const { body } = await callFault(admin, 'ValidateUser', { login: customer.login, password: 'not-the-password' });
      await expectFault(body, { faultcode: 'soap:Client', code: 'UNAUTHENTICATED' });
    });

    it('ListPlans answers the published plans with their periods, money as the exact decimal text, in sequence order', async () => {
      const r = await call(admin, 'ListPlans', {});
      const xml = admin.lastResponse;
      const expected = await world.server.services.catalog.listPlans(await providerActor(world), {});
      expect(expected.items.length).to.be.greaterThan(1);
      expect(Number(r.total)).to.equal(expected.total);
      expect(textsOf(xml, 'name')).to.deep.equal(expected.items.map((p) => p.name));
      const periods = expected.items.flatMap((p) => p.periods.filter((x) => x.enabled));
      expect(textsOf(xml, 'recurringFee')).to.deep.equal(periods.map((x) => formatAmount(x.recurringFee, x.currency)));
      expect(textsOf(xml, 'setupFee')).to.deep.equal(periods.map((x) => formatAmount(x.setupFee, x.currency)));
      expect(textsOf(xml, 'recurringFee')).to.include('4.99'); // Shared Hosting Basic, 1 month
      expect(xml).to.not.contain('<description>'); // GetPlan only
      expect(xml).to.not.contain('<resources>');
      expectSequenceOrder(xml, 'plan', 'Plan');
      expectSequenceOrder(xml, 'period', 'PlanPeriod');
    });

    it('GetPlan answers one plan with its description, periods and resources in sequence order', async () => {
      const expected = (await world.server.services.catalog.listPlans(await providerActor(world), {})).items.find((p) => p.resources.length > 0)!;
      const { plan } = await call(admin, 'GetPlan', { planId: expected.planId });
      expect(plan).to.deep.include({ planId: expected.planId, name: expected.name, category: expected.category, description: expected.description, serviceGate: expected.serviceGate });
      const xml = admin.lastResponse;
      expect(textsOf(xml, 'periodId')).to.deep.equal(expected.periods.map((x) => String(x.periodId)));
      expect(textsOf(xml, 'renewalFee')).to.deep.equal(expected.periods.map((x) => formatAmount(x.renewalFee, x.currency)));
      expect(textsOf(xml, 'overageFee')).to.deep.equal(expected.resources.map((x) => formatAmount(x.overageFee, x.currency)));
      expect(textsOf(xml, 'resourceId')).to.deep.equal(expected.resources.map((x) => String(x.resourceId)));
      expectSequenceOrder(xml, 'plan', 'Plan');
      expectSequenceOrder(xml, 'period', 'PlanPeriod');
      expectSequenceOrder(xml, 'resource', 'ResourceRate');
    });
  });

  describe('operations the WSDL declares but the server has not built yet', () => {
    for (const service of ['billing', 'provisioning'] as const) {
      it(`every other ${service} operation node-soap's client describes answers a soap:Server fault with detail code UNAVAILABLE`, async () => {
        const client = await clientFor(world, basicAuth('admin', ADMIN_PASSWORD), service);
        const description = client.describe() as Record<string, Record<string, Record<string, unknown>>>;
        const port = Object.values(Object.values(description)[0])[0];
        const operations = Object.keys(port);
        const built = Object.keys((service === 'billing' ? billingService : provisioningService)(world.server.services, WSDL_DIR).operations);
        for (const op of built) expect(operations, 'the WSDL declares the built operations').to.include(op);
        const pending = operations.filter((op) => !built.includes(op));
        const ns = service === 'billing' ? NS : PROVISIONING_NS;
        const wrong: string[] = [];
        for (const op of pending) {
          const { status, body } = await callFault(client, op, {});
          const f = await parseFault(body, ns);
          if (status !== 500 || f.faultcode !== 'soap:Server' || f.error?.code !== 'UNAVAILABLE' || !f.error.message?.includes(op)) wrong.push(`${op}: ${status} ${body}`);
          expectNoInternals(body);
        }
        expect(wrong).to.deep.equal([]);
      });
    }
  });

  describe('faults', () => {
    it('GetAccount of a missing account is HTTP 500 with soap:Client and detail/tns:Error code NOT_FOUND', async () => {
      const { status, body } = await callFault(admin, 'GetAccount', { accountId: 987654321 });
      expect(status).to.equal(500);
      const f = await expectFault(body, { faultcode: 'soap:Client', code: 'NOT_FOUND' });
      expect(f.error!.message).to.contain('987654321');
    });

    it('CreateAccount with a bad contact email is a soap:Client INVALID_ARGUMENT fault naming field contact.email', async () => {
      const accounts = await count(world, 'accounts');
      const { status, body } = await callFault(admin, 'CreateAccount', { type: 'customer', contact: contact('not-an-email') });
      expect(status).to.equal(500);
      await expectFault(body, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT', field: 'contact.email' });
      expect(await count(world, 'accounts')).to.equal(accounts);
    });

    it("an account outside the caller's subtree answers exactly like a missing one", async () => {
      const a = await accountWithApiUser(world, 'reseller', 'Probe A');
      const b = await accountWithApiUser(world, 'reseller', 'Probe B');
      const client = await clientFor(world, basicAuth(a.login, a.password));
      const missingId = 99_000_000 + b.accountId;
      const other = await callFault(client, 'GetAccount', { accountId: b.accountId });
      const missing = await callFault(client, 'GetAccount', { accountId: missingId });
      expect(other.status).to.equal(missing.status);
      expect(other.body.replaceAll(String(b.accountId), 'ID')).to.equal(missing.body.replaceAll(String(missingId), 'ID'));
      await expectFault(other.body, { faultcode: 'soap:Client', code: 'NOT_FOUND' });
    });

    it('a fault body never carries a stack trace, a source path or SQL, also when the database refuses a write', async () => {
      // The detector itself catches a real stack trace and a real SQL error text.
      expect(() => expectNoInternals(new Error('boom').stack!)).to.throw(/stack frame|source path/);
      expect(() => expectNoInternals('insert into `users` (`login`) values (?) - ER_DUP_ENTRY')).to.throw(/SQL/);

      const owner = await accountWithApiUser(world, 'customer', 'Leak Check');
      const bodies = [
        (await callFault(admin, 'GetAccount', { accountId: 123456789 })).body,
        (await callFault(admin, 'GetAccount', { accountId: 'abc' })).body,
        (await callFault(admin, 'CreateAccount', { type: 'customer', contact: contact('bad') })).body,
        (await callFault(admin, 'CreateAccount', { type: 'customer', companyName: 'x'.repeat(5000), contact: contact('long@leak.example') })).body,
        // A login that already exists: the database's unique index refuses the insert.
        (await callFault(admin, 'CreateUser', { accountId: owner.accountId, login: owner.login, password: 'another-password', email: 'dup@leak.example', firstName: 'Du', lastName: 'Plicate' })).body,
        (await callFault(admin, 'PlaceOrder', { accountId: owner.accountId })).body,
        (await post(world, envelope('<tns:GetVersion><tns:x></tns:GetVersion>'), { authorization: adminBasic() })).text,
      ];
      const codes = await Promise.all(bodies.map(async (b) => (await parseFault(b)).error?.code));
      expect(codes).to.deep.equal(['NOT_FOUND', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'CONFLICT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT']);
      for (const b of bodies) expectNoInternals(b);
    });
  });

  describe('audit trail of SOAP calls', () => {
    let reseller: Awaited<ReturnType<typeof accountWithApiUser>>;
    let client: Client;
    before(async () => {
      reseller = await accountWithApiUser(world, 'reseller', 'Audited Reseller');
      client = await clientFor(world, basicAuth(reseller.login, reseller.password));
      await call(client, 'GetVersion'); // signs in once, so the tests below see only their own rows
    });

    it("a successful CreateAccount writes an audit row: channel soap, the caller's user and account, remote address, operation, outcome ok", async () => {
      const { accountId } = await call(client, 'CreateAccount', { type: 'customer', companyName: 'Audited Customer', contact: contact('audited@audit.example') });
      const rows = await world.fresh.db('audit_log').where({ operation: 'CreateAccount', object_id: String(accountId) });
      expect(rows).to.have.length(1);
      const [row] = rows;
      expect(row).to.deep.include({ channel: 'soap', object_type: 'account', outcome: 'ok', error_code: null });
      expect(Number(row.actor_user_id)).to.equal(reseller.userId);
      expect(Number(row.actor_account_id)).to.equal(reseller.accountId);
      expect(row.remote_addr).to.match(/(^|:)127\.0\.0\.1$/);
      expect(row.request_id).to.be.a('string').and.not.equal('');
    });

    it('a failed UpdateAccount (bad email) writes outcome error with error_code INVALID_ARGUMENT and changes nothing', async () => {
      const { accountId } = await call(client, 'CreateAccount', { type: 'customer', companyName: 'Kept Name', contact: contact('kept@audit.example') });
      const before = Number((await world.fresh.db('audit_log').max({ id: 'id' }))[0].id);
      const { body } = await callFault(client, 'UpdateAccount', { accountId, companyName: 'Lost Name', contact: { email: 'no-at-sign' } });
      await expectFault(body, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT', field: 'contact.email' });
      const rows = await world.fresh.db('audit_log').where('id', '>', before);
      expect(rows).to.have.length(1);
      expect(rows[0]).to.deep.include({ channel: 'soap', operation: 'UpdateAccount', outcome: 'error', error_code: 'INVALID_ARGUMENT' });
      expect(Number(rows[0].actor_user_id)).to.equal(reseller.userId);
      expect(Number(rows[0].actor_account_id)).to.equal(reseller.accountId);
      expect(rows[0].remote_addr).to.match(/(^|:)127\.0\.0\.1$/);
      expect((await call(client, 'GetAccount', { accountId })).account.companyName).to.equal('Kept Name');
    });

    it('a GetAccount writes no audit row', async () => {
      const { accountId } = await call(client, 'CreateAccount', { type: 'customer', contact: contact('read@audit.example') });
      const rows = await count(world, 'audit_log');
      await call(client, 'GetAccount', { accountId });
      await call(client, 'GetAccount', { accountId });
      expect(await count(world, 'audit_log')).to.equal(rows);
    });
  });

  describe('the WSDL', () => {
    for (const [service, file] of [['billing', 'BillingService.wsdl'], ['provisioning', 'ProvisioningService.wsdl']] as const) {
      it(`/soap/${service}?wsdl is ${file} byte for byte, with soap:address pointing at the host the client used`, async () => {
        const original = fs.readFileSync(path.join(WSDL_DIR, file));
        const text = original.toString('utf8');
        expect(Buffer.from(text, 'utf8').equals(original), 'the file is plain UTF-8').to.equal(true);
        const addresses = text.match(/<soap:address location="[^"]*"\/>/g);
        expect(addresses).to.have.length(1);
        const expected = text.replace(addresses![0], `<soap:address location="http://example.test:1234/soap/${service}"/>`);
        expect(expected).to.not.equal(text);

        const res = await rawRequest(world, { method: 'GET', path: `/soap/${service}?wsdl`, headers: { host: 'example.test:1234' } });
        expect(res.status).to.equal(200);
        expect(res.headers['content-type']).to.match(/^text\/xml/);
        expect(res.body.equals(Buffer.from(expected, 'utf8')), 'served WSDL = file with the caller\'s host').to.equal(true);
      });
    }

    it('a Host header that is not a host name is not copied into the WSDL', async () => {
      const res = await rawRequest(world, { method: 'GET', path: '/soap/billing?wsdl', headers: { host: 'evil.test/"><x:y z="' } });
      expect(res.status).to.equal(200);
      const body = res.body.toString('utf8');
      expect(body).to.not.contain('evil.test');
      expect(body.match(/<soap:address location="http:\/\/[^"<>]+\/soap\/billing"\/>/g)).to.have.length(1);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 4. Authentication: a world that locks a login after three failures
// ---------------------------------------------------------------------------------------------------------------

describe('SOAP authentication', () => {
  let world: ApiWorld;
  let serial = 0;
  const user = (type: 'reseller' | 'customer' = 'reseller') => accountWithApiUser(world, type, `Auth User ${++serial}`);

  before(async () => {
    world = await startApiWorld({ config: { authFailureLimit: 3 } });
  });
  after(async () => {
    await world?.close();
  });

  it('a call without credentials is an UNAUTHENTICATED fault', async () => {
    const client = await clientFor(world);
    const { status, body } = await callFault(client, 'GetVersion');
    expect(status).to.equal(500);
    await expectFault(body, { faultcode: 'soap:Client', code: 'UNAUTHENTICATED' });
  });

  it('a wrong password is an UNAUTHENTICATED fault, and so is an unknown login, with the same message', async () => {
    const u = await user();
    const wrong = await callFault(await clientFor(world, basicAuth(u.login, 'wrong-password')), 'GetVersion');
    const unknown = await callFault(await clientFor(world, basicAuth('nobody-at-all', 'wrong-password')), 'GetVersion');
    const f = await expectFault(wrong.body, { faultcode: 'soap:Client', code: 'UNAUTHENTICATED' });
    expect((await expectFault(unknown.body, { faultcode: 'soap:Client', code: 'UNAUTHENTICATED' })).faultstring).to.equal(f.faultstring);
  });

  it("HTTP Basic signs the API user in: it reads its own account", async () => {
    const u = await user();
    const client = await clientFor(world, basicAuth(u.login, u.password));
    const { account } = await call(client, 'GetAccount', { accountId: u.accountId });
    expect(account.companyName).to.equal(`Auth User ${serial}`);
  });

  it('a WS-Security UsernameToken with PasswordText signs the API user in', async () => {
    const u = await user();
    const client = await clientFor(world, new soap.WSSecurity(u.login, u.password, { passwordType: 'PasswordText' }));
    const { account } = await call(client, 'GetAccount', { accountId: u.accountId });
    expect(Number(account.accountId)).to.equal(u.accountId);
    expect(client.lastRequest).to.contain('#PasswordText');
  });

  it('a WS-Security UsernameToken with PasswordDigest signs the API user in', async () => {
    const u = await user();
    const client = await clientFor(world, new soap.WSSecurity(u.login, u.password, { passwordType: 'PasswordDigest' }));
    const { account } = await call(client, 'GetAccount', { accountId: u.accountId });
    expect(Number(account.accountId)).to.equal(u.accountId);
    expect(client.lastRequest).to.contain('#PasswordDigest').and.not.contain(u.password);
  });

  it('the same PasswordDigest nonce sent twice is refused the second time', async () => {
    const u = await user();
    const client = await clientFor(world, new soap.WSSecurity(u.login, u.password, { passwordType: 'PasswordDigest' }));
    await call(client, 'GetAccount', { accountId: u.accountId });
    const replay = await post(world, client.lastRequest!);
    expect(replay.status).to.equal(500);
    const f = await expectFault(replay.text, { faultcode: 'soap:Client', code: 'UNAUTHENTICATED' });
    expect(f.faultstring).to.match(/nonce/i);
  });

  it('a PasswordDigest whose Created is 6 minutes old is refused (the same token made now is accepted)', async () => {
    const u = await user();
    const now = await post(world, envelope('<tns:GetVersion/>', { header: digestHeader(u.login, u.password) }));
    expect(now.status, now.text).to.equal(200);
    expect(now.text).to.contain(`<version>${VERSION}</version>`);

    const old = new Date(Date.now() - 6 * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const stale = await post(world, envelope('<tns:GetVersion/>', { header: digestHeader(u.login, u.password, { created: old }) }));
    expect(stale.status).to.equal(500);
    const f = await expectFault(stale.text, { faultcode: 'soap:Client', code: 'UNAUTHENTICATED' });
    expect(f.faultstring).to.match(/5 minutes/);
  });

  it('after authFailureLimit wrong passwords the right password is refused too; other logins still sign in', async () => {
    const victim = await user();
    const bystander = await user();
    for (let i = 0; i < 3; i++) {
      const r = await post(world, envelope('<tns:GetVersion/>'), { authorization: basicHeader(victim.login, `guess-${i}`) });
      await expectFault(r.text, { faultcode: 'soap:Client', code: 'UNAUTHENTICATED' });
    }
    const right = await post(world, envelope('<tns:GetVersion/>'), { authorization: basicHeader(victim.login, victim.password) });
    const f = await expectFault(right.text, { faultcode: 'soap:Client', code: 'UNAUTHENTICATED' });
    expect(f.faultstring).to.match(/too many failed/i);
    const other = await post(world, envelope('<tns:GetVersion/>'), { authorization: basicHeader(bystander.login, bystander.password) });
    expect(other.status, other.text).to.equal(200);
  });

  it('a user with neither the api nor the admin role is refused', async () => {
    const owner = await user('customer');
    await world.server.services.users.create(await providerActor(world), {
      accountId: owner.accountId,
      login: 'billing-clerk',
      password: 'billing-clerk-password',
      email: 'clerk@auth.example',
      firstName: 'Bill',
      lastName: 'Clerk',
      roles: ['billing', 'technical'],
    });
    const client = await clientFor(world, basicAuth('billing-clerk', 'billing-clerk-password'));
    const { body } = await callFault(client, 'GetAccount', { accountId: owner.accountId });
    const f = await expectFault(body, { faultcode: 'soap:Client', code: 'UNAUTHENTICATED' });
    expect(f.faultstring).to.match(/role/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 4b. Lockout per login and client address: a world behind a trusted proxy, so X-Forwarded-For is the address
// ---------------------------------------------------------------------------------------------------------------

describe('SOAP lockout per login and client address', () => {
  let world: ApiWorld;
  let clock: ManualClock;
  let serial = 0;
  const user = (type: 'reseller' | 'customer' = 'reseller', vendorId?: number) => accountWithApiUser(world, type, `Lockout User ${++serial}`, vendorId);
  /** GetVersion signed in with HTTP Basic from `address`. */
  const getVersion = (login: string, password: string, address: string) => post(world, envelope('<tns:GetVersion/>'), { authorization: basicHeader(login, password), 'x-forwarded-for': address });
  const refusedWith = async (r: RawReply, message: RegExp) => {
    expect(r.status, r.text).to.equal(500);
    expect((await expectFault(r.text, { faultcode: 'soap:Client', code: 'UNAUTHENTICATED' })).faultstring).to.match(message);
  };
  const lockAudits = (operation: 'LockSignIn' | 'UnlockSignIn', remoteAddr?: string) =>
    world.fresh.db('audit_log').where({ operation, ...(remoteAddr ? { remote_addr: remoteAddr } : {}) }).orderBy('id') as Promise<{ details: string; remote_addr: string | null; object_id: string }[]>;

  before(async () => {
    clock = new ManualClock(new Date()); // WS-Security Created times are checked against it
    world = await startApiWorld({ clock, config: { trustProxy: true, authFailureLimit: 3, authAddressFailureLimit: 5, authLoginFailureCeiling: 8, authLockoutSeconds: 60 } });
  });
  after(async () => {
    await world?.close();
  });

  it('a guesser locks its own address out of the login; the integration signing in from another address goes on, and the lock lifts', async () => {
    const victim = await user();
    expect((await getVersion(victim.login, victim.password, '198.51.100.10')).status).to.equal(200); // the integration, cached
    for (let i = 0; i < 3; i++) await refusedWith(await getVersion(victim.login, `guess-${i}`, '203.0.113.66'), /wrong/);
    await refusedWith(await getVersion(victim.login, victim.password, '203.0.113.66'), /too many failed sign-ins for this login from your address; try again in 60 seconds/i);
    const elsewhere = await getVersion(victim.login, victim.password, '198.51.100.10');
    expect(elsewhere.status, elsewhere.text).to.equal(200);
    expect((await getVersion(victim.login, victim.password, '198.51.100.11')).status, 'a new address, not cached').to.equal(200);
    // A WS-Security PasswordDigest from the guesser's address is held to the same lock.
    const digest = await post(world, envelope('<tns:GetVersion/>', { header: digestHeader(victim.login, victim.password) }), { 'x-forwarded-for': '203.0.113.66' });
    await refusedWith(digest, /from your address/);

    const [lock] = await lockAudits('LockSignIn', '203.0.113.66');
    expect(JSON.parse(lock.details)).to.include({ scope: 'login-address', failures: 3 });
    expect(JSON.stringify(lock)).to.not.contain(victim.login);
    clock.advance(61_000);
    expect((await getVersion(victim.login, victim.password, '203.0.113.66')).status).to.equal(200);
    const lifted = await lockAudits('UnlockSignIn', '203.0.113.66');
    expect(lifted.map((r) => [r.object_id, JSON.parse(r.details).scope])).to.deep.equal([[lock.object_id, 'login-address']]);
  });

  it('an address guessing many logins is throttled for every login, its own right password too, and no other address is', async () => {
    const targets = await Promise.all([1, 2, 3, 4, 5].map(() => user()));
    const own = await user();
    for (const t of targets) await refusedWith(await getVersion(t.login, 'spray-password', '203.0.113.77'), /wrong/);
    await refusedWith(await getVersion(own.login, own.password, '203.0.113.77'), /too many failed sign-ins from your address/i);
    expect((await getVersion(own.login, own.password, '198.51.100.20')).status).to.equal(200);
    expect((await getVersion(targets[0].login, targets[0].password, '198.51.100.20')).status).to.equal(200);
    const [lock] = await lockAudits('LockSignIn', '203.0.113.77');
    expect(JSON.parse(lock.details)).to.include({ scope: 'address', failures: 5 });
  });

  it('guessing one login from many addresses, each under its own limit, reaches the login-wide ceiling and locks the login everywhere', async () => {
    const victim = await user();
    const bystander = await user();
    for (const address of ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4']) {
      for (let i = 0; i < 2; i++) await refusedWith(await getVersion(victim.login, `spread-${i}`, address), /wrong/);
    }
    await refusedWith(await getVersion(victim.login, victim.password, '198.51.100.30'), /too many failed sign-ins for this login; try again/i);
    expect((await getVersion(bystander.login, bystander.password, '198.51.100.30')).status).to.equal(200);
    const locks = await lockAudits('LockSignIn', '192.0.2.4');
    expect(locks.map((r) => JSON.parse(r.details).scope)).to.deep.equal(['login']);
    clock.advance(61_000);
    expect((await getVersion(victim.login, victim.password, '198.51.100.30')).status).to.equal(200);
  });

  it('a successful sign-in clears the count of its login and address', async () => {
    const u = await user();
    // Without the reset the third typo (the first of round 2) would lock the login for this address.
    for (const round of [1, 2]) {
      for (let i = 0; i < 2; i++) await refusedWith(await getVersion(u.login, `typo-${round}-${i}`, '198.51.100.40'), /wrong/);
      const ok = await getVersion(u.login, u.password, '198.51.100.40');
      expect(ok.status, `round ${round}: ${ok.text}`).to.equal(200);
    }
  });

  it("ValidateUser's failures lock the checked login from the caller's address, but never the calling integration's own sign-in", async () => {
    const storefront = await user();
    const customers = await Promise.all([1, 2, 3, 4, 5].map(() => user('customer', storefront.accountId)));
    const validate = (login: string, password: string) =>
      post(world, envelope(`<tns:ValidateUser><tns:login>${login}</tns:login><tns:password>${password}</tns:password></tns:ValidateUser>`), {
        authorization: basicHeader(storefront.login, storefront.password),
        'x-forwarded-for': '198.51.100.50',
      });
    for (let i = 0; i < 3; i++) await refusedWith(await validate(customers[0].login, `typo-${i}`), /wrong/);
    await refusedWith(await validate(customers[0].login, customers[0].password), /for this login from your address/);
    expect((await getVersion(customers[0].login, customers[0].password, '198.51.100.51')).status, 'the customer itself, elsewhere').to.equal(200);
    // Five logins' worth of failures: the storefront's ValidateUser is throttled, its own calls are not.
    for (const c of customers.slice(1, 3)) await refusedWith(await validate(c.login, 'typo'), /wrong/);
    await refusedWith(await validate(customers[3].login, customers[3].password), /from your address/);
    expect((await getVersion(storefront.login, storefront.password, '198.51.100.50')).status).to.equal(200);
  });

  it('a cached sign-in does not outlive its account being closed', async () => {
    const u = await user('customer');
    expect((await getVersion(u.login, u.password, '198.51.100.60')).status).to.equal(200);
    await world.server.services.accounts.update(await providerActor(world), u.accountId, { status: 'closed' });
    await refusedWith(await getVersion(u.login, u.password, '198.51.100.60'), /wrong/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 5. Hostile input: a world with a 64 KiB body limit
// ---------------------------------------------------------------------------------------------------------------

describe('SOAP hostile input', () => {
  const LIMIT = 65536;
  let world: ApiWorld;
  let prototypeKeys: string[];
  const auth = () => ({ authorization: adminBasic() });
  const createAccountBody = (inner = '') =>
    `<tns:CreateAccount>${inner}<tns:type>customer</tns:type><tns:companyName>Hostile</tns:companyName><tns:contact><tns:firstName>H</tns:firstName><tns:lastName>I</tns:lastName><tns:email>h@hostile.example</tns:email><tns:country>DE</tns:country></tns:contact></tns:CreateAccount>`;

  before(async () => {
    world = await startApiWorld({ config: { bodyLimitBytes: LIMIT } });
    prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();
  });
  after(async () => {
    await world?.close();
  });

  /** The server still answers a normal GetVersion, and no prototype was touched. */
  async function expectStillServing(): Promise<void> {
    const r = await post(world, envelope('<tns:GetVersion/>'), auth());
    expect(r.status, r.text).to.equal(200);
    expect(r.text).to.contain(`<version>${VERSION}</version>`);
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).to.deep.equal(prototypeKeys);
  }

  it('a request body over the limit is refused with 413', async () => {
    const body = envelope(`<tns:GetVersion/><!--${'x'.repeat(LIMIT)}-->`);
    const r = await post(world, body, auth());
    expect(r.status).to.equal(413);
    await expectFault(r.text, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT', field: 'body' });
    await expectStillServing();
  });

  it('a chunked request body (no Content-Length) that grows past the limit is refused with 413', async () => {
    const head = Buffer.from(envelope(`<tns:GetVersion/><!--`).replace(/<\/soap:Body><\/soap:Envelope>$/, ''));
    const res = await rawRequest(world, {
      method: 'POST',
      path: '/soap/billing',
      headers: { 'content-type': 'text/xml; charset=utf-8', ...auth() },
      chunks: [head, Buffer.alloc(LIMIT, 'x'), Buffer.from('--></soap:Body></soap:Envelope>')],
    });
    expect(res.status).to.equal(413);
    await expectStillServing();
  });

  it('a small gzip body that inflates past the limit is refused with 413', async () => {
    const inflated = Buffer.from(envelope(`<tns:GetVersion/><!--${'x'.repeat(4 * LIMIT)}-->`));
    const gz = zlib.gzipSync(inflated);
    expect(gz.length).to.be.lessThan(2048);
    expect(inflated.length).to.be.greaterThan(LIMIT);
    const r = await post(world, gz, { ...auth(), 'content-encoding': 'gzip' });
    expect(r.status).to.equal(413);
    await expectFault(r.text, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT', field: 'body' });
    await expectStillServing();
  });

  it('a gzip body within the limit is answered', async () => {
    const r = await post(world, zlib.gzipSync(Buffer.from(envelope('<tns:GetVersion/>'))), { ...auth(), 'content-encoding': 'gzip' });
    expect(r.status, r.text).to.equal(200);
    expect(r.text).to.contain(`<version>${VERSION}</version>`);
  });

  it('a DOCTYPE with nested entities (billion laughs) is refused with a fault, quickly', async () => {
    const entities = ['<!ENTITY lol0 "lol">', ...Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i};`.repeat(10)}">`)].join('');
    const body = `<?xml version="1.0"?><!DOCTYPE lolz [${entities}]>` + envelope('<tns:GetAccount><tns:accountId>&lol9;</tns:accountId></tns:GetAccount>');
    const started = Date.now();
    const r = await post(world, body, auth());
    expect(Date.now() - started).to.be.lessThan(2000);
    expect(r.status).to.equal(500);
    await expectFault(r.text, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT', field: 'xml' });
    expect(r.text).to.not.contain('lollol');
    await expectStillServing();
  });

  it('elements nested 65 deep are refused with a fault (64 deep is answered)', async () => {
    // Envelope, Body and GetVersion are three levels.
    const nested = (levels: number) => envelope(`<tns:GetVersion>${'<a>'.repeat(levels - 3)}${'</a>'.repeat(levels - 3)}</tns:GetVersion>`);
    const ok = await post(world, nested(64), auth());
    expect(ok.status, ok.text).to.equal(200);
    const r = await post(world, nested(65), auth());
    expect(r.status).to.equal(500);
    const f = await expectFault(r.text, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT', field: 'xml' });
    expect(f.faultstring).to.match(/deeper than 64/);
    await expectStillServing();
  });

  it('10,001 elements are refused with a fault (10,000 are answered)', async () => {
    const many = (n: number) => envelope(`<tns:GetVersion>${'<a/>'.repeat(n - 3)}</tns:GetVersion>`);
    const ok = await post(world, many(10_000), auth());
    expect(ok.status, ok.text).to.equal(200);
    const r = await post(world, many(10_001), auth());
    expect(r.status).to.equal(500);
    const f = await expectFault(r.text, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT', field: 'xml' });
    expect(f.faultstring).to.match(/more than 10000 elements/);
    await expectStillServing();
  });

  it('a <__proto__> element is refused with a fault, creates nothing and pollutes nothing', async () => {
    const accounts = await count(world, 'accounts');
    const r = await post(world, envelope(createAccountBody('<__proto__><polluted>yes</polluted></__proto__>')), auth());
    expect(r.status).to.equal(500);
    await expectFault(r.text, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT', field: 'xml' });
    expect(await count(world, 'accounts')).to.equal(accounts);
    await expectStillServing();
  });

  it('an id="__proto__" attribute is refused with a fault, creates nothing and pollutes nothing', async () => {
    const accounts = await count(world, 'accounts');
    const body = envelope(createAccountBody().replace('<tns:CreateAccount>', '<tns:CreateAccount id="__proto__">').replace('<tns:type>', '<tns:type polluted="yes">'));
    const r = await post(world, body, auth());
    expect(r.status).to.equal(500);
    await expectFault(r.text, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT', field: 'xml' });
    expect(await count(world, 'accounts')).to.equal(accounts);
    await expectStillServing();
  });

  it('a SOAPAction naming another operation than the body is a soap:Client fault', async () => {
    const r = await post(world, envelope('<tns:GetVersion/>'), { ...auth(), soapaction: `"${NS}#CreateAccount"` });
    expect(r.status).to.equal(500);
    await expectFault(r.text, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT', field: 'SOAPAction' });
    await expectStillServing();
  });

  it('a SOAPAction cannot be made to match with a decoy Body in a comment or in the Header: the executed operation is compared', async () => {
    const accounts = await count(world, 'accounts');
    const action = { ...auth(), soapaction: `"${NS}#GetVersion"` };
    const inComment = await post(world, envelope(createAccountBody(), { beforeBody: '<!--<soap:Body><tns:GetVersion/>-->' }), action);
    await expectFault(inComment.text, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT', field: 'SOAPAction' });
    const inHeader = await post(world, envelope(createAccountBody(), { header: '<soap:Header><x:Body xmlns:x="urn:decoy"><tns:GetVersion/></x:Body></soap:Header>' }), action);
    await expectFault(inHeader.text, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT', field: 'SOAPAction' });
    expect(await count(world, 'accounts')).to.equal(accounts);
    await expectStillServing();
  });

  it('an empty SOAPAction, a matching one and none at all are all answered (the body decides)', async () => {
    for (const soapaction of ['""', `"${NS}#GetVersion"`, `${NS}#GetVersion`, undefined]) {
      const r = await post(world, envelope('<tns:GetVersion/>'), { ...auth(), ...(soapaction === undefined ? {} : { soapaction }) });
      expect(r.status, `SOAPAction ${soapaction}: ${r.text}`).to.equal(200);
      expect(r.text).to.contain(`<version>${VERSION}</version>`);
    }
  });

  it('an unknown operation element in the Body is a soap:Client fault', async () => {
    const r = await post(world, envelope('<tns:Frobnicate><tns:x>1</tns:x></tns:Frobnicate>'), auth());
    expect(r.status).to.equal(500);
    const f = await expectFault(r.text, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT' });
    expect(f.faultstring).to.contain('Frobnicate');
    await expectStillServing();
  });

  it('an unknown operation behind a decoy Body in a comment gets a fault in the contract format with no JavaScript error text', async () => {
    const r = await post(world, envelope('<tns:Frobnicate/>', { beforeBody: '<!--<soap:Body><tns:GetVersion/>-->' }), auth());
    expect(r.status).to.equal(500);
    const f = await parseFault(r.text);
    expect(f.faultcode, r.text).to.be.oneOf(['soap:Client', 'soap:Server']);
    expect(f.error?.code, r.text).to.be.a('string');
    expectNoInternals(r.text);
    await expectStillServing();
  });

  it('malformed XML is a soap:Client fault in the contract format, with no stack trace or parser internals', async () => {
    for (const body of [envelope('<tns:GetVersion><tns:x></tns:GetVersion>'), envelope('<tns:GetVersion/>').replace('</soap:Envelope>', '</soap:Envelop>')]) {
      const r = await post(world, body, auth());
      expect(r.status).to.equal(500);
      expect(r.contentType).to.match(/^text\/xml/);
      await expectFault(r.text, { faultcode: 'soap:Client', code: 'INVALID_ARGUMENT', field: 'xml' });
      expect(r.text).to.not.match(/Error:/);
    }
    await expectStillServing();
  });

  it('answers text/xml whatever Content-Type the request claimed', async () => {
    const r = await post(world, envelope('<tns:GetVersion/>'), { ...auth(), 'content-type': 'text/html' });
    expect(r.status).to.equal(200);
    expect(r.contentType).to.equal('text/xml; charset=utf-8');
  });
});

describe('SOAP audit behind a reverse proxy', () => {
  it('records the X-Forwarded-For client address only when TRUST_PROXY is on', async () => {
    for (const trustProxy of [true, false]) {
      const world = await startApiWorld({ config: { trustProxy } });
      try {
        const body =
          '<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="urn:hostwright:billing:v1"><soap:Body>' +
          '<t:CreateAccount><t:type>customer</t:type><t:contact><t:firstName>Fwd</t:firstName><t:lastName>Ed</t:lastName><t:email>fwd@example.com</t:email><t:country>US</t:country></t:contact></t:CreateAccount>' +
          '</soap:Body></soap:Envelope>';
        const res = await fetch(`${world.url}/soap/billing`, {
          method: 'POST',
          headers: { 'content-type': 'text/xml', authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'x-forwarded-for': '203.0.113.50, 10.0.0.1' },
          body,
        });
        expect(res.status).to.equal(200);
        const row = await world.fresh.db('audit_log').where({ operation: 'CreateAccount', channel: 'soap' }).first();
        expect(row.remote_addr).to.equal(trustProxy ? '203.0.113.50' : '127.0.0.1');
      } finally {
        await world.close();
      }
    }
  });
});
