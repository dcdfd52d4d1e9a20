import { randomBytes } from 'node:crypto';
import { isSpanContextValid, trace, type Span, type SpanContext } from '@opentelemetry/api';

/** Fresh W3C ids, unsampled: enough for a log line's request_id when nothing is recorded. */
export function randomSpanContext(traceId?: string): SpanContext {
  const hex = randomBytes(24).toString('hex');
  return { traceId: traceId ?? hex.slice(0, 32), spanId: hex.slice(32), traceFlags: 0 };
}

/**
 * With the SDK disabled the tracer hands out invalid (all-zero) span contexts; a random,
 * unsampled one in its place keeps every log line of that work under one request_id.
 */
export function withValidIds(span: Span): Span {
  if (isSpanContextValid(span.spanContext())) return span;
  return trace.wrapSpanContext(randomSpanContext());
}
