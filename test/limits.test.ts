import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { Client, eventually, sampleValue, scrape, startHarness, withTimeout, type Harness } from './helpers.js';

// Every limit on the way in: connection cap, origin, token, frame size, JSON depth, HTTP
// timeouts and bodies. Each refusal is an HTTP status or close code, counted by reason, logged
// once under a request_id, and never counted in error_count.
const TOKEN = 'test-token-0123456789abcdef';
const ORIGIN = 'https://app.example.com';
const AUTH = { Authorization: `Bearer ${TOKEN}` };

let harness: Harness;
let port: number;
before(async () => {
  harness = await startHarness({
    env: {
      MAX_CONNECTIONS: '3',
      AUTH_TOKEN: TOKEN,
      ALLOWED_ORIGINS: `${ORIGIN}, http://localhost:3000`,
      MAX_MESSAGE_BYTES: '1024',
      HTTP_HEADERS_TIMEOUT_MS: '500',
      // Far above the header timeout, so a 408 in the slow-headers test can only be the header timeout's.
      HTTP_REQUEST_TIMEOUT_MS: '600000',
      LOG_LEVEL: 'info',
    },
  });
  port = Number(new URL(harness.baseUrl).port);
});
after(() => harness.stop());

interface Refusal {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
}

/** Attempts an upgrade; resolves with the refusal, or with 'open' (then closes it). */
async function upgrade(headers: Record<string, string>): Promise<Refusal | 'open'> {
  const ws = new WebSocket(harness.wsUrl, { headers });
  return new Promise((resolve, reject) => {
    ws.on('open', () => {
      ws.close();
      resolve('open');
    });
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) });
      });
    });
    ws.on('error', reject);
  });
}

async function rejected(reason: string): Promise<number> {
  return sampleValue(await scrape(harness.baseUrl), 'rejected_upgrades_total', { reason });
}

async function settleAt(count: number): Promise<void> {
  await eventually(() => (harness.service.connectionCount === count ? true : undefined), 5000, `${count} connections`);
}

test('bearer token: missing or wrong is 401 before the handshake; right is admitted', async () => {
  const missing = await upgrade({});
  assert.notEqual(missing, 'open');
  assert.equal((missing as Refusal).status, 401);
  assert.equal((missing as Refusal).headers['www-authenticate'], 'Bearer realm="ws-service"');
  assert.deepEqual((missing as Refusal).body, { error: 'unauthorized', message: 'missing bearer token' });
  const wrong = (await upgrade({ Authorization: `Bearer ${TOKEN.slice(0, -1)}x` })) as Refusal;
  assert.equal(wrong.status, 401);
  assert.deepEqual(wrong.body, { error: 'unauthorized', message: 'invalid bearer token' });
  const basic = (await upgrade({ Authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` })) as Refusal;
  assert.equal(basic.status, 401);
  assert.equal(await upgrade(AUTH), 'open');
  assert.equal(await rejected('unauthorized'), 3);
  await settleAt(0);
});

test('origin: a listed Origin or none is admitted; any other is 403', async () => {
  const evil = (await upgrade({ ...AUTH, Origin: 'https://evil.example.net' })) as Refusal;
  assert.equal(evil.status, 403);
  assert.deepEqual(evil.body, { error: 'forbidden_origin', message: 'origin not allowed' });
  const lookalike = (await upgrade({ ...AUTH, Origin: 'https://app.example.com.evil.net' })) as Refusal;
  assert.equal(lookalike.status, 403);
  assert.equal(((await upgrade({ ...AUTH, Origin: 'null' })) as Refusal).status, 403);
  assert.equal(await upgrade({ ...AUTH, Origin: ORIGIN }), 'open');
  assert.equal(await upgrade({ ...AUTH, Origin: 'http://localhost:3000' }), 'open');
  assert.equal(await upgrade(AUTH), 'open', 'no Origin: not a browser; the token is what restricts it');
  assert.equal(await rejected('forbidden_origin'), 3);
  await settleAt(0);
});

test('MAX_CONNECTIONS: the next upgrade gets 503 before the handshake; a freed slot admits again', async () => {
  const clients = await Promise.all([1, 2, 3].map(() => Client.connect(harness.wsUrl, { headers: AUTH })));
  const full = (await upgrade(AUTH)) as Refusal;
  assert.equal(full.status, 503);
  assert.equal(full.headers['retry-after'], '1');
  assert.deepEqual(full.body, { error: 'max_connections', message: 'server is at its connection limit; reconnect to another instance' });
  let samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'rejected_upgrades_total', { reason: 'max_connections' }), 1);
  assert.equal(sampleValue(samples, 'active_connections'), 3);
  assert.equal(sampleValue(samples, 'max_connections'), 3, 'the limit is exported for active_connections / max_connections');
  assert.equal(sampleValue(samples, 'error_count_total', { error_source: 'server' }), 0);
  for (const c of clients) assert.deepEqual(await c.request({ type: 'ping', id: 'kept' }), { type: 'pong', id: 'kept' });

  await clients[0].close();
  await settleAt(2);
  const again = await Client.connect(harness.wsUrl, { headers: AUTH });
  samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'rejected_upgrades_total', { reason: 'max_connections' }), 1);
  await Promise.all([again, clients[1], clients[2]].map((c) => c.close()));
  await settleAt(0);
});

test('each refused upgrade is logged once, under the caller\'s trace id when it sent one', async () => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  await upgrade({ traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
  const refused = harness.logs.filter((l) => l.message === 'WebSocket upgrade refused');
  // 3 unauthorized + 3 forbidden_origin + 1 max_connections before this one
  assert.equal(refused.length, 8);
  assert.ok(refused.every((l) => l.level === 'WARN' && /^[0-9a-f]{32}$/.test(String(l.request_id))));
  const last = refused.at(-1)!;
  assert.equal(last.request_id, traceId);
  assert.equal(last.reason, 'unauthorized');
  assert.equal(last.status, 401);
  const span = harness.spans.getFinishedSpans().findLast((s) => s.name === 'GET /ws')!;
  assert.equal(span.attributes['http.response.status_code'], 401);
  assert.equal(span.attributes['error.type'], 'unauthorized');
});

test('a frame over MAX_MESSAGE_BYTES closes with 1009, counted; JSON nested past MAX_JSON_DEPTH gets bad_request', async () => {
  const client = await Client.connect(harness.wsUrl, { headers: AUTH });
  const nest = (depth: number): string => `{"type":"echo","id":"d${depth}","data":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
  assert.deepEqual(await client.request(nest(64)), { type: 'echo', id: 'd64', data: JSON.parse(`${'['.repeat(63)}${']'.repeat(63)}`) as unknown });
  assert.deepEqual(await client.request(nest(65)), {
    type: 'error', id: null, code: 'bad_request', message: 'message nests deeper than 64 levels',
  });
  // Brackets inside strings are data, not nesting.
  const quoted = { type: 'echo', id: 's', data: `"\\${'['.repeat(500)}` };
  assert.deepEqual(await client.request(quoted), quoted);

  const big = await Client.connect(harness.wsUrl, { headers: AUTH });
  const closed = once(big.ws, 'close') as Promise<[number, Buffer]>;
  big.send({ type: 'echo', id: 1, data: 'x'.repeat(2048) });
  const [code] = await withTimeout(closed, 5000, 'the 1009 close');
  assert.equal(code, 1009);
  assert.deepEqual(await client.request({ type: 'ping', id: 'after' }), { type: 'pong', id: 'after' });
  await settleAt(1);
  const samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'connections_closed_by_server_total', { reason: 'message_too_big' }), 1);
  assert.equal(sampleValue(samples, 'error_count_total', { error_source: 'socket' }), 0);
  assert.equal(sampleValue(samples, 'error_count_total', { error_source: 'handler' }), 0);
  await client.close();
  await settleAt(0);
});

/** Opens a TCP connection, writes `chunks` one per `everyMs`, and resolves with what came back once the server closed it. */
async function trickle(chunks: string[], everyMs: number): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.setEncoding('latin1').on('data', (c: string) => (received += c));
  socket.on('error', () => {});
  await once(socket, 'connect');
  let i = 0;
  const timer = setInterval(() => {
    if (i < chunks.length && socket.writable) socket.write(chunks[i++]);
  }, everyMs);
  await withTimeout(once(socket, 'close'), 10_000, 'the server to cut the slow client off');
  clearInterval(timer);
  return received;
}

test('HTTP: headers sent too slowly, or none at all, get 408 at HTTP_HEADERS_TIMEOUT_MS; oversized headers 431', async () => {
  // 200 header lines, one every 50 ms: 10 s if nobody stopped it; the bound is 0.5 s.
  const slow = Array.from({ length: 200 }, (_, i) => (i === 0 ? 'GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n' : `X-Slow-${i}: y\r\n`));
  const slowAnswer = await trickle(slow, 50);
  assert.match(slowAnswer, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  assert.ok(slowAnswer.endsWith('{"error":"request_timeout","message":"request not received in time"}'));
  const silentAnswer = await trickle([], 50);
  assert.match(silentAnswer, /^HTTP\/1\.1 408 /);

  const huge = await trickle([`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`], 1);
  assert.match(huge, /^HTTP\/1\.1 431 /);
  assert.ok(huge.endsWith('{"error":"headers_too_large","message":"request headers too large"}'));

  const samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'rejected_http_requests_total', { reason: 'request_timeout' }), 2);
  assert.equal(sampleValue(samples, 'rejected_http_requests_total', { reason: 'headers_too_large' }), 1);
  assert.equal(sampleValue(samples, 'error_count_total', { error_source: 'server' }), 0);
  assert.equal((await fetch(`${harness.baseUrl}/healthz`)).status, 200, 'the server is fine');
});

async function withBody(method: string, path: string, headers: Record<string, string>, body: string): Promise<{ status: number; connection: string | undefined; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
        resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body: JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('HTTP: no route takes a body; one declared by Content-Length or chunked gets 413 and the connection closes', async () => {
  const cases = [
    await withBody('GET', '/healthz', { 'Content-Length': '5' }, 'hello'),
    await withBody('POST', '/metrics', { 'Content-Length': '5' }, 'hello'),
    await withBody('GET', '/readyz', { 'Transfer-Encoding': 'chunked' }, 'a chunked body'),
    await withBody('PUT', '/nowhere', { 'Content-Length': '5' }, 'hello'),
  ];
  for (const answer of cases) {
    assert.equal(answer.status, 413);
    assert.equal(answer.connection, 'close');
    assert.deepEqual(answer.body, { error: 'payload_too_large', message: 'requests to this service carry no body' });
  }
  const empty = await withBody('GET', '/healthz', { 'Content-Length': '0' }, '');
  assert.equal(empty.status, 200);
  const samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'rejected_http_requests_total', { reason: 'body_not_allowed' }), 4);
  const refused = harness.logs.filter((l) => l.message === 'HTTP request refused' && l.reason === 'body_not_allowed');
  assert.equal(refused.length, 4);
  assert.ok(refused.every((l) => /^[0-9a-f]{32}$/.test(String(l.request_id))));
});

test('HTTP: a kept-alive connection serves its next request, and is closed by the server once idle past HTTP_KEEP_ALIVE_TIMEOUT_MS', async () => {
  // A harness of its own: a short keep-alive would race the fetch client's pooled sockets above.
  const own = await startHarness({ env: { HTTP_KEEP_ALIVE_TIMEOUT_MS: '300', LOG_LEVEL: 'info' } });
  try {
    const socket = connect(Number(new URL(own.baseUrl).port), '127.0.0.1');
    await once(socket, 'connect');
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    const closed = once(socket, 'close');
    const answers = (): number => received.split('HTTP/1.1 200 OK').length - 1;

    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(() => (answers() === 1 ? true : undefined));
    assert.match(received, /\r\nConnection: keep-alive\r\n/i);
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(() => (answers() === 2 ? true : undefined));

    // Nothing more is sent: the server must end the connection by itself. The wait is 10 × the
    // setting, yet below Node's own default (5 s), so an ignored setting fails here.
    await withTimeout(closed, 3000, 'the server to close an idle kept-alive connection (10 × HTTP_KEEP_ALIVE_TIMEOUT_MS)');
    assert.equal(answers(), 2);
    assert.equal((await fetch(`${own.baseUrl}/healthz`)).status, 200, 'the server is fine');
  } finally {
    await own.stop();
  }
});
