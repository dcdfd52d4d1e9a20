import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, test } from 'node:test';
import { Client, eventually, killChildren, scrape, startChild, withTimeout, type Sample } from './helpers.js';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.js';
import { freePort, run } from './stack-helpers.js';

const PROCESSED = 'otel_sdk_processor_span_processed_total';
const QUEUE_SIZE = 'otel_sdk_processor_span_queue_size';
const QUEUE_CAPACITY = 'otel_sdk_processor_span_queue_capacity';
const PROCESSOR = { otel_component_type: 'batching_span_processor', otel_component_name: 'batching_span_processor/0' };

/** The one sample of `name` whose labels are exactly `labels`, or undefined. */
function exact(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  const found = samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want);
  assert.ok(found.length <= 1, `at most one ${name}${want}`);
  return found[0]?.value;
}

/** An OTLP endpoint that takes each request and never answers it: the export stays in flight. */
async function startStalledCollector(): Promise<{ url: string; requests: string[]; close: () => Promise<void> }> {
  const requests: string[] = [];
  const server: Server = createServer((req) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await killChildren();
  await cleanup?.();
  cleanup = undefined;
});

test('a full batch queue: every dropped span is counted on /metrics, exactly', async () => {
  const collector = await startStalledCollector();
  cleanup = collector.close;
  const BATCH = 8;
  const QUEUE = 16;
  const svc = await startChild({
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: collector.url,
    OTEL_BSP_MAX_QUEUE_SIZE: String(QUEUE),
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE: String(BATCH),
    // Nothing leaves on a timer, and the one export that starts never ends within the test:
    // the queue's content is decided by the span count alone.
    OTEL_BSP_SCHEDULE_DELAY: '600000',
    OTEL_BSP_EXPORT_TIMEOUT: '600000',
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '600000',
    RATE_LIMIT_MESSAGES_PER_SEC: '0',
  });

  const before = await scrape(svc.baseUrl);
  assert.equal(exact(before, QUEUE_CAPACITY, PROCESSOR), QUEUE, 'OTEL_BSP_MAX_QUEUE_SIZE is honoured and exported');
  assert.equal(exact(before, QUEUE_SIZE, PROCESSOR), 0);
  assert.equal(exact(before, PROCESSED, { ...PROCESSOR, error_type: 'queue_full' }), undefined, 'no drop series before any drop');

  const MESSAGES = 100;
  const client = await Client.connect(svc.wsUrl);
  for (let i = 0; i < MESSAGES; i++) client.send({ type: 'ping', id: i });
  await client.waitForReplies(MESSAGES, 10_000);

  // Each span ends before its reply is sent, so all have ended: the handshake and one per
  // message. The BATCH-th ended span starts the first export, which takes those BATCH out of the
  // queue and never returns; the next QUEUE fill the queue; every later one is dropped.
  const ended = 1 + MESSAGES;
  const expectedDropped = ended - BATCH - QUEUE;
  const during = await scrape(svc.baseUrl);
  const dropped = exact(during, PROCESSED, { ...PROCESSOR, error_type: 'queue_full' });
  const queued = exact(during, QUEUE_SIZE, PROCESSOR);
  console.log(`full queue: ${ended} spans ended, ${BATCH} in the stalled export, ${queued} queued, ${dropped} counted dropped`);
  assert.equal(dropped, expectedDropped);
  assert.equal(queued, QUEUE);
  assert.equal(exact(during, PROCESSED, PROCESSOR), undefined, 'no export has finished, so none is counted processed');
  await eventually(() => (collector.requests.length > 0 ? true : undefined), 5000, 'the first export to arrive');
  assert.deepEqual(collector.requests, ['POST /v1/traces'], 'one export, still in flight');

  // The close span finds the queue still full: one more drop, counted as it happens.
  await client.close(1000);
  await svc.waitForLog((l) => l.message === 'WebSocket closed');
  const after = await scrape(svc.baseUrl);
  assert.equal(exact(after, PROCESSED, { ...PROCESSOR, error_type: 'queue_full' }), expectedDropped + 1);

  const text = await (await fetch(`${svc.baseUrl}/metrics`)).text();
  const checked = await run('promtool', ['check', 'metrics'], { input: text });
  assert.equal(`${checked.stdout}${checked.stderr}`.trim(), '', 'promtool check metrics accepts the new series');
  assert.equal(checked.code, 0);
});

test('no drops: no queue_full series, every span counted once exported, and the series reach the OTLP push', async () => {
  const receiver: OtlpReceiver = await startOtlpReceiver();
  cleanup = () => receiver.close();
  const svc = await startChild({
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_BLRP_SCHEDULE_DELAY: '100',
    OTEL_METRIC_EXPORT_INTERVAL: '60000',
    SHUTDOWN_DRAIN_DELAY_MS: '0',
    SHUTDOWN_TIMEOUT_MS: '5000',
  });
  const MESSAGES = 20;
  const client = await Client.connect(svc.wsUrl);
  for (let i = 0; i < MESSAGES; i++) client.send({ type: 'echo', id: i, data: 'x' });
  await client.waitForReplies(MESSAGES);
  await client.close(1000);
  await svc.waitForLog((l) => l.message === 'WebSocket closed');

  // Handshake, messages, close: counted once the collector has acknowledged them.
  const ended = 1 + MESSAGES + 1;
  const samples = await eventually(async () => {
    const s = await scrape(svc.baseUrl);
    return exact(s, PROCESSED, PROCESSOR) === ended ? s : undefined;
  }, 10_000, `${ended} spans counted processed`);
  assert.equal(receiver.spans.length, ended, 'what is counted processed is what arrived');
  assert.equal(exact(samples, PROCESSED, { ...PROCESSOR, error_type: 'queue_full' }), undefined);
  assert.ok(!samples.some((s) => s.name === PROCESSED && s.labels.error_type !== undefined), 'no failure of any kind');
  assert.equal(exact(samples, QUEUE_CAPACITY, PROCESSOR), 2048, 'the SDK default queue');
  assert.equal(exact(samples, QUEUE_SIZE, PROCESSOR), 0);

  svc.child.kill('SIGTERM');
  const { code } = await withTimeout(svc.exited, 10_000, 'exit');
  assert.equal(code, 0);
  // The final push runs beside the last span flush, so it may miss the shutdown span: at least `ended`.
  const pushed = receiver.metrics.filter((m) => m.name === 'otel.sdk.processor.span.processed').at(-1);
  assert.ok(pushed, 'otel.sdk.processor.span.processed reached the OTLP push');
  assert.equal(pushed.kind, 'sum');
  assert.equal(pushed.unit, '{span}');
  assert.equal(pushed.points.length, 1);
  assert.deepEqual(pushed.points[0].attributes, {
    'otel.component.type': 'batching_span_processor',
    'otel.component.name': 'batching_span_processor/0',
  });
  assert.ok((pushed.points[0].value ?? 0) >= ended, `pushed ${pushed.points[0].value} processed`);
  const capacity = receiver.metrics.filter((m) => m.name === 'otel.sdk.processor.span.queue.capacity').at(-1);
  assert.equal(capacity?.points[0].value, 2048);
});

test('collector down: spans whose export failed are counted by error class, apart from drops', async () => {
  const svc = await startChild({
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${await freePort()}/v1/traces`, // nothing listens
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '500',
  });
  const MESSAGES = 5;
  const client = await Client.connect(svc.wsUrl);
  for (let i = 0; i < MESSAGES; i++) client.send({ type: 'ping', id: i });
  await client.waitForReplies(MESSAGES);
  const ended = 1 + MESSAGES;
  // A refused connection is retried until the export timeout, then reported as a plain Error.
  const samples = await eventually(async () => {
    const s = await scrape(svc.baseUrl);
    return exact(s, PROCESSED, { ...PROCESSOR, error_type: 'Error' }) === ended ? s : undefined;
  }, 15_000, `${ended} spans counted failed`);
  assert.equal(exact(samples, PROCESSED, PROCESSOR), undefined, 'none counted exported');
  assert.equal(exact(samples, PROCESSED, { ...PROCESSOR, error_type: 'queue_full' }), undefined, 'a failed export is not a drop');
  await client.close();
});
