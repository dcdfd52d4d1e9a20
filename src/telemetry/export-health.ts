/**
 * Watches OTLP export results so an unreachable collector is visible: reported once when an
 * outage starts and once when it ends (never per batch), and shown as a degraded check on
 * /readyz. A telemetry outage never makes the service unready.
 */
import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Logger } from 'pino';

export type ExportSignal = 'traces' | 'metrics';

export interface ExportStatus {
  readonly status: 'ok' | 'degraded';
  /** Failing signals with the first error of the current outage and when it began. */
  readonly failing: Readonly<Record<string, { readonly since: string; readonly error: string }>>;
}

export class ExportHealth {
  readonly #failing = new Map<ExportSignal, { since: string; error: string }>();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /**
   * Export callbacks run in whatever context started the export (a span ended by a connection,
   * a timer armed during one): the lines are logged in the root context so they never carry a
   * client's request_id.
   */
  record(signal: ExportSignal, result: ExportResult): void {
    context.with(ROOT_CONTEXT, () => this.#record(signal, result));
  }

  #record(signal: ExportSignal, result: ExportResult): void {
    const failure = this.#failing.get(signal);
    if (result.code === ExportResultCode.SUCCESS) {
      if (failure) {
        this.#failing.delete(signal);
        this.#logger.info({ signal, since: failure.since }, 'telemetry export recovered');
      }
      return;
    }
    if (failure) return;
    const error = result.error?.message ?? 'export failed';
    this.#failing.set(signal, { since: new Date().toISOString(), error });
    this.#logger.warn({ signal, err: result.error }, 'telemetry export failing; further failures are not logged until it recovers');
  }

  status(): ExportStatus {
    return {
      status: this.#failing.size === 0 ? 'ok' : 'degraded',
      failing: Object.fromEntries(this.#failing),
    };
  }
}

export function observeSpanExporter(inner: SpanExporter, health: ExportHealth): SpanExporter {
  return {
    export(spans: ReadableSpan[], done: (result: ExportResult) => void) {
      inner.export(spans, (result) => {
        health.record('traces', result);
        done(result);
      });
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  };
}

export function observeMetricExporter(inner: PushMetricExporter, health: ExportHealth): PushMetricExporter {
  return {
    export(metrics: ResourceMetrics, done: (result: ExportResult) => void) {
      inner.export(metrics, (result) => {
        health.record('metrics', result);
        done(result);
      });
    },
    forceFlush: () => inner.forceFlush(),
    shutdown: () => inner.shutdown(),
    selectAggregationTemporality: inner.selectAggregationTemporality?.bind(inner),
    selectAggregation: inner.selectAggregation?.bind(inner),
  };
}
