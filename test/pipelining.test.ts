import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { eventually, parseExposition, sampleValue, scrape, startHarness, withTimeout } from './helpers.js';

// Unauthenticated /metrics and /readyz: a burst costs one collection, a socket's pipelined
// backlog is bounded, and /metrics can move to its own port.

const SOCKETS = 20;
const PIPELINED = 2_200;
const REQUEST = 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n';

test('pipelined /metrics that the client never reads: each socket is closed at the backlog bound, counted and logged once', async () => {
  const h = await startHarness({ env: { LOG_LEVEL: 'info', HTTP_MAX_PIPELINED_REQUESTS: '16' } });
  const port = Number(new URL(h.baseUrl).port);
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < SOCKETS; i++) {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => {});
      // Never read: the kernel buffers fill and the server's writes back up, as with the abuser.
      socket.pause();
      sockets.push(socket);
      await once(socket, 'connect');
      socket.write(REQUEST.repeat(PIPELINED));
    }
    const refusals = (): number => h.logs.filter((l) => l.message === 'HTTP request refused' && l.reason === 'pipeline_limit').length;
    await eventually(() => (refusals() >= SOCKETS ? true : undefined), 15_000, 'every pipelining socket to be refused');
    // A paused socket notices nothing; reading again shows the server has closed it.
    await withTimeout(
      Promise.all(
        sockets.map((s) => {
          const closed = s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', resolve));
          s.resume();
          return closed;
        }),
      ),
      10_000,
      'every pipelining socket to be closed by the server',
    );

    const res = await fetch(`${h.baseUrl}/healthz`);
    assert.equal(res.status, 200);
    const samples = await scrape(h.baseUrl);
    assert.equal(sampleValue(samples, 'rejected_http_requests_total', { reason: 'pipeline_limit' }), SOCKETS);
    const lines = h.logs.filter((l) => l.message === 'HTTP request refused' && l.reason === 'pipeline_limit');
    assert.equal(lines.length, SOCKETS, 'one line per refused socket, not one per dropped request');
    assert.equal(sampleValue(samples, 'error_count_total', { error_source: 'server' }), 0);
  } finally {
    for (const s of sockets) s.destroy();
    await h.stop();
  }
});

test('a pipelining client that reads its answers within the bound is served in order', async () => {
  const h = await startHarness({ env: { LOG_LEVEL: 'info', HTTP_MAX_PIPELINED_REQUESTS: '16' } });
  const port = Number(new URL(h.baseUrl).port);
  const socket = connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(8));
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    await eventually(() => ((received.match(/HTTP\/1\.1 200 OK/g) ?? []).length === 8 ? true : undefined), 5_000, '8 answers');
    assert.ok(!socket.destroyed);
  } finally {
    socket.destroy();
    await h.stop();
  }
});

test('concurrent /metrics and /readyz share one collection', async () => {
  const h = await startHarness({ env: { LOG_LEVEL: 'info' } });
  try {
    const telemetry = h.telemetry as unknown as { scrape: () => Promise<string> };
    const original = telemetry.scrape.bind(telemetry);
    let collections = 0;
    telemetry.scrape = async () => {
      collections++;
      // A slow collection, so that every request below arrives while one runs.
      await new Promise((resolve) => setTimeout(resolve, 300));
      return original();
    };
    const REQUESTS = 40;
    const answers = await Promise.all(
      Array.from({ length: REQUESTS }, (_, i) => fetch(`${h.baseUrl}${i % 2 === 0 ? '/metrics' : '/readyz'}`).then(async (r) => ({ status: r.status, body: await r.text() }))),
    );
    for (const a of answers) assert.equal(a.status, 200);
    // Each /metrics body is a whole exposition, even when shared.
    for (const a of answers.filter((_, i) => i % 2 === 0)) assert.ok(parseExposition(a.body).length > 0);
    assert.ok(collections <= 3, `${REQUESTS} concurrent requests ran ${collections} collections`);
  } finally {
    await h.stop();
  }
});

test('METRICS_PORT: /metrics only there (404 on the main port), served through the drain, closed with the main server', async () => {
  const h = await startHarness({ env: { LOG_LEVEL: 'info', METRICS_PORT: '0', METRICS_HOST: '127.0.0.1', SHUTDOWN_DRAIN_DELAY_MS: '400' } });
  const metrics = h.service.metricsAddress;
  assert.ok(metrics !== undefined, 'the metrics server listens');
  const metricsUrl = `http://127.0.0.1:${metrics.port}`;
  try {
    assert.equal((await fetch(`${h.baseUrl}/metrics`)).status, 404);
    assert.equal((await fetch(`${h.baseUrl}/healthz`)).status, 200);
    assert.equal((await fetch(`${h.baseUrl}/readyz`)).status, 200);
    assert.equal((await fetch(`${metricsUrl}/healthz`)).status, 404);
    const samples = await scrape(metricsUrl);
    assert.equal(sampleValue(samples, 'active_connections'), 0);
    const listening = h.logs.find((l) => l.message === 'ws-service listening');
    assert.equal(listening?.metrics_port, metrics.port);

    const stopped = h.stop();
    await eventually(async () => ((await fetch(`${h.baseUrl}/readyz`)).status === 503 ? true : undefined), 2_000, 'the drain');
    assert.equal((await fetch(`${metricsUrl}/metrics`)).status, 200, 'scrapable during the drain');
    await stopped;
    await assert.rejects(fetch(`${metricsUrl}/metrics`), 'closed after shutdown');
  } finally {
    await h.stop();
  }
});
