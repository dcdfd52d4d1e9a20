import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config/config.js';
import { resolveServiceName } from '../src/telemetry/service-name.js';
import { spawnService } from './helpers.js';

test('defaults are the documented ones', () => {
  const config = loadConfig({});
  assert.equal(config.port, 8080);
  assert.equal(config.host, undefined);
  assert.equal(config.wsPath, '/ws');
  assert.equal(config.logLevel, 'info');
  assert.equal(config.logBufferBytes, 1_048_576);
  assert.equal(config.telemetry.attributeValueLengthLimit, 4096);
  assert.equal(config.shutdownDrainDelayMs, 5000);
  assert.equal(config.shutdownTimeoutMs, 10000);
  assert.equal(config.telemetry.serviceName, 'ws-service');
  assert.equal(config.telemetry.sdkDisabled, false);
  assert.equal(config.telemetry.traces.enabled, false);
  assert.equal(config.telemetry.traces.protocol, 'http/protobuf');
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.telemetry.traces));
  assert.deepEqual(config.telemetry.traces.batch, { scheduledDelayMillis: 5000, exportTimeoutMillis: 30000, maxQueueSize: 2048, maxExportBatchSize: 512 });
  // A queue smaller than the default batch makes the batch default to the queue.
  assert.equal(loadConfig({ OTEL_BSP_MAX_QUEUE_SIZE: '16' }).telemetry.traces.batch.maxExportBatchSize, 16);
  assert.equal(loadConfig({ OTEL_BLRP_MAX_QUEUE_SIZE: '100' }).telemetry.logs.batch.maxExportBatchSize, 100);
});

test('each bad value is refused with the variable and what it accepts', () => {
  const cases: [Record<string, string>, string][] = [
    [{ PORT: 'abc' }, 'invalid configuration: PORT="abc": expected an integer from 0 to 65535'],
    [{ PORT: '70000' }, 'invalid configuration: PORT="70000": expected an integer from 0 to 65535'],
    [{ WS_PATH: 'ws' }, 'invalid configuration: WS_PATH="ws": expected a URL path starting with /'],
    [{ LOG_LEVEL: 'loud' }, 'invalid configuration: LOG_LEVEL="loud": expected one of trace, debug, info, warn, error, fatal, silent'],
    [{ LOG_BUFFER_BYTES: '1000' }, 'invalid configuration: LOG_BUFFER_BYTES="1000": expected an integer from 65536 to 1073741824'],
    [{ OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: '0' }, 'invalid configuration: OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="0": expected an integer from 256 to 1048576'],
    [{ SHUTDOWN_TIMEOUT_MS: '-1' }, 'invalid configuration: SHUTDOWN_TIMEOUT_MS="-1": expected an integer from 100 to 600000'],
    [{ OTEL_SDK_DISABLED: 'yes' }, 'invalid configuration: OTEL_SDK_DISABLED="yes": expected true or false'],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'udp' }, 'invalid configuration: OTEL_EXPORTER_OTLP_PROTOCOL="udp": expected one of http/protobuf, http/json, grpc'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'invalid configuration: OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318": expected an http:// or https:// URL'],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: '-1' }, 'invalid configuration: OTEL_BSP_MAX_QUEUE_SIZE="-1": expected an integer from 1 to 1000000'],
    [{ OTEL_BSP_SCHEDULE_DELAY: '0' }, 'invalid configuration: OTEL_BSP_SCHEDULE_DELAY="0": expected an integer from 1 to 600000'],
    [{ OTEL_BSP_EXPORT_TIMEOUT: '5s' }, 'invalid configuration: OTEL_BSP_EXPORT_TIMEOUT="5s": expected an integer from 1 to 600000'],
    [
      { OTEL_BSP_MAX_QUEUE_SIZE: '100', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '200' },
      'invalid configuration: OTEL_BSP_MAX_EXPORT_BATCH_SIZE="200": expected an integer from 1 to OTEL_BSP_MAX_QUEUE_SIZE (100)',
    ],
    [
      { OTEL_BLRP_MAX_QUEUE_SIZE: '100', OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: '101' },
      'invalid configuration: OTEL_BLRP_MAX_EXPORT_BATCH_SIZE="101": expected an integer from 1 to OTEL_BLRP_MAX_QUEUE_SIZE (100)',
    ],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && err.message === message, JSON.stringify(env));
  }
});

test('OTLP signals follow the standard variables', () => {
  const base = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' };
  const all = loadConfig(base).telemetry;
  assert.deepEqual([all.traces.enabled, all.metrics.enabled, all.logs.enabled], [true, true, true]);
  const tracesOnly = loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }).telemetry;
  assert.deepEqual([tracesOnly.traces.enabled, tracesOnly.metrics.enabled, tracesOnly.logs.enabled], [true, false, false]);
  const json = loadConfig({ ...base, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: 'grpc' }).telemetry;
  assert.equal(json.traces.protocol, 'http/json');
  assert.equal(json.logs.protocol, 'grpc');
  assert.equal(loadConfig({ ...base, OTEL_METRICS_EXPORTER: 'none' }).telemetry.metrics.enabled, false);
  assert.equal(loadConfig({ ...base, OTEL_SDK_DISABLED: 'true' }).telemetry.traces.enabled, false);
});

test('the sampler: every value NodeSDK knows, exactly; a ratio only where a ratio sampler reads it', () => {
  assert.equal(loadConfig({}).telemetry.tracesSampler, 'parentbased_always_on');
  for (const sampler of ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio']) {
    assert.equal(loadConfig({ OTEL_TRACES_SAMPLER: sampler }).telemetry.tracesSampler, sampler);
  }
  for (const ratio of ['0', '1', '0.1', '.25', '1e-3']) {
    assert.equal(loadConfig({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: ratio }).telemetry.tracesSampler, 'traceidratio');
  }
  // The SDK reads no ratio for these samplers, so none is checked.
  assert.equal(loadConfig({ OTEL_TRACES_SAMPLER: 'always_on', OTEL_TRACES_SAMPLER_ARG: 'half' }).telemetry.tracesSampler, 'always_on');
  const accepts = 'one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio';
  const cases: [Record<string, string>, string][] = [
    [{ OTEL_TRACES_SAMPLER: 'sometimes' }, `invalid configuration: OTEL_TRACES_SAMPLER="sometimes": expected ${accepts}`],
    // NodeSDK matches the name exactly: an upper-case one would silently be its default.
    [{ OTEL_TRACES_SAMPLER: 'ALWAYS_ON' }, `invalid configuration: OTEL_TRACES_SAMPLER="ALWAYS_ON": expected ${accepts}`],
    [
      { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' },
      'invalid configuration: OTEL_TRACES_SAMPLER_ARG="1.5": expected a number from 0 to 1 (the traceidratio sampler\'s ratio)',
    ],
    [
      { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: 'half' },
      'invalid configuration: OTEL_TRACES_SAMPLER_ARG="half": expected a number from 0 to 1 (the parentbased_traceidratio sampler\'s ratio)',
    ],
    [
      { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '-0.1' },
      'invalid configuration: OTEL_TRACES_SAMPLER_ARG="-0.1": expected a number from 0 to 1 (the parentbased_traceidratio sampler\'s ratio)',
    ],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && err.message === message, JSON.stringify(env));
  }
});

test('service.name: OTEL_SERVICE_NAME, then OTEL_RESOURCE_ATTRIBUTES, then ws-service, as the SDK\'s env detector reads them', () => {
  const saved = { name: process.env.OTEL_SERVICE_NAME, attributes: process.env.OTEL_RESOURCE_ATTRIBUTES };
  const set = (name: string | undefined, attributes: string | undefined): void => {
    if (name === undefined) delete process.env.OTEL_SERVICE_NAME;
    else process.env.OTEL_SERVICE_NAME = name;
    if (attributes === undefined) delete process.env.OTEL_RESOURCE_ATTRIBUTES;
    else process.env.OTEL_RESOURCE_ATTRIBUTES = attributes;
  };
  try {
    const fallback = loadConfig({}).telemetry.serviceName;
    set(undefined, undefined);
    assert.equal(resolveServiceName(fallback), 'ws-service');
    set(undefined, 'team=obs,service.name=edge%20ws');
    assert.equal(resolveServiceName(fallback), 'edge ws');
    set('named', 'service.name=other');
    assert.equal(resolveServiceName(fallback), 'named');
  } finally {
    set(saved.name, saved.attributes);
  }
});

test('the process refuses to start on invalid configuration: one line on stderr, exit 2', async () => {
  const child = spawnService({ PORT: 'abc' });
  const { code } = await child.exited;
  assert.equal(code, 2);
  assert.equal(child.stderr(), 'ws-service: invalid configuration: PORT="abc": expected an integer from 0 to 65535\n');
  assert.equal(child.lines.length, 0);
});

test('limits: documented defaults; 0 turns the rate limit and the heartbeat off', () => {
  const config = loadConfig({});
  assert.equal(config.maxMessageBytes, 65_536);
  assert.equal(config.shutdownCloseWindowMs, 1000, 'a tenth of SHUTDOWN_TIMEOUT_MS');
  assert.deepEqual(config.limits, {
    maxConnections: 10_000,
    maxBufferedBytes: 4_194_304,
    maxTotalBufferedBytes: 268_435_456,
    maxJsonDepth: 64,
    maxJsonEntries: 4096,
    rateLimit: { messagesPerSec: 100, burst: 200, bytesPerSec: 1_048_576, bytesBurst: 2_097_152, closeAfter: 100 },
    heartbeatIntervalMs: 30_000,
    maxConnectionsPerClient: 1_000,
  });
  assert.deepEqual(config.http, {
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
    keepAliveTimeoutMs: 5_000,
    maxConnections: 11_000,
    maxPipelinedRequests: 16,
    metricsPort: undefined,
    metricsHost: undefined,
    trustedProxies: [],
  });
  assert.deepEqual(config.admission, { allowedOrigins: undefined, authToken: undefined });
  const off = loadConfig({ RATE_LIMIT_MESSAGES_PER_SEC: '0', RATE_LIMIT_BYTES_PER_SEC: '0', HEARTBEAT_INTERVAL_MS: '0' });
  assert.equal(loadConfig({ RATE_LIMIT_MESSAGES_PER_SEC: '0' }).limits.rateLimit?.messagesPerSec, 0, 'bytes alone still limited');
  assert.equal(loadConfig({ MAX_MESSAGE_BYTES: '4194304' }).limits.rateLimit?.bytesBurst, 4_194_304, 'the largest message fits the byte bucket');
  assert.equal(loadConfig({ MAX_BUFFERED_BYTES: '536870912' }).limits.maxTotalBufferedBytes, 536_870_912, 'never below one socket\'s bound');
  assert.equal(off.limits.rateLimit, undefined);
  assert.equal(off.limits.heartbeatIntervalMs, 0);
  assert.equal(loadConfig({ SHUTDOWN_TIMEOUT_MS: '2000' }).shutdownCloseWindowMs, 200);
  assert.equal(loadConfig({ MAX_MESSAGE_BYTES: '4194304' }).limits.maxBufferedBytes, 8_388_608, 'at least two of the largest replies');
  const admission = loadConfig({ ALLOWED_ORIGINS: 'https://App.Example.com, http://localhost:3000/', AUTH_TOKEN: 'abcdefghijklmnop' }).admission;
  assert.deepEqual(admission.allowedOrigins, ['https://app.example.com', 'http://localhost:3000']);
  assert.equal(admission.authToken, 'abcdefghijklmnop');
});

test('limits: each bad value is refused with the variable and what it accepts; a bad token is not echoed', () => {
  const cases: [Record<string, string>, string][] = [
    [{ MAX_CONNECTIONS: '0' }, 'invalid configuration: MAX_CONNECTIONS="0": expected an integer from 1 to 1000000'],
    [{ MAX_MESSAGE_BYTES: '1048576', MAX_BUFFERED_BYTES: '1000000' }, 'invalid configuration: MAX_BUFFERED_BYTES="1000000": expected an integer from 2 × MAX_MESSAGE_BYTES (2097152) to 1073741824'],
    [{ MAX_JSON_DEPTH: '5000' }, 'invalid configuration: MAX_JSON_DEPTH="5000": expected an integer from 1 to 1000'],
    [{ MAX_JSON_ENTRIES: '8' }, 'invalid configuration: MAX_JSON_ENTRIES="8": expected an integer from 16 to 1000000'],
    [{ MAX_TOTAL_BUFFERED_BYTES: '1048576' }, 'invalid configuration: MAX_TOTAL_BUFFERED_BYTES="1048576": expected an integer from MAX_BUFFERED_BYTES (4194304) to 68719476736'],
    [{ RATE_LIMIT_BYTES_PER_SEC: '-1' }, 'invalid configuration: RATE_LIMIT_BYTES_PER_SEC="-1": expected 0 (off) or an integer from 1 to 1073741824'],
    [{ RATE_LIMIT_BYTES_BURST: '1000' }, 'invalid configuration: RATE_LIMIT_BYTES_BURST="1000": expected an integer from MAX_MESSAGE_BYTES (65536) to 1073741824'],
    [{ RATE_LIMIT_MESSAGES_PER_SEC: '-5' }, 'invalid configuration: RATE_LIMIT_MESSAGES_PER_SEC="-5": expected 0 (off) or an integer from 1 to 1000000'],
    [{ RATE_LIMIT_BURST: '0' }, 'invalid configuration: RATE_LIMIT_BURST="0": expected an integer from 1 to 1000000'],
    [{ RATE_LIMIT_CLOSE_AFTER: 'x' }, 'invalid configuration: RATE_LIMIT_CLOSE_AFTER="x": expected an integer from 1 to 1000000'],
    [{ HEARTBEAT_INTERVAL_MS: '50' }, 'invalid configuration: HEARTBEAT_INTERVAL_MS="50": expected 0 (off) or an integer from 100 to 3600000'],
    [{ HTTP_HEADERS_TIMEOUT_MS: '5' }, 'invalid configuration: HTTP_HEADERS_TIMEOUT_MS="5": expected an integer from 100 to 600000'],
    [{ HTTP_HEADERS_TIMEOUT_MS: '20000', HTTP_REQUEST_TIMEOUT_MS: '10000' }, 'invalid configuration: HTTP_REQUEST_TIMEOUT_MS="10000": expected an integer from HTTP_HEADERS_TIMEOUT_MS (20000) to 3600000'],
    [{ HTTP_KEEP_ALIVE_TIMEOUT_MS: 'soon' }, 'invalid configuration: HTTP_KEEP_ALIVE_TIMEOUT_MS="soon": expected an integer from 0 to 600000'],
    [{ SHUTDOWN_CLOSE_WINDOW_MS: '5000' }, 'invalid configuration: SHUTDOWN_CLOSE_WINDOW_MS="5000": expected an integer from 0 to 40% of SHUTDOWN_TIMEOUT_MS (4000)'],
    [{ ALLOWED_ORIGINS: 'https://app.example.com/login' }, 'invalid configuration: ALLOWED_ORIGINS="https://app.example.com/login": expected a comma-separated list of origins such as https://app.example.com'],
    [{ ALLOWED_ORIGINS: 'app.example.com' }, 'invalid configuration: ALLOWED_ORIGINS="app.example.com": expected a comma-separated list of origins such as https://app.example.com'],
    [{ AUTH_TOKEN: 'short secret' }, 'invalid configuration: AUTH_TOKEN="<redacted>": expected a bearer token of 16 or more characters from A-Z a-z 0-9 - . _ ~ + / (then optional =)'],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && err.message === message, JSON.stringify(env));
  }
});

test('connection caps, the metrics port and TRUST_PROXY: defaults follow the documented rules', () => {
  assert.equal(loadConfig({ MAX_CONNECTIONS: '50' }).http.maxConnections, 1_050, 'MAX_CONNECTIONS + 1000');
  assert.equal(loadConfig({ MAX_CONNECTIONS_PER_CLIENT: '0' }).limits.maxConnectionsPerClient, 0);
  const metrics = loadConfig({ HOST: '0.0.0.0', METRICS_PORT: '9464' }).http;
  assert.equal(metrics.metricsPort, 9464);
  assert.equal(metrics.metricsHost, '0.0.0.0', 'METRICS_HOST defaults to HOST');
  assert.equal(loadConfig({ METRICS_PORT: '9464', METRICS_HOST: '127.0.0.1' }).http.metricsHost, '127.0.0.1');
  assert.equal(loadConfig({ PORT: '0', METRICS_PORT: '0' }).http.metricsPort, 0, 'two ephemeral ports do not collide');
  assert.deepEqual(loadConfig({ TRUST_PROXY: '10.0.0.1, ::1' }).http.trustedProxies, ['10.0.0.1', '::1']);
});

test('connection caps, the metrics port and TRUST_PROXY: each bad value is refused with the variable and what it accepts', () => {
  const cases: [Record<string, string>, string][] = [
    [{ MAX_HTTP_CONNECTIONS: '10000' }, 'invalid configuration: MAX_HTTP_CONNECTIONS="10000": expected an integer from 10001 to 2000000'],
    [{ MAX_CONNECTIONS: '10', MAX_HTTP_CONNECTIONS: 'many' }, 'invalid configuration: MAX_HTTP_CONNECTIONS="many": expected an integer from 11 to 2000000'],
    [{ MAX_CONNECTIONS_PER_CLIENT: '-1' }, 'invalid configuration: MAX_CONNECTIONS_PER_CLIENT="-1": expected 0 (off) or an integer from 1 to 1000000'],
    [{ HTTP_MAX_PIPELINED_REQUESTS: '0' }, 'invalid configuration: HTTP_MAX_PIPELINED_REQUESTS="0": expected an integer from 1 to 1000'],
    [{ METRICS_PORT: 'x' }, 'invalid configuration: METRICS_PORT="x": expected an integer from 0 to 65535'],
    [{ METRICS_PORT: '8080' }, 'invalid configuration: METRICS_PORT="8080": expected a port from 0 to 65535 other than PORT (8080)'],
    [{ METRICS_HOST: '127.0.0.1' }, 'invalid configuration: METRICS_HOST="127.0.0.1": expected unset unless METRICS_PORT is set'],
    [{ METRICS_PORT: '9464', METRICS_HOST: 'a b' }, 'invalid configuration: METRICS_HOST="a b": expected a host name or an IPv4/IPv6 address'],
    [{ TRUST_PROXY: '10.0.0.0/8' }, 'invalid configuration: TRUST_PROXY="10.0.0.0/8": expected a comma-separated list of proxy IPv4/IPv6 addresses'],
    [{ TRUST_PROXY: 'true' }, 'invalid configuration: TRUST_PROXY="true": expected a comma-separated list of proxy IPv4/IPv6 addresses'],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && err.message === message, JSON.stringify(env));
  }
});
