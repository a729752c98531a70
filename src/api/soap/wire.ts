import { formatAmount, parseAmount } from '../../domain/money';
import { invalid } from '../../domain/errors';
import type { PbaOrderStatus } from '../../domain/workflow';

/** SOAP wire values. node-soap is told to hand every number, boolean and date over as text; these read it strictly. */

export const decimal = (minor: bigint, currency: string): string => formatAmount(minor, currency);
export const dateTime = (d: Date): string => d.toISOString();
export const quantity = (n: number): string => String(n);

export function text(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'object') {
    const inner = (v as Record<string, unknown>).$value;
    return inner === undefined ? undefined : String(inner);
  }
  return String(v);
}

export function int(v: unknown, field: string): number | undefined {
  const t = text(v)?.trim();
  if (t === undefined || t === '') return undefined;
  if (!/^-?\d{1,15}$/.test(t)) throw invalid(field, `${field} must be a whole number.`);
  return Number(t);
}

export function bool(v: unknown, field: string): boolean | undefined {
  const t = text(v)?.trim();
  if (t === undefined || t === '') return undefined;
  if (t === 'true' || t === '1') return true;
  if (t === 'false' || t === '0') return false;
  throw invalid(field, `${field} must be true or false.`);
}

export function money(v: unknown, currency: string, field: string): bigint | undefined {
  const t = text(v)?.trim();
  if (t === undefined || t === '') return undefined;
  return parseAmount(t, currency, field);
}

/** A wrapper list (`<roles><role/>...</roles>`) as an array, whatever node-soap made of one or many items. */
export function list<T = unknown>(wrapper: unknown, item: string): T[] {
  if (wrapper === undefined || wrapper === null || typeof wrapper !== 'object') return [];
  const v = (wrapper as Record<string, unknown>)[item];
  if (v === undefined || v === null) return [];
  return (Array.isArray(v) ? v : [v]) as T[];
}

/**
 * Drops undefined members so optional elements are simply absent (never an empty or nil element). It copies the
 * defined members, in order, into a new object rather than deleting from this one: a delete turns an object into
 * a slow dictionary for node-soap's serializer, which walks every response object.
 */
export function compact<T extends Record<string, unknown>>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const k in o) if (o[k] !== undefined) out[k] = o[k];
  return out as T;
}

/** `<resources><resource><resourceId/><quantity/></resource>...</resources>` (ResourceQuantityList); `field` names the list in errors. */
export function resourceQuantities(wrapper: unknown, field: string): { resourceId: number; quantity: number }[] {
  return list<Record<string, unknown>>(wrapper, 'resource').map((raw, j) => {
    const r = raw !== null && typeof raw === 'object' ? raw : {};
    const q = text(r.quantity)?.trim() ?? '';
    if (!/^\d+(\.\d+)?$/.test(q)) throw invalid(`${field}[${j}].quantity`, 'quantity must be a non-negative number.');
    return { resourceId: int(r.resourceId, `${field}[${j}].resourceId`) as number, quantity: Number(q) };
  });
}

/** The WSDL's OrderStatus for each PBA order status code. */
export const ORDER_STATUS_WIRE: Record<PbaOrderStatus, string> = {
  NP: 'new',
  WP: 'waiting_payment',
  SS: 'suspected_fraud',
  WA: 'waiting_approval',
  HL: 'on_hold',
  PR: 'provisioning',
  PF: 'provisioning_failed',
  PC: 'provisioned',
  CP: 'completed',
  RJ: 'rejected',
  CA: 'canceled',
};
