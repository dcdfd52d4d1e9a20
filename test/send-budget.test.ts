import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import WebSocket from 'ws';
import { Client, eventually, sampleValue, scrape, startHarness, type Harness } from './helpers.js';

// Unsent bytes are bounded per socket (MAX_BUFFERED_BYTES) and over the whole process
// (MAX_TOTAL_BUFFERED_BYTES): many slow readers, each under its own bound, must not add up to
// more than the process bound. Past it the largest backlogs are dropped, counted, and the
// running total comes back to 0 on every close path.
let harness: Harness | undefined;
afterEach(() => harness?.stop());

const PER_SOCKET = 3 * 1024 * 1024;
const TOTAL = 4 * 1024 * 1024;
const ENV = {
  MAX_MESSAGE_BYTES: '65536',
  MAX_BUFFERED_BYTES: String(PER_SOCKET),
  MAX_TOTAL_BUFFERED_BYTES: String(TOTAL),
  RATE_LIMIT_MESSAGES_PER_SEC: '0',
  RATE_LIMIT_BYTES_PER_SEC: '0',
  LOG_LEVEL: 'info',
};
const DATA = 'x'.repeat(60_000);

function localPort(client: Client): number {
  return (client.ws as unknown as { _socket: { localPort: number } })._socket.localPort;
}

function sendAwait(ws: WebSocket, payload: string): Promise<void> {
  return new Promise((resolve, reject) => ws.send(payload, (err) => (err ? reject(err) : resolve())));
}

/** The running total the service keeps (not recounted): what a leak on some close path would show in. */
function runningTotal(h: Harness): number {
  return (h.service as unknown as { bufferedBytes: number }).bufferedBytes;
}

/** A client that asks for 60 kB echoes and never reads them, until `stop` says so or `max` are sent. */
async function slowReader(h: Harness, client: Client, max: number, stop: () => boolean): Promise<number> {
  client.ws.pause();
  const port = localPort(client);
  let sent = 0;
  while (sent < max && !stop() && !h.logs.some((l) => l.message === 'WebSocket closed' && l.client_port === port)) {
    try {
      await sendAwait(client.ws, JSON.stringify({ type: 'echo', id: sent, data: DATA }));
    } catch {
      break;
    }
    sent++;
  }
  return sent;
}

test('slow readers each under MAX_BUFFERED_BYTES: the process total stays under MAX_TOTAL_BUFFERED_BYTES, the excess dropped and counted', async () => {
  harness = await startHarness({ env: ENV });
  const h = harness;
  const good = await Client.connect(h.wsUrl);
  const slow = await Promise.all(Array.from({ length: 6 }, () => Client.connect(h.wsUrl)));
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, sampleValue(await scrape(h.baseUrl), 'ws_buffered_bytes'));
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  // Each reader stops once the server has dropped some connection for memory, or after 12 MB.
  const shed = (): boolean => h.logs.some((l) => l.reason === 'memory_pressure');
  const sent = await Promise.all(slow.map((c) => slowReader(h, c, 200, shed)));
  await eventually(() => (shed() ? true : undefined), 10_000, 'a connection dropped for memory pressure');
  for (let i = 0; i < 5; i++) assert.deepEqual(await good.request({ type: 'ping', id: i }), { type: 'pong', id: i }, 'the reader that keeps up is answered');
  sampling = false;
  await sampler;

  const samples = await scrape(h.baseUrl);
  const dropped = sampleValue(samples, 'connections_closed_by_server_total', { reason: 'memory_pressure' });
  assert.ok(dropped >= 1, 'dropped and counted');
  // A send may pass the bound by one reply before the shedding it triggers.
  assert.ok(peak <= TOTAL + 65_536, `peak ${peak} unsent bytes, bound ${TOTAL}`);
  const lines = h.logs.filter((l) => l.message === 'server closing connection' && l.reason === 'memory_pressure');
  assert.equal(lines.length, dropped);
  assert.ok(lines.every((l) => (l.buffered_bytes as number) > 0 && (l.total_buffered_bytes as number) > TOTAL));
  assert.equal(good.ws.readyState, WebSocket.OPEN);

  for (const c of slow) c.ws.terminate();
  await eventually(() => (h.service.connectionCount === 1 ? true : undefined), 10_000, 'only the good client left');
  assert.equal(runningTotal(h), 0, 'no unsent bytes left counted');
  assert.equal(sampleValue(await scrape(h.baseUrl), 'ws_buffered_bytes'), 0);
  console.log(`6 slow readers sent ${sent.join(', ')} × 60 kB echoes; ${dropped} dropped for memory pressure; peak ${peak} unsent bytes (bound ${TOTAL})`);
  await good.close();
});

test('every close path gives back what the connection held: abrupt resets, server closes, clean closes', async () => {
  harness = await startHarness({ env: { ...ENV, MAX_TOTAL_BUFFERED_BYTES: String(64 * 1024 * 1024) } });
  const h = harness;
  const readers = await Promise.all(Array.from({ length: 4 }, () => Client.connect(h.wsUrl)));
  // Enough to leave a backlog past the kernel's buffers, short of the per-socket bound.
  await Promise.all(readers.map((c) => slowReader(h, c, 80, () => false)));
  await eventually(() => (runningTotal(h) > 0 ? true : undefined), 10_000, 'a backlog counted');
  const held = runningTotal(h);
  // Reset (RST) two, hang up one without a close frame, and close one cleanly after reading.
  (readers[0].ws as unknown as { _socket: { resetAndDestroy(): void } })._socket.resetAndDestroy();
  (readers[1].ws as unknown as { _socket: { resetAndDestroy(): void } })._socket.resetAndDestroy();
  readers[2].ws.terminate();
  readers[3].ws.resume();
  await readers[3].close();
  await eventually(() => (h.service.connectionCount === 0 ? true : undefined), 10_000, 'every connection gone');
  assert.equal(runningTotal(h), 0, `all of ${held} unsent bytes given back`);
  assert.equal(sampleValue(await scrape(h.baseUrl), 'ws_buffered_bytes'), 0);
});
