import { expect } from 'chai';
import { ConfigError, loadConfig, redactUrl } from '../../src/config';

const env = (vars: Record<string, string>) => ({ NODE_ENV: 'test', ...vars }) as NodeJS.ProcessEnv;

describe('configuration', () => {
  it('starts from config/default.json: port 8080, embedded SQLite, legacy XML-RPC on 5224', () => {
    const c = loadConfig(env({}));
    expect(c.port).to.equal(8080);
    expect(c.databaseUrl).to.equal('sqlite:data/hostwright.sqlite');
    expect(c.xmlrpcLegacyPort).to.equal(5224);
    expect(c.bodyLimitBytes).to.equal(1048576);
    expect(c).to.include({ authFailureLimit: 10, authAddressFailureLimit: 50, authLoginFailureCeiling: 100 });
  });

  it('takes overrides from the environment', () => {
    const c = loadConfig(env({ PORT: '9090', DATABASE_URL: 'mysql://u:p@db:3306/hw', HOSTWRIGHT_SECRET_KEY: 'k'.repeat(32), XMLRPC_LEGACY_PORT: '0', LOG_LEVEL: 'debug', SEED_DEMO: 'false' }));
    expect(c).to.include({ port: 9090, databaseUrl: 'mysql://u:p@db:3306/hw', xmlrpcLegacyPort: 0, logLevel: 'debug', seedDemo: false });
  });

  const bad: [Record<string, string>, string, RegExp][] = [
    [{ PORT: 'eighty' }, 'PORT', /whole number from 0 to 65535/],
    [{ PORT: '70000' }, 'PORT', /whole number/],
    [{ DATABASE_URL: 'postgres://x/y' }, 'DATABASE_URL', /sqlite:PATH .* or mysql:\/\//],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /one of error, warn, info, debug/],
    [{ XMLRPC_LEGACY_PORT: '-1' }, 'XMLRPC_LEGACY_PORT', /whole number/],
    [{ HOSTWRIGHT_ADMIN_PASSWORD: 'short' }, 'HOSTWRIGHT_ADMIN_PASSWORD', /at least 8 characters/],
    [{ DATABASE_URL: 'mysql://u:p@db:3306/hw' }, 'HOSTWRIGHT_SECRET_KEY', /required with a MySQL/],
    [{ SEED_DEMO: 'maybe' }, 'SEED_DEMO', /true or false/],
    [{ AUTH_ADDRESS_FAILURE_LIMIT: 'many' }, 'AUTH_ADDRESS_FAILURE_LIMIT', /whole number from 1 to 100000/],
    [{ AUTH_LOGIN_FAILURE_CEILING: '0' }, 'AUTH_LOGIN_FAILURE_CEILING', /whole number from 1 to 100000/],
    // A ceiling below the per-(login, address) limit would let one address lock the login for everyone again.
    [{ AUTH_FAILURE_LIMIT: '20', AUTH_LOGIN_FAILURE_CEILING: '19' }, 'AUTH_LOGIN_FAILURE_CEILING', /at least authFailureLimit \(20\)/],
    [{ AUTH_FAILURE_LIMIT: '20', AUTH_ADDRESS_FAILURE_LIMIT: '10' }, 'AUTH_ADDRESS_FAILURE_LIMIT', /at least authFailureLimit \(20\)/],
  ];
  for (const [vars, key, message] of bad) {
    it(`refuses ${JSON.stringify(vars)} with a message naming ${key} and what is allowed`, () => {
      let error: unknown;
      try {
        loadConfig(env(vars));
      } catch (e) {
        error = e;
      }
      expect(error).to.be.instanceOf(ConfigError);
      expect((error as ConfigError).key).to.equal(key);
      expect((error as ConfigError).message).to.match(message);
    });
  }

  it('refuses a config file with a key it does not know, naming the key', () => {
    const fs = require('node:fs') as typeof import('node:fs');
    const file = require('node:path').join(require('node:os').tmpdir(), `hw-config-${process.pid}.json`);
    fs.writeFileSync(file, JSON.stringify({ prot: 9000 }));
    try {
      expect(() => loadConfig(env({ HOSTWRIGHT_CONFIG: file }))).to.throw(ConfigError, /unknown key\(s\) prot/);
    } finally {
      fs.unlinkSync(file);
    }
  });

  it('never prints a database password', () => {
    expect(redactUrl('mysql://hw:s3cret@db:3306/hw')).to.equal('mysql://hw:***@db:3306/hw');
    let error: unknown;
    try {
      loadConfig(env({ DATABASE_URL: 'mysql://hw:s3cret@db', HOSTWRIGHT_SECRET_KEY: 'k'.repeat(32) }));
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).not.to.contain('s3cret');
  });
});
