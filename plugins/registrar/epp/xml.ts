import { parseStringPromise, processors } from 'xml2js';

/**
 * A small XML builder that escapes every text and attribute value, and a parser for EPP answers (xml2js) that
 * refuses a DOCTYPE (no entity expansion, no external references) and strips namespace prefixes, so
 * `<domain:name>` and a registry's `<d:name>` read alike.
 */

export const NS = {
  epp: 'urn:ietf:params:xml:ns:epp-1.0',
  domain: 'urn:ietf:params:xml:ns:domain-1.0',
  contact: 'urn:ietf:params:xml:ns:contact-1.0',
  host: 'urn:ietf:params:xml:ns:host-1.0',
} as const;

export interface XmlElement {
  name: string;
  attrs: Record<string, string | undefined>;
  children: XmlChild[];
}
export type XmlChild = XmlElement | string | number | null | undefined | false;

/** An element; attributes whose value is undefined are left out, and so are null/undefined/false children. */
export function el(name: string, attrs: Record<string, string | undefined> | null = null, ...children: (XmlChild | XmlChild[])[]): XmlElement {
  return { name, attrs: attrs ?? {}, children: children.flat() };
}

/** Characters XML 1.0 cannot carry at all: refused rather than silently dropped. */
const INVALID_XML_CHARS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

export class XmlInputError extends Error {}

export function escapeText(s: string): string {
  if (INVALID_XML_CHARS.test(s)) throw new XmlInputError(`The text ${JSON.stringify(s.slice(0, 40))} holds a control character XML cannot carry.`);
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function escapeAttr(s: string): string {
  return escapeText(s).replace(/"/g, '&quot;').replace(/'/g, '&apos;').replace(/\r/g, '&#13;').replace(/\n/g, '&#10;').replace(/\t/g, '&#9;');
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;

export function render(node: XmlChild): string {
  if (node === null || node === undefined || node === false) return '';
  if (typeof node === 'string') return escapeText(node);
  if (typeof node === 'number') return escapeText(String(node));
  if (!NAME.test(node.name)) throw new XmlInputError(`'${node.name}' is not an XML element name.`);
  let out = `<${node.name}`;
  for (const [k, v] of Object.entries(node.attrs)) {
    if (v === undefined) continue;
    if (!NAME.test(k)) throw new XmlInputError(`'${k}' is not an XML attribute name.`);
    out += ` ${k}="${escapeAttr(v)}"`;
  }
  const inner = node.children.map(render).join('');
  return inner === '' ? `${out}/>` : `${out}>${inner}</${node.name}>`;
}

export function document(root: XmlElement): string {
  return `<?xml version="1.0" encoding="UTF-8" standalone="no"?>${render(root)}`;
}

// ---- reading ----

/** A parsed element as xml2js gives it with explicitArray: children by name as arrays, `$` attributes, `_` text. */
export type XNode = { $?: Record<string, string>; _?: string; [child: string]: unknown } | string;

export class XmlParseError extends Error {}

export async function parseXml(xml: string): Promise<Record<string, XNode[] | XNode>> {
  if (/<!DOCTYPE/i.test(xml) || /<!ENTITY/i.test(xml)) throw new XmlParseError('The answer carries a DOCTYPE or an entity declaration, which EPP never needs; it was refused.');
  try {
    return (await parseStringPromise(xml, { tagNameProcessors: [processors.stripPrefix], attrNameProcessors: [], explicitArray: true, trim: true, strict: true })) as Record<string, XNode[] | XNode>;
  } catch (e) {
    throw new XmlParseError(`The answer is not well-formed XML: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** The children named `name` (an empty list when there are none). */
export function all(node: XNode | undefined, name: string): XNode[] {
  if (!node || typeof node === 'string') return [];
  const v = node[name];
  return Array.isArray(v) ? (v as XNode[]) : v === undefined ? [] : [v as XNode];
}

/** The first element along a path of child names. */
export function first(node: XNode | undefined, ...path: string[]): XNode | undefined {
  let at: XNode | undefined = node;
  for (const name of path) at = all(at, name)[0];
  return at;
}

export function text(node: XNode | undefined): string {
  if (node === undefined) return '';
  if (typeof node === 'string') return node;
  return typeof node._ === 'string' ? node._ : '';
}

export function attr(node: XNode | undefined, name: string): string | undefined {
  if (!node || typeof node === 'string') return undefined;
  return node.$?.[name];
}
