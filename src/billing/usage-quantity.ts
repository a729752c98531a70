import { invalid } from '../domain/errors';

/**
 * Resource quantities (usage, limits) are DECIMAL(20,4) in the database. In code they are bigints scaled by
 * 10,000 so that adding reports never drifts the way floats would: 12.5 GB is 125000n.
 */
export const QTY_SCALE = 10_000n;

const QTY = /^(-?)(\d{1,16})(?:\.(\d{1,4}))?$/;

/** Decimal text (at most 4 decimals) -> scaled bigint. */
export function parseQuantity(text: string, field: string): bigint {
  const m = typeof text === 'string' ? QTY.exec(text.trim()) : null;
  if (!m) throw invalid(field, `${field} must be a decimal number with at most 4 decimals, e.g. 12.5; got '${String(text)}'.`);
  const v = BigInt(m[2]!) * QTY_SCALE + BigInt((m[3] ?? '').padEnd(4, '0'));
  return m[1] === '-' ? -v : v;
}

/** A number from a wire (XML-RPC double) -> scaled bigint, through its shortest decimal text. */
export function quantityFromNumber(n: number, field: string): bigint {
  if (typeof n !== 'number' || !Number.isFinite(n)) throw invalid(field, `${field} must be a finite number.`);
  const s = String(n);
  if (/e/i.test(s)) throw invalid(field, `${field} is out of range: ${s}.`);
  return parseQuantity(s, field);
}

/** A DECIMAL column as read (number on SQLite, "12.5000" on MariaDB) -> scaled bigint. */
export function quantityFromDb(v: unknown): bigint {
  if (v === null || v === undefined) return 0n;
  if (typeof v === 'bigint') return v * QTY_SCALE;
  if (typeof v === 'number') return BigInt(Math.round(v * 10_000));
  return parseQuantity(String(v), 'quantity');
}

/** Scaled bigint -> plain decimal text without trailing zeros ("12.5", "3"). */
export function formatQuantity(q: bigint): string {
  const neg = q < 0n;
  const a = neg ? -q : q;
  const int = a / QTY_SCALE;
  const frac = (a % QTY_SCALE).toString().padStart(4, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${int}${frac ? `.${frac}` : ''}`;
}
