/**
 * billing_charges.charge_key: the billing run's idempotency. One charge per (subscription, kind, period) (and
 * resource where a kind bills per resource); the unique index makes a second, concurrent or restarted run insert
 * nothing new.
 */
export const renewalChargeKey = (subscriptionId: number, periodStart: number): string => `${subscriptionId}:renewal:${periodStart}`;
export const trialConversionChargeKey = (subscriptionId: number, periodStart: number): string => `${subscriptionId}:trial_conversion:${periodStart}`;
export const resourceChargeKey = (subscriptionId: number, periodStart: number, resourceId: number): string => `${subscriptionId}:resource:${periodStart}:${resourceId}`;
export const overageChargeKey = (subscriptionId: number, periodStart: number, resourceId: number): string => `${subscriptionId}:overage:${periodStart}:${resourceId}`;
export const lateFeeChargeKey = (documentId: number): string => `doc:${documentId}:late_fee`;
