import crypto from 'node:crypto';
import { expect } from 'chai';
import { parseMethodResponse, serializeMethodCall, type XmlRpcDouble, type XmlRpcFault, type XmlRpcValue } from '../../../src/api/xmlrpc/codec';
import { ADMIN_PASSWORD } from '../../helpers/api';

/** One HTTP answer of the XML-RPC door: the raw bytes and, when they are a methodResponse, what they say. */
export interface RpcReply {
  status: number;
  headers: Headers;
  /** The raw response body, for checks on the exact wire form (<double>, <i4>, base64 faultString). */
  body: string;
  value?: XmlRpcValue;
  fault?: XmlRpcFault;
}

export interface PostOptions {
  method?: string;
  headers?: Record<string, string>;
  /** HTTP Basic credentials. */
  basic?: { login: string; password: string };
}

/** POSTs raw bytes (exactly as given) and reads the methodResponse, if the body is one. */
export async function postRaw(url: string, body: string | Buffer | undefined, opts: PostOptions = {}): Promise<RpcReply> {
  const headers: Record<string, string> = { 'Content-Type': 'text/xml', ...opts.headers };
  if (opts.basic) headers.Authorization = `Basic ${Buffer.from(`${opts.basic.login}:${opts.basic.password}`).toString('base64')}`;
  const res = await fetch(url, { method: opts.method ?? 'POST', headers, body });
  const text = await res.text();
  const reply: RpcReply = { status: res.status, headers: res.headers, body: text };
  if (text.includes('<methodResponse>')) Object.assign(reply, parseMethodResponse(text));
  return reply;
}

/** Calls Execute with one struct, serialized by the codec: the bytes a PBA client library would send. */
export function execute(url: string, struct: Record<string, XmlRpcValue>, opts: PostOptions = {}): Promise<RpcReply> {
  return postRaw(url, serializeMethodCall('Execute', [struct]), opts);
}

/** Credentials of the provider's administrator (the `admin` user seeded at start-up). */
export const ADMIN = { Username: 'admin', Password: ADMIN_PASSWORD } as const;

/** An Execute call on the BM gate as `admin` (unless other credentials are given). */
export function bm(url: string, method: string, params: XmlRpcValue[], extra: Record<string, XmlRpcValue> = {}, opts: PostOptions = {}): Promise<RpcReply> {
  return execute(url, { Server: 'BM', Method: method, Params: params, ...ADMIN, ...extra }, opts);
}

/** The success struct {Result: [...]} of a reply; fails the test (with the decoded fault) otherwise. */
export function ok(reply: RpcReply): { Result: XmlRpcValue[]; TransactionID?: string } {
  expect(reply.fault, reply.fault ? `unexpected fault ${reply.fault.faultCode}: ${reply.fault.faultString}` : '').to.equal(undefined);
  expect(reply.status).to.equal(200);
  const v = reply.value as { Result: XmlRpcValue[]; TransactionID?: string };
  expect(v).to.be.an('object');
  expect(v.Result).to.be.an('array').with.length(1);
  return v;
}

/** Result[0] of a successful reply. */
export function result(reply: RpcReply): XmlRpcValue {
  return ok(reply).Result[0];
}

/** The fault of a reply (decoded faultString); fails the test when the call succeeded. */
export function fault(reply: RpcReply): XmlRpcFault {
  expect(reply.fault, `expected a fault, got ${reply.body.slice(0, 300)}`).to.not.equal(undefined);
  return reply.fault!;
}

/** AccountAdd_API's 61 positional parameters, built by name; anything not given is an empty string. */
export function accountAddParams(v: {
  vendorAccountId?: number;
  vtype?: 'C' | 'R';
  company?: string;
  address1?: string;
  address2?: string;
  city?: string;
  state?: string;
  zip?: string;
  country?: string;
  postal?: string;
  admin?: Partial<ContactBlock>;
  bill?: Partial<ContactBlock>;
  tech?: Partial<ContactBlock>;
  pers?: Partial<ContactBlock> & { birthday?: string; passport?: string };
  taxStatus?: number;
}): XmlRpcValue[] {
  const block = (c: Partial<ContactBlock> = {}) => CONTACT_FIELDS.map((f) => c[f] ?? '');
  return [
    v.vendorAccountId ?? -2147483648,
    v.vtype ?? 'C',
    v.company ?? '',
    v.address1 ?? '',
    v.address2 ?? '',
    v.city ?? '',
    v.state ?? '',
    v.zip ?? '',
    v.country ?? '',
    v.postal ?? '',
    ...block(v.admin),
    ...block(v.bill),
    ...block(v.tech),
    ...block(v.pers),
    v.pers?.birthday ?? '',
    v.pers?.passport ?? '',
    v.taxStatus ?? 1,
  ];
}

export interface ContactBlock {
  fname: string;
  mname: string;
  lname: string;
  email: string;
  phCountry: string;
  phArea: string;
  phNumber: string;
  phExt: string;
  faxCountry: string;
  faxArea: string;
  faxNumber: string;
  faxExt: string;
}
const CONTACT_FIELDS: (keyof ContactBlock)[] = ['fname', 'mname', 'lname', 'email', 'phCountry', 'phArea', 'phNumber', 'phExt', 'faxCountry', 'faxArea', 'faxNumber', 'faxExt'];

/** Exactly the bytes PBA's Python osaAPI client (xmlrpclib) writes for Execute({Server, Method, Params, ...}). */
export function pythonExecuteXml(members: string): string {
  return (
    "<?xml version='1.0'?>\n<methodCall>\n<methodName>Execute</methodName>\n<params>\n<param>\n<value><struct>\n" +
    members +
    '</struct></value>\n</param>\n</params>\n</methodCall>\n'
  );
}

/** One struct member as xmlrpclib writes it. */
export function pyMember(name: string, valueXml: string): string {
  return `<member>\n<name>${name}</name>\n<value>${valueXml}</value>\n</member>\n`;
}

/** The signature OrderStatusChange_API wants, computed as a client would from GetOrder_API's answer. */
export function signatureFrom(row: XmlRpcValue[]): string {
  const [orderId, orderNumber, , , , , creationTime, , total, , , , comments] = row;
  const totalText = (total as XmlRpcDouble).text;
  return crypto.createHash('md5').update(`${orderId}${orderNumber}${creationTime}${totalText}${comments}`).digest('hex');
}
