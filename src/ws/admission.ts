/**
 * Optional checks on an upgrade request, made before the handshake: the browser `Origin`
 * (ALLOWED_ORIGINS) and a bearer token (AUTH_TOKEN). Both are off unless configured. The token
 * comes in `Authorization: Bearer` (services) or as a subprotocol offer (browsers, which cannot
 * set headers on an upgrade; see subprotocol.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { AdmissionConfig } from '../config/config.js';
import { bearerOffer, bearerOffers, offeredProtocols } from './subprotocol.js';

export type AdmissionVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly status: 401 | 403; readonly reason: 'unauthorized' | 'forbidden_origin'; readonly detail: string };

const ADMITTED: AdmissionVerdict = Object.freeze({ ok: true });

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function normalisedOrigin(header: string): string | undefined {
  try {
    const origin = new URL(header).origin;
    return origin === 'null' ? undefined : origin;
  } catch {
    return undefined;
  }
}

/** The digests a presented token must match: the header's token, and the whole subprotocol offer. */
interface Expected {
  readonly header: Buffer;
  readonly offer: Buffer;
}

/** Every token the request presents, each with the digest it must match. */
function presentedTokens(headers: IncomingHttpHeaders, expected: Expected): [string, Buffer][] {
  const presented: [string, Buffer][] = [];
  const bearer = /^Bearer[ ]+(\S+)\s*$/i.exec(headers.authorization ?? '');
  if (bearer !== null) presented.push([bearer[1], expected.header]);
  for (const offer of bearerOffers(offeredProtocols(headers['sec-websocket-protocol']))) presented.push([offer, expected.offer]);
  return presented;
}

export function createAdmission(config: AdmissionConfig): (headers: IncomingHttpHeaders) => AdmissionVerdict {
  const origins = config.allowedOrigins === undefined ? undefined : new Set(config.allowedOrigins);
  // Digests have one length whatever the token's, so the comparison leaks neither the token's
  // length nor how much of it matched. The offer is compared whole, in its one canonical
  // encoding, so nothing is decoded from the client before the comparison.
  const expected: Expected | undefined =
    config.authToken === undefined ? undefined : { header: digest(config.authToken), offer: digest(bearerOffer(config.authToken)) };

  return (headers) => {
    if (origins !== undefined && headers.origin !== undefined) {
      // Origin guards browsers against cross-site WebSocket hijacking. A client without it is
      // not a browser and could send any value; AUTH_TOKEN is what restricts those.
      const origin = normalisedOrigin(headers.origin);
      if (origin === undefined || !origins.has(origin)) {
        return { ok: false, status: 403, reason: 'forbidden_origin', detail: 'origin not allowed' };
      }
    }
    if (expected !== undefined) {
      const presented = presentedTokens(headers, expected);
      if (presented.length === 0) return { ok: false, status: 401, reason: 'unauthorized', detail: 'missing bearer token' };
      // Every token presented must match, each compared in full: a request carrying a right
      // and a wrong one is refused, whichever path carried which.
      let valid = true;
      for (const [token, against] of presented) valid = timingSafeEqual(digest(token), against) && valid;
      if (!valid) return { ok: false, status: 401, reason: 'unauthorized', detail: 'invalid bearer token' };
    }
    return ADMITTED;
  };
}
