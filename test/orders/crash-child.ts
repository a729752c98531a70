/**
 * A process running the order engine against a database, for the crash test (crash.test.ts forks it with
 * `--import tsx`). Arguments: <databaseUrl> <orderId> [crashAt]
 *
 * crashAt names the moment the child stops and tells its parent (IPC 'stopped'), then hangs until the parent kills
 * it with SIGKILL: `gate:<action>:<n>` right after the n-th answer of that gate action (the remote system acted,
 * the database does not know yet), or `task:<n>` after the n-th task's handler returned (its change committed, the
 * task not yet settled). Without crashAt the child works until the order ends and none of its tasks is left open,
 * then reports {status} and exits.
 */
import { systemClock } from '../../src/clock';
import type { Deps } from '../../src/context';
import { SecretBox } from '../../src/crypto/secret-box';
import { createDb } from '../../src/db/knex';
import { Worker } from '../../src/jobs/worker';
import { orderHandlers } from '../../src/orders/engine';
import type { ProvisioningGate } from '../../src/plugins/sdk';
import { createServices } from '../../src/services';
import { quietLog, testConfig } from '../helpers/world';

const [databaseUrl, orderIdArg, crashAt = ''] = process.argv.slice(2);
const orderId = Number(orderIdArg);

function stop(where: string): Promise<never> {
  process.send?.({ stopped: where });
  return new Promise<never>(() => setInterval(() => undefined, 1000));
}

async function main(): Promise<void> {
  const config = testConfig();
  const db = createDb(databaseUrl!);
  const deps: Deps = { db, clock: systemClock, log: quietLog, config, secrets: new SecretBox(config.secretKey) };
  const services = createServices(deps);

  const [kind, a, b] = crashAt.split(':');
  const counts = new Map<string, number>();
  const bump = (key: string) => {
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    return n;
  };
  if (kind === 'gate') {
    const resolveGate = services.pluginInstances.resolveGate.bind(services.pluginInstances);
    services.pluginInstances.resolveGate = async (vendorId: number, name: string) => {
      const resolved = await resolveGate(vendorId, name);
      const gate = resolved.gate;
      const wrapped = new Proxy(gate, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver) as unknown;
          if (prop !== a || typeof value !== 'function') return value;
          return async (...args: unknown[]) => {
            const answer = await (value as (...x: unknown[]) => Promise<unknown>).apply(target, args);
            if (bump(String(prop)) === Number(b)) await stop(crashAt);
            return answer;
          };
        },
      }) as ProvisioningGate;
      return { ...resolved, gate: wrapped };
    };
  }

  const handlers = orderHandlers(deps, { tasks: services.tasks, pluginInstances: services.pluginInstances, payments: services.payments, fraud: services.fraud });
  if (kind === 'task') {
    for (const [name, handler] of Object.entries(handlers)) {
      handlers[name] = async (task, ctx) => {
        const outcome = await handler(task, ctx);
        if (bump('task') === Number(a)) await stop(crashAt);
        return outcome;
      };
    }
  }
  // A short lease: the next process takes over the dead one's task soon after it starts.
  const worker = new Worker(deps, services.tasks, handlers, { owner: `crash-child-${process.pid}`, concurrency: 1, leaseMs: 1000, pollMs: 50 });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const ran = await worker.runOnce();
    const order = (await db('orders').where({ id: orderId }).first('status')) as { status: string } | undefined;
    // Ended, and every task of the order settled (one the dead process held runs again once its lease passed).
    const open = await db('tasks').where({ object_type: 'order', object_id: String(orderId) }).whereIn('status', ['pending', 'running']).first('id');
    if (order && ['CP', 'PF', 'RJ'].includes(order.status) && !open) {
      process.send?.({ status: order.status });
      await db.destroy();
      return;
    }
    if (ran === 0) await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Order ${orderId} did not end within 60 s.`);
}

main().catch((e: unknown) => {
  process.send?.({ error: (e as Error).stack ?? String(e) });
  process.exitCode = 1;
});
