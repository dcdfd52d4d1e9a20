/**
 * The address a per-client limit counts. By default the TCP peer's. Behind a proxy every client
 * shares the proxy's address, so when the peer is a listed proxy (TRUST_PROXY) the address is
 * taken from X-Forwarded-For: the right-most entry that is not itself a listed proxy, the last
 * hop a trusted party vouches for. Entries left of it were written by the client and can be forged.
 */
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

/** `::ffff:10.0.0.1` and `10.0.0.1` are one client: dual-stack sockets report IPv4 peers mapped. */
export function canonicalAddress(address: string): string {
  const lower = address.toLowerCase();
  return lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4 ? lower.slice(7) : lower;
}

export function createClientAddress(trustedProxies: readonly string[]): (req: IncomingMessage) => string {
  const proxies = new Set(trustedProxies.map(canonicalAddress));
  return (req) => {
    const peer = canonicalAddress(req.socket.remoteAddress ?? '');
    if (proxies.size === 0 || !proxies.has(peer)) return peer;
    const header = req.headers['x-forwarded-for'];
    if (header === undefined) return peer;
    // Several headers are one list, in order (RFC 9110 field combination).
    const hops = (Array.isArray(header) ? header.join(',') : header).split(',');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i].trim();
      if (isIP(hop) === 0) return peer; // unparseable: believe nothing further left
      const address = canonicalAddress(hop);
      if (!proxies.has(address)) return address;
    }
    return peer;
  };
}
