import type { Conn } from '../db/knex';
import { toNumber } from '../db/knex';
import type { ServiceRequest } from '../plugins/sdk';

export interface GateDescription {
  /** What the gate is told about the service; the caller adds the operation id of its call. */
  request: Omit<ServiceRequest, 'operationId'>;
  serviceGate: string;
  vendorId: number;
  name: string;
}

/** A subscription as its service gate sees it: template, order parameters, resource limits, the gate's reference. */
export async function describeForGate(conn: Conn, subscriptionId: number): Promise<GateDescription | undefined> {
  const sub = (await conn('subscriptions as s')
    .join('plans as p', 'p.id', 's.plan_id')
    .join('service_templates as t', 't.id', 'p.template_id')
    .where('s.id', subscriptionId)
    .first('s.id', 's.account_id', 's.vendor_id', 's.service_gate', 's.gate_reference', 's.parameters', 's.name', 't.name as template')) as
    | { id: number; account_id: number; vendor_id: number; service_gate: string; gate_reference: string | null; parameters: string; name: string; template: string }
    | undefined;
  if (!sub) return undefined;
  const limits = (await conn('subscription_resources as r').join('resources as res', 'res.id', 'r.resource_id').where('r.subscription_id', sub.id).select('res.code', 'res.name', 'r.limit_value')) as {
    code: string | null;
    name: string;
    limit_value: unknown;
  }[];
  const parameters: Record<string, string> = {};
  for (const [k, v] of Object.entries(JSON.parse(sub.parameters || '{}') as Record<string, unknown>)) parameters[k] = String(v);
  return {
    serviceGate: sub.service_gate,
    vendorId: toNumber(sub.vendor_id),
    name: sub.name,
    request: {
      subscriptionId: toNumber(sub.id),
      accountId: toNumber(sub.account_id),
      template: sub.template,
      parameters,
      limits: limits.map((l) => ({ resource: l.code || l.name, limit: l.limit_value === null ? null : Number(l.limit_value) })),
      ...(sub.gate_reference ? { reference: sub.gate_reference } : {}),
    },
  };
}
