import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.js';
import { spawnService } from './helpers.js';

test('defaults are the documented ones', () => {
  const config = loadConfig({});
  assert.equal(config.port, 8080);
  assert.equal(config.host, undefined);
  assert.equal(config.wsPath, '/ws');
  assert.equal(config.logLevel, 'info');
  assert.equal(config.shutdownDrainDelayMs, 5000);
  assert.equal(config.shutdownTimeoutMs, 10000);
  assert.equal(config.telemetry.serviceName, 'ws-service');
  assert.equal(config.telemetry.sdkDisabled, false);
  assert.equal(config.telemetry.traces.enabled, false);
  assert.equal(config.telemetry.traces.protocol, 'http/protobuf');
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.telemetry.traces));
});

test('each bad value is refused with the variable and what it accepts', () => {
  const cases: [Record<string, string>, string][] = [
    [{ PORT: 'abc' }, 'invalid configuration: PORT="abc": expected an integer from 0 to 65535'],
    [{ PORT: '70000' }, 'invalid configuration: PORT="70000": expected an integer from 0 to 65535'],
    [{ WS_PATH: 'ws' }, 'invalid configuration: WS_PATH="ws": expected a URL path starting with /'],
    [{ LOG_LEVEL: 'loud' }, 'invalid configuration: LOG_LEVEL="loud": expected one of trace, debug, info, warn, error, fatal, silent'],
    [{ SHUTDOWN_TIMEOUT_MS: '-1' }, 'invalid configuration: SHUTDOWN_TIMEOUT_MS="-1": expected an integer from 100 to 600000'],
    [{ OTEL_SDK_DISABLED: 'yes' }, 'invalid configuration: OTEL_SDK_DISABLED="yes": expected true or false'],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'udp' }, 'invalid configuration: OTEL_EXPORTER_OTLP_PROTOCOL="udp": expected one of http/protobuf, http/json, grpc'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'invalid configuration: OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318": expected an http:// or https:// URL'],
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

test('service.name: OTEL_SERVICE_NAME, then OTEL_RESOURCE_ATTRIBUTES, then ws-service', () => {
  assert.equal(loadConfig({ OTEL_RESOURCE_ATTRIBUTES: 'team=obs,service.name=edge%20ws' }).telemetry.serviceName, 'edge ws');
  assert.equal(
    loadConfig({ OTEL_SERVICE_NAME: 'named', OTEL_RESOURCE_ATTRIBUTES: 'service.name=other' }).telemetry.serviceName,
    'named',
  );
});

test('the process refuses to start on invalid configuration: one line on stderr, exit 2', async () => {
  const child = spawnService({ PORT: 'abc' });
  const { code } = await child.exited;
  assert.equal(code, 2);
  assert.equal(child.stderr(), 'ws-service: invalid configuration: PORT="abc": expected an integer from 0 to 65535\n');
  assert.equal(child.lines.length, 0);
});
