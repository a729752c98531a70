import { ConfigError, loadConfig, redactUrl } from './config';
import { startServer } from './server';

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
  const server = await startServer(config);
  const log = server.services.deps.log;
  const lines = [
    '',
    `Hostwright is running (database ${redactUrl(config.databaseUrl)}, ready in ${Date.now() - started} ms)`,
    `  Console        ${server.url}/`,
    `  SOAP billing   ${server.url}/soap/billing   (WSDL: ${server.url}/soap/billing?wsdl)`,
    `  SOAP provisioning ${server.url}/soap/provisioning   (WSDL: ${server.url}/soap/provisioning?wsdl)`,
    `  XML-RPC        ${server.url}/RPC2${server.legacyXmlRpcUrl ? `  and ${server.legacyXmlRpcUrl}` : ''}`,
    `  Health         ${server.url}/healthz`,
  ];
  if (server.adminPassword) lines.push('', `  Provider administrator: login "admin", password "${server.adminPassword}" (generated; shown only once — set HOSTWRIGHT_ADMIN_PASSWORD to choose it)`);
  else lines.push('', '  Provider administrator: login "admin" (password from HOSTWRIGHT_ADMIN_PASSWORD, or the one printed at first start)');
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
  console.error('Hostwright failed to start:', (e as Error).message);
  process.exit(1);
});
