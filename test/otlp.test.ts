import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { SHUTDOWN_BUCKETS_S } from '../src/telemetry/instruments.js';
import { Client, eventually, HEAP_FIXTURE, measureHeap, startChild, withTimeout, type LogLine } from './helpers.js';
import { freePort } from './stack-helpers.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './otlp-receiver.js';

const UPSTREAM_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const UPSTREAM_SPAN = '00f067aa0ba902b7';
const MESSAGE_TRACE = '0af7651916cd43dd8448eb211c80319c';
const MESSAGE_SPAN = 'b7ad6b7169203331';
const SPAN_KIND_SERVER = 2;

let receiver: OtlpReceiver | undefined;
afterEach(() => receiver?.close());

/** Export quickly, so a short test sees batches without waiting for the SDK's defaults. */
const FAST_EXPORT = {
  OTEL_BSP_SCHEDULE_DELAY: '100',
  OTEL_BLRP_SCHEDULE_DELAY: '100',
  OTEL_METRIC_EXPORT_INTERVAL: '60000',
  SHUTDOWN_DRAIN_DELAY_MS: '0',
  SHUTDOWN_TIMEOUT_MS: '5000',
  LOG_LEVEL: 'debug',
};

/** Runs one traced session against a child service exporting to the receiver, then SIGTERMs it. */
async function tracedSession(protocol: 'http/protobuf' | 'http/json', naming: Record<string, string>): Promise<LogLine[]> {
  receiver = await startOtlpReceiver();
  const svc = await startChild({
    ...FAST_EXPORT,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
    ...naming,
  });
  const client = await Client.connect(svc.wsUrl, { headers: { traceparent: `00-${UPSTREAM_TRACE}-${UPSTREAM_SPAN}-01` } });
  assert.deepEqual(await client.request({ type: 'ping', id: 1 }), { type: 'pong', id: 1 });
  await client.request({ type: 'echo', id: 2, data: 'x', traceparent: `00-${MESSAGE_TRACE}-${MESSAGE_SPAN}-01` });
  await client.close(1000);
  await svc.waitForLog((l) => l.message === 'WebSocket closed');
  svc.child.kill('SIGTERM');
  const { code } = await withTimeout(svc.exited, 10_000, 'exit');
  assert.equal(code, 0);
  return svc.lines;
}

function byName(spans: ReceivedSpan[], name: string): ReceivedSpan {
  const found = spans.filter((s) => s.name === name);
  assert.equal(found.length, 1, `one ${name} span`);
  return found[0];
}

test('OTLP/HTTP protobuf: spans, logs and the final metric push, decoded from the wire', async () => {
  const stdout = await tracedSession('http/protobuf', { OTEL_SERVICE_NAME: 'ws-service-otlp-test' });
  const r = receiver!;
  assert.deepEqual([...r.contentTypes.get('/v1/traces')!], ['application/x-protobuf']);
  assert.deepEqual([...r.contentTypes.get('/v1/logs')!], ['application/x-protobuf']);
  assert.deepEqual([...r.contentTypes.get('/v1/metrics')!], ['application/x-protobuf']);

  // Spans: the handshake joins the upgrade's traceparent; messages hang off it or join their own.
  const handshake = byName(r.spans, 'GET /ws');
  assert.equal(handshake.traceId, UPSTREAM_TRACE);
  assert.equal(handshake.parentSpanId, UPSTREAM_SPAN);
  assert.equal(handshake.kind, SPAN_KIND_SERVER);
  assert.equal(handshake.attributes['http.response.status_code'], 101);
  const ping = byName(r.spans, 'ws.message ping');
  assert.equal(ping.traceId, UPSTREAM_TRACE);
  assert.equal(ping.parentSpanId, handshake.spanId);
  assert.equal(ping.attributes['ws.message.type'], 'ping');
  const echo = byName(r.spans, 'ws.message echo');
  assert.equal(echo.traceId, MESSAGE_TRACE);
  assert.equal(echo.parentSpanId, MESSAGE_SPAN);
  assert.deepEqual(echo.links, [{ traceId: UPSTREAM_TRACE, spanId: handshake.spanId }]);
  const close = byName(r.spans, 'ws.close');
  assert.equal(close.parentSpanId, handshake.spanId);
  assert.equal(close.attributes['ws.close.code'], 1000);
  assert.ok(r.spans.some((s) => s.name === 'ws-service shutdown'));
  for (const span of r.spans) {
    assert.equal(span.resource['service.name'], 'ws-service-otlp-test');
    assert.ok(span.endTimeUnixNano >= span.startTimeUnixNano);
  }
  const instance = handshake.resource['service.instance.id'];
  assert.match(String(instance), /^[0-9a-f-]{36}$/);

  // Logs: shipped by pino-opentelemetry-transport, correlated with the spans and stdout.
  const connectedOtlp = r.logs.find((l) => l.body === 'WebSocket connected')!;
  assert.ok(connectedOtlp, 'the connect line reached the receiver');
  assert.equal(connectedOtlp.traceId, UPSTREAM_TRACE);
  assert.equal(connectedOtlp.spanId, handshake.spanId);
  assert.equal(connectedOtlp.flags, 1);
  assert.equal(connectedOtlp.severityNumber, 9);
  assert.equal(connectedOtlp.resource['service.name'], 'ws-service-otlp-test');
  assert.equal(connectedOtlp.resource['service.instance.id'], instance);
  const connectedStdout = stdout.find((l) => l.message === 'WebSocket connected')!;
  assert.equal(connectedStdout.request_id, connectedOtlp.traceId);
  const echoLog = r.logs.find((l) => l.body === 'message processed' && l.traceId === MESSAGE_TRACE)!;
  assert.equal(echoLog.spanId, echo.spanId);
  assert.equal(echoLog.severityNumber, 5);
  const shutdownSteps = r.logs.filter((l) => String(l.body).startsWith('shutdown:'));
  assert.ok(shutdownSteps.length >= 4, 'the shutdown steps leave in the transport\'s last batch');
  for (const line of stdout.filter((l) => typeof l.request_id === 'string' && l.message !== 'shutdown complete')) {
    assert.ok(
      r.logs.some((l) => l.body === line.message && l.traceId === line.request_id),
      `stdout line "${line.message}" reached OTLP with its trace id`,
    );
  }

  // Metrics: the last push, sent during shutdown, carries shutdown_duration and the counts.
  const shutdown = r.metrics.filter((m) => m.name === 'shutdown_duration');
  assert.equal(shutdown.length, 1, 'shutdown_duration leaves exactly once, in the final push');
  assert.equal(shutdown[0].kind, 'histogram');
  assert.equal(shutdown[0].unit, 's');
  assert.equal(shutdown[0].points[0].count, 1);
  assert.deepEqual(shutdown[0].points[0].explicitBounds, SHUTDOWN_BUCKETS_S);
  assert.equal(shutdown[0].resource['service.instance.id'], instance);
  const messages = r.metrics.filter((m) => m.name === 'total_messages').at(-1)!;
  assert.equal(messages.kind, 'sum');
  assert.equal(messages.points[0].value, 2);
  const active = r.metrics.filter((m) => m.name === 'active_connections').at(-1)!;
  assert.equal(active.points[0].value, 0);
});

test('OTLP/HTTP JSON carries the same trace; service.name from OTEL_RESOURCE_ATTRIBUTES on every signal', async () => {
  await tracedSession('http/json', { OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test,service.name=ws-service%20json' });
  const r = receiver!;
  assert.deepEqual([...r.contentTypes.get('/v1/traces')!], ['application/json']);
  const handshake = byName(r.spans, 'GET /ws');
  assert.equal(handshake.traceId, UPSTREAM_TRACE);
  assert.equal(handshake.resource['service.name'], 'ws-service json');
  assert.equal(byName(r.spans, 'ws.message ping').parentSpanId, handshake.spanId);
  const connected = r.logs.find((l) => l.body === 'WebSocket connected')!;
  assert.equal(connected.traceId, UPSTREAM_TRACE);
  assert.equal(connected.resource['service.name'], 'ws-service json', 'the log worker resolves the same name');
  const shutdown = r.metrics.filter((m) => m.name === 'shutdown_duration');
  assert.equal(shutdown.length, 1);
  assert.equal(shutdown[0].resource['service.name'], 'ws-service json');
});

test('a 10% ratio sampler records about a tenth of connections, yet every log line keeps its request_id', async () => {
  receiver = await startOtlpReceiver();
  const svc = await startChild({
    ...FAST_EXPORT,
    LOG_LEVEL: 'info',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.1',
  });
  const CONNECTIONS = 200;
  for (let i = 0; i < CONNECTIONS; i += 20) {
    const batch = await Promise.all(Array.from({ length: 20 }, () => Client.connect(svc.wsUrl)));
    await Promise.all(batch.map((c) => c.close()));
  }
  await svc.waitForLog(() => svc.lines.filter((l) => l.message === 'WebSocket closed').length === CONNECTIONS);
  svc.child.kill('SIGTERM');
  await withTimeout(svc.exited, 10_000, 'exit');
  const handshakes = receiver.spans.filter((s) => s.name === 'GET /ws').length;
  // Binomial(200, 0.1): 20 expected; 3..50 holds with overwhelming probability.
  assert.ok(handshakes >= 3 && handshakes <= 50, `${handshakes} of ${CONNECTIONS} handshakes sampled`);
  const connected = svc.lines.filter((l) => l.message === 'WebSocket connected');
  assert.equal(connected.length, CONNECTIONS);
  assert.ok(connected.every((l) => /^[0-9a-f]{32}$/.test(String(l.request_id))));
  const sampledFlags = connected.filter((l) => l.trace_flags === '01').length;
  assert.equal(sampledFlags, handshakes, 'trace_flags says which connections were recorded');
});

test('collector down: the service keeps serving, memory stays bounded, /readyz 200 but degraded, SIGTERM exits in time', async () => {
  const port = await freePort(); // nothing listens there: the collector is down
  const TIMEOUT_MS = 2000;
  const svc = await startChild({
    ...FAST_EXPORT,
    LOG_LEVEL: 'info',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
    OTEL_METRIC_EXPORT_INTERVAL: '500',
    OTEL_METRIC_EXPORT_TIMEOUT: '400',
    SHUTDOWN_TIMEOUT_MS: String(TIMEOUT_MS),
    // The load here is the point, not abuse: the per-connection rate limit would refuse it.
    RATE_LIMIT_MESSAGES_PER_SEC: '0',
  }, ['--expose-gc', '--import', HEAP_FIXTURE]);
  const readiness = await eventually(async () => {
    const res = await fetch(`${svc.baseUrl}/readyz`);
    const body = (await res.json()) as { checks: { telemetry_export: { status: string; detail?: string } } };
    return body.checks.telemetry_export.status === 'degraded' ? { status: res.status, body } : undefined;
  }, 10_000, 'telemetry_export degraded');
  assert.equal(readiness.status, 200, 'a collector outage does not take the instance out of rotation');
  assert.match(readiness.body.checks.telemetry_export.detail ?? '', /failing since/);

  const heapBefore = await measureHeap(svc);
  const CLIENTS = 20;
  const PER_CLIENT = 3000;
  const clients = await Promise.all(Array.from({ length: CLIENTS }, () => Client.connect(svc.wsUrl)));
  await Promise.all(
    clients.map(async (client) => {
      for (let round = 0; round < PER_CLIENT / 100; round++) {
        for (let i = 0; i < 100; i++) client.send({ type: 'echo', id: i, data: 'payload' });
        await client.waitForReplies((round + 1) * 100, 20_000);
      }
    }),
  );
  await Promise.all(clients.map((c) => c.close()));
  const heapAfter = await measureHeap(svc);
  // 60,000 spans against a batch queue capped at 2048 (about 100 MB if it were not): memory must not follow the traffic.
  const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(2);
  console.log(`collector down: heap after GC ${mb(heapBefore)} MB -> ${mb(heapAfter)} MB after ${CLIENTS * PER_CLIENT} messages`);
  assert.ok(heapAfter - heapBefore < 20 * 1024 * 1024, `heap grew by ${mb(heapAfter - heapBefore)} MB`);

  // The log exporter's timeout is lowered to fit the log flush's share of the shutdown, and says so.
  const lowered = svc.lines.find((l) => l.message === 'OTLP log export timeout lowered to fit the log flush in SHUTDOWN_TIMEOUT_MS');
  assert.deepEqual([lowered?.configured_ms, lowered?.applied_ms], [10_000, (TIMEOUT_MS * 0.2) / 2]);
  const failing = svc.lines.filter((l) => l.message.startsWith('telemetry export failing'));
  assert.ok(failing.length >= 1 && failing.length <= 2, 'each signal reports its outage once, not per batch');

  const started = Date.now();
  svc.child.kill('SIGTERM');
  const { code } = await withTimeout(svc.exited, TIMEOUT_MS + 5000, 'exit');
  const took = Date.now() - started;
  console.log(`collector down: SIGTERM to exit ${took} ms (SHUTDOWN_TIMEOUT_MS=${TIMEOUT_MS})`);
  assert.equal(code, 1, 'telemetry that could not be flushed makes the shutdown forced');
});
