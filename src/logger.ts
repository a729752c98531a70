import { AsyncLocalStorage } from 'node:async_hooks';
import winston from 'winston';

/** Request-scoped context: every log line written while serving a request carries its id. */
export const requestContext = new AsyncLocalStorage<{ requestId: string }>();

const SECRET_KEY = /pass(word)?|secret|token|card.?number|cardnumber|cvv|cvc|api.?key|authorization|nonce|epp.?code|auth.?code/i;
const REDACTED = '[redacted]';

/**
 * An error's message without what a database driver appends: knex prefixes the SQL with its bound values
 * (password hashes, secrets), so only the driver's own message after the last " - " is kept.
 */
export function safeErrorMessage(e: unknown): string {
  const err = e as { sqlMessage?: string; message?: string; code?: string; sql?: string };
  if (typeof err?.sqlMessage === 'string') return `${err.code ?? 'DB_ERROR'}: ${err.sqlMessage}`;
  const message = typeof err?.message === 'string' ? err.message : String(e);
  if (err?.sql !== undefined || /^(insert|update|delete|select|with|begin|create|alter|drop)\b/i.test(message)) {
    const i = message.lastIndexOf(' - ');
    return `${err.code ?? 'DB_ERROR'}: ${i >= 0 ? message.slice(i + 3) : 'database error'}`;
  }
  return message;
}

/** Deep-copies a log payload with every secret-looking field replaced. */
export function redact(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > 8) return '[truncated]';
  if (value instanceof Error) return { name: value.name, message: safeErrorMessage(value) };
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? REDACTED : redact(v, depth + 1);
  return out;
}

const redactFormat = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (SECRET_KEY.test(key)) info[key] = REDACTED;
    else if (key !== 'level' && key !== 'message') info[key] = redact(info[key]);
  }
  const store = requestContext.getStore();
  if (store && info.requestId === undefined) info.requestId = store.requestId;
  return info;
});

export type Logger = winston.Logger;

export function createLogger(opts: { level: string; format: 'json' | 'pretty'; silent?: boolean }): Logger {
  const format =
    opts.format === 'json'
      ? winston.format.combine(redactFormat(), winston.format.timestamp(), winston.format.json())
      : winston.format.combine(
          redactFormat(),
          winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
          winston.format.printf((info) => {
            const { level, message, timestamp, requestId, ...rest } = info;
            const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
            return `${String(timestamp)} ${level.padEnd(5)}${requestId ? ` [${String(requestId)}]` : ''} ${String(message)}${extra}`;
          }),
        );
  return winston.createLogger({
    level: opts.level,
    format,
    silent: opts.silent ?? false,
    transports: [new winston.transports.Console()],
  });
}
