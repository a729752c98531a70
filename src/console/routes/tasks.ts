import type { ConsoleRoutes } from '../app';
import { TASK_STATUSES } from '../../jobs/task-queue';
import { likeTerm, listPage } from '../lists';

/** Background tasks: filter by status, queue and kind; retry a failed one, cancel a pending one. */
export function taskPages(r: ConsoleRoutes): void {
  r.get('/tasks', async (page) => {
    const { db } = page.services.deps;
    const q = db('tasks as t').leftJoin('accounts as a', 'a.id', 't.account_id');
    // The same rule as TaskQueue.list: the subtree's tasks; system tasks (no account) only for the provider.
    if (page.isProvider) q.where((w) => w.whereNull('t.account_id').orWhere('a.path', 'like', `${page.actor.accountPath}%`));
    else q.where('a.path', 'like', `${page.actor.accountPath}%`);
    q.select('t.id', 't.kind', 't.queue', 't.status', 't.attempts', 't.max_attempts', 't.last_error', 't.object_type', 't.object_id', 't.run_at', 't.updated_at', 'a.company_name', 'a.id as account_id');
    if ((TASK_STATUSES as readonly string[]).includes(page.query('status'))) q.andWhere('t.status', page.query('status'));
    if (page.query('queue')) q.andWhere('t.queue', page.query('queue'));
    if (page.query('kind')) q.andWhereRaw("t.kind LIKE ? ESCAPE '!'", [likeTerm(page.query('kind'))]);
    const list = await listPage(page, q, {
      sorts: { id: 't.id', kind: 't.kind', queue: 't.queue', status: 't.status', attempts: 't.attempts', runAt: 't.run_at', updated: 't.updated_at' },
      defaultSort: 'id',
      defaultDir: 'desc',
      filters: ['status', 'queue', 'kind'],
      tieBreaker: 't.id',
    });
    const queues = ((await db('tasks').distinct('queue').orderBy('queue')) as { queue: string }[]).map((x) => x.queue);
    await page.render('tasks.njk', { title: 'Tasks', list, statuses: TASK_STATUSES, queues, status: page.query('status'), queue: page.query('queue'), kind: page.query('kind') });
  });

  for (const action of ['retry', 'cancel'] as const) {
    r.post(`/tasks/:id/${action}`, async (page) => {
      const id = page.param('id');
      const back = `/console/tasks${page.text('back')?.startsWith('?') ? page.text('back') : ''}`;
      const done = await page.attempt(() => page.services.tasks[action](page.actor, id));
      if (!done) return page.redirect(back, { kind: 'error', text: page.formError ?? `Task ${id} could not be changed.` });
      await page.redirect(back, { kind: 'ok', text: action === 'retry' ? `Task ${id} (${done.kind}) will run again now.` : `Task ${id} canceled.` });
    });
  }
}
