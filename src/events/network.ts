import callbackDns, { type LookupAddress, type LookupOptions } from 'node:dns';
import dns from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

/** Loopback, private, link-local, carrier-grade NAT, multicast and unspecified addresses: not the public Internet. */
const internal = new net.BlockList();
for (const [a, p] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.168.0.0', 16], ['224.0.0.0', 3]] as const) {
  internal.addSubnet(a, p, 'ipv4');
}
for (const [a, p] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) internal.addSubnet(a, p, 'ipv6');

/** The eight 16-bit groups of an IPv6 address (a trailing dotted quad counts as two). */
function ipv6Groups(ip: string): number[] {
  let text = ip;
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const part = (t: string | undefined) => (t ? t.split(':').map((g) => parseInt(g, 16)) : []);
  const h = part(head);
  const t = part(tail);
  return tail === undefined ? h : [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
}

/**
 * The IPv4 address an IPv6 address carries, where one reaches that IPv4 host: IPv4-mapped (::ffff:0:0/96),
 * IPv4-compatible (::/96), NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48) and 6to4 (2002::/16).
 */
function embeddedIpv4(ip: string): string | undefined {
  const g = ipv6Groups(ip);
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && (g[5] === 0xffff || g[5] === 0) && !(g[5] === 0 && g[6] === 0)) return v4(g[6]!, g[7]!);
  if (g[0] === 0x64 && g[1] === 0xff9b && (zeros(2, 6) || g[2] === 1)) return v4(g[6]!, g[7]!);
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!);
  return undefined;
}

export function isInternalAddress(ip: string): boolean {
  const family = net.isIP(ip);
  if (family === 0) return false;
  if (family === 4) return internal.check(ip, 'ipv4');
  const v4 = embeddedIpv4(ip);
  if (v4 !== undefined && internal.check(v4, 'ipv4')) return true;
  return internal.check(ip, 'ipv6');
}

function bare(hostname: string): string {
  return hostname.replace(/^\[|\]$/g, '');
}

/** A URL whose host is written as an internal address or as localhost (checked when an action is saved). */
export function literalInternalHost(url: URL): boolean {
  const host = bare(url.hostname).toLowerCase();
  return host === 'localhost' || host.endsWith('.localhost') || isInternalAddress(host);
}

/** The internal address the URL's host resolves to, if any (checked before each delivery of a reseller's webhook). */
export async function resolvesInternal(url: URL): Promise<string | null> {
  const host = bare(url.hostname);
  if (net.isIP(host)) return isInternalAddress(host) ? host : null;
  if (literalInternalHost(url)) return host;
  const addresses = await dns.lookup(host, { all: true, verbatim: true });
  return addresses.find((a) => isInternalAddress(a.address))?.address ?? null;
}

/**
 * A `lookup` for http(s).request that refuses internal addresses when the connection is made: the address checked
 * is the address connected to, so a name that answers a public address to the check and an internal one a moment
 * later (DNS rebinding) does not reach inside.
 */
export function publicOnlyLookup(hostname: string, options: LookupOptions | number | undefined, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void {
  const opts: LookupOptions = typeof options === 'number' ? { family: options } : { ...(options ?? {}) };
  callbackDns.lookup(hostname, { ...opts, all: true }, (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => {
    if (err) return callback(err, '');
    const inside = addresses.find((a) => isInternalAddress(a.address));
    if (inside) {
      const e: NodeJS.ErrnoException = new Error(`${hostname} resolves to ${inside.address}, a local or private address`);
      e.code = 'EINTERNALADDRESS';
      return callback(e, '');
    }
    if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '');
    if (opts.all) return callback(null, addresses);
    callback(null, addresses[0].address, addresses[0].family);
  });
}

export interface PostResult {
  status: number;
  /** The start of the answer's body (at most maxBodyBytes). */
  text: string;
}

/**
 * POSTs `body` once: no redirect followed, the whole exchange within timeoutMs, at most maxBodyBytes of the answer
 * read (a receiver cannot make the server buffer an endless body). `publicOnly` connects to public addresses only.
 */
export function postOnce(
  url: URL,
  headers: Record<string, string>,
  body: string,
  opts: { timeoutMs: number; signal?: AbortSignal; publicOnly: boolean; maxBodyBytes?: number },
): Promise<PostResult> {
  const maxBody = opts.maxBodyBytes ?? 64 * 1024;
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  const request = url.protocol === 'https:' ? https.request : http.request;
  return new Promise<PostResult>((resolve, reject) => {
    const fail = (e: Error) => reject(timeout.aborted ? Object.assign(new Error('timeout'), { name: 'TimeoutError' }) : e);
    const req = request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body, 'utf8')) },
        signal,
        agent: false,
        ...(opts.publicOnly ? { lookup: publicOnlyLookup as unknown as net.LookupFunction } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const done = () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
        res.on('data', (c: Buffer) => {
          if (size >= maxBody) return;
          chunks.push(c.subarray(0, maxBody - size));
          size += Math.min(c.length, maxBody - size);
          if (size >= maxBody) {
            done();
            res.destroy();
          }
        });
        res.on('end', done);
        res.on('error', () => done());
        res.on('aborted', () => done());
      },
    );
    req.on('error', fail);
    req.end(body, 'utf8');
  });
}
