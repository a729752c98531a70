import nodemailer, { type Transporter } from 'nodemailer';
import { recordChange } from '../audit/record-change';
import { ancestorIds, scopedVendor, type AccountRow } from '../accounts/scope';
import type { Actor, Deps } from '../context';
import { toNumber, type Conn } from '../db/knex';
import { inTransaction } from '../db/transaction';
import { invalid, notFound } from '../domain/errors';
import { oneOf, optionalText, paging, positiveId, requiredText } from '../domain/fields';
import { BUILT_IN_TEMPLATES, type TemplateText } from './defaults';
import { checkTemplate, MAX_TEMPLATE_CHARS, renderTemplate } from './render';
import { isUniqueViolation } from '../idempotency';

export const DEFAULT_LANGUAGE = 'en';
export const SPOOL_STATUSES = ['spooled', 'sent'] as const;

export interface NotificationTemplate extends TemplateText {
  templateId: number;
  vendorAccountId: number;
  name: string;
  language: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface TemplateInput {
  vendorAccountId?: number;
  name?: string;
  language?: string;
  subject?: string;
  html?: string;
  text?: string;
}

/** Where a resolved template came from: a vendor's own (or an ancestor's), or the built-in default. */
export interface ResolvedTemplate extends TemplateText {
  source: { vendorAccountId: number; templateId: number; language: string } | 'built-in';
}

export interface SpoolEntry {
  mailId: number;
  vendorAccountId: number;
  accountId: number | null;
  eventId: number | null;
  template: string;
  to: string;
  subject: string;
  html: string;
  text: string;
  status: (typeof SPOOL_STATUSES)[number];
  createdAt: Date;
}

export interface OutgoingMail extends TemplateText {
  vendorAccountId: number;
  accountId: number | null;
  eventId: number | null;
  template: string;
  to: string;
  /** One message per key: a retried delivery that already sent finds it and does not send again. */
  dedupeKey: string;
}

interface TemplateRow {
  id: number;
  vendor_id: number;
  name: string;
  language: string;
  subject: string;
  html: string;
  text: string;
  created_at: number;
  updated_at: number;
}

interface SpoolRow {
  id: number;
  vendor_id: number;
  account_id: number | null;
  event_id: number | null;
  template: string;
  to_address: string;
  subject: string;
  html: string;
  text: string;
  status: (typeof SPOOL_STATUSES)[number];
  created_at: number;
}

const NAME = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$/;
const LANGUAGE = /^[a-z]{2}(-[A-Za-z]{2})?$/;

function templateName(v: unknown, field = 'name'): string {
  const n = requiredText(v, field, 96);
  if (!NAME.test(n)) throw invalid(field, `${field} '${n}' must be a template name such as order.placed (lower case, dot separated).`);
  return n;
}

function language(v: unknown, field = 'language'): string {
  const l = optionalText(v, field, 16) || DEFAULT_LANGUAGE;
  if (!LANGUAGE.test(l)) throw invalid(field, `${field} '${l}' must be a language code such as en or pt-BR.`);
  return l;
}

function part(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string') throw invalid(field, `${field} is required.`);
  if (v.length > max) throw invalid(field, `${field} may have at most ${max} characters.`);
  if (!v.trim()) throw invalid(field, `${field} is required.`);
  return v;
}

function toTemplate(r: TemplateRow): NotificationTemplate {
  return {
    templateId: toNumber(r.id),
    vendorAccountId: toNumber(r.vendor_id),
    name: r.name,
    language: r.language,
    subject: r.subject,
    html: r.html,
    text: r.text,
    createdAt: new Date(toNumber(r.created_at)),
    updatedAt: new Date(toNumber(r.updated_at)),
  };
}

function toSpool(r: SpoolRow): SpoolEntry {
  return {
    mailId: toNumber(r.id),
    vendorAccountId: toNumber(r.vendor_id),
    accountId: r.account_id === null ? null : toNumber(r.account_id),
    eventId: r.event_id === null ? null : toNumber(r.event_id),
    template: r.template,
    to: r.to_address,
    subject: r.subject,
    html: r.html,
    text: r.text,
    status: r.status,
    createdAt: new Date(toNumber(r.created_at)),
  };
}


/**
 * Notification templates per vendor and language (a reseller's own, else its parent's ... else the built-in
 * default), rendered with auto-escaping; mail goes out by SMTP when smtpUrl is configured, and is kept in the
 * mail spool either way (status sent or spooled) for the console to show.
 */
export class NotificationsService {
  private transport: Transporter | undefined;

  constructor(private readonly deps: Deps) {}

  async createTemplate(actor: Actor, input: TemplateInput): Promise<NotificationTemplate> {
    const vendor = await this.vendor(actor, input.vendorAccountId);
    const t = {
      name: templateName(input.name),
      language: language(input.language),
      subject: part(input.subject, 'subject', 998),
      html: part(input.html, 'html', MAX_TEMPLATE_CHARS),
      text: part(input.text, 'text', MAX_TEMPLATE_CHARS),
    };
    checkTemplate(t);
    return inTransaction(this.deps.db, async (tx) => {
      const dup = await tx('notification_templates').where({ vendor_id: vendor.id, name: t.name, language: t.language }).first('id');
      if (dup) throw invalid('name', `Account ${vendor.id} has a template '${t.name}' in '${t.language}' already; update it instead.`);
      const now = this.deps.clock.now();
      const [id] = (await tx('notification_templates').insert({ vendor_id: vendor.id, ...t, created_at: now.getTime(), updated_at: now.getTime() })) as number[];
      const templateId = toNumber(id);
      await recordChange(tx, actor, now, {
        operation: 'CreateNotificationTemplate',
        objectType: 'notification_template',
        objectId: templateId,
        details: { name: t.name, language: t.language },
        event: { name: 'notification_template.created', accountId: toNumber(vendor.id), payload: { templateId, vendorAccountId: toNumber(vendor.id), name: t.name, language: t.language } },
      });
      return toTemplate((await tx('notification_templates').where({ id: templateId }).first()) as TemplateRow);
    });
  }

  async updateTemplate(actor: Actor, templateId: number, input: TemplateInput): Promise<NotificationTemplate> {
    if (input.name !== undefined || input.language !== undefined || input.vendorAccountId !== undefined) {
      throw invalid(input.name !== undefined ? 'name' : input.language !== undefined ? 'language' : 'vendorAccountId', 'A template keeps its vendor, name and language; change subject, html or text.');
    }
    return inTransaction(this.deps.db, async (tx) => {
      const row = await this.scopedTemplate(tx, actor, templateId);
      const next = {
        subject: input.subject === undefined ? row.subject : part(input.subject, 'subject', 998),
        html: input.html === undefined ? row.html : part(input.html, 'html', MAX_TEMPLATE_CHARS),
        text: input.text === undefined ? row.text : part(input.text, 'text', MAX_TEMPLATE_CHARS),
      };
      checkTemplate(next);
      const now = this.deps.clock.now();
      await tx('notification_templates').where({ id: row.id }).update({ ...next, updated_at: now.getTime() });
      const changed = (['subject', 'html', 'text'] as const).filter((k) => input[k] !== undefined);
      await recordChange(tx, actor, now, {
        operation: 'UpdateNotificationTemplate',
        objectType: 'notification_template',
        objectId: toNumber(row.id),
        details: { name: row.name, language: row.language, changed },
        event: { name: 'notification_template.updated', accountId: toNumber(row.vendor_id), payload: { templateId: toNumber(row.id), name: row.name, language: row.language, changed } },
      });
      return toTemplate((await tx('notification_templates').where({ id: row.id }).first()) as TemplateRow);
    });
  }

  async getTemplate(actor: Actor, templateId: number): Promise<NotificationTemplate> {
    return toTemplate(await this.scopedTemplate(this.deps.db, actor, templateId));
  }

  /** Templates of the actor's subtree (or of one vendor in it). */
  async listTemplates(actor: Actor, filter: { vendorAccountId?: number; name?: string } = {}): Promise<NotificationTemplate[]> {
    const q = this.deps.db('notification_templates as t').join('accounts as a', 'a.id', 't.vendor_id').where('a.path', 'like', `${actor.accountPath}%`);
    if (filter.vendorAccountId !== undefined) q.andWhere('t.vendor_id', positiveId(filter.vendorAccountId, 'vendorAccountId'));
    if (filter.name !== undefined) q.andWhere('t.name', templateName(filter.name));
    return ((await q.orderBy(['t.vendor_id', 't.name', 't.language']).select('t.*')) as TemplateRow[]).map(toTemplate);
  }

  /** The built-in defaults, for a console to show and copy. */
  builtInTemplates(): Record<string, TemplateText> {
    return { ...BUILT_IN_TEMPLATES };
  }

  /**
   * The template a vendor's mail uses: its own in the language, else in English; else its parent's ... up to the
   * provider; else the built-in default; null when there is none.
   */
  async resolveTemplate(conn: Conn, vendorAccountId: number, name: string, lang: string): Promise<ResolvedTemplate | null> {
    const vendor = (await conn('accounts').where({ id: vendorAccountId }).first('id', 'path')) as { id: number; path: string } | undefined;
    if (!vendor) return null;
    const chain = [toNumber(vendor.id), ...ancestorIds(vendor.path)];
    const langs = lang === DEFAULT_LANGUAGE ? [lang] : [lang, DEFAULT_LANGUAGE];
    const rows = (await conn('notification_templates').whereIn('vendor_id', chain).andWhere({ name }).whereIn('language', langs)) as TemplateRow[];
    for (const v of chain) {
      for (const l of langs) {
        const r = rows.find((x) => toNumber(x.vendor_id) === v && x.language === l);
        if (r) return { subject: r.subject, html: r.html, text: r.text, source: { vendorAccountId: v, templateId: toNumber(r.id), language: l } };
      }
    }
    const builtIn = BUILT_IN_TEMPLATES[name];
    return builtIn ? { ...builtIn, source: 'built-in' } : null;
  }

  render(t: TemplateText, context: Record<string, unknown>): TemplateText {
    return renderTemplate(t, context);
  }

  /**
   * Sends one message by SMTP when configured, and keeps it in the spool (sent, or spooled when there is no SMTP).
   * A message already in the spool (its dedupe key) is not sent again. A new one is sent first and recorded after:
   * a crash between the two may send it twice on the delivery's retry (at least once), never lose it.
   */
  async send(mail: OutgoingMail): Promise<{ mailId: number; status: 'sent' | 'spooled'; duplicate: boolean }> {
    const { db, clock, config } = this.deps;
    const existing = (await db('mail_spool').where({ dedupe_key: mail.dedupeKey }).first('id', 'status')) as { id: number; status: 'sent' | 'spooled' } | undefined;
    if (existing) return { mailId: toNumber(existing.id), status: existing.status, duplicate: true };
    const row = {
      vendor_id: mail.vendorAccountId,
      account_id: mail.accountId,
      event_id: mail.eventId,
      template: mail.template.slice(0, 96),
      to_address: mail.to.slice(0, 255),
      subject: mail.subject.slice(0, 998),
      html: mail.html,
      text: mail.text,
      status: config.smtpUrl ? 'sent' : 'spooled',
      dedupe_key: mail.dedupeKey,
      created_at: clock.now().getTime(),
    };
    if (config.smtpUrl) {
      // Sent first, then recorded: a crash between the two may send it again (at least once), never lose it.
      this.transport ??= nodemailer.createTransport(config.smtpUrl);
      await this.transport.sendMail({ from: config.mailFrom, to: mail.to, subject: mail.subject, html: mail.html, text: mail.text });
    }
    try {
      const [id] = (await db('mail_spool').insert(row)) as number[];
      return { mailId: toNumber(id), status: row.status as 'sent' | 'spooled', duplicate: false };
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
      const twin = (await db('mail_spool').where({ dedupe_key: mail.dedupeKey }).first('id', 'status')) as { id: number; status: 'sent' | 'spooled' };
      return { mailId: toNumber(twin.id), status: twin.status, duplicate: true };
    }
  }

  /** Mail of the actor's subtree (sent by a vendor in it, or to an account in it), newest first. */
  async listSpool(actor: Actor, filter: { status?: string; accountId?: number; page?: number; pageSize?: number } = {}): Promise<{ items: SpoolEntry[]; total: number }> {
    const { db } = this.deps;
    const { offset, pageSize } = paging(filter.page, filter.pageSize);
    const q = db('mail_spool as m').join('accounts as a', 'a.id', 'm.vendor_id').where('a.path', 'like', `${actor.accountPath}%`);
    if (filter.status !== undefined) q.andWhere('m.status', oneOf(filter.status, 'status', SPOOL_STATUSES));
    if (filter.accountId !== undefined) q.andWhere('m.account_id', positiveId(filter.accountId, 'accountId'));
    const [{ total }] = (await q.clone().count({ total: '*' })) as { total: number | string }[];
    const rows = (await q.orderBy('m.id', 'desc').limit(pageSize).offset(offset).select('m.*')) as SpoolRow[];
    return { items: rows.map(toSpool), total: Number(total) };
  }

  async getMail(actor: Actor, mailId: number): Promise<SpoolEntry> {
    const id = positiveId(mailId, 'mailId');
    const row = (await this.deps.db('mail_spool as m').join('accounts as a', 'a.id', 'm.vendor_id').where('m.id', id).andWhere('a.path', 'like', `${actor.accountPath}%`).first('m.*')) as SpoolRow | undefined;
    if (!row) throw notFound('Mail', id);
    return toSpool(row);
  }

  private async vendor(actor: Actor, vendorAccountId?: number): Promise<AccountRow> {
    return scopedVendor(this.deps.db, actor, vendorAccountId, 'keep notification templates');
  }

  private async scopedTemplate(conn: Conn, actor: Actor, templateId: number): Promise<TemplateRow> {
    const id = positiveId(templateId, 'templateId');
    const row = (await conn('notification_templates as t').join('accounts as a', 'a.id', 't.vendor_id').where('t.id', id).andWhere('a.path', 'like', `${actor.accountPath}%`).first('t.*')) as TemplateRow | undefined;
    if (!row) throw notFound('Notification template', id);
    return row;
  }
}
