import nunjucks from 'nunjucks';
import { invalid } from '../domain/errors';
import type { TemplateText } from './defaults';

/**
 * Templates are edited by resellers, and nunjucks is not a sandbox: `"".constructor.constructor("...")()` would
 * run code on the server. Every member lookup in a template goes through runtime.memberLookup; refuse the names
 * that lead from a value to its constructor or prototype (templates of the console never need them either).
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const runtime = require('nunjucks/src/runtime') as { memberLookup: (obj: unknown, val: unknown) => unknown; __hwGuarded?: boolean };
const FORBIDDEN = new Set(['constructor', '__proto__', 'prototype', '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__']);
if (!runtime.__hwGuarded) {
  const original = runtime.memberLookup;
  runtime.memberLookup = (obj: unknown, val: unknown) => (FORBIDDEN.has(String(val)) ? undefined : original(obj, val));
  runtime.__hwGuarded = true;
}

const htmlEnv = new nunjucks.Environment(null, { autoescape: true, throwOnUndefined: false });
const textEnv = new nunjucks.Environment(null, { autoescape: false, throwOnUndefined: false });

export const MAX_TEMPLATE_CHARS = 200_000;

function compile(src: string, env: nunjucks.Environment, field: string): nunjucks.Template {
  try {
    return new nunjucks.Template(src, env, field, true);
  } catch (e) {
    const message = (e as Error).message.replace(/\s+/g, ' ').trim();
    throw invalid(field, `${field} is not a valid template: ${message}`);
  }
}

/** Compiles each part (refusing syntax errors with the field at fault). */
export function checkTemplate(t: TemplateText): void {
  compile(t.subject, textEnv, 'subject');
  compile(t.html, htmlEnv, 'html');
  compile(t.text, textEnv, 'text');
}

/** Renders subject and text without escaping, html with auto-escaping of every value. */
export function renderTemplate(t: TemplateText, context: Record<string, unknown>): TemplateText {
  return {
    subject: compile(t.subject, textEnv, 'subject').render(context).replace(/[\r\n]+/g, ' ').trim(),
    html: compile(t.html, htmlEnv, 'html').render(context),
    text: compile(t.text, textEnv, 'text').render(context),
  };
}
