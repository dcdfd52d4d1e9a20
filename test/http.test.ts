import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { parseExposition, sampleValue, startHarness, type Harness } from './helpers.js';
import { requireBinary } from './stack-helpers.js';

const run = promisify(execFile);

let harness: Harness;
test.before(async () => {
  harness = await startHarness();
});
after(() => harness.stop());

test('/healthz answers 200 {"status":"ok"}', async () => {
  const res = await fetch(`${harness.baseUrl}/healthz`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(await res.json(), { status: 'ok' });
});

test('/readyz answers 200 naming each check, the SDK first', async () => {
  const res = await fetch(`${harness.baseUrl}/readyz`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { status: string; checks: Record<string, { status: string }> };
  assert.equal(body.status, 'ready');
  assert.deepEqual(Object.keys(body.checks), ['telemetry_sdk', 'server', 'draining', 'telemetry_export', 'channel_broker']);
  assert.deepEqual(Object.values(body.checks).map((c) => c.status), ['ok', 'ok', 'ok', 'ok', 'ok']);
});

test('/metrics: Prometheus 0.0.4 content type, the original four series at 0 from the first scrape', async () => {
  const res = await fetch(`${harness.baseUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const text = await res.text();
  assert.match(text, /^# TYPE active_connections gauge$/m);
  assert.match(text, /^# TYPE total_messages_total counter$/m);
  assert.match(text, /^# TYPE error_count_total counter$/m);
  const samples = parseExposition(text);
  assert.equal(sampleValue(samples, 'active_connections'), 0);
  assert.equal(sampleValue(samples, 'total_messages_total'), 0);
  for (const source of ['handler', 'socket', 'server', 'uncaught_exception', 'unhandled_rejection']) {
    assert.equal(sampleValue(samples, 'error_count_total', { error_source: source }), 0);
  }
  assert.ok(!text.includes('otel_scope_name'), 'no scope labels: series identity must not change with the package version');
});

test('promtool check metrics accepts the exposition', async () => {
  requireBinary('promtool'); // a missing binary fails here with what to install, not `spawn promtool ENOENT`
  const text = await (await fetch(`${harness.baseUrl}/metrics`)).text();
  const child = run('promtool', ['check', 'metrics']);
  child.child.stdin!.end(text);
  const { stdout, stderr } = await child;
  assert.equal(`${stdout}${stderr}`.trim(), '');
});

test('unknown routes get JSON 404; wrong methods JSON 405 with Allow', async () => {
  const missing = await fetch(`${harness.baseUrl}/nope`);
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), { error: 'not_found', message: 'no route for /nope' });
  const post = await fetch(`${harness.baseUrl}/metrics`, { method: 'POST' }); // with a body it would be 413 (limits.test)
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  assert.deepEqual(await post.json(), { error: 'method_not_allowed', message: '/metrics accepts GET and HEAD' });
  const plain = await fetch(`${harness.baseUrl}/ws`);
  assert.equal(plain.status, 426);
});

test('an upgrade on another path is refused with a JSON 404 before any handshake', async () => {
  const { port } = new URL(harness.baseUrl);
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: '/elsewhere',
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
    });
    req.on('response', (res) => resolve(res.statusCode ?? 0));
    req.on('upgrade', () => reject(new Error('upgraded')));
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 404);
});

test('a malformed handshake gets a JSON 400 and its span records the status', async () => {
  const { port } = new URL(harness.baseUrl);
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: '/ws',
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13' },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 400);
  assert.deepEqual(JSON.parse(body), { error: 'bad_handshake', message: 'Missing or invalid Sec-WebSocket-Key header' });
  const span = harness.spans.getFinishedSpans().find((s) => s.name === 'GET /ws')!;
  assert.equal(span.attributes['http.response.status_code'], 400);
  assert.equal(span.attributes['error.type'], 'bad_handshake');
});

test('/metrics answers 503 (not 200 with an error text) once the SDK cannot collect', async () => {
  await harness.telemetry.shutdown(2000);
  const res = await fetch(`${harness.baseUrl}/metrics`);
  assert.equal(res.status, 503);
  assert.equal(((await res.json()) as { error: string }).error, 'metrics_unavailable');
  const ready = await fetch(`${harness.baseUrl}/readyz`);
  assert.equal(ready.status, 503);
  const body = (await ready.json()) as { checks: { telemetry_sdk: { status: string } } };
  assert.equal(body.checks.telemetry_sdk.status, 'fail');
});
