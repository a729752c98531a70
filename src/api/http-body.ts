import type { IncomingMessage } from 'node:http';
import inflate from 'inflation';
import getRawBody from 'raw-body';

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`The request body is larger than the ${limit}-byte limit (counted after decompression).`);
  }
}

/**
 * Reads a request body as UTF-8 text, decompressing gzip/deflate, and stops reading as soon as the decompressed
 * size passes the limit: a zip bomb or an endless stream costs at most `limit` bytes of memory.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  const rawEncoding = req.headers['content-encoding'];
  const encoding = rawEncoding === undefined ? 'identity' : String(rawEncoding).toLowerCase();
  if (encoding === 'identity') {
    if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyTooLargeError(limit));
    return readPlain(req, limit, req.headers['content-length'] === undefined ? null : declared).then(text);
  }
  // Bytes, then Node's own UTF-8 decoding (raw-body's encoding option goes through iconv-lite, which costs more
  // per request); like iconv-lite, drop a leading byte order mark and replace invalid sequences with U+FFFD.
  return getRawBody(inflate(req), { limit }).then(text, (e: { type?: string; status?: number }) => {
    if (e.type === 'entity.too.large' || e.status === 413) throw new BodyTooLargeError(limit);
    throw e;
  });
}

function text(bytes: Buffer): string {
  const s = bytes.toString('utf8');
  return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
}

/**
 * An uncompressed body (nearly every API call), read without raw-body's and inflation's per-request machinery but
 * with the same rules: at most `limit` bytes (then the stream is paused and left unread), the Content-Length when
 * one was sent must match what arrived, and an aborted upload is an error.
 */
function readPlain(req: IncomingMessage, limit: number, declared: number | null): Promise<Buffer> {
  // The handlers are anonymous and stay attached (a flag ignores whatever comes after the outcome): under tsx
  // every named closure costs a defineProperty for its name, and this runs on every call.
  return new Promise((resolve, reject) => {
    if (!req.readable) return reject(new Error('The request stream is not readable.'));
    const state = { chunks: [] as Buffer[], received: 0, complete: false };
    req.on('data', (chunk: Buffer) => {
      if (state.complete) return;
      state.received += chunk.length;
      if (state.received > limit) fail(req, state, reject, new BodyTooLargeError(limit));
      else state.chunks.push(chunk);
    });
    req.on('end', () => {
      if (state.complete) return;
      if (declared !== null && state.received !== declared) return fail(req, state, reject, new Error('The request body does not match its Content-Length.'));
      state.complete = true;
      resolve(state.chunks.length === 1 ? state.chunks[0] : Buffer.concat(state.chunks, state.received));
    });
    req.on('error', (e: Error) => fail(req, state, reject, e));
    req.on('close', () => fail(req, state, reject, new Error('The request was aborted.')));
  });
}

/** Ends a body read with an error (once): the rest of the stream is left unread. */
function fail(req: IncomingMessage, state: { complete: boolean; chunks: Buffer[] }, reject: (e: Error) => void, e: Error): void {
  if (state.complete) return;
  state.complete = true;
  state.chunks = [];
  req.unpipe();
  req.pause();
  reject(e);
}
