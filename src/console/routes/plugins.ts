import type { ConsoleRoutes } from '../app';
import type { Page } from '../page';
import { invalid } from '../../domain/errors';
import { SECRET_MASK } from '../../plugins/instances-service';

interface SettingField {
  name: string;
  kind: 'boolean' | 'integer' | 'number' | 'enum' | 'text' | 'json' | 'secret';
  description: string;
  options: string[];
  value: string;
  required: boolean;
}

/** The form fields of a plugin's settings schema: simple types get inputs, anything nested is edited as JSON. */
function settingFields(schema: Record<string, unknown>, secretKeys: string[], settings: Record<string, unknown>): SettingField[] {
  const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  const required = (schema.required ?? []) as string[];
  return Object.entries(props).map(([name, p]) => {
    const value = settings[name];
    const base = { name, description: String(p.description ?? ''), options: [] as string[], required: required.includes(name) };
    // A kept secret is never shown back: the field stays empty, and empty keeps it.
    if (secretKeys.includes(name)) return { ...base, kind: 'secret' as const, value: '' };
    if (Array.isArray(p.enum)) return { ...base, kind: 'enum' as const, options: p.enum.map(String), value: value === undefined ? '' : String(value) };
    if (p.type === 'boolean') return { ...base, kind: 'boolean' as const, value: value === undefined ? '' : String(value) };
    if (p.type === 'integer' || p.type === 'number') return { ...base, kind: p.type, value: value === undefined ? '' : String(value) };
    if (p.type === 'string') return { ...base, kind: 'text' as const, value: value === undefined ? '' : String(value) };
    return { ...base, kind: 'json' as const, value: value === undefined ? '' : JSON.stringify(value, null, 2) };
  });
}

/** Plugin instances: list, configure settings (secrets never shown back), test the connection. */
export function pluginPages(r: ConsoleRoutes): void {
  r.get('/plugins', async (page) => {
    const kind = page.query('kind');
    const all = await page.services.pluginInstances.list(page.actor);
    const search = page.query('q').trim().toLowerCase();
    const items = all.filter((i) => (!kind || i.kind === kind) && (!search || `${i.name} ${i.plugin}`.toLowerCase().includes(search)));
    const sort = ['name', 'kind', 'plugin', 'status'].includes(page.query('sort')) ? (page.query('sort') as 'name' | 'kind' | 'plugin' | 'status') : 'name';
    const dir = page.query('dir') === 'desc' ? -1 : 1;
    items.sort((a, b) => dir * String(a[sort]).localeCompare(String(b[sort])) || a.instanceId - b.instanceId);
    await page.render('plugins.njk', {
      title: 'Plugin instances',
      items,
      kinds: [...new Set(all.map((i) => i.kind))].sort(),
      kind,
      q: page.query('q'),
      list: { sort, dir: dir === 1 ? 'asc' : 'desc', filterQuery: new URLSearchParams(Object.entries({ kind, q: page.query('q') }).filter(([, v]) => v)).toString() },
      registry: page.services.plugins.list(),
    });
  });

  const show = async (page: Page, status = 200, entered?: Record<string, string>) => {
    const instance = await page.services.pluginInstances.get(page.actor, page.param('id'));
    const plugin = page.services.plugins.get(instance.kind, instance.plugin);
    const fields = plugin ? settingFields(plugin.manifest.settingsSchema, plugin.manifest.secretSettings ?? [], instance.settings) : [];
    // A refused form shows what was typed (never a secret), not the stored values.
    if (entered) for (const f of fields) if (f.kind !== 'secret' && entered[`s.${f.name}`] !== undefined) f.value = entered[`s.${f.name}`];
    await page.render('plugin.njk', { title: instance.name, instance, plugin, fields }, status);
  };
  r.get('/plugins/:id', (page) => show(page));

  r.post('/plugins/:id', async (page) => {
    const id = page.param('id');
    const instance = await page.services.pluginInstances.get(page.actor, id);
    const plugin = page.services.plugins.get(instance.kind, instance.plugin);
    const done = await page.attempt(async () => {
      const settings: Record<string, unknown> = {};
      if (plugin) {
        for (const f of settingFields(plugin.manifest.settingsSchema, plugin.manifest.secretSettings ?? [], instance.settings)) {
          const raw = (page.form[`s.${f.name}`] ?? '').trim();
          if (f.kind === 'secret') {
            settings[f.name] = raw === '' ? SECRET_MASK : raw;
          } else if (raw === '') {
            if (f.name in instance.settings) settings[f.name] = null;
          } else if (f.kind === 'boolean') settings[f.name] = raw === 'true';
          else if (f.kind === 'integer' || f.kind === 'number') {
            const n = Number(raw);
            if (!Number.isFinite(n)) throw invalid(`settings.${f.name}`, `${f.name} must be a number.`);
            settings[f.name] = n;
          } else if (f.kind === 'json') {
            try {
              settings[f.name] = JSON.parse(raw) as unknown;
            } catch {
              throw invalid(`settings.${f.name}`, `${f.name} must be JSON (e.g. {"amount": "100000", "currency": "USD"}).`);
            }
          } else settings[f.name] = raw;
        }
      }
      return page.services.pluginInstances.update(page.actor, id, { name: page.form.name, status: page.form.status, settings: plugin ? settings : undefined });
    });
    if (!done) return show(page, 422, page.form);
    await page.redirect(`/console/plugins/${id}`, { kind: 'ok', text: `Settings of ${done.name} saved.` });
  });

  r.post('/plugins/:id/test', async (page) => {
    const id = page.param('id');
    const outcome = await page.services.pluginInstances.testConnection(page.actor, id);
    const text =
      outcome.status === 'success'
        ? `Connection test passed: ${outcome.result.message || 'the remote system answered.'}`
        : `Connection test ${outcome.status === 'failure' ? 'failed' : 'is pending'}: ${outcome.message ?? ''}`;
    await page.redirect(`/console/plugins/${id}`, { kind: outcome.status === 'success' ? 'ok' : 'error', text });
  });
}
