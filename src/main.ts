import { ConfigError, loadConfig, redactUrl } from './config';
import { safeErrorMessage } from './logger';
import { StartError, startServer } from './server';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`Hostwright cannot start: ${e.message}`);
      process.exit(2);
    }
    throw e;
  }
  const started = Date.now();
  let server;
  try {
    server = await startServer(config);
  } catch (e) {
    const err = e instanceof StartError ? e : new StartError(e);
    console.error(`Hostwright failed to start: ${safeErrorMessage(err.cause)}`);
    if (err.adminPassword) console.error(`The provider administrator was created: login "admin", password "${err.adminPassword}" (shown only once).`);
    process.exit(1);
  }
  const log = server.services.deps.log;
  const u = server.publicUrl;
  const lines = [
    '',
    `Hostwright is running (database ${redactUrl(config.databaseUrl)}, ready in ${Date.now() - started} ms)`,
    `  SOAP billing       ${u}/soap/billing        WSDL: ${u}/soap/billing?wsdl`,
    `  SOAP provisioning  ${u}/soap/provisioning   WSDL: ${u}/soap/provisioning?wsdl`,
    `  XML-RPC (PBA)      ${u}/RPC2${server.legacyXmlRpcUrl ? `   and ${server.legacyXmlRpcUrl}` : ''}`,
    `  Health             ${u}/healthz`,
    `  Console            ${u}/console   (provider and reseller administrators)`,
  ];
  if (server.adminPassword) {
    lines.push('', `  Provider administrator: login "admin", password "${server.adminPassword}" (generated; shown only once — set HOSTWRIGHT_ADMIN_PASSWORD before the first start to choose it)`);
  } else {
    lines.push('', '  Provider administrator: login "admin" (the password set at first start)');
  }
  for (const l of server.seed.logins) lines.push(`  Demo ${l.role}: login "${l.login}", password "${l.password}" (shown only once)`);
  // Printed to stdout on purpose, not the log: the generated passwords must never reach a log file.
  process.stdout.write(lines.join('\n') + '\n\n');
  log.info('server started', { url: server.url });
  const stop = async (signal: string) => {
    log.info('shutting down', { signal });
    await server.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((e: unknown) => {
  console.error('Hostwright failed to start:', safeErrorMessage(e));
  process.exit(1);
});
