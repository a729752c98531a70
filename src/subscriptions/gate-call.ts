import { toNumber } from '../db/knex';
import { isAppError } from '../domain/errors';
import { safeErrorMessage } from '../logger';
import { isOutcome, type PluginInstancesService } from '../plugins/instances-service';
import type { Outcome, ProvisioningGate } from '../plugins/sdk';

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
