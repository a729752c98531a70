import { expect } from 'chai';
import { XMLRPC_FAULT_CODES } from '../../../src/api/api-errors';
import { serializeMethodCall, type XmlRpcValue } from '../../../src/api/xmlrpc/codec';
import { createDb, type Db } from '../../../src/db/knex';
import { accountWithApiUser, startApiWorld, type ApiWorld } from '../../helpers/api';
import { ADMIN, accountAddParams, bm, execute, fault, ok, postRaw, result } from './client';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let serial = 0;
/** AccountAdd_API parameters for a fresh customer with a unique company name. */
const newCustomer = (): { name: string; params: XmlRpcValue[] } => {
  const name = `Tx Customer ${++serial}`;
  return { name, params: accountAddParams({ company: name, admin: { fname: 'Tx', lname: `Customer${serial}`, email: `tx${serial}@tx.example` } }) };
};

/** PBA's client-held transactions: AutoCommit "No", TransactionID, CommitTransaction, RollbackTransaction, idle rollback. */
describe('XML-RPC transactions', () => {
  describe('within one transaction', () => {
    let world: ApiWorld;
    let rpc: string;
    /**
     * A second, independent connection to the same database: it sees only committed data. (On SQLite the server's
     * open transaction holds its only pooled connection, so the server itself cannot answer until it ends.)
     */
    let outside: Db;

    before(async () => {
      world = await startApiWorld();
      rpc = `${world.url}/RPC2`;
      outside = createDb(world.fresh.url);
    });
    after(async () => {
      await outside?.destroy();
      await world?.close();
    });

    const committed = async (company: string): Promise<boolean> => (await outside('accounts').where({ company_name: company }).first('id')) !== undefined;

    /** Opens a transaction with AccountAdd_API; returns its id and the new account's id. */
    const openWithAccount = async (params: XmlRpcValue[]): Promise<{ tx: string; accountId: number }> => {
      const reply = ok(await bm(rpc, 'AccountAdd_API', params, { AutoCommit: 'No' }));
      expect(reply.TransactionID).to.be.a('string').that.is.not.empty;
      return { tx: reply.TransactionID!, accountId: (reply.Result[0] as number[])[0] };
    };

    it('answers an AutoCommit "No" call with its Result and a TransactionID', async () => {
      const { name, params } = newCustomer();
      const reply = await bm(rpc, 'AccountAdd_API', params, { AutoCommit: 'No' });
      expect(reply.body).to.match(/<member><name>TransactionID<\/name><value><string>[^<]+<\/string><\/value><\/member>/);
      const { TransactionID, Result } = ok(reply);
      expect(Result[0]).to.be.an('array').with.length(1);
      expect(await committed(name)).to.equal(false);
      result(await execute(rpc, { Server: 'BM', Method: 'RollbackTransaction', TransactionID: TransactionID!, ...ADMIN }));
    });

    it('lets the calls of one transaction see each other\'s writes, hidden from everyone else until commit', async () => {
      const { name, params } = newCustomer();
      const { tx, accountId } = await openWithAccount(params);
      const details = ok(await bm(rpc, 'AccountDetailsGet_API', [accountId], { TransactionID: tx }));
      expect(details.TransactionID).to.equal(tx);
      expect((details.Result[0] as unknown[])[2]).to.equal(name);
      const [userId] = result(await bm(rpc, 'UserAdd_API', [accountId, '', `tx-user-${serial}`, 'tx-user-pass-1', 'Tx', '', 'User', `txu${serial}@tx.example`], { TransactionID: tx })) as number[];
      const users = result(await bm(rpc, 'GetUsersListForAccount_API', [accountId, 1], { TransactionID: tx }));
      expect(users).to.deep.equal([[userId, `tx-user-${serial}`, 'Tx User']]);
      expect(await committed(name)).to.equal(false);
      expect(await outside('users').where({ id: userId }).first('id')).to.equal(undefined);
      result(await execute(rpc, { Server: 'BM', Method: 'RollbackTransaction', TransactionID: tx, ...ADMIN }));
    });

    it('makes the writes visible to everyone with CommitTransaction({TransactionID})', async () => {
      const { name, params } = newCustomer();
      const { tx, accountId } = await openWithAccount(params);
      result(await bm(rpc, 'AccountUpdate_API', [accountId, `${name} (updated)`], { TransactionID: tx }));
      // CommitTransaction is a top-level XML-RPC method beside Execute, taking a struct.
      const commit = await postRaw(rpc, serializeMethodCall('CommitTransaction', [{ TransactionID: tx, ...ADMIN }]));
      expect(ok(commit).Result[0]).to.deep.equal({ Status: 'Operation done.' });
      expect(await committed(`${name} (updated)`)).to.equal(true);
      expect((result(await bm(rpc, 'AccountDetailsGet_API', [accountId])) as unknown[])[2]).to.equal(`${name} (updated)`);
    });

    it('undoes every write of the transaction with RollbackTransaction', async () => {
      const { name, params } = newCustomer();
      const { tx, accountId } = await openWithAccount(params);
      const second = newCustomer();
      const [secondId] = result(await bm(rpc, 'AccountAdd_API', second.params, { TransactionID: tx })) as number[];
      const rollback = await postRaw(rpc, serializeMethodCall('RollbackTransaction', [{ TransactionID: tx, ...ADMIN }]));
      expect(ok(rollback).Result[0]).to.deep.equal({ Status: 'Operation done.' });
      for (const id of [accountId, secondId]) {
        expect(fault(await bm(rpc, 'AccountDetailsGet_API', [id])).faultString).to.equal(`Table Account does not contain row with ID ${id}.`);
      }
      expect(await committed(name)).to.equal(false);
      expect(await committed(second.name)).to.equal(false);
    });

    it('accepts CommitTransaction and RollbackTransaction as the Method of an Execute struct too', async () => {
      const a = newCustomer();
      const first = await openWithAccount(a.params);
      result(await execute(rpc, { Server: 'BM', Method: 'CommitTransaction', TransactionID: first.tx, ...ADMIN }));
      expect(await committed(a.name)).to.equal(true);
      const b = newCustomer();
      const second = await openWithAccount(b.params);
      result(await execute(rpc, { Server: 'BM', Method: 'RollbackTransaction', TransactionID: second.tx, ...ADMIN }));
      expect(await committed(b.name)).to.equal(false);
    });

    it('answers a TransactionID that was committed with a NOT_FOUND fault', async () => {
      const { tx } = await openWithAccount(newCustomer().params);
      result(await execute(rpc, { Server: 'BM', Method: 'CommitTransaction', TransactionID: tx, ...ADMIN }));
      const f = fault(await bm(rpc, 'GetVersion_API', [0], { TransactionID: tx }));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
      expect(f.faultString).to.contain(`Transaction ${tx} is not open`);
      expect(fault(await execute(rpc, { Server: 'BM', Method: 'CommitTransaction', TransactionID: tx, ...ADMIN })).faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
    });

    it('answers another credential\'s call, commit or rollback with that TransactionID like an unknown one (NOT_FOUND)', async () => {
      const other = await accountWithApiUser(world, 'reseller', 'Tx Intruder');
      const { name, params } = newCustomer();
      const { tx, accountId } = await openWithAccount(params);
      const as = { Username: other.login, Password: other.password };
      const unknown = fault(await execute(rpc, { Server: 'BM', Method: 'GetVersion_API', Params: [0], TransactionID: '00000000-0000-4000-8000-000000000000', ...as }));
      const intrude = fault(await execute(rpc, { Server: 'BM', Method: 'AccountDetailsGet_API', Params: [accountId], TransactionID: tx, ...as }));
      expect(intrude.faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
      expect(intrude.faultString.replace(tx, 'ID')).to.equal(unknown.faultString.replace('00000000-0000-4000-8000-000000000000', 'ID'));
      expect(fault(await execute(rpc, { Server: 'BM', Method: 'CommitTransaction', TransactionID: tx, ...as })).faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
      expect(fault(await execute(rpc, { Server: 'BM', Method: 'RollbackTransaction', TransactionID: tx, ...as })).faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
      expect(fault(await bm(rpc, 'GetVersion_API', [0], { TransactionID: tx, Password: 'wrong-password' })).faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
      // The owner's transaction is untouched by all that: it still answers, and its commit still works.
      expect((result(await bm(rpc, 'AccountDetailsGet_API', [accountId], { TransactionID: tx })) as unknown[])[2]).to.equal(name);
      result(await execute(rpc, { Server: 'BM', Method: 'CommitTransaction', TransactionID: tx, ...ADMIN }));
      expect(await committed(name)).to.equal(true);
    });

    it('continues a transaction opened with Username/Password members under HTTP Basic of the same user', async () => {
      const { name, params } = newCustomer();
      const { tx, accountId } = await openWithAccount(params);
      const basic = { login: ADMIN.Username, password: ADMIN.Password };
      const details = await execute(rpc, { Server: 'BM', Method: 'AccountDetailsGet_API', Params: [accountId], TransactionID: tx }, { basic });
      expect((result(details) as unknown[])[2]).to.equal(name);
      result(await execute(rpc, { Server: 'BM', Method: 'RollbackTransaction', TransactionID: tx }, { basic }));
    });

    it('rolls back a transaction whose first call failed, so nothing waits for its idle timeout', async function () {
      this.timeout(10_000);
      const f = fault(await bm(rpc, 'AccountDetailsGet_API', [99999999], { AutoCommit: 'No' }));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
      // Had it stayed open, on SQLite it would hold the only connection for xmlrpcTransactionTimeoutSeconds.
      const started = Date.now();
      expect((result(await bm(rpc, 'AccountDetailsGet_API', [1])) as unknown[])[0]).to.equal(1);
      expect(Date.now() - started).to.be.below(5_000);
    });

    it('keeps the audit record of a failed first call in a transaction it rolled back', async () => {
      const since = Number(((await outside('audit_log').max({ id: 'id' })) as { id: number | null }[])[0].id ?? 0);
      const f = fault(await bm(rpc, 'AccountUpdate_API', [99999999, 'Nobody'], { AutoCommit: 'No' }));
      expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
      const rows = (await outside('audit_log').where('id', '>', since)) as Record<string, unknown>[];
      expect(rows).to.have.length(1);
      expect(rows[0]).to.deep.include({ channel: 'xmlrpc', operation: 'AccountUpdate_API', outcome: 'error', error_code: 'NOT_FOUND' });
    });
  });

  describe('idle timeout', () => {
    let world: ApiWorld;
    let rpc: string;

    before(async () => {
      world = await startApiWorld({ config: { xmlrpcTransactionTimeoutSeconds: 1 } });
      rpc = `${world.url}/RPC2`;
    });
    after(async () => {
      await world?.close();
    });

    it('rolls back a transaction left idle for xmlrpcTransactionTimeoutSeconds: the account does not exist', async () => {
      const reply = ok(await bm(rpc, 'AccountAdd_API', newCustomer().params, { AutoCommit: 'No' }));
      const accountId = (reply.Result[0] as number[])[0];
      await sleep(1500);
      const f = fault(await bm(rpc, 'AccountDetailsGet_API', [accountId]));
      expect(f).to.deep.equal({ faultCode: XMLRPC_FAULT_CODES.NOT_FOUND, faultString: `Table Account does not contain row with ID ${accountId}.` });
      expect(fault(await bm(rpc, 'GetVersion_API', [0], { TransactionID: reply.TransactionID! })).faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
      expect(fault(await execute(rpc, { Server: 'BM', Method: 'CommitTransaction', TransactionID: reply.TransactionID!, ...ADMIN })).faultCode).to.equal(XMLRPC_FAULT_CODES.NOT_FOUND);
    });

    it('restarts the idle clock with every call, so a busy transaction outlives the timeout', async function () {
      this.timeout(10_000);
      const { name, params } = newCustomer();
      const reply = ok(await bm(rpc, 'AccountAdd_API', params, { AutoCommit: 'No' }));
      const tx = reply.TransactionID!;
      for (let i = 0; i < 3; i++) {
        await sleep(600);
        result(await bm(rpc, 'GetVersion_API', [0], { TransactionID: tx }));
      }
      result(await execute(rpc, { Server: 'BM', Method: 'CommitTransaction', TransactionID: tx, ...ADMIN }));
      expect((result(await bm(rpc, 'AccountDetailsGet_API', [(reply.Result[0] as number[])[0]])) as unknown[])[2]).to.equal(name);
    });
  });
});
