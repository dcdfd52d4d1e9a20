/**
 * The batch span processor behind OTLP trace export, recording the SDK's standard
 * self-observability metrics (`otel.sdk.processor.span.processed`, with `error.type=queue_full`
 * for drops, `…queue.size`, `…queue.capacity`). Without them a full queue drops spans with
 * nothing on /metrics to say so (the WsServiceSpansDropped alert in otel/rules reads them).
 *
 * This module is the one place that relies on SDK behaviour outside the stable API:
 * - `BatchSpanProcessorOptions.selfObsMeterProvider` of @opentelemetry/sdk-trace, declared but
 *   marked experimental: the only way to give a batch processor a MeterProvider;
 * - NodeSDK.start() (sdk-node 0.223) creates and registers the global MeterProvider before it
 *   builds the TracerProvider from the span processors it was given. NodeSDK takes its span
 *   processors in its constructor and exposes no MeterProvider before start(), so it is given a
 *   stand-in here, and `startWithBatchSpans` builds the real processor into it straight after
 *   `start()`, in the same synchronous run: no span can end in between, so none is lost.
 *
 * Why not NodeSDK's own route (its `traceExporter` option with OTEL_NODE_EXPERIMENTAL_SDK_METRICS
 * set): that is an experimental switch too, it also turns on the tracer's per-span
 * `otel.sdk.span.*` metrics (a cost on every recorded span, and new series on /metrics), and the
 * SDK would read OTEL_BSP_* itself, where src/config validates them.
 */
import { metrics, type Context } from '@opentelemetry/api';
import type { NodeSDK } from '@opentelemetry/sdk-node';
import {
  BatchSpanProcessor,
  type BatchSpanProcessorOptions,
  type ReadableSpan,
  type Span,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';

/** OTEL_BSP_* as src/config validated them. */
export type SpanBatchConfig = Omit<BatchSpanProcessorOptions, 'exporter' | 'selfObsMeterProvider'>;

export class DeferredBatchSpanProcessor implements SpanProcessor {
  readonly #exporter: SpanExporter;
  readonly #config: SpanBatchConfig;
  #batch: SpanProcessor | undefined;

  constructor(exporter: SpanExporter, config: SpanBatchConfig) {
    this.#exporter = exporter;
    this.#config = config;
  }

  /** Builds the batch processor, its metrics recorded through the global MeterProvider. Once only. */
  #attach(): void {
    if (this.#batch !== undefined) throw new Error('batch span processor already attached');
    // Explicit settings: the SDK's own OTEL_BSP_* reading is not the validated one.
    this.#batch = new BatchSpanProcessor({ ...this.#config, exporter: this.#exporter, selfObsMeterProvider: metrics.getMeterProvider() });
  }

  /** NodeSDK.start(), then the batch processor built into `batch` before any span can end. */
  static start(sdk: NodeSDK, batch: DeferredBatchSpanProcessor | undefined): void {
    sdk.start();
    if (batch !== undefined) batch.#attach();
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
