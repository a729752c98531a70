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
    return await getRawBody(inflate(req), { limit, encoding: 'utf8' });
  } catch (e) {
    const err = e as { type?: string; status?: number };
    if (err.type === 'entity.too.large' || err.status === 413) throw new BodyTooLargeError(limit);
    throw e;
  }
}
