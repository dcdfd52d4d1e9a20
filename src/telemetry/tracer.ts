/**
 * A Tracer in front of the SDK's that hands out the spans the SDK would not record, itself and
 * cheaply: a non-recording span with the parent's trace id (or a new one) and a new span id.
 *
 * Why: every message gets a span, and most of them are not recorded (no traces exporter, or a
 * parent-based sampler under a connection whose trace was not sampled). The SDK's startSpan
 * still does all its work for a span it then drops: parent validation, attribute sanitising,
 * the sampler, id generation. The benchmark showed that as one of the largest telemetry costs
 * on the message path (docs/benchmarks.md). The SDK has no public way to skip that work for a
 * span it will not record, so this tracer decides first and asks the SDK only when it must.
 *
 * SDK behaviour mirrored, per shortcut (test/unsampled-tracer.test.ts compares each case with
 * the SDK's own startSpan under the matching sampler):
 * - `never`, nothing can record (no span exporter, the SDK's AlwaysOff sampler): a non-recording,
 *   unsampled span with the valid parent's trace id and trace state, or a new trace id for a root;
 * - `disabled`, the SDK off (the API's no-op tracer): the parent's own span; a root gets new
 *   ids where the no-op tracer would leave them invalid, so log lines keep a request_id;
 * - `unsampled-parents`, a parent-based sampler (parentbased_* from OTEL_TRACES_SAMPLER): a valid
 *   parent without the sampled flag makes an unsampled, non-recording child, as
 *   ParentBasedSampler's default for unsampled parents (AlwaysOff) does; remote or local alike;
 * - `none`, everything goes to the SDK (always_on, traceidratio: a child may be sampled whatever
 *   its parent).
 * An invalid parent is treated as no parent, as the SDK does. Suppressed tracing is left to the SDK.
 */
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
import { randomIds, type RandomIds } from './ids.js';

export type Shortcut = 'disabled' | 'never' | 'unsampled-parents' | 'none';

/**
 * A span that is not recorded, whose span id is drawn the first time anyone asks for it. Most
 * message spans are never asked (no log line is written inside them at the default level), so
 * most never pay for an id; one that is asked keeps the same id from then on.
 */
class UnrecordedSpan implements Span {
  #context: SpanContext | undefined;

  constructor(
    private readonly ids: RandomIds,
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
  readonly #ids = randomIds;
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
