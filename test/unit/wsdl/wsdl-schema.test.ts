/**
 * The WSDL files in wsdl/ are the SOAP contract (api-contract.md) and are served as-is, so they are checked
 * here as documents: valid WSDL 1.1 + SOAP 1.1 binding, inline XSD that compiles, the contract's operations
 * under their exact names, WS-I Basic Profile document/literal wrapped shape, and loadable by node-soap.
 * Needs `xmllint` (Debian: libxml2-utils); the WSDL schemas are vendored so nothing touches the network.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as soap from 'soap';
import { parseStringPromise } from 'xml2js';

const ROOT = path.resolve(__dirname, '../../..');
const SCHEMAS = path.join(ROOT, 'test/fixtures/schemas');
// soap.xsd imports wsdl.xsd, so one entry point checks both the WSDL 1.1 core and the SOAP binding elements.
const WSDL_SOAP_SCHEMA = path.join(SCHEMAS, 'soap.xsd');

const WSDL_NS = 'http://schemas.xmlsoap.org/wsdl/';
const SOAP_NS = 'http://schemas.xmlsoap.org/wsdl/soap/';
const XSD_NS = 'http://www.w3.org/2001/XMLSchema';
const SOAP_HTTP = 'http://schemas.xmlsoap.org/soap/http';

interface ServiceSpec {
  service: string;
  file: string;
  ns: string;
  address: string;
  /** The contract tables' operations (api-contract.md), plus the ones the v1 WSDLs add on top. */
  contractOperations: string[];
  /** Operations that create money movement or an order: their request ends with an optional idempotencyKey. */
  idempotent: string[];
}

const SERVICES: ServiceSpec[] = [
  {
    service: 'BillingService',
    file: path.join(ROOT, 'wsdl/BillingService.wsdl'),
    ns: 'urn:hostwright:billing:v1',
    address: 'http://localhost:8080/soap/billing',
    contractOperations: [
      'CreateAccount', 'GetAccount', 'UpdateAccount', 'ListAccounts', 'CreateUser', 'ValidateUser', 'ListPlans',
      'GetPlan', 'PlaceOrder', 'GetOrder', 'ListOrders', 'ApproveOrder', 'RejectOrder', 'GetSubscription',
      'ListSubscriptions', 'ChangeSubscriptionPlan', 'RenewSubscription', 'CancelSubscription', 'ReportUsage',
      'ListInvoices', 'GetInvoice', 'PayInvoice', 'RecordPayment', 'RefundPayment', 'ListPayments',
      'GetAccountBalance', 'AdjustBalance', 'RunBilling', 'GetVersion', 'GetUser', 'ListUsers',
      'AddSubscriptionResources',
    ],
    idempotent: [
      'CreateAccount', 'PlaceOrder', 'ChangeSubscriptionPlan', 'RenewSubscription', 'CancelSubscription',
      'AddSubscriptionResources', 'PayInvoice', 'RecordPayment', 'RefundPayment', 'AdjustBalance', 'RunBilling',
    ],
  },
  {
    service: 'ProvisioningService',
    file: path.join(ROOT, 'wsdl/ProvisioningService.wsdl'),
    ns: 'urn:hostwright:provisioning:v1',
    address: 'http://localhost:8080/soap/provisioning',
    contractOperations: [
      'GetProvisioningStatus', 'ProvisionSubscription', 'SuspendSubscription', 'ResumeSubscription',
      'TerminateSubscription', 'ListTasks', 'RetryTask', 'CheckDomain', 'RegisterDomain', 'TransferDomain',
      'RenewDomain', 'GetDomain', 'SetNameservers', 'GetEppCode', 'ListServiceGates', 'GetVersion',
      'ListDomains', 'SetDomainAutoRenew',
    ],
    idempotent: [
      'ProvisionSubscription', 'SuspendSubscription', 'ResumeSubscription', 'TerminateSubscription',
      'RegisterDomain', 'TransferDomain', 'RenewDomain', 'SetDomainAutoRenew',
    ],
  },
];

/** Element sequences the server is written against; changing one is a contract change. */
const FIXED_SEQUENCES: Record<string, Record<string, string[]>> = {
  BillingService: {
    Contact: ['firstName', 'lastName', 'email', 'phone?', 'address1?', 'city?', 'state?', 'zip?', 'country'],
    Account: [
      'accountId', 'vendorAccountId?', 'type', 'status', 'companyName?', 'contact', 'currency', 'balance',
      'createdAt', 'externalId?', 'resellerKind?', 'taxStatus?',
    ],
    User: ['userId', 'accountId', 'login', 'email', 'firstName', 'lastName', 'roles', 'status', 'createdAt'],
    Plan: [
      'planId', 'name', 'category', 'description?', 'serviceGate', 'trial', 'published?', 'vendorAccountId?',
      'periods', 'resources?',
    ],
    PlanPeriod: [
      'periodId', 'duration', 'unit', 'trial', 'setupFee', 'recurringFee', 'renewalFee', 'transferFee',
      'nonRefundableAmount', 'refundPeriodDays', 'enabled', 'currency',
    ],
    ResourceRate: [
      'resourceId', 'name', 'unit', 'included', 'min', 'max?', 'setupFee', 'recurringFee', 'overageFee', 'currency',
    ],
    ErrorDetail: ['code', 'message', 'field?'],
  },
  ProvisioningService: {
    ErrorDetail: ['code', 'message', 'field?'],
  },
};

/** Small instance documents that must validate against each inline schema (and so prove it compiles). */
const VALID_SAMPLES: Record<string, string[]> = {
  BillingService: [
    '<GetVersion xmlns="urn:hostwright:billing:v1"/>',
    `<Error xmlns="urn:hostwright:billing:v1"><code>NOT_FOUND</code><message>Account 5 does not exist.</message></Error>`,
    `<GetPlanResponse xmlns="urn:hostwright:billing:v1"><plan>
       <planId>7</planId><name>Linux Basic</name><category>hosting</category><description>1 site</description>
       <serviceGate>panel</serviceGate><trial>false</trial><published>true</published><vendorAccountId>1</vendorAccountId>
       <periods><period><periodId>70</periodId><duration>1</duration><unit>month</unit><trial>false</trial>
         <setupFee>0.00</setupFee><recurringFee>12345678901234567.89</recurringFee><renewalFee>9.99</renewalFee>
         <transferFee>0</transferFee><nonRefundableAmount>0</nonRefundableAmount><refundPeriodDays>30</refundPeriodDays>
         <enabled>true</enabled><currency>USD</currency></period></periods>
       <resources><resource><resourceId>3</resourceId><name>Disk</name><unit>GB</unit><included>0.5</included>
         <min>0</min><setupFee>0</setupFee><recurringFee>1.50</recurringFee><overageFee>0.25</overageFee>
         <currency>USD</currency></resource></resources>
     </plan></GetPlanResponse>`,
    `<ListPlansResponse xmlns="urn:hostwright:billing:v1"><plans><plan><planId>7</planId><name>Linux Basic</name>
       <category>hosting</category><serviceGate>panel</serviceGate><trial>false</trial><periods/></plan></plans>
       <total>1</total></ListPlansResponse>`,
    `<PlaceOrder xmlns="urn:hostwright:billing:v1"><accountId>42</accountId><items><item><planId>7</planId>
       <periodId>70</periodId><parameters><parameter><name>domain</name><value>example.com</value></parameter>
       </parameters><resources><resource><resourceId>3</resourceId><quantity>2.5</quantity></resource></resources>
       </item></items><idempotencyKey>order-42-1</idempotencyKey></PlaceOrder>`,
    `<AddSubscriptionResources xmlns="urn:hostwright:billing:v1"><subscriptionId>12</subscriptionId><resources>
       <resource><resourceId>3</resourceId><quantity>2</quantity></resource></resources><payToolId>5</payToolId>
       <idempotencyKey>more-disk-12-1</idempotencyKey></AddSubscriptionResources>`,
    `<AddSubscriptionResourcesResponse xmlns="urn:hostwright:billing:v1"><orderId>31</orderId><orderNumber>RS000031</orderNumber>
       <status>new</status><amount>3.02</amount><currency>USD</currency></AddSubscriptionResourcesResponse>`,
  ],
  ProvisioningService: [
    '<GetVersion xmlns="urn:hostwright:provisioning:v1"/>',
    `<CheckDomain xmlns="urn:hostwright:provisioning:v1"><names><name>example.com</name><name>example.net</name>
       </names></CheckDomain>`,
    `<GetDomainResponse xmlns="urn:hostwright:provisioning:v1"><domain><domainId>9</domainId><name>example.com</name>
       <accountId>42</accountId><status>active</status><expiresAt>2027-01-31T00:00:00Z</expiresAt>
       <nameservers><nameserver>ns1.example.net</nameserver></nameservers></domain></GetDomainResponse>`,
    `<ListDomains xmlns="urn:hostwright:provisioning:v1"><accountId>42</accountId><status>active</status><name>bakery</name>
       <page>2</page><pageSize>10</pageSize></ListDomains>`,
    `<ListDomainsResponse xmlns="urn:hostwright:provisioning:v1"><domains><domain><domainId>9</domainId><name>example.com</name>
       <accountId>42</accountId><status>active</status><nameservers/><autoRenew>true</autoRenew></domain></domains>
       <total>11</total></ListDomainsResponse>`,
  ],
};

/** Instance documents each inline schema must refuse: strict toolkits refuse them too. */
const INVALID_SAMPLES: Record<string, string[]> = {
  BillingService: [
    // currency before amount: out of xs:sequence order
    '<GetAccountBalanceResponse xmlns="urn:hostwright:billing:v1"><currency>USD</currency><balance>1</balance></GetAccountBalanceResponse>',
    '<Error xmlns="urn:hostwright:billing:v1"><code>OOPS</code><message>x</message></Error>',
    '<ListAccounts xmlns="urn:hostwright:billing:v1"><pageSize>501</pageSize></ListAccounts>',
    // amount before orderNumber: out of xs:sequence order
    '<AddSubscriptionResourcesResponse xmlns="urn:hostwright:billing:v1"><orderId>31</orderId><amount>3.02</amount><orderNumber>RS000031</orderNumber><status>new</status><currency>USD</currency></AddSubscriptionResourcesResponse>',
  ],
  ProvisioningService: [
    '<RegisterDomain xmlns="urn:hostwright:provisioning:v1"><accountId>1</accountId><name>a.com</name><years>0</years></RegisterDomain>',
    '<ListDomains xmlns="urn:hostwright:provisioning:v1"><status>parked</status></ListDomains>',
    // total before domains: out of xs:sequence order
    '<ListDomainsResponse xmlns="urn:hostwright:provisioning:v1"><total>0</total><domains/></ListDomainsResponse>',
  ],
};

// ---------------------------------------------------------------------------------------------------------------
// A namespace-aware view of an XML document (xml2js with xmlns + ordered children).

interface XAttr {
  value: string;
}
interface XNode {
  '#name': string;
  $ns: { uri: string; local: string };
  $?: Record<string, XAttr>;
  $$?: XNode[];
  _?: string;
}

async function parseXml(text: string): Promise<XNode> {
  const doc = await parseStringPromise(text, { explicitChildren: true, preserveChildrenOrder: true, xmlns: true });
  return Object.values(doc)[0] as XNode;
}

const kids = (node: XNode, uri: string, local?: string): XNode[] =>
  (node.$$ ?? []).filter((c) => c.$ns.uri === uri && (local === undefined || c.$ns.local === local));
const kid = (node: XNode, uri: string, local: string): XNode | undefined => kids(node, uri, local)[0];
const attr = (node: XNode | undefined, name: string): string | undefined => node?.$?.[name]?.value;
const names = (nodes: XNode[]): string[] => nodes.map((n) => attr(n, 'name') ?? '');

/** Element names of a sequence, suffixed with ? when optional and [] when repeated. */
function sequenceOf(complexType: XNode): string[] {
  const seq = kid(complexType, XSD_NS, 'sequence');
  if (!seq) return [];
  return kids(seq, XSD_NS, 'element').map(
    (e) => `${attr(e, 'name')}${attr(e, 'minOccurs') === '0' ? '?' : ''}${attr(e, 'maxOccurs') === 'unbounded' ? '[]' : ''}`,
  );
}

function xmllint(args: string[]): { status: number | null; output: string } {
  const r = spawnSync('xmllint', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`xmllint could not run (${r.error.message}); install libxml2-utils`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/**
 * The inline <xsd:schema> as a standalone schema document. It declares its own namespaces, but any the WSDL root
 * declares are copied on in case a later edit relies on them.
 */
function extractSchema(wsdlText: string): string {
  const start = wsdlText.indexOf('<xsd:schema');
  const endTag = '</xsd:schema>';
  const end = wsdlText.indexOf(endTag);
  expect(start, 'one inline <xsd:schema>').to.be.greaterThan(-1);
  expect(wsdlText.indexOf('<xsd:schema', start + 1), 'exactly one inline <xsd:schema>').to.equal(-1);
  let schema = wsdlText.slice(start, end + endTag.length);
  const rootStart = wsdlText.indexOf('<wsdl:definitions');
  const rootTag = wsdlText.slice(rootStart, wsdlText.indexOf('>', rootStart));
  const openTag = schema.slice(0, schema.indexOf('>'));
  for (const [, decl, prefix] of rootTag.matchAll(/(xmlns:([A-Za-z_][\w.-]*)="[^"]*")/g)) {
    if (!openTag.includes(`xmlns:${prefix}=`)) schema = schema.replace('<xsd:schema', `<xsd:schema ${decl}`);
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n${schema}\n`;
}

// ---------------------------------------------------------------------------------------------------------------

describe('WSDL contract files', () => {
  let tmp: string;

  before(() => {
    const v = spawnSync('xmllint', ['--version'], { encoding: 'utf8' });
    if (v.error) throw new Error('xmllint is required for these tests: apt-get install -y libxml2-utils');
    tmp = mkdtempSync(path.join(tmpdir(), 'hostwright-wsdl-'));
  });

  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  describe('vendored WSDL 1.1 schemas', () => {
    it('need no network: no DOCTYPE and every schemaLocation is a file beside them', () => {
      for (const f of readdirSync(SCHEMAS).filter((n) => n.endsWith('.xsd'))) {
        const text = readFileSync(path.join(SCHEMAS, f), 'utf8');
        expect(text, f).not.to.match(/<!DOCTYPE/i);
        for (const [, loc] of text.matchAll(/schemaLocation="([^"]*)"/g)) {
          expect(loc, `${f} schemaLocation`).not.to.match(/^[a-z]+:/i);
          expect(existsSync(path.join(SCHEMAS, loc)), `${f} -> ${loc}`).to.equal(true);
        }
      }
    });

    it('refuse a WSDL whose SOAP binding is wrong, so a pass means something', () => {
      const broken = readFileSync(SERVICES[0].file, 'utf8').replace('style="document" transport', 'style="documentish" transport');
      const file = path.join(tmp, 'broken.wsdl');
      writeFileSync(file, broken);
      const r = xmllint(['--noout', '--nonet', '--schema', WSDL_SOAP_SCHEMA, file]);
      expect(r.status, r.output).not.to.equal(0);
      expect(r.output).to.contain('documentish');
    });
  });

  for (const spec of SERVICES) {
    describe(`wsdl/${path.basename(spec.file)}`, () => {
      let text: string;
      let root: XNode;
      let schema: XNode;
      let portType: XNode;
      let binding: XNode;
      let messages: Map<string, XNode>;
      const globalElements = new Set<string>();
      const complexTypes = new Map<string, XNode>();
      const globalElementNodes = new Map<string, XNode>();

      before(async () => {
        text = readFileSync(spec.file, 'utf8');
        root = await parseXml(text);
        const types = kid(root, WSDL_NS, 'types');
        schema = kid(types!, XSD_NS, 'schema')!;
        for (const e of kids(schema, XSD_NS, 'element')) {
          globalElements.add(attr(e, 'name')!);
          globalElementNodes.set(attr(e, 'name')!, e);
        }
        for (const t of kids(schema, XSD_NS, 'complexType')) complexTypes.set(attr(t, 'name')!, t);
        portType = kids(root, WSDL_NS, 'portType')[0];
        binding = kids(root, WSDL_NS, 'binding')[0];
        messages = new Map(kids(root, WSDL_NS, 'message').map((m) => [attr(m, 'name')!, m]));
      });

      const requestSequence = (op: string): string[] => {
        const wrapper = globalElementNodes.get(op)!;
        return sequenceOf(kid(wrapper, XSD_NS, 'complexType')!);
      };

      it('is valid against the WSDL 1.1 schema and its SOAP 1.1 binding schema', () => {
        const r = xmllint(['--noout', '--nonet', '--schema', WSDL_SOAP_SCHEMA, spec.file]);
        expect(r.status, r.output).to.equal(0);
        expect(text).not.to.match(/<!DOCTYPE/i);
      });

      it('has one inline schema in the service namespace, qualified, that compiles under xmllint --schema', () => {
        expect(kids(kid(root, WSDL_NS, 'types')!, XSD_NS, 'schema')).to.have.length(1);
        expect(attr(schema, 'targetNamespace')).to.equal(spec.ns);
        expect(attr(schema, 'elementFormDefault')).to.equal('qualified');
        expect(kids(schema, XSD_NS, 'import'), 'self-contained: no imports').to.have.length(0);
        expect(kids(schema, XSD_NS, 'include'), 'self-contained: no includes').to.have.length(0);

        const xsd = path.join(tmp, `${spec.service}.xsd`);
        writeFileSync(xsd, extractSchema(text));
        VALID_SAMPLES[spec.service].forEach((sample, i) => {
          const file = path.join(tmp, `${spec.service}-valid-${i}.xml`);
          writeFileSync(file, sample);
          const r = xmllint(['--noout', '--nonet', '--schema', xsd, file]);
          expect(r.status, `sample ${i}: ${r.output}`).to.equal(0);
        });
        INVALID_SAMPLES[spec.service].forEach((sample, i) => {
          const file = path.join(tmp, `${spec.service}-invalid-${i}.xml`);
          writeFileSync(file, sample);
          const r = xmllint(['--noout', '--nonet', '--schema', xsd, file]);
          expect(r.status, `invalid sample ${i} was accepted`).to.equal(3); // 3 = validation error, 5 = schema did not compile
        });
      });

      it('names the service, port address and target namespace of the contract', () => {
        expect(attr(root, 'targetNamespace')).to.equal(spec.ns);
        const services = kids(root, WSDL_NS, 'service');
        expect(names(services)).to.deep.equal([spec.service]);
        const ports = kids(services[0], WSDL_NS, 'port');
        expect(ports).to.have.length(1);
        expect(attr(kid(ports[0], SOAP_NS, 'address'), 'location')).to.equal(spec.address);
        expect(attr(ports[0], 'binding')).to.equal(`tns:${attr(binding, 'name')}`);
        expect(text).to.contain(`xmlns:tns="${spec.ns}"`);
      });

      it("has every operation of the contract's table under its exact name, each once, documented", () => {
        const ops = kids(portType, WSDL_NS, 'operation');
        const opNames = names(ops);
        expect(new Set(opNames).size, 'operation names are unique').to.equal(opNames.length);
        expect(opNames).to.include.members(spec.contractOperations);
        for (const op of ops) {
          const doc = kid(op, WSDL_NS, 'documentation');
          expect(doc?._?.trim(), `${attr(op, 'name')} documentation`).to.match(/\w+ .+/);
        }
        // nothing of the other service's table leaks in (GetVersion is in both)
        const other = SERVICES.find((s) => s !== spec)!.contractOperations.filter((o) => o !== 'GetVersion');
        for (const o of other) expect(opNames, o).not.to.include(o);
      });

      it('has messages of exactly one part named parameters that refers to a global element', () => {
        expect(messages.size).to.be.greaterThan(0);
        for (const [name, message] of messages) {
          const parts = kids(message, WSDL_NS, 'part');
          expect(parts, name).to.have.length(1);
          expect(attr(parts[0], 'name'), name).to.equal('parameters');
          expect(attr(parts[0], 'type'), `${name} uses element, not type`).to.equal(undefined);
          const element = attr(parts[0], 'element') ?? '';
          expect(element, name).to.match(/^tns:/);
          expect(globalElements.has(element.slice(4)), `${name} -> ${element}`).to.equal(true);
        }
      });

      it('wraps each operation in request element Op and response element OpResponse, with fault tns:Error', () => {
        const partElement = (qname: string | undefined): string | undefined => {
          const message = messages.get((qname ?? '').replace(/^tns:/, ''));
          return message && attr(kids(message, WSDL_NS, 'part')[0], 'element');
        };
        for (const op of kids(portType, WSDL_NS, 'operation')) {
          const name = attr(op, 'name')!;
          expect(partElement(attr(kid(op, WSDL_NS, 'input'), 'message')), name).to.equal(`tns:${name}`);
          expect(partElement(attr(kid(op, WSDL_NS, 'output'), 'message')), name).to.equal(`tns:${name}Response`);
          const faults = kids(op, WSDL_NS, 'fault');
          expect(names(faults), name).to.deep.equal(['fault']);
          expect(partElement(attr(faults[0], 'message')), name).to.equal('tns:Error');
          // wrapped style: the wrapper's content is a sequence, so toolkits unwrap it into parameters
          const wrapper = globalElementNodes.get(name)!;
          expect(kid(kid(wrapper, XSD_NS, 'complexType')!, XSD_NS, 'sequence'), `${name} sequence`).to.not.equal(undefined);
        }
      });

      it('binds every operation as SOAP 1.1 document/literal with soapAction NS#Op and a literal fault', () => {
        const soapBinding = kid(binding, SOAP_NS, 'binding');
        expect(attr(soapBinding, 'style')).to.equal('document');
        expect(attr(soapBinding, 'transport')).to.equal(SOAP_HTTP);
        expect(attr(binding, 'type')).to.equal(`tns:${attr(portType, 'name')}`);
        const bound = kids(binding, WSDL_NS, 'operation');
        expect(names(bound)).to.deep.equal(names(kids(portType, WSDL_NS, 'operation')));
        for (const op of bound) {
          const name = attr(op, 'name')!;
          expect(attr(kid(op, SOAP_NS, 'operation'), 'soapAction'), name).to.equal(`${spec.ns}#${name}`);
          for (const io of ['input', 'output']) {
            const body = kid(kid(op, WSDL_NS, io)!, SOAP_NS, 'body');
            expect(attr(body, 'use'), `${name} ${io}`).to.equal('literal');
            expect(attr(body, 'namespace'), `${name} ${io}: WS-I R2716`).to.equal(undefined);
          }
          const fault = kids(op, WSDL_NS, 'fault');
          expect(names(fault), name).to.deep.equal(['fault']);
          const soapFault = kid(fault[0], SOAP_NS, 'fault');
          expect(attr(soapFault, 'name'), name).to.equal('fault');
          expect(attr(soapFault, 'use'), name).to.equal('literal');
        }
      });

      it('ends the request of every operation that creates money movement or an order with an optional idempotencyKey', () => {
        for (const op of spec.idempotent) {
          expect(requestSequence(op).at(-1), op).to.equal('idempotencyKey?');
        }
        const key = kids(schema, XSD_NS, 'simpleType').find((t) => attr(t, 'name') === 'IdempotencyKey')!;
        expect(attr(kid(kid(key, XSD_NS, 'restriction')!, XSD_NS, 'maxLength'), 'value')).to.equal('128');
      });

      it('keeps the element sequences the server is written against', () => {
        for (const [type, sequence] of Object.entries(FIXED_SEQUENCES[spec.service])) {
          expect(complexTypes.has(type), type).to.equal(true);
          expect(sequenceOf(complexTypes.get(type)!), type).to.deep.equal(sequence);
        }
        const error = globalElementNodes.get('Error');
        expect(attr(error, 'type')).to.equal('tns:ErrorDetail');
        const codes = kids(schema, XSD_NS, 'simpleType').find((t) => attr(t, 'name') === 'ErrorCode')!;
        expect(kids(kid(codes, XSD_NS, 'restriction')!, XSD_NS, 'enumeration').map((e) => attr(e, 'value'))).to.deep.equal([
          'INVALID_ARGUMENT', 'UNAUTHENTICATED', 'NOT_FOUND', 'NOT_ALLOWED', 'CONFLICT', 'PAYMENT_DECLINED',
          'PROVIDER_ERROR', 'UNAVAILABLE', 'INTERNAL',
        ]);
      });

      it('loads in node-soap, which describes every operation with its input and output', async () => {
        const client = await soap.createClientAsync(spec.file);
        const description = client.describe() as Record<string, Record<string, Record<string, unknown>>>;
        const ops = description[spec.service]?.[`${spec.service}Soap`];
        expect(ops, 'service/port in describe()').to.be.an('object');
        const declared = names(kids(portType, WSDL_NS, 'operation'));
        expect(Object.keys(ops)).to.have.members(declared);
        for (const name of declared) {
          const op = ops[name] as { input?: unknown; output?: unknown };
          expect(op.input, `${name} input`).to.be.an('object');
          expect(op.output, `${name} output`).to.be.an('object');
          expect(typeof (client as unknown as Record<string, unknown>)[`${name}Async`], name).to.equal('function');
        }
      });
    });
  }
});
