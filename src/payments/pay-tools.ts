import { recordChange } from '../audit/record-change';
import type { Actor, Deps } from '../context';
import { toBool, toDate, type Conn } from '../db/knex';
import { AppError } from '../domain/errors';
import { safeErrorMessage } from '../logger';
import type { CardDetails, Outcome, PaymentGateway, StoredPayTool } from '../plugins/sdk';
import { last4Of, scrubCardNumbers } from './card';
import { randomGatewayKey } from './payment-records';
import { PLUGIN_ERROR_CODE } from './payment-states';

/** A stored card as anyone outside the payments context sees it: never the number, never the token. */
export interface PayTool {
  payToolId: number;
  accountId: number;
  gatewayInstanceId: number;
  brand: string;
  last4: string;
  expMonth: number;
  expYear: number;
  isDefault: boolean;
  createdAt: Date;
}

export interface PayToolRow {
  id: number;
  account_id: number;
  gateway_instance_id: number;
  token: string;
  brand: string;
  last4: string;
  exp_month: number;
  exp_year: number;
  is_default: unknown;
  created_at: number;
}

export function toPayTool(r: PayToolRow): PayTool {
  return {
    payToolId: Number(r.id),
    accountId: Number(r.account_id),
    gatewayInstanceId: Number(r.gateway_instance_id),
    brand: r.brand,
    last4: r.last4,
    expMonth: Number(r.exp_month),
    expYear: Number(r.exp_year),
    isDefault: toBool(r.is_default),
    createdAt: toDate(r.created_at),
  };
}

export async function payToolsOf(conn: Conn, accountId: number): Promise<PayTool[]> {
  const rows = (await conn('pay_tools').where({ account_id: accountId }).orderBy('id')) as PayToolRow[];
  return rows.map(toPayTool);
}

function isTimeout(e: unknown): boolean {
  return (e as Error)?.name === 'GatewayTimeoutError';
}

/** Asks the gateway to keep the card, and checks that what came back is a token and not card data. */
export async function tokenize(gateway: PaymentGateway, card: CardDetails, accountId: number | string): Promise<StoredPayTool> {
  let outcome: Outcome<StoredPayTool>;
  try {
    outcome = await gateway.storePayTool({ idempotencyKey: randomGatewayKey(), card, customerReference: `account-${accountId}` });
  } catch (e) {
    if (isTimeout(e)) throw new AppError('UNAVAILABLE', 'The payment gateway did not answer in time; the card was not stored. Try again.');
    throw new AppError('PROVIDER_ERROR', `The payment plugin failed: ${scrubCardNumbers(safeErrorMessage(e))}`);
  }
  if (outcome?.status === 'failure') {
    const message = scrubCardNumbers(String(outcome.message ?? 'The gateway refused the card.'));
    if (outcome.code === PLUGIN_ERROR_CODE || outcome.retryable) throw new AppError('PROVIDER_ERROR', message);
    throw new AppError('PAYMENT_DECLINED', message, 'card');
  }
  if (outcome?.status !== 'success') throw new AppError('PROVIDER_ERROR', 'The payment gateway did not store the card; try again later.');
  const tool = outcome.result;
  const sane =
    typeof tool?.token === 'string' &&
    tool.token.length > 0 &&
    tool.token.length <= 255 &&
    !tool.token.includes(card.number) &&
    tool.last4 === last4Of(card) &&
    typeof tool.brand === 'string';
  if (!sane) throw new AppError('PROVIDER_ERROR', 'The payment gateway answered with something other than a token, brand and last 4 digits; nothing was stored.');
  return tool;
}

/** Stores a token with its brand, last 4 digits and expiry; the first tool of an account becomes its default. */
export async function insertPayTool(
  deps: Deps,
  actor: Actor,
  input: { accountId: number; gatewayInstanceId: number; tool: StoredPayTool; card: Pick<CardDetails, 'expMonth' | 'expYear'>; makeDefault: boolean },
): Promise<PayTool> {
  return deps.db.transaction(async (tx) => {
    const now = deps.clock.now();
    const hasDefault = await tx('pay_tools').where({ account_id: input.accountId, is_default: true }).first('id');
    const isDefault = input.makeDefault || !hasDefault;
    if (isDefault && hasDefault) await tx('pay_tools').where({ account_id: input.accountId }).update({ is_default: false });
    const [id] = (await tx('pay_tools').insert({
      account_id: input.accountId,
      gateway_instance_id: input.gatewayInstanceId,
      token: input.tool.token,
      brand: input.tool.brand.slice(0, 32),
      last4: input.tool.last4,
      // The card's expiry as given, which the core checked; a gateway may not echo it back.
      exp_month: input.card.expMonth,
      exp_year: input.card.expYear,
      is_default: isDefault,
      created_at: now.getTime(),
    })) as number[];
    const row = (await tx('pay_tools').where({ id }).first()) as PayToolRow;
    const view = toPayTool(row);
    await recordChange(tx, actor, now, {
      operation: 'StorePayTool',
      objectType: 'pay_tool',
      objectId: view.payToolId,
      details: { accountId: view.accountId, gatewayInstanceId: view.gatewayInstanceId, brand: view.brand, last4: view.last4 },
      event: {
        name: 'pay_tool.stored',
        accountId: view.accountId,
        payload: { payToolId: view.payToolId, brand: view.brand, last4: view.last4, expMonth: view.expMonth, expYear: view.expYear, isDefault: view.isDefault },
      },
    });
    return view;
  });
}
