/**
 * WebSocket subprotocol negotiation (RFC 6455 §1.9, §4.2.2), and the offer that carries the
 * bearer token for clients that cannot set `Authorization` on an upgrade: browsers.
 *
 * A browser offers `["ws-service.v1", "ws-service.bearer.<token as base64url, unpadded>"]`.
 * The server selects `ws-service.v1` and never the token entry, so the token is not sent back
 * in the 101 response. base64url because an offer must be an RFC 2616 token, and AUTH_TOKEN may
 * hold `/` and `=`, which are not token characters (browsers throw on them); base64url's
 * alphabet is, whatever the token.
 */

/** The protocol this server speaks; a client that offers any subprotocol must offer this one. */
export const PROTOCOL = 'ws-service.v1';

/** The offer that carries a bearer token: this prefix, then the token as base64url without padding. */
export const BEARER_PREFIX = 'ws-service.bearer.';

/**
 * The offers in a `Sec-WebSocket-Protocol` header (Node joins repeated headers with `, `). Only
 * split and trimmed: a header `ws` finds malformed is refused by `ws` itself (400, bad_handshake).
 */
export function offeredProtocols(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header
    .split(',')
    .map((offer) => offer.trim())
    .filter((offer) => offer !== '');
}

/** The offer a client sends to carry `token`. */
export function bearerOffer(token: string): string {
  return `${BEARER_PREFIX}${Buffer.from(token, 'utf8').toString('base64url')}`;
}

/** The token offers among a request's offers: each is checked against AUTH_TOKEN. */
export function bearerOffers(offers: readonly string[]): string[] {
  return offers.filter((offer) => offer.startsWith(BEARER_PREFIX));
}

/**
 * Why an upgrade offering subprotocols cannot be served, or undefined when it can (it offered
 * none, or ours). Refused before the handshake rather than completed without a protocol: a
 * browser fails a connection whose response names no protocol it offered, so completing would
 * only move the failure to the client, uncounted and without a reason.
 */
export function unsupportedOffer(offers: readonly string[]): string | undefined {
  if (offers.length === 0 || offers.includes(PROTOCOL)) return undefined;
  return `no subprotocol this server speaks was offered; offer ${PROTOCOL}`;
}

/**
 * ws's `handleProtocols`: without it ws selects the first offer, which may be the token entry,
 * and would send the token back in the response. The upgrade handler has refused any request
 * that does not offer PROTOCOL, so `false` (no protocol header) is only a safeguard.
 */
export function selectProtocol(offers: ReadonlySet<string>): string | false {
  return offers.has(PROTOCOL) ? PROTOCOL : false;
}
