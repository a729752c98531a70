import nunjucks from 'nunjucks';
import vm from 'node:vm';
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
    sandbox.job = () => '';
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

/** A template runs at most this long (a reseller's endless loop must not stall the server). */
export const RENDER_TIMEOUT_MS = 1000;
export const MAX_RENDERED_CHARS = 2_000_000;

const sandbox = vm.createContext({ job: (): string => '' }) as { job: () => string };
const runJob = new vm.Script('job()');

/**
 * Renders one part under a time limit: the render runs inside a vm script with a timeout, which interrupts it even
 * in nunjucks' own (host) code.
 */
function renderPart(src: string, env: nunjucks.Environment, field: string, context: Record<string, unknown>): string {
  const template = compile(src, env, field);
  let out: string;
  try {
    sandbox.job = () => template.render(context);
    out = runJob.runInContext(sandbox, { timeout: RENDER_TIMEOUT_MS }) as string;
  } catch (e) {
    sandbox.job = () => '';
    const message = (e as Error).message ?? String(e);
    if (/timed out/.test(message)) throw invalid(field, `${field} took longer than ${RENDER_TIMEOUT_MS} ms to render; simplify its loops.`);
    throw invalid(field, `${field} could not be rendered: ${message.replace(/\s+/g, ' ').trim().slice(0, 500)}`);
  }
  if (out.length > MAX_RENDERED_CHARS) throw invalid(field, `${field} rendered to more than ${MAX_RENDERED_CHARS} characters.`);
  return out;
}

/** Renders subject and text without escaping, html with auto-escaping of every value. */
export function renderTemplate(t: TemplateText, context: Record<string, unknown>): TemplateText {
  return {
    subject: renderPart(t.subject, textEnv, 'subject', context).replace(/[\r\n]+/g, ' ').trim(),
    html: renderPart(t.html, htmlEnv, 'html', context),
    text: renderPart(t.text, textEnv, 'text', context),
  };
}
