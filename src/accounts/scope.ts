import type { Actor } from '../context';
import type { Conn } from '../db/knex';
import { invalid, notFound } from '../domain/errors';
import { positiveId } from '../domain/fields';

/** Is account `accountId` inside the subtree rooted at `ancestorPath` (itself included)? One indexed query. */
export async function isInSubtree(conn: Conn, ancestorPath: string, accountId: number): Promise<boolean> {
  const row = await conn('accounts').where({ id: accountId }).andWhere('path', 'like', `${ancestorPath}%`).first('id');
  return row !== undefined;
}

/** Loads an account the actor may see; anything outside its subtree answers exactly like a missing one. */
export async function scopedAccount(conn: Conn, actor: Actor, accountId: number): Promise<AccountRow> {
  const row = (await conn('accounts').where({ id: accountId }).andWhere('path', 'like', `${actor.accountPath}%`).first()) as AccountRow | undefined;
  if (!row) throw notFound('Account', accountId);
  return row;
}

/**
 * The vendor (provider or reseller) an actor acts for: `vendorAccountId` when given (inside the actor's subtree,
 * else NOT_FOUND), otherwise the actor's own account. A customer is refused on vendorAccountId, naming what only
 * vendors do (`keeps`, e.g. "keep a catalog", "issue promo codes").
 */
export async function scopedVendor(conn: Conn, actor: Actor, vendorAccountId: number | null | undefined, keeps: string): Promise<AccountRow> {
  const id = vendorAccountId === undefined || vendorAccountId === null ? actor.accountId : positiveId(vendorAccountId, 'vendorAccountId');
  const row = await scopedAccount(conn, actor, id);
  if (row.type === 'customer') throw invalid('vendorAccountId', `Account ${id} is a customer; only the provider and resellers ${keeps}.`);
  return row;
}

export interface AccountRow {
  id: number;
  vendor_id: number | null;
  type: 'provider' | 'reseller' | 'customer';
  reseller_kind: 'affiliate' | 'basic' | 'advanced' | null;
  status: 'active' | 'suspended' | 'closed';
  company_name: string | null;
  currency: string;
  tax_status: 'taxable' | 'exempt';
  external_id: string | null;
  path: string;
  address1: string | null;
  address2: string | null;
  city: string | null;
  state: string | null;
  zip: string | null;
  country: string | null;
  postal_address: string | null;
  time_zone: string;
  created_at: number;
  updated_at: number;
}

/** Ancestor ids of an account, nearest first, from its path. */
export function ancestorIds(path: string): number[] {
  return path.split('/').filter(Boolean).map(Number).reverse().slice(1);
}
