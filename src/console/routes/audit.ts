import type { ConsoleRoutes } from '../app';
import { likeTerm, listPage } from '../lists';

/** The audit trail: who changed what, filtered by object, operation, outcome and channel. */
export function auditPages(r: ConsoleRoutes): void {
  r.get('/audit', async (page) => {
    const { db } = page.services.deps;
    const q = db('audit_log as l').leftJoin('accounts as a', 'a.id', 'l.actor_account_id').leftJoin('users as u', 'u.id', 'l.actor_user_id');
    // The provider sees every record (failed sign-ins have no account); a reseller those of its subtree's actors.
    if (page.isProvider) q.where((w) => w.whereNull('a.id').orWhere('a.path', 'like', `${page.actor.accountPath}%`));
    else q.where('a.path', 'like', `${page.actor.accountPath}%`);
    q.select('l.id', 'l.at', 'l.channel', 'l.operation', 'l.object_type', 'l.object_id', 'l.outcome', 'l.error_code', 'l.details', 'l.remote_addr', 'u.login', 'a.company_name');
    if (page.query('objectType')) q.andWhere('l.object_type', page.query('objectType'));
    if (page.query('objectId')) q.andWhere('l.object_id', page.query('objectId'));
    if (page.query('operation')) q.andWhereRaw("l.operation LIKE ? ESCAPE '!'", [likeTerm(page.query('operation'))]);
    if (['ok', 'error'].includes(page.query('outcome'))) q.andWhere('l.outcome', page.query('outcome'));
    if (page.query('channel')) q.andWhere('l.channel', page.query('channel'));
    const list = await listPage(page, q, {
      sorts: { at: 'l.at', operation: 'l.operation', object: 'l.object_type', outcome: 'l.outcome', channel: 'l.channel' },
      defaultSort: 'at',
      defaultDir: 'desc',
      filters: ['objectType', 'objectId', 'operation', 'outcome', 'channel'],
      tieBreaker: 'l.id',
    });
    const objectTypes = ((await db('audit_log').distinct('object_type').whereNotNull('object_type').orderBy('object_type')) as { object_type: string }[]).map((x) => x.object_type);
    await page.render('audit.njk', {
      title: 'Audit log',
      list,
      objectTypes,
      channels: ['soap', 'xmlrpc', 'console', 'job', 'system'],
      f: { objectType: page.query('objectType'), objectId: page.query('objectId'), operation: page.query('operation'), outcome: page.query('outcome'), channel: page.query('channel') },
    });
  });
}
