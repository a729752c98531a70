import type { IncomingMessage } from 'node:http';

/**
 * The caller's address for the audit trail. Behind a reverse proxy (TRUST_PROXY=true) it is the left-most
 * X-Forwarded-For entry the proxy appended; otherwise the socket's peer, since anyone can send that header.
 */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string | undefined {
  if (trustProxy) {
    const forwarded = req.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
    if (first && /^[0-9A-Fa-f:.]{2,45}$/.test(first)) return first;
  }
  return req.socket.remoteAddress;
}
