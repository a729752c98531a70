import type { Account, AccountInput, Contact, ContactKind } from '../../accounts/accounts-service';
import { invalid } from '../../domain/errors';
import type { Role } from '../../context';
import type { XmlRpcValue } from './codec';
import { done, read, write, type MethodTable } from './method-table';
import { sortRows, type Params } from './params';

const BLOCKS: [ContactKind, string, number][] = [
  ['admin', 'Admin', 12],
  ['billing', 'Bill', 12],
  ['technical', 'Tech', 12],
  ['personal', 'Pers', 14],
];
/** VendorAccountID, VType, CompanyName, 7 address fields, 4 contact blocks (12, 12, 12, 14), TaxStatus. */
export const ACCOUNT_ADD_PARAMS = 10 + 12 * 3 + 14 + 1;

/** PBA TaxStatus: 1 taxable, 2 exempt (names accepted too). */
function taxStatus(v: string | number | undefined, field: string): 'taxable' | 'exempt' | undefined {
  if (v === undefined || String(v).trim() === '') return undefined;
  const s = String(v).trim().toLowerCase();
  if (s === '1' || s === 'taxable' || s === '0') return 'taxable';
  if (s === '2' || s === 'exempt') return 'exempt';
  throw invalid(field, 'TaxStatus must be 1 (taxable) or 2 (exempt).');
}

const TAX_CODE = { taxable: 1, exempt: 2 } as const;
/** PBA AStatus: 0 active, 1 on credit hold (suspended), 2 closed. */
const ASTATUS = { active: 0, suspended: 1, closed: 2 } as const;

function readBlock(p: Params, start: number, label: string, personal: boolean): Partial<Contact> | undefined {
  const get = (k: number, name: string) => p.optStr(start + k, `${label}${name}`)?.trim() || undefined;
  const c: Partial<Contact> = {
    firstName: get(0, 'FName'),
    middleName: get(1, 'MName'),
    lastName: get(2, 'LName'),
    email: get(3, 'Email'),
    phoneCountryCode: get(4, 'PhCountryCode'),
    phoneAreaCode: get(5, 'PhAreaCode'),
    phone: get(6, 'PhNumber'),
    phoneExtension: get(7, 'PhExtention'),
    faxCountryCode: get(8, 'FaxCountryCode'),
    faxAreaCode: get(9, 'FaxAreaCode'),
    fax: get(10, 'FaxNumber'),
    faxExtension: get(11, 'FaxExtention'),
  };
  if (personal) {
    c.birthday = get(12, 'Birthday');
    c.passport = get(13, 'Passport');
  }
  return Object.values(c).some((v) => v !== undefined) ? c : undefined;
}

/** Reads AccountAdd_API's layout from `start` (CompanyName onwards). Empty strings mean "not given". */
function readAccountFields(p: Params, start: number) {
  const s = (k: number, name: string) => p.optStr(start + k, name)?.trim() || undefined;
  const address = {
    address1: s(1, 'Address1'),
    address2: s(2, 'Address2'),
    city: s(3, 'City'),
    state: s(4, 'State'),
    zip: s(5, 'Zip'),
    country: s(6, 'CountryID'),
    postalAddress: s(7, 'PostalAddress'),
  };
  const contacts: Partial<Record<ContactKind, Partial<Contact>>> = {};
  let at = start + 8;
  for (const [kind, label, size] of BLOCKS) {
    const c = readBlock(p, at, label, kind === 'personal');
    if (c) contacts[kind] = c;
    at += size;
  }
  const tax = taxStatus(p.optStr(at, 'TaxStatus') ?? undefined, `Params[${at}] (TaxStatus)`);
  return { companyName: s(0, 'CompanyName'), address, contacts, taxStatus: tax };
}

function accountAdd(p: Params, withId: boolean): AccountInput {
  const vtype = p.str(1, 'VType').trim().toUpperCase();
  if (vtype !== 'C' && vtype !== 'R') throw invalid('Params[1] (VType)', 'VType must be "C" (customer) or "R" (reseller).');
  const f = readAccountFields(p, 2);
  if (!f.contacts.admin) throw invalid('Params[10] (AdminFName)', 'The Admin contact block (first name, last name, e-mail) is required.');
  return {
    type: vtype === 'C' ? 'customer' : 'reseller',
    vendorAccountId: p.optInt(0, 'VendorAccountID'),
    companyName: f.companyName,
    address: f.address,
    contacts: { ...f.contacts, admin: f.contacts.admin },
    taxStatus: f.taxStatus,
    accountId: withId ? p.int(ACCOUNT_ADD_PARAMS, 'AccountID') : undefined,
  };
}

function accountDetails(a: Account): XmlRpcValue[] {
  const c = a.contacts.admin;
  return [
    a.accountId,
    a.vendorAccountId ?? 0,
    a.companyName,
    a.address.address1,
    a.address.address2,
    a.address.city,
    a.address.state,
    a.address.zip,
    a.address.country,
    a.address.postalAddress,
    c?.firstName ?? '',
    c?.middleName ?? '',
    c?.lastName ?? '',
    c?.email ?? '',
    c?.phoneCountryCode ?? '',
    c?.phoneAreaCode ?? '',
    c?.phone ?? '',
    c?.phoneExtension ?? '',
    c?.faxCountryCode ?? '',
    c?.faxAreaCode ?? '',
    c?.fax ?? '',
    c?.faxExtension ?? '',
    Math.floor(a.createdAt.getTime() / 1000),
    TAX_CODE[a.taxStatus],
    ASTATUS[a.status],
    1,
  ];
}

export const accountMethods: MethodTable = {
  'BM.AccountAdd_API': write(async (p, actor, s) => [await s.accounts.create(actor, accountAdd(p, false))]),
  'BM.AccountWithIDAdd_API': write(async (p, actor, s) => done(await s.accounts.create(actor, accountAdd(p, true)))),
  'BM.AccountDetailsGet_API': read(async (p, actor, s) => accountDetails(await s.accounts.get(actor, p.int(0, 'AccountID')))),
  'BM.AccountUpdate_API': write(async (p, actor, s) => {
    const f = readAccountFields(p, 1);
    await s.accounts.update(actor, p.int(0, 'AccountID'), { companyName: f.companyName, address: f.address, contacts: f.contacts, taxStatus: f.taxStatus });
    return done();
  }),
  'BM.UserAdd_API': write(async (p, actor, s) => {
    const o = (i: number, name: string) => p.optStr(i, name)?.trim() || undefined;
    const id = await s.users.create(actor, {
      accountId: p.int(0, 'AccountID'),
      externalId: o(1, 'ExternalID'),
      login: p.str(2, 'Login'),
      password: p.secret(3, 'Password'),
      firstName: p.str(4, 'FName'),
      middleName: o(5, 'MName'),
      lastName: p.str(6, 'LName'),
      email: p.str(7, 'Email'),
      phone: o(16, 'PhNumber'),
      profile: {
        address1: o(8, 'Address1'),
        address2: o(9, 'Address2'),
        city: o(10, 'City'),
        state: o(11, 'State'),
        zip: o(12, 'Zip'),
        country: o(13, 'CountryID'),
        phoneCountryCode: o(14, 'PhCountryCode'),
        phoneAreaCode: o(15, 'PhAreaCode'),
        phoneNumber: o(16, 'PhNumber'),
        phoneExtension: o(17, 'PhExtention'),
        faxCountryCode: o(18, 'FaxCountryCode'),
        faxAreaCode: o(19, 'FaxAreaCode'),
        faxNumber: o(20, 'FaxNumber'),
        faxExtension: o(21, 'FaxExtention'),
      },
      roles: (p.optInt(22, 'AddFARole') ?? 1) === 1 ? (['admin'] as Role[]) : (['billing', 'technical'] as Role[]),
    });
    return [id];
  }),
  'BM.UserDetailsGet_API': read(async (p, actor, s) => {
    const u = await s.users.get(actor, p.int(0, 'UserID'));
    const f = u.profile;
    return [
      u.userId,
      u.login,
      u.accountId,
      u.firstName,
      u.middleName,
      u.lastName,
      u.email,
      f.address1 ?? '',
      f.address2 ?? '',
      f.city ?? '',
      f.state ?? '',
      f.zip ?? '',
      f.country ?? '',
      f.phoneCountryCode ?? '',
      f.phoneAreaCode ?? '',
      f.phoneNumber ?? u.phone,
      f.phoneExtension ?? '',
      f.faxCountryCode ?? '',
      f.faxAreaCode ?? '',
      f.faxNumber ?? '',
      f.faxExtension ?? '',
      u.status === 'enabled' ? 0 : 1,
    ];
  }),
  'BM.GetUsersListForAccount_API': read(async (p, actor, s) => {
    const accountId = p.int(0, 'AccountID');
    const sortNo = p.optInt(1, 'SortNo');
    // PBA answers the whole list; the service pages by at most 500, so read every page.
    const rows: XmlRpcValue[][] = [];
    for (let page = 1; ; page++) {
      const r = await s.users.listForAccount(actor, accountId, { page, pageSize: 500 });
      for (const u of r.items) rows.push([u.userId, u.login, [u.firstName, u.middleName, u.lastName].filter(Boolean).join(' ')]);
      if (r.items.length === 0 || page * 500 >= r.total) break;
    }
    return sortRows(rows, sortNo);
  }),
  'BM.UserValidate_API': read(async (p, actor, s) => {
    const r = await s.auth.checkPassword(actor, p.str(0, 'Login'), p.secret(1, 'Password'));
    return [r.accountId, r.vendorAccountId ?? 0, r.userId];
  }),
  'BM.UserForVendorValidate_API': read(async (p, actor, s) => {
    const r = await s.auth.checkPassword(actor, p.str(0, 'Login'), p.secret(1, 'Password'), p.int(2, 'VendorID'));
    return [r.accountId, r.vendorAccountId ?? 0, r.userId];
  }),
};
