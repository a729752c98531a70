import type { Actor } from '../../context';
import type { Services } from '../../services';
import type { XmlRpcValue } from './codec';
import type { Params } from './params';

/** One PBA method: what it does with its positional parameters, and whether it changes state (for the audit). */
export interface XmlRpcMethod {
  mutating: boolean;
  run(p: Params, actor: Actor, services: Services): Promise<XmlRpcValue>;
}

/** Methods keyed "GATE.Method", e.g. "BM.AccountDetailsGet_API". */
export type MethodTable = Record<string, XmlRpcMethod>;

export const read = (run: XmlRpcMethod['run']): XmlRpcMethod => ({ mutating: false, run });
export const write = (run: XmlRpcMethod['run']): XmlRpcMethod => ({ mutating: true, run });

/** PBA's "status" answer. */
export const done = (detail?: string | number): { Status: string } => ({ Status: detail === undefined ? 'Operation done.' : `Operation done. ${detail}` });
