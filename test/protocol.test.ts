import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { SpanStatusCode } from '@opentelemetry/api';
import { createRegistry, defaultHandlers } from '../src/protocol/handlers/index.js';
import { ClientError } from '../src/protocol/messages.js';
import { Client, scrape, sampleValue, startHarness, type Harness } from './helpers.js';

let harness: Harness | undefined;
afterEach(() => harness?.stop());

test('ping, echo and every error reply of the protocol; the connection stays open throughout', async () => {
  harness = await startHarness();
  const client = await Client.connect(harness.wsUrl);
  assert.deepEqual(await client.request({ type: 'ping', id: '1' }), { type: 'pong', id: '1' });
  const data = { nested: [1, 'two', { three: null }], unicode: 'żółw 🐢' };
  assert.deepEqual(await client.request({ type: 'echo', id: 2, data }), { type: 'echo', id: 2, data });
  assert.deepEqual(await client.request('{not json'), {
    type: 'error', id: null, code: 'bad_request', message: 'message is not valid JSON',
  });
  assert.deepEqual(await client.request('[1,2]'), {
    type: 'error', id: null, code: 'bad_request', message: 'message must be a JSON object',
  });
  assert.deepEqual(await client.request({ id: 'x' }), {
    type: 'error', id: 'x', code: 'bad_request', message: 'type must be a non-empty string',
  });
  assert.deepEqual(await client.request({ type: 'echo', id: 'e' }), {
    type: 'error', id: 'e', code: 'bad_request', message: 'echo needs a data field',
  });
  assert.deepEqual(await client.request({ type: 'launch', id: 7 }), {
    type: 'error', id: 7, code: 'unknown_type', message: 'unknown message type; known: ping, echo, subscribe, unsubscribe, publish',
  });
  const before = client.replies.length;
  client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  await client.waitForReplies(before + 1);
  assert.deepEqual(client.replies[before], {
    type: 'error', id: null, code: 'unsupported_data', message: 'binary frames are not supported; send JSON text',
  });
  assert.deepEqual(await client.request({ type: 'ping', id: 'still-open' }), { type: 'pong', id: 'still-open' });

  const samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'total_messages_total'), 9);
  for (const source of ['handler', 'socket', 'server']) {
    assert.equal(sampleValue(samples, 'error_count_total', { error_source: source }), 0, 'client mistakes are not error_count');
  }
  assert.equal(sampleValue(samples, 'message_processing_duration_seconds_count', { ws_message_type: 'invalid', ws_outcome: 'client_error' }), 4);
  assert.equal(sampleValue(samples, 'message_processing_duration_seconds_count', { ws_message_type: 'unknown', ws_outcome: 'client_error' }), 1);
  assert.equal(sampleValue(samples, 'message_processing_duration_seconds_count', { ws_message_type: 'ping', ws_outcome: 'ok' }), 2);
  await client.close();
});

test('exact counts after N messages over M connections; durations measured', async () => {
  // Neither a debug level nor the rate limit reads the clock here: only the histogram does.
  harness = await startHarness({ env: { LOG_LEVEL: 'info', RATE_LIMIT_MESSAGES_PER_SEC: '0' } });
  const M = 12;
  const N = 50;
  const clients = await Promise.all(Array.from({ length: M }, () => Client.connect(harness!.wsUrl)));
  assert.equal(sampleValue(await scrape(harness.baseUrl), 'active_connections'), M);
  const sending = performance.now();
  await Promise.all(
    clients.map(async (client, c) => {
      for (let i = 0; i < N; i++) client.send({ type: i % 2 ? 'ping' : 'echo', id: `${c}-${i}`, data: i });
      const replies = await client.waitForReplies(N);
      assert.deepEqual(replies.map((r) => r.id), Array.from({ length: N }, (_, i) => `${c}-${i}`));
    }),
  );
  const answeredWithin = (performance.now() - sending) / 1000;
  const samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'total_messages_total'), M * N);
  for (const type of ['ping', 'echo']) {
    const labels = { ws_message_type: type, ws_outcome: 'ok' };
    assert.equal(sampleValue(samples, 'message_processing_duration_seconds_count', labels), (M * N) / 2);
    // Each message's duration is its own: together more than nothing, and no more than the
    // wall time all of them were answered in (a wrong start time would read as the uptime).
    const sum = sampleValue(samples, 'message_processing_duration_seconds_sum', labels);
    assert.ok(sum > 0 && sum <= answeredWithin, `${type}: sum ${sum} s, all answered within ${answeredWithin} s`);
  }
  await Promise.all(clients.map((c) => c.close()));
  assert.equal(sampleValue(await scrape(harness.baseUrl), 'active_connections'), 0);
});

test('a handler that throws or rejects: internal_error reply, error_count once each, connection kept, stack logged', async () => {
  const handlers = createRegistry([
    ...defaultHandlers.values(),
    { type: 'explode', handle: () => { throw new RangeError('boom sync'); } },
    { type: 'reject', handle: async () => { throw new Error('boom async'); } },
    { type: 'refuse', handle: async () => { throw new ClientError('bad_request', 'refused politely'); } },
    { type: 'slow', handle: async (m) => { await new Promise((r) => setTimeout(r, 20)); return { type: 'slow', id: m.id }; } },
  ]);
  harness = await startHarness({ handlers });
  const client = await Client.connect(harness.wsUrl);
  assert.deepEqual(await client.request({ type: 'explode', id: 1 }), { type: 'error', id: 1, code: 'internal_error', message: 'internal error' });
  assert.deepEqual(await client.request({ type: 'reject', id: 2 }), { type: 'error', id: 2, code: 'internal_error', message: 'internal error' });
  assert.deepEqual(await client.request({ type: 'refuse', id: 3 }), { type: 'error', id: 3, code: 'bad_request', message: 'refused politely' });
  assert.deepEqual(await client.request({ type: 'slow', id: 4 }), { type: 'slow', id: 4 });
  assert.deepEqual(await client.request({ type: 'ping', id: 5 }), { type: 'pong', id: 5 });

  const samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'error_count_total', { error_source: 'handler' }), 2);
  assert.equal(sampleValue(samples, 'message_processing_duration_seconds_count', { ws_message_type: 'explode', ws_outcome: 'internal_error' }), 1);
  const failures = harness.logs.filter((l) => l.message === 'message handler failed');
  assert.equal(failures.length, 2);
  for (const line of failures) {
    assert.equal(line.level, 'ERROR');
    assert.match(String((line.err as { stack: string }).stack), /boom (sync|async)\n\s+at /);
    assert.match(String(line.request_id), /^[0-9a-f]{32}$/);
  }
  const errorSpans = harness.spans.getFinishedSpans().filter((s) => s.status.code === SpanStatusCode.ERROR);
  assert.deepEqual(errorSpans.map((s) => s.name).sort(), ['ws.message explode', 'ws.message reject']);
  assert.ok(errorSpans.every((s) => s.events.some((e) => e.name === 'exception')));
  await client.close();
});
