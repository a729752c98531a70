import { invalid } from './errors';

export interface Currency {
  readonly code: string;
  readonly exponent: number;
}

// ISO 4217 minor-unit exponents; the exponent fixes how many decimals an amount may carry.
const EXPONENTS: ReadonlyMap<string, number> = new Map<string, number>([
  ['AED', 2], ['AUD', 2], ['BHD', 3], ['BRL', 2], ['CAD', 2], ['CHF', 2], ['CLP', 0], ['CNY', 2],
  ['CZK', 2], ['DKK', 2], ['EUR', 2], ['GBP', 2], ['HKD', 2], ['HUF', 2], ['IDR', 2], ['ILS', 2],
  ['INR', 2], ['IQD', 3], ['ISK', 0], ['JOD', 3], ['JPY', 0], ['KRW', 0], ['KWD', 3], ['LYD', 3],
  ['MXN', 2], ['MYR', 2], ['NOK', 2], ['NZD', 2], ['OMR', 3], ['PHP', 2], ['PLN', 2], ['PYG', 0],
  ['RON', 2], ['RUB', 2], ['SAR', 2], ['SEK', 2], ['SGD', 2], ['THB', 2], ['TND', 3], ['TRY', 2],
  ['TWD', 2], ['UAH', 2], ['UGX', 0], ['USD', 2], ['VND', 0], ['XAF', 0], ['XOF', 0], ['ZAR', 2],
]);

export const CURRENCY_CODES: readonly string[] = Object.freeze([...EXPONENTS.keys()].sort());

export function isCurrency(code: string): boolean {
  return EXPONENTS.has(code);
}

export function currency(code: string): Currency {
  const exponent = EXPONENTS.get(code);
  if (exponent === undefined) {
    throw invalid('currency', `Unknown currency code '${String(code)}'; use an ISO 4217 code such as USD.`);
  }
  return { code, exponent };
}
