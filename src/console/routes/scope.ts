import type { Knex } from 'knex';
import type { Actor } from '../../context';

/**
 * Read models for console lists join `accounts` and keep rows inside the operator's subtree, the same rule
 * scopedAccount applies to single objects (an account's path starts with the operator account's path).
 */
export function inSubtree(q: Knex.QueryBuilder, actor: Actor, pathColumn = 'a.path'): Knex.QueryBuilder {
  return q.andWhere(pathColumn, 'like', `${actor.accountPath}%`);
}
