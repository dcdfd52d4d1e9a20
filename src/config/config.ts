/**
 * Service configuration: every setting comes from one environment variable, is validated once at
 * startup, and is frozen afterwards. A bad value stops startup with one line that names the
 * variable and what it accepts (ConfigError), never a stack trace.
 */
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { CLOSE_WINDOW_MAX_SHARE } from '../lifecycle/budget.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json', 'grpc'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/** The OTEL_TRACES_SAMPLER values NodeSDK builds a sampler from (it matches them exactly, case included). */
export const TRACES_SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
export type TracesSampler = (typeof TRACES_SAMPLERS)[number];

export interface OtlpSignalConfig {
  /** Whether this signal is exported over OTLP at all (an endpoint is set and the exporter is not `none`). */
  readonly enabled: boolean;
  readonly protocol: OtlpProtocol;
}

export interface TelemetryConfig {
  /** `OTEL_SDK_DISABLED=true`: no SDK, no `/metrics`, ids for logs still generated. */
  readonly sdkDisabled: boolean;
  /**
   * The default service.name, `ws-service`. OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override
   * it through the SDK's own resource detection (src/telemetry/service-name.ts), not parsed here.
   */
  readonly serviceName: string;
  readonly serviceVersion: string;
  /** service.instance.id: one per process, so series and logs of successive deploys stay apart. */
  readonly serviceInstanceId: string;
  /**
   * OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: the longest string a span attribute keeps; the SDK cuts
   * longer ones. Unlimited in the SDK by default, so any attribute fed by a client would be as
   * large as the client made it. @default 4096
   */
  readonly attributeValueLengthLimit: number;
  readonly traces: OtlpSignalConfig & {
    /**
     * OTEL_BSP_* batch span processor settings, validated here and passed explicitly: the SDK's
     * own reading of them takes a negative queue size, which then drops every span.
     */
    readonly batch: {
      readonly scheduledDelayMillis: number;
      readonly exportTimeoutMillis: number;
      readonly maxQueueSize: number;
      readonly maxExportBatchSize: number;
    };
  };
  readonly metrics: OtlpSignalConfig & {
    /** OTEL_METRIC_EXPORT_INTERVAL, ms between OTLP metric pushes. */
    readonly exportIntervalMs: number;
    /** OTEL_METRIC_EXPORT_TIMEOUT, ms one push may take. */
    readonly exportTimeoutMs: number;
  };
  readonly logs: OtlpSignalConfig & {
    /** OTEL_EXPORTER_OTLP_[LOGS_]TIMEOUT; the log transport's worker does not read it itself. */
    readonly exportTimeoutMs: number;
    /** OTEL_BLRP_* batch settings, passed to the transport's worker (which ignores the variables). */
    readonly batch: {
      readonly scheduledDelayMillis: number;
      readonly maxQueueSize: number;
      readonly maxExportBatchSize: number;
    };
  };
  /**
   * OTEL_TRACES_SAMPLER, validated here (the SDK would fall back to its default on an unknown
   * value with only a diagnostic line); the SDK builds the sampler from the variable itself.
   * @default 'parentbased_always_on'
   */
  readonly tracesSampler: TracesSampler;
}

export interface Config {
  /** TCP port for HTTP, /metrics, health routes and the WebSocket upgrade. @default 8080 */
  readonly port: number;
  /** Interface to bind. @default undefined (all interfaces, IPv6 and IPv4 where available) */
  readonly host: string | undefined;
  /** Path on which WebSocket upgrades are accepted. @default '/ws' */
  readonly wsPath: string;
  /** @default 'info' */
  readonly logLevel: LogLevel;
  /**
   * LOG_BUFFER_BYTES: the most log output held in memory while stdout does not drain; lines
   * past it are dropped and counted in log_lines_dropped_total. @default 1048576
   */
  readonly logBufferBytes: number;
  /** After SIGTERM, how long /readyz reports 503 before connections are closed. @default 5000 */
  readonly shutdownDrainDelayMs: number;
  /** Budget for everything after the drain delay: closing sockets and flushing telemetry. @default 10000 */
  readonly shutdownTimeoutMs: number;
  /** Largest accepted message; a larger frame closes the connection with 1009. @default 65536 */
  readonly maxMessageBytes: number;
  /** Connections drained over this window in waves, not all at once. @default shutdownTimeoutMs / 10 */
  readonly shutdownCloseWindowMs: number;
  readonly limits: LimitsConfig;
  readonly http: HttpConfig;
  readonly admission: AdmissionConfig;
  readonly telemetry: TelemetryConfig;
  readonly channels: ChannelsConfig;
}

/** Publish/subscribe channels (docs/protocol.md#channels). */
export interface ChannelsConfig {
  /** MAX_SUBSCRIPTIONS_PER_CONNECTION: past it `subscribe` gets too_many_subscriptions. @default 100 */
  readonly maxSubscriptionsPerConnection: number;
  /**
   * CHANNEL_NAMESPACES: the namespaces that keep their own metric label; every other folds into
   * `other`, so a client inventing namespaces cannot grow the series count. @default [] (all `other`)
   */
  readonly namespaces: readonly string[];
  /**
   * MAX_PUBLISH_BYTES: the most a publish's `data` may take as JSON text; past it the publish
   * gets message_too_large and the connection stays open. At most MAX_MESSAGE_BYTES. @default 32768
   */
  readonly maxPublishBytes: number;
  /** The Redis engine when REDIS_URL is set; the in-process engine otherwise. */
  readonly redis?: RedisConfig;
  /**
   * Per-channel history for recovery: CHANNEL_HISTORY_SIZE publications (@default 1000) kept
   * for CHANNEL_HISTORY_TTL_MS (@default 300000); either at 0 turns history off.
   */
  readonly history: { readonly size: number; readonly ttlMs: number };
}

export interface RedisConfig {
  /** REDIS_URL: redis://[user:password@]host[:port][/db] or rediss:// for TLS. */
  readonly url: string;
  /** REDIS_CHANNEL_PREFIX: before every channel name on Redis, so deployments sharing a Redis stay apart. @default "ws-service:" */
  readonly prefix: string;
  /** REDIS_COMMAND_TIMEOUT_MS: a Redis command (a publish) not answered by then fails with `unavailable`. @default 2000 */
  readonly commandTimeoutMs: number;
}

/** What one connection, and the whole server, may cost; every limit has a metric (README). */
export interface LimitsConfig {
  /** Upgrades beyond this many live connections are refused with 503. @default 10000 */
  readonly maxConnections: number;
  /** Unsent bytes a socket may hold before it is closed as a slow reader (1013). @default 4194304 */
  readonly maxBufferedBytes: number;
  /**
   * Unsent bytes over all sockets; past it the connections holding the most are terminated
   * until the total is back under it. @default max(268435456, maxBufferedBytes)
   */
  readonly maxTotalBufferedBytes: number;
  /** Deepest JSON nesting accepted; deeper messages get `bad_request` without being parsed. @default 64 */
  readonly maxJsonDepth: number;
  /**
   * Object members and array elements one message may hold, counted as the `,` and `:` outside
   * strings; more gets `bad_request` without being parsed. @default 4096
   */
  readonly maxJsonEntries: number;
  /** Token buckets per connection; undefined when both the message and the byte rate are 0 (off). */
  readonly rateLimit: RateLimitConfig | undefined;
  /** Ping period; a peer that has not answered the previous ping is terminated. 0 = off. @default 30000 */
  readonly heartbeatIntervalMs: number;
  /** Live WebSocket connections one client address may hold; further upgrades get 429. 0 = off. @default 1000 */
  readonly maxConnectionsPerClient: number;
}

export interface RateLimitConfig {
  /** Refill rate of the message bucket; 0 = messages are not counted. @default 100 */
  readonly messagesPerSec: number;
  /** Bucket size: messages a connection may send at once after a quiet spell. @default 200 */
  readonly burst: number;
  /**
   * Refill rate of the byte bucket, which each message is charged its size from; 0 = bytes are
   * not counted. A message's cost grows with its size, not its count. @default 1048576
   */
  readonly bytesPerSec: number;
  /** Byte bucket size; at least MAX_MESSAGE_BYTES, so the largest message can pass. @default max(2097152, maxMessageBytes) */
  readonly bytesBurst: number;
  /**
   * Sustained abuse: this many messages refused since the bucket was last full (the client
   * never backed off long enough to refill it) closes the connection with 1008. @default 100
   */
  readonly closeAfter: number;
}

/** Node's HTTP server timeouts, against clients that send slowly or hold sockets idle. */
export interface HttpConfig {
  /** Time to receive a request's complete headers (upgrades included); then 408. @default 10000 */
  readonly headersTimeoutMs: number;
  /** Time to receive a complete request; then 408. @default 30000 */
  readonly requestTimeoutMs: number;
  /** Idle time allowed on a kept-alive HTTP connection between requests. @default 5000 */
  readonly keepAliveTimeoutMs: number;
  /**
   * Open TCP connections a listening port holds, WebSocket connections included; further
   * connections are closed as accepted. Above MAX_CONNECTIONS so /healthz and refusals still
   * get through when the WebSocket limit is reached; lowered at start to fit the open-file limit.
   * @default MAX_CONNECTIONS + 1000
   */
  readonly maxConnections: number;
  /** Requests one socket may have unanswered (pipelined behind each other); past it the socket is closed. @default 16 */
  readonly maxPipelinedRequests: number;
  /** A separate port for /metrics (then not served on PORT); undefined = /metrics on PORT. */
  readonly metricsPort: number | undefined;
  /** Interface for METRICS_PORT. @default HOST */
  readonly metricsHost: string | undefined;
  /**
   * Proxies whose X-Forwarded-For is believed (TRUST_PROXY); the per-client limit then counts
   * the right-most address in it that is not one of them. Empty = the peer address only.
   */
  readonly trustedProxies: readonly string[];
}

/** Optional checks on the upgrade request, refused before the handshake; both off by default. */
export interface AdmissionConfig {
  /** Origins (scheme://host[:port]) allowed to open a WebSocket; undefined = any. */
  readonly allowedOrigins: readonly string[] | undefined;
  /** Bearer token the upgrade must carry in `Authorization`; undefined = none required. */
  readonly authToken: string | undefined;
}

export type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly variable: string,
    readonly accepts: string,
    readonly value: string,
  ) {
    super(`invalid configuration: ${variable}=${JSON.stringify(value)}: expected ${accepts}`);
  }
}

function raw(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === '' ? undefined : value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const accepts = `an integer from ${min} to ${max}`;
  if (!/^\d+$/.test(value)) throw new ConfigError(name, accepts, value);
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ConfigError(name, accepts, value);
  return n;
}

/** Like integer(), but 0 turns the feature off. */
function integerOrOff(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = raw(env, name);
  if (value === '0') return 0;
  try {
    return integer(env, name, fallback, min, max);
  } catch {
    throw new ConfigError(name, `0 (off) or an integer from ${min} to ${max}`, value ?? '');
  }
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const lowered = value.toLowerCase();
  const match = allowed.find((a) => a === lowered);
  if (match === undefined) throw new ConfigError(name, `one of ${allowed.join(', ')}`, value);
  return match;
}

function boolean(env: Env, name: string): boolean {
  const value = raw(env, name);
  if (value === undefined) return false;
  const lowered = value.toLowerCase();
  if (lowered === 'true') return true;
  if (lowered === 'false') return false;
  throw new ConfigError(name, 'true or false', value);
}

/**
 * Whether an OTLP endpoint variable is set, refusing a value that is not an http(s) URL. Only
 * the presence decides: each exporter reads the URL itself (and appends its signal path).
 */
function endpointSet(env: Env, name: string): boolean {
  const value = raw(env, name);
  if (value === undefined) return false;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, 'an http:// or https:// URL', value);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(name, 'an http:// or https:// URL', value);
  }
  return true;
}

function wsPath(env: Env): string {
  const value = raw(env, 'WS_PATH');
  if (value === undefined) return '/ws';
  if (!/^\/[A-Za-z0-9._~!$&'()*+,;=:@/-]*$/.test(value)) {
    throw new ConfigError('WS_PATH', 'a URL path starting with /', value);
  }
  return value;
}

function host(env: Env, name = 'HOST'): string | undefined {
  const value = raw(env, name);
  if (value === undefined) return undefined;
  if (!/^[A-Za-z0-9.:-]+$/.test(value)) {
    throw new ConfigError(name, 'a host name or an IPv4/IPv6 address', value);
  }
  return value;
}

function trustedProxies(env: Env): readonly string[] {
  const value = raw(env, 'TRUST_PROXY');
  if (value === undefined) return Object.freeze([]);
  const addresses = value.split(',').map((a) => a.trim());
  // Exact addresses only: a trusted proxy is a known hop, and a range would be a guess.
  if (addresses.some((a) => isIP(a) === 0)) {
    throw new ConfigError('TRUST_PROXY', 'a comma-separated list of proxy IPv4/IPv6 addresses', value);
  }
  return Object.freeze(addresses);
}

function allowedOrigins(env: Env): readonly string[] | undefined {
  const value = raw(env, 'ALLOWED_ORIGINS');
  if (value === undefined) return undefined;
  const accepts = 'a comma-separated list of origins such as https://app.example.com';
  const origins: string[] = [];
  for (const item of value.split(',')) {
    const entry = item.trim();
    let parsed: URL;
    try {
      parsed = new URL(entry);
    } catch {
      throw new ConfigError('ALLOWED_ORIGINS', accepts, value);
    }
    // An origin is scheme, host and port only; a path or query here is a misunderstanding.
    if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.origin !== entry.replace(/\/$/, '').toLowerCase()) {
      throw new ConfigError('ALLOWED_ORIGINS', accepts, value);
    }
    origins.push(parsed.origin);
  }
  return Object.freeze(origins);
}

function channelNamespaces(env: Env): readonly string[] {
  const value = raw(env, 'CHANNEL_NAMESPACES');
  if (value === undefined) return Object.freeze([]);
  const names = value.split(',').map((n) => n.trim());
  // `other` is the folded label itself; naming it would merge a real namespace with the rest.
  if (names.some((n) => !/^[A-Za-z0-9_.-]{1,64}$/.test(n) || n === 'other')) {
    throw new ConfigError('CHANNEL_NAMESPACES', 'a comma-separated list of namespaces (A-Z a-z 0-9 _ . -, at most 64 each, not "other")', value);
  }
  return Object.freeze([...new Set(names)]);
}

function redis(env: Env): RedisConfig | undefined {
  const url = raw(env, 'REDIS_URL');
  if (url === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError('REDIS_URL', 'a redis:// or rediss:// URL', '(not a URL)');
  }
  // The value may carry a password: only the parts that cannot are echoed back.
  if ((parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') || parsed.hostname === '') {
    throw new ConfigError('REDIS_URL', 'a redis:// or rediss:// URL with a host', `${parsed.protocol}//${parsed.host}`);
  }
  const prefix = raw(env, 'REDIS_CHANNEL_PREFIX') ?? 'ws-service:';
  if (!/^[A-Za-z0-9_.:-]{0,64}$/.test(prefix)) {
    throw new ConfigError('REDIS_CHANNEL_PREFIX', 'at most 64 characters from A-Z a-z 0-9 _ . : -', prefix);
  }
  return { url, prefix, commandTimeoutMs: integer(env, 'REDIS_COMMAND_TIMEOUT_MS', 2_000, 50, 60_000) };
}

function authToken(env: Env): string | undefined {
  const value = env.AUTH_TOKEN;
  if (value === undefined || value === '') return undefined;
  // RFC 6750 b64token characters; 16 or more so that a guessable placeholder is not accepted.
  if (!/^[A-Za-z0-9\-._~+/]{16,}=*$/.test(value)) {
    throw new ConfigError('AUTH_TOKEN', 'a bearer token of 16 or more characters from A-Z a-z 0-9 - . _ ~ + / (then optional =)', '<redacted>');
  }
  return value;
}

function limits(env: Env, maxMessageBytes: number): LimitsConfig {
  const minBuffered = 2 * maxMessageBytes;
  const maxBufferedBytes = integer(env, 'MAX_BUFFERED_BYTES', Math.max(4_194_304, minBuffered), 1, 1_073_741_824);
  if (maxBufferedBytes < minBuffered) {
    // One reply can be as large as the message it answers; a bound below two of them would
    // close fast readers that merely received one large reply.
    throw new ConfigError('MAX_BUFFERED_BYTES', `an integer from 2 × MAX_MESSAGE_BYTES (${minBuffered}) to 1073741824`, String(maxBufferedBytes));
  }
  const maxTotalBufferedBytes = integer(env, 'MAX_TOTAL_BUFFERED_BYTES', Math.max(268_435_456, maxBufferedBytes), 1, 68_719_476_736);
  if (maxTotalBufferedBytes < maxBufferedBytes) {
    // Below one socket's own bound, the process bound would shed a connection the per-socket
    // rule still allows, and the per-socket rule would never act.
    throw new ConfigError('MAX_TOTAL_BUFFERED_BYTES', `an integer from MAX_BUFFERED_BYTES (${maxBufferedBytes}) to 68719476736`, String(maxTotalBufferedBytes));
  }
  const messagesPerSec = integerOrOff(env, 'RATE_LIMIT_MESSAGES_PER_SEC', 100, 1, 1_000_000);
  const burst = integer(env, 'RATE_LIMIT_BURST', 200, 1, 1_000_000);
  const bytesPerSec = integerOrOff(env, 'RATE_LIMIT_BYTES_PER_SEC', 1_048_576, 1, 1_073_741_824);
  const bytesBurst = integer(env, 'RATE_LIMIT_BYTES_BURST', Math.max(2_097_152, maxMessageBytes), 1, 1_073_741_824);
  if (bytesBurst < maxMessageBytes) {
    // A bucket smaller than the largest accepted message would refuse that message forever.
    throw new ConfigError('RATE_LIMIT_BYTES_BURST', `an integer from MAX_MESSAGE_BYTES (${maxMessageBytes}) to 1073741824`, String(bytesBurst));
  }
  const closeAfter = integer(env, 'RATE_LIMIT_CLOSE_AFTER', 100, 1, 1_000_000);
  return {
    maxConnections: integer(env, 'MAX_CONNECTIONS', 10_000, 1, 1_000_000),
    maxBufferedBytes,
    maxTotalBufferedBytes,
    maxJsonDepth: integer(env, 'MAX_JSON_DEPTH', 64, 1, 1000),
    maxJsonEntries: integer(env, 'MAX_JSON_ENTRIES', 4096, 16, 1_000_000),
    rateLimit: messagesPerSec === 0 && bytesPerSec === 0 ? undefined : { messagesPerSec, burst, bytesPerSec, bytesBurst, closeAfter },
    heartbeatIntervalMs: integerOrOff(env, 'HEARTBEAT_INTERVAL_MS', 30_000, 100, 3_600_000),
    maxConnectionsPerClient: integerOrOff(env, 'MAX_CONNECTIONS_PER_CLIENT', 1_000, 1, 1_000_000),
  };
}

function http(env: Env, maxWsConnections: number, port: number, mainHost: string | undefined): HttpConfig {
  const headersTimeoutMs = integer(env, 'HTTP_HEADERS_TIMEOUT_MS', 10_000, 100, 600_000);
  const requestTimeoutMs = integer(env, 'HTTP_REQUEST_TIMEOUT_MS', Math.max(30_000, headersTimeoutMs), 100, 3_600_000);
  if (requestTimeoutMs < headersTimeoutMs) {
    // Node refuses a headers timeout longer than the request timeout.
    throw new ConfigError('HTTP_REQUEST_TIMEOUT_MS', `an integer from HTTP_HEADERS_TIMEOUT_MS (${headersTimeoutMs}) to 3600000`, String(requestTimeoutMs));
  }
  // Past MAX_CONNECTIONS, so a full WebSocket server still answers /healthz and its own 503s.
  const maxConnections = integer(env, 'MAX_HTTP_CONNECTIONS', maxWsConnections + 1_000, maxWsConnections + 1, 2_000_000);
  const metricsPort = raw(env, 'METRICS_PORT') === undefined ? undefined : integer(env, 'METRICS_PORT', 0, 0, 65535);
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === port) {
    throw new ConfigError('METRICS_PORT', `a port from 0 to 65535 other than PORT (${port})`, String(metricsPort));
  }
  if (metricsPort === undefined && raw(env, 'METRICS_HOST') !== undefined) {
    throw new ConfigError('METRICS_HOST', 'unset unless METRICS_PORT is set', raw(env, 'METRICS_HOST') ?? '');
  }
  return {
    headersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs: integer(env, 'HTTP_KEEP_ALIVE_TIMEOUT_MS', 5_000, 0, 600_000),
    maxConnections,
    maxPipelinedRequests: integer(env, 'HTTP_MAX_PIPELINED_REQUESTS', 16, 1, 1_000),
    metricsPort,
    metricsHost: host(env, 'METRICS_HOST') ?? mainHost,
    trustedProxies: trustedProxies(env),
  };
}

function shutdownCloseWindow(env: Env, shutdownTimeoutMs: number): number {
  const max = Math.floor(shutdownTimeoutMs * CLOSE_WINDOW_MAX_SHARE);
  // A tenth by default: a clean shutdown then stays well inside the drain delay plus half the
  // timeout that the shutdown alerts are set around (otel/rules).
  const value = integer(env, 'SHUTDOWN_CLOSE_WINDOW_MS', Math.floor(shutdownTimeoutMs / 10), 0, 600_000);
  if (value > max) {
    throw new ConfigError('SHUTDOWN_CLOSE_WINDOW_MS', `an integer from 0 to ${CLOSE_WINDOW_MAX_SHARE * 100}% of SHUTDOWN_TIMEOUT_MS (${max})`, String(value));
  }
  return value;
}

function signal(env: Env, name: 'TRACES' | 'METRICS' | 'LOGS', sdkDisabled: boolean): OtlpSignalConfig {
  const endpoint = endpointSet(env, `OTEL_EXPORTER_OTLP_${name}_ENDPOINT`) || endpointSet(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  const exporterVar = `OTEL_${name}_EXPORTER`;
  const exporter = oneOf(env, exporterVar, ['otlp', 'none'] as const, 'otlp');
  const protocolVar = raw(env, `OTEL_EXPORTER_OTLP_${name}_PROTOCOL`)
    ? `OTEL_EXPORTER_OTLP_${name}_PROTOCOL`
    : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = oneOf(env, protocolVar, OTLP_PROTOCOLS, 'http/protobuf');
  return { enabled: !sdkDisabled && exporter === 'otlp' && endpoint, protocol };
}

/**
 * A batch processor's queue and batch (OTEL_BSP_* or OTEL_BLRP_*): the batch defaults to 512 or
 * the queue if smaller, and may not exceed the queue (the SDK would lower it with only a diag line).
 */
function queueAndBatch(env: Env, prefix: 'OTEL_BSP' | 'OTEL_BLRP'): { readonly maxQueueSize: number; readonly maxExportBatchSize: number } {
  const maxQueueSize = integer(env, `${prefix}_MAX_QUEUE_SIZE`, 2_048, 1, 1_000_000);
  const maxExportBatchSize = integer(env, `${prefix}_MAX_EXPORT_BATCH_SIZE`, Math.min(512, maxQueueSize), 1, 1_000_000);
  if (maxExportBatchSize > maxQueueSize) {
    throw new ConfigError(`${prefix}_MAX_EXPORT_BATCH_SIZE`, `an integer from 1 to ${prefix}_MAX_QUEUE_SIZE (${maxQueueSize})`, String(maxExportBatchSize));
  }
  return { maxQueueSize, maxExportBatchSize };
}

function spanBatch(env: Env): TelemetryConfig['traces']['batch'] {
  return {
    scheduledDelayMillis: integer(env, 'OTEL_BSP_SCHEDULE_DELAY', 5_000, 1, 600_000),
    exportTimeoutMillis: integer(env, 'OTEL_BSP_EXPORT_TIMEOUT', 30_000, 1, 600_000),
    ...queueAndBatch(env, 'OTEL_BSP'),
  };
}

/**
 * OTEL_TRACES_SAMPLER exactly as the SDK will read it, and OTEL_TRACES_SAMPLER_ARG when a ratio
 * sampler uses it: the SDK replaces a bad or out-of-range ratio by 1 with only a diagnostic line.
 */
function tracesSampler(env: Env): TracesSampler {
  const value = env.OTEL_TRACES_SAMPLER;
  if (value === undefined || value.trim() === '') return 'parentbased_always_on';
  const sampler = TRACES_SAMPLERS.find((s) => s === value);
  if (sampler === undefined) throw new ConfigError('OTEL_TRACES_SAMPLER', `one of ${TRACES_SAMPLERS.join(', ')}`, value);
  if (sampler === 'traceidratio' || sampler === 'parentbased_traceidratio') {
    const arg = raw(env, 'OTEL_TRACES_SAMPLER_ARG');
    const ratio = arg !== undefined && /^(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(arg) ? Number(arg) : Number.NaN;
    if (arg !== undefined && !(ratio >= 0 && ratio <= 1)) {
      throw new ConfigError('OTEL_TRACES_SAMPLER_ARG', `a number from 0 to 1 (the ${sampler} sampler's ratio)`, arg);
    }
  }
  return sampler;
}

function telemetry(env: Env, version: string): TelemetryConfig {
  const sdkDisabled = boolean(env, 'OTEL_SDK_DISABLED');
  return {
    sdkDisabled,
    serviceName: 'ws-service',
    serviceVersion: version,
    serviceInstanceId: randomUUID(),
    attributeValueLengthLimit: integer(env, 'OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT', 4096, 256, 1_048_576),
    traces: { ...signal(env, 'TRACES', sdkDisabled), batch: spanBatch(env) },
    metrics: {
      ...signal(env, 'METRICS', sdkDisabled),
      exportIntervalMs: integer(env, 'OTEL_METRIC_EXPORT_INTERVAL', 60_000, 100, 86_400_000),
      exportTimeoutMs: integer(env, 'OTEL_METRIC_EXPORT_TIMEOUT', 30_000, 100, 86_400_000),
    },
    logs: {
      ...signal(env, 'LOGS', sdkDisabled),
      exportTimeoutMs: integer(
        env,
        raw(env, 'OTEL_EXPORTER_OTLP_LOGS_TIMEOUT') ? 'OTEL_EXPORTER_OTLP_LOGS_TIMEOUT' : 'OTEL_EXPORTER_OTLP_TIMEOUT',
        10_000,
        1,
        600_000,
      ),
      batch: { scheduledDelayMillis: integer(env, 'OTEL_BLRP_SCHEDULE_DELAY', 1_000, 1, 600_000), ...queueAndBatch(env, 'OTEL_BLRP') },
    },
    tracesSampler: tracesSampler(env),
  };
}

/** Reads and validates the whole configuration; throws ConfigError on the first bad value. */
export function loadConfig(env: Env, version = '0.0.0'): Config {
  const shutdownTimeoutMs = integer(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 100, 600_000);
  const maxMessageBytes = integer(env, 'MAX_MESSAGE_BYTES', 65_536, 64, 104_857_600);
  const port = integer(env, 'PORT', 8080, 0, 65535);
  const mainHost = host(env);
  const limitsConfig = limits(env, maxMessageBytes);
  const redisConfig = redis(env);
  const config: Config = {
    port,
    host: mainHost,
    wsPath: wsPath(env),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    logBufferBytes: integer(env, 'LOG_BUFFER_BYTES', 1_048_576, 65_536, 1_073_741_824),
    shutdownDrainDelayMs: integer(env, 'SHUTDOWN_DRAIN_DELAY_MS', 5_000, 0, 600_000),
    shutdownTimeoutMs,
    maxMessageBytes,
    shutdownCloseWindowMs: shutdownCloseWindow(env, shutdownTimeoutMs),
    limits: limitsConfig,
    http: http(env, limitsConfig.maxConnections, port, mainHost),
    admission: { allowedOrigins: allowedOrigins(env), authToken: authToken(env) },
    telemetry: telemetry(env, version),
    channels: {
      maxSubscriptionsPerConnection: integer(env, 'MAX_SUBSCRIPTIONS_PER_CONNECTION', 100, 1, 100_000),
      namespaces: channelNamespaces(env),
      maxPublishBytes: integer(env, 'MAX_PUBLISH_BYTES', Math.min(32_768, maxMessageBytes), 1, maxMessageBytes),
      ...(redisConfig === undefined ? {} : { redis: redisConfig }),
      history: {
        size: integer(env, 'CHANNEL_HISTORY_SIZE', 1_000, 0, 100_000),
        ttlMs: integer(env, 'CHANNEL_HISTORY_TTL_MS', 300_000, 0, 86_400_000),
      },
    },
  };
  return deepFreeze(config);
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child !== null && typeof child === 'object') deepFreeze(child);
  }
  return Object.freeze(value);
}
