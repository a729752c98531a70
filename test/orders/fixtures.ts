import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as soap from 'soap';
import { readSandboxStateFile, type SandboxJournalEntry } from '../../plugins/provisioning/sandbox';
import type { ManualClock } from '../../src/clock';
import type { Actor, Deps } from '../../src/context';
import { toNumber, type Conn } from '../../src/db/knex';
import { DEFAULT_SALES_WORKFLOW, type WorkflowDefinition } from '../../src/domain/workflow';
import { FraudService } from '../../src/fraud/fraud-service';
import { Worker } from '../../src/jobs/worker';
import { orderHandlers, type EngineOptions, type SubscriptionHooks } from '../../src/orders/engine';
import { startOrder } from '../../src/orders/transitions';
import { PaymentsService } from '../../src/payments/payments-service';
import type { PaymentGateway } from '../../src/plugins/sdk';
import type { Services } from '../../src/services';
import { eventually } from '../helpers/assertions';

/**
 * A catalog of sandbox-gated plans, a sandbox payment gateway with a stored card, the order engine on a worker,
 * and orders inserted with SQL (as placed) then started. Works on a makeWorld() world or on one a child process
 * opened on the same database (see crash-child.ts).
 */

/** A sales workflow that marks every order suspect and waits for the vendor, then charges and provisions. */
export const SUSPECT_FIRST: WorkflowDefinition = {
  orderType: 'sales',
  start: 'flag',
  steps: {
    flag: { action: 'mark_suspect', next: { done: 'approval' } },
    approval: { action: 'wait_for_approval', next: { approved: 'charge', rejected: 'rejected' } },
    charge: { action: 'charge_payment', next: { success: 'provision', declined: 'rejected', unknown: 'approval' } },
    provision: { action: 'provision', next: { success: 'notify', failure: 'failed' } },
    notify: { action: 'notify_customer', next: { done: 'done' } },
    done: { action: 'complete', next: {} },
    rejected: { action: 'reject', next: {} },
    failed: { action: 'fail', next: {} },
  },
};

/** A sales workflow that asks the vendor before charging: every order waits for approval (SUSPECT_FIRST without its flag). */
const { flag: _flag, ...approveFirstSteps } = SUSPECT_FIRST.steps;
export const APPROVE_FIRST: WorkflowDefinition = { ...SUSPECT_FIRST, start: 'approval', steps: approveFirstSteps };

/** The texts of every element called `local` in raw XML (SOAP response bytes), in document order. */
export const textsOf = (xml: string, local: string): string[] => [...xml.matchAll(new RegExp(`<(?:[\\w.-]+:)?${local}>([^<]*)</(?:[\\w.-]+:)?${local}>`, 'g'))].map((m) => m[1]!);

export const APPROVED_CARD = { number: '4242424242424242', expMonth: 12, expYear: 2030, cvv: '123' };

export interface Catalog {
  vendorId: number;
  customer: Actor;
  plans: { planId: number; periodId: number; name: string }[];
  gatewayInstanceId: number;
  payToolId: number;
  workflowId: number;
  stateFile: string;
  dir: string;
}

export interface Engine {
  payments: PaymentsService;
  fraud: FraudService;
  worker: Worker;
}

/** The engine's services over `services`: payments through the instances' gateways, fraud screening. */
export function makeEngine(deps: Deps, services: Services, opts: EngineOptions & { subscriptions?: SubscriptionHooks; owner?: string; leaseMs?: number } = {}): Engine {
  const payments = new PaymentsService(deps, (id) => services.pluginInstances.instantiate<PaymentGateway>(id), { pendingGraceMs: 60_000, twinWaitMs: 1_000 });
  const fraud = new FraudService(deps);
  const handlers = orderHandlers(deps, { tasks: services.tasks, pluginInstances: services.pluginInstances, payments, fraud, subscriptions: opts.subscriptions }, opts);
  const worker = new Worker(deps, services.tasks, handlers, { owner: opts.owner ?? 'test-worker', concurrency: 1, leaseMs: opts.leaseMs ?? 60_000, pollMs: 20 });
  return { payments, fraud, worker };
}

async function customerActor(deps: Deps, services: Services, provider: Actor): Promise<Actor> {
  const id = await services.accounts.create(provider, {
    type: 'customer',
    companyName: 'Bundle Buyer',
    contacts: { admin: { firstName: 'Bundle', lastName: 'Buyer', email: 'buyer@example.com' } },
  });
  const row = (await deps.db('accounts').where({ id }).first()) as { id: number; path: string };
  return { userId: null, accountId: id, accountPath: row.path, accountType: 'customer', roles: ['admin'], channel: 'system' };
}

/** Three plans (Web, Mail, DNS) on the sandbox gate 'sandbox' (state kept in a file), a card gateway and a stored card. */
export async function makeCatalog(deps: Deps, services: Services, provider: Actor, engine: Engine, opts: { workflow?: WorkflowDefinition; gateSettings?: Record<string, unknown> } = {}): Promise<Catalog> {
  const { db } = deps;
  const now = deps.clock.now().getTime();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostwright-saga-'));
  const stateFile = path.join(dir, 'sandbox-gate.json');
  await services.pluginInstances.create(provider, { kind: 'provisioning', plugin: 'sandbox', name: 'sandbox', settings: { stateFile, ...opts.gateSettings } });
  const gatewayInstanceId = await services.pluginInstances.create(provider, { kind: 'payment', plugin: 'sandbox', name: 'cards', settings: { stateFile: path.join(dir, 'sandbox-cards.json') } });
  const vendorId = provider.accountId;
  const plans: Catalog['plans'] = [];
  for (const [i, name] of ['Web', 'Mail', 'DNS'].entries()) {
    const [templateId] = (await db('service_templates').insert({ vendor_id: vendorId, name: `${name} template`, service_gate: 'sandbox', description: '', created_at: now })) as number[];
    const [planId] = (await db('plans').insert({ vendor_id: vendorId, template_id: templateId, name, category: '', published: true, trial: false, resellable: false, currency: 'USD', created_at: now, updated_at: now })) as number[];
    const [periodId] = (await db('plan_periods').insert({ plan_id: planId, duration: 1, unit: 'month', trial: false, setup_fee: 0, recurring_fee: 1000 * (i + 1), renewal_fee: 1000 * (i + 1), sort_order: 0 })) as number[];
    plans.push({ planId: toNumber(planId), periodId: toNumber(periodId), name });
  }
  // A version clear of the default's version 1, which WorkflowsService makes on first use.
  const [{ v }] = (await db('workflows').where({ vendor_id: vendorId, order_type: 'sales' }).max({ v: 'version' })) as { v: number | null }[];
  const [workflowId] = (await db('workflows').insert({ vendor_id: vendorId, order_type: 'sales', version: toNumber(v ?? 0) + 100, definition: JSON.stringify(opts.workflow ?? DEFAULT_SALES_WORKFLOW), active: false, created_at: now })) as number[];
  const customer = await customerActor(deps, services, provider);
  const tool = await engine.payments.storePayTool(provider, customer.accountId, gatewayInstanceId, APPROVED_CARD, { makeDefault: true });
  return { vendorId, customer, plans, gatewayInstanceId, payToolId: tool.payToolId, workflowId: toNumber(workflowId), stateFile, dir };
}

let orderSeq = 0;

/** Inserts an order as placed (NP at the workflow's start step) with one item per entry, and starts it. */
export async function placeOrder(deps: Deps, services: Services, cat: Catalog, items: { plan: number; parameters?: Record<string, string> }[], opts: { ipAddress?: string } = {}): Promise<number> {
  const now = deps.clock.now().getTime();
  const total = items.reduce((sum, it) => sum + 1000 * (it.plan + 1), 0);
  const def = JSON.parse(((await deps.db('workflows').where({ id: cat.workflowId }).first('definition')) as { definition: string }).definition) as WorkflowDefinition;
  return deps.db.transaction(async (tx) => {
    const [orderId] = (await tx('orders').insert({
      order_number: `SOT${process.pid}${Date.now().toString(36)}${++orderSeq}`.slice(0, 32),
      vendor_id: cat.vendorId,
      account_id: cat.customer.accountId,
      type: 'sales',
      status: 'NP',
      workflow_id: cat.workflowId,
      step: def.start,
      currency: 'USD',
      subtotal: total,
      total,
      pay_tool_id: cat.payToolId,
      ip_address: opts.ipAddress ?? null,
      created_at: now,
      updated_at: now,
    })) as number[];
    for (const [i, it] of items.entries()) {
      const plan = cat.plans[it.plan];
      await tx('order_items').insert({ order_id: orderId, position: i + 1, plan_id: plan.planId, period_id: plan.periodId, parameters: JSON.stringify({ domain: `site${i + 1}.example.com`, ...it.parameters }), resources: '[]' });
    }
    await tx('order_history').insert({ order_id: orderId, status: 'NP', step: def.start, outcome: null, actor_user_id: null, comment: 'placed', at: now });
    await startOrder(tx, deps, services.tasks, toNumber(orderId));
    return toNumber(orderId);
  });
}

/**
 * Runs the worker until nothing is left to do: when no task is due, the clock jumps to the next pending task's
 * run_at (past any backoff). Returns how many tasks ran.
 */
export async function drive(deps: Deps, clock: ManualClock, worker: Worker, maxRounds = 500): Promise<number> {
  let ran = 0;
  for (let round = 0; round < maxRounds; round++) {
    const n = await worker.runOnce();
    ran += n;
    if (n > 0) continue;
    const next = (await deps.db('tasks').where({ status: 'pending' }).orderBy('run_at').first('run_at')) as { run_at: number } | undefined;
    if (!next) return ran;
    const at = toNumber(next.run_at);
    if (at > clock.now().getTime()) clock.set(new Date(at));
  }
  throw new Error(`The worker was still busy after ${maxRounds} rounds.`);
}

export function journal(cat: Pick<Catalog, 'stateFile'>): SandboxJournalEntry[] {
  return fs.existsSync(cat.stateFile) ? readSandboxStateFile(cat.stateFile).journal : [];
}

export async function orderRow(db: Conn, orderId: number): Promise<{ status: string; step: string; failure_reason: string | null; payment_id: number | null }> {
  return (await db('orders').where({ id: orderId }).first()) as { status: string; step: string; failure_reason: string | null; payment_id: number | null };
}

export async function eventNames(db: Conn, sinceId = 0): Promise<{ name: string; object_type: string; object_id: string }[]> {
  return (await db('events').where('id', '>', sinceId).andWhere((q) => q.where('name', 'like', 'order.%').orWhere('name', 'like', 'subscription.%').orWhere('name', 'like', 'payment.%')).orderBy('id').select('name', 'object_type', 'object_id')) as {
    name: string;
    object_type: string;
    object_id: string;
  }[];
}

/** An order as SOAP GetOrder answers it (the parts the order tests read). */
export type WireOrder = { status: string; total: string; history: { event: { status: string; comment?: string }[] } };

/** Reading orders and balances over SOAP with the billing client `client()` gives (set up in a `before`). */
export function soapReads(client: () => soap.Client) {
  const getOrder = async (orderId: number) => (await client().GetOrderAsync({ orderId }))[0].order as WireOrder;
  return {
    getOrder,
    /** Waits (60 s at most) for the order to reach one of the statuses; answers it. */
    untilStatus: (orderId: number, statuses: string[]) =>
      eventually(async () => {
        const o = await getOrder(orderId);
        return statuses.includes(o.status) ? o : undefined;
      }, `order ${orderId} to reach ${statuses.join('/')}`, 60_000),
    /** GetAccountBalance, in the currency's units as the wire gives it ("4.45", "0"). */
    balance: async (accountId: number) => String((await client().GetAccountBalanceAsync({ accountId }))[0].balance),
  };
}
