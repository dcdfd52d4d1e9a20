/**
 * Service configuration: every setting comes from one environment variable, is validated once at
 * startup, and is frozen afterwards. A bad value stops startup with one line that names the
 * variable and what it accepts (ConfigError), never a stack trace.
 */
import { randomUUID } from 'node:crypto';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json', 'grpc'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

export interface OtlpSignalConfig {
  /** Whether this signal is exported over OTLP at all (an endpoint is set and the exporter is not `none`). */
  readonly enabled: boolean;
  readonly protocol: OtlpProtocol;
}

export interface TelemetryConfig {
  /** `OTEL_SDK_DISABLED=true`: no SDK, no `/metrics`, ids for logs still generated. */
  readonly sdkDisabled: boolean;
  /** Resolved the way the spec orders it: OTEL_SERVICE_NAME, then OTEL_RESOURCE_ATTRIBUTES, then `ws-service`. */
  readonly serviceName: string;
  readonly serviceVersion: string;
  /** service.instance.id: one per process, so series and logs of successive deploys stay apart. */
  readonly serviceInstanceId: string;
  readonly traces: OtlpSignalConfig;
  readonly metrics: OtlpSignalConfig & {
    /** OTEL_METRIC_EXPORT_INTERVAL, ms between OTLP metric pushes. */
    readonly exportIntervalMs: number;
    /** OTEL_METRIC_EXPORT_TIMEOUT, ms one push may take. */
    readonly exportTimeoutMs: number;
  };
  readonly logs: OtlpSignalConfig;
  /** OTEL_TRACES_SAMPLER as the SDK reads it (the SDK builds the sampler from it). @default 'parentbased_always_on' */
  readonly tracesSampler: string;
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
  /** After SIGTERM, how long /readyz reports 503 before connections are closed. @default 5000 */
  readonly shutdownDrainDelayMs: number;
  /** Budget for everything after the drain delay: closing sockets and flushing telemetry. @default 10000 */
  readonly shutdownTimeoutMs: number;
  /** Largest accepted message; a larger frame closes the connection with 1009. @default 1048576 */
  readonly maxMessageBytes: number;
  readonly telemetry: TelemetryConfig;
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

function url(env: Env, name: string): string | undefined {
  const value = raw(env, name);
  if (value === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, 'an http:// or https:// URL', value);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(name, 'an http:// or https:// URL', value);
  }
  return value;
}

function wsPath(env: Env): string {
  const value = raw(env, 'WS_PATH');
  if (value === undefined) return '/ws';
  if (!/^\/[A-Za-z0-9._~!$&'()*+,;=:@/-]*$/.test(value)) {
    throw new ConfigError('WS_PATH', 'a URL path starting with /', value);
  }
  return value;
}

function host(env: Env): string | undefined {
  const value = raw(env, 'HOST');
  if (value === undefined) return undefined;
  if (!/^[A-Za-z0-9.:-]+$/.test(value)) {
    throw new ConfigError('HOST', 'a host name or an IPv4/IPv6 address', value);
  }
  return value;
}

/** service.name by the spec's precedence; OTEL_RESOURCE_ATTRIBUTES is a comma list of percent-encoded k=v. */
function serviceName(env: Env): string {
  const explicit = raw(env, 'OTEL_SERVICE_NAME');
  if (explicit !== undefined) return explicit;
  for (const pair of (raw(env, 'OTEL_RESOURCE_ATTRIBUTES') ?? '').split(',')) {
    const eq = pair.indexOf('=');
    if (eq > 0 && pair.slice(0, eq).trim() === 'service.name') {
      try {
        return decodeURIComponent(pair.slice(eq + 1).trim());
      } catch {
        return pair.slice(eq + 1).trim();
      }
    }
  }
  return 'ws-service';
}

function signal(env: Env, name: 'TRACES' | 'METRICS' | 'LOGS', sdkDisabled: boolean): OtlpSignalConfig {
  const endpoint =
    url(env, `OTEL_EXPORTER_OTLP_${name}_ENDPOINT`) ?? url(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  const exporterVar = `OTEL_${name}_EXPORTER`;
  const exporter = oneOf(env, exporterVar, ['otlp', 'none'] as const, 'otlp');
  const protocolVar = raw(env, `OTEL_EXPORTER_OTLP_${name}_PROTOCOL`)
    ? `OTEL_EXPORTER_OTLP_${name}_PROTOCOL`
    : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = oneOf(env, protocolVar, OTLP_PROTOCOLS, 'http/protobuf');
  return { enabled: !sdkDisabled && exporter === 'otlp' && endpoint !== undefined, protocol };
}

function telemetry(env: Env, version: string): TelemetryConfig {
  const sdkDisabled = boolean(env, 'OTEL_SDK_DISABLED');
  return {
    sdkDisabled,
    serviceName: serviceName(env),
    serviceVersion: version,
    serviceInstanceId: randomUUID(),
    traces: signal(env, 'TRACES', sdkDisabled),
    metrics: {
      ...signal(env, 'METRICS', sdkDisabled),
      exportIntervalMs: integer(env, 'OTEL_METRIC_EXPORT_INTERVAL', 60_000, 100, 86_400_000),
      exportTimeoutMs: integer(env, 'OTEL_METRIC_EXPORT_TIMEOUT', 30_000, 100, 86_400_000),
    },
    logs: signal(env, 'LOGS', sdkDisabled),
    tracesSampler: raw(env, 'OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on',
  };
}

/** Reads and validates the whole configuration; throws ConfigError on the first bad value. */
export function loadConfig(env: Env, version = '0.0.0'): Config {
  const config: Config = {
    port: integer(env, 'PORT', 8080, 0, 65535),
    host: host(env),
    wsPath: wsPath(env),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    shutdownDrainDelayMs: integer(env, 'SHUTDOWN_DRAIN_DELAY_MS', 5_000, 0, 600_000),
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 100, 600_000),
    maxMessageBytes: integer(env, 'MAX_MESSAGE_BYTES', 1_048_576, 64, 104_857_600),
    telemetry: telemetry(env, version),
  };
  return deepFreeze(config);
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child !== null && typeof child === 'object') deepFreeze(child);
  }
  return Object.freeze(value);
}
