import { randomBytes } from 'node:crypto';
import { isSpanContextValid, trace, type Span } from '@opentelemetry/api';

/**
 * With the SDK disabled the tracer hands out invalid (all-zero) span contexts; a random,
 * unsampled one in its place keeps every log line of that work under one request_id.
 */
export function withValidIds(span: Span): Span {
  if (isSpanContextValid(span.spanContext())) return span;
  const hex = randomBytes(24).toString('hex');
  return trace.wrapSpanContext({ traceId: hex.slice(0, 32), spanId: hex.slice(32), traceFlags: 0 });
}
