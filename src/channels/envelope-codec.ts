/**
 * A publication as a networked broker carries it: a header of line-separated fields, then the
 * data's JSON text untouched, so neither side parses or re-serialises the payload.
 *
 *   v1\n<epoch>\n<offset>\n<publishedAt>\n<traceparent>\n<tracestate>\n<data JSON>
 *
 * The publisher writes the body (from publishedAt on); the broker puts the position in front,
 * since only it knows the offset (redis-scripts.ts does so inside its publish script).
 * No header field can hold a newline: epoch is hex, offset and publishedAt integers, and the
 * propagator only emits traceparent/tracestate values of its own grammar, which has none.
 * JSON.stringify escapes every newline, so the data is everything after the sixth.
 */
import type { Envelope, Publication } from './broker.js';

const VERSION = 'v1';
const HEADER_FIELDS = 5;

export function encodeBody(envelope: Envelope): string {
  return `${envelope.publishedAt}\n${envelope.traceparent ?? ''}\n${envelope.tracestate ?? ''}\n${envelope.json}`;
}

export function encodePublication(publication: Publication): string {
  return `${VERSION}\n${publication.epoch}\n${publication.offset}\n${encodeBody(publication)}`;
}

/** undefined for anything this version did not write (another publisher on the same Redis channel). */
export function decodePublication(text: string): Publication | undefined {
  if (!text.startsWith(`${VERSION}\n`)) return undefined;
  const ends: number[] = [];
  let from = VERSION.length + 1;
  for (let i = 0; i < HEADER_FIELDS; i++) {
    const end = text.indexOf('\n', from);
    if (end < 0) return undefined;
    ends.push(end);
    from = end + 1;
  }
  if (from >= text.length) return undefined;
  const field = (i: number): string => text.slice(i === 0 ? VERSION.length + 1 : ends[i - 1] + 1, ends[i]);
  const epoch = field(0);
  const offset = Number(field(1));
  const publishedAt = Number(field(2));
  if (epoch === '' || !Number.isSafeInteger(offset) || offset < 1 || !Number.isSafeInteger(publishedAt)) return undefined;
  const traceparent = field(3);
  const tracestate = field(4);
  return {
    epoch,
    offset,
    publishedAt,
    json: text.slice(from),
    ...(traceparent === '' ? {} : { traceparent }),
    ...(tracestate === '' ? {} : { tracestate }),
  };
}
