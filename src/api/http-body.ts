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
export async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  const encoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding === 'identity' && Number.isFinite(declared) && declared > limit) throw new BodyTooLargeError(limit);
  try {
    // Bytes, then Node's own UTF-8 decoding (raw-body's encoding option goes through iconv-lite, which costs more
    // per request); like iconv-lite, drop a leading byte order mark and replace invalid sequences with U+FFFD.
    const text = (await getRawBody(inflate(req), { limit })).toString('utf8');
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  } catch (e) {
    const err = e as { type?: string; status?: number };
    if (err.type === 'entity.too.large' || err.status === 413) throw new BodyTooLargeError(limit);
    throw e;
  }
}
