/**
 * The OpenTelemetry SDK, configured explicitly: a Prometheus reader served on the service's own
 * port, OTLP traces and metrics only when an endpoint is set, no SDK log pipeline (logs leave
 * through pino's transport), and the standard OTEL_* variables honoured for the rest.
 */
import {
  context,
  metrics,
  propagation,
  ROOT_CONTEXT,
  trace,
  type Meter,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  PeriodicExportingMetricReader,
  type InstrumentType,
  type MetricProducer,
  type MetricReader,
  type PushMetricExporter,
} from '@opentelemetry/sdk-metrics';
import { RedisInstrumentation } from '@opentelemetry/instrumentation-redis';
import { RuntimeNodeInstrumentation } from '@opentelemetry/instrumentation-runtime-node';
import { redisStatement } from './redis-statement.js';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { AlwaysOffSampler, NoopSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPMetricExporter as OTLPMetricExporterGrpc } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as OTLPMetricExporterJson } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OTLPMetricExporterProto } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as OTLPTraceExporterGrpc } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as OTLPTraceExporterJson } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPTraceExporterProto } from '@opentelemetry/exporter-trace-otlp-proto';
import type { Logger } from 'pino';
import type { OtlpProtocol, TelemetryConfig } from '../config/config.js';
import { DeferredBatchSpanProcessor } from './batch-spans.js';
import { withDeadline } from '../util/deadline.js';
import { ExportHealth, observeMetricExporter, observeSpanExporter, type ExportStatus } from './export-health.js';
import { LocalInstruments } from './local-instruments.js';
import { resolveServiceName } from './service-name.js';
import { UnsampledShortcutTracer, type ServiceTracer, type Shortcut } from './tracer.js';

/** Prometheus text format 0.0.4, which the exporter's own handler does not declare. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type SdkState = 'started' | 'disabled' | 'stopped';

export interface Telemetry {
  readonly tracer: ServiceTracer;
  readonly meter: Meter;
  readonly state: () => SdkState;
  /** Collects and serialises every metric; rejects when the SDK cannot collect (not started, shut down, disabled). */
  readonly scrape: () => Promise<string>;
  readonly exportStatus: () => ExportStatus;
  /** Flushes (the final OTLP metric push included) and stops the SDK, giving up after `budgetMs`. */
  readonly shutdown: (budgetMs: number) => Promise<'flushed' | 'failed' | 'timeout'>;
  /** Unregisters the global providers, so another instance can start in the same process (tests do). */
  readonly release: () => void;
}

function traceExporter(protocol: OtlpProtocol): SpanExporter {
  switch (protocol) {
    case 'grpc':
      return new OTLPTraceExporterGrpc();
    case 'http/json':
      return new OTLPTraceExporterJson();
    case 'http/protobuf':
      return new OTLPTraceExporterProto();
  }
}

function metricExporter(protocol: OtlpProtocol): PushMetricExporter {
  switch (protocol) {
    case 'grpc':
      return new OTLPMetricExporterGrpc();
    case 'http/json':
      return new OTLPMetricExporterJson();
    case 'http/protobuf':
      return new OTLPMetricExporterProto();
  }
}

/**
 * When spans are certain not to be recorded, the service's tracer makes them itself (see
 * src/telemetry/tracer.ts): always, if nothing can record them (the SDK disabled: the parent's
 * span, as the API's no-op tracer gives; no span exporter: new ids); for unsampled parents, if the
 * SDK's sampler follows the parent (the parentbased_* samplers) or records nothing (always_off).
 */
function tracerShortcut(config: TelemetryConfig, extras: TelemetryExtras): Shortcut {
  if (config.sdkDisabled) return 'disabled';
  if (!config.traces.enabled && extras.spanProcessors === undefined) return 'never';
  return config.tracesSampler === 'always_on' || config.tracesSampler === 'traceidratio' ? 'none' : 'unsampled-parents';
}

/** In-process extras, for tests that read spans and pushed metrics without a network hop. */
export interface TelemetryExtras {
  /** Replace the OTLP/no-op span processors; the sampler then comes from OTEL_TRACES_SAMPLER. */
  readonly spanProcessors?: SpanProcessor[];
  /**
   * Readers added beside the Prometheus reader (and the OTLP one, if any), each built with the
   * producer of the service's counters and histograms (cumulative), as src/telemetry/local-instruments.ts
   * explains.
   */
  readonly metricReaders?: ((metricProducers: MetricProducer[]) => MetricReader)[];
}

export function startTelemetry(config: TelemetryConfig, logger: Logger, extras: TelemetryExtras = {}): Telemetry {
  const health = new ExportHealth(logger);
  let state: SdkState = config.sdkDisabled ? 'disabled' : 'started';

  // Counters and histograms aggregate in place and reach each reader through a producer.
  const local = new LocalInstruments({ name: 'ws-service', version: config.serviceVersion });
  // Scope labels would change every series' identity whenever the package version changes.
  const prometheus = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true, metricProducers: [local.producer()] });
  const serializer = new PrometheusSerializer('', false, undefined, false, true);

  // Its event-loop sampler and GC observer run until disabled; the SDK's shutdown does not.
  let runtime: RuntimeNodeInstrumentation | undefined;
  let sdk: NodeSDK | undefined;
  if (config.sdkDisabled) {
    // Without the SDK nothing installs these, yet upgrade traceparents and log request ids
    // still need them: trace ids stay meaningful even when nothing is recorded.
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  } else {
    const readers: MetricReader[] = [prometheus, ...(extras.metricReaders ?? []).map((build) => build([local.producer()]))];
    if (config.metrics.enabled) {
      const exporter = metricExporter(config.metrics.protocol);
      const temporality = (type: InstrumentType) => exporter.selectAggregationTemporality?.(type) ?? AggregationTemporality.CUMULATIVE;
      readers.push(
        new PeriodicExportingMetricReader({
          exporter: observeMetricExporter(exporter, health),
          metricProducers: [local.producer(temporality)],
          exportIntervalMillis: config.metrics.exportIntervalMs,
          exportTimeoutMillis: Math.min(config.metrics.exportTimeoutMs, config.metrics.exportIntervalMs),
        }),
      );
    }
    const batchSpans = config.traces.enabled && !extras.spanProcessors
      ? new DeferredBatchSpanProcessor(observeSpanExporter(traceExporter(config.traces.protocol), health), config.traces.batch)
      : undefined;
    runtime = new RuntimeNodeInstrumentation();
    sdk = new NodeSDK({
      // NodeSDK merges what its env detector finds over this; resolving the name with the same
      // detector keeps it right when OTEL_NODE_RESOURCE_DETECTORS leaves env detection out.
      resource: defaultResource().merge(
        resourceFromAttributes({
          [ATTR_SERVICE_NAME]: resolveServiceName(config.serviceName),
          'service.version': config.serviceVersion,
          'service.instance.id': config.serviceInstanceId,
        }),
      ),
      metricReaders: readers,
      // Logs reach OTLP through pino-opentelemetry-transport; the SDK's own log pipeline stays empty.
      logRecordProcessors: [],
      // Event-loop delay, heap and GC through the SDK's MeterProvider; the service's own counters
      // keep going through LocalInstruments. The Redis engine's commands (a PUBLISH under its
      // PRODUCER span) as CLIENT spans, only inside a trace: reconnects and resubscribes are
      // nobody's request. redisStatement keeps the scripts' message arguments out of spans.
      instrumentations: [runtime, new RedisInstrumentation({ requireParentSpan: true, dbStatementSerializer: redisStatement })],
      // Span attributes are cut at this length whatever fills them; client strings are bounded
      // before that, with a mark (src/telemetry/bounded.ts).
      spanLimits: { attributeValueLengthLimit: config.attributeValueLengthLimit },
      ...(extras.spanProcessors
        ? { spanProcessors: extras.spanProcessors }
        : batchSpans
        ? { spanProcessors: [batchSpans] }
        : // Nothing would receive spans: record none, but keep generating ids for request_id.
          { spanProcessors: [new NoopSpanProcessor()], sampler: new AlwaysOffSampler() }),
    });
    DeferredBatchSpanProcessor.start(sdk, batchSpans);
  }

  return {
    tracer: new UnsampledShortcutTracer(trace.getTracer('ws-service', config.serviceVersion), tracerShortcut(config, extras)),
    meter: config.sdkDisabled ? metrics.getMeter('ws-service', config.serviceVersion) : local.meter(metrics.getMeter('ws-service', config.serviceVersion)),
    state: () => state,
    async scrape() {
      if (state === 'disabled') throw new Error('telemetry SDK disabled (OTEL_SDK_DISABLED=true)');
      const { resourceMetrics, errors } = await prometheus.collect();
      if (errors.length > 0) {
        // A scrape is no client's work: its warning must not borrow whatever context is active.
        context.with(ROOT_CONTEXT, () => logger.warn({ errors: errors.map(String) }, 'metric collection reported errors'));
      }
      return serializer.serialize(resourceMetrics);
    },
    exportStatus: () => health.status(),
    async shutdown(budgetMs) {
      if (state !== 'started' || sdk === undefined) {
        state = state === 'disabled' ? 'disabled' : 'stopped';
        return 'flushed';
      }
      state = 'stopped';
      runtime?.disable();
      const outcome = await withDeadline(sdk.shutdown(), budgetMs);
      if (outcome === 'timeout') return 'timeout';
      return outcome.ok ? 'flushed' : 'failed';
    },
    release() {
      runtime?.disable();
      trace.disable();
      metrics.disable();
      propagation.disable();
      context.disable();
    },
  };
}
