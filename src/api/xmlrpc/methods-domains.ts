import { formatAmount } from '../../domain/money';
import { invalid } from '../../domain/errors';
import type { DomainCheck, DomainStatus } from '../../domains/domains-service';
import type { XmlRpcValue } from './codec';
import { read, type MethodTable } from './method-table';
import { INT_NULL, moneyDouble, type Params } from './params';

/** PBA's wording of a domain's status. */
const PBA_STATUS: Record<DomainStatus, string> = {
  pending: 'Submitting',
  active: 'Registered',
  transfer_pending: 'Transfer Pending',
  expired: 'Expired',
  redemption: 'Redemption',
  suspended: 'Suspended',
  transferred_away: 'Transferred Away',
  deleted: 'Cancelled',
};

const unix = (d: Date | null): number => (d ? Math.floor(d.getTime() / 1000) : INT_NULL);

/** One availability row: [FullDomainName, Available (1/0), Price (1 year; 0 when not available), Currency, Reason]. */
const checkRow = (c: DomainCheck): XmlRpcValue[] => [
  c.name,
  c.available ? 1 : 0,
  moneyDouble(c.price !== undefined && c.currency ? formatAmount(c.price, c.currency) : '0'),
  c.currency ?? '',
  c.reason ?? '',
];

/** A name given whole ("example.com") or as name and zone ("example", "com"). */
function nameAt(p: Params, i: number): string {
  const name = p.str(i, 'DomainName').trim();
  const zone = p.optStr(i + 1, 'DomainZone')?.trim().replace(/^\./, '');
  return zone ? `${name}.${zone}` : name;
}

/** The domain by FullDomainName, or by DomainID when an integer is given (an extension of ours). */
const domainRef = (p: Params) => (typeof p.raw(0) === 'number' ? { domainId: p.int(0, 'DomainID') } : { name: p.str(0, 'FullDomainName') });

/**
 * DOMAINGATE: availability with the caller's price, a domain's details and expiry, and whether a TLD's transfers
 * need the auth code. Names may be IDN (answered in punycode).
 */
export const domainMethods: MethodTable = {
  /** (DomainName[, DomainZone]) -> [FullDomainName, Available, Price, Currency, Reason] */
  'DOMAINGATE.SingleDomainNameAvailability_API': read(async (p, actor, s) => {
    const [c] = await s.domains.check(actor, [nameAt(p, 0)]);
    return checkRow(c);
  }),
  /** (Name1, Name2, ... | [Name1, Name2, ...]) -> rows [FullDomainName, Available, Price, Currency, Reason] */
  'DOMAINGATE.DomainNamesAvailability_API': read(async (p, actor, s) => {
    const first = p.raw(0);
    const names: unknown[] = Array.isArray(first) ? first : Array.from({ length: p.length }, (_x, i) => p.str(i, `DomainName${i + 1}`));
    if (names.length === 0) throw invalid('Params[0] (DomainNames)', 'DomainNamesAvailability_API needs at least one domain name.');
    return (await s.domains.check(actor, names)).map(checkRow);
  }),
  /**
   * (FullDomainName) -> [AccountID, VendorID, DomainID, FullDomainName, DomainZoneID, Status, "External DNS",
   * RegistrationPeriod, StartDate, ExpirationDate, PrimaryNameServer, SecondaryNameServer, ThirdNameServer, FourthNameServer]
   */
  'DOMAINGATE.DomainInfoGet_API': read(async (p, actor, s) => {
    const d = await s.domains.get(actor, domainRef(p));
    const years = d.registeredAt && d.expiresAt ? Math.max(0, Math.round((d.expiresAt.getTime() - d.registeredAt.getTime()) / (365.25 * 86_400_000))) : 0;
    const ns = [0, 1, 2, 3].map((i) => d.nameservers[i] ?? '');
    return [d.accountId, d.vendorAccountId, d.domainId, d.name, d.tld, PBA_STATUS[d.status], 'External DNS', years, unix(d.registeredAt), unix(d.expiresAt), ...ns];
  }),
  /** (FullDomainName or DomainID) -> [ExpirationDate] (Unix seconds; the integer NULL until the registry confirmed it) */
  'DOMAINGATE.DomainExpirationDateGet_API': read(async (p, actor, s) => {
    const d = await s.domains.get(actor, domainRef(p));
    return [unix(d.expiresAt)];
  }),
  /** (DomainZone or FullDomainName) -> [1 when a transfer needs the EPP auth code, else 0] */
  'DOMAINGATE.DomainTransferKeyIsRequired_API': read(async (p, actor, s) => [(await s.domains.transferKeyRequired(actor, p.str(0, 'DomainZone'))) ? 1 : 0]),
};
