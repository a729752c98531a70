import { systemClock } from '../src/clock';
import { loadConfig, redactUrl } from '../src/config';
import { createDb } from '../src/db/knex';
import { migrateLatest } from '../src/db/migrate';
import { createLogger } from '../src/logger';
import { seedDemo } from '../src/seed/demo';
import { bootstrapProvider } from '../src/seed/bootstrap';
import { SecretBox, resolveSecretKey } from '../src/crypto/secret-box';

(async () => {
  const config = loadConfig();
  const db = createDb(config.databaseUrl);
  const secrets = new SecretBox(resolveSecretKey(config.secretKey, config.databaseUrl));
  const deps = { db, clock: systemClock, config, secrets, log: createLogger({ level: config.logLevel, format: config.logFormat }) };
  try {
    await migrateLatest(db);
    const boot = await bootstrapProvider(deps);
    const seed = config.seedDemo ? await seedDemo(deps) : { created: false, logins: [] };
    if (!config.seedDemo) console.log(`Provider and administrator ready in ${redactUrl(config.databaseUrl)} (SEED_DEMO=false: no demo catalog or accounts).`);
    else console.log(seed.created ? `Demo provider and catalog seeded into ${redactUrl(config.databaseUrl)}.` : 'The demo was already seeded; nothing changed.');
    if (boot.generatedPassword) console.log(`Provider administrator: login "admin", password "${boot.generatedPassword}" (shown only once)`);
    for (const l of seed.logins) console.log(`Demo ${l.role}: login "${l.login}", password "${l.password}" (shown only once)`);
  } finally {
    await db.destroy();
  }
})().catch((e: Error) => {
  console.error(`Seeding failed: ${e.message}`);
  process.exit(1);
});
