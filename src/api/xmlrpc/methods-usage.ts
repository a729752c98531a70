import crypto from 'node:crypto';
import { UsageService } from '../../billing/usage-service';
import { inTransaction } from '../../db/transaction';
import { invalid } from '../../domain/errors';
import { formatQuantity, quantityFromNumber, parseQuantity } from '../../billing/usage-quantity';
import { XmlRpcDouble } from './codec';
import { write, type MethodTable, type XmlRpcMethod } from './method-table';
import type { Params } from './params';

/** A quantity slot: <double> (read from its wire text), <int>, or decimal text. */
function quantityAt(p: Params, i: number, name: string): string {
  const v = p.raw(i);
  const field = `Params[${i}] (${name})`;
  if (v instanceof XmlRpcDouble) return formatQuantity(parseQuantity(v.text, field));
  if (typeof v === 'number') return formatQuantity(quantityFromNumber(v, field));
  if (typeof v === 'string' && v.trim() !== '') return formatQuantity(parseQuantity(v.trim(), field));
  throw invalid(field, `${name} must be a number, as parameter ${i + 1}.`);
}

/**
 * DUMMYGATE IncrementResourceUsage_API(SubscriptionID, ResourceID_1, DeltaAmount_1, ..., ResourceID_N, DeltaAmount_N)
 * and SetResourceUsage_API(SubscriptionID, ResourceID_1, FullAmount_1, ...): PBA's manual usage update, answered
 * with "Resources on subscription N have been updated.". PBA calls carry no usage id, so each pair of a call is
 * recorded under one generated from the request ("xmlrpc:<request id>:<pair>"): a retried call counts again,
 * as it did in PBA. All pairs of one call are counted in one transaction, or none.
 */
function usageMethod(mode: 'increment' | 'set', amountName: string): XmlRpcMethod {
  return write(async (p, actor, services) => {
    const subscriptionId = p.int(0, 'SubscriptionID');
    if (p.length < 3 || (p.length - 1) % 2 !== 0) {
      throw invalid('Params', `Send SubscriptionID followed by pairs of ResourceID and ${amountName} (3, 5, 7 ... parameters); got ${p.length}.`);
    }
    const pairs: { resourceId: number; quantity: string }[] = [];
    for (let i = 1; i < p.length; i += 2) pairs.push({ resourceId: p.int(i, `ResourceID_${(i + 1) / 2}`), quantity: quantityAt(p, i + 1, `${amountName}_${(i + 1) / 2}`) });
    const callId = actor.requestId ?? crypto.randomUUID();
    await inTransaction(services.deps.db, async (tx) => {
      const inTx = new UsageService({ ...services.deps, db: tx });
      for (const [n, pair] of pairs.entries()) {
        await inTx.report(actor, { subscriptionId, resourceId: pair.resourceId, quantity: pair.quantity, mode, usageId: `xmlrpc:${callId}:${n + 1}` });
      }
    });
    return `Resources on subscription ${subscriptionId} have been updated.`;
  });
}

const increment = usageMethod('increment', 'DeltaAmount');
const set = usageMethod('set', 'FullAmount');

/** Registered on DUMMYGATE, and on BM where PBA kept them for backward compatibility. */
export const usageMethods: MethodTable = {
  'DUMMYGATE.IncrementResourceUsage_API': increment,
  'DUMMYGATE.SetResourceUsage_API': set,
  'BM.IncrementResourceUsage_API': increment,
  'BM.SetResourceUsage_API': set,
};
