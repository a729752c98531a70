import { invalid } from '../../domain/errors';
import { fromDecimalText, fromDouble } from '../../domain/money';
import { XmlRpcDouble, type XmlRpcValue } from './codec';

/** PBA's integer NULL: "no value" in a positional integer slot. */
export const INT_NULL = -2147483648;

/**
 * Positional parameters of one PBA method, read by name so that every error names the parameter at fault
 * (e.g. field "Params[3] (Email)").
 */
export class Params {
  constructor(
    private readonly values: readonly XmlRpcValue[],
    private readonly method: string,
  ) {}

  get length(): number {
    return this.values.length;
  }

  raw(i: number): XmlRpcValue {
    return this.values[i];
  }

  private field(i: number, name: string): string {
    return `Params[${i}] (${name})`;
  }

  /** A required integer (i4/int/i8, or digits in a string as some clients send). */
  int(i: number, name: string): number {
    const v = this.optInt(i, name);
    if (v === undefined) throw invalid(this.field(i, name), `${this.method} needs ${name} as parameter ${i + 1}.`);
    return v;
  }

  optInt(i: number, name: string): number | undefined {
    const v = this.values[i];
    if (v === undefined || v === null || v === INT_NULL || v === '') return undefined;
    if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
    if (typeof v === 'string' && /^-?\d{1,15}$/.test(v.trim())) return Number(v.trim());
    if (typeof v === 'boolean') return v ? 1 : 0;
    throw invalid(this.field(i, name), `${name} must be an integer.`);
  }

  str(i: number, name: string): string {
    const v = this.optStr(i, name);
    if (v === undefined) throw invalid(this.field(i, name), `${this.method} needs ${name} as parameter ${i + 1}.`);
    return v;
  }

  /** Text; an absent member, nil or the integer NULL is undefined. */
  optStr(i: number, name: string): string | undefined {
    const v = this.values[i];
    if (v === undefined || v === null || v === INT_NULL) return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'bigint') return String(v);
    if (v instanceof XmlRpcDouble) return v.text;
    throw invalid(this.field(i, name), `${name} must be a string.`);
  }

  /** A password, card number or CVV: PBA clients may prefix it with XXX, which is stripped. Never logged. */
  secret(i: number, name: string): string {
    const v = this.str(i, name);
    return v.startsWith('XXX') ? v.slice(3) : v;
  }

  /** Money in a currency: a <double> is rounded from its wire text (never through a float), as are strings and ints. */
  money(i: number, name: string, currency: string): bigint {
    const v = this.values[i];
    const f = this.field(i, name);
    if (v instanceof XmlRpcDouble) return fromDecimalText(v.text, currency, f);
    if (typeof v === 'number') return fromDouble(v, currency, f);
    if (typeof v === 'string' && v.trim() !== '') return fromDecimalText(v.trim(), currency, f);
    throw invalid(f, `${this.method} needs ${name} (an amount) as parameter ${i + 1}.`);
  }
}

/** Sorts list rows by PBA's SortNo: the 1-based column; anything else keeps the natural order. */
export function sortRows(rows: XmlRpcValue[][], sortNo: number | undefined): XmlRpcValue[][] {
  if (!sortNo || sortNo < 1 || rows.length === 0 || sortNo > rows[0].length) return rows;
  const col = sortNo - 1;
  const key = (v: XmlRpcValue): number | string => (v instanceof XmlRpcDouble ? v.value : typeof v === 'number' ? v : String(v ?? '').toLowerCase());
  return [...rows].sort((a, b) => {
    const x = key(a[col]);
    const y = key(b[col]);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/** Money as PBA wrote it: a <double>, rounded to the currency's exponent, with its exact decimal text. */
export function moneyDouble(text: string): XmlRpcDouble {
  return new XmlRpcDouble(text);
}
