import type { ConsoleRoutes } from '../app';
import { ACCOUNT_STATUSES } from '../../accounts/accounts-service';
import { likeTerm, listPage } from '../lists';
import { inSubtree } from './scope';

interface AccountListRow {
  id: number;
  type: string;
  company_name: string | null;
  status: string;
  currency: string;
  path: string;
  vendor_id: number | null;
  created_at: number;
}

/** Accounts: the subtree as a tree (sorted by path) or a sorted list, searchable; one account's page. */
export function accountPages(r: ConsoleRoutes): void {
  r.get('/accounts', async (page) => {
    const { db } = page.services.deps;
    const q = inSubtree(db('accounts as a'), page.actor).andWhereNot('a.id', page.actor.accountId).select('a.id', 'a.type', 'a.company_name', 'a.status', 'a.currency', 'a.path', 'a.vendor_id', 'a.created_at');
    const search = page.query('q').trim();
    if (search) {
      q.andWhere((w) => w.whereRaw("a.company_name LIKE ? ESCAPE '!'", [likeTerm(search)]).orWhereRaw("a.external_id LIKE ? ESCAPE '!'", [likeTerm(search)]).orWhere('a.id', Number(search) || -1));
    }
    if (['reseller', 'customer'].includes(page.query('type'))) q.andWhere('a.type', page.query('type'));
    if ((ACCOUNT_STATUSES as readonly string[]).includes(page.query('status'))) q.andWhere('a.status', page.query('status'));
    const list = await listPage<AccountListRow>(page, q, {
      sorts: { tree: 'a.path', id: 'a.id', name: 'a.company_name', type: 'a.type', status: 'a.status', created: 'a.created_at' },
      defaultSort: 'tree',
      filters: ['q', 'type', 'status'],
      tieBreaker: 'a.id',
    });
    const base = page.actor.accountPath.split('/').filter(Boolean).length;
    const rows = list.rows.map((a) => ({ ...a, depth: list.sort === 'tree' ? a.path.split('/').filter(Boolean).length - base - 1 : 0 }));
    await page.render('accounts.njk', { title: 'Accounts', list: { ...list, rows }, statuses: ACCOUNT_STATUSES, q: page.query('q'), type: page.query('type'), status: page.query('status') });
  });

  r.get('/accounts/:id', async (page) => {
    const { accounts, users, subscriptions, orders, documents, domains } = page.services;
    const account = await accounts.get(page.actor, page.param('id'));
    const [subs, accountDomains, accountOrders, accountUsers, children, balance, docs] = await Promise.all([
      account.type === 'customer' ? subscriptions.list(page.actor, { accountId: account.accountId, pageSize: 100 }) : Promise.resolve({ items: [], total: 0 }),
      domains.list(page.actor, { accountId: account.accountId, pageSize: 100 }),
      orders.list(page.actor, { accountId: account.accountId, pageSize: 20 }),
      users.listForAccount(page.actor, account.accountId, { pageSize: 100 }),
      accounts.list(page.actor, { vendorAccountId: account.accountId, pageSize: 50 }),
      documents.getBalance(page.actor, account.accountId),
      documents.listDocuments(page.actor, { accountId: account.accountId, pageSize: 10 }),
    ]);
    await page.render('account.njk', { title: account.companyName || `Account ${account.accountId}`, account, subs, domains: accountDomains, orders: accountOrders, users: accountUsers, children, balance, docs });
  });
}
