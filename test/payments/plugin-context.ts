import type { Clock } from '../../src/clock';
import type { PluginContext } from '../../src/plugins/sdk';

/** A plugin context for tests: the settings given, a clock, and a log whose lines the test can read. */
export function pluginContext(settings: Record<string, unknown> = {}, opts: { clock?: Clock; instanceName?: string; lines?: string[] } = {}): PluginContext {
  const lines = opts.lines ?? [];
  const write = (level: string) => (message: string, meta?: Record<string, unknown>) => {
    lines.push(`${level} ${message} ${JSON.stringify(meta ?? {})}`);
  };
  return {
    settings,
    instanceName: opts.instanceName ?? 'test',
    log: { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') },
    now: () => (opts.clock ? opts.clock.now() : new Date('2026-01-15T10:00:00Z')),
  };
}
