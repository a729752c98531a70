import { invalid } from '../domain/errors';
import type { CardDetails } from '../plugins/sdk';

/**
 * Checks on card details handed to a gateway. No message ever repeats the number or the CVV: an error or log
 * line that quoted them would put card data where it must never be.
 */

export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

/** Validates a card (number by Luhn, expiry not past at `at`, CVV shape) and returns it with the number's digits only. */
export function checkCard(card: unknown, at: Date, field = 'card'): CardDetails {
  if (card === null || typeof card !== 'object') throw invalid(field, `${field} must give number, expMonth and expYear.`);
  const c = card as Record<string, unknown>;
  const number = typeof c.number === 'string' || typeof c.number === 'number' ? String(c.number).replace(/[\s-]/g, '') : '';
  if (!/^\d{12,19}$/.test(number) || !luhnValid(number)) throw invalid(`${field}.number`, 'The card number is not valid: check the digits.');
  const expMonth = Number(c.expMonth);
  const expYear = Number(c.expYear);
  if (!Number.isInteger(expMonth) || expMonth < 1 || expMonth > 12) throw invalid(`${field}.expMonth`, 'expMonth must be a month from 1 to 12.');
  if (!Number.isInteger(expYear) || expYear < 2000 || expYear > 2100) throw invalid(`${field}.expYear`, 'expYear must be a four-digit year.');
  if (expYear < at.getUTCFullYear() || (expYear === at.getUTCFullYear() && expMonth < at.getUTCMonth() + 1)) {
    throw invalid(`${field}.expYear`, `The card expired at the end of ${String(expMonth).padStart(2, '0')}/${expYear}.`);
  }
  const cvv = c.cvv === undefined || c.cvv === null || c.cvv === '' ? undefined : String(c.cvv);
  if (cvv !== undefined && !/^\d{3,4}$/.test(cvv)) throw invalid(`${field}.cvv`, 'The security code must be 3 or 4 digits.');
  const holder = typeof c.holder === 'string' && c.holder.trim() ? c.holder.trim().slice(0, 128) : undefined;
  return { number, expMonth, expYear, ...(cvv !== undefined ? { cvv } : {}), ...(holder ? { holder } : {}) };
}

export const last4Of = (card: CardDetails): string => card.number.slice(-4);

// 12 to 19 digits, possibly grouped by spaces or dashes: the shape of a card number.
const CARD_NUMBER_LIKE = /\d(?:[ -]?\d){11,18}/g;

/** Masks anything shaped like a card number, for text from a plugin that is about to be stored or shown. */
export function scrubCardNumbers(text: string): string {
  return text.replace(CARD_NUMBER_LIKE, '[card number removed]');
}
