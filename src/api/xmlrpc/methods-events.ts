import { recordChange } from '../../audit/record-change';
import { scopedAccount } from '../../accounts/scope';
import { toNumber } from '../../db/knex';
import { inTransaction } from '../../db/transaction';
import { invalid, notFound } from '../../domain/errors';
import { EVENTS_QUEUE, EXTERNAL_PREFIX } from '../../events/dispatcher';
import { notificationContext } from '../../events/delivery';
import { DEFAULT_LANGUAGE } from '../../notifications/notifications-service';
import { done, write, type MethodTable } from './method-table';
import type { Params } from './params';

/** PostEvent's names arrive under this prefix, so a caller can never pose as one of the system's own events. */
export { EXTERNAL_PREFIX };
const MAX_PARAMS = 100;

/** "Key=Value; Key=Value" -> {Key: "Value"}; a ';' or '=' inside a value is not supported by the format. */
export function parseKeyValues(text: string, field: string): Record<string, string> {
  const out: Record<string, string> = {};
  const parts = text.split(';').map((s) => s.trim()).filter(Boolean);
  if (parts.length > MAX_PARAMS) throw invalid(field, `At most ${MAX_PARAMS} Key=Value pairs.`);
  for (const part of parts) {
    const i = part.indexOf('=');
    if (i <= 0) throw invalid(field, `'${part.slice(0, 60)}' is not Key=Value; separate pairs with ';'.`);
    const key = part.slice(0, i).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/.test(key)) throw invalid(field, `Key '${key.slice(0, 60)}' must be letters, digits, '_', '.' or '-' (at most 64).`);
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') throw invalid(field, `Key '${key}' is not allowed.`);
    out[key] = part.slice(i + 1).trim().slice(0, 2000);
  }
  return out;
}

/** PBA event names (e.g. "SubscriptionRenewed", "Custom_Event.1") as a lower-case dotted name under external. */
export function externalEventName(raw: string, field: string): string {
  const name = raw.trim();
  if (!/^[A-Za-z][A-Za-z0-9_.-]{0,79}$/.test(name)) throw invalid(field, `EventName '${name.slice(0, 80)}' must start with a letter and have only letters, digits, '_', '.' or '-' (at most 80).`);
  const normalized = name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9.]+/g, '_')
    .replace(/\.+/g, '.')
    .replace(/(^|\.)_+|_+($|\.)/g, '$1$2')
    .replace(/^\.+|\.+$/g, '');
  if (!normalized) throw invalid(field, `EventName '${name}' has no letters or digits.`);
  return `${EXTERNAL_PREFIX}${normalized}`;
}

/** Extra key/value parameters given as positional pairs from index `from` on. */
function pairs(p: Params, from: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = from; i < p.length; i += 2) {
    const key = p.str(i, `Key${(i - from) / 2 + 1}`).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(key)) throw invalid(`Params[${i}] (Key)`, `Key '${key.slice(0, 60)}' must be letters, digits or '_' (at most 64).`);
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') throw invalid(`Params[${i}] (Key)`, `Key '${key}' is not allowed.`);
    out[key] = (p.optStr(i + 1, `Value${(i - from) / 2 + 1}`) ?? '').slice(0, 2000);
  }
  return out;
}

/**
 * The PBA doors of event delivery: TASKMAN PostEvent (a caller's own event into the outbox, delivered to the
 * actions subscribed to it) and MESSAGE SendSubscriptionNotificationForUser_API (a notification template rendered
 * for a subscription and sent to one of its account's users).
 */
export const eventMethods: MethodTable = {
  'TASKMAN.PostEvent': write(async (p, actor, s) => {
    const name = externalEventName(p.str(0, 'EventName'), 'Params[0] (EventName)');
    const params = parseKeyValues(p.optStr(1, 'Params') ?? '', 'Params[1] (Params)');
    // Params[2] is PBA's flag for the event's processing mode; events here are always delivered after commit.
    const accountId = params.AccountID !== undefined ? Number(params.AccountID) : actor.accountId;
    if (!Number.isSafeInteger(accountId) || accountId <= 0) throw invalid('Params[1] (Params)', `AccountID=${params.AccountID} is not an account id.`);
    await scopedAccount(s.deps.db, actor, accountId);
    const objectType = (params.ObjectType ?? 'account').slice(0, 48);
    if (!/^[a-z][a-z0-9_]*$/i.test(objectType)) throw invalid('Params[1] (Params)', `ObjectType=${objectType} must be a word such as subscription.`);
    const objectId = (params.ObjectID ?? String(accountId)).slice(0, 64);
    await inTransaction(s.deps.db, (tx) =>
      recordChange(tx, actor, s.deps.clock.now(), {
        operation: 'PostEvent',
        objectType,
        objectId,
        details: { name, params: Object.keys(params) },
        event: { name, accountId, payload: { ...params, postedByAccountId: actor.accountId, postedByUserId: actor.userId } },
      }),
    );
    return done();
  }),

  'MESSAGE.SendSubscriptionNotificationForUser_API': write(async (p, actor, s) => {
    const templateName = p.str(0, 'Template').trim();
    const sub = await s.subscriptions.get(actor, p.int(1, 'SubscriptionID'));
    const userId = p.int(2, 'UserID');
    const user = (await s.deps.db('users').where({ id: userId, account_id: sub.accountId }).first('id', 'email', 'first_name', 'last_name', 'login')) as
      | { id: number; email: string; first_name: string; last_name: string; login: string }
      | undefined;
    if (!user) throw notFound('User', userId);
    if (!user.email) throw invalid('Params[2] (UserID)', `User ${userId} has no e-mail address.`);
    const params = pairs(p, 3);
    const template = await s.notifications.resolveTemplate(s.deps.db, sub.vendorAccountId, templateName, params.Language ?? DEFAULT_LANGUAGE);
    if (!template) throw invalid('Params[0] (Template)', `No notification template '${templateName}' for account ${sub.vendorAccountId}, its vendors, or built in.`);
    const subscription = { subscriptionId: sub.subscriptionId, name: sub.name, status: sub.status, planId: sub.planId, expiresAt: sub.expirationDate?.toISOString() ?? null };
    const context = await notificationContext(s.deps, sub.vendorAccountId, sub.accountId, 'billing', { params, subscription, payload: { ...subscription, ...params } });
    context.contact = { firstName: user.first_name, lastName: user.last_name, email: user.email };
    const rendered = s.notifications.render(template, context);
    await inTransaction(s.deps.db, async (tx) => {
      const now = s.deps.clock.now();
      const taskId = await s.tasks.enqueue(tx, {
        kind: 'notification.send',
        queue: EVENTS_QUEUE,
        accountId: sub.vendorAccountId,
        objectType: 'subscription',
        objectId: sub.subscriptionId,
        payload: { vendorAccountId: sub.vendorAccountId, accountId: sub.accountId, template: templateName, to: user.email, ...rendered },
      });
      await recordChange(tx, actor, now, {
        operation: 'SendSubscriptionNotification',
        objectType: 'subscription',
        objectId: sub.subscriptionId,
        details: { template: templateName, userId: toNumber(user.id), taskId },
        event: { name: 'notification.requested', accountId: sub.accountId, payload: { subscriptionId: sub.subscriptionId, template: templateName, userId: toNumber(user.id), taskId } },
      });
    });
    return done();
  }),
};
