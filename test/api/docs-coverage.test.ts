/**
 * The API references keep up with the server: every SOAP operation of the WSDLs the server serves (and every one it
 * has built) is listed in docs/api/soap.md, and every XML-RPC method the server answers is listed in
 * docs/api/xmlrpc.md. The lists come from the server itself (its served WSDLs, its SOAP operation tables, its
 * XML-RPC method table, checked against real HTTP calls), never from a hand list, so a new operation without
 * documentation fails here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { billingService, provisioningService } from '../../src/api/soap/billing-service';
import { XMLRPC_METHODS } from '../../src/api/xmlrpc/methods';
import { startApiWorld, type ApiWorld } from '../helpers/api';
import { ADMIN, execute } from './xmlrpc/client';

const ROOT = path.resolve(__dirname, '..', '..');
const WSDL_DIR = path.join(ROOT, 'wsdl');
const readDoc = (name: string) => fs.readFileSync(path.join(ROOT, 'docs', 'api', name), 'utf8');
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The operations of a WSDL's portType, in order. */
export function wsdlOperations(wsdl: string): string[] {
  const portType = /<wsdl:portType\b[\s\S]*?<\/wsdl:portType>/.exec(wsdl);
  expect(portType, 'the WSDL has a portType').to.not.equal(null);
  return [...portType![0].matchAll(/<wsdl:operation\s+name="([A-Za-z0-9_]+)"/g)].map((m) => m[1]);
}

/** soap.md lists an operation as a heading (`### Op`, `### A / Op`) or as the first cell of a table row. */
export function soapDocLists(doc: string, op: string): boolean {
  const o = escape(op);
  return new RegExp(`^#{3,4} (?:[A-Za-z]+ / )*${o}(?: / [A-Za-z]+)*\\s*$`, 'm').test(doc) || new RegExp(`^\\| ${o} \\|`, 'm').test(doc);
}

/**
 * xmlrpc.md lists "GATE.Method" as a `#### Method...` or `#### GATE Method...` heading; a method of a gate other
 * than BM must have its gate named in that heading or in the text of the `###` section holding it.
 */
export function xmlrpcDocLists(doc: string, key: string): boolean {
  const [gate, method] = key.split('.');
  const heading = new RegExp(`^#### (?:[A-Z]+ )?${escape(method)}\\b.*$`, 'gm');
  for (const m of doc.matchAll(heading)) {
    if (gate === 'BM') return true;
    const start = doc.lastIndexOf('\n### ', m.index);
    const next = doc.indexOf('\n### ', m.index);
    const section = doc.slice(start < 0 ? 0 : start, next < 0 ? doc.length : next);
    if (m[0].includes(gate) || section.includes(`"${gate}"`) || section.includes(`(${gate})`)) return true;
  }
  return false;
}

describe('API references list every operation the server has (docs/api/soap.md, docs/api/xmlrpc.md)', function () {
  this.timeout(60_000);
  let world: ApiWorld;

  before(async () => {
    world = await startApiWorld();
  });
  after(async () => {
    await world?.close();
  });

  for (const [service, file, build] of [
    ['billing', 'BillingService.wsdl', billingService],
    ['provisioning', 'ProvisioningService.wsdl', provisioningService],
  ] as const) {
    it(`lists in soap.md every operation of the served /soap/${service}?wsdl and every one the server built`, async () => {
      const res = await fetch(`${world.url}/soap/${service}?wsdl`);
      expect(res.status).to.equal(200);
      const declared = wsdlOperations(await res.text());
      expect(declared, 'the served WSDL is the one in wsdl/').to.deep.equal(wsdlOperations(fs.readFileSync(path.join(WSDL_DIR, file), 'utf8')));
      const built = Object.keys(build(world.server.services, WSDL_DIR).operations);
      expect(built).to.not.be.empty;
      const doc = readDoc('soap.md');
      const missing = [...new Set([...declared, ...built])].filter((op) => !soapDocLists(doc, op));
      expect(missing, 'operations missing from docs/api/soap.md (add a ### heading or a row of the section 9 table)').to.deep.equal([]);
    });
  }

  it('lists in xmlrpc.md every method of the XML-RPC table, and the server answers exactly that table', async () => {
    const keys = Object.keys(XMLRPC_METHODS);
    expect(keys.length).to.be.greaterThan(30);
    const doc = readDoc('xmlrpc.md');
    const missing = keys.filter((key) => !xmlrpcDocLists(doc, key));
    expect(missing, 'methods missing from docs/api/xmlrpc.md (add a #### heading in the section of their gate)').to.deep.equal([]);

    // The table is what the server serves: each method is answered over real HTTP (with a fault about its
    // parameters at most, never "has no method"), and a name outside it is not.
    const unknown = (reply: { fault?: { faultString: string } }) => !!reply.fault && /has no method/.test(reply.fault.faultString); // decoded by the client
    const notAnswered: string[] = [];
    for (const key of keys) {
      const [gate, method] = key.split('.');
      const reply = await execute(`${world.url}/RPC2`, { Server: gate, Method: method, Params: [-2147483648], ...ADMIN });
      expect(reply.status, key).to.equal(200);
      if (unknown(reply)) notAnswered.push(key);
    }
    expect(notAnswered, 'methods of the table the server does not answer').to.deep.equal([]);
    const outside = await execute(`${world.url}/RPC2`, { Server: 'BM', Method: 'NotInTheTable_API', Params: [], ...ADMIN });
    expect(unknown(outside), `a method outside the table: ${outside.body}`).to.equal(true);
  });

  it('finds a missing entry, so a pass means something', () => {
    const soap = readDoc('soap.md');
    expect(soapDocLists(soap, 'GetAccount')).to.equal(true);
    expect(soapDocLists(soap.replace(/^### GetAccount\s*$/m, '### Something else'), 'GetAccount')).to.equal(false);
    expect(soapDocLists(soap, 'RejectOrder')).to.equal(true);
    expect(soapDocLists(soap, 'DeleteEverything')).to.equal(false);
    const rpc = readDoc('xmlrpc.md');
    expect(xmlrpcDocLists(rpc, 'BM.GetOrder_API')).to.equal(true);
    expect(xmlrpcDocLists(rpc.replace(/^#### GetOrder_API/m, '#### Gone'), 'BM.GetOrder_API')).to.equal(false);
    expect(xmlrpcDocLists(rpc, 'DOMAINGATE.DomainInfoGet_API')).to.equal(true);
    expect(xmlrpcDocLists(rpc, 'MESSAGE.DomainInfoGet_API'), 'listed, but not under its gate').to.equal(false);
  });
});
