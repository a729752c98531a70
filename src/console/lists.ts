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

/** The sort (one of `sorts`, else the default: the URL cannot name anything else), direction and page asked for. */
function listParams(page: Page, sorts: readonly string[], defaultSort: string, defaultDir: 'asc' | 'desc' = 'asc') {
  const sort = sorts.includes(page.query('sort')) ? page.query('sort') : defaultSort;
  const dirParam = page.query('dir');
  const dir: 'asc' | 'desc' = dirParam === 'asc' || dirParam === 'desc' ? dirParam : defaultDir;
  const requested = Number(page.query('page'));
  return { sort, dir, requested: Number.isInteger(requested) && requested >= 1 ? requested : 1 };
}

function filterQuery(page: Page, filters: string[]): string {
  const params = new URLSearchParams();
  for (const f of filters) if (page.query(f)) params.set(f, page.query(f));
  return params.toString();
}

const pagesOf = (total: number) => Math.max(1, Math.ceil(total / PAGE_SIZE));

/**
 * One page of a console list, sorted by a column the operator picked from `sorts` (name -> SQL column; anything
 * else falls back to the default, so the URL cannot name arbitrary SQL) and filtered by what the caller applied.
 */
export async function listPage<T>(
  page: Page,
  q: Knex.QueryBuilder,
  opts: { sorts: Record<string, string>; defaultSort: string; defaultDir?: 'asc' | 'desc'; filters: string[]; tieBreaker: string },
): Promise<ListView<T>> {
  const { sort, dir, requested } = listParams(page, Object.keys(opts.sorts), opts.defaultSort, opts.defaultDir);
  const [{ total }] = (await q.clone().clearSelect().clearOrder().count({ total: '*' })) as { total: number | string }[];
  const count = Number(total);
  const pages = pagesOf(count);
  const current = Math.min(requested, pages);
  const rows = (await q
    .orderBy(opts.sorts[sort], dir)
    .orderBy(opts.tieBreaker, dir)
    .limit(PAGE_SIZE)
    .offset((current - 1) * PAGE_SIZE)) as T[];
  return { rows, total: count, page: current, pages, sort, dir, filterQuery: filterQuery(page, opts.filters) };
}

/**
 * The same page of a list read through a service's list method (which keeps the operator's scope): `fetch` gets
 * the sort key (one of `sorts`), direction and page; a page past the end shows the last one.
 */
export async function serviceListPage<T, S extends string>(
  page: Page,
  fetch: (p: { sort: S; dir: 'asc' | 'desc'; page: number; pageSize: number }) => Promise<{ items: T[]; total: number }>,
  opts: { sorts: readonly S[]; defaultSort: S; defaultDir?: 'asc' | 'desc'; filters: string[] },
): Promise<ListView<T>> {
  const { sort, dir, requested } = listParams(page, opts.sorts, opts.defaultSort, opts.defaultDir);
  let result = await fetch({ sort: sort as S, dir, page: requested, pageSize: PAGE_SIZE });
  const pages = pagesOf(result.total);
  const current = Math.min(requested, pages);
  if (current !== requested) result = await fetch({ sort: sort as S, dir, page: current, pageSize: PAGE_SIZE });
  return { rows: result.items, total: result.total, page: current, pages, sort, dir, filterQuery: filterQuery(page, opts.filters) };
}

export { likeTerm } from '../db/knex';
