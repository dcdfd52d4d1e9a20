import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, test } from 'node:test';
import WebSocket from 'ws';
import { createClientAddress } from '../src/http/client-address.js';
import { connectionCaps, FD_RESERVE, METRICS_PORT_CONNECTIONS } from '../src/http/fd-limit.js';
import { eventually, killChildren, sampleValue, scrape, spawnService, startHarness, withTimeout } from './helpers.js';
import type { IncomingMessage } from 'node:http';

// Connection caps before the upgrade and per client, and descriptor exhaustion made visible.

after(() => killChildren());

/** Resolves with the upgrade's outcome: 'open', or the refusal's HTTP status. */
function attempt(url: string, headers: Record<string, string> = {}): Promise<{ ws?: WebSocket; status?: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode });
      res.resume();
      ws.terminate();
    });
    ws.once('error', () => resolve({ status: -1 }));
  });
}

test('MAX_CONNECTIONS_PER_CLIENT: the next upgrade from that address gets 429; abrupt closes give every slot back', async () => {
  const h = await startHarness({ env: { LOG_LEVEL: 'info', MAX_CONNECTIONS_PER_CLIENT: '3' } });
  const open: WebSocket[] = [];
  try {
    const before = await scrape(h.baseUrl);
    assert.equal(sampleValue(before, 'rejected_upgrades_total', { reason: 'max_connections_per_client' }), 0);
    for (let i = 0; i < 3; i++) open.push((await attempt(h.wsUrl)).ws!);
    assert.equal((await attempt(h.wsUrl)).status, 429);
    const after1 = await scrape(h.baseUrl);
    assert.equal(sampleValue(after1, 'rejected_upgrades_total', { reason: 'max_connections_per_client' }), 1);
    assert.equal(sampleValue(after1, 'error_count_total', { error_source: 'server' }), 0);
    const line = h.logs.find((l) => l.message === 'WebSocket upgrade refused' && l.reason === 'max_connections_per_client');
    assert.equal(line?.status, 429);

    // Every way a connection can end, repeatedly: reset, terminate, clean close, a handshake
    // abandoned mid-way. None may leak a slot.
    for (let round = 0; round < 20; round++) {
      for (const ws of open.splice(0)) {
        if (round % 3 === 0) ws.terminate();
        else if (round % 3 === 1) (ws as unknown as { _socket: Socket })._socket.resetAndDestroy();
        else ws.close();
      }
      const half = connect(Number(new URL(h.baseUrl).port), '127.0.0.1');
      half.on('error', () => {});
      half.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n');
      half.destroy();
      await eventually(() => (h.service.connectionCount === 0 ? true : undefined), 5_000, 'all closed');
      for (let i = 0; i < 3; i++) {
        const r = await eventually(async () => {
          const a = await attempt(h.wsUrl);
          return a.ws;
        }, 5_000, `slot ${i} in round ${round}`);
        open.push(r);
      }
    }
    assert.equal((await attempt(h.wsUrl)).status, 429, 'still exactly three slots');
  } finally {
    for (const ws of open) ws.terminate();
    await h.stop();
  }
});

test('TRUST_PROXY: behind a listed proxy the right-most untrusted X-Forwarded-For hop is the client', async () => {
  const h = await startHarness({ env: { LOG_LEVEL: 'info', MAX_CONNECTIONS_PER_CLIENT: '1', TRUST_PROXY: '127.0.0.1' } });
  const open: WebSocket[] = [];
  try {
    const a = await attempt(h.wsUrl, { 'X-Forwarded-For': '203.0.113.5' });
    assert.ok(a.ws);
    open.push(a.ws);
    assert.equal((await attempt(h.wsUrl, { 'X-Forwarded-For': '203.0.113.5' })).status, 429);
    // A forged entry on the left does not make a new client.
    assert.equal((await attempt(h.wsUrl, { 'X-Forwarded-For': '198.51.100.1, 203.0.113.5' })).status, 429);
    // A chain through the trusted proxy itself names the same client.
    assert.equal((await attempt(h.wsUrl, { 'X-Forwarded-For': '203.0.113.5, 127.0.0.1' })).status, 429);
    const b = await attempt(h.wsUrl, { 'X-Forwarded-For': '203.0.113.6' });
    assert.ok(b.ws, 'another client behind the same proxy has its own slots');
    open.push(b.ws);
  } finally {
    for (const ws of open) ws.terminate();
    await h.stop();
  }
});

test('client address: X-Forwarded-For is ignored unless the peer is a listed proxy', () => {
  const req = (peer: string, xff?: string) =>
    ({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;
  const off = createClientAddress([]);
  assert.equal(off(req('::ffff:10.0.0.9', '1.2.3.4')), '10.0.0.9');
  const on = createClientAddress(['10.0.0.1', '10.0.0.2']);
  assert.equal(on(req('10.0.0.9', '1.2.3.4')), '10.0.0.9');
  assert.equal(on(req('::ffff:10.0.0.1', '1.2.3.4, 5.6.7.8, 10.0.0.2')), '5.6.7.8');
  assert.equal(on(req('10.0.0.1', 'garbage, 1.2.3.4')), '1.2.3.4');
  assert.equal(on(req('10.0.0.1', '1.2.3.4, garbage')), '10.0.0.1');
  assert.equal(on(req('10.0.0.1')), '10.0.0.1');
});

async function openIdle(port: number, count: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    sockets.push(s);
    await new Promise<void>((resolve) => {
      s.once('connect', () => resolve());
      s.once('error', () => resolve());
    });
  }
  return sockets;
}

test('MAX_HTTP_CONNECTIONS: sockets past it are closed as accepted, counted, logged once; /healthz answers once they are gone', async () => {
  const h = await startHarness({ env: { LOG_LEVEL: 'info', MAX_CONNECTIONS: '2', MAX_HTTP_CONNECTIONS: '10', METRICS_PORT: '0' } });
  const metricsUrl = `http://127.0.0.1:${h.service.metricsAddress?.port}`;
  const sockets = await openIdle(Number(new URL(h.baseUrl).port), 25);
  try {
    const refused = await eventually(async () => {
      const v = sampleValue(await scrape(metricsUrl), 'rejected_http_requests_total', { reason: 'max_http_connections' });
      return v >= 15 ? v : undefined;
    }, 5_000, '15 refused connections');
    assert.equal(refused, 15);
    const lines = h.logs.filter((l) => l.message === 'TCP connections refused: MAX_HTTP_CONNECTIONS reached');
    assert.equal(lines.length, 1, 'one line for the burst');
    for (const s of sockets) s.destroy();
    const res = await eventually(async () => (await fetch(`${h.baseUrl}/healthz`).catch(() => undefined))?.status === 200 || undefined, 5_000, '/healthz');
    assert.ok(res);
  } finally {
    for (const s of sockets) s.destroy();
    await h.stop();
  }
});

test('open-file limit: the connection bound fits under it, so exhaustion is refused in Node, logged once and counted; /healthz recovers', async () => {
  const FILES = 200;
  // As an operator's `ulimit -n` would: the limit is in place before the process starts.
  const svc = spawnService({ PORT: '0', HTTP_HEADERS_TIMEOUT_MS: '60000', HTTP_REQUEST_TIMEOUT_MS: '60000' }, [], ['prlimit', `--nofile=${FILES}:${FILES}`]);
  const listening = await svc.waitForLog((l) => l.message === 'ws-service listening');
  const port = listening.port as number;
  const sockets = await openIdle(port, FILES + 50);
  try {
    // A client's connect completes in the kernel's accept queue, before the service accepts it:
    // wait until the service has taken the queue and closed every socket past its bound.
    const cap = FILES - FD_RESERVE;
    await eventually(() => (sockets.filter((x) => x.closed).length >= sockets.length - cap ? true : undefined), 10_000, 'the sockets past the bound closed');
    await svc.waitForLog((l) => l.message === 'TCP connections refused: MAX_HTTP_CONNECTIONS reached', 10_000);
    for (const s of sockets) s.destroy();
    const res = await withTimeout(
      eventually(async () => ((await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200 ? true : undefined), 10_000, '/healthz'),
      12_000,
      '/healthz after the sockets closed',
    );
    assert.ok(res);
    const samples = await scrape(`http://127.0.0.1:${port}`);
    const refusedCount = sampleValue(samples, 'rejected_http_requests_total', { reason: 'max_http_connections' });
    // At least every socket past the bound; a /healthz probe that raced the closes may add one.
    assert.ok(refusedCount >= sockets.length - cap, `${refusedCount} refusals counted, ${sockets.length - cap} expected at least`);
    assert.equal(svc.lines.filter((l) => l.message === 'TCP connections refused: MAX_HTTP_CONNECTIONS reached').length, 1);
    const lowered = svc.lines.find((l) => l.message === 'MAX_HTTP_CONNECTIONS lowered to fit the open-file limit (ulimit -n)');
    assert.ok(lowered);
    // WebSockets follow the TCP bound down, so a server full of them still takes a /healthz probe.
    assert.deepEqual([lowered.applied, lowered.max_connections], [FILES - FD_RESERVE, FILES - 2 * FD_RESERVE]);
    assert.equal(sampleValue(samples, 'max_connections', {}), FILES - 2 * FD_RESERVE);
  } finally {
    for (const s of sockets) s.destroy();
    svc.child.kill('SIGKILL');
    await once(svc.child, 'exit').catch(() => {});
  }
});

test('connection caps: one descriptor budget for the main port, the metrics port and the WebSockets under them', () => {
  const configured = { http: 11_000, websockets: 10_000, perClient: 1000, metricsPort: false };
  // A limit that leaves room changes nothing.
  assert.deepEqual(connectionCaps(configured, 1_048_576), { http: 11_000, metrics: 0, websockets: 10_000, perClient: 1000, lowered: false });
  assert.deepEqual(connectionCaps(configured, undefined), { http: 11_000, metrics: 0, websockets: 10_000, perClient: 1000, lowered: false });
  // ulimit -n 1024: the TCP bound fits under it, WebSockets stay FD_RESERVE below that, and one
  // client can no longer hold more than all of them.
  assert.deepEqual(connectionCaps(configured, 1024), { http: 1024 - FD_RESERVE, metrics: 0, websockets: 1024 - 2 * FD_RESERVE, perClient: 1024 - 2 * FD_RESERVE, lowered: true });
  // The metrics port's connections come out of the same budget.
  const withMetrics = connectionCaps({ ...configured, metricsPort: true }, 1024);
  assert.equal(withMetrics.metrics, METRICS_PORT_CONNECTIONS);
  assert.equal(withMetrics.http + withMetrics.metrics, 1024 - FD_RESERVE);
  // Per-client 0 stays off.
  assert.equal(connectionCaps({ ...configured, perClient: 0 }, 1024).perClient, 0);
});
