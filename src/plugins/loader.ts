import fs from 'node:fs';
import path from 'node:path';
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import { SDK_VERSION, type PluginFactory, type PluginKind, type PluginLogger, type PluginManifest } from './sdk';
import { isRange, isVersion, satisfies } from './semver';

export const PLUGIN_KINDS: readonly PluginKind[] = ['provisioning', 'payment', 'registrar', 'fraud'];

/** The bundled plugins' folder (repository root /plugins). */
export const BUNDLED_PLUGINS_DIR = path.resolve(__dirname, '..', '..', 'plugins');

export interface SettingsError {
  /** `settings.<key>` (dotted for nested keys), or `settings` for the object as a whole. */
  field: string;
  message: string;
}

export type SettingsCheck = { ok: true; value: Record<string, unknown> } | { ok: false; errors: SettingsError[] };

export interface LoadedPlugin {
  kind: PluginKind;
  name: string;
  dir: string;
  manifest: PluginManifest;
  factory: PluginFactory;
  /** Validates instance settings against the manifest's settingsSchema; the value has the schema's defaults filled in. */
  checkSettings(settings: unknown): SettingsCheck;
}

export interface BrokenPlugin {
  kind: string;
  name: string;
  dir: string;
  reason: string;
}

export interface PluginStatus {
  kind: string;
  name: string;
  version: string | null;
  description: string;
  status: 'ok' | 'broken';
  reason?: string;
}

export interface PluginRegistry {
  readonly plugins: readonly LoadedPlugin[];
  readonly broken: readonly BrokenPlugin[];
  /** A plugin that loaded; undefined when it is missing or broken. */
  get(kind: string, name: string): LoadedPlugin | undefined;
  /** Why a plugin did not load, if it is broken. */
  brokenReason(kind: string, name: string): string | undefined;
  list(): PluginStatus[];
}

type LoaderLog = Pick<PluginLogger, 'info' | 'warn'>;

const MANIFEST_SCHEMA = {
  type: 'object',
  required: ['name', 'kind', 'version', 'sdk', 'settingsSchema'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' },
    kind: { enum: [...PLUGIN_KINDS] },
    version: { type: 'string', minLength: 1 },
    sdk: { type: 'string', minLength: 1 },
    description: { type: 'string' },
    entry: { type: 'string', minLength: 1 },
    settingsSchema: {
      type: 'object',
      required: ['type'],
      properties: { type: { const: 'object' } },
    },
    secretSettings: { type: 'array', items: { type: 'string', minLength: 1 }, uniqueItems: true },
  },
};

const manifestAjv = new Ajv2020({ allErrors: true, strict: true });
const validateManifest = manifestAjv.compile(MANIFEST_SCHEMA);

/** One Ajv for every plugin's settings schema: unknown keywords are refused so a typo breaks the plugin, not the data. */
function settingsAjv(): Ajv2020 {
  return new Ajv2020({
    allErrors: true,
    useDefaults: true,
    strictSchema: true,
    strictNumbers: true,
    strictTypes: false,
    strictTuples: false,
    strictRequired: false,
    logger: false,
    formats: {
      uri: (s: string) => URL.canParse(s),
      email: /^[^\s@]+@[^\s@]+\.[^\s@]+$/,
    },
  });
}

function describeAjvError(e: ErrorObject): SettingsError {
  const parts = e.instancePath.split('/').filter(Boolean).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let message = e.message ?? 'is not valid';
  if (e.keyword === 'required') {
    parts.push(String((e.params as { missingProperty: string }).missingProperty));
    message = 'is required';
  } else if (e.keyword === 'additionalProperties') {
    parts.push(String((e.params as { additionalProperty: string }).additionalProperty));
    message = 'is not a setting of this plugin';
  } else if (e.keyword === 'enum') {
    message = `must be one of ${((e.params as { allowedValues: unknown[] }).allowedValues ?? []).map((v) => JSON.stringify(v)).join(', ')}`;
  }
  const field = ['settings', ...parts].join('.');
  return { field, message: `${field} ${message}.` };
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** A settings key such as __proto__ must never reach an object's prototype: refused wherever it appears. */
function forbiddenKey(value: unknown, at: string): string | null {
  if (value === null || typeof value !== 'object') return null;
  for (const [k, v] of Object.entries(value)) {
    if (FORBIDDEN_KEYS.has(k)) return `${at}.${k}`;
    const deeper = forbiddenKey(v, `${at}.${k}`);
    if (deeper) return deeper;
  }
  return null;
}

function settingsChecker(validate: ValidateFunction): LoadedPlugin['checkSettings'] {
  return (settings) => {
    if (settings === null || typeof settings !== 'object' || Array.isArray(settings)) {
      return { ok: false, errors: [{ field: 'settings', message: 'settings must be an object.' }] };
    }
    const bad = forbiddenKey(settings, 'settings');
    if (bad) return { ok: false, errors: [{ field: bad, message: `${bad} is not an allowed name.` }] };
    // Defaults are written into the value, so validate a copy and leave the caller's object alone.
    const value = structuredClone(settings) as Record<string, unknown>;
    if (validate(value)) return { ok: true, value };
    return { ok: false, errors: (validate.errors ?? []).map(describeAjvError) };
  };
}

function describeManifestError(e: ErrorObject | undefined): string {
  if (!e) return 'unknown error';
  const params = e.params as { missingProperty?: string; additionalProperty?: string };
  const where = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  if (e.keyword === 'required') return `${where ? where + '.' : ''}${params.missingProperty} is required`;
  if (e.keyword === 'additionalProperties') return `${where ? where + '.' : ''}${params.additionalProperty} is not a manifest field`;
  return `${where || 'manifest'} ${e.message ?? 'is not valid'}`;
}

class Registry implements PluginRegistry {
  constructor(
    readonly plugins: LoadedPlugin[],
    readonly broken: BrokenPlugin[],
  ) {}

  get(kind: string, name: string): LoadedPlugin | undefined {
    return this.plugins.find((p) => p.kind === kind && p.name === name);
  }

  brokenReason(kind: string, name: string): string | undefined {
    return this.broken.find((p) => p.kind === kind && p.name === name)?.reason;
  }

  list(): PluginStatus[] {
    const rows: PluginStatus[] = [
      ...this.plugins.map((p) => ({ kind: p.kind, name: p.name, version: p.manifest.version, description: p.manifest.description ?? '', status: 'ok' as const })),
      ...this.broken.map((b) => ({ kind: b.kind, name: b.name, version: null, description: '', status: 'broken' as const, reason: b.reason })),
    ];
    return rows.sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
  }
}

class BrokenPluginError extends Error {}

function subfolders(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith('.') && d.name !== 'node_modules')
    .map((d) => d.name)
    .sort();
}

function loadOne(kind: string, name: string, dir: string): LoadedPlugin {
  if (!(PLUGIN_KINDS as readonly string[]).includes(kind)) throw new BrokenPluginError(`'${kind}' is not a plugin kind (one of ${PLUGIN_KINDS.join(', ')}).`);
  const manifestFile = path.join(dir, 'manifest.json');
  if (!fs.existsSync(manifestFile)) throw new BrokenPluginError('manifest.json is missing.');
  let manifest: PluginManifest;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as PluginManifest;
  } catch (e) {
    throw new BrokenPluginError(`manifest.json is not valid JSON: ${(e as Error).message}`);
  }
  if (!validateManifest(manifest)) {
    throw new BrokenPluginError(`manifest.json is not valid: ${describeManifestError(validateManifest.errors?.[0])}.`);
  }
  if (manifest.kind !== kind) throw new BrokenPluginError(`manifest.json says kind '${manifest.kind}' but the plugin is in the '${kind}' folder.`);
  if (manifest.name !== name) throw new BrokenPluginError(`manifest.json says name '${manifest.name}' but the folder is '${name}'.`);
  if (!isVersion(manifest.version)) throw new BrokenPluginError(`manifest.json version '${manifest.version}' is not a version such as 1.0.0.`);
  if (!isRange(manifest.sdk)) throw new BrokenPluginError(`manifest.json sdk '${manifest.sdk}' is not a version range such as ^1.0.0.`);
  if (!satisfies(SDK_VERSION, manifest.sdk)) throw new BrokenPluginError(`the plugin needs SDK ${manifest.sdk}, but this server has SDK ${SDK_VERSION}.`);

  let validate: ValidateFunction;
  try {
    validate = settingsAjv().compile(manifest.settingsSchema);
  } catch (e) {
    throw new BrokenPluginError(`settingsSchema is not a usable JSON Schema: ${(e as Error).message}`);
  }
  const declared = Object.keys((manifest.settingsSchema.properties as Record<string, unknown> | undefined) ?? {});
  const undeclared = (manifest.secretSettings ?? []).filter((s) => !declared.includes(s));
  if (undeclared.length) throw new BrokenPluginError(`secretSettings names ${undeclared.join(', ')}, which settingsSchema.properties does not declare.`);

  const candidates = manifest.entry ? [manifest.entry] : ['index.ts', 'index.js'];
  const entry = candidates.map((c) => path.resolve(dir, c)).find((f) => fs.existsSync(f));
  if (!entry) throw new BrokenPluginError(`the entry module (${candidates.join(' or ')}) is missing.`);
  const rel = path.relative(dir, entry);
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new BrokenPluginError(`the entry module ${manifest.entry ?? ''} lies outside the plugin folder.`);
  let mod: unknown;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(entry);
  } catch (e) {
    throw new BrokenPluginError(`the entry module failed to load: ${(e as Error).message?.split('\n')[0] ?? String(e)}`);
  }
  const exported = (mod as { default?: unknown } | null)?.default ?? mod;
  if (typeof exported !== 'function') throw new BrokenPluginError('the entry module\'s default export is not a factory function.');

  return { kind: kind as PluginKind, name, dir, manifest, factory: exported as PluginFactory, checkSettings: settingsChecker(validate) };
}

/**
 * Discovers plugins/<kind>/<name>/manifest.json under `dir`, validates each one and loads its entry module.
 * A broken plugin never stops the server: it is listed in `broken` with its reason and logged.
 */
export function loadPlugins(dir: string, log: LoaderLog): PluginRegistry {
  const plugins: LoadedPlugin[] = [];
  const broken: BrokenPlugin[] = [];
  if (!fs.existsSync(dir)) {
    log.warn(`No plugins folder at ${dir}: no plugins are loaded.`, { dir });
    return new Registry(plugins, broken);
  }
  for (const kind of subfolders(dir)) {
    for (const name of subfolders(path.join(dir, kind))) {
      const pluginDir = path.join(dir, kind, name);
      try {
        plugins.push(loadOne(kind, name, pluginDir));
      } catch (e) {
        const reason = e instanceof BrokenPluginError ? e.message : `unexpected error: ${(e as Error).message}`;
        broken.push({ kind, name, dir: pluginDir, reason });
        log.warn(`Plugin ${kind}/${name} is broken and was not loaded: ${reason}`, { plugin: `${kind}/${name}`, reason });
      }
    }
  }
  log.info(`Plugins: ${plugins.length} loaded, ${broken.length} broken.`, { loaded: plugins.map((p) => `${p.kind}/${p.name}`), broken: broken.map((b) => `${b.kind}/${b.name}`) });
  return new Registry(plugins, broken);
}
