import dns from 'node:dns/promises';
import net from 'node:net';

/** Loopback, private, link-local, carrier-grade NAT, multicast and unspecified addresses: not the public Internet. */
const internal = new net.BlockList();
for (const [a, p] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.168.0.0', 16], ['224.0.0.0', 3]] as const) {
  internal.addSubnet(a, p, 'ipv4');
}
for (const [a, p] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) internal.addSubnet(a, p, 'ipv6');

export function isInternalAddress(ip: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return internal.check(mapped[1], 'ipv4');
  const family = net.isIP(ip);
  if (family === 0) return false;
  return internal.check(ip, family === 4 ? 'ipv4' : 'ipv6');
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
