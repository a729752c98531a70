import { invalid } from './errors';

/** Field checks shared by every service: each throws INVALID_ARGUMENT naming the field. */

export function requiredText(value: unknown, field: string, max = 255): string {
  const v = optionalText(value, field, max);
  if (!v) throw invalid(field, `${field} is required.`);
  return v;
}

export function optionalText(value: unknown, field: string, max = 255): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' && typeof value !== 'number') throw invalid(field, `${field} must be text.`);
  const v = String(value).trim();
  if (v.length > max) throw invalid(field, `${field} may have at most ${max} characters.`);
  return v;
}

const EMAIL = /^[^\s@<>()[\]\\,;:"]+@[^\s@<>()[\]\\,;:"]+\.[^\s@<>()[\]\\,;:"]+$/;

export function email(value: unknown, field: string): string {
  const v = requiredText(value, field, 255);
  if (!EMAIL.test(v)) throw invalid(field, `${field} '${v}' is not an e-mail address.`);
  return v;
}

export function countryCode(value: unknown, field: string): string {
  const v = requiredText(value, field, 2).toUpperCase();
  if (!/^[A-Z]{2}$/.test(v)) throw invalid(field, `${field} must be an ISO 3166 alpha-2 country code such as US or DE.`);
  return v;
}

export function oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw invalid(field, `${field} must be one of ${allowed.join(', ')}.`);
  }
  return value as T;
}

export function positiveId(value: unknown, field: string): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) throw invalid(field, `${field} must be a positive whole number.`);
  return n;
}

export function nonNegativeQuantity(value: unknown, field: string): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw invalid(field, `${field} must be a number of 0 or more.`);
  if (Math.round(n * 10000) / 10000 !== n) throw invalid(field, `${field} may have at most 4 decimals.`);
  return n;
}

export function paging(page: unknown, pageSize: unknown): { page: number; pageSize: number; offset: number } {
  const p = page === undefined || page === null ? 1 : positiveId(page, 'page');
  const s = pageSize === undefined || pageSize === null ? 50 : positiveId(pageSize, 'pageSize');
  if (s > 500) throw invalid('pageSize', 'pageSize may be at most 500.');
  return { page: p, pageSize: s, offset: (p - 1) * s };
}
