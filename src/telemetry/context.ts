import { isSpanContextValid, trace, type Context, type Span } from '@opentelemetry/api';
import { randomSpanContext } from './ids.js';

/**
 * With the SDK disabled the tracer hands out invalid (all-zero) span contexts; a random,
 * unsampled one in its place keeps every log line of that work under one request_id.
 */
export function withValidIds(span: Span): Span {
  if (isSpanContextValid(span.spanContext())) return span;
  return trace.wrapSpanContext(randomSpanContext());
}

/**
 * A context that reads through to its parent, plus at most one value of its own.
 *
 * Why: the API's own contexts copy the parent's whole map and make three closures on every
 * `setValue`. A message's context is made once per message and read a few times, so linking to
 * the parent is cheaper than copying it. The value's key is never named here: `trace.setSpan`
 * writes it through the public Context interface (`setValue`) into an empty overlay.
 */
class Overlay implements Context {
  constructor(
    private readonly parent: Context,
    private readonly key?: symbol,
    private readonly value?: unknown,
  ) {}

  getValue(key: symbol): unknown {
    return this.key !== undefined && key === this.key ? this.value : this.parent.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    if (this.key === undefined) return new Overlay(this.parent, key, value);
    // A second write (a handler's child span, suppressed tracing) is rare: it makes an ordinary,
    // flat context, so a replaced or deleted value is not kept alive by the layer below.
    return this.parent.setValue(this.key, this.value).setValue(key, value);
  }

  deleteValue(key: symbol): Context {
    if (this.key === undefined) return this.parent.deleteValue(key);
    return this.parent.setValue(this.key, this.value).deleteValue(key);
  }
}

/** `trace.setSpan(parent, span)`, without copying the parent. */
export function withSpan(parent: Context, span: Span): Context {
  return trace.setSpan(new Overlay(parent), span);
}
