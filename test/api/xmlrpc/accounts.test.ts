import { expect } from 'chai';
import { XMLRPC_FAULT_CODES } from '../../../src/api/api-errors';
import { ManualClock } from '../../../src/clock';
import { accountWithApiUser, providerActor, startApiWorld, type ApiWorld } from '../../helpers/api';
import { ADMIN, accountAddParams, bm, execute, fault, result } from './client';

const START = '2026-01-15T10:00:00Z';
const START_SECONDS = Date.parse(START) / 1000;
const INT_NULL = -2147483648;

const FULL = {
  company: 'Full Params GmbH',
  address1: 'Hauptstr. 1',
  address2: 'Hinterhaus',
  city: 'Berlin',
  state: 'BE',
  zip: '10115',
  country: 'de',
  postal: 'Hauptstr. 1, 10115 Berlin',
  admin: { fname: 'Anna', mname: 'M', lname: 'Admin', email: 'anna@full.example', phCountry: '49', phArea: '30', phNumber: '1234567', phExt: '11', faxCountry: '49', faxArea: '30', faxNumber: '7654321', faxExt: '12' },
  bill: { fname: 'Bert', lname: 'Bill', email: 'bert@full.example', phNumber: '222' },
  tech: { fname: 'Tina', lname: 'Tech', email: 'tina@full.example', faxNumber: '333' },
  pers: { fname: 'Paul', lname: 'Pers', email: 'paul@full.example', birthday: '1980-02-29', passport: 'C01X00T47' },
  taxStatus: 2,
};

/** Accounts and users methods of the BM gate, through real XML-RPC bytes. */
describe('XML-RPC accounts and users methods', () => {
  let world: ApiWorld;
  let rpc: string;
  let adminUserId: number;

  before(async () => {
    world = await startApiWorld({ clock: new ManualClock(START) });
    rpc = `${world.url}/RPC2`;
    adminUserId = ((await world.fresh.db('users').where({ login: 'admin' }).first('id')) as { id: number }).id;
  });
  after(async () => {
    await world?.close();
  });

  const addAccount = async (params: Parameters<typeof accountAddParams>[0]): Promise<number> => {
    const row = result(await bm(rpc, 'AccountAdd_API', accountAddParams(params))) as number[];
    expect(row).to.have.length(1);
    return row[0];
  };

  describe('AccountAdd_API and AccountDetailsGet_API', () => {
    it('creates a customer from the 61 positional parameters and answers [AccountID]', async () => {
      const params = accountAddParams(FULL);
      expect(params).to.have.length(61);
      const reply = await bm(rpc, 'AccountAdd_API', params);
      const [id] = result(reply) as number[];
      expect(id).to.be.a('number').above(0);
      expect(reply.body).to.contain(`<i4>${id}</i4>`);
      const row = (await world.fresh.db('accounts').where({ id }).first()) as { type: string; vendor_id: number; tax_status: string };
      expect(row).to.deep.include({ type: 'customer', tax_status: 'exempt' });
    });

    it('answers AccountDetailsGet_API with all 26 positions in PBA order', async () => {
      const id = await addAccount(FULL);
      const provider = await providerActor(world);
      const details = result(await bm(rpc, 'AccountDetailsGet_API', [id]));
      expect(details).to.deep.equal([
        id, // AccountID
        provider.accountId, // VendorAccountID
        'Full Params GmbH', // CompanyName
        'Hauptstr. 1', // Address1
        'Hinterhaus', // Address2
        'Berlin', // City
        'BE', // State
        '10115', // Zip
        'DE', // CountryID (ISO 3166 alpha-2, upper case)
        'Hauptstr. 1, 10115 Berlin', // PostalAddress
        'Anna', // FName (the Admin contact)
        'M', // MName
        'Admin', // LName
        'anna@full.example', // Email
        '49', // PhCountryCode
        '30', // PhAreaCode
        '1234567', // PhNumber
        '11', // PhExtention
        '49', // FaxCountryCode
        '30', // FaxAreaCode
        '7654321', // FaxNumber
        '12', // FaxExtention
        START_SECONDS, // CreationDate, Unix seconds
        2, // TaxStatus (exempt)
        0, // AStatus (active)
        1, // FullyRegistred
      ]);
    });

    it('keeps the Bill, Tech and Pers blocks, with the Pers Birthday and Passport', async () => {
      const id = await addAccount(FULL);
      const account = await world.server.services.accounts.get(await providerActor(world), id);
      expect(account.contacts.billing).to.deep.include({ firstName: 'Bert', lastName: 'Bill', email: 'bert@full.example', phone: '222' });
      expect(account.contacts.technical).to.deep.include({ firstName: 'Tina', lastName: 'Tech', email: 'tina@full.example', fax: '333' });
      expect(account.contacts.personal).to.deep.include({ firstName: 'Paul', lastName: 'Pers', birthday: '1980-02-29', passport: 'C01X00T47' });
    });

    it('creates a reseller for VType "R" under the VendorAccountID given', async () => {
      const id = await addAccount({ vtype: 'R', company: 'Resell Co', admin: { fname: 'Rex', lname: 'Resell', email: 'rex@resell.example' } });
      const customer = await addAccount({ vendorAccountId: id, company: 'Below Resell', admin: { fname: 'Bea', lname: 'Low', email: 'bea@below.example' } });
      expect(((await world.fresh.db('accounts').where({ id }).first()) as { type: string }).type).to.equal('reseller');
      expect((result(await bm(rpc, 'AccountDetailsGet_API', [customer])) as unknown[])[1]).to.equal(id);
    });

    it('places the account under the caller when VendorAccountID is the integer NULL', async () => {
      const api = await accountWithApiUser(world, 'reseller', 'Null Vendor Reseller');
      const reply = await execute(rpc, { Server: 'BM', Method: 'AccountAdd_API', Params: accountAddParams({ vendorAccountId: INT_NULL, admin: { fname: 'Nu', lname: 'Ll', email: 'null@vendor.example' } }), Username: api.login, Password: api.password });
      const [id] = result(reply) as number[];
      expect((result(await bm(rpc, 'AccountDetailsGet_API', [id])) as unknown[])[1]).to.equal(api.accountId);
    });

    it('refuses a VType other than C or R with INVALID_ARGUMENT naming Params[1] (VType)', async () => {
      const params = accountAddParams({ admin: { fname: 'A', lname: 'B', email: 'ab@x.example' } });
      params[1] = 'X';
      const f = fault(await bm(rpc, 'AccountAdd_API', params));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(f.faultString).to.contain('Params[1] (VType)');
    });

    it('refuses an account without the Admin contact block, creating nothing', async () => {
      const before = await world.fresh.db('accounts').count({ n: '*' });
      const f = fault(await bm(rpc, 'AccountAdd_API', accountAddParams({ company: 'No Admin' })));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(f.faultString).to.contain('Admin contact');
      expect(await world.fresh.db('accounts').count({ n: '*' })).to.deep.equal(before);
    });
  });

  describe('AccountWithIDAdd_API', () => {
    it('creates the account under the chosen id, answers a status naming it, and AccountDetailsGet_API reads it', async () => {
      const params = [...accountAddParams({ company: 'Chosen Id Ltd', country: 'GB', admin: { fname: 'Cho', lname: 'Sen', email: 'cho@sen.example' } }), 777001];
      expect(params).to.have.length(62);
      expect(result(await bm(rpc, 'AccountWithIDAdd_API', params))).to.deep.equal({ Status: 'Operation done. 777001' });
      const details = result(await bm(rpc, 'AccountDetailsGet_API', [777001])) as unknown[];
      expect(details.slice(0, 3)).to.deep.equal([777001, 1, 'Chosen Id Ltd']);
      expect(details[8]).to.equal('GB');
    });

    it('answers the same id again with a CONFLICT fault and leaves the first account as it was', async () => {
      const params = [...accountAddParams({ company: 'Twice Ltd', admin: { fname: 'Two', lname: 'Ce', email: 'two@ce.example' } }), 777002];
      result(await bm(rpc, 'AccountWithIDAdd_API', params));
      const again = [...accountAddParams({ company: 'Usurper Ltd', admin: { fname: 'Us', lname: 'Urp', email: 'us@urp.example' } }), 777002];
      const f = fault(await bm(rpc, 'AccountWithIDAdd_API', again));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.CONFLICT);
      expect(f.faultString).to.contain('Account 777002 already exists');
      expect((result(await bm(rpc, 'AccountDetailsGet_API', [777002])) as unknown[])[2]).to.equal('Twice Ltd');
    });

    it('refuses an id beyond 32 bits, which PBA clients could not read back as an <i4>', async () => {
      const f = fault(await bm(rpc, 'AccountWithIDAdd_API', [...accountAddParams({ admin: { fname: 'Big', lname: 'Id', email: 'big@id.example' } }), 2147483648n]));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(f.faultString).to.contain('32 bits');
    });

    it('refuses AccountWithIDAdd_API without the trailing AccountID', async () => {
      const f = fault(await bm(rpc, 'AccountWithIDAdd_API', accountAddParams({ admin: { fname: 'No', lname: 'Id', email: 'no@id.example' } })));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(f.faultString).to.contain('Params[61] (AccountID)');
    });
  });

  describe('AccountUpdate_API', () => {
    it('changes the fields given, keeps those sent empty, and answers {Status}', async () => {
      const id = await addAccount(FULL);
      // AccountID, then AccountAdd_API's layout from CompanyName on: address, four contact blocks, TaxStatus.
      const update = accountAddParams({ company: 'Renamed GmbH', city: 'Hamburg', admin: { email: 'anna@renamed.example' }, taxStatus: 1 }).slice(2);
      expect(result(await bm(rpc, 'AccountUpdate_API', [id, ...update]))).to.deep.equal({ Status: 'Operation done.' });
      const d = result(await bm(rpc, 'AccountDetailsGet_API', [id])) as unknown[];
      expect(d[2]).to.equal('Renamed GmbH');
      expect(d[3]).to.equal('Hauptstr. 1');
      expect(d[5]).to.equal('Hamburg');
      expect(d.slice(10, 14)).to.deep.equal(['Anna', 'M', 'Admin', 'anna@renamed.example']);
      expect(d[23]).to.equal(1);
    });

    it('answers an update of a missing account with NOT_FOUND in PBA wording', async () => {
      const f = fault(await bm(rpc, 'AccountUpdate_API', [99999999, 'Nobody']));
      expect(f).to.deep.equal({ faultCode: XMLRPC_FAULT_CODES.NOT_FOUND, faultString: 'Table Account does not contain row with ID 99999999.' });
    });
  });

  describe('users', () => {
    let accountId: number;
    before(async () => {
      accountId = await addAccount({ company: 'Users Inc', admin: { fname: 'Uma', lname: 'Users', email: 'uma@users.example' } });
    });

    const userAdd = (login: string, password: string, extra: { first?: string; last?: string } = {}) =>
      bm(rpc, 'UserAdd_API', [
        accountId, 'ext-' + login, login, password, extra.first ?? 'Zed', 'Q', extra.last ?? 'User', `${login}@users.example`,
        '1 Road', 'Flat 2', 'Springfield', 'IL', '62701', 'US', '1', '217', '5550100', '7', '1', '217', '5550199', '8', 1,
      ]);

    it('strips the XXX prefix of UserAdd_API\'s password: the user then validates with the bare password', async () => {
      const [userId] = result(await userAdd('xxx-user', 'XXXbare-secret-1')) as number[];
      expect(userId).to.be.a('number').above(0);
      expect(result(await bm(rpc, 'UserValidate_API', ['xxx-user', 'bare-secret-1']))).to.deep.equal([accountId, 1, userId]);
      // The XXX form is stripped on validation too; the prefixed text itself is not the password.
      expect(result(await bm(rpc, 'UserValidate_API', ['xxx-user', 'XXXbare-secret-1']))).to.deep.equal([accountId, 1, userId]);
      const asPassword = fault(await execute(rpc, { Server: 'BM', Method: 'GetVersion_API', Params: [0], Username: 'xxx-user', Password: 'XXXXXXbare-secret-1' }));
      expect(asPassword.faultCode).to.equal(XMLRPC_FAULT_CODES.UNAUTHENTICATED);
      // AddFARole 1 makes an account administrator, who may call the API with the bare password.
      expect(result(await execute(rpc, { Server: 'BM', Method: 'AccountDetailsGet_API', Params: [accountId], Username: 'xxx-user', Password: 'bare-secret-1' }))).to.be.an('array');
    });

    it('answers UserDetailsGet_API with [UserID, Login, AccountID, names, Email, address, phone, fax, Status]', async () => {
      const [userId] = result(await userAdd('details-user', 'details-pass-1', { first: 'Dora' })) as number[];
      expect(result(await bm(rpc, 'UserDetailsGet_API', [userId]))).to.deep.equal([
        userId, 'details-user', accountId, 'Dora', 'Q', 'User', 'details-user@users.example',
        '1 Road', 'Flat 2', 'Springfield', 'IL', '62701', 'US', '1', '217', '5550100', '7', '1', '217', '5550199', '8',
        0, // Status: enabled
      ]);
    });

    it('answers UserDetailsGet_API of a missing user with NOT_FOUND in PBA wording', async () => {
      const f = fault(await bm(rpc, 'UserDetailsGet_API', [99999999]));
      expect(f).to.deep.equal({ faultCode: XMLRPC_FAULT_CODES.NOT_FOUND, faultString: 'Table User does not contain row with ID 99999999.' });
    });

    it('lists an account\'s users as [UserID, Login, FullName] rows sorted by the SortNo column', async () => {
      const other = await addAccount({ company: 'Sorted Ltd', admin: { fname: 'So', lname: 'Rted', email: 'so@rted.example' } });
      const add = (login: string, first: string, last: string) =>
        bm(rpc, 'UserAdd_API', [other, '', login, 'sort-pass-123', first, '', last, `${login}@sorted.example`]);
      const [z] = result(await add('zulu', 'Abe', 'Zulu')) as number[];
      const [a] = result(await add('alpha', 'Zoe', 'Alpha')) as number[];
      const [m] = result(await add('mike', 'Mia', 'Mike')) as number[];
      const byId = result(await bm(rpc, 'GetUsersListForAccount_API', [other, 1]));
      expect(byId).to.deep.equal([[z, 'zulu', 'Abe Zulu'], [a, 'alpha', 'Zoe Alpha'], [m, 'mike', 'Mia Mike']]);
      const byLogin = result(await bm(rpc, 'GetUsersListForAccount_API', [other, 2])) as unknown[][];
      expect(byLogin.map((r) => r[1])).to.deep.equal(['alpha', 'mike', 'zulu']);
      const byName = result(await bm(rpc, 'GetUsersListForAccount_API', [other, 3])) as unknown[][];
      expect(byName.map((r) => r[2])).to.deep.equal(['Abe Zulu', 'Mia Mike', 'Zoe Alpha']);
    });

    it('lists every user of an account, beyond the 500 of one service page', async () => {
      const big = await addAccount({ company: 'Crowded Ltd', admin: { fname: 'Cro', lname: 'Wded', email: 'cro@wded.example' } });
      const scope = ((await world.fresh.db('accounts').where({ id: big }).first('vendor_id')) as { vendor_id: number }).vendor_id;
      // Rows written directly: 520 scrypt hashes through UserAdd_API would take a minute.
      const rows = Array.from({ length: 520 }, (_, i) => ({
        account_id: big, login_scope_id: scope, login: `crowd-${String(i).padStart(3, '0')}`, password_hash: 'scrypt$x', email: `c${i}@crowded.example`,
        first_name: 'C', last_name: String(i), roles: 'billing', created_at: 0, updated_at: 0,
      }));
      for (let i = 0; i < rows.length; i += 100) await world.fresh.db('users').insert(rows.slice(i, i + 100));
      const listed = result(await bm(rpc, 'GetUsersListForAccount_API', [big, 2])) as unknown[][];
      expect(listed).to.have.length(520);
      expect(listed[0][1]).to.equal('crowd-000');
      expect(listed[519][1]).to.equal('crowd-519');
    });

    it('answers UserValidate_API with a wrong password with an UNAUTHENTICATED fault', async () => {
      result(await userAdd('wrong-validate', 'right-pass-123'));
      const f = fault(await bm(rpc, 'UserValidate_API', ['wrong-validate', 'wrong-pass-123']));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.UNAUTHENTICATED);
    });

    it('validates with UserForVendorValidate_API only among the users of the VendorID given', async () => {
      const [userId] = result(await userAdd('vendor-user', 'vendor-pass-123')) as number[];
      const provider = await providerActor(world);
      expect(result(await bm(rpc, 'UserForVendorValidate_API', ['vendor-user', 'XXXvendor-pass-123', provider.accountId]))).to.deep.equal([accountId, provider.accountId, userId]);
      const reseller = await accountWithApiUser(world, 'reseller', 'Other Vendor');
      const f = fault(await bm(rpc, 'UserForVendorValidate_API', ['vendor-user', 'vendor-pass-123', reseller.accountId]));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.UNAUTHENTICATED);
    });

    it('refuses a login already taken under the vendor with a CONFLICT fault', async () => {
      result(await userAdd('taken-login', 'taken-pass-123'));
      const f = fault(await userAdd('taken-login', 'other-pass-123'));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.CONFLICT);
    });
  });

  describe('audit', () => {
    /** The id of the newest audit record, so a test reads only the records its own calls wrote. */
    const lastAuditId = async (): Promise<number> => Number(((await world.fresh.db('audit_log').max({ id: 'id' })) as { id: number | null }[])[0].id ?? 0);

    it('records AccountAdd_API in audit_log with channel xmlrpc, outcome ok, the caller and the new id', async () => {
      const id = await addAccount({ company: 'Audited Ltd', admin: { fname: 'Au', lname: 'Dit', email: 'au@dit.example' } });
      const rows = (await world.fresh.db('audit_log').where({ object_type: 'account', object_id: String(id) })) as Record<string, unknown>[];
      expect(rows).to.have.length(1);
      expect(rows[0]).to.deep.include({ channel: 'xmlrpc', outcome: 'ok', operation: 'CreateAccount', actor_user_id: adminUserId, remote_addr: '127.0.0.1' });
      expect(rows[0].request_id).to.be.a('string').and.not.equal('');
    });

    it('records a failing AccountUpdate_API with outcome error and its error code', async () => {
      const id = await addAccount({ company: 'Fail Update', admin: { fname: 'Fa', lname: 'Il', email: 'fa@il.example' } });
      const update = accountAddParams({ company: 'Never Saved', admin: { email: 'not-an-email' } }).slice(2);
      const since = await lastAuditId();
      const f = fault(await bm(rpc, 'AccountUpdate_API', [id, ...update]));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      const rows = (await world.fresh.db('audit_log').where('id', '>', since)) as Record<string, unknown>[];
      expect(rows).to.have.length(1);
      expect(rows[0]).to.deep.include({ channel: 'xmlrpc', operation: 'AccountUpdate_API', outcome: 'error', error_code: 'INVALID_ARGUMENT', actor_user_id: adminUserId });
      expect(((await world.fresh.db('accounts').where({ id }).first()) as { company_name: string }).company_name).to.equal('Fail Update');
    });

    it('never writes a password into audit_log.details, whether the call succeeds or fails', async () => {
      const accountId = await addAccount({ company: 'Secret Keepers', admin: { fname: 'Se', lname: 'Cret', email: 'se@cret.example' } });
      const secret = 'Sup3r-Secret-Pa55';
      const since = await lastAuditId();
      result(await bm(rpc, 'UserAdd_API', [accountId, '', 'secret-keeper', `XXX${secret}`, 'Kee', '', 'Per', 'keeper@cret.example']));
      fault(await bm(rpc, 'UserAdd_API', [accountId, '', 'secret-keeper', `XXX${secret}`, 'Kee', '', 'Per', 'keeper@cret.example']));
      fault(await bm(rpc, 'UserAdd_API', [accountId, '', 'short-pass', 'XXXtiny7', 'Kee', '', 'Per', 'short@cret.example']));
      fault(await bm(rpc, 'UserValidate_API', ['secret-keeper', `${secret}-wrong`]));
      fault(await execute(rpc, { Server: 'BM', Method: 'GetVersion_API', Params: [0], Username: 'secret-keeper', Password: `${secret}-typo` }));
      const rows = (await world.fresh.db('audit_log').where('id', '>', since).select('details', 'operation', 'outcome')) as { details: string | null; operation: string; outcome: string }[];
      expect(rows.filter((r) => r.operation === 'CreateUser' && r.outcome === 'ok')).to.not.be.empty;
      expect(rows.filter((r) => r.operation === 'UserAdd_API' && r.outcome === 'error')).to.have.length(2);
      expect(rows.filter((r) => r.operation === 'Authenticate' && r.outcome === 'error')).to.have.length.of.at.least(1);
      const all = (await world.fresh.db('audit_log').select('details')) as { details: string | null }[];
      for (const r of all) {
        for (const s of [secret, 'tiny7', ADMIN.Password]) expect(String(r.details ?? '')).not.to.contain(s);
      }
    });
  });
});
