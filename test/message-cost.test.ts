import assert from 'node:assert/strict';
import { once } from 'node:events';
import { afterEach, test } from 'node:test';
import WebSocket from 'ws';
import { Client, sampleValue, scrape, startHarness, withTimeout, type Harness } from './helpers.js';

// A message's cost is its size and its shape, not one unit per message: an object with tens of
// thousands of keys takes the event loop far longer than a ping, so the rate limit charges
// bytes, the message size is bounded for a JSON protocol, and member count is bounded before
// JSON.parse. Each test here was a reproduction that passed through unrefused before.
let harness: Harness | undefined;
afterEach(() => harness?.stop());

/** An echo whose data is an object of `keys` numeric members: the expensive shape to parse. */
function manyKeys(keys: number): string {
  const members = Array.from({ length: keys }, (_, i) => `"k${i}":${i}`).join(',');
  return `{"type":"echo","id":"keys","data":{${members}}}`;
}

test('defaults: a ~1 MB object of ~70k keys closes 1009; 5000 keys in 60 kB are refused before parsing; a 60 kB string is echoed', async () => {
  harness = await startHarness({ env: { LOG_LEVEL: 'info' } });
  const client = await Client.connect(harness.wsUrl);
  const wide = manyKeys(5000);
  assert.ok(wide.length < 65_536);
  assert.deepEqual(await client.request(wide), {
    type: 'error', id: null, code: 'bad_request', message: 'message holds more than 4096 members and elements',
  });
  const text = { type: 'echo', id: 'text', data: `,:${'x'.repeat(60_000)}` };
  assert.deepEqual(await client.request(text), text, 'separators inside strings are data');
  const array = { type: 'echo', id: 'array', data: Array.from({ length: 4000 }, (_, i) => i) };
  assert.deepEqual(await client.request(array), array, 'under the bound: answered');

  const big = await Client.connect(harness.wsUrl);
  const heavy = manyKeys(70_000);
  assert.ok(heavy.length > 900_000 && heavy.length < 1_048_576, `${heavy.length} bytes: under the old 1 MiB default`);
  const closed = once(big.ws, 'close') as Promise<[number, Buffer]>;
  big.send(heavy);
  const [code] = await withTimeout(closed, 10_000, 'the 1009 close');
  assert.equal(code, 1009);
  assert.deepEqual(big.replies, [], 'never parsed, never answered');
  const samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'connections_closed_by_server_total', { reason: 'message_too_big' }), 1);
  assert.equal(client.ws.readyState, WebSocket.OPEN, 'a refused message does not cost the connection');
  await client.close();
});

test('byte budget: large messages under the message rate are refused rate_limited, counted, and sustained abuse closes 1008', async () => {
  harness = await startHarness({
    // The old 1 MiB message size, so that only the byte budget stands in the way; message rate at its default.
    env: { MAX_MESSAGE_BYTES: '1048576', RATE_LIMIT_CLOSE_AFTER: '5', LOG_LEVEL: 'info' },
  });
  const client = await Client.connect(harness.wsUrl);
  const data = 'x'.repeat(1_000_000);
  const closed = once(client.ws, 'close') as Promise<[number, Buffer]>;
  // 12 messages: far under 100 per second, but 12 MB against 1 MiB/s with a 2 MiB burst.
  for (let i = 0; i < 12; i++) client.send({ type: 'echo', id: i, data });
  const [code] = await withTimeout(closed, 15_000, 'the 1008 close');
  assert.equal(code, 1008);
  const echoes = client.replies.filter((r) => r.type === 'echo').length;
  const limited = client.replies.filter((r) => r.code === 'rate_limited');
  // The 2 MiB burst takes two messages; a slow machine may refill a third or so while they arrive.
  assert.ok(echoes >= 2 && echoes <= 6, `the burst answered, got ${echoes}`);
  assert.equal(limited.length, 5);
  assert.deepEqual(limited[0], { type: 'error', id: null, code: 'rate_limited', message: 'more than 1048576 bytes per second; slow down' });
  const samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'rate_limited_messages_total'), 5);
  assert.equal(sampleValue(samples, 'connections_closed_by_server_total', { reason: 'rate_limited' }), 1);
  const streak = harness.logs.filter((l) => l.message === 'rate limit exceeded: refusing messages');
  assert.equal(streak.length, 1);
  assert.equal(streak[0].limit, 'bytes');
});
