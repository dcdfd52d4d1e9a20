/**
 * pino, one JSON object per line on stdout, in the shape the original specification fixes: ISO `timestamp`,
 * uppercase `level`, `message`, and the active span's ids as `request_id`, `trace_id`,
 * `span_id`, `trace_flags`. A mixin reads the active context, so no loader hook is needed.
 * With an OTLP logs endpoint the same records also go to pino-opentelemetry-transport, which
 * correlates them with their spans because all three trace fields are top level.
 */
import { context, isSpanContextValid, trace, type Meter } from '@opentelemetry/api';
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
  /** LOG_BUFFER_BYTES: the most stdout output held while stdout is not draining. @default 1048576 */
  readonly bufferBytes?: number;
}

export interface ServiceLogger {
  readonly logger: Logger;
  /** Flushes stdout and, with OTLP, the transport's last batch; gives up after `budgetMs`. */
  readonly close: (budgetMs: number) => Promise<'flushed' | 'timeout'>;
  /** Lines not written to stdout because LOG_BUFFER_BYTES was already held (log_lines_dropped). */
  readonly droppedLines: () => number;
}

/**
 * stdout through the runtime's own stream. On a pipe (containers, systemd) Node writes without
 * blocking: a line goes out within write() while the reader keeps up, so a crash loses nothing,
 * and waits in memory only while the pipe is full. That wait is bounded here: past
 * `bufferBytes` a line is dropped and counted, so a reader that stops never stalls the event
 * loop nor grows the heap.
 *
 * Why not SonicBoom (pino.destination) with `sync: false` and `maxLength`: it writes through
 * libuv's thread pool, and on a blocking pipe that nobody drains the write never returns; the
 * pool thread stays stuck and process.exit() hangs joining it.
 */
export class BoundedStdout {
  #dropped = 0;
  /** Lines handed to the stream whose write has not completed. */
  #pending = 0;
  #drained: (() => void)[] = [];
  readonly #written = (): void => {
    if (--this.#pending > 0) return;
    const waiters = this.#drained;
    this.#drained = [];
    for (const resolve of waiters) resolve();
  };

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly bufferBytes: number,
  ) {
    // A reader that went away (EPIPE) is not the process's fault; unheard, the error would be
    // an uncaught exception. Lines written after it are counted as dropped.
    out.on('error', () => {});
  }

  write(line: string): void {
    // writableLength counts what the stream holds unwritten; zero on files and terminals, which
    // Node writes synchronously.
    if (this.out.destroyed || this.out.writableLength + line.length > this.bufferBytes) {
      this.#dropped++;
      return;
    }
    this.#pending++;
    this.out.write(line, this.#written);
  }

  get dropped(): number {
    return this.#dropped;
  }

  /** Resolves once every line handed to the stream is written, or after `budgetMs` with some left behind. */
  async drain(budgetMs: number): Promise<'flushed' | 'timeout'> {
    if (this.#pending === 0) return 'flushed';
    const drained = new Promise<void>((resolve) => this.#drained.push(resolve));
    return (await withDeadline(drained, budgetMs)) === 'timeout' ? 'timeout' : 'flushed';
  }
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
  if (settings.destination) {
    const logger = pino(options, settings.destination);
    return { logger, close: () => Promise.resolve('flushed'), droppedLines: () => 0 };
  }
  const stdout = new BoundedStdout(process.stdout, settings.bufferBytes ?? 1_048_576);
  if (otlp === undefined) {
    return { logger: pino(options, stdout), close: (budgetMs) => stdout.drain(budgetMs), droppedLines: () => stdout.dropped };
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
  const logger = pino(options, pino.multistream([{ level: settings.level, stream: stdout }, { level: settings.level, stream: transport }]));
  return {
    logger,
    droppedLines: () => stdout.dropped,
    async close(budgetMs) {
      const started = performance.now();
      const closed = once(transport, 'close');
      transport.end();
      const outcome = await withDeadline(closed, budgetMs);
      const flushed = await stdout.drain(Math.max(0, budgetMs - (performance.now() - started)));
      return outcome === 'timeout' || flushed === 'timeout' ? 'timeout' : 'flushed';
    },
  };
}

/** log_lines_dropped_total: read at collection, so an idle stdout costs nothing. */
export function observeDroppedLogLines(meter: Meter, dropped: () => number): void {
  meter
    .createObservableCounter('log_lines_dropped', {
      description: 'Log lines not written to stdout because LOG_BUFFER_BYTES of output was already waiting for it to drain',
    })
    .addCallback((result) => result.observe(dropped()));
}
