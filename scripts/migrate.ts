import { loadConfig, redactUrl } from '../src/config';
import { createDb } from '../src/db/knex';
import { migrateLatest } from '../src/db/migrate';

(async () => {
  const config = loadConfig();
  const db = createDb(config.databaseUrl);
  try {
    const applied = await migrateLatest(db);
    console.log(applied.length ? `Applied to ${redactUrl(config.databaseUrl)}:\n  ${applied.join('\n  ')}` : `${redactUrl(config.databaseUrl)} is up to date.`);
  } finally {
    await db.destroy();
  }
})().catch((e: Error) => {
  console.error(`Migration failed: ${e.message}`);
  process.exit(1);
});
