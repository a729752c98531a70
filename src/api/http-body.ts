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
  return new Promise((resolve, reject) => {
    if (!req.readable) return reject(new Error('The request stream is not readable.'));
    const chunks: Buffer[] = [];
    let received = 0;
    let complete = false;
    const finish = (err: Error | null, body?: Buffer) => {
      if (complete) return;
      complete = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', finish);
      req.off('close', onClose);
      if (err) {
        req.unpipe();
        req.pause();
        reject(err);
      } else resolve(body as Buffer);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) finish(new BodyTooLargeError(limit));
      else chunks.push(chunk);
    };
    const onEnd = () => {
      if (declared !== null && received !== declared) finish(new Error('The request body does not match its Content-Length.'));
      else finish(null, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received));
    };
    const onClose = () => finish(new Error('The request was aborted.'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', finish);
    req.on('close', onClose);
  });
}
