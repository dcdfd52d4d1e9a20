import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { Client, eventually, scrape, sampleValue, startHarness, type Harness } from './helpers.js';

// active_connections must equal the number of open sockets after every way a socket can end.
let harness: Harness;
before(async () => {
  harness = await startHarness({ env: { MAX_MESSAGE_BYTES: '1024', LOG_LEVEL: 'info' } });
});
after(() => harness.stop());

async function gaugeSettlesAt(expected: number): Promise<void> {
  await eventually(async () => {
    const value = sampleValue(await scrape(harness.baseUrl), 'active_connections');
    return value === expected ? value : undefined;
  }, 5000, `active_connections == ${expected}`);
  assert.equal(harness.service.connectionCount, expected);
}

async function closesWithReason(reason: string): Promise<number> {
  const samples = await scrape(harness.baseUrl);
  const found = samples.find((s) => s.name === 'connection_duration_seconds_count' && s.labels.ws_close_reason === reason);
  return found?.value ?? 0;
}

function rawSocket(client: Client): Socket {
  return (client.ws as unknown as { _socket: Socket })._socket;
}

test('every way a socket ends brings the gauge back to the true count', async () => {
  const keeper = await Client.connect(harness.wsUrl);
  await gaugeSettlesAt(1);

  const polite = await Client.connect(harness.wsUrl);
  await gaugeSettlesAt(2);
  await polite.close(1000);
  await gaugeSettlesAt(1);
  assert.equal(await closesWithReason('normal'), 1);

  const dropped = await Client.connect(harness.wsUrl);
  await gaugeSettlesAt(2);
  dropped.ws.terminate(); // TCP gone, no close frame
  await gaugeSettlesAt(1);
  assert.equal(await closesWithReason('abnormal'), 1);

  const violator = await Client.connect(harness.wsUrl);
  await gaugeSettlesAt(2);
  const violatorClosed = once(violator.ws, 'close');
  rawSocket(violator).write(Buffer.from([0xf1, 0x80, 0, 0, 0, 0])); // RSV bits set: protocol error
  const [violatorCode] = (await violatorClosed) as [number];
  assert.equal(violatorCode, 1002);
  await gaugeSettlesAt(1);
  assert.equal(await closesWithReason('protocol_error'), 1);

  const oversized = await Client.connect(harness.wsUrl);
  await gaugeSettlesAt(2);
  const oversizedClosed = once(oversized.ws, 'close');
  oversized.send({ type: 'echo', id: 1, data: 'x'.repeat(2048) });
  const [oversizedCode] = (await oversizedClosed) as [number];
  assert.equal(oversizedCode, 1009);
  await gaugeSettlesAt(1);

  const burst = await Promise.all(Array.from({ length: 30 }, () => Client.connect(harness.wsUrl)));
  await gaugeSettlesAt(31);
  burst.forEach((c, i) => (i % 2 ? c.ws.terminate() : c.ws.close()));
  await gaugeSettlesAt(1);

  const violations = harness.logs.filter((l) => l.message === 'WebSocket protocol violation; closing connection');
  assert.equal(violations.length, 2);
  const errors = await scrape(harness.baseUrl);
  assert.equal(sampleValue(errors, 'error_count_total', { error_source: 'socket' }), 0, 'protocol violations are handled, not unhandled errors');

  const keeperClosed = once(keeper.ws, 'close');
  const shutdown = harness.stop();
  const [keeperCode] = (await keeperClosed) as [number];
  assert.equal(keeperCode, 1001);
  await shutdown;
  assert.equal(harness.service.connectionCount, 0);
  const closeLogs = harness.logs.filter((l) => l.message === 'WebSocket closed');
  assert.equal(closeLogs.length, 35);
  assert.equal(closeLogs.at(-1)!.initiator, 'server');
  assert.equal(closeLogs.at(-1)!.close_code, 1001);
  assert.equal(keeper.ws.readyState, WebSocket.CLOSED);
});
