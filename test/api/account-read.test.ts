/**
 * The hot account read behind GetAccount and AccountDetailsGet_API (AccountsService.get through the thin
 * executor readStatements, src/db/knex.ts): same answer as the knex-built read it replaced, on SQLite and MariaDB.
 */
import { expect } from 'chai';
import { readStatements } from '../../src/db/knex';
import { inTransaction } from '../../src/db/transaction';
import { accountActor, makeWorld, type World } from '../helpers/world';
import { failure } from '../helpers/assertions';

let world: World;

async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  return expect.fail('expected a rejection');
}

const admin = (name: string) => ({ firstName: name, lastName: 'Admin', email: `${name.toLowerCase()}@example.com` });

describe('the hot account read (GetAccount, AccountDetailsGet_API)', () => {
  // One world for the file: every test creates its own accounts (distinct names and ids), so none sees another's.
  before(async () => {
    world = await makeWorld();
  });
  after(async () => {
    await world?.close();
  });

  it('answers every contact kind, each with its own fields, and the account columns beside them', async () => {
    const { accounts } = world.services;
    const id = await accounts.create(world.provider, {
      type: 'customer',
      companyName: 'Many Contacts',
      address: { address1: '1 Main St', city: 'Springfield', zip: '12345', country: 'US' },
      contacts: {
        admin: admin('Ann'),
        billing: { firstName: 'Bill', lastName: 'Payer', email: 'bill@example.com', phone: '555-0100' },
        technical: { firstName: 'Tess', lastName: 'Tech', email: 'tess@example.com' },
      },
    });
    const a = await accounts.get(world.provider, id);
    expect(a.accountId).to.equal(id);
    expect(a.companyName).to.equal('Many Contacts');
    expect(a.address.city).to.equal('Springfield');
    expect(a.vendorAccountId).to.equal(world.provider.accountId);
    expect(Object.keys(a.contacts).sort()).to.deep.equal(['admin', 'billing', 'technical']);
    expect(a.contacts.admin?.firstName).to.equal('Ann');
    expect(a.contacts.billing?.phone).to.equal('555-0100');
    expect(a.contacts.technical?.email).to.equal('tess@example.com');
    expect(a.balance).to.equal(0n);
    expect(a.createdAt.toISOString()).to.equal('2026-01-15T10:00:00.000Z');
  });

  it('answers the balance of the documents in the account currency, the same through get and list', async () => {
    const { accounts } = world.services;
    const id = await accounts.create(world.provider, { type: 'customer', companyName: 'Owes', currency: 'USD', contacts: { admin: admin('Owen') } });
    const other = await accounts.create(world.provider, { type: 'customer', companyName: 'Other', currency: 'USD', contacts: { admin: admin('Otto') } });
    const at = world.clock.now();
    const invoice = (accountId: number, currency: string, amount: bigint) => ({
      vendorId: world.provider.accountId,
      accountId,
      currency,
      issueDate: at,
      lines: [{ kind: 'renewal' as const, description: 'Hosting', quantity: '1', unitPrice: amount, amount }],
    });
    await inTransaction(world.deps.db, (tx) => world.services.documents.issueInvoices(tx, at, [invoice(id, 'USD', 1000n), invoice(id, 'USD', 251n), invoice(id, 'EUR', 700n), invoice(other, 'USD', 5n)]));
    await world.services.documents.issueCreditMemo(world.provider, { accountId: id, amount: 300n, description: 'Goodwill' });
    expect((await accounts.get(world.provider, id)).balance).to.equal(951n);
    expect((await accounts.get(world.provider, other)).balance).to.equal(5n);
    const listed = await accounts.list(world.provider, { search: 'Owes' });
    expect(listed.items.map((a) => [a.accountId, a.balance])).to.deep.equal([[id, 951n]]);
  });

  it('answers an account that has no contact rows at all (one row of empty contact columns from the join)', async () => {
    const id = await world.services.accounts.create(world.provider, { type: 'customer', companyName: 'Bare', contacts: { admin: admin('Bare') } });
    await world.deps.db('account_contacts').where({ account_id: id }).del();
    const a = await world.services.accounts.get(world.provider, id);
    expect(a.accountId).to.equal(id);
    expect(a.contacts).to.deep.equal({});
  });

  it('answers NOT_FOUND outside the caller subtree, for a sibling and for the parent, as for a missing id', async () => {
    const { accounts } = world.services;
    const r1 = await accountActor(world, world.provider, 'reseller', 'One');
    const r2 = await accountActor(world, world.provider, 'reseller', 'Two');
    const c1 = await accounts.create(r1, { type: 'customer', companyName: 'C1', contacts: { admin: admin('Cee') } });
    expect((await accounts.get(r1, c1)).vendorAccountId).to.equal(r1.accountId);
    expect((await accounts.get(r1, r1.accountId)).accountId).to.equal(r1.accountId);
    for (const [actor, target] of [[r2, c1], [r2, r1.accountId], [r1, world.provider.accountId], [r1, 999_999]] as const) {
      await failure(accounts.get(actor, target), 'NOT_FOUND');
    }
  });

  it('tells a sibling whose id starts with the caller id apart (path 1/500/ is not a prefix of 1/5001/)', async () => {
    const { db } = world.deps;
    const p = world.provider;
    const row = (id: number) => ({ id, vendor_id: p.accountId, type: 'reseller', reseller_kind: 'advanced', currency: 'USD', path: `${p.accountPath}${id}/`, created_at: 0, updated_at: 0 });
    await db('accounts').insert([row(500), row(5001)]);
    const actor = (id: number) => ({ ...p, accountId: id, accountPath: `${p.accountPath}${id}/`, accountType: 'reseller' as const });
    expect((await world.services.accounts.get(actor(500), 500)).accountId).to.equal(500);
    expect((await world.services.accounts.get(p, 5001)).accountId).to.equal(5001);
    await failure(world.services.accounts.get(actor(500), 5001), 'NOT_FOUND');
    await failure(world.services.accounts.get(actor(5001), 500), 'NOT_FOUND');
  });

  it('reads inside an open transaction, seeing its uncommitted writes, and waits for it on the pool', async () => {
    const { db } = world.deps;
    const id = await world.services.accounts.create(world.provider, { type: 'customer', companyName: 'Before', contacts: { admin: admin('Tx') } });
    const sql = 'SELECT company_name FROM accounts WHERE id = ?';
    const tx = await db.transaction();
    await tx('accounts').where({ id }).update({ company_name: 'Inside' });
    const [inside] = await readStatements(tx, [{ sql, bindings: [id] }]);
    expect(inside).to.deep.equal([{ company_name: 'Inside' }]);
    // A read on the pool never sees the open transaction's writes (on SQLite it waits for the one connection).
    const outside = readStatements(db, [{ sql, bindings: [id] }]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await tx.rollback();
    expect((await outside)[0]).to.deep.equal([{ company_name: 'Before' }]);
    const [after] = await readStatements(db, [{ sql, bindings: [id], raw: true }]);
    expect(after).to.deep.equal([['Before']]);
    expect(await rejection(readStatements(tx, [{ sql, bindings: [id] }]))).to.match(/already complete/);
  });

  it('keeps integers beyond 2^53 exact and refuses statements that write', async () => {
    const { db } = world.deps;
    const mysql = db.client.config.client === 'mysql2';
    const sql = mysql ? 'SELECT CAST(? AS SIGNED) AS v' : 'SELECT CAST(? AS INTEGER) AS v';
    const [[row]] = await readStatements(db, [{ sql, bindings: ['9007199254740993'] }]);
    expect(String((row as { v: unknown }).v)).to.equal('9007199254740993');
    const [[small]] = await readStatements(db, [{ sql, bindings: ['42'] }]);
    expect((small as { v: unknown }).v).to.equal(42);
    if (!mysql) expect(await rejection(readStatements(db, [{ sql: "UPDATE accounts SET company_name = 'x' WHERE id = ?", bindings: [0] }]))).to.match(/reads only/);
  });
});
