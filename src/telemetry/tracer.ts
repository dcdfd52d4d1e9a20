/**
 * A Tracer in front of the SDK's that hands out the spans the SDK would not record, itself and
 * cheaply: a non-recording span with the parent's trace id (or a new one) and a new span id.
 *
 * Why: every message gets a span, and without a traces exporter (variant C of the benchmark),
 * or under a parent-based sampler when the connection's trace was not sampled (variant E, 90%
 * of connections), the SDK still walks its whole startSpan for a span it then drops: parent
 * validation by regular expression, attribute sanitising, the sampler, a Math.random id. That
 * was 1.1 µs per message in the profile of C, the second largest telemetry cost after metrics.
 *
 * Same decisions as the SDK: `never` when nothing can record (no span exporter): a new span id
 * under the parent's trace, as the SDK's AlwaysOff sampler gives; `disabled` with the SDK
 * disabled: the parent's own span, as the API's no-op tracer gives (new ids only for a root,
 * which the no-op tracer would leave invalid); `unsampled-parents` when the sampler follows the parent (parentbased_* from
 * OTEL_TRACES_SAMPLER), so a valid parent without the sampled flag makes an unsampled child;
 * `none` sends everything to the SDK (always_on, traceidratio: a child may be sampled whatever
 * its parent). Suppressed tracing is left to the SDK.
 */
import { randomFillSync } from 'node:crypto';
import {
  context,
  isSpanContextValid,
  ROOT_CONTEXT,
  trace,
  TraceFlags,
  type Context,
  type Span,
  type SpanContext,
  type SpanOptions,
  type Tracer,
} from '@opentelemetry/api';
import { isTracingSuppressed } from '@opentelemetry/core';

export type Shortcut = 'disabled' | 'never' | 'unsampled-parents' | 'none';

/**
 * Random ids cut from a pooled hex string: one randomFillSync and one hex conversion per 256
 * span ids, then a substring each (V8 shares the pool's characters instead of copying them).
 */
class Ids {
  readonly #bytes = Buffer.allocUnsafe(2048);
  #pool = '';
  #offset = 0;

  #hex(chars: number): string {
    if (this.#offset + chars > this.#pool.length) {
      randomFillSync(this.#bytes);
      this.#pool = this.#bytes.toString('hex');
      this.#offset = 0;
    }
    const id = this.#pool.slice(this.#offset, this.#offset + chars);
    this.#offset += chars;
    return id;
  }

  spanId(): string {
    const id = this.#hex(16);
    // All zeros is the invalid id (a 2^-64 chance): draw again.
    return id === '0000000000000000' ? this.spanId() : id;
  }

  traceId(): string {
    const id = this.#hex(32);
    return id === '00000000000000000000000000000000' ? this.traceId() : id;
  }
}

/**
 * A span that is not recorded, whose span id is drawn the first time anyone asks for it. Most
 * message spans are never asked (no log line is written inside them at the default level), so
 * most never pay for an id; one that is asked keeps the same id from then on.
 */
class UnrecordedSpan implements Span {
  #context: SpanContext | undefined;

  constructor(
    private readonly ids: Ids,
    private readonly traceId: string | undefined,
    private readonly traceState: SpanContext['traceState'],
  ) {}

  spanContext(): SpanContext {
    return (this.#context ??= {
      traceId: this.traceId ?? this.ids.traceId(),
      spanId: this.ids.spanId(),
      traceFlags: TraceFlags.NONE,
      traceState: this.traceState,
    });
  }

  setAttribute(): this {
    return this;
  }

  setAttributes(): this {
    return this;
  }

  addEvent(): this {
    return this;
  }

  addLink(): this {
    return this;
  }

  addLinks(): this {
    return this;
  }

  setStatus(): this {
    return this;
  }

  updateName(): this {
    return this;
  }

  end(): void {}

  isRecording(): boolean {
    return false;
  }

  recordException(): void {}
}

/** The service's tracer: the API's, plus a way to skip building spans that will not be recorded. */
export interface ServiceTracer extends Tracer {
  unrecordedSpan(ctx: Context): Span | undefined;
  sdkSpan(name: string, options: SpanOptions, ctx: Context): Span;
}

export class UnsampledShortcutTracer implements ServiceTracer {
  readonly #ids = new Ids();
  /** Span contexts already found valid: a connection's parent is checked once, not per message. */
  readonly #valid = new WeakSet<SpanContext>();

  constructor(
    private readonly sdk: Tracer,
    private readonly shortcut: Shortcut,
  ) {}

  #isValid(parent: SpanContext): boolean {
    if (this.#valid.has(parent)) return true;
    if (!isSpanContextValid(parent)) return false;
    this.#valid.add(parent);
    return true;
  }

  /**
   * The span startSpan would give a child of `ctx` when that child is certain not to be
   * recorded, else undefined. A caller on a hot path asks first, and builds a recorded span's
   * name and attributes only when they will be kept.
   */
  unrecordedSpan(ctx: Context): Span | undefined {
    if (this.shortcut === 'none' || isTracingSuppressed(ctx)) return undefined;
    const parentSpan = trace.getSpan(ctx);
    const parent = parentSpan?.spanContext();
    const valid = parent !== undefined && this.#isValid(parent);
    if (this.shortcut === 'disabled' && valid) return parentSpan;
    if (this.shortcut === 'never' || this.shortcut === 'disabled' || (valid && (parent.traceFlags & TraceFlags.SAMPLED) === 0)) {
      return new UnrecordedSpan(this.#ids, valid ? parent.traceId : undefined, valid ? parent.traceState : undefined);
    }
    return undefined;
  }

  /** The SDK's startSpan, for a caller that has already asked unrecordedSpan and got nothing. */
  sdkSpan(name: string, options: SpanOptions, ctx: Context): Span {
    return this.sdk.startSpan(name, options, ctx);
  }

  startSpan(name: string, options?: SpanOptions, ctx: Context = context.active()): Span {
    const unrecorded = isTracingSuppressed(ctx) ? undefined : this.unrecordedSpan(options?.root ? ROOT_CONTEXT : ctx);
    return unrecorded ?? this.sdk.startSpan(name, options, ctx);
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(name: string, options: SpanOptions, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(name: string, options: SpanOptions, ctx: Context, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...args: [F] | [SpanOptions, F] | [SpanOptions, Context, F]): ReturnType<F> {
    const fn = args[args.length - 1] as F;
    const options = args.length > 1 ? (args[0] as SpanOptions) : undefined;
    const parent = args.length > 2 ? (args[1] as Context) : context.active();
    const span = this.startSpan(name, options, parent);
    return context.with(trace.setSpan(parent, span), fn as (span: Span) => ReturnType<F>, undefined, span);
  }
}
