import { expect } from 'chai';
import type { Db } from '../../src/db/knex';
import { migrateLatest } from '../../src/db/migrate';
import { insertBatched, MAX_ROWS_PER_STATEMENT } from '../../src/db/batch';
import { freshDatabase, type FreshDb } from '../helpers/db';

type Shape = Record<string, string[]>;

async function shapeOf(db: Db): Promise<Shape> {
  const isMysql = db.client.config.client === 'mysql2';
  const tables: string[] = isMysql
    ? ((await db.raw('SHOW TABLES'))[0] as Record<string, string>[]).map((r) => Object.values(r)[0])
    : ((await db.raw("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")) as { name: string }[]).map((r) => r.name);
  const shape: Shape = {};
  for (const t of tables.filter((n) => !n.startsWith('knex_')).sort()) {
    shape[t] = Object.keys(await db(t).columnInfo()).sort();
  }
  return shape;
}

describe('migrations', () => {
  let sqlite: FreshDb;
  let mysql: FreshDb;
  before(async () => {
    sqlite = await freshDatabase('sqlite');
    mysql = await freshDatabase('mysql');
  });
  after(async () => {
    await sqlite?.drop();
    await mysql?.drop();
  });

  it('produce the same tables and columns on SQLite and MariaDB', async () => {
    const a = await shapeOf(sqlite.db);
    const b = await shapeOf(mysql.db);
    expect(Object.keys(a)).to.include.members(['accounts', 'users', 'audit_log', 'events', 'plans', 'plan_periods', 'resource_rates']);
    expect(a).to.deep.equal(b);
  });

  it('are idempotent: running them again applies nothing', async () => {
    expect(await migrateLatest(sqlite.db)).to.deep.equal([]);
    expect(await migrateLatest(mysql.db)).to.deep.equal([]);
  });

  for (const kind of ['sqlite', 'mysql'] as const) {
    it(`keep the audit log append-only on ${kind}: updates and deletes are refused by the database`, async () => {
      const db = kind === 'sqlite' ? sqlite.db : mysql.db;
      await db('audit_log').insert({ at: 1, channel: 'system', operation: 'Test', outcome: 'ok' });
      let updateError: Error | undefined;
      await db('audit_log').update({ outcome: 'error' }).catch((e: Error) => (updateError = e));
      let deleteError: Error | undefined;
      await db('audit_log').del().catch((e: Error) => (deleteError = e));
      expect(updateError?.message).to.match(/append-only/);
      expect(deleteError?.message).to.match(/append-only/);
      expect(await db('audit_log').where({ operation: 'Test', outcome: 'ok' })).to.have.length(1);
    });

    it(`insert 1,234 rows in statements of at most ${MAX_ROWS_PER_STATEMENT} on ${kind}`, async () => {
      const db = kind === 'sqlite' ? sqlite.db : mysql.db;
      const statements: string[] = [];
      const onQuery = (q: { sql: string }) => {
        if (/^insert/i.test(q.sql)) statements.push(q.sql);
      };
      db.on('query', onQuery);
      const rows = Array.from({ length: 1234 }, (_, i) => ({ name: `batch-${i}`, value: String(i) }));
      await insertBatched(db, 'system_settings', rows);
      db.off('query', onQuery);
      expect(statements).to.have.length(3);
      const [{ n }] = (await db('system_settings').where('name', 'like', 'batch-%').count({ n: '*' })) as { n: number | string }[];
      expect(Number(n)).to.equal(1234);
    });

    it(`store money beyond 2^53 exactly on ${kind}`, async () => {
      const db = kind === 'sqlite' ? sqlite.db : mysql.db;
      const [account] = (await db('accounts').insert({ type: 'provider', currency: 'USD', path: '/x/', created_at: 0, updated_at: 0 })) as number[];
      const [template] = (await db('service_templates').insert({ vendor_id: account, name: 'T', service_gate: 'sandbox', created_at: 0 })) as number[];
      const [plan] = (await db('plans').insert({ vendor_id: account, template_id: template, name: 'P', currency: 'USD', created_at: 0, updated_at: 0 })) as number[];
      await db('plan_periods').insert({ plan_id: plan, duration: 1, unit: 'month', setup_fee: '1234567890123456789' });
      const row = (await db('plan_periods').where({ plan_id: plan }).first()) as { setup_fee: unknown; plan_id: unknown };
      expect(String(row.setup_fee)).to.equal('1234567890123456789');
      expect(row.plan_id).to.be.a('number');
    });
  }
});
