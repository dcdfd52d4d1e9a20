/**
 * The batch span processor behind OTLP trace export, recording the SDK's standard
 * self-observability metrics (`otel.sdk.processor.span.processed`, `…queue.size`,
 * `…queue.capacity`). Without them a full queue drops spans with nothing on /metrics to say so.
 *
 * Those metrics need the SDK's MeterProvider, which NodeSDK creates in `start()`, after it has
 * taken its span processors. So NodeSDK is handed this stand-in, and the batch processor is built
 * into it with `attach()` straight after `start()`, in the same synchronous run: no span can end
 * in between, so none is lost to the stand-in.
 */
import type { Context, MeterProvider } from '@opentelemetry/api';
import {
  BatchSpanProcessor,
  type BufferConfig,
  type ReadableSpan,
  type Span,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';

export class DeferredBatchSpanProcessor implements SpanProcessor {
  readonly #exporter: SpanExporter;
  readonly #config: BufferConfig;
  #batch: SpanProcessor | undefined;

  /** @param config OTEL_BSP_* as src/config validated them */
  constructor(exporter: SpanExporter, config: BufferConfig) {
    this.#exporter = exporter;
    this.#config = config;
  }

  /** Builds the batch processor, its metrics recorded through `meterProvider`. Once only. */
  attach(meterProvider: MeterProvider): void {
    if (this.#batch !== undefined) throw new Error('batch span processor already attached');
    // The subclass hands its options on to the base processor, which takes selfObsMeterProvider
    // although the subclass's type omits it. Explicit settings win over its own OTEL_BSP_* reading.
    const options: BufferConfig & { selfObsMeterProvider: MeterProvider } = { ...this.#config, selfObsMeterProvider: meterProvider };
    this.#batch = new BatchSpanProcessor(this.#exporter, options);
  }

  onStart(span: Span, parentContext: Context): void {
    this.#batch?.onStart(span, parentContext);
  }

  onEnd(span: ReadableSpan): void {
    this.#batch?.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.#batch?.forceFlush() ?? Promise.resolve();
  }

  shutdown(): Promise<void> {
    return this.#batch?.shutdown() ?? this.#exporter.shutdown();
  }
}
