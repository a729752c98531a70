import { scopedAccount } from '../accounts/scope';
import { recordChange } from '../audit/record-change';
import type { Actor, Deps } from '../context';
import type { Conn } from '../db/knex';
import { toDate, toOptionalNumber } from '../db/knex';
import { currency as currencyOf } from '../domain/currency';
import { invalid } from '../domain/errors';
import { countryCode, optionalText, positiveId, requiredText } from '../domain/fields';
import { safeErrorMessage } from '../logger';
import type { FraudScreen, FraudVerdict, Outcome } from '../plugins/sdk';

export type Verdict = FraudVerdict['verdict'];
const VERDICTS: readonly Verdict[] = ['pass', 'suspect', 'reject'];

/** A fraud screen plugin instance, with the name its verdicts are recorded under. */
export interface NamedScreen {
  instanceName: string;
  screen: FraudScreen;
}

export interface ScreenInput {
  orderId: number;
  accountId: number;
  amount: bigint;
  currency: string;
  email: string;
  ipAddress?: string;
  ipCountry?: string;
  billingCountry?: string;
}

export interface FraudCheck {
  fraudCheckId: number;
  orderId: number;
  accountId: number;
  instanceName: string;
  verdict: Verdict;
  reasons: string[];
  score: number | null;
  createdAt: Date;
}

interface FraudCheckRow {
  id: number;
  order_id: number;
  account_id: number;
  instance_name: string;
  verdict: Verdict;
  reasons: string;
  score: unknown;
  ip_address: string | null;
  created_at: number;
}

const DEFAULT_WINDOW_SECONDS = 86_400;
const MAX_REASONS = 50;

function toFraudCheck(r: FraudCheckRow): FraudCheck {
  return {
    fraudCheckId: Number(r.id),
    orderId: Number(r.order_id),
    accountId: Number(r.account_id),
    instanceName: r.instance_name,
    verdict: r.verdict,
    reasons: JSON.parse(r.reasons) as string[],
    score: toOptionalNumber(r.score),
    createdAt: toDate(r.created_at),
  };
}

/**
 * Fraud screening of orders. The core counts the account's and the IP address's earlier orders within the
 * screen's window from fraud_checks, asks the screen, and keeps its verdict. A screen that fails or does not
 * answer makes the order suspect, so an operator looks at it rather than letting it through unscreened.
 */
export class FraudService {
  constructor(private readonly deps: Deps) {}

  async screen(actor: Actor, named: NamedScreen, input: ScreenInput): Promise<FraudCheck> {
    const instanceName = requiredText(named?.instanceName, 'instanceName', 96);
    const orderId = positiveId(input.orderId, 'orderId');
    const account = await scopedAccount(this.deps.db, actor, positiveId(input.accountId, 'accountId'));
    if (typeof input.amount !== 'bigint' || input.amount < 0n) throw invalid('amount', 'amount must be an amount in minor units, 0 or more.');
    const currency = currencyOf(input.currency).code;
    const email = optionalText(input.email, 'email', 255) ?? '';
    const ipAddress = optionalText(input.ipAddress, 'ipAddress', 64)?.toLowerCase() || undefined;
    const ipCountry = input.ipCountry ? countryCode(input.ipCountry, 'ipCountry') : undefined;
    const billingCountry = input.billingCountry ? countryCode(input.billingCountry, 'billingCountry') : (account.country ?? undefined) || undefined;

    const windowSeconds = this.windowOf(named.screen);
    const since = this.deps.clock.now().getTime() - windowSeconds * 1000;
    const ordersByAccountInWindow = await this.ordersSince(this.deps.db, { account_id: account.id }, orderId, since);
    const ordersByIpInWindow = ipAddress ? await this.ordersSince(this.deps.db, { ip_address: ipAddress }, orderId, since) : 0;

    let verdict: FraudVerdict;
    try {
      const outcome = await named.screen.screen({
        orderId,
        accountId: account.id,
        money: { amount: input.amount.toString(), currency },
        email,
        ipAddress,
        ipCountry,
        billingCountry,
        ordersByAccountInWindow,
        ordersByIpInWindow,
      });
      verdict = this.verdictOf(instanceName, outcome);
    } catch (e) {
      verdict = { verdict: 'suspect', reasons: [`Fraud screen '${instanceName}' failed (${safeErrorMessage(e)}); an operator should review the order.`] };
    }

    return this.deps.db.transaction(async (tx) => {
      const now = this.deps.clock.now();
      const [id] = (await tx('fraud_checks').insert({
        order_id: orderId,
        account_id: account.id,
        instance_name: instanceName,
        verdict: verdict.verdict,
        reasons: JSON.stringify(verdict.reasons),
        score: verdict.score ?? null,
        ip_address: ipAddress ?? null,
        created_at: now.getTime(),
      })) as number[];
      const check = toFraudCheck((await tx('fraud_checks').where({ id }).first()) as FraudCheckRow);
      await recordChange(tx, actor, now, {
        operation: 'ScreenOrder',
        objectType: 'order',
        objectId: orderId,
        details: { fraudCheckId: check.fraudCheckId, instanceName, verdict: check.verdict, ordersByAccountInWindow, ordersByIpInWindow },
        event: {
          name: 'fraud.checked',
          accountId: account.id,
          payload: { fraudCheckId: check.fraudCheckId, orderId, instanceName, verdict: check.verdict, reasons: check.reasons, score: check.score },
        },
      });
      return check;
    });
  }

  /** The screenings of an order, oldest first. */
  async checksOf(actor: Actor, orderId: number): Promise<FraudCheck[]> {
    const rows = (await this.deps.db('fraud_checks as f')
      .join('accounts as a', 'a.id', 'f.account_id')
      .where('f.order_id', positiveId(orderId, 'orderId'))
      .andWhere('a.path', 'like', `${actor.accountPath}%`)
      .orderBy('f.id')
      .select('f.*')) as FraudCheckRow[];
    return rows.map(toFraudCheck);
  }

  private windowOf(screen: FraudScreen): number {
    const w = Number(screen.windowSeconds());
    return Number.isFinite(w) && w > 0 ? Math.floor(w) : DEFAULT_WINDOW_SECONDS;
  }

  /** Distinct earlier orders screened since `since`: a re-screened order counts once, this one not at all. */
  private async ordersSince(conn: Conn, where: Record<string, unknown>, orderId: number, since: number): Promise<number> {
    const [row] = (await conn('fraud_checks').where(where).andWhere('created_at', '>=', since).andWhereNot('order_id', orderId).countDistinct({ n: 'order_id' })) as {
      n: number | string;
    }[];
    return Number(row?.n ?? 0);
  }

  private verdictOf(instanceName: string, outcome: Outcome<FraudVerdict>): FraudVerdict {
    if (outcome?.status === 'failure') {
      return { verdict: 'suspect', reasons: [`Fraud screen '${instanceName}' could not screen the order (${outcome.message}); an operator should review it.`] };
    }
    if (outcome?.status === 'pending') {
      return { verdict: 'suspect', reasons: [`Fraud screen '${instanceName}' has not decided yet${outcome.message ? ` (${outcome.message})` : ''}; an operator should review the order.`] };
    }
    const v = outcome?.status === 'success' ? outcome.result : undefined;
    if (!v || !VERDICTS.includes(v.verdict) || !Array.isArray(v.reasons)) {
      return { verdict: 'suspect', reasons: [`Fraud screen '${instanceName}' answered something other than a verdict; an operator should review the order.`] };
    }
    const reasons = v.reasons.slice(0, MAX_REASONS).map((r) => String(r).slice(0, 500));
    const score = typeof v.score === 'number' && Number.isFinite(v.score) ? v.score : undefined;
    return { verdict: v.verdict, reasons, score };
  }
}
