import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { BUNDLED_PLUGINS_DIR, loadPlugins } from '../../src/plugins/loader';

/** A logger that remembers its lines. */
function recordingLog() {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => void lines.push({ level, message });
  return { lines, info: at('info'), warn: at('warn'), debug: at('debug'), error: at('error') };
}

const GOOD_MANIFEST = {
  name: 'good',
  kind: 'provisioning',
  version: '1.2.0',
  sdk: '^1.0.0',
  settingsSchema: { type: 'object', properties: { host: { type: 'string' }, password: { type: 'string' } }, additionalProperties: false },
  secretSettings: ['password'],
};
const FACTORY = 'exports.default = (context) => ({ context });\n';

let root: string;

/** Writes plugins/<kind>/<name>/ with a manifest (object, raw text, or none) and files. */
function plugin(kind: string, name: string, manifest: unknown, files: Record<string, string> = { 'index.js': FACTORY }): void {
  const dir = path.join(root, kind, name);
  fs.mkdirSync(dir, { recursive: true });
  if (manifest !== undefined) fs.writeFileSync(path.join(dir, 'manifest.json'), typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
  for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), text);
}

const manifest = (name: string, extra: Record<string, unknown> = {}) => ({ ...GOOD_MANIFEST, name, ...extra });

describe('plugin loader', () => {
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'hostwright-plugins-'));
    plugin('provisioning', 'good', GOOD_MANIFEST);
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('loads the three bundled service gates, with nothing broken', () => {
    const log = recordingLog();
    const registry = loadPlugins(BUNDLED_PLUGINS_DIR, log);
    expect(registry.broken).to.deep.equal([]);
    for (const name of ['sandbox', 'script', 'webhook']) {
      const p = registry.get('provisioning', name);
      expect(p, name).to.not.equal(undefined);
      expect(p!.factory).to.be.a('function');
      expect(p!.manifest.sdk).to.equal('^1.0.0');
    }
  });

  it('loads a valid plugin with its manifest and factory, and lists it as ok', () => {
    const registry = loadPlugins(root, recordingLog());
    const good = registry.get('provisioning', 'good')!;
    expect(good.manifest.version).to.equal('1.2.0');
    expect(good.factory({ settings: { host: 'h' }, instanceName: 'x', log: recordingLog(), now: () => new Date(0) })).to.have.nested.property('context.settings.host', 'h');
    expect(registry.list()).to.deep.equal([{ kind: 'provisioning', name: 'good', version: '1.2.0', description: '', status: 'ok' }]);
  });

  const breakages: [string, () => void, RegExp][] = [
    ['has a manifest.json that is not JSON', () => plugin('provisioning', 'bad', '{ "name": "bad", '), /manifest\.json is not valid JSON/],
    ['has no manifest.json', () => plugin('provisioning', 'bad', undefined), /manifest\.json is missing/],
    ['lacks settingsSchema', () => plugin('provisioning', 'bad', { ...manifest('bad'), settingsSchema: undefined }), /settingsSchema is required/],
    ['has a field the manifest does not know', () => plugin('provisioning', 'bad', manifest('bad', { colour: 'red' })), /colour is not a manifest field/],
    ['says another name than its folder', () => plugin('provisioning', 'bad', manifest('other')), /says name 'other' but the folder is 'bad'/],
    ['says another kind than its folder', () => plugin('provisioning', 'bad', manifest('bad', { kind: 'payment' })), /says kind 'payment' but the plugin is in the 'provisioning' folder/],
    ['sits in a folder that is no plugin kind', () => plugin('mailer', 'bad', manifest('bad')), /'mailer' is not a plugin kind/],
    ['needs an SDK this server does not have', () => plugin('provisioning', 'bad', manifest('bad', { sdk: '^2.0.0' })), /needs SDK \^2\.0\.0, but this server has SDK 1\.0\.0/],
    ['gives an sdk range that is not one', () => plugin('provisioning', 'bad', manifest('bad', { sdk: 'latest' })), /sdk 'latest' is not a version range/],
    ['gives a version that is not one', () => plugin('provisioning', 'bad', manifest('bad', { version: 'one' })), /version 'one' is not a version/],
    [
      'has a settingsSchema with a misspelt keyword',
      () => plugin('provisioning', 'bad', manifest('bad', { settingsSchema: { type: 'object', properties: { port: { type: 'integer', minimun: 1 } } } })),
      /settingsSchema is not a usable JSON Schema.*minimun/,
    ],
    ['names a secret setting the schema does not declare', () => plugin('provisioning', 'bad', manifest('bad', { secretSettings: ['apiKey'] })), /secretSettings names apiKey/],
    ['has no entry module', () => plugin('provisioning', 'bad', manifest('bad'), {}), /entry module \(index\.ts or index\.js\) is missing/],
    ['points its entry outside its folder', () => plugin('provisioning', 'bad', manifest('bad', { entry: '../good/index.js' })), /outside the plugin folder/],
    ['has an entry module that throws when loaded', () => plugin('provisioning', 'bad', manifest('bad'), { 'index.js': 'throw new Error("boom at load");' }), /failed to load: boom at load/],
    ['exports no factory function', () => plugin('provisioning', 'bad', manifest('bad'), { 'index.js': 'exports.default = { provision() {} };' }), /default export is not a factory function/],
  ];
  for (const [what, make, reason] of breakages) {
    it(`reports a plugin that ${what} as broken, logs it, and still loads the others`, () => {
      make();
      const log = recordingLog();
      const registry = loadPlugins(root, log);
      expect(registry.broken).to.have.length(1);
      expect(registry.broken[0].name).to.equal('bad');
      expect(registry.broken[0].reason).to.match(reason);
      expect(log.lines.filter((l) => l.level === 'warn').map((l) => l.message)).to.satisfy((m: string[]) => m.length === 1 && /\/bad is broken/.test(m[0]));
      expect(registry.get('provisioning', 'good')).to.not.equal(undefined);
      expect(registry.get(registry.broken[0].kind, 'bad')).to.equal(undefined);
    });
  }

  it('lists ok and broken plugins together, sorted by kind and name, with the reason of each broken one', () => {
    plugin('payment', 'card', manifest('card', { kind: 'payment', sdk: '^9.0.0' }));
    const registry = loadPlugins(root, recordingLog());
    expect(registry.list().map((p) => [p.kind, p.name, p.status])).to.deep.equal([
      ['payment', 'card', 'broken'],
      ['provisioning', 'good', 'ok'],
    ]);
    expect(registry.brokenReason('payment', 'card')).to.match(/needs SDK \^9\.0\.0/);
    expect(registry.brokenReason('provisioning', 'good')).to.equal(undefined);
  });

  it('answers an empty registry and a warning, not a throw, when the plugins folder is missing', () => {
    const log = recordingLog();
    const registry = loadPlugins(path.join(root, 'nowhere'), log);
    expect(registry.list()).to.deep.equal([]);
    expect(log.lines[0]).to.deep.include({ level: 'warn' });
  });

  describe('settings check', () => {
    const sandbox = () => loadPlugins(BUNDLED_PLUGINS_DIR, recordingLog()).get('provisioning', 'sandbox')!;

    it('fills in the defaults of the settings schema without touching the caller\'s object', () => {
      const given = { fail: { provision: 'permanent' } };
      const checked = sandbox().checkSettings(given);
      expect(checked).to.deep.equal({ ok: true, value: { delayMs: 0, pendingFor: 0, fail: { provision: 'permanent' } } });
      expect(given).to.deep.equal({ fail: { provision: 'permanent' } });
    });

    it('names the setting at fault as settings.<key>, nested keys dotted', () => {
      const field = (settings: unknown) => {
        const checked = sandbox().checkSettings(settings);
        return checked.ok ? null : checked.errors[0].field;
      };
      expect(field({ delayMs: -1 })).to.equal('settings.delayMs');
      expect(field({ colour: 'red' })).to.equal('settings.colour');
      expect(field({ fail: { provision: 'sometimes' } })).to.equal('settings.fail.provision');
      expect(field(['not', 'an', 'object'])).to.equal('settings');
      expect(field(JSON.parse('{"fail": {"__proto__": {"polluted": true}}}'))).to.equal('settings.fail.__proto__');
    });

    it('names a missing required setting', () => {
      const webhook = loadPlugins(BUNDLED_PLUGINS_DIR, recordingLog()).get('provisioning', 'webhook')!;
      const checked = webhook.checkSettings({ secret: 'x'.repeat(16) });
      expect(checked.ok).to.equal(false);
      expect(!checked.ok && checked.errors[0]).to.deep.equal({ field: 'settings.url', message: 'settings.url is required.' });
    });
  });
});
