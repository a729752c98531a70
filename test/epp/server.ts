import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { parseStringPromise, processors } from 'xml2js';
import { testCertificate } from './tls';

/**
 * An EPP registry of our own for the tests: RFC 5730 over TLS with RFC 5734 framing on loopback, with the domain,
 * contact and host mappings (RFC 5731-5733) kept in memory. Written apart from the plugin (its own framing, XML
 * reading and writing), so the plugin is tested against an independent reading of the RFCs.
 *
 * Policies of this registry: info of a domain sponsored by someone else needs its auth code (else 2201); a
 * transfer with a wrong auth code is 2201; a transfer is approved by the server on the gaining client's
 * `approveAfterQueries`-th transfer query (or rejected, if `transferOutcome` says so); a domain may be deleted
 * within `graceDays` of its creation, later 2304; a frame over `maxFrameBytes` is answered 2500 and the connection
 * closed. A create, renew, update or delete held for offline review (holdForReview, RFC 5731 section 3.3) is
 * answered 1001: the domain shows pendingCreate / pendingRenew / pendingUpdate / pendingDelete (nothing changed
 * yet) and refuses other changes (2304) until review() approves it (carried out) or rejects it (nothing done).
 */

export const EPP_NS = 'urn:ietf:params:xml:ns:epp-1.0';
export const DOMAIN_NS = 'urn:ietf:params:xml:ns:domain-1.0';
export const CONTACT_NS = 'urn:ietf:params:xml:ns:contact-1.0';
export const HOST_NS = 'urn:ietf:params:xml:ns:host-1.0';

const MESSAGES: Record<number, string> = {
  1000: 'Command completed successfully',
  1001: 'Command completed successfully; action pending',
  1500: 'Command completed successfully; ending session',
  2001: 'Command syntax error',
  2002: 'Command use error',
  2003: 'Required parameter missing',
  2004: 'Parameter value range error',
  2005: 'Parameter value syntax error',
  2101: 'Unimplemented command',
  2200: 'Authentication error',
  2201: 'Authorization error',
  2202: 'Invalid authorization information',
  2300: 'Object pending transfer',
  2301: 'Object not pending transfer',
  2302: 'Object exists',
  2303: 'Object does not exist',
  2304: 'Object status prohibits operation',
  2306: 'Parameter value policy error',
  2307: 'Unimplemented object service',
  2500: 'Command failed; server closing connection',
};

export interface TestDomain {
  name: string;
  roid: string;
  clID: string;
  crDate: Date;
  exDate: Date;
  trDate?: Date;
  statuses: Set<string>;
  ns: string[];
  /** Nameservers given as hostAttr rather than host objects. */
  nsAttr?: boolean;
  registrant?: string;
  contacts: { type: string; id: string }[];
  authCode: string;
  transfer?: { status: string; reID: string; acID: string; reDate: Date; acDate: Date; queries: number; years: number };
  /** An action held for offline review (answered 1001). */
  held?: { action: 'create' } | { action: 'renew'; years: number } | { action: 'update'; apply: () => void } | { action: 'delete' };
}

export interface TestContact {
  id: string;
  clID: string;
  name: string;
  org?: string;
  street: string[];
  city: string;
  sp?: string;
  pc?: string;
  cc: string;
  voice: string;
  fax?: string;
  email: string;
  authCode: string;
}

export interface LoggedCommand {
  clID: string | null;
  /** "login", "domain:create", "transfer:query", ... */
  command: string;
  clTRID: string;
  code: number;
}

export interface TestEppServerOptions {
  users?: Record<string, string>;
  maxFrameBytes?: number;
  approveAfterQueries?: number;
  transferOutcome?: 'serverApproved' | 'clientRejected';
  graceDays?: number;
  now?: () => Date;
}

export interface TestEppServer {
  host: string;
  port: number;
  /** The certificate to trust (PEM). */
  ca: string;
  domains: Map<string, TestDomain>;
  contacts: Map<string, TestContact>;
  hosts: Map<string, { name: string; clID: string }>;
  log: LoggedCommand[];
  /** Carries out the next `command` (e.g. "domain:create") but drops the connection instead of answering. */
  dropAnswer(command: string): void;
  /** Never answers the next `command` (nor does it). */
  stall(command: string): void;
  /** Holds the next domain:create or domain:renew for offline review: answered 1001 (action pending). */
  holdForReview(command: 'domain:create' | 'domain:renew' | 'domain:update' | 'domain:delete'): void;
  /** Decides the action held on `name`: approved (created / renewed / changed / deleted) or rejected (undone). */
  review(name: string, approve: boolean): void;
  /** A domain held by `clID` (another registrar), for transfers. */
  seedDomain(name: string, clID: string, authCode: string, years?: number): TestDomain;
  connections(): number;
  /** Drops every client connection at once (a registry restarting, or closing idle sessions). */
  disconnectAll(): void;
  close(): Promise<void>;
}

type Node = { $?: Record<string, { value: string }>; $ns?: { uri: string; local: string }; _?: string; [k: string]: unknown };

const kids = (n: Node | undefined, name: string): Node[] => (n && Array.isArray(n[name]) ? (n[name] as Node[]) : []);
const one = (n: Node | undefined, ...path: string[]): Node | undefined => path.reduce<Node | undefined>((at, p) => kids(at, p)[0], n);
const txt = (n: Node | undefined): string => (n === undefined ? '' : typeof n === 'string' ? n : (n._ ?? '').trim());
const at = (n: Node | undefined, a: string): string | undefined => n?.$?.[a]?.value;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const day = (d: Date) => d.toISOString();
const addYears = (d: Date, y: number) => {
  const out = new Date(d);
  out.setUTCFullYear(out.getUTCFullYear() + y);
  return out;
};

class Reply {
  constructor(
    readonly code: number,
    readonly resData = '',
    readonly reason?: string,
  ) {}
}

export async function startTestEppServer(options: TestEppServerOptions = {}): Promise<TestEppServer> {
  const users = options.users ?? { 'hw-registrar': 'registrar-pw', 'other-reg': 'other-pw' };
  const maxFrame = options.maxFrameBytes ?? 65536;
  const approveAfter = options.approveAfterQueries ?? 1;
  const graceDays = options.graceDays ?? 5;
  const now = options.now ?? (() => new Date());
  const domains = new Map<string, TestDomain>();
  const contacts = new Map<string, TestContact>();
  const hosts = new Map<string, { name: string; clID: string }>();
  const log: LoggedCommand[] = [];
  const drops = new Set<string>();
  const stalls = new Set<string>();
  const reviews = new Set<string>();
  let roid = 0;
  let sv = 0;
  const sockets = new Set<tls.TLSSocket>();
  const { key, cert } = testCertificate();

  const greeting = () =>
    `<?xml version="1.0" encoding="UTF-8" standalone="no"?><epp xmlns="${EPP_NS}"><greeting><svID>Hostwright Test Registry</svID><svDate>${now().toISOString()}</svDate>` +
    `<svcMenu><version>1.0</version><lang>en</lang><objURI>${DOMAIN_NS}</objURI><objURI>${CONTACT_NS}</objURI><objURI>${HOST_NS}</objURI></svcMenu>` +
    `<dcp><access><all/></access><statement><purpose><admin/><prov/></purpose><recipient><ours/></recipient><retention><stated/></retention></statement></dcp></greeting></epp>`;

  const response = (r: Reply, clTRID: string) =>
    `<?xml version="1.0" encoding="UTF-8" standalone="no"?><epp xmlns="${EPP_NS}"><response><result code="${r.code}"><msg>${MESSAGES[r.code] ?? 'Command failed'}</msg>` +
    `${r.reason ? `<extValue><value><text/></value><reason>${esc(r.reason)}</reason></extValue>` : ''}</result>` +
    `${r.resData ? `<resData>${r.resData}</resData>` : ''}<trID>${clTRID ? `<clTRID>${esc(clTRID)}</clTRID>` : ''}<svTRID>SV-${++sv}</svTRID></trID></response></epp>`;

  const frame = (xml: string) => {
    const body = Buffer.from(xml, 'utf8');
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length + 4, 0);
    return Buffer.concat([head, body]);
  };

  const domData = (d: TestDomain, full: boolean) =>
    `<domain:infData xmlns:domain="${DOMAIN_NS}"><domain:name>${d.name}</domain:name><domain:roid>${d.roid}</domain:roid>` +
    [...d.statuses].map((s) => `<domain:status s="${s}"/>`).join('') +
    (d.registrant ? `<domain:registrant>${d.registrant}</domain:registrant>` : '') +
    d.contacts.map((c) => `<domain:contact type="${c.type}">${c.id}</domain:contact>`).join('') +
    (d.ns.length ? `<domain:ns>${d.ns.map((n) => (d.nsAttr ? `<domain:hostAttr><domain:hostName>${n}</domain:hostName></domain:hostAttr>` : `<domain:hostObj>${n}</domain:hostObj>`)).join('')}</domain:ns>` : '') +
    `<domain:clID>${d.clID}</domain:clID><domain:crID>${d.clID}</domain:crID><domain:crDate>${day(d.crDate)}</domain:crDate><domain:exDate>${day(d.exDate)}</domain:exDate>` +
    (d.trDate ? `<domain:trDate>${day(d.trDate)}</domain:trDate>` : '') +
    (full ? `<domain:authInfo><domain:pw>${esc(d.authCode)}</domain:pw></domain:authInfo>` : '') +
    `</domain:infData>`;

  const trnData = (d: TestDomain) => {
    const t = d.transfer!;
    return (
      `<domain:trnData xmlns:domain="${DOMAIN_NS}"><domain:name>${d.name}</domain:name><domain:trStatus>${t.status}</domain:trStatus><domain:reID>${t.reID}</domain:reID>` +
      `<domain:reDate>${day(t.reDate)}</domain:reDate><domain:acID>${t.acID}</domain:acID><domain:acDate>${day(t.acDate)}</domain:acDate><domain:exDate>${day(d.exDate)}</domain:exDate></domain:trnData>`
    );
  };

  const validName = (n: string) => /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$/.test(n);

  function domainCommand(verb: string, obj: Node, clID: string, op?: string): Reply {
    const name = txt(one(obj, 'name')).toLowerCase();
    if (verb === 'check') {
      const cds = kids(obj, 'name').map((n) => {
        const nm = txt(n).toLowerCase();
        const taken = domains.has(nm);
        const ok = validName(nm);
        return `<domain:cd><domain:name avail="${ok && !taken ? 1 : 0}">${esc(nm)}</domain:name>${!ok ? '<domain:reason>Invalid domain name</domain:reason>' : taken ? '<domain:reason>In use</domain:reason>' : ''}</domain:cd>`;
      });
      return new Reply(1000, `<domain:chkData xmlns:domain="${DOMAIN_NS}">${cds.join('')}</domain:chkData>`);
    }
    if (!name) return new Reply(2003, '', 'domain:name is missing');
    const d = domains.get(name);
    if (verb === 'create') {
      if (!validName(name)) return new Reply(2005, '', 'invalid domain name');
      if (d) return new Reply(2302);
      const period = Number(txt(one(obj, 'period')) || '1');
      if (!Number.isInteger(period) || period < 1 || period > 10) return new Reply(2004, '', 'period must be 1-10 years');
      const registrant = txt(one(obj, 'registrant'));
      if (!registrant) return new Reply(2003, '', 'registrant is required');
      const cts = kids(obj, 'contact').map((c) => ({ type: at(c, 'type') ?? '', id: txt(c) }));
      for (const id of [registrant, ...cts.map((c) => c.id)]) if (!contacts.has(id)) return new Reply(2303, '', `contact ${id} does not exist`);
      const ns = kids(one(obj, 'ns'), 'hostObj').map((h) => txt(h).toLowerCase());
      for (const h of ns) if (!hosts.has(h)) return new Reply(2303, '', `host ${h} does not exist`);
      // hostAttr: the names travel inside the domain, no host objects needed (shown back as hostAttr).
      const attrNs = kids(one(obj, 'ns'), 'hostAttr').map((h) => txt(one(h, 'hostName')).toLowerCase());
      if (ns.length && attrNs.length) return new Reply(2001, '', 'hostObj and hostAttr mixed');
      ns.push(...attrNs);
      const pw = txt(one(obj, 'authInfo', 'pw'));
      if (!pw) return new Reply(2003, '', 'authInfo is required');
      const crDate = now();
      const dom: TestDomain = { name, roid: `D${++roid}-TEST`, clID, crDate, exDate: addYears(crDate, period), statuses: new Set(['ok']), ns, nsAttr: attrNs.length > 0, registrant, contacts: cts, authCode: pw };
      domains.set(name, dom);
      if (reviews.delete('domain:create')) {
        dom.statuses = new Set(['pendingCreate']);
        dom.held = { action: 'create' };
        return new Reply(1001, `<domain:creData xmlns:domain="${DOMAIN_NS}"><domain:name>${name}</domain:name><domain:crDate>${day(dom.crDate)}</domain:crDate></domain:creData>`);
      }
      return new Reply(1000, `<domain:creData xmlns:domain="${DOMAIN_NS}"><domain:name>${name}</domain:name><domain:crDate>${day(dom.crDate)}</domain:crDate><domain:exDate>${day(dom.exDate)}</domain:exDate></domain:creData>`);
    }
    if (!d) return new Reply(2303);
    if (verb === 'info') {
      const pw = txt(one(obj, 'authInfo', 'pw'));
      if (d.clID !== clID && pw !== d.authCode) return new Reply(2201, '', 'not the sponsoring registrar');
      return new Reply(1000, domData(d, true));
    }
    if (verb === 'transfer') {
      if (op === 'query') {
        if (!d.transfer) return new Reply(2301);
        if (d.clID !== clID && d.transfer.reID !== clID) return new Reply(2201);
        const t = d.transfer;
        if (t.status === 'pending' && t.reID === clID && ++t.queries >= approveAfter) {
          const outcome = options.transferOutcome ?? 'serverApproved';
          t.status = outcome;
          t.acDate = now();
          d.statuses.delete('pendingTransfer');
          if (d.statuses.size === 0) d.statuses.add('ok');
          if (outcome === 'serverApproved') {
            d.clID = clID;
            d.exDate = addYears(d.exDate, t.years);
            d.trDate = now();
            d.authCode = crypto.randomBytes(8).toString('hex');
          }
        }
        return new Reply(1000, trnData(d));
      }
      if (op !== 'request') return new Reply(2101, '', `transfer op ${op} is not offered`);
      if (d.clID === clID) return new Reply(2002, '', 'you already sponsor this domain');
      if (txt(one(obj, 'authInfo', 'pw')) !== d.authCode) return new Reply(2201, '', 'wrong authInfo');
      if (d.transfer?.status === 'pending') return new Reply(2300);
      if ([...d.statuses].some((s) => s.endsWith('TransferProhibited'))) return new Reply(2304);
      d.transfer = { status: 'pending', reID: clID, acID: d.clID, reDate: now(), acDate: addYears(now(), 0), queries: 0, years: Number(txt(one(obj, 'period')) || '1') };
      d.statuses.delete('ok');
      d.statuses.add('pendingTransfer');
      return new Reply(1001, trnData(d));
    }
    if (d.clID !== clID) return new Reply(2201);
    const pendingStatus = [...d.statuses].find((st) => st.startsWith('pending'));
    if (pendingStatus && ['renew', 'delete', 'update'].includes(verb)) return new Reply(2304, '', pendingStatus);
    if (verb === 'renew') {
      const cur = txt(one(obj, 'curExpDate'));
      if (cur !== day(d.exDate).slice(0, 10)) return new Reply(2306, '', `curExpDate ${cur} does not match the expiry ${day(d.exDate).slice(0, 10)}`);
      const period = Number(txt(one(obj, 'period')) || '1');
      const next = addYears(d.exDate, period);
      if (!Number.isInteger(period) || period < 1 || next.getTime() > addYears(now(), 10).getTime()) return new Reply(2306, '', 'more than 10 years ahead');
      if (reviews.delete('domain:renew')) {
        // Held: the expiry moves only once approved; the answer tells the expiry it would have.
        d.statuses.delete('ok');
        d.statuses.add('pendingRenew');
        d.held = { action: 'renew', years: period };
        return new Reply(1001, `<domain:renData xmlns:domain="${DOMAIN_NS}"><domain:name>${name}</domain:name><domain:exDate>${day(next)}</domain:exDate></domain:renData>`);
      }
      d.exDate = next;
      return new Reply(1000, `<domain:renData xmlns:domain="${DOMAIN_NS}"><domain:name>${name}</domain:name><domain:exDate>${day(d.exDate)}</domain:exDate></domain:renData>`);
    }
    if (verb === 'delete') {
      if (d.statuses.has('clientDeleteProhibited')) return new Reply(2304, '', 'clientDeleteProhibited');
      if (now().getTime() - d.crDate.getTime() > graceDays * 86_400_000) return new Reply(2304, '', 'the add grace period is over');
      if (reviews.delete('domain:delete')) {
        d.statuses = new Set(['pendingDelete']);
        d.held = { action: 'delete' };
        return new Reply(1001);
      }
      domains.delete(name);
      return new Reply(1000);
    }
    if (verb === 'update') {
      const add = one(obj, 'add');
      const rem = one(obj, 'rem');
      const chg = one(obj, 'chg');
      const addStatus = kids(add, 'status').map((s) => at(s, 's') ?? '');
      const remStatus = kids(rem, 'status').map((s) => at(s, 's') ?? '');
      if (d.statuses.has('clientUpdateProhibited') && !remStatus.includes('clientUpdateProhibited')) return new Reply(2304);
      for (const s of [...addStatus, ...remStatus]) if (!/^client[A-Za-z]+$/.test(s)) return new Reply(2306, '', `status ${s} is not a client status`);
      for (const s of addStatus) if (d.statuses.has(s)) return new Reply(2306, '', `status ${s} is already set`);
      const addNs = kids(one(add, 'ns'), 'hostObj').map((h) => txt(h).toLowerCase());
      for (const h of addNs) if (!hosts.has(h)) return new Reply(2303, '', `host ${h} does not exist`);
      const addCt = kids(add, 'contact').map((c) => ({ type: at(c, 'type') ?? '', id: txt(c) }));
      for (const c of addCt) if (!contacts.has(c.id)) return new Reply(2303, '', `contact ${c.id} does not exist`);
      const registrant = txt(one(chg, 'registrant'));
      if (registrant && !contacts.has(registrant)) return new Reply(2303, '', `contact ${registrant} does not exist`);
      const remNs = kids(one(rem, 'ns'), 'hostObj').map((h) => txt(h).toLowerCase());
      const remCt = kids(rem, 'contact').map((c) => ({ type: at(c, 'type') ?? '', id: txt(c) }));
      const pw = txt(one(chg, 'authInfo', 'pw'));
      const apply = () => {
        d.ns = [...d.ns.filter((n) => !remNs.includes(n)), ...addNs.filter((n) => !d.ns.includes(n))];
        d.contacts = [...d.contacts.filter((c) => !remCt.some((r) => r.type === c.type && r.id === c.id)), ...addCt];
        for (const s of remStatus) d.statuses.delete(s);
        for (const s of addStatus) d.statuses.add(s);
        if (addStatus.length) d.statuses.delete('ok');
        if (d.statuses.size === 0) d.statuses.add('ok');
        if (registrant) d.registrant = registrant;
        if (pw) d.authCode = pw;
      };
      if (reviews.delete('domain:update')) {
        d.statuses.delete('ok');
        d.statuses.add('pendingUpdate');
        d.held = { action: 'update', apply };
        return new Reply(1001);
      }
      apply();
      return new Reply(1000);
    }
    return new Reply(2101);
  }

  function contactCommand(verb: string, obj: Node, clID: string): Reply {
    const id = txt(one(obj, 'id'));
    if (verb === 'check') {
      const cds = kids(obj, 'id').map((n) => `<contact:cd><contact:id avail="${contacts.has(txt(n)) ? 0 : 1}">${esc(txt(n))}</contact:id></contact:cd>`);
      return new Reply(1000, `<contact:chkData xmlns:contact="${CONTACT_NS}">${cds.join('')}</contact:chkData>`);
    }
    if (!/^[A-Za-z0-9-]{3,16}$/.test(id)) return new Reply(2005, '', 'contact id must be 3-16 letters, digits or hyphens');
    const c = contacts.get(id);
    if (verb === 'create') {
      if (c) return new Reply(2302);
      const p = one(obj, 'postalInfo');
      const addr = one(p, 'addr');
      const made: TestContact = {
        id,
        clID,
        name: txt(one(p, 'name')),
        org: txt(one(p, 'org')) || undefined,
        street: kids(addr, 'street').map(txt),
        city: txt(one(addr, 'city')),
        sp: txt(one(addr, 'sp')) || undefined,
        pc: txt(one(addr, 'pc')) || undefined,
        cc: txt(one(addr, 'cc')),
        voice: txt(one(obj, 'voice')),
        fax: txt(one(obj, 'fax')) || undefined,
        email: txt(one(obj, 'email')),
        authCode: txt(one(obj, 'authInfo', 'pw')),
      };
      if (!made.name || !made.city || !made.cc || !made.email || !made.authCode) return new Reply(2003, '', 'name, city, cc, email and authInfo are required');
      if (!/^[A-Z]{2}$/.test(made.cc)) return new Reply(2005, '', 'cc must be two capital letters');
      contacts.set(id, made);
      return new Reply(1000, `<contact:creData xmlns:contact="${CONTACT_NS}"><contact:id>${id}</contact:id><contact:crDate>${now().toISOString()}</contact:crDate></contact:creData>`);
    }
    if (!c) return new Reply(2303);
    if (verb === 'info') {
      if (c.clID !== clID) return new Reply(2201);
      return new Reply(
        1000,
        `<contact:infData xmlns:contact="${CONTACT_NS}"><contact:id>${c.id}</contact:id><contact:roid>C-${c.id}</contact:roid><contact:status s="ok"/>` +
          `<contact:postalInfo type="int"><contact:name>${esc(c.name)}</contact:name>${c.org ? `<contact:org>${esc(c.org)}</contact:org>` : ''}<contact:addr>` +
          c.street.map((s) => `<contact:street>${esc(s)}</contact:street>`).join('') +
          `<contact:city>${esc(c.city)}</contact:city>${c.sp ? `<contact:sp>${esc(c.sp)}</contact:sp>` : ''}${c.pc ? `<contact:pc>${esc(c.pc)}</contact:pc>` : ''}<contact:cc>${c.cc}</contact:cc></contact:addr></contact:postalInfo>` +
          `<contact:voice>${esc(c.voice)}</contact:voice>${c.fax ? `<contact:fax>${esc(c.fax)}</contact:fax>` : ''}<contact:email>${esc(c.email)}</contact:email><contact:clID>${c.clID}</contact:clID></contact:infData>`,
      );
    }
    return new Reply(2101);
  }

  function hostCommand(verb: string, obj: Node, clID: string): Reply {
    if (verb === 'check') {
      const cds = kids(obj, 'name').map((n) => `<host:cd><host:name avail="${hosts.has(txt(n).toLowerCase()) ? 0 : 1}">${esc(txt(n).toLowerCase())}</host:name></host:cd>`);
      return new Reply(1000, `<host:chkData xmlns:host="${HOST_NS}">${cds.join('')}</host:chkData>`);
    }
    const name = txt(one(obj, 'name')).toLowerCase();
    if (verb === 'create') {
      if (!validName(name)) return new Reply(2005, '', 'invalid host name');
      if (hosts.has(name)) return new Reply(2302);
      hosts.set(name, { name, clID });
      return new Reply(1000, `<host:creData xmlns:host="${HOST_NS}"><host:name>${name}</host:name><host:crDate>${now().toISOString()}</host:crDate></host:creData>`);
    }
    return new Reply(2101);
  }

  async function handle(xml: string, session: { clID: string | null }, socket: tls.TLSSocket): Promise<string | null> {
    if (/<!DOCTYPE/i.test(xml)) return response(new Reply(2001, '', 'DOCTYPE is not allowed'), '');
    let root: { epp?: Node };
    try {
      root = (await parseStringPromise(xml, { tagNameProcessors: [processors.stripPrefix], xmlns: true, explicitArray: true })) as { epp?: Node };
    } catch {
      return response(new Reply(2001, '', 'not well-formed XML'), '');
    }
    const epp = root.epp;
    if (!epp || epp.$ns?.uri !== EPP_NS) return response(new Reply(2001, '', 'not an EPP document'), '');
    if (one(epp, 'hello')) return greeting();
    const command = one(epp, 'command');
    if (!command) return response(new Reply(2001, '', 'no command'), '');
    const clTRID = txt(one(command, 'clTRID'));
    const verb = Object.keys(command).find((k) => !['$', '$ns', 'clTRID', 'extension'].includes(k)) ?? '';
    const inner = one(command, verb);
    const obj = inner ? (Object.entries(inner).find(([k]) => !['$', '$ns', '_'].includes(k))?.[1] as Node[] | undefined)?.[0] : undefined;
    const objType = obj?.$ns?.uri === DOMAIN_NS ? 'domain' : obj?.$ns?.uri === CONTACT_NS ? 'contact' : obj?.$ns?.uri === HOST_NS ? 'host' : null;
    const op = at(inner, 'op');
    const key = verb === 'login' || verb === 'logout' ? verb : verb === 'transfer' ? `transfer:${op}` : `${objType}:${verb}`;
    if (stalls.delete(key)) return null;

    let reply: Reply;
    if (verb === 'login') {
      if (session.clID) reply = new Reply(2002, '', 'already logged in');
      else {
        const clID = txt(one(inner, 'clID'));
        const pw = txt(one(inner, 'pw'));
        const uris = kids(one(inner, 'svcs'), 'objURI').map(txt);
        if (users[clID] === undefined || users[clID] !== pw) reply = new Reply(2200, '', 'wrong client id or password');
        else if (uris.some((u) => ![DOMAIN_NS, CONTACT_NS, HOST_NS].includes(u))) reply = new Reply(2307);
        else {
          const newPW = txt(one(inner, 'newPW'));
          if (newPW) users[clID] = newPW;
          session.clID = clID;
          reply = new Reply(1000);
        }
      }
    } else if (!session.clID) reply = new Reply(2002, '', 'log in first');
    else if (verb === 'logout') reply = new Reply(1500);
    else if (!obj || !objType) reply = new Reply(2307, '', 'unknown object');
    else if (objType === 'domain') reply = domainCommand(verb, obj, session.clID, op);
    else if (objType === 'contact') reply = contactCommand(verb, obj, session.clID);
    else reply = hostCommand(verb, obj, session.clID);

    log.push({ clID: session.clID, command: key, clTRID, code: reply.code });
    if (drops.delete(key)) {
      socket.destroy();
      return null;
    }
    const out = response(reply, clTRID);
    if (reply.code === 1500) {
      socket.end(frame(out));
      return null;
    }
    return out;
  }

  const server = tls.createServer({ key, cert, minVersion: 'TLSv1.2' }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const session = { clID: null as string | null };
    let buffer = Buffer.alloc(0);
    let chain = Promise.resolve();
    socket.write(frame(greeting()));
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 4) {
        const total = buffer.readUInt32BE(0);
        if (total < 5 || total > maxFrame) {
          buffer = Buffer.alloc(0);
          log.push({ clID: session.clID, command: 'frame', clTRID: '', code: 2500 });
          socket.end(frame(response(new Reply(2500, '', `frame of ${total} bytes refused (limit ${maxFrame})`), '')));
          return;
        }
        if (buffer.length < total) break;
        const xml = buffer.subarray(4, total).toString('utf8');
        buffer = buffer.subarray(total);
        chain = chain.then(async () => {
          const out = await handle(xml, session, socket);
          if (out !== null && !socket.destroyed) socket.write(frame(out));
        });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    host: '127.0.0.1',
    port,
    ca: cert,
    domains,
    contacts,
    hosts,
    log,
    dropAnswer: (c) => void drops.add(c),
    stall: (c) => void stalls.add(c),
    holdForReview: (c) => void reviews.add(c),
    review(name, approve) {
      const d = domains.get(name);
      if (!d?.held) throw new Error(`No action on ${name} is held for review.`);
      const held = d.held;
      delete d.held;
      if (held.action === 'create') {
        if (!approve) {
          domains.delete(name);
          return;
        }
        d.statuses.delete('pendingCreate');
      } else if (held.action === 'renew') {
        d.statuses.delete('pendingRenew');
        if (approve) d.exDate = addYears(d.exDate, held.years);
      } else if (held.action === 'update') {
        d.statuses.delete('pendingUpdate');
        if (approve) held.apply();
      } else {
        if (approve) {
          domains.delete(name);
          return;
        }
        d.statuses.delete('pendingDelete');
      }
      if (d.statuses.size === 0) d.statuses.add('ok');
    },
    seedDomain(name, clID, authCode, years = 1) {
      const crDate = now();
      const d: TestDomain = { name, roid: `D${++roid}-TEST`, clID, crDate: new Date(crDate.getTime() - 400 * 86_400_000), exDate: addYears(crDate, years), statuses: new Set(['ok']), ns: [], contacts: [], authCode };
      domains.set(name, d);
      return d;
    },
    connections: () => sockets.size,
    disconnectAll: () => {
      for (const s of sockets) s.destroy();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
