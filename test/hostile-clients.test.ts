import assert from 'node:assert/strict';
import { once } from 'node:events';
import { afterEach, test } from 'node:test';
import WebSocket from 'ws';
import { Client, eventually, sampleValue, scrape, startHarness, withTimeout, type Harness, type LogLine } from './helpers.js';
import { RawPeer } from './raw-ws.js';

// Clients that flood, read too slowly or stop answering pings, beside well-behaved ones: the
// well-behaved keep being answered; the abusers are limited, closed and counted.
let harness: Harness | undefined;
afterEach(() => harness?.stop());

/** The client's own port, which the server logs as client_port; read it while the socket exists. */
function localPort(client: Client): number {
  return (client.ws as unknown as { _socket: { localPort: number } })._socket.localPort;
}

function closedLine(logs: LogLine[], port: number): LogLine | undefined {
  return logs.find((l) => l.message === 'WebSocket closed' && l.client_port === port);
}

/** Request/response in sequence; `count` stays within RATE_LIMIT_BURST so no timing can make it exceed the rate. */
async function behave(client: Client, name: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    assert.deepEqual(await client.request({ type: 'echo', id: `${name}-${i}`, data: i }), { type: 'echo', id: `${name}-${i}`, data: i });
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('a flooding client and a slow reader beside well-behaved ones: limited, closed, counted; the others answered', async () => {
  harness = await startHarness({
    env: {
      // 1/s refill: the burst is what a client may spend, so the counts below do not depend on timing.
      RATE_LIMIT_MESSAGES_PER_SEC: '1',
      RATE_LIMIT_BURST: '100',
      RATE_LIMIT_CLOSE_AFTER: '50',
      MAX_BUFFERED_BYTES: '2097152',
      // The slow reader's 1 MB echoes: bytes are not what this test limits.
      MAX_MESSAGE_BYTES: '1048576',
      RATE_LIMIT_BYTES_PER_SEC: '0',
      LOG_LEVEL: 'info',
    },
  });
  const h = harness;
  const good = await Promise.all([1, 2, 3].map(() => Client.connect(h.wsUrl)));
  const flooder = await Client.connect(h.wsUrl);
  const slow = await Client.connect(h.wsUrl);
  const flooderPort = localPort(flooder);
  const slowPort = localPort(slow);

  // The slow reader asks for large echoes and never reads the replies.
  slow.ws.pause();
  const slowClosed = once(slow.ws, 'close');
  const bigData = 'x'.repeat(1_000_000);
  const slowReader = (async () => {
    let sent = 0;
    while (!h.logs.some((l) => l.reason === 'slow_reader') && sent < 95) {
      await new Promise<void>((resolve, reject) => slow.ws.send(JSON.stringify({ type: 'echo', id: sent, data: bigData }), (err) => (err ? reject(err) : resolve())));
      sent++;
    }
    return sent;
  })();

  const FLOOD = 1000;
  const flooderClosed = once(flooder.ws, 'close') as Promise<[number, Buffer]>;
  for (let i = 0; i < FLOOD; i++) flooder.send({ type: 'ping', id: i });

  await Promise.all(good.map((c, i) => behave(c, `good${i}`, 40)));
  const [floodCode] = await withTimeout(flooderClosed, 10_000, 'the flooder to be closed');
  assert.equal(floodCode, 1008);
  const slowSent = await withTimeout(slowReader, 20_000, 'the slow reader to be closed');
  // Still not reading, so it cannot answer the 1013: the server must drop the socket itself.
  await eventually(() => closedLine(h.logs, slowPort), 10_000, 'the server to drop the slow reader that never reads');
  slow.ws.resume();
  await withTimeout(slowClosed, 10_000, 'the slow reader socket to close');
  await Promise.all(good.map((c, i) => behave(c, `after${i}`, 10)));

  // Flooder: the burst answered, then exactly RATE_LIMIT_CLOSE_AFTER refusals, then 1008; the
  // rest arrived after the close frame and was neither processed nor answered.
  const pongs = flooder.replies.filter((r) => r.type === 'pong').length;
  const limited = flooder.replies.filter((r) => r.code === 'rate_limited');
  assert.ok(pongs >= 100 && pongs < 110, `burst of 100 (+ refill) answered, got ${pongs}`);
  assert.equal(limited.length, 50);
  assert.deepEqual(limited[0], { type: 'error', id: null, code: 'rate_limited', message: 'more than 1 messages per second; slow down' });
  assert.equal(flooder.replies.length, pongs + 50);

  await eventually(() => (h.service.connectionCount === 3 ? true : undefined), 5000, 'only the good clients left');
  const floodLine = await eventually(() => closedLine(h.logs, flooderPort));
  assert.equal(floodLine.close_code, 1008);
  assert.equal(floodLine.initiator, 'server');
  assert.equal(floodLine.messages_received, FLOOD);
  assert.equal(floodLine.messages_answered, pongs + 50);
  assert.equal(floodLine.messages_late, FLOOD - pongs - 50);
  const slowLine = await eventually(() => closedLine(h.logs, slowPort));
  assert.equal(slowLine.close_code, 1013);
  assert.equal(slowLine.initiator, 'server');

  const samples = await scrape(h.baseUrl);
  assert.equal(sampleValue(samples, 'active_connections'), 3);
  assert.equal(sampleValue(samples, 'rate_limited_messages_total'), 50);
  assert.equal(sampleValue(samples, 'connections_closed_by_server_total', { reason: 'rate_limited' }), 1);
  assert.equal(sampleValue(samples, 'connections_closed_by_server_total', { reason: 'slow_reader' }), 1);
  assert.equal(sampleValue(samples, 'late_messages_total'), floodLine.messages_late + (slowLine.messages_late as number));
  assert.equal(sampleValue(samples, 'total_messages_total'), 3 * 50 + FLOOD + slowSent);
  for (const source of ['handler', 'socket', 'server']) {
    assert.equal(sampleValue(samples, 'error_count_total', { error_source: source }), 0, 'limits are handled, not errors');
  }

  // Logged once each, under the abuser's own request_id.
  const flooderId = floodLine.request_id;
  const streaks = h.logs.filter((l) => l.message === 'rate limit exceeded: refusing messages');
  assert.equal(streaks.length, 1);
  assert.equal(streaks[0].request_id, flooderId);
  const closes = h.logs.filter((l) => l.message === 'server closing connection');
  assert.deepEqual(closes.map((l) => l.reason).sort(), ['rate_limited', 'slow_reader']);
  assert.equal(closes.find((l) => l.reason === 'rate_limited')!.request_id, flooderId);
  const slowClose = closes.find((l) => l.reason === 'slow_reader')!;
  assert.equal(slowClose.request_id, slowLine.request_id);
  assert.ok((slowClose.buffered_bytes as number) > 2_097_152);
  console.log(
    `abusers: flooder sent ${FLOOD}, ${pongs} answered, 50 refused (rate_limited), ${FLOOD - pongs - 50} late after its 1008; ` +
      `slow reader sent ${slowSent} × 1 MB echoes before its 1013 at ${slowClose.buffered_bytes as number} unsent bytes`,
  );
  await Promise.all(good.map((c) => c.close()));
});

test('a flooder that backs off until its bucket refills is forgiven, not closed', async () => {
  harness = await startHarness({ env: { RATE_LIMIT_MESSAGES_PER_SEC: '50', RATE_LIMIT_BURST: '5', RATE_LIMIT_CLOSE_AFTER: '8', LOG_LEVEL: 'info' } });
  const client = await Client.connect(harness.wsUrl);
  for (let round = 0; round < 3; round++) {
    const before = client.replies.length;
    for (let i = 0; i < 10; i++) client.send({ type: 'ping', id: i });
    const replies = (await client.waitForReplies(before + 10)).slice(before);
    const refused = replies.filter((r) => r.code === 'rate_limited').length;
    assert.ok(refused >= 1 && refused < 8, `some refused, fewer than the close threshold (${refused})`);
    // 5 tokens at 50/s refill in 100 ms; wait for a full bucket, which ends the streak.
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  assert.equal(client.ws.readyState, WebSocket.OPEN, 'three streaks of refusals, none long enough to close');
  assert.equal(harness.logs.filter((l) => l.message === 'rate limit exceeded: refusing messages').length, 3, 'one line per streak');
  await client.close();
});

test('heartbeat: a peer that never answers pings is terminated and the gauge follows; a live one stays', async () => {
  harness = await startHarness({ env: { HEARTBEAT_INTERVAL_MS: '300', LOG_LEVEL: 'info' } });
  const port = Number(new URL(harness.baseUrl).port);
  const live = await Client.connect(harness.wsUrl);
  const pings = { count: 0 };
  live.ws.on('ping', () => pings.count++);
  const silent = await RawPeer.connect(port); // reads everything, answers nothing
  await eventually(() => (harness!.service.connectionCount === 2 ? true : undefined));
  await withTimeout(silent.closed, 10_000, 'the silent peer to be terminated');
  assert.ok(silent.frames().some((f) => f.opcode === 0x9), 'it was pinged first');
  assert.equal(silent.closeCode(), undefined, 'terminated, no close handshake');
  await eventually(() => (harness!.service.connectionCount === 1 ? true : undefined), 5000, 'gauge back to 1');
  await eventually(() => (pings.count >= 2 ? true : undefined), 5000, 'the live client pinged twice');

  assert.equal(live.ws.readyState, WebSocket.OPEN);
  assert.deepEqual(await live.request({ type: 'ping', id: 'alive' }), { type: 'pong', id: 'alive' });
  const samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'active_connections'), 1);
  assert.equal(sampleValue(samples, 'connections_closed_by_server_total', { reason: 'heartbeat_timeout' }), 1);
  assert.equal(sampleValue(samples, 'error_count_total', { error_source: 'socket' }), 0);
  const line = harness.logs.find((l) => l.message === 'server closing connection' && l.reason === 'heartbeat_timeout')!;
  const closed = harness.logs.filter((l) => l.message === 'WebSocket closed');
  assert.equal(closed.length, 1);
  assert.equal(line.request_id, closed[0].request_id, 'logged under the dead connection\'s request_id');
  assert.equal(closed[0].initiator, 'server');
  await live.close();
});

test('JSON nested thousands deep is refused before parsing: without the bound its echo would overflow the stack', async () => {
  // 1 MiB messages, so the 500 kB of brackets below reaches the depth scan.
  harness = await startHarness({ env: { MAX_MESSAGE_BYTES: '1048576', LOG_LEVEL: 'info' } });
  const client = await Client.connect(harness.wsUrl);
  const depth = 20_000;
  const deep = `{"type":"echo","id":"deep","data":${'['.repeat(depth)}${']'.repeat(depth)}}`;
  assert.throws(() => JSON.stringify(JSON.parse(deep)), RangeError, 'the hazard is real');
  assert.deepEqual(await client.request(deep), { type: 'error', id: null, code: 'bad_request', message: 'message nests deeper than 64 levels' });
  const unbalanced = '['.repeat(500_000);
  assert.deepEqual(await client.request(unbalanced), { type: 'error', id: null, code: 'bad_request', message: 'message nests deeper than 64 levels' });
  assert.deepEqual(await client.request({ type: 'ping', id: 'fine' }), { type: 'pong', id: 'fine' });
  const samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'error_count_total', { error_source: 'uncaught_exception' }), 0);
  await client.close();
});
