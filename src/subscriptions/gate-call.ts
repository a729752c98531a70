import { recordChange } from '../audit/record-change';
import type { Actor } from '../context';
import { toNumber, type Tx } from '../db/knex';
import { isAppError } from '../domain/errors';
import { safeErrorMessage } from '../logger';
import { isOutcome, type PluginInstancesService } from '../plugins/instances-service';
import type { Outcome, ProvisioningGate, ServiceRequest } from '../plugins/sdk';

/**
 * One call to a subscription's service gate, as an outcome whatever happens: a gate that cannot be resolved is a
 * failure (GATE_NOT_FOUND for good, GATE_UNAVAILABLE retryable), a plugin that throws a retryable PLUGIN_ERROR, an
 * answer that is no outcome a final one. With `poll` (a repeat of the same operation), the gate is first asked for
 * the status of `operationId`; only when it does not know it (NOT_FOUND) is the call made again. Used by the
 * subscription actions (suspend, resume, terminate, provision) and by the orders on existing subscriptions.
 */
export async function callSubscriptionGate(
  pluginInstances: Pick<PluginInstancesService, 'resolveGate'>,
  sub: { vendor_id: unknown; service_gate: string },
  operationId: string,
  poll: boolean,
  call: (gate: ProvisioningGate) => Promise<Outcome<unknown>>,
): Promise<Outcome<unknown>> {
  let gate: ProvisioningGate;
  try {
    gate = (await pluginInstances.resolveGate(toNumber(sub.vendor_id), sub.service_gate)).gate;
  } catch (e) {
    const missing = isAppError(e) && e.code === 'NOT_FOUND';
    return { status: 'failure', retryable: !missing, message: isAppError(e) ? e.message : safeErrorMessage(e), code: missing ? 'GATE_NOT_FOUND' : 'GATE_UNAVAILABLE' };
  }
  const guarded = async (f: () => Promise<Outcome<unknown>>): Promise<Outcome<unknown>> => {
    try {
      const o = await f();
      return isOutcome(o) ? o : { status: 'failure', retryable: false, message: `Service gate '${sub.service_gate}' answered with something that is not an outcome.`, code: 'PLUGIN_ERROR' };
    } catch (e) {
      return { status: 'failure', retryable: true, message: `Service gate '${sub.service_gate}' failed: ${safeErrorMessage(e)}`, code: 'PLUGIN_ERROR' };
    }
  };
  if (poll) {
    const polled = await guarded(() => gate.status(operationId));
    if (!(polled.status === 'failure' && polled.code === 'NOT_FOUND')) return polled;
  }
  return guarded(() => call(gate));
}

/**
 * A terminate answered "no such service" (a non-retryable failure with code NOT_FOUND, docs/plugins.md): nothing is
 * left to remove at the gate, so it counts as done. Every other answer is kept as it is.
 */
export function terminatedOrGone<T>(outcome: Outcome<T>): Outcome<T | { gone: true }> {
  return outcome.status === 'failure' && !outcome.retryable && outcome.code === 'NOT_FOUND' ? { status: 'success', result: { gone: true } } : outcome;
}

/** What undoing a given-up provision found: the service it terminated, or null when the provision made none. */
export interface ProvisionUndone {
  reference: string | null;
}

/**
 * Undoes a provision the core gave up waiting for (still pending, or its outcome unknown) although the gate may
 * finish it: the provision's own outcome is asked first (`status` of its operation id), and once it is known the
 * service it made is terminated under `req.operationId` (a gate that no longer has it: done). A provision the gate
 * refused or never received made nothing: success with no reference. Still pending: pending, waited for like any.
 */
export async function undoGivenUpProvision(gate: ProvisioningGate, req: ServiceRequest, provisionOperationId: string): Promise<Outcome<ProvisionUndone>> {
  const provision = await gate.status(provisionOperationId);
  if (provision.status === 'pending') return provision;
  if (provision.status === 'failure') return provision.retryable ? provision : { status: 'success', result: { reference: null } };
  const reference = provision.result.reference;
  if (typeof reference !== 'string' || reference === '') {
    return { status: 'failure', retryable: false, message: `The gate answered the provision ${provisionOperationId} as done but without a reference to terminate.`, code: 'PLUGIN_ERROR' };
  }
  const terminated = terminatedOrGone(await gate.terminate({ ...req, reference }));
  return terminated.status === 'success' ? { status: 'success', result: { reference } } : terminated;
}

/**
 * Audit record and event `subscription.provision_undone` of an undone given-up provision, in the caller's
 * transaction: `terminated` false when the provision had made nothing; `reference` when it is known.
 */
export async function recordProvisionUndone(tx: Tx, actor: Actor, at: Date, sub: { id: unknown; account_id: unknown; order_id?: unknown }, provisionOperationId: string, result: unknown): Promise<void> {
  const r = (result ?? {}) as { reference?: unknown };
  const terminated = r.reference !== null;
  const reference = typeof r.reference === 'string' ? r.reference : null;
  const subscriptionId = toNumber(sub.id);
  const orderId = sub.order_id === null || sub.order_id === undefined ? null : toNumber(sub.order_id);
  await recordChange(tx, actor, at, {
    operation: 'UndoProvision',
    objectType: 'subscription',
    objectId: subscriptionId,
    details: { operationId: provisionOperationId, terminated, reference },
    event: { name: 'subscription.provision_undone', accountId: toNumber(sub.account_id), payload: { subscriptionId, accountId: toNumber(sub.account_id), orderId, operationId: provisionOperationId, terminated, reference } },
  });
}
