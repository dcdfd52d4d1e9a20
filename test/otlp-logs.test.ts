import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { Client, spawnService, withTimeout } from './helpers.js';

/** A collector stand-in: keeps the body of every OTLP/HTTP export, answers 200. */
const received: { path: string; body: Buffer }[] = [];
const collector = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    received.push({ path: req.url ?? '', body: Buffer.concat(chunks) });
    res.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end();
  });
});
after(() => collector.close());

test('with an OTLP logs endpoint every line still reaches stdout and also the collector', async () => {
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  const svc = spawnService({ PORT: '0', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, SHUTDOWN_DRAIN_DELAY_MS: '0', SHUTDOWN_TIMEOUT_MS: '5000' });
  after(() => svc.child.kill('SIGKILL'));
  const listening = await svc.waitForLog((l) => l.message === 'ws-service listening', 5000);
  const client = await Client.connect(`ws://127.0.0.1:${listening.port as number}/ws`);
  await client.request({ type: 'ping', id: 1 });
  await client.close();
  const closed = await svc.waitForLog((l) => l.message === 'WebSocket closed');
  assert.equal(closed.level, 'INFO');
  assert.match(String(closed.trace_id), /^[0-9a-f]{32}$/);

  svc.child.kill('SIGTERM');
  const { code } = await withTimeout(svc.exited, 10_000, 'exit');
  assert.equal(code, 0, svc.stderr());
  assert.ok(svc.lines.some((l) => l.message === 'shutdown complete'), 'the last line reaches stdout');
  const logs = Buffer.concat(received.filter((r) => r.path === '/v1/logs').map((r) => r.body));
  // OTLP protobuf carries strings as raw UTF-8: the records' bodies and trace ids are readable in it.
  assert.ok(logs.includes('WebSocket connected'), 'the connect line is exported');
  assert.ok(logs.includes('WebSocket closed'), 'the close line is exported');
  assert.ok(logs.includes(Buffer.from(String(closed.trace_id), 'hex')), 'the record carries the span context');
});
