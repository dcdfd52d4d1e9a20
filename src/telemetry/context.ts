import { randomBytes } from 'node:crypto';
import { isSpanContextValid, trace, type Context, type Span, type SpanContext } from '@opentelemetry/api';

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

/** The key `trace.setSpan` stores a span under, read back through the API rather than assumed. */
const SPAN_KEY: symbol = (() => {
  let seen: symbol | undefined;
  const probe: Context = {
    getValue(key) {
      seen = key;
      return undefined;
    },
    setValue: () => probe,
    deleteValue: () => probe,
  };
  trace.getSpan(probe);
  if (seen === undefined) throw new Error('@opentelemetry/api did not read a span key from the context');
  return seen;
})();

/**
 * A context that is its parent plus one value. The API's own contexts copy the parent's whole
 * map and make three closures on every `setValue`; a message's span context is made once per
 * message and read at most a few times, so a link to the parent costs less.
 */
class ContextLayer implements Context {
  constructor(
    private readonly parent: Context,
    private readonly key: symbol,
    private readonly value: unknown,
  ) {}

  getValue(key: symbol): unknown {
    return key === this.key ? this.value : this.parent.getValue(key);
  }

  // Writes are rare here (a handler's child span, suppressed tracing): they make an ordinary,
  // flat context, so a replaced or deleted value is not kept alive by the layer below.
  setValue(key: symbol, value: unknown): Context {
    return this.parent.setValue(this.key, this.value).setValue(key, value);
  }

  deleteValue(key: symbol): Context {
    return this.parent.setValue(this.key, this.value).deleteValue(key);
  }
}

/** `trace.setSpan(parent, span)`, without copying the parent. */
export function withSpan(parent: Context, span: Span): Context {
  return new ContextLayer(parent, SPAN_KEY, span);
}
