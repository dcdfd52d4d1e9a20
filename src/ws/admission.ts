/**
 * Optional checks on an upgrade request, made before the handshake: the browser `Origin`
 * (ALLOWED_ORIGINS) and a bearer token (AUTH_TOKEN). Both are off unless configured.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { AdmissionConfig } from '../config/config.js';

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

export function createAdmission(config: AdmissionConfig): (headers: IncomingHttpHeaders) => AdmissionVerdict {
  const origins = config.allowedOrigins === undefined ? undefined : new Set(config.allowedOrigins);
  // Digests have one length whatever the token's, so the comparison leaks neither the token's
  // length nor how much of it matched.
  const expected = config.authToken === undefined ? undefined : digest(config.authToken);

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
      const match = /^Bearer[ ]+(\S+)\s*$/i.exec(headers.authorization ?? '');
      if (match === null) return { ok: false, status: 401, reason: 'unauthorized', detail: 'missing bearer token' };
      if (!timingSafeEqual(digest(match[1]), expected)) {
        return { ok: false, status: 401, reason: 'unauthorized', detail: 'invalid bearer token' };
      }
    }
    return ADMITTED;
  };
}
