import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { PROTOCOL } from '../src/ws/subprotocol.js';
import { eventually, killChildren, sampleValue, scrape, startChild } from './helpers.js';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.js';
import { repoPath, requireExecutable, run } from './stack-helpers.js';

// examples/python/client.py, a client in another language on another WebSocket library
// (Debian's python3-websockets), runs the protocol against main.js and checks every answer.

const PYTHON = '/usr/bin/python3';
const CLIENT = repoPath('examples/python/client.py');
const TOKEN = 'python-token/0123456789+abc=';
const SPAN_KIND_CONSUMER = 5;

interface Step {
  readonly step: string;
  readonly ok: boolean;
  readonly [field: string]: unknown;
}

interface Outcome {
  readonly code: number | null;
  readonly steps: Step[];
  readonly stderr: string;
}

/** Debian's interpreter with Debian's websockets, or a failure naming the package. */
async function requirePython(): Promise<void> {
  requireExecutable(PYTHON, 'python3-websockets');
  const probe = await run(PYTHON, ['-c', 'import websockets'], { timeoutMs: 30_000 });
  if (probe.code !== 0) throw new Error(`${PYTHON} cannot import websockets: install Debian's python3-websockets package (.ci/run does)\n${probe.stderr}`);
}

/** Runs the client against these URLs (the first publishes; each gets a subscriber). */
async function runClient(urls: string[], args: string[] = []): Promise<Outcome> {
  await requirePython();
  const { code, stdout, stderr } = await run(PYTHON, [CLIENT, ...args, ...urls], { timeoutMs: 60_000 });
  const steps = stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Step);
  return { code, steps, stderr };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await killChildren();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function receiver(): Promise<OtlpReceiver> {
  const r = await startOtlpReceiver();
  cleanups.push(() => r.close());
  return r;
}

test('the Python client runs ping, echo, errors, subscribe, publish and delivery in the trace it started', async () => {
  const otlp = await receiver();
  const svc = await startChild({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: '100', SHUTDOWN_DRAIN_DELAY_MS: '0' });
  const { code, steps, stderr } = await runClient([svc.wsUrl]);
  assert.equal(code, 0, `${JSON.stringify(steps)}\n${stderr}`);
  assert.deepEqual(
    steps.map((s) => [s.step, s.ok]),
    [
      ['connect', true],
      ['connect', true],
      ['ping', true],
      ['echo', true],
      ['unknown_type', true],
      ['subscribe', true],
      ['publish', true],
      ['deliver', true],
      ['unsubscribe', true],
      ['done', true],
    ],
  );
  assert.ok(steps.filter((s) => s.step === 'connect').every((s) => s.subprotocol === PROTOCOL));
  const published = steps.find((s) => s.step === 'publish')!;
  const delivered = steps.find((s) => s.step === 'deliver')!;

  // The server joined the trace the Python client started, and the delivery's traceparent
  // names the CONSUMER span.
  const spans = await eventually(() => {
    const publish = otlp.spans.find((s) => s.name === 'ws.message publish' && s.traceId === published.trace_id);
    const consumer = otlp.spans.find((s) => s.kind === SPAN_KIND_CONSUMER && s.traceId === published.trace_id);
    return publish && consumer ? { publish, consumer } : undefined;
  }, 15_000, 'the publish and delivery spans');
  assert.equal(spans.publish.parentSpanId, published.span_id);
  assert.equal(spans.consumer.spanId, delivered.span_id);
  const handshake = otlp.spans.find((s) => s.name === 'GET /ws');
  assert.match(String(handshake?.attributes['user_agent.original']), /websockets\//);
});

test('with AUTH_TOKEN: the token as a subprotocol offer or a header is admitted; a wrong one exits 1 on a 401', async () => {
  const svc = await startChild({ AUTH_TOKEN: TOKEN, SHUTDOWN_DRAIN_DELAY_MS: '0' });
  for (const auth of ['subprotocol', 'header']) {
    const { code, steps, stderr } = await runClient([svc.wsUrl], ['--token', TOKEN, '--auth', auth]);
    assert.equal(code, 0, `${auth}: ${JSON.stringify(steps)}\n${stderr}`);
    assert.deepEqual(steps.at(-1), { step: 'done', ok: true });
  }
  const wrong = await runClient([svc.wsUrl], ['--token', `${TOKEN}x`]);
  assert.equal(wrong.code, 1);
  assert.deepEqual(wrong.steps, [{ step: 'connect', ok: false, url: svc.wsUrl, role: 'publisher', status: 401 }]);
  assert.equal(sampleValue(await scrape(svc.baseUrl), 'rejected_upgrades_total', { reason: 'unauthorized' }), 1);
});

/**
 * A server that speaks the protocol except for one fault, so the client's checks are shown to
 * catch it (an in-test stand-in for a broken service; it never replaces the real one above).
 */
async function faultyServer(fault: 'pong_id' | 'foreign_trace'): Promise<string> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => PROTOCOL });
  await once(wss, 'listening');
  const subscribers = new Set<WebSocket>();
  wss.on('connection', (ws) => {
    ws.on('message', (raw) => {
      const m = JSON.parse(String(raw)) as Record<string, unknown>;
      const reply = (frame: Record<string, unknown>): void => ws.send(JSON.stringify(frame));
      if (m.type === 'ping') reply({ type: 'pong', id: fault === 'pong_id' ? 'another' : m.id });
      else if (m.type === 'echo') reply({ type: 'echo', id: m.id, data: m.data });
      else if (m.type === 'subscribe') {
        subscribers.add(ws);
        reply({ type: 'subscribed', id: m.id, channel: m.channel });
      } else if (m.type === 'publish') {
        const traceparent = fault === 'foreign_trace' ? `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01` : m.traceparent;
        for (const s of subscribers) s.send(JSON.stringify({ type: 'message', channel: m.channel, data: m.data, traceparent }));
        reply({ type: 'published', id: m.id, channel: m.channel });
      } else reply({ type: 'error', id: m.id, code: 'unknown_type', message: 'unknown' });
    });
  });
  cleanups.push(async () => {
    for (const ws of wss.clients) ws.terminate();
    await new Promise((resolve) => wss.close(resolve));
  });
  return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/ws`;
}

test('a protocol mismatch exits 1, naming the step, what was expected and what came', async () => {
  const pong = await runClient([await faultyServer('pong_id')]);
  assert.equal(pong.code, 1);
  const last = pong.steps.at(-1)!;
  assert.deepEqual([last.step, last.ok, last.got], ['ping', false, { type: 'pong', id: 'another' }]);

  const trace = await runClient([await faultyServer('foreign_trace')]);
  assert.equal(trace.code, 1);
  assert.deepEqual([trace.steps.at(-1)!.step, trace.steps.at(-1)!.ok], ['deliver', false]);
  assert.ok(trace.steps.some((s) => s.step === 'publish' && s.ok), 'it got as far as the delivery');
});
