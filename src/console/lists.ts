import type { Knex } from 'knex';
import type { Page } from './page';

export const PAGE_SIZE = 25;

export interface ListView<T> {
  rows: T[];
  total: number;
  page: number;
  pages: number;
  sort: string;
  dir: 'asc' | 'desc';
  /** The query string of the current filters (no page, sort), to keep them on sort and page links. */
  filterQuery: string;
}

/**
 * One page of a console list, sorted by a column the operator picked from `sorts` (name -> SQL column; anything
 * else falls back to the default, so the URL cannot name arbitrary SQL) and filtered by what the caller applied.
 */
export async function listPage<T>(
  page: Page,
  q: Knex.QueryBuilder,
  opts: { sorts: Record<string, string>; defaultSort: string; defaultDir?: 'asc' | 'desc'; filters: string[]; tieBreaker: string },
): Promise<ListView<T>> {
  const sort = opts.sorts[page.query('sort')] ? page.query('sort') : opts.defaultSort;
  const dirParam = page.query('dir');
  const dir: 'asc' | 'desc' = dirParam === 'asc' || dirParam === 'desc' ? dirParam : (opts.defaultDir ?? 'asc');
  const [{ total }] = (await q.clone().clearSelect().clearOrder().count({ total: '*' })) as { total: number | string }[];
  const count = Number(total);
  const pages = Math.max(1, Math.ceil(count / PAGE_SIZE));
  const requested = Number(page.query('page'));
  const current = Number.isInteger(requested) && requested >= 1 ? Math.min(requested, pages) : 1;
  const rows = (await q
    .orderBy(opts.sorts[sort], dir)
    .orderBy(opts.tieBreaker, dir)
    .limit(PAGE_SIZE)
    .offset((current - 1) * PAGE_SIZE)) as T[];
  const params = new URLSearchParams();
  for (const f of opts.filters) if (page.query(f)) params.set(f, page.query(f));
  return { rows, total: count, page: current, pages, sort, dir, filterQuery: params.toString() };
}

/** `%term%` for LIKE, with the term's own wildcards escaped by '!' (works alike on SQLite and MariaDB). */
export function likeTerm(term: string): string {
  return `%${term.replace(/[%_!]/g, (c) => `!${c}`)}%`;
}
