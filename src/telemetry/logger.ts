/**
 * pino, one JSON object per line on stdout, in the shape the original specification fixes: ISO `timestamp`,
 * uppercase `level`, `message`, and the active span's ids as `request_id`, `trace_id`,
 * `span_id`, `trace_flags`. A mixin reads the active context, so no loader hook is needed.
 * With an OTLP logs endpoint the same records also go to pino-opentelemetry-transport, which
 * correlates them with their spans because all three trace fields are top level.
 */
import { context, isSpanContextValid, trace } from '@opentelemetry/api';
import { once } from 'node:events';
import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { LogLevel, OtlpProtocol } from '../config/config.js';
import { withDeadline } from '../util/deadline.js';
import { resolveServiceName } from './service-name.js';

export interface OtlpLogSettings {
  readonly protocol: OtlpProtocol;
  /**
   * Per export attempt. It also bounds shutdown: ending the transport blocks this thread until
   * the worker's last export returns, so this must fit in the shutdown budget.
   */
  readonly exportTimeoutMs: number;
  readonly batch: { readonly scheduledDelayMillis: number; readonly maxQueueSize: number; readonly maxExportBatchSize: number };
}

export interface LoggerSettings {
  readonly level: LogLevel;
  /** Ship every record over OTLP too, when an OTLP logs endpoint is configured. */
  readonly otlp: OtlpLogSettings | undefined;
  /** The default service.name; OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES override it, as for spans. */
  readonly serviceName: string;
  readonly serviceVersion: string;
  readonly serviceInstanceId: string;
  /** Where the JSON lines go; defaults to stdout. Tests pass a stream to read them back. */
  readonly destination?: DestinationStream;
}

export interface ServiceLogger {
  readonly logger: Logger;
  /** Flushes stdout and, with OTLP, the transport's last batch; gives up after `budgetMs`. */
  readonly close: (budgetMs: number) => Promise<'flushed' | 'timeout'>;
}

/** The pino-opentelemetry-transport maps pino's numeric levels; ours are labels, so map those. */
const OTEL_SEVERITY_BY_LABEL = { TRACE: 1, DEBUG: 5, INFO: 9, WARN: 13, ERROR: 17, FATAL: 21 };

type TraceFields = {
  request_id: string;
  trace_id: string;
  span_id: string;
  trace_flags: string;
};

/** The active span's ids; empty outside any span (startup lines before the first connection). */
export function traceFields(): TraceFields | Record<string, never> {
  const spanContext = trace.getSpanContext(context.active());
  if (spanContext === undefined || !isSpanContextValid(spanContext)) return {};
  return {
    request_id: spanContext.traceId,
    trace_id: spanContext.traceId,
    span_id: spanContext.spanId,
    trace_flags: spanContext.traceFlags === 1 ? '01' : spanContext.traceFlags.toString(16).padStart(2, '0'),
  };
}

export function loggerOptions(level: LogLevel): LoggerOptions {
  return {
    level,
    base: null,
    messageKey: 'message',
    timestamp: () => `,"timestamp":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ level: label.toUpperCase() }) },
    mixin: traceFields,
  };
}

/** The transport's exporter options; endpoint, headers and TLS still come from OTEL_EXPORTER_OTLP_* in the worker. */
function exporterOptions(otlp: OtlpLogSettings): Record<string, unknown> {
  const options = { timeoutMillis: otlp.exportTimeoutMs };
  switch (otlp.protocol) {
    case 'grpc':
      return { protocol: 'grpc', grpcExporterOptions: options };
    case 'http/json':
      return { protocol: 'http', httpExporterOptions: options };
    case 'http/protobuf':
      return { protocol: 'http/protobuf', protobufExporterOptions: options };
  }
}

export function createLogger(settings: LoggerSettings): ServiceLogger {
  const options = loggerOptions(settings.level);
  const otlp = settings.otlp;
  if (otlp === undefined || settings.destination) {
    const destination = settings.destination ?? pino.destination({ dest: 1, sync: true });
    const logger = pino(options, destination);
    return {
      logger,
      close: () => {
        logger.flush();
        return Promise.resolve('flushed');
      },
    };
  }

  // stdout is written from this thread; only the OTLP shipping runs in pino's worker. One
  // transport target, because pino's multi-target router reads numeric levels from each line
  // and our lines carry level labels.
  const serviceName = resolveServiceName(settings.serviceName);
  const transport = pino.transport({
    target: 'pino-opentelemetry-transport',
    options: {
      loggerName: serviceName,
      serviceVersion: settings.serviceVersion,
      // The transport's worker detects its own resource and lets these win over it: the same
      // attributes as the spans' and metrics' resource.
      resourceAttributes: {
        'service.name': serviceName,
        'service.version': settings.serviceVersion,
        'service.instance.id': settings.serviceInstanceId,
      },
      severityNumberMap: OTEL_SEVERITY_BY_LABEL,
      logRecordProcessorOptions: {
        recordProcessorType: 'batch',
        exporterOptions: exporterOptions(otlp),
        processorConfig: { ...otlp.batch, exportTimeoutMillis: otlp.exportTimeoutMs * 2 },
      },
    },
  });
  const stdout = pino.destination({ dest: 1, sync: true });
  const logger = pino(options, pino.multistream([{ level: settings.level, stream: stdout }, { level: settings.level, stream: transport }]));
  return {
    logger,
    async close(budgetMs) {
      stdout.flushSync();
      const closed = once(transport, 'close');
      transport.end();
      const outcome = await withDeadline(closed, budgetMs);
      return outcome === 'timeout' ? 'timeout' : 'flushed';
    },
  };
}
