/**
 * The envelope as a networked broker carries it: a header of line-separated fields, then the
 * data's JSON text untouched, so neither side parses or re-serialises the payload.
 *
 *   v1\n<publishedAt>\n<traceparent>\n<tracestate>\n<data JSON>
 *
 * No header field can hold a newline: publishedAt is an integer, and the propagator only emits
 * traceparent/tracestate values of its own grammar, which has none. JSON text from
 * JSON.stringify escapes every newline, so the data is everything after the fourth one.
 */
import type { Envelope } from './broker.js';

const VERSION = 'v1';

export function encodeEnvelope(envelope: Envelope): string {
  return `${VERSION}\n${envelope.publishedAt}\n${envelope.traceparent ?? ''}\n${envelope.tracestate ?? ''}\n${envelope.json}`;
}

/** undefined for anything this version did not write (another publisher on the same Redis channel). */
export function decodeEnvelope(text: string): Envelope | undefined {
  const a = text.indexOf('\n');
  if (a !== VERSION.length || !text.startsWith(VERSION)) return undefined;
  const b = text.indexOf('\n', a + 1);
  const c = b < 0 ? -1 : text.indexOf('\n', b + 1);
  const d = c < 0 ? -1 : text.indexOf('\n', c + 1);
  if (d < 0 || d === text.length - 1) return undefined;
  const publishedAt = Number(text.slice(a + 1, b));
  if (!Number.isSafeInteger(publishedAt)) return undefined;
  const traceparent = text.slice(b + 1, c);
  const tracestate = text.slice(c + 1, d);
  return {
    json: text.slice(d + 1),
    publishedAt,
    ...(traceparent === '' ? {} : { traceparent }),
    ...(tracestate === '' ? {} : { tracestate }),
  };
}
