import { expect } from 'chai';
import { XMLRPC_FAULT_CODES } from '../../../src/api/api-errors';
import { VERSION } from '../../../src/version';
import { ADMIN_PASSWORD, accountWithApiUser, startApiWorld, type ApiWorld } from '../../helpers/api';
import { ADMIN, accountAddParams, bm, execute, fault, ok, postRaw, pyMember, pythonExecuteXml, result } from './client';

/** The Execute envelope: its forms, its credentials, its answers and its faults, over real HTTP. */
describe('XML-RPC Execute envelope', () => {
  let world: ApiWorld;
  let rpc: string;
  let accountId: number;

  before(async () => {
    world = await startApiWorld({ legacyPort: true });
    rpc = `${world.url}/RPC2`;
    accountId = (await accountWithApiUser(world, 'customer', 'Envelope Co')).accountId;
  });
  after(async () => {
    await world?.close();
  });

  describe('calls and result shapes', () => {
    it('answers GetVersion_API with {Result: [[version]]}', async () => {
      const reply = await bm(rpc, 'GetVersion_API', [0]);
      expect(reply.value).to.deep.equal({ Result: [[`Hostwright ${VERSION}`]] });
      expect(reply.headers.get('content-type')).to.match(/^text\/xml/);
    });

    it('answers an item method with one positional array in Result[0]', async () => {
      const row = result(await bm(rpc, 'AccountDetailsGet_API', [accountId])) as unknown[];
      expect(row).to.be.an('array').with.length(26);
      expect(row[0]).to.equal(accountId);
      expect(row[2]).to.equal('Envelope Co');
    });

    it('answers a list method with an array of row arrays in Result[0]', async () => {
      const rows = result(await bm(rpc, 'GetUsersListForAccount_API', [accountId, 1])) as unknown[][];
      expect(rows).to.have.length(1);
      expect(rows[0]).to.deep.equal([rows[0][0], 'envelopeco-api', 'Envelope Co Api']);
    });

    it('answers a status method with {Status: "Operation done."} in Result[0]', async () => {
      const reply = await bm(rpc, 'AccountUpdate_API', [accountId, 'Envelope Company']);
      expect(result(reply)).to.deep.equal({ Status: 'Operation done.' });
    });

    it('accepts the exact bytes of PBA\'s Python osaAPI client', async () => {
      const xml = pythonExecuteXml(
        pyMember('Server', '<string>BM</string>') +
          pyMember('Method', '<string>AccountDetailsGet_API</string>') +
          pyMember('Params', `<array><data>\n<value><int>${accountId}</int></value>\n</data></array>`) +
          pyMember('Username', '<string>admin</string>') +
          pyMember('Password', `<string>${ADMIN_PASSWORD}</string>`),
      );
      const row = result(await postRaw(rpc, xml)) as unknown[];
      expect(row[0]).to.equal(accountId);
      expect(row[2]).to.equal('Envelope Company');
    });

    it('accepts untyped <value>text</value> strings and <i4> integers, as PHP and Perl PBA clients write them', async () => {
      const xml =
        '<?xml version="1.0" encoding="UTF-8"?><methodCall><methodName>Execute</methodName><params><param><value><struct>' +
        '<member><name>Server</name><value>BM</value></member>' +
        '<member><name>Method</name><value>AccountDetailsGet_API</value></member>' +
        `<member><name>Params</name><value><array><data><value><i4>${accountId}</i4></value></data></array></value></member>` +
        `<member><name>Username</name><value>admin</value></member><member><name>Password</name><value>${ADMIN_PASSWORD}</value></member>` +
        '</struct></value></param></params></methodCall>';
      expect((result(await postRaw(rpc, xml)) as unknown[])[0]).to.equal(accountId);
    });

    // xmlrpclib writes an empty list as "<array><data>\n</data></array>": white space between elements is layout.
    it('accepts Params: [] as Python writes it (<array><data>\\n</data></array>)', async () => {
      const xml = pythonExecuteXml(
        pyMember('Server', '<string>BM</string>') +
          pyMember('Method', '<string>GetVersion_API</string>') +
          pyMember('Params', '<array><data>\n</data></array>') +
          pyMember('Username', '<string>admin</string>') +
          pyMember('Password', `<string>${ADMIN_PASSWORD}</string>`),
      );
      expect(result(await postRaw(rpc, xml))).to.deep.equal([`Hostwright ${VERSION}`]);
    });

    it('accepts a call without a Params member as no parameters', async () => {
      const reply = await execute(rpc, { Server: 'BM', Method: 'GetVersion_API', ...ADMIN });
      expect(result(reply)).to.deep.equal([`Hostwright ${VERSION}`]);
    });

    it('accepts the older envelope {Object: "BM_Object", Container: "BM_Container", Method, Params}', async () => {
      const reply = await execute(rpc, { Object: 'BM_Object', Container: 'BM_Container', Method: 'AccountDetailsGet_API', Params: [accountId], ...ADMIN });
      expect((result(reply) as unknown[])[0]).to.equal(accountId);
    });

    it('ignores a stray methodName member in the Execute struct', async () => {
      const reply = await bm(rpc, 'AccountDetailsGet_API', [accountId], { methodName: 'Execute' });
      expect((result(reply) as unknown[])[0]).to.equal(accountId);
    });

    it('accepts the integer NULL -2147483648 in an optional integer slot (GetUsersListForAccount_API SortNo)', async () => {
      const rows = result(await bm(rpc, 'GetUsersListForAccount_API', [accountId, -2147483648])) as unknown[][];
      expect(rows.map((r) => r[1])).to.deep.equal(['envelopeco-api']);
    });

    it('answers dates as Unix seconds in an <i4> (AccountDetailsGet_API CreationDate)', async () => {
      const before = Math.floor(Date.now() / 1000);
      const id = (result(await bm(rpc, 'AccountAdd_API', accountAddParams({ admin: { fname: 'Dee', lname: 'Date', email: 'dee@date.example' } }))) as number[])[0];
      const after = Math.ceil(Date.now() / 1000);
      const reply = await bm(rpc, 'AccountDetailsGet_API', [id]);
      const created = (result(reply) as unknown[])[22];
      expect(created).to.be.a('number').within(before, after);
      expect(reply.body).to.contain(`<i4>${String(created)}</i4>`);
      expect(reply.body).not.to.contain('dateTime.iso8601');
    });
  });

  describe('credentials', () => {
    it('accepts credentials as HTTP Basic when the struct carries none', async () => {
      const reply = await execute(rpc, { Server: 'BM', Method: 'AccountDetailsGet_API', Params: [accountId] }, { basic: { login: 'admin', password: ADMIN_PASSWORD } });
      expect((result(reply) as unknown[])[0]).to.equal(accountId);
    });

    it('accepts the credentials of an account\'s API user and answers within its own account', async () => {
      const api = await accountWithApiUser(world, 'reseller', 'Cred Reseller');
      const reply = await execute(rpc, { Server: 'BM', Method: 'AccountDetailsGet_API', Params: [api.accountId], Username: api.login, Password: api.password });
      expect((result(reply) as unknown[])[2]).to.equal('Cred Reseller');
      const outside = fault(await execute(rpc, { Server: 'BM', Method: 'AccountDetailsGet_API', Params: [accountId], Username: api.login, Password: api.password }));
      expect(outside.faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
      expect(outside.faultString).to.equal(`Table Account does not contain row with ID ${accountId}.`);
    });

    it('refuses a call without credentials with an UNAUTHENTICATED fault', async () => {
      const f = fault(await execute(rpc, { Server: 'BM', Method: 'GetVersion_API', Params: [0] }));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.UNAUTHENTICATED);
      expect(f.faultString).to.match(/credentials/i);
    });

    it('refuses a wrong password with an UNAUTHENTICATED fault, as members and as HTTP Basic', async () => {
      const api = await accountWithApiUser(world, 'customer', 'Wrong Pw');
      const asMembers = fault(await execute(rpc, { Server: 'BM', Method: 'GetVersion_API', Params: [0], Username: api.login, Password: 'not-the-password' }));
      expect(asMembers.faultCode).to.equal(XMLRPC_FAULT_CODES.UNAUTHENTICATED);
      const asBasic = fault(await execute(rpc, { Server: 'BM', Method: 'GetVersion_API', Params: [0] }, { basic: { login: api.login, password: 'not-the-password' } }));
      expect(asBasic.faultCode).to.equal(XMLRPC_FAULT_CODES.UNAUTHENTICATED);
      expect(asBasic.faultString).to.equal(asMembers.faultString);
    });
  });

  describe('faults', () => {
    it('writes faultString as base64 of UTF-8 text on the wire, with an <i4> faultCode', async () => {
      const reply = await bm(rpc, 'AccountDetailsGet_API', [99999999]);
      const m = /<name>faultString<\/name><value><string>([^<]*)<\/string>/.exec(reply.body);
      expect(m, reply.body).to.not.equal(null);
      expect(m![1]).to.match(/^[A-Za-z0-9+/]+={0,2}$/);
      expect(Buffer.from(m![1], 'base64').toString('utf8')).to.equal('Table Account does not contain row with ID 99999999.');
      expect(reply.body).to.contain(`<name>faultCode</name><value><i4>${XMLRPC_FAULT_CODES.NOT_FOUND}</i4></value>`);
      expect(reply.status).to.equal(200);
    });

    it('answers a missing account with NOT_FOUND reading "Table Account does not contain row with ID 99999999."', async () => {
      const f = fault(await bm(rpc, 'AccountDetailsGet_API', [99999999]));
      expect(f).to.deep.equal({ faultCode: XMLRPC_FAULT_CODES.NOT_FOUND, faultString: 'Table Account does not contain row with ID 99999999.' });
    });

    it('uses the documented faultCode table (1001 ... 1009)', () => {
      expect(XMLRPC_FAULT_CODES).to.deep.equal({
        INVALID_ARGUMENT: 1001,
        UNAUTHENTICATED: 1002,
        NOT_FOUND: 1003,
        NOT_ALLOWED: 1004,
        CONFLICT: 1005,
        PAYMENT_DECLINED: 1006,
        PROVIDER_ERROR: 1007,
        UNAVAILABLE: 1008,
        INTERNAL: 1009,
      });
    });

    it('names the parameter at fault in an INVALID_ARGUMENT fault', async () => {
      const f = fault(await bm(rpc, 'AccountDetailsGet_API', ['not a number']));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(f.faultString).to.contain('Params[0] (AccountID)');
    });

    it('refuses an unknown Server with an INVALID_ARGUMENT fault naming it', async () => {
      const f = fault(await execute(rpc, { Server: 'NOSUCHGATE', Method: 'GetVersion_API', Params: [0], ...ADMIN }));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(f.faultString).to.contain("Unknown Server 'NOSUCHGATE'");
    });

    it('refuses an unknown Method with an INVALID_ARGUMENT fault naming it', async () => {
      const f = fault(await bm(rpc, 'NoSuchMethod_API', [1]));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(f.faultString).to.contain('Server BM has no method NoSuchMethod_API');
    });

    it('refuses a struct without a Method member', async () => {
      const f = fault(await execute(rpc, { Server: 'BM', Params: [1], ...ADMIN }));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(f.faultString).to.contain('Method');
    });

    it('refuses a methodCall other than Execute', async () => {
      const xml = '<?xml version="1.0"?><methodCall><methodName>system.listMethods</methodName><params><param><value><struct></struct></value></param></params></methodCall>';
      const f = fault(await postRaw(rpc, xml));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      expect(f.faultString).to.contain('Unknown method system.listMethods');
    });

    it('has no method left answering UNAVAILABLE: SubscriptionTakeFromCreditHold_API (the last one) is built', async () => {
      const f = fault(await bm(rpc, 'SubscriptionTakeFromCreditHold_API', [999_999, 0, '']));
      expect(f).to.deep.equal({ faultCode: XMLRPC_FAULT_CODES.NOT_FOUND, faultString: 'Table Subscription does not contain row with ID 999999.' });
    });
  });

  describe('the legacy port and HTTP', () => {
    it('answers the same call on the legacy listener (world.legacyUrl)', async () => {
      expect(world.legacyUrl).to.match(/^http:\/\/127\.0\.0\.1:\d+\/RPC2$/);
      const main = await bm(rpc, 'AccountDetailsGet_API', [accountId]);
      const legacy = await bm(world.legacyUrl!, 'AccountDetailsGet_API', [accountId]);
      expect(ok(legacy)).to.deep.equal(ok(main));
    });

    it('answers GET with 405 and Allow: POST, on /RPC2 and on the legacy listener', async () => {
      for (const url of [rpc, world.legacyUrl!]) {
        const reply = await postRaw(url, undefined, { method: 'GET' });
        expect(reply.status, url).to.equal(405);
        expect(reply.headers.get('allow')).to.equal('POST');
        expect(fault(reply).faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
      }
    });

    it('answers any other path of the legacy listener with 404', async () => {
      const res = await fetch(world.legacyUrl!.replace('/RPC2', '/other'), { method: 'POST', body: '<x/>' });
      expect(res.status).to.equal(404);
      await res.text();
    });
  });
});
