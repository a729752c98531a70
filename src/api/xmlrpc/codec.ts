/**
 * Our own XML-RPC codec on sax, building xml2js's tree (the `xmlrpc` npm package lets a `__proto__` struct member set a prototype and
 * turns doubles into floats; see reliability.md). Parsing is synchronous.
 *
 * Decoding (wire -> JS):
 *   <i4>, <int>          -> number (int32 range enforced)
 *   <i8>                 -> number when a safe integer, else bigint (int64 range enforced)
 *   <double>             -> XmlRpcDouble { text: exact trimmed wire text, value: Number(text) }
 *   <boolean>0|1         -> boolean
 *   <string>, untyped    -> string, white space preserved
 *   <dateTime.iso8601>   -> Date (19980717T14:08:55, 1998-07-17T14:08:55Z, with or without an offset;
 *                           no offset means UTC)
 *   <base64>             -> Buffer
 *   <nil/>               -> null
 *   <array><data>        -> array;  <struct> -> plain object (member names __proto__, constructor, prototype and
 *                           duplicate names are refused)
 * Every refusal is AppError('INVALID_ARGUMENT', message, field) where field names the place, e.g.
 * `params[0].Params[3]`; malformed or hostile XML gives field 'xml' (assertSafeXml runs first).
 *
 * Encoding (JS -> wire): integer numbers within int32 -> <i4>; other finite numbers -> <double> in plain
 * decimal (never exponent notation); XmlRpcDouble -> <double> with its text; bigint -> <i8>; string -> <string>
 * (& < > escaped, CR as &#13;, characters XML 1.0 does not allow removed); boolean -> <boolean>1/0;
 * Date -> <dateTime.iso8601> YYYYMMDDTHH:MM:SS UTC; Buffer -> <base64>; null/undefined -> <nil/>; arrays;
 * plain objects (own enumerable keys) -> <struct>. A value that cannot be encoded is a bug of ours:
 * AppError('INTERNAL').
 *
 * Faults carry the faultString base64-encoded (UTF-8), as every PBA client expects.
 */
import { AppError } from '../../domain/errors';
import { assertSafeXml, FORBIDDEN_NAMES } from '../xml-guard';

/** A double exactly as it was written on the wire; money code parses `text` itself. */
export class XmlRpcDouble {
  /** The wire text, trimmed, e.g. "12345678901234567.89". */
  readonly text: string;
  /** Number(text): convenient, but not exact for money. */
  readonly value: number;

  constructor(text: string) {
    const t = String(text).trim();
    const value = Number(t);
    if (!DOUBLE_TEXT.test(t) || !Number.isFinite(value)) {
      throw new AppError('INVALID_ARGUMENT', `"${clip(t)}" is not a finite decimal number.`, 'double');
    }
    this.text = t;
    this.value = value;
    Object.freeze(this);
  }

  toString(): string {
    return this.text;
  }
}

export type XmlRpcValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | undefined
  | Date
  | Buffer
  | XmlRpcDouble
  | XmlRpcValue[]
  | { [member: string]: XmlRpcValue };

export interface XmlRpcMethodCall {
  methodName: string;
  params: XmlRpcValue[];
}

export interface XmlRpcFault {
  faultCode: number;
  /** Decoded from base64. */
  faultString: string;
}

export interface XmlRpcMethodResponse {
  value?: XmlRpcValue;
  fault?: XmlRpcFault;
}

// ---------------------------------------------------------------------------------------------------------
// Grammar (all linear: no two adjacent parts of a pattern can match the same text)

/** Decimal with optional fraction and exponent (the exponent because Python's client writes repr(float)). */
const DOUBLE_TEXT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const INTEGER_TEXT = /^[+-]?\d+$/;
const DATE_TIME_TEXT =
  /^(\d{4})(-?)(\d{2})\2(\d{2})T(\d{2})(:?)(\d{2})\6(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2})(?::?(\d{2}))?)?$/;
const BASE64_TEXT = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64_WHITESPACE = /[\t\n\r ]+/g;
const METHOD_NAME = /^[A-Za-z0-9_.:/]+$/;
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
/** Characters XML 1.0 does not allow (lone surrogates included, thanks to the u flag). */
const NOT_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;
const TEXT_TO_ESCAPE = /[&<>\r]/g;
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '\r': '&#13;' };

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';

// ---------------------------------------------------------------------------------------------------------
// XML -> tree (sax, synchronous; the tree xml2js would build)

function invalid(field: string, message: string): never {
  throw new AppError('INVALID_ARGUMENT', message, field);
}

function clip(text: string, max = 40): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/*
 * xml2js's tree: an element is '' (empty), its text (no child elements), or an object whose own keys are child
 * element names, each holding an array (and '_' holding text mixed with elements).
 */
function parseXml(xml: string): Record<string, unknown> {
  assertSafeXml(xml);
  const { results, errors } = buildTree(xml);
  if (errors.length > 0) invalid('xml', `Malformed XML: ${describeParseError(errors[0])}`);
  if (results.length > 1) invalid('xml', 'Malformed XML: more than one root element.');
  const doc = results[0];
  if (doc === null || typeof doc !== 'object') invalid('xml', 'The request body holds no XML document.');
  return doc as Record<string, unknown>;
}

interface SaxParser {
  onopentag: (node: { name: string }) => void;
  onclosetag: () => void;
  ontext: (text: string) => void;
  oncdata: (text: string) => void;
  onerror: (error: Error) => void;
  onend: () => void;
  resume(): SaxParser;
  write(text: string): SaxParser;
  close(): SaxParser;
}
type Sax = { parser(strict: boolean, options: { trim: boolean; normalize: boolean; xmlns: boolean }): SaxParser };

/**
 * Our own instance of the sax module, not the one node-soap parses SOAP with: one process serves both doors, and
 * a shared sax sees two sets of handlers and options, so its inline caches go polymorphic and both parsers run
 * slower (node-soap's parse of a GetAccount took about twice as long as in a process parsing SOAP only).
 * The module cache is left as it was, so node-soap still gets the shared instance.
 */
function ownSax(): Sax {
  const id = require.resolve('sax');
  const shared = require.cache[id];
  delete require.cache[id];
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('sax') as Sax;
  } finally {
    if (shared) require.cache[id] = shared;
    else delete require.cache[id];
  }
}
const sax = ownSax();

const WHITESPACE_ONLY = /^\s*$/;

/**
 * xml2js's tree with our options (strict, explicitRoot, explicitArray, ignoreAttrs, no trim or normalize,
 * charkey "_", emptyTag "") built straight from sax's events, the same tokenizer xml2js drives, without xml2js's
 * per-node property descriptors and deletes, which were the larger part of an XML-RPC call's parse. The
 * results and errors are xml2js's, as parseXml collected them from its 'end' and 'error' events
 * (test/api/xmlrpc/codec-tree.test.ts compares the two on a corpus); the differences are on purpose: a child
 * element named like an inherited Object property (toString) is an ordinary child here, and one named "_" or
 * "cdata" cannot collide with the text or the CDATA flag.
 */
/** Whether an element object has no own member yet (Object.keys(o).length === 0 without the array). */
function isEmpty(o: Record<string, unknown>): boolean {
  for (const k in o) if (Object.prototype.hasOwnProperty.call(o, k)) return false;
  return true;
}

export function buildTree(xml: string): { results: unknown[]; errors: unknown[] } {
  const results: unknown[] = [];
  const errors: unknown[] = [];
  const text = String(xml);
  // parseString answers a blank document with an 'end' of null.
  if (text.trim() === '') return { results: [null], errors };
  const parser = sax.parser(true, { trim: false, normalize: false, xmlns: false });
  const objects: Record<string, unknown>[] = [];
  const names: string[] = [];
  const texts: string[] = [];
  const cdata: boolean[] = [];
  let ended = false;
  let errThrown = false;
  let result: unknown = null;
  parser.onerror = (error) => {
    parser.resume();
    if (!errThrown) {
      errThrown = true;
      errors.push(error);
    }
  };
  parser.onend = () => {
    if (!ended) {
      ended = true;
      results.push(result);
    }
  };
  parser.onopentag = (node) => {
    objects.push({});
    names.push(node.name);
    texts.push('');
    cdata.push(false);
  };
  parser.onclosetag = () => {
    let obj: unknown = objects.pop()!;
    const name = names.pop()!;
    const chars = texts.pop()!;
    const wasCdata = cdata.pop()!;
    let emptyStr: string | undefined;
    const element = obj as Record<string, unknown>;
    const childless = isEmpty(element);
    if (!wasCdata && WHITESPACE_ONLY.test(chars)) {
      emptyStr = chars;
    } else if (childless) {
      obj = chars;
    } else {
      element._ = chars;
    }
    if (childless && typeof obj === 'object') obj = emptyStr;
    const depth = objects.length;
    if (depth > 0) {
      const parent = objects[depth - 1]!;
      if (Object.prototype.hasOwnProperty.call(parent, name)) (parent[name] as unknown[]).push(obj);
      // A plain assignment of "__proto__" would set the prototype (the guard refuses that name already).
      else if (name === '__proto__') Object.defineProperty(parent, name, { value: [obj], enumerable: true, writable: true, configurable: true });
      else parent[name] = [obj];
    } else {
      const root: Record<string, unknown> = {};
      Object.defineProperty(root, name, { value: obj, enumerable: true, writable: true, configurable: true });
      result = root;
      ended = true;
      results.push(root);
    }
  };
  parser.ontext = (t) => {
    const depth = texts.length;
    if (depth > 0) texts[depth - 1] += t;
  };
  parser.oncdata = (t) => {
    const depth = texts.length;
    if (depth > 0) {
      texts[depth - 1] += t;
      cdata[depth - 1] = true;
    }
  };
  try {
    parser.write(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).close();
  } catch (error) {
    if (!(errThrown || ended)) {
      errThrown = true;
      errors.push(error);
    } else if (ended) {
      errors.push(error);
    }
  }
  return { results, errors };
}

function describeParseError(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const [first, ...rest] = text.split('\n');
  const line = rest.find((l) => l.startsWith('Line: '));
  const column = rest.find((l) => l.startsWith('Column: '));
  const where = line && column ? ` (line ${Number(line.slice(6)) + 1}, column ${column.slice(8)})` : '';
  return `${clip(first ?? 'unreadable', 120).replace(/\.$/, '')}${where}.`;
}

function hasOwn(node: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(node, key);
}

/** The element as an object of child arrays ('' means no children); text where children belong is refused. */
function elementOf(node: unknown, field: string, what: string): Record<string, unknown[]> {
  // Whitespace between elements is layout, not content: Python's client writes an empty list as "<data>\n</data>".
  if (typeof node === 'string') {
    if (node.trim() === '') return {};
    invalid(field, `${what} must hold elements, not text "${clip(node)}".`);
  }
  if (node === null || typeof node !== 'object') invalid(field, `${what} is malformed.`);
  if (hasOwn(node, '_')) {
    const text = (node as Record<string, unknown>)._;
    if (typeof text !== 'string' || text.trim() !== '') invalid(field, `${what} must hold elements, not text.`);
    const copy: Record<string, unknown[]> = {};
    for (const [k, v] of Object.entries(node as Record<string, unknown[]>)) if (k !== '_') copy[k] = v;
    return copy;
  }
  return node as Record<string, unknown[]>;
}

function onlyChildren(element: Record<string, unknown[]>, allowed: readonly string[], field: string, what: string): void {
  for (const name of Object.keys(element)) {
    if (!allowed.includes(name)) invalid(field, `${what} does not accept <${clip(name)}>; expected ${allowed.map((a) => `<${a}>`).join(' or ')}.`);
  }
}

/** Children named `name` (own property only), or an empty list. */
function childList(element: Record<string, unknown[]>, name: string): unknown[] {
  return hasOwn(element, name) ? element[name]! : [];
}

function single(element: Record<string, unknown[]>, name: string, field: string, what: string): unknown {
  const list = childList(element, name);
  if (list.length !== 1) invalid(field, `${what} must hold exactly one <${name}>, found ${list.length}.`);
  return list[0];
}

function textOf(node: unknown, field: string, what: string): string {
  if (typeof node !== 'string') invalid(field, `<${what}> must hold text only.`);
  return node;
}

function memberField(path: string, name: string): string {
  return IDENTIFIER.test(name) ? `${path}.${name}` : `${path}[${JSON.stringify(clip(name))}]`;
}

// ---------------------------------------------------------------------------------------------------------
// tree -> values

function decodeValue(node: unknown, path: string): XmlRpcValue {
  if (typeof node === 'string') return node; // untyped value: a string, white space preserved
  const element = elementOf(node, path, '<value>');
  const types = Object.keys(element);
  if (types.length !== 1) invalid(path, `<value> must hold exactly one type element, found ${types.length}.`);
  const type = types[0]!;
  const list = element[type]!;
  if (list.length !== 1) invalid(path, `<value> must hold exactly one type element, found ${list.length} <${clip(type)}>.`);
  const inner = list[0];

  switch (type) {
    case 'i4':
    case 'int': {
      const text = textOf(inner, path, type).trim();
      const n = Number(text);
      if (!INTEGER_TEXT.test(text) || n < INT32_MIN || n > INT32_MAX) {
        invalid(path, `<${type}> must be an integer from ${INT32_MIN} to ${INT32_MAX}, not "${clip(text)}".`);
      }
      return n === 0 ? 0 : n;
    }
    case 'i8': {
      const text = textOf(inner, path, type).trim();
      if (!INTEGER_TEXT.test(text) || text.length > 40) invalid(path, `<i8> must be a 64-bit integer, not "${clip(text)}".`);
      const big = BigInt(text);
      if (big < INT64_MIN || big > INT64_MAX) invalid(path, `<i8> must be a 64-bit integer, not "${clip(text)}".`);
      const n = Number(big);
      return Number.isSafeInteger(n) ? n : big;
    }
    case 'double': {
      const text = textOf(inner, path, type).trim();
      if (!DOUBLE_TEXT.test(text) || !Number.isFinite(Number(text))) {
        invalid(path, `<double> must be a finite decimal number, not "${clip(text)}".`);
      }
      return new XmlRpcDouble(text);
    }
    case 'boolean': {
      const text = textOf(inner, path, type).trim();
      if (text === '1') return true;
      if (text === '0') return false;
      return invalid(path, `<boolean> must be 0 or 1, not "${clip(text)}".`);
    }
    case 'string':
      return textOf(inner, path, type);
    case 'dateTime.iso8601':
      return decodeDateTime(textOf(inner, path, type).trim(), path);
    case 'base64': {
      const text = textOf(inner, path, type).replace(BASE64_WHITESPACE, '');
      if (text.length % 4 !== 0 || !BASE64_TEXT.test(text)) invalid(path, '<base64> holds characters or padding that are not base64.');
      return Buffer.from(text, 'base64');
    }
    case 'nil':
      if (inner !== '') invalid(path, '<nil/> must be empty.');
      return null;
    case 'array':
      return decodeArray(inner, path);
    case 'struct':
      return decodeStruct(inner, path);
    default:
      return invalid(path, `Unknown XML-RPC type <${clip(type)}>.`);
  }
}

function decodeArray(node: unknown, path: string): XmlRpcValue[] {
  const array = elementOf(node, path, '<array>');
  onlyChildren(array, ['data'], path, '<array>');
  const dataList = childList(array, 'data');
  if (dataList.length === 0) return []; // <array/>: lenient, as Python's client is
  if (dataList.length > 1) invalid(path, `<array> must hold one <data>, found ${dataList.length}.`);
  const data = elementOf(dataList[0], path, '<data>');
  onlyChildren(data, ['value'], path, '<data>');
  return childList(data, 'value').map((v, k) => decodeValue(v, `${path}[${k}]`));
}

function decodeStruct(node: unknown, path: string): { [member: string]: XmlRpcValue } {
  const struct = elementOf(node, path, '<struct>');
  onlyChildren(struct, ['member'], path, '<struct>');
  const entries: [string, XmlRpcValue][] = [];
  const seen = new Set<string>();
  childList(struct, 'member').forEach((memberNode, k) => {
    const at = `${path}.member[${k}]`;
    const member = elementOf(memberNode, at, '<member>');
    onlyChildren(member, ['name', 'value'], at, '<member>');
    const names = childList(member, 'name');
    if (names.length === 0 || names[0] === '') invalid(at, `Struct member ${k} at ${path} has no name.`);
    if (names.length > 1) invalid(at, `Struct member ${k} at ${path} has ${names.length} names.`);
    const name = textOf(names[0], at, 'name');
    if ((FORBIDDEN_NAMES as readonly string[]).includes(name)) {
      invalid('struct member', `The struct member name "${name}" (at ${path}) is not accepted: ${FORBIDDEN_NAMES.join(', ')} are reserved.`);
    }
    const field = memberField(path, name);
    if (seen.has(name)) invalid(field, `Struct member "${clip(name)}" appears more than once at ${path}.`);
    seen.add(name);
    entries.push([name, decodeValue(single(member, 'value', field, `Struct member "${clip(name)}"`), field)]);
  });
  // fromEntries defines own data properties: no setter (such as __proto__) can ever run.
  return Object.fromEntries(entries);
}

function decodeDateTime(text: string, path: string): Date {
  const m = DATE_TIME_TEXT.exec(text);
  const bad = (): never =>
    invalid(path, `<dateTime.iso8601> must look like 19980717T14:08:55 or 1998-07-17T14:08:55Z, not "${clip(text)}".`);
  if (!m) return bad();
  const [, y, , mo, d, h, , mi, s, fraction, , sign, oh, om] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  const ms = fraction ? Number(fraction.slice(0, 3).padEnd(3, '0')) : 0;
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) bad();
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // setUTCFullYear: years 0-99 are not moved to 19xx
  date.setUTCHours(hour, minute, second, ms);
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) bad();
  if (sign) {
    const offsetHours = Number(oh);
    const offsetMinutes = om ? Number(om) : 0;
    if (offsetHours > 23 || offsetMinutes > 59) bad();
    const offset = (offsetHours * 60 + offsetMinutes) * 60_000;
    date.setTime(date.getTime() - (sign === '+' ? offset : -offset));
  }
  return date;
}

// ---------------------------------------------------------------------------------------------------------
// documents

export function parseMethodCall(xml: string): XmlRpcMethodCall {
  const doc = parseXml(xml);
  const roots = Object.keys(doc);
  if (roots.length !== 1 || roots[0] !== 'methodCall') {
    invalid('xml', `An XML-RPC request must be a <methodCall>, not <${clip(roots[0] ?? '')}>.`);
  }
  const call = elementOf(doc.methodCall, 'methodCall', '<methodCall>');
  onlyChildren(call, ['methodName', 'params'], 'methodCall', '<methodCall>');
  const methodName = textOf(single(call, 'methodName', 'methodName', '<methodCall>'), 'methodName', 'methodName').trim();
  if (!METHOD_NAME.test(methodName)) {
    invalid('methodName', `"${clip(methodName)}" is not a method name (letters, digits, _ . : / only).`);
  }
  return { methodName, params: decodeParams(call) };
}

function decodeParams(parent: Record<string, unknown[]>): XmlRpcValue[] {
  const list = childList(parent, 'params');
  if (list.length === 0) return [];
  if (list.length > 1) invalid('params', `Expected one <params>, found ${list.length}.`);
  const params = elementOf(list[0], 'params', '<params>');
  onlyChildren(params, ['param'], 'params', '<params>');
  return childList(params, 'param').map((paramNode, k) => {
    const field = `params[${k}]`;
    const param = elementOf(paramNode, field, '<param>');
    onlyChildren(param, ['value'], field, '<param>');
    return decodeValue(single(param, 'value', field, '<param>'), field);
  });
}

/** For test clients and benchmarks: reads a <methodResponse>, decoding the fault string from base64. */
export function parseMethodResponse(xml: string): XmlRpcMethodResponse {
  const doc = parseXml(xml);
  const roots = Object.keys(doc);
  if (roots.length !== 1 || roots[0] !== 'methodResponse') {
    invalid('xml', `An XML-RPC response must be a <methodResponse>, not <${clip(roots[0] ?? '')}>.`);
  }
  const response = elementOf(doc.methodResponse, 'methodResponse', '<methodResponse>');
  onlyChildren(response, ['params', 'fault'], 'methodResponse', '<methodResponse>');
  const hasParams = hasOwn(response, 'params');
  if (hasParams === hasOwn(response, 'fault')) invalid('methodResponse', '<methodResponse> must hold either <params> or <fault>.');

  if (hasParams) {
    const values = decodeParams(response);
    if (values.length !== 1) invalid('params', `<methodResponse> must hold exactly one <param>, found ${values.length}.`);
    return { value: values[0] };
  }
  const faultElement = elementOf(single(response, 'fault', 'fault', '<methodResponse>'), 'fault', '<fault>');
  onlyChildren(faultElement, ['value'], 'fault', '<fault>');
  const fault = decodeValue(single(faultElement, 'value', 'fault', '<fault>'), 'fault');
  if (fault === null || typeof fault !== 'object' || Array.isArray(fault) || fault instanceof Date || fault instanceof XmlRpcDouble || Buffer.isBuffer(fault)) {
    return invalid('fault', '<fault> must hold a struct.');
  }
  const { faultCode, faultString } = fault as { [member: string]: XmlRpcValue };
  if (typeof faultCode !== 'number' || !Number.isInteger(faultCode)) invalid('fault.faultCode', 'faultCode must be an integer.');
  if (typeof faultString !== 'string') invalid('fault.faultString', 'faultString must be a string.');
  const base64 = faultString.replace(BASE64_WHITESPACE, '');
  if (base64.length % 4 !== 0 || !BASE64_TEXT.test(base64)) invalid('fault.faultString', 'faultString is not base64.');
  return { fault: { faultCode, faultString: Buffer.from(base64, 'base64').toString('utf8') } };
}

// ---------------------------------------------------------------------------------------------------------
// values -> XML

/**
 * Where a value being encoded sits: the root's label, or its container and its index or member name. The path
 * text ("result.Result[0].Name") is built only for an error message, not for every value of every response.
 */
type Where = string | { up: Where; key: string | number };

function pathOf(where: Where): string {
  if (typeof where === 'string') return where;
  const base = pathOf(where.up);
  return typeof where.key === 'number' ? `${base}[${where.key}]` : memberField(base, where.key);
}

function cannotEncode(where: Where, message: string): never {
  const path = pathOf(where);
  throw new AppError('INTERNAL', `XML-RPC cannot encode ${path}: ${message}`, path);
}

/** Text that needs neither escaping nor removal (BMP characters XML allows, except & < > and CR): the usual case. */
const PLAIN_TEXT = /^[\t\n\u0020-\u0025\u0027-\u003B\u003D\u003F-\uD7FF\uE000-\uFFFD]*$/;

/** Text for an XML text node: characters XML 1.0 forbids are removed; & < > and CR are escaped. */
function escapeText(text: string): string {
  if (PLAIN_TEXT.test(text)) return text;
  return text.replace(NOT_XML_CHAR, '').replace(TEXT_TO_ESCAPE, (c) => ESCAPES[c]!);
}

/** String(n) without exponent notation: 1e21 -> "1000000000000000000000", 1.5e-7 -> "0.00000015". */
function plainDecimal(n: number): string {
  const s = String(n);
  const e = s.indexOf('e');
  if (e < 0) return s;
  const negative = s.startsWith('-');
  const mantissa = s.slice(negative ? 1 : 0, e);
  const exponent = Number(s.slice(e + 1));
  const dot = mantissa.indexOf('.');
  const digits = dot < 0 ? mantissa : mantissa.slice(0, dot) + mantissa.slice(dot + 1);
  const point = (dot < 0 ? mantissa.length : dot) + exponent; // digits before the decimal point
  let out: string;
  if (point <= 0) out = `0.${'0'.repeat(-point)}${digits}`;
  else if (point >= digits.length) out = digits + '0'.repeat(point - digits.length);
  else out = `${digits.slice(0, point)}.${digits.slice(point)}`;
  return negative ? `-${out}` : out;
}

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function encodeValue(value: unknown, path: Where, ancestors: Set<object>): string {
  switch (typeof value) {
    case 'number':
      if (Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX) return `<i4>${value === 0 ? 0 : value}</i4>`;
      if (!Number.isFinite(value)) return cannotEncode(path, `${value} is not a finite number.`);
      return `<double>${plainDecimal(value)}</double>`;
    case 'bigint':
      if (value < INT64_MIN || value > INT64_MAX) return cannotEncode(path, 'the integer does not fit in 64 bits.');
      return `<i8>${value}</i8>`;
    case 'string':
      return `<string>${escapeText(value)}</string>`;
    case 'boolean':
      return `<boolean>${value ? 1 : 0}</boolean>`;
    case 'undefined':
      return '<nil/>';
    case 'object':
      break;
    default:
      return cannotEncode(path, `a ${typeof value} is not an XML-RPC value.`);
  }
  if (value === null) return '<nil/>';
  if (value instanceof XmlRpcDouble) return `<double>${value.text}</double>`;
  if (value instanceof Date) {
    const t = value.getTime();
    if (Number.isNaN(t)) return cannotEncode(path, 'invalid Date.');
    const year = value.getUTCFullYear();
    if (year < 0 || year > 9999) return cannotEncode(path, `year ${year} is outside 0000-9999.`);
    return (
      `<dateTime.iso8601>${String(year).padStart(4, '0')}${two(value.getUTCMonth() + 1)}${two(value.getUTCDate())}` +
      `T${two(value.getUTCHours())}:${two(value.getUTCMinutes())}:${two(value.getUTCSeconds())}</dateTime.iso8601>`
    );
  }
  if (value instanceof Uint8Array) {
    return `<base64>${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')}</base64>`;
  }
  if (ancestors.has(value)) return cannotEncode(path, 'the value contains itself.');
  ancestors.add(value);
  let out: string;
  if (Array.isArray(value)) {
    out = '<array><data>';
    for (let k = 0; k < value.length; k++) out += `<value>${encodeValue(value[k], { up: path, key: k }, ancestors)}</value>`;
    out += '</data></array>';
  } else if (isPlainObject(value)) {
    out = '<struct>';
    for (const name of Object.keys(value)) {
      const field: Where = { up: path, key: name };
      if ((FORBIDDEN_NAMES as readonly string[]).includes(name)) cannotEncode(field, `"${name}" is a reserved member name.`);
      const member = (value as Record<string, unknown>)[name];
      out += `<member><name>${escapeText(name)}</name><value>${encodeValue(member, field, ancestors)}</value></member>`;
    }
    out += '</struct>';
  } else {
    return cannotEncode(path, `a ${value.constructor?.name ?? 'object'} is neither a plain object nor an array.`);
  }
  ancestors.delete(value);
  return out;
}

export function serializeResponse(value: XmlRpcValue): string {
  return (
    `${XML_DECLARATION}<methodResponse><params><param><value>${encodeValue(value, 'result', new Set())}` +
    '</value></param></params></methodResponse>'
  );
}

export function serializeFault(faultCode: number, message: string): string {
  if (!Number.isInteger(faultCode) || faultCode < INT32_MIN || faultCode > INT32_MAX) {
    cannotEncode('faultCode', `${faultCode} is not an int32.`);
  }
  const encoded = Buffer.from(String(message), 'utf8').toString('base64');
  return (
    `${XML_DECLARATION}<methodResponse><fault><value><struct>` +
    `<member><name>faultCode</name><value><i4>${faultCode}</i4></value></member>` +
    `<member><name>faultString</name><value><string>${encoded}</string></value></member>` +
    '</struct></value></fault></methodResponse>'
  );
}

export function serializeMethodCall(methodName: string, params: XmlRpcValue[]): string {
  if (!METHOD_NAME.test(methodName)) cannotEncode('methodName', `"${clip(methodName)}" is not a method name.`);
  const ancestors = new Set<object>();
  let out = `${XML_DECLARATION}<methodCall><methodName>${methodName}</methodName><params>`;
  for (let k = 0; k < params.length; k++) out += `<param><value>${encodeValue(params[k], { up: 'params', key: k }, ancestors)}</value></param>`;
  return `${out}</params></methodCall>`;
}
