import { recordChange } from '../audit/record-change';
import { ancestorIds, scopedAccount, scopedVendor, type AccountRow } from '../accounts/scope';
import type { Actor, Deps } from '../context';
import { toNumber, toDate, type Conn } from '../db/knex';
import { AppError, conflict, invalid, notFound } from '../domain/errors';
import { oneOf, positiveId, requiredText } from '../domain/fields';
import { PLUGIN_KINDS, type LoadedPlugin, type PluginRegistry } from './loader';
import type { Outcome, PluginContext, PluginInstance, PluginKind, ProvisioningGate } from './sdk';
import { DbPluginStore } from './store';
import { isUniqueViolation } from '../idempotency';

/** What a kept secret looks like when shown; sending it back in an update keeps the secret. */
export const SECRET_MASK = '********';

export const INSTANCE_STATUSES = ['active', 'disabled'] as const;
export type InstanceStatus = (typeof INSTANCE_STATUSES)[number];

export interface PluginInstanceView {
  instanceId: number;
  vendorAccountId: number;
  kind: PluginKind;
  plugin: string;
  name: string;
  status: InstanceStatus;
  /** Settings with every kept secret shown as SECRET_MASK. */
  settings: Record<string, unknown>;
  /** Why the instance cannot run right now (plugin missing or broken, secrets unreadable), else null. */
  problem: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface CreatePluginInstanceInput {
  vendorAccountId?: number;
  kind: string;
  plugin: string;
  name: string;
  settings?: Record<string, unknown>;
  status?: string;
}

export interface UpdatePluginInstanceInput {
  name?: string;
  /**
   * Merged into the current settings key by key: a key given replaces its value, a key given as null is removed,
   * and a secret omitted or given as SECRET_MASK is kept.
   */
  settings?: Record<string, unknown>;
  status?: string;
}

export interface ServiceGateView {
  name: string;
  plugin: string;
  kind: PluginKind;
  /** broken: the plugin behind the instance did not load. */
  status: InstanceStatus | 'broken';
  vendorAccountId: number;
}

export interface ResolvedGate {
  instanceId: number;
  vendorAccountId: number;
  name: string;
  plugin: string;
  gate: ProvisioningGate;
}

interface InstanceRow {
  id: number;
  vendor_id: number;
  kind: PluginKind;
  plugin: string;
  name: string;
  settings: string;
  secrets_enc: string | null;
  status: InstanceStatus;
  created_at: unknown;
  updated_at: unknown;
}

const unavailable = (message: string): AppError => new AppError('UNAVAILABLE', message);

/** Plugin instances: configured uses of a plugin, owned by a vendor, with their secrets sealed at rest. */
export class PluginInstancesService {
  private readonly cache = new Map<number, { stamp: string; object: PluginInstance }>();

  constructor(
    private readonly deps: Deps,
    private readonly registry: PluginRegistry,
  ) {}

  async create(actor: Actor, input: CreatePluginInstanceInput): Promise<number> {
    const vendor = await this.vendor(actor, input.vendorAccountId);
    const kind = oneOf(input.kind, 'kind', PLUGIN_KINDS);
    const plugin = this.loadedPlugin(kind, requiredText(input.plugin, 'plugin', 64), 'plugin');
    const name = requiredText(input.name, 'name', 96);
    const status = input.status === undefined ? 'active' : oneOf(input.status, 'status', INSTANCE_STATUSES);
    const given = input.settings ?? {};
    for (const key of plugin.manifest.secretSettings ?? []) {
      if (isObject(given) && given[key] === SECRET_MASK) throw invalid(`settings.${key}`, `settings.${key} is the mask of a kept secret; give the secret itself.`);
    }
    const { plain, secrets } = this.checkSettings(plugin, given);
    const taken = () => invalid('name', `A plugin instance named '${name}' already exists.`);
    return this.deps.db.transaction(async (tx) => {
      const dup = await tx('plugin_instances').where({ vendor_id: vendor.id, name }).first('id');
      if (dup) throw taken();
      const now = this.deps.clock.now();
      const [id] = (await tx('plugin_instances').insert({
        vendor_id: vendor.id,
        kind,
        plugin: plugin.name,
        name,
        settings: JSON.stringify(plain),
        secrets_enc: this.seal(secrets),
        status,
        created_at: now.getTime(),
        updated_at: now.getTime(),
      }).catch((e: unknown) => {
        // Two creations racing past the check above: the unique key (vendor_id, name) decides.
        throw isUniqueViolation(e) ? taken() : e;
      })) as number[];
      await recordChange(tx, actor, now, {
        operation: 'CreatePluginInstance',
        objectType: 'plugin_instance',
        objectId: id,
        details: { kind, plugin: plugin.name, name, status, settings: Object.keys(plain), secrets: Object.keys(secrets) },
        event: { name: 'plugin_instance.created', accountId: vendor.id, payload: { instanceId: id, kind, plugin: plugin.name, name, status } },
      });
      return id;
    });
  }

  async update(actor: Actor, instanceId: number, patch: UpdatePluginInstanceInput): Promise<PluginInstanceView> {
    const row = await this.scopedRow(this.deps.db, actor, instanceId);
    const changes: Record<string, unknown> = {};
    const changed: string[] = [];
    if (patch.name !== undefined) {
      const name = requiredText(patch.name, 'name', 96);
      if (name !== row.name) {
        changes.name = name;
        changed.push('name');
      }
    }
    if (patch.status !== undefined) {
      const status = oneOf(patch.status, 'status', INSTANCE_STATUSES);
      if (status !== row.status) {
        changes.status = status;
        changed.push('status');
      }
    }
    if (patch.settings !== undefined) {
      if (!isObject(patch.settings)) throw invalid('settings', 'settings must be an object.');
      const plugin = this.loadedPlugin(row.kind, row.plugin, 'settings');
      const secretKeys = plugin.manifest.secretSettings ?? [];
      const merged: Record<string, unknown> = { ...(JSON.parse(row.settings) as Record<string, unknown>), ...this.openSecrets(row) };
      for (const [key, value] of Object.entries(patch.settings)) {
        if (secretKeys.includes(key) && value === SECRET_MASK) continue;
        if (value === null) delete merged[key];
        else merged[key] = value;
        changed.push(`settings.${key}`);
      }
      const { plain, secrets } = this.checkSettings(plugin, merged);
      changes.settings = JSON.stringify(plain);
      const sameSecrets = JSON.stringify(secrets) === JSON.stringify(this.openSecrets(row));
      // An unchanged secret keeps its sealed bytes, so the row shows no change where there was none.
      changes.secrets_enc = sameSecrets ? row.secrets_enc : this.seal(secrets);
    }
    if (changed.length === 0) return this.view(row);
    await this.deps.db.transaction(async (tx) => {
      if (typeof changes.name === 'string') {
        const dup = await tx('plugin_instances').where({ vendor_id: row.vendor_id, name: changes.name }).whereNot({ id: row.id }).first('id');
        if (dup) throw invalid('name', `A plugin instance named '${changes.name}' already exists.`);
        if (row.kind === 'provisioning') await this.refuseRenameOfGateInUse(tx, row);
      }
      const now = this.deps.clock.now();
      await tx('plugin_instances').where({ id: row.id }).update({ ...changes, updated_at: now.getTime() });
      await recordChange(tx, actor, now, {
        operation: 'UpdatePluginInstance',
        objectType: 'plugin_instance',
        objectId: row.id,
        details: { changed },
        event: {
          name: 'plugin_instance.updated',
          accountId: row.vendor_id,
          payload: { instanceId: row.id, kind: row.kind, plugin: row.plugin, name: (changes.name as string | undefined) ?? row.name, changed },
        },
      });
    });
    this.forget(row.id);
    return this.get(actor, row.id);
  }

  async get(actor: Actor, instanceId: number): Promise<PluginInstanceView> {
    return this.view(await this.scopedRow(this.deps.db, actor, instanceId));
  }

  async list(actor: Actor, filter: { kind?: string; vendorAccountId?: number } = {}): Promise<PluginInstanceView[]> {
    const q = this.deps.db('plugin_instances as i')
      .join('accounts as a', 'a.id', 'i.vendor_id')
      .where('a.path', 'like', `${actor.accountPath}%`)
      .orderBy('i.id')
      .select('i.*');
    if (filter.kind !== undefined) q.andWhere('i.kind', oneOf(filter.kind, 'kind', PLUGIN_KINDS));
    if (filter.vendorAccountId !== undefined) q.andWhere('i.vendor_id', (await scopedAccount(this.deps.db, actor, positiveId(filter.vendorAccountId, 'vendorAccountId'))).id);
    return ((await q) as InstanceRow[]).map((r) => this.view(r));
  }

  /**
   * The gates an actor may use or manage: instances inside its subtree and those of its ancestors (a reseller's
   * templates may name the provider's gates). Names and status only, never settings.
   */
  async listServiceGates(actor: Actor): Promise<ServiceGateView[]> {
    const rows = (await this.deps.db('plugin_instances as i')
      .join('accounts as a', 'a.id', 'i.vendor_id')
      .where('a.path', 'like', `${actor.accountPath}%`)
      .orWhereIn('i.vendor_id', ancestorIds(actor.accountPath))
      .orderBy('i.id')
      .select('i.*')) as InstanceRow[];
    return rows.map((r) => ({
      name: r.name,
      plugin: r.plugin,
      kind: r.kind,
      status: this.registry.get(r.kind, r.plugin) ? r.status : 'broken',
      vendorAccountId: toNumber(r.vendor_id),
    }));
  }

  /**
   * The plugin object for an instance, made by the plugin's factory with its settings (secrets opened), a child
   * logger and the core's clock. Kept until the instance changes, so one object serves every call meanwhile.
   */
  async instantiate<T extends PluginInstance = PluginInstance>(ref: number | { vendorId: number; name: string }): Promise<T> {
    const row = (
      typeof ref === 'number'
        ? await this.deps.db('plugin_instances').where({ id: ref }).first()
        : await this.deps.db('plugin_instances').where({ vendor_id: ref.vendorId, name: ref.name }).first()
    ) as InstanceRow | undefined;
    if (!row) throw notFound('Plugin instance', typeof ref === 'number' ? ref : ref.name);
    const stamp = `${toNumber(row.updated_at)}|${row.status}|${row.settings}|${row.secrets_enc ?? ''}`;
    const cached = this.cache.get(row.id);
    if (cached && cached.stamp === stamp) return cached.object as T;

    const plugin = this.registry.get(row.kind, row.plugin);
    if (!plugin) throw unavailable(`Plugin instance '${row.name}' cannot run: ${this.pluginProblem(row)}`);
    let secrets: Record<string, unknown>;
    try {
      secrets = this.openSecrets(row);
    } catch {
      throw unavailable(`Plugin instance '${row.name}' cannot run: its secrets cannot be opened with the configured secret key.`);
    }
    // The plugin may have been upgraded since the settings were saved: check them again (and fill new defaults).
    const checked = plugin.checkSettings({ ...(JSON.parse(row.settings) as Record<string, unknown>), ...secrets });
    if (!checked.ok) throw unavailable(`Plugin instance '${row.name}' cannot run: ${checked.errors[0].message} Update its settings.`);
    const context: PluginContext = {
      settings: checked.value,
      instanceName: row.name,
      log: this.deps.log.child({ plugin: `${row.kind}/${row.plugin}`, instance: row.name, instanceId: row.id }),
      now: () => this.deps.clock.now(),
      store: new DbPluginStore(this.deps.db, toNumber(row.id), () => this.deps.clock.now()),
    };
    let object: PluginInstance;
    try {
      object = plugin.factory(context);
    } catch (e) {
      throw unavailable(`Plugin instance '${row.name}' could not start: ${(e as Error).message}`);
    }
    if (!object || typeof object !== 'object') throw unavailable(`Plugin instance '${row.name}' could not start: its factory returned no object.`);
    if (cached) this.forget(row.id);
    this.cache.set(row.id, { stamp, object });
    return object as T;
  }

  /** Asks the instance's remote system whether it answers; any trouble is an outcome, never a throw. */
  async testConnection(actor: Actor, instanceId: number): Promise<Outcome<{ message: string }>> {
    const view = await this.get(actor, instanceId);
    let object: PluginInstance;
    try {
      object = await this.instantiate(view.instanceId);
    } catch (e) {
      return { status: 'failure', retryable: false, message: (e as Error).message, code: 'UNAVAILABLE' };
    }
    const test = (object as Partial<ProvisioningGate>).testConnection;
    if (typeof test !== 'function') return { status: 'failure', retryable: false, message: `The ${view.plugin} plugin offers no connection test.`, code: 'NOT_SUPPORTED' };
    try {
      const outcome = await test.call(object);
      if (!isOutcome(outcome)) return { status: 'failure', retryable: false, message: `The ${view.plugin} plugin answered the connection test with something that is not an outcome.`, code: 'PLUGIN_ERROR' };
      return outcome;
    } catch (e) {
      return { status: 'failure', retryable: true, message: `The ${view.plugin} plugin failed: ${(e as Error).message}`, code: 'PLUGIN_ERROR' };
    }
  }

  /**
   * The provisioning gate a vendor's templates mean by `gateName`: the vendor's own instance of that name, else
   * its nearest ancestor's (resellers use the provider's gates). The nearest instance of the name shadows those
   * above it: when it is disabled the gate is unavailable, rather than services going to another vendor's system.
   */
  async resolveGate(vendorId: number, gateName: string): Promise<ResolvedGate> {
    const account = (await this.deps.db('accounts').where({ id: vendorId }).first('id', 'path')) as Pick<AccountRow, 'id' | 'path'> | undefined;
    if (!account) throw notFound('Account', vendorId);
    const chain = [toNumber(account.id), ...ancestorIds(account.path)];
    const rows = (await this.deps.db('plugin_instances').whereIn('vendor_id', chain).andWhere({ name: gateName, kind: 'provisioning' })) as InstanceRow[];
    const nearest = chain.map((id) => rows.find((r) => toNumber(r.vendor_id) === id)).find((r) => r !== undefined);
    if (!nearest) throw notFound('Service gate', gateName);
    if (nearest.status !== 'active') throw unavailable(`Service gate '${gateName}' is disabled.`);
    const gate = await this.instantiate<ProvisioningGate>(nearest.id);
    return { instanceId: nearest.id, vendorAccountId: toNumber(nearest.vendor_id), name: nearest.name, plugin: nearest.plugin, gate };
  }

  // ---- helpers ----

  /** Drops a cached plugin object; one made for the old settings may hold a connection (an EPP session): closed. */
  private forget(instanceId: number): void {
    const old = this.cache.get(instanceId)?.object as { close?: () => Promise<void> } | undefined;
    this.cache.delete(instanceId);
    if (old && typeof old.close === 'function') void Promise.resolve().then(() => old.close?.()).catch(() => undefined);
  }

  private async vendor(actor: Actor, vendorAccountId?: number): Promise<AccountRow> {
    return scopedVendor(this.deps.db, actor, vendorAccountId, 'keep plugin instances');
  }

  private async scopedRow(conn: Conn, actor: Actor, instanceId: number): Promise<InstanceRow> {
    const id = positiveId(instanceId, 'instanceId');
    const row = (await conn('plugin_instances as i')
      .join('accounts as a', 'a.id', 'i.vendor_id')
      .where('i.id', id)
      .andWhere('a.path', 'like', `${actor.accountPath}%`)
      .first('i.*')) as InstanceRow | undefined;
    if (!row) throw notFound('Plugin instance', id);
    return row;
  }

  private loadedPlugin(kind: string, name: string, field: string): LoadedPlugin {
    const plugin = this.registry.get(kind, name);
    if (plugin) return plugin;
    const reason = this.registry.brokenReason(kind, name);
    if (reason) throw invalid(field, `The ${kind} plugin '${name}' is broken: ${reason}`);
    throw invalid(field, `No ${kind} plugin named '${name}' is installed.`);
  }

  private pluginProblem(row: InstanceRow): string {
    const reason = this.registry.brokenReason(row.kind, row.plugin);
    return reason ? `the ${row.kind} plugin '${row.plugin}' is broken: ${reason}` : `no ${row.kind} plugin named '${row.plugin}' is installed.`;
  }

  /** Validates settings against the manifest and splits them into what is stored plainly and what is sealed. */
  private checkSettings(plugin: LoadedPlugin, settings: unknown): { plain: Record<string, unknown>; secrets: Record<string, unknown> } {
    const checked = plugin.checkSettings(settings);
    if (!checked.ok) throw invalid(checked.errors[0].field, checked.errors[0].message);
    const secretKeys = plugin.manifest.secretSettings ?? [];
    const plain: Record<string, unknown> = {};
    const secrets: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(checked.value)) (secretKeys.includes(key) ? secrets : plain)[key] = value;
    return { plain, secrets };
  }

  private seal(secrets: Record<string, unknown>): string | null {
    return Object.keys(secrets).length ? this.deps.secrets.seal(JSON.stringify(secrets)) : null;
  }

  private openSecrets(row: InstanceRow): Record<string, unknown> {
    return row.secrets_enc ? (JSON.parse(this.deps.secrets.open(row.secrets_enc)) as Record<string, unknown>) : {};
  }

  private view(row: InstanceRow): PluginInstanceView {
    const settings = JSON.parse(row.settings) as Record<string, unknown>;
    let problem: string | null = this.registry.get(row.kind, row.plugin) ? null : this.pluginProblem(row);
    try {
      for (const key of Object.keys(this.openSecrets(row))) settings[key] = SECRET_MASK;
    } catch {
      problem ??= 'its secrets cannot be opened with the configured secret key.';
    }
    return {
      instanceId: toNumber(row.id),
      vendorAccountId: toNumber(row.vendor_id),
      kind: row.kind,
      plugin: row.plugin,
      name: row.name,
      status: row.status,
      settings,
      problem,
      createdAt: toDate(row.created_at),
      updatedAt: toDate(row.updated_at),
    };
  }

  /** Service templates name their gate by instance name: renaming a gate they use would strand their services. */
  private async refuseRenameOfGateInUse(conn: Conn, row: InstanceRow): Promise<void> {
    const vendor = (await conn('accounts').where({ id: row.vendor_id }).first('path')) as { path: string };
    const user = (await conn('service_templates as t')
      .join('accounts as a', 'a.id', 't.vendor_id')
      .where('t.service_gate', row.name)
      .andWhere('a.path', 'like', `${vendor.path}%`)
      .first('t.name')) as { name: string } | undefined;
    if (user) throw conflict(`Service template '${user.name}' delivers through the gate '${row.name}'; point it elsewhere before renaming the gate.`, 'name');
  }
}


function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Is this a well-formed outcome of the SDK? */
export function isOutcome(o: unknown): o is Outcome<unknown> {
  if (!isObject(o)) return false;
  switch (o.status) {
    case 'success':
      return 'result' in o && isObject(o.result);
    case 'failure':
      return typeof o.retryable === 'boolean' && typeof o.message === 'string' && o.message.length > 0 && (o.code === undefined || typeof o.code === 'string');
    case 'pending':
      return (o.message === undefined || typeof o.message === 'string') && (o.retryAfterSeconds === undefined || (typeof o.retryAfterSeconds === 'number' && o.retryAfterSeconds >= 0));
    default:
      return false;
  }
}
