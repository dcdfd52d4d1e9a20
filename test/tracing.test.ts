import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import { Client, eventually, startHarness, type Harness } from './helpers.js';

const UPSTREAM_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const UPSTREAM_SPAN = '00f067aa0ba902b7';
const MESSAGE_TRACE = '0af7651916cd43dd8448eb211c80319c';
const MESSAGE_SPAN = 'b7ad6b7169203331';

let harness: Harness | undefined;
afterEach(() => harness?.stop());

test('handshake, message and close spans: parents, links and attributes', async () => {
  harness = await startHarness();
  const client = await Client.connect(harness.wsUrl, {
    headers: { traceparent: `00-${UPSTREAM_TRACE}-${UPSTREAM_SPAN}-01`, 'user-agent': 'trace-test' },
  });
  await client.request({ type: 'ping', id: 'plain' });
  await client.request({ type: 'echo', id: 'joined', data: 1, traceparent: `00-${MESSAGE_TRACE}-${MESSAGE_SPAN}-01` });
  await client.request({ type: 'ping', id: 'bad-parent', traceparent: 'garbage' });
  await client.close(1000);
  const spans = await eventually(() => {
    const finished = harness!.spans.getFinishedSpans();
    return finished.some((s) => s.name === 'ws.close') ? finished : undefined;
  });

  const handshake = spans.find((s) => s.name === 'GET /ws')!;
  assert.equal(handshake.kind, SpanKind.SERVER);
  assert.equal(handshake.spanContext().traceId, UPSTREAM_TRACE);
  assert.equal(handshake.parentSpanContext?.spanId, UPSTREAM_SPAN);
  assert.equal(handshake.attributes['http.response.status_code'], 101);
  assert.equal(handshake.attributes['http.route'], '/ws');
  assert.equal(handshake.attributes['user_agent.original'], 'trace-test');
  assert.ok(handshake.ended);

  const [plain, joined, badParent] = spans.filter((s) => s.name.startsWith('ws.message'));
  assert.equal(plain.name, 'ws.message ping');
  assert.equal(plain.kind, SpanKind.SERVER);
  assert.equal(plain.spanContext().traceId, UPSTREAM_TRACE);
  assert.equal(plain.parentSpanContext?.spanId, handshake.spanContext().spanId);
  assert.equal(plain.attributes['ws.message.type'], 'ping');
  assert.equal(plain.links.length, 0);

  assert.equal(joined.name, 'ws.message echo');
  assert.equal(joined.spanContext().traceId, MESSAGE_TRACE);
  assert.equal(joined.parentSpanContext?.spanId, MESSAGE_SPAN);
  assert.deepEqual(joined.links.map((l) => l.context.spanId), [handshake.spanContext().spanId]);

  assert.equal(badParent.spanContext().traceId, UPSTREAM_TRACE, 'an invalid traceparent falls back to the connection');

  const close = spans.find((s) => s.name === 'ws.close')!;
  assert.equal(close.spanContext().traceId, UPSTREAM_TRACE);
  assert.equal(close.attributes['ws.close.code'], 1000);
  assert.equal(close.attributes['ws.close.reason'], 'normal');
  assert.equal(close.attributes['ws.close.initiator'], 'client');
  assert.equal(typeof close.attributes['ws.connection.duration'], 'number');
});

test('log lines: the original specification shape, request_id = trace id of the work they belong to', async () => {
  harness = await startHarness();
  const client = await Client.connect(harness.wsUrl, { headers: { traceparent: `00-${UPSTREAM_TRACE}-${UPSTREAM_SPAN}-01` } });
  await client.request({ type: 'ping', id: 1 });
  await client.request({ type: 'ping', id: 2, traceparent: `00-${MESSAGE_TRACE}-${MESSAGE_SPAN}-01` });
  await client.close();
  const closed = await eventually(() => harness!.logs.find((l) => l.message === 'WebSocket closed'));

  const connected = harness.logs.find((l) => l.message === 'WebSocket connected')!;
  assert.equal(connected.level, 'INFO');
  assert.match(connected.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(connected.request_id, UPSTREAM_TRACE);
  assert.equal(connected.trace_id, UPSTREAM_TRACE);
  assert.match(String(connected.span_id), /^[0-9a-f]{16}$/);
  assert.equal(connected.trace_flags, '01');

  const processed = harness.logs.filter((l) => l.message === 'message processed');
  assert.deepEqual(processed.map((l) => [l.level, l.request_id]), [['DEBUG', UPSTREAM_TRACE], ['DEBUG', MESSAGE_TRACE]]);
  assert.equal(closed.request_id, UPSTREAM_TRACE);
  assert.equal(closed.close_code, 1000);
  assert.equal(typeof closed.duration_ms, 'number');

  // The span processor may export a beat after the log line (resource attributes settle async).
  const messageSpan = await eventually(() => harness!.spans.getFinishedSpans().find((s) => s.spanContext().traceId === MESSAGE_TRACE));
  assert.equal(processed[1].span_id, messageSpan.spanContext().spanId);
});

test('without a traceparent each connection gets its own trace id as request_id', async () => {
  harness = await startHarness();
  const a = await Client.connect(harness.wsUrl);
  const b = await Client.connect(harness.wsUrl);
  await a.close();
  await b.close();
  await eventually(() => (harness!.logs.filter((l) => l.message === 'WebSocket closed').length === 2 ? true : undefined));
  const ids = harness.logs.filter((l) => l.message.startsWith('WebSocket')).map((l) => l.request_id as string);
  assert.equal(ids.length, 4);
  assert.equal(new Set(ids).size, 2);
  for (const id of ids) assert.match(id, /^(?!0{32})[0-9a-f]{32}$/);
});

test('with OTEL_SDK_DISABLED=true logs still carry a request_id, the caller\'s when it sent one', async () => {
  harness = await startHarness({ env: { OTEL_SDK_DISABLED: 'true' } });
  assert.equal((await fetch(`${harness.baseUrl}/metrics`)).status, 503);
  const ready = (await (await fetch(`${harness.baseUrl}/readyz`)).json()) as { status: string; checks: { telemetry_sdk: { status: string } } };
  assert.equal(ready.status, 'ready');
  assert.equal(ready.checks.telemetry_sdk.status, 'disabled');

  const anonymous = await Client.connect(harness.wsUrl);
  await anonymous.request({ type: 'ping', id: 1 });
  await anonymous.close();
  const traced = await Client.connect(harness.wsUrl, { headers: { traceparent: `00-${UPSTREAM_TRACE}-${UPSTREAM_SPAN}-01` } });
  await traced.request({ type: 'ping', id: 2 });
  await traced.close();
  await eventually(() => (harness!.logs.filter((l) => l.message === 'WebSocket closed').length === 2 ? true : undefined));

  const lines = harness.logs.filter((l) => l.message.startsWith('WebSocket') || l.message === 'message processed');
  assert.equal(lines.length, 6);
  const [first, second] = [lines.slice(0, 3), lines.slice(3)];
  const anonymousId = first[0].request_id as string;
  assert.match(anonymousId, /^(?!0{32})[0-9a-f]{32}$/);
  assert.ok(first.every((l) => l.request_id === anonymousId));
  assert.ok(second.every((l) => l.request_id === UPSTREAM_TRACE));
});

test('an unsampled caller: nothing recorded, yet every message line has its own span id under the caller\'s trace', async () => {
  harness = await startHarness();
  const client = await Client.connect(harness.wsUrl, { headers: { traceparent: `00-${UPSTREAM_TRACE}-${UPSTREAM_SPAN}-00` } });
  for (const id of [1, 2, 3]) await client.request({ type: 'ping', id });
  await client.close();
  await eventually(() => harness!.logs.find((l) => l.message === 'WebSocket closed'));

  const connected = harness.logs.find((l) => l.message === 'WebSocket connected')!;
  const processed = harness.logs.filter((l) => l.message === 'message processed');
  assert.equal(processed.length, 3);
  for (const line of [connected, ...processed]) {
    assert.equal(line.request_id, UPSTREAM_TRACE);
    assert.equal(line.trace_flags, '00');
    assert.match(String(line.span_id), /^(?!0{16})[0-9a-f]{16}$/);
  }
  const spanIds = new Set([connected, ...processed].map((l) => l.span_id));
  assert.equal(spanIds.size, 4, 'each message span has an id of its own, not the connection\'s');
  assert.equal(harness.spans.getFinishedSpans().filter((s) => s.spanContext().traceId === UPSTREAM_TRACE).length, 0);
});
