/**
 * The five variants of issue 5, each a server command and environment. Every ws-service variant
 * runs dist/src/main.js exactly as `npm start` does, at the default LOG_LEVEL=info.
 */
import { fileURLToPath } from 'node:url';

export const VARIANT_NAMES = ['A', 'B', 'C', 'D', 'E'] as const;
export type VariantName = (typeof VARIANT_NAMES)[number];

export interface Variant {
  readonly name: VariantName;
  readonly title: string;
  readonly script: string;
  /** Environment on top of HOST=127.0.0.1 and PORT=0; `sink` is the OTLP sink's base URL. */
  readonly env: (sink: string) => Record<string, string>;
  /** Whether the variant exports to the OTLP sink. */
  readonly exports: boolean;
  /** Why the /metrics scrape scenario does not apply; absent when GET /metrics answers 200. */
  readonly noMetrics?: string;
}

const BARE = fileURLToPath(new URL('./bare-server.js', import.meta.url));
const SERVICE = fileURLToPath(new URL('../src/main.js', import.meta.url));

const OTLP = (sink: string): Record<string, string> => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: sink,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
  // The default push period (60 s) would not push once in a variant's run; 5 s makes the metric
  // export part of what is measured.
  OTEL_METRIC_EXPORT_INTERVAL: '5000',
});

/**
 * The load generator is one client with many connections flooding on purpose: the per-connection
 * rate limit would answer most of it `rate_limited`, and 10,000 idle connections plus the
 * generator's exceed the default connection limit. Both are lifted for every ws-service variant.
 */
const LOAD_LIMITS = {
  LOG_LEVEL: 'info',
  RATE_LIMIT_MESSAGES_PER_SEC: '0',
  RATE_LIMIT_BYTES_PER_SEC: '0',
  MAX_CONNECTIONS: '100000',
  MAX_CONNECTIONS_PER_CLIENT: '0',
};

export const VARIANTS: Readonly<Record<VariantName, Variant>> = {
  A: {
    name: 'A',
    title: 'bare ws server, same echo protocol',
    script: BARE,
    env: () => ({}),
    exports: false,
    noMetrics: 'the bare server has no /metrics',
  },
  B: {
    name: 'B',
    title: 'ws-service, OTEL_SDK_DISABLED=true',
    script: SERVICE,
    env: () => ({ ...LOAD_LIMITS, OTEL_SDK_DISABLED: 'true' }),
    exports: false,
    noMetrics: 'OTEL_SDK_DISABLED=true: /metrics answers 503 by design',
  },
  C: {
    name: 'C',
    title: 'ws-service as npm start runs it (no OTLP endpoint)',
    script: SERVICE,
    env: () => ({ ...LOAD_LIMITS }),
    exports: false,
  },
  D: {
    name: 'D',
    title: 'ws-service exporting traces, metrics, logs over OTLP http/protobuf, 100% sampled',
    script: SERVICE,
    env: (sink) => ({ ...LOAD_LIMITS, ...OTLP(sink), OTEL_TRACES_SAMPLER: 'parentbased_always_on' }),
    exports: true,
  },
  E: {
    name: 'E',
    title: 'as D, OTEL_TRACES_SAMPLER=parentbased_traceidratio, arg 0.1',
    script: SERVICE,
    env: (sink) => ({
      ...LOAD_LIMITS,
      ...OTLP(sink),
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.1',
    }),
    exports: true,
  },
};

/** The limits the throughput load lifts (LOG_LEVEL is the default anyway): the abuse scenario puts them back. */
export const LOAD_LIMIT_KEYS: readonly string[] = Object.keys(LOAD_LIMITS).filter((key) => key !== 'LOG_LEVEL');
