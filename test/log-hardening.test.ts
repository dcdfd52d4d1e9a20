/**
 * Hardening II, items 4, 6 and 7: a stdout nobody drains must not stall the process, a
 * background line must not carry a client's request id, and client strings are bounded in logs
 * and span attributes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { trace } from '@opentelemetry/api';
import { Client, eventually, killChildren, MAIN, sampleValue, scrape, startChild, startHarness, withTimeout } from './helpers.js';
import { rawExchange } from './raw-ws.js';
import { BoundedStdout } from '../src/telemetry/logger.js';
import { CLIENT_STRING_MAX_CHARS } from '../src/telemetry/bounded.js';

after(killChildren);

const FAULTS = fileURLToPath(new URL('./fixtures/faults.js', import.meta.url));

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

test('a stdout nobody reads does not stall /healthz nor WebSocket replies; the lines past LOG_BUFFER_BYTES are dropped and counted', async () => {
  const port = await freePort();
  // stdout is a pipe this test never reads: once the pipe's buffer is full, every write waits.
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'debug', LOG_BUFFER_BYTES: '65536', SHUTDOWN_DRAIN_DELAY_MS: '0', RATE_LIMIT_MESSAGES_PER_SEC: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pause();
  const exited = once(child, 'exit');
  try {
    const baseUrl = `http://127.0.0.1:${port}`;
    let up = false;
    for (let i = 0; i < 100 && !up; i++) {
      up = await fetch(`${baseUrl}/healthz`).then((r) => r.ok, () => false);
      if (!up) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(up, 'the service started');

    // At debug level every message writes a line: enough of them fill the pipe and the buffer.
    const client = await Client.connect(`ws://127.0.0.1:${port}/ws`);
    let dropped = 0;
    for (let round = 1; round <= 30 && dropped === 0; round++) {
      for (let i = 0; i < 500; i++) client.send({ type: 'echo', id: `${round}-${i}`, data: 'x'.repeat(200) });
      await client.waitForReplies(round * 500, 5000);
      const metrics = await withTimeout(scrape(baseUrl), 3000, '/metrics while stdout is stalled');
      dropped = sampleValue(metrics, 'log_lines_dropped_total');
    }
    assert.ok(dropped > 0, 'lines were dropped once the buffer was full');

    const health = await withTimeout(fetch(`${baseUrl}/healthz`), 3000, '/healthz while stdout is stalled');
    assert.equal(health.status, 200);
    const second = await withTimeout(Client.connect(`ws://127.0.0.1:${port}/ws`), 3000, 'a new connection while stdout is stalled');
    assert.deepEqual(await withTimeout(second.request({ type: 'ping', id: 'p' }), 3000, 'a ping reply'), { type: 'pong', id: 'p' });
    await second.close();
    await client.close();

    // Drained again, the process shuts down and exits on its own.
    child.stdout.resume();
    child.kill('SIGTERM');
    const [code] = (await withTimeout(exited, 10_000, 'exit')) as [number | null];
    assert.equal(code, 0);
  } finally {
    child.kill('SIGKILL');
  }
});

test('with stdout drained no line is lost: every connection line, the fatal line and the shutdown lines after an uncaught exception', async () => {
  const svc = await startChild({ SHUTDOWN_DRAIN_DELAY_MS: '0', LOG_BUFFER_BYTES: '65536' }, ['--import', FAULTS]);
  const clients = await Promise.all(Array.from({ length: 20 }, () => Client.connect(svc.wsUrl)));
  await Promise.all(clients.map((c) => c.close()));
  await svc.waitForLog((l) => l.message === 'WebSocket closed' && svc.lines.filter((x) => x.message === 'WebSocket closed').length === 20);
  svc.child.kill('SIGUSR2');
  await svc.waitForLog((l) => l.message === 'unhandled promise rejection');
  svc.child.kill('SIGUSR2');
  const { code } = await withTimeout(svc.exited, 10_000, 'exit');
  assert.equal(code, 1);
  const messages = svc.lines.map((l) => l.message);
  assert.equal(messages.filter((m) => m === 'WebSocket connected').length, 20);
  assert.equal(messages.filter((m) => m === 'WebSocket closed').length, 20);
  assert.ok(messages.includes('uncaught exception; shutting down'));
  assert.equal(messages.at(-1), 'shutdown complete');
  const scraped = svc.stderr();
  assert.equal(scraped, '', 'nothing on stderr');
});

test('BoundedStdout holds at most its budget while the stream does not drain, counts the rest, and drains what it held', async () => {
  let release: (() => void) | undefined;
  const written: string[] = [];
  const out = new Writable({
    decodeStrings: false,
    write(chunk: string, _encoding, done) {
      written.push(chunk);
      release = done;
    },
  });
  const stdout = new BoundedStdout(out as unknown as NodeJS.WriteStream, 100);
  for (let i = 0; i < 10; i++) stdout.write(`${'y'.repeat(29)}\n`);
  // The stream counts a line as held until its write completes: three fit in 100 characters.
  assert.equal(stdout.dropped, 7);
  assert.equal(await stdout.drain(20), 'timeout');
  const drained = stdout.drain(5000);
  for (let i = 0; i < 3; i++) {
    release!();
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.equal(await drained, 'flushed');
  assert.equal(written.length, 3);
});

test('a failing export is reported in the root context, not under the request_id of the connection that ended the span', async () => {
  const deadPort = await freePort();
  const svc = await startChild({
    SHUTDOWN_DRAIN_DELAY_MS: '0',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${deadPort}/v1/traces`,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_TIMEOUT: '1000',
    OTEL_BSP_SCHEDULE_DELAY: '50',
    OTEL_BSP_EXPORT_TIMEOUT: '1000',
  });
  const client = await Client.connect(svc.wsUrl);
  const connected = await svc.waitForLog((l) => l.message === 'WebSocket connected');
  const connection = connected.request_id as string;
  assert.match(connection, /^[0-9a-f]{32}$/);
  for (let i = 0; i < 20 && !svc.lines.some((l) => l.message.startsWith('telemetry export failing')); i++) {
    await client.request({ type: 'ping', id: String(i) });
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const failing = await svc.waitForLog((l) => l.message.startsWith('telemetry export failing'), 10_000);
  assert.notEqual(failing.request_id, connection, 'the export line carries the connection\'s request_id');
  assert.equal(failing.request_id, undefined);
  assert.equal(failing.trace_id, undefined);
  await client.close();
  svc.child.kill('SIGTERM');
  await withTimeout(svc.exited, 15_000, 'exit');
});

test('a 15 KB path and User-Agent give bounded log lines and span attributes; the SDK cuts any attribute at its limit', async () => {
  const harness = await startHarness();
  try {
    const port = Number(new URL(harness.baseUrl).port);
    const longPath = `/${'p'.repeat(15_000)}`;
    const longAgent = `agent/${'u'.repeat(15_000)}`;
    const handshake = (path: string, agent: string) =>
      `GET ${path} HTTP/1.1\r\nHost: x\r\nUser-Agent: ${agent}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
    const refused = await rawExchange(port, handshake(longPath, 'short'));
    assert.match(refused, /^HTTP\/1\.1 404/);

    const client = await Client.connect(harness.wsUrl, { headers: { 'user-agent': longAgent } });
    await client.request({ type: 'ping', id: '1' });
    await client.close();

    const line = harness.logs.find((l) => l.message === 'WebSocket upgrade refused')!;
    const path = line.path as string;
    assert.ok(path.startsWith(longPath.slice(0, CLIENT_STRING_MAX_CHARS)));
    assert.match(path, new RegExp(`…\\[truncated ${longPath.length - CLIENT_STRING_MAX_CHARS} chars\\]$`));
    for (const l of harness.logs) assert.ok(JSON.stringify(l).length < 2048, `a bounded line: ${l.message}`);

    // The SDK holds the first spans until the resource's asynchronous attributes settle.
    const spans = await eventually(() => {
      const finished = harness.spans.getFinishedSpans();
      const statuses = finished.map((s) => s.attributes['http.response.status_code']);
      return statuses.includes(404) && statuses.includes(101) ? finished : undefined;
    }, 5000, 'both handshake spans exported');
    const refusedSpan = spans.find((s) => s.attributes['http.response.status_code'] === 404)!;
    assert.equal(refusedSpan.attributes['url.path'], path);
    const connectedSpan = spans.find((s) => s.attributes['http.response.status_code'] === 101)!;
    const agent = connectedSpan.attributes['user_agent.original'] as string;
    assert.ok(agent.startsWith(longAgent.slice(0, CLIENT_STRING_MAX_CHARS)));
    assert.ok(agent.length < CLIENT_STRING_MAX_CHARS + 40);

    // Whatever sets an attribute, the SDK keeps at most OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT of it.
    const span = trace.getTracer('test').startSpan('long');
    span.setAttribute('long', 'z'.repeat(10_000));
    span.end();
    const long = harness.spans.getFinishedSpans().find((s) => s.name === 'long')!;
    assert.equal((long.attributes.long as string).length, 4096);
  } finally {
    await harness.stop();
  }
});
