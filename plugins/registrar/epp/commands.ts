import type { DomainContact } from '../../../src/plugins/sdk';
import { document, el, NS, type XmlChild, type XmlElement } from './xml';

/** EPP documents (RFC 5730) with the domain, contact and host mappings (RFC 5731, 5733, 5732). */

export function commandDoc(body: XmlElement, clTRID: string): string {
  return document(el('epp', { xmlns: NS.epp }, el('command', null, body, el('clTRID', null, clTRID))));
}

export const helloDoc = (): string => document(el('epp', { xmlns: NS.epp }, el('hello')));

export function login(clID: string, pw: string, objURIs: string[], extURIs: string[], newPW?: string): XmlElement {
  return el(
    'login',
    null,
    el('clID', null, clID),
    el('pw', null, pw),
    newPW ? el('newPW', null, newPW) : null,
    el('options', null, el('version', null, '1.0'), el('lang', null, 'en')),
    el('svcs', null, ...objURIs.map((u) => el('objURI', null, u)), extURIs.length ? el('svcExtension', null, ...extURIs.map((u) => el('extURI', null, u))) : null),
  );
}

export const logout = (): XmlElement => el('logout');

const d = (name: string, attrs: Record<string, string | undefined> | null = null, ...children: (XmlChild | XmlChild[])[]) => el(`domain:${name}`, attrs, ...children);
const c = (name: string, attrs: Record<string, string | undefined> | null = null, ...children: (XmlChild | XmlChild[])[]) => el(`contact:${name}`, attrs, ...children);
const h = (name: string, attrs: Record<string, string | undefined> | null = null, ...children: (XmlChild | XmlChild[])[]) => el(`host:${name}`, attrs, ...children);

const domainObj = (verb: string, ...children: (XmlChild | XmlChild[])[]) => el(verb, null, d(verb, { 'xmlns:domain': NS.domain }, ...children));
const contactObj = (verb: string, ...children: (XmlChild | XmlChild[])[]) => el(verb, null, c(verb, { 'xmlns:contact': NS.contact }, ...children));
const hostObj = (verb: string, ...children: (XmlChild | XmlChild[])[]) => el(verb, null, h(verb, { 'xmlns:host': NS.host }, ...children));

export type NameserverMode = 'hostObj' | 'hostAttr';

function nsList(hosts: string[], mode: NameserverMode): XmlElement | null {
  if (!hosts.length) return null;
  return d('ns', null, ...hosts.map((n) => (mode === 'hostObj' ? d('hostObj', null, n) : d('hostAttr', null, d('hostName', null, n)))));
}

export const domainCheck = (names: string[]) => domainObj('check', ...names.map((n) => d('name', null, n)));
export const domainInfo = (name: string, authCode?: string) => domainObj('info', d('name', { hosts: 'all' }, name), authCode ? d('authInfo', null, d('pw', null, authCode)) : null);

export interface DomainCreate {
  name: string;
  years: number;
  nameservers: string[];
  nsMode: NameserverMode;
  registrant?: string;
  contacts: { type: 'admin' | 'tech' | 'billing'; id: string }[];
  authCode: string;
}

export const domainCreate = (x: DomainCreate) =>
  domainObj(
    'create',
    d('name', null, x.name),
    d('period', { unit: 'y' }, x.years),
    nsList(x.nameservers, x.nsMode),
    x.registrant ? d('registrant', null, x.registrant) : null,
    x.contacts.map((ct) => d('contact', { type: ct.type }, ct.id)),
    d('authInfo', null, d('pw', null, x.authCode)),
  );

export const domainRenew = (name: string, curExpDate: string, years: number) => domainObj('renew', d('name', null, name), d('curExpDate', null, curExpDate), d('period', { unit: 'y' }, years));
export const domainDelete = (name: string) => domainObj('delete', d('name', null, name));

export function domainTransfer(op: 'request' | 'query', name: string, authCode?: string, years?: number): XmlElement {
  return el(
    'transfer',
    { op },
    d('transfer', { 'xmlns:domain': NS.domain }, d('name', null, name), years ? d('period', { unit: 'y' }, years) : null, authCode ? d('authInfo', null, d('pw', null, authCode)) : null),
  );
}

export interface DomainChange {
  nameservers?: string[];
  contacts?: { type: string; id: string }[];
  statuses?: string[];
}

export function domainUpdate(name: string, nsMode: NameserverMode, add: DomainChange, rem: DomainChange, chg: { registrant?: string; authCode?: string } = {}): XmlElement {
  const part = (tag: string, x: DomainChange) => {
    const inner = [nsList(x.nameservers ?? [], nsMode), (x.contacts ?? []).map((ct) => d('contact', { type: ct.type }, ct.id)), (x.statuses ?? []).map((s) => d('status', { s }))].flat().filter(Boolean);
    return inner.length ? d(tag, null, ...inner) : null;
  };
  const change = chg.registrant || chg.authCode ? d('chg', null, chg.registrant ? d('registrant', null, chg.registrant) : null, chg.authCode ? d('authInfo', null, d('pw', null, chg.authCode)) : null) : null;
  return domainObj('update', d('name', null, name), part('add', add), part('rem', rem), change);
}

export const contactInfo = (id: string) => contactObj('info', c('id', null, id));

const isAscii = (s: string) => /^[\x20-\x7e]*$/.test(s);

export function contactCreate(id: string, x: DomainContact, authCode: string): XmlElement {
  const fields = [x.name, x.organization ?? '', x.city, x.state ?? '', x.postalCode ?? '', ...x.street];
  return contactObj(
    'create',
    c('id', null, id),
    c(
      'postalInfo',
      { type: fields.every(isAscii) ? 'int' : 'loc' },
      c('name', null, x.name),
      x.organization ? c('org', null, x.organization) : null,
      c('addr', null, x.street.map((s) => c('street', null, s)), c('city', null, x.city), x.state ? c('sp', null, x.state) : null, x.postalCode ? c('pc', null, x.postalCode) : null, c('cc', null, x.countryCode)),
    ),
    c('voice', null, x.phone),
    x.fax ? c('fax', null, x.fax) : null,
    c('email', null, x.email),
    c('authInfo', null, c('pw', null, authCode)),
  );
}

export const hostCheck = (names: string[]) => hostObj('check', ...names.map((n) => h('name', null, n)));
export const hostCreate = (name: string) => hostObj('create', h('name', null, name));
