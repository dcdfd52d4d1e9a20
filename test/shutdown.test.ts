import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, test } from 'node:test';
import { DataPointType, type HistogramMetricData } from '@opentelemetry/sdk-metrics';
import WebSocket from 'ws';
import { SHUTDOWN_BUCKETS_S } from '../src/telemetry/instruments.js';
import { Client, startChild, startHarness, withTimeout, type Harness } from './helpers.js';

let harness: Harness | undefined;
afterEach(() => harness?.stop());

/** A client that completes the handshake and then never reads again: it cannot answer a close. */
async function unresponsiveClient(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(
    'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  const [head] = (await once(socket, 'data')) as [Buffer];
  assert.match(head.toString(), /^HTTP\/1\.1 101 /);
  socket.pause();
  socket.on('error', () => {});
  return socket;
}

async function upgradeStatus(port: number): Promise<number> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  return new Promise((resolve) => {
    ws.on('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', () => {});
  });
}

test('SIGTERM: /readyz 503 during the drain, clients get 1001, every step logged, exit 0', async () => {
  const svc = await startChild({ SHUTDOWN_DRAIN_DELAY_MS: '800', SHUTDOWN_TIMEOUT_MS: '4000' });
  const clients = await Promise.all([1, 2, 3].map(() => Client.connect(svc.wsUrl)));
  assert.equal((await fetch(`${svc.baseUrl}/readyz`)).status, 200);
  const closes = clients.map((c) => once(c.ws, 'close') as Promise<[number, Buffer]>);

  svc.child.kill('SIGTERM');
  await svc.waitForLog((l) => l.message === 'shutdown: draining, /readyz now reports 503');
  const ready = await fetch(`${svc.baseUrl}/readyz`);
  assert.equal(ready.status, 503);
  const body = (await ready.json()) as { checks: { draining: { status: string } } };
  assert.equal(body.checks.draining.status, 'fail');
  assert.equal((await fetch(`${svc.baseUrl}/healthz`)).status, 200, 'still alive while draining');
  const late = await Client.connect(svc.wsUrl); // the load balancer may still route here during the drain
  assert.deepEqual(await late.request({ type: 'ping', id: 'late' }), { type: 'pong', id: 'late' });
  closes.push(once(late.ws, 'close') as Promise<[number, Buffer]>);

  const codes = await withTimeout(Promise.all(closes), 5000, 'closes');
  assert.deepEqual(codes.map(([code]) => code), [1001, 1001, 1001, 1001]);
  const { code } = await withTimeout(svc.exited, 6000, 'exit');
  assert.equal(code, 0);

  const steps = [
    'signal received: starting graceful shutdown',
    'shutdown: draining, /readyz now reports 503',
    'shutdown: refusing new upgrades',
    'shutdown: closing connections with 1001 Going Away',
    'shutdown: connections closed, shutdown_duration recorded',
    'shutdown: telemetry SDK flushed and stopped',
    'shutdown complete',
  ];
  const logged = svc.lines.map((l) => l.message).filter((m) => steps.includes(m));
  assert.deepEqual(logged, steps);
  const sequence = svc.lines.filter((l) => l.message.startsWith('shutdown:'));
  assert.ok(sequence.every((l) => typeof l.request_id === 'string' && l.request_id === sequence[0].request_id));
  const recorded = svc.lines.find((l) => l.message === 'shutdown: connections closed, shutdown_duration recorded')!;
  assert.ok((recorded.duration_s as number) >= 0.8, 'the drain delay is part of the shutdown');
});

test('a peer that never answers the close is terminated at the deadline; exit 1 (forced)', async () => {
  const svc = await startChild({ SHUTDOWN_DRAIN_DELAY_MS: '0', SHUTDOWN_TIMEOUT_MS: '1500' });
  const stuck = await unresponsiveClient(svc.port);
  svc.child.kill('SIGTERM');
  const { code } = await withTimeout(svc.exited, 5000, 'exit');
  assert.equal(code, 1);
  const terminated = svc.lines.find((l) => l.message === 'shutdown: terminating connections that did not close in time');
  assert.equal(terminated?.connections, 1);
  stuck.destroy();
});

test('a second signal during the drain exits at once, saying so', async () => {
  const svc = await startChild({ SHUTDOWN_DRAIN_DELAY_MS: '30000' });
  svc.child.kill('SIGTERM');
  await svc.waitForLog((l) => l.message === 'shutdown: draining, /readyz now reports 503');
  const started = Date.now();
  svc.child.kill('SIGINT');
  const { code } = await withTimeout(svc.exited, 3000, 'exit');
  assert.equal(code, 130);
  assert.ok(Date.now() - started < 2000);
  const line = svc.lines.find((l) => l.message === 'second signal during shutdown: exiting now');
  assert.equal(line?.level, 'WARN');
  assert.equal(line?.signal, 'SIGINT');
});

test('upgrades are refused with 503 once the drain delay has passed', async () => {
  harness = await startHarness({ env: { SHUTDOWN_DRAIN_DELAY_MS: '0', SHUTDOWN_TIMEOUT_MS: '2000' } });
  const port = Number(new URL(harness.baseUrl).port);
  const stuck = await unresponsiveClient(port); // holds the service in its closing phase
  const stopping = harness.stop();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(harness.service.state, 'closing');
  assert.equal(await upgradeStatus(port), 503);
  stuck.destroy();
  await stopping;
});

test('shutdown_duration is recorded in seconds before the SDK shuts down, and leaves in the final push', async () => {
  harness = await startHarness({ env: { SHUTDOWN_DRAIN_DELAY_MS: '300' } });
  const client = await Client.connect(harness.wsUrl);
  await client.request({ type: 'ping', id: 1 });
  await harness.stop();
  const pushes = harness.pushed.getMetrics();
  const last = pushes.at(-1)!;
  const metrics = last.scopeMetrics.flatMap((s) => s.metrics);
  const histogram = metrics.find((m) => m.descriptor.name === 'shutdown_duration') as HistogramMetricData;
  assert.ok(histogram, 'shutdown_duration is in the final push');
  assert.equal(histogram.dataPointType, DataPointType.HISTOGRAM);
  assert.equal(histogram.descriptor.unit, 's');
  const point = histogram.dataPoints[0];
  assert.deepEqual(point.value.buckets.boundaries, SHUTDOWN_BUCKETS_S);
  assert.equal(point.value.count, 1);
  assert.ok(point.value.sum! >= 0.3 && point.value.sum! < 3, `sum ${point.value.sum} s`);
  const gauge = metrics.find((m) => m.descriptor.name === 'active_connections')!;
  assert.equal(gauge.dataPoints[0].value, 0, 'the final push sees no connections left');
  assert.equal(client.ws.readyState, WebSocket.CLOSED);
});

test('each connection the server closes is counted once, by why it ended: answered drains as shutdown, unanswered as shutdown_timeout', async () => {
  harness = await startHarness({ env: { SHUTDOWN_DRAIN_DELAY_MS: '0', SHUTDOWN_TIMEOUT_MS: '1000' } });
  const polite = await Client.connect(harness.wsUrl);
  const stuck = await unresponsiveClient(Number(new URL(harness.baseUrl).port));
  await harness.stop();
  stuck.destroy();
  const metrics = harness.pushed.getMetrics().at(-1)!.scopeMetrics.flatMap((s) => s.metrics);
  const closed = metrics.find((m) => m.descriptor.name === 'connections_closed_by_server')!;
  const byReason = Object.fromEntries(closed.dataPoints.map((d) => [String(d.attributes.reason), d.value as number]));
  // The stuck peer got the drain's 1001 too, then was terminated: one count, not two.
  assert.equal(byReason.shutdown, 1);
  assert.equal(byReason.shutdown_timeout, 1);
  const total = Object.values(byReason).reduce((a, b) => a + b, 0);
  assert.equal(total, 2, JSON.stringify(byReason));
  assert.equal(polite.ws.readyState, WebSocket.CLOSED);
});
