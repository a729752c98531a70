import type { ConsoleRoutes } from '../app';
import type { Page } from '../page';
import { ancestorIds } from '../../accounts/scope';
import { toNumber } from '../../db/knex';
import { DEFAULT_LANGUAGE, SPOOL_STATUSES, type NotificationTemplate } from '../../notifications/notifications-service';
import { MAX_DAYS_BEFORE } from '../../notifications/schedules';
import { likeTerm, listPage } from '../lists';
import { vendorChoices } from './events';

function notificationTabs(current: string) {
  return {
    tabs: [['templates', '/console/notifications', 'Templates'], ['spool', '/console/notifications/spool', 'Mail spool'], ['schedules', '/console/notifications/schedules', 'Schedules']],
    tab: current,
  };
}

/** What the template editor shows: what was posted, else the template's own text, else a starting point. */
function templateForm(page: Page, start: { name?: string; language?: string; subject?: string; html?: string; text?: string; vendorAccountId?: number }) {
  const posted = Object.keys(page.form).length > 0;
  const pick = (k: 'name' | 'language' | 'subject' | 'html' | 'text') => (posted && page.form[k] !== undefined ? page.form[k] : (start[k] ?? ''));
  return {
    name: pick('name'),
    language: pick('language') || DEFAULT_LANGUAGE,
    subject: pick('subject'),
    html: pick('html'),
    text: pick('text'),
    vendorAccountId: posted ? (page.form.vendorAccountId ?? '') : String(start.vendorAccountId ?? ''),
  };
}

/** Notification templates (own, inherited, built-in), the mail spool, and the schedules of reminders. */
export function notificationPages(r: ConsoleRoutes): void {
  r.get('/notifications', async (page) => {
    const { db } = page.services.deps;
    const { notifications } = page.services;
    const me = page.actor.accountId;
    const chain = ancestorIds(page.actor.accountPath).filter((id) => id !== me);
    // Names and languages that matter to the operator's own mail: built in, its own, and its vendors' above it.
    const above = chain.length
      ? ((await db('notification_templates').whereIn('vendor_id', chain).select('name', 'language')) as { name: string; language: string }[])
      : [];
    const visible = await notifications.listTemplates(page.actor);
    const own = visible.filter((t) => t.vendorAccountId === me);
    const builtIn = notifications.builtInTemplates();
    const pairs = new Map<string, { name: string; language: string }>();
    for (const name of Object.keys(builtIn)) pairs.set(`${name}|${DEFAULT_LANGUAGE}`, { name, language: DEFAULT_LANGUAGE });
    for (const t of [...own, ...above]) pairs.set(`${t.name}|${t.language}`, { name: t.name, language: t.language });
    const filter = page.query('name').trim();
    const names = (await db('accounts').whereIn('id', chain.length ? chain : [0]).select('id', 'company_name')) as { id: number; company_name: string | null }[];
    const nameOf = new Map(names.map((n) => [toNumber(n.id), n.company_name ?? `account ${n.id}`]));
    const rows = [];
    for (const p of [...pairs.values()].sort((a, b) => a.name.localeCompare(b.name) || a.language.localeCompare(b.language))) {
      if (filter && !p.name.includes(filter)) continue;
      const resolved = await notifications.resolveTemplate(db, me, p.name, p.language);
      const source = resolved?.source;
      const mine = own.find((t) => t.name === p.name && t.language === p.language);
      rows.push({
        ...p,
        subject: resolved?.subject ?? '',
        own: mine ?? null,
        source: mine ? 'own' : source === 'built-in' ? 'built-in' : source ? 'inherited' : 'none',
        from: source && source !== 'built-in' && !mine ? `${nameOf.get(source.vendorAccountId) ?? `account ${source.vendorAccountId}`}${source.language !== p.language ? ` (in ${source.language})` : ''}` : '',
      });
    }
    const below = visible.filter((t) => t.vendorAccountId !== me && (!filter || t.name.includes(filter)));
    const vendors = new Map((await vendorChoices(page)).map((v) => [v.id, v.name]));
    await page.render('notification-templates.njk', {
      title: 'Notification templates',
      rows,
      below: below.map((t) => ({ ...t, vendorName: vendors.get(t.vendorAccountId) ?? `account ${t.vendorAccountId}` })),
      name: filter,
      ...notificationTabs('templates'),
    });
  });

  const editor = async (page: Page, template: NotificationTemplate | null, start: Parameters<typeof templateForm>[1], status = 200) => {
    await page.render('notification-template.njk', {
      title: template ? `Template ${template.name} (${template.language})` : 'New notification template',
      template,
      f: templateForm(page, start),
      vendors: template ? [] : await vendorChoices(page),
      ...notificationTabs('templates'),
    }, status);
  };

  r.get('/notifications/templates/new', async (page) => {
    const name = page.query('name');
    const language = page.query('language') || DEFAULT_LANGUAGE;
    // Starts from what the operator's mail uses now for this name (its vendor's, or the built-in default).
    const resolved = /^[a-z][a-z0-9_.]{0,95}$/.test(name) ? await page.services.notifications.resolveTemplate(page.services.deps.db, page.actor.accountId, name, language) : null;
    await editor(page, null, { name, language, subject: resolved?.subject, html: resolved?.html, text: resolved?.text, vendorAccountId: page.actor.accountId });
  });
  r.post('/notifications/templates/new', async (page) => {
    const vendor = page.text('vendorAccountId');
    const created = await page.attempt(() =>
      page.services.notifications.createTemplate(page.actor, {
        ...(vendor ? { vendorAccountId: /^\d{1,15}$/.test(vendor) ? Number(vendor) : (vendor as unknown as number) } : {}),
        name: page.text('name') ?? '',
        language: page.text('language'),
        subject: page.form.subject ?? '',
        html: page.form.html ?? '',
        text: page.form.text ?? '',
      }),
    );
    if (!created) return editor(page, null, {}, 422);
    await page.redirect(`/console/notifications/templates/${created.templateId}`, { kind: 'ok', text: `Template ${created.name} (${created.language}) created; mail of account ${created.vendorAccountId} and the accounts below it uses it now.` });
  });

  r.get('/notifications/templates/:id', async (page) => {
    const template = await page.services.notifications.getTemplate(page.actor, page.param('id'));
    await editor(page, template, template);
  });
  r.post('/notifications/templates/:id', async (page) => {
    const template = await page.services.notifications.getTemplate(page.actor, page.param('id'));
    const saved = await page.attempt(() =>
      page.services.notifications.updateTemplate(page.actor, template.templateId, { subject: page.form.subject ?? '', html: page.form.html ?? '', text: page.form.text ?? '' }),
    );
    if (!saved) return editor(page, template, template, 422);
    await page.redirect(`/console/notifications/templates/${saved.templateId}`, { kind: 'ok', text: `Template ${saved.name} (${saved.language}) saved.` });
  });

  r.get('/notifications/spool', async (page) => {
    const { db } = page.services.deps;
    const q = db('mail_spool as m')
      .join('accounts as a', 'a.id', 'm.vendor_id')
      .where('a.path', 'like', `${page.actor.accountPath}%`)
      .select('m.id', 'm.created_at', 'm.to_address', 'm.subject', 'm.template', 'm.status', 'm.event_id', 'm.account_id');
    const status = (SPOOL_STATUSES as readonly string[]).includes(page.query('status')) ? page.query('status') : '';
    if (status) q.andWhere('m.status', status);
    if (page.query('q')) q.andWhere((w) => w.whereRaw("m.to_address LIKE ? ESCAPE '!'", [likeTerm(page.query('q'))]).orWhereRaw("m.subject LIKE ? ESCAPE '!'", [likeTerm(page.query('q'))]));
    if (page.query('template')) q.andWhere('m.template', page.query('template'));
    const list = await listPage(page, q, {
      sorts: { id: 'm.id', to: 'm.to_address', subject: 'm.subject', template: 'm.template', status: 'm.status' },
      defaultSort: 'id',
      defaultDir: 'desc',
      filters: ['status', 'q', 'template'],
      tieBreaker: 'm.id',
    });
    await page.render('mail-spool.njk', { title: 'Mail spool', list, statuses: SPOOL_STATUSES, status, q: page.query('q'), template: page.query('template'), smtp: Boolean(page.services.deps.config.smtpUrl), ...notificationTabs('spool') });
  });

  r.get('/notifications/spool/:id', async (page) => {
    const mail = await page.services.notifications.getMail(page.actor, page.param('id'));
    await page.render('mail.njk', { title: `Mail ${mail.mailId}`, mail, ...notificationTabs('spool') });
  });

  const schedulesPage = async (page: Page, status = 200) => {
    const schedules = await page.services.notificationSchedules.list(page.actor);
    const vendors = await vendorChoices(page);
    const perVendor = vendors
      .map((v) => ({ ...v, days: schedules.filter((s) => s.vendorAccountId === v.id && s.enabled).map((s) => s.daysBefore) }))
      .filter((v) => v.id === page.actor.accountId || v.days.length > 0);
    const chosen = page.form.vendorAccountId ?? page.query('vendor') ?? '';
    const vendorId = /^\d{1,15}$/.test(chosen) ? Number(chosen) : page.actor.accountId;
    const current = perVendor.find((v) => v.id === vendorId)?.days ?? [];
    await page.render('schedules.njk', {
      title: 'Notification schedules',
      perVendor,
      vendors,
      vendorId,
      daysText: page.form.daysBefore ?? current.join(', '),
      max: MAX_DAYS_BEFORE,
      ...notificationTabs('schedules'),
    }, status);
  };
  r.get('/notifications/schedules', (page) => schedulesPage(page));
  r.post('/notifications/schedules', async (page) => {
    const raw = (page.form.daysBefore ?? '').split(/[\s,;]+/).filter(Boolean);
    const days = raw.map((d) => (/^\d{1,6}$/.test(d) ? Number(d) : d));
    const vendor = page.text('vendorAccountId');
    const set = await page.attempt(() =>
      page.services.notificationSchedules.set(page.actor, { vendorAccountId: vendor && /^\d{1,15}$/.test(vendor) ? Number(vendor) : undefined, basis: 'expiration', daysBefore: days }),
    );
    if (!set) return schedulesPage(page, 422);
    const list = set.filter((s) => s.enabled).map((s) => s.daysBefore);
    await page.redirect(`/console/notifications/schedules${vendor ? `?vendor=${encodeURIComponent(vendor)}` : ''}`, {
      kind: 'ok',
      text: list.length ? `Reminders are sent ${list.join(' and ')} day(s) before expiration (event subscription.expiring).` : 'No reminders before expiration any more.',
    });
  });
}


