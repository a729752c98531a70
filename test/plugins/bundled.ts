import { expect } from 'chai';
import { BUNDLED_PLUGINS_DIR, loadPlugins, type PluginRegistry } from '../../src/plugins/loader';
import type { PluginLogger, ProvisioningGate } from '../../src/plugins/sdk';

export const silentLog: PluginLogger = { debug() {}, info() {}, warn() {}, error() {} };

let registry: PluginRegistry | undefined;

/** The bundled plugins, loaded once per test run. */
export function bundledPlugins(): PluginRegistry {
  registry ??= loadPlugins(BUNDLED_PLUGINS_DIR, silentLog);
  return registry;
}

/** A bundled service gate made the way the core makes one: settings checked against the manifest, defaults filled. */
export function bundledGate<T extends ProvisioningGate = ProvisioningGate>(name: string, settings: Record<string, unknown>, now: () => Date = () => new Date()): T {
  const plugin = bundledPlugins().get('provisioning', name);
  expect(plugin, `bundled provisioning plugin ${name}`).to.not.equal(undefined);
  const checked = plugin!.checkSettings(settings);
  if (!checked.ok) throw new Error(`settings of ${name}: ${checked.errors.map((e) => e.message).join(' ')}`);
  return plugin!.factory({ settings: checked.value, instanceName: `test-${name}`, log: silentLog, now }) as T;
}
