import { success, type FraudCheckRequest, type FraudScreen, type FraudVerdict, type Money, type Outcome, type PluginContext, type PluginFactory } from '../../../src/plugins/sdk';
import { DISPOSABLE_DOMAINS } from './disposable-domains';

/**
 * A rule-based fraud screen. Each rule that fires gives a reason and a verdict (suspect or reject); the order's
 * verdict is the worst of them, pass when none fires. Velocity counts come from the core (orders screened within
 * windowSeconds, not counting this one).
 */

export interface RulesSettings {
  amountThresholds: Money[];
  ipCountryMismatch: boolean;
  windowSeconds: number;
  maxOrdersPerAccount?: number;
  hardMaxOrdersPerAccount?: number;
  maxOrdersPerIp?: number;
  hardMaxOrdersPerIp?: number;
  disposableEmail: 'reject' | 'suspect' | 'ignore';
  disposableDomains: ReadonlySet<string>;
}

type Finding = { verdict: 'suspect' | 'reject'; reason: string };

const DEFAULT_WINDOW_SECONDS = 86_400;
// Each suspect rule adds to the score; a reject rule makes it 100.
const SUSPECT_WEIGHT = 40;

function count(raw: unknown, name: string): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`rules screen: ${name} must be a whole number of 1 or more.`);
  return n;
}

function threshold(raw: unknown): Money {
  const m = raw as Partial<Money> | null;
  if (!m || typeof m.amount !== 'string' || !/^\d{1,19}$/.test(m.amount) || typeof m.currency !== 'string' || !/^[A-Z]{3}$/.test(m.currency)) {
    throw new Error('rules screen: amountThreshold must be {amount: "minor units", currency: "ISO 4217 code"}.');
  }
  return { amount: m.amount, currency: m.currency };
}

const domainList = (raw: unknown): string[] => (Array.isArray(raw) ? raw.map((d) => String(d).trim().toLowerCase()).filter(Boolean) : []);

export function readSettings(raw: Record<string, unknown>): RulesSettings {
  const amountThresholds = raw.amountThreshold === undefined ? [] : (Array.isArray(raw.amountThreshold) ? raw.amountThreshold : [raw.amountThreshold]).map(threshold);
  const windowSeconds = count(raw.windowSeconds, 'windowSeconds') ?? DEFAULT_WINDOW_SECONDS;
  const disposableEmail = raw.disposableEmail ?? 'reject';
  if (disposableEmail !== 'reject' && disposableEmail !== 'suspect' && disposableEmail !== 'ignore') {
    throw new Error('rules screen: disposableEmail must be reject, suspect or ignore.');
  }
  const allowed = new Set(domainList(raw.allowedDomains));
  const domains = new Set([...DISPOSABLE_DOMAINS, ...domainList(raw.disposableDomains)].filter((d) => !allowed.has(d)));
  return {
    amountThresholds,
    ipCountryMismatch: raw.ipCountryMismatch === undefined ? true : raw.ipCountryMismatch === true,
    windowSeconds,
    maxOrdersPerAccount: count(raw.maxOrdersPerAccount, 'maxOrdersPerAccount'),
    hardMaxOrdersPerAccount: count(raw.hardMaxOrdersPerAccount, 'hardMaxOrdersPerAccount'),
    maxOrdersPerIp: count(raw.maxOrdersPerIp, 'maxOrdersPerIp'),
    hardMaxOrdersPerIp: count(raw.hardMaxOrdersPerIp, 'hardMaxOrdersPerIp'),
    disposableEmail,
    disposableDomains: domains,
  };
}

// ISO 4217 minor-unit exponents other than 2, so reasons show amounts as people write them.
const EXPONENT: Readonly<Record<string, number>> = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0, UGX: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
};

export function formatMoney(m: Money): string {
  const exponent = EXPONENT[m.currency] ?? 2;
  const digits = m.amount.replace(/^0+(?=\d)/, '').padStart(exponent + 1, '0');
  return `${exponent ? `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}` : digits} ${m.currency}`;
}

function formatWindow(seconds: number): string {
  const unit = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (seconds % 86_400 === 0) return unit(seconds / 86_400, 'day');
  if (seconds % 3_600 === 0) return unit(seconds / 3_600, 'hour');
  if (seconds % 60 === 0) return unit(seconds / 60, 'minute');
  return unit(seconds, 'second');
}

/** The e-mail's domain, or the parent domain, found in the list (so mx.mailinator.com counts too). */
function disposableDomainOf(email: string, domains: ReadonlySet<string>): string | undefined {
  const domain = email.slice(email.lastIndexOf('@') + 1).trim().toLowerCase().replace(/\.$/, '');
  const labels = domain.split('.');
  for (let i = 0; i < labels.length - 1; i++) {
    const candidate = labels.slice(i).join('.');
    if (domains.has(candidate)) return candidate;
  }
  return undefined;
}

export class RulesScreen implements FraudScreen {
  readonly settings: RulesSettings;

  constructor(private readonly context: PluginContext) {
    this.settings = readSettings(context.settings);
  }

  windowSeconds(): number {
    return this.settings.windowSeconds;
  }

  async screen(req: FraudCheckRequest): Promise<Outcome<FraudVerdict>> {
    const findings = [...this.amount(req), ...this.country(req), ...this.velocity(req), ...this.email(req)];
    const verdict = findings.some((f) => f.verdict === 'reject') ? 'reject' : findings.length ? 'suspect' : 'pass';
    const score = verdict === 'reject' ? 100 : Math.min(100, findings.length * SUSPECT_WEIGHT);
    this.context.log.debug('rules screen verdict', { orderId: req.orderId, verdict, rules: findings.length });
    return success({ verdict, reasons: findings.map((f) => f.reason), score });
  }

  private amount(req: FraudCheckRequest): Finding[] {
    const limit = this.settings.amountThresholds.find((t) => t.currency === req.money.currency);
    if (!limit || BigInt(req.money.amount) <= BigInt(limit.amount)) return [];
    return [{ verdict: 'suspect', reason: `The order amount ${formatMoney(req.money)} is over the ${formatMoney(limit)} threshold.` }];
  }

  private country(req: FraudCheckRequest): Finding[] {
    if (!this.settings.ipCountryMismatch || !req.ipCountry || !req.billingCountry) return [];
    const ip = req.ipCountry.toUpperCase();
    const billing = req.billingCountry.toUpperCase();
    if (ip === billing) return [];
    return [{ verdict: 'suspect', reason: `The order was placed from an IP address in ${ip}, but the billing country is ${billing}.` }];
  }

  private velocity(req: FraudCheckRequest): Finding[] {
    const s = this.settings;
    const window = formatWindow(s.windowSeconds);
    const rule = (orders: number, who: string, max?: number, hardMax?: number): Finding[] => {
      if (hardMax !== undefined && orders > hardMax) return [{ verdict: 'reject', reason: `${orders} orders from ${who} within ${window}: more than the ${hardMax} allowed.` }];
      if (max !== undefined && orders > max) return [{ verdict: 'suspect', reason: `${orders} orders from ${who} within ${window}: more than the usual ${max}.` }];
      return [];
    };
    // The core counts earlier orders; this one makes one more.
    const byAccount = rule(req.ordersByAccountInWindow + 1, 'this account', s.maxOrdersPerAccount, s.hardMaxOrdersPerAccount);
    const byIp = req.ipAddress ? rule(req.ordersByIpInWindow + 1, `IP address ${req.ipAddress}`, s.maxOrdersPerIp, s.hardMaxOrdersPerIp) : [];
    return [...byAccount, ...byIp];
  }

  private email(req: FraudCheckRequest): Finding[] {
    if (this.settings.disposableEmail === 'ignore' || !req.email) return [];
    const domain = disposableDomainOf(req.email, this.settings.disposableDomains);
    if (!domain) return [];
    return [{ verdict: this.settings.disposableEmail, reason: `The e-mail address is at ${domain}, a disposable-address domain.` }];
  }
}

const createRulesScreen: PluginFactory<FraudScreen> = (context) => new RulesScreen(context);
export default createRulesScreen;
