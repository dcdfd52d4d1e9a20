import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { PROTOCOL } from '../src/ws/subprotocol.js';
import { eventually, killChildren, sampleValue, scrape, startChild, type RunningService } from './helpers.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './otlp-receiver.js';
import { RedisServer } from './redis-server.js';
import { repoPath, requireExecutable, run } from './stack-helpers.js';

// examples/python/client.py, a client in another language on another WebSocket library
// (Debian's python3-websockets), runs the protocol against two main.js processes on one
// test-owned redis-server and checks every answer: the delivery crossing from one instance to
// the other in the trace the script started, and a recovery after a reconnect.

const PYTHON = '/usr/bin/python3';
const CLIENT = repoPath('examples/python/client.py');
const TOKEN = 'python-token/0123456789+abc=';
const SPAN_KIND_SERVER = 2;
const SPAN_KIND_PRODUCER = 4;
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

/** What a failed run says: the step it stopped at first, then everything it printed. */
const failure = ({ steps, stderr }: Outcome): string => `stopped at ${JSON.stringify(steps.at(-1))}\nsteps: ${JSON.stringify(steps)}\n${stderr}`;

/** Every step the client runs against two URLs, in order, each passed. */
const TWO_INSTANCE_STEPS = [
  ['connect', true],
  ['connect', true],
  ['connect', true],
  ['ping', true],
  ['echo', true],
  ['unknown_type', true],
  ['subscribe', true],
  ['subscribe', true],
  ['publish', true],
  ['deliver', true],
  ['deliver', true],
  ['cross', true],
  ['unsubscribe', true],
  ['unsubscribe', true],
  ['connect', true],
  ['recover_receive', true],
  ['recover_close', true],
  ['recover_publish', true],
  ['connect', true],
  ['recover_resubscribe', true],
  ['recover_replay', true],
  ['recover_live', true],
  ['done', true],
];

describe('against two instances on one Redis, with AUTH_TOKEN', () => {
  let redis: RedisServer;
  let otlp: OtlpReceiver;
  let a: RunningService;
  let b: RunningService;

  before(async () => {
    redis = await RedisServer.start();
    otlp = await startOtlpReceiver();
    const env = {
      REDIS_URL: redis.url,
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_METRIC_EXPORT_INTERVAL: '60000',
      AUTH_TOKEN: TOKEN,
      CHANNEL_NAMESPACES: 'python',
      SHUTDOWN_DRAIN_DELAY_MS: '0',
    };
    [a, b] = await Promise.all([startChild({ ...env, OTEL_SERVICE_NAME: 'ws-a' }), startChild({ ...env, OTEL_SERVICE_NAME: 'ws-b' })]);
  });
  after(async () => {
    await killChildren();
    await otlp?.close();
    await RedisServer.stopAll();
  });

  const recoveries = async (svc: RunningService): Promise<{ recovered: number; replayed: number }> => {
    const samples = await scrape(svc.baseUrl);
    return {
      recovered: sampleValue(samples, 'channel_recoveries_total', { namespace: 'python', outcome: 'recovered', reason: 'none' }),
      replayed: sampleValue(samples, 'channel_publications_replayed_total', { namespace: 'python' }),
    };
  };

  it('publishes on A, B delivers in the trace the script started under a PRODUCER span on A; a subscriber that reconnects from B to A with since gets exactly what it missed', async () => {
    const before = await recoveries(a);
    const outcome = await runClient([a.wsUrl, b.wsUrl], ['--token', TOKEN]);
    assert.equal(outcome.code, 0, failure(outcome));
    const { steps } = outcome;
    assert.deepEqual(steps.map((s) => [s.step, s.ok]), TWO_INSTANCE_STEPS);
    assert.ok(steps.filter((s) => s.step === 'connect').every((s) => s.subprotocol === PROTOCOL));
    const published = steps.find((s) => s.step === 'publish')!;
    const onA = steps.find((s) => s.step === 'deliver' && s.url === a.wsUrl)!;
    const onB = steps.find((s) => s.step === 'deliver' && s.url === b.wsUrl)!;

    // The server joined the trace the Python client started: its publish span on A under the
    // script's span, the PRODUCER under it, and each instance's CONSUMER span under the
    // PRODUCER, each named by the traceparent of its own delivery.
    const spans = await eventually(() => {
      const inTrace = otlp.spans.filter((s) => s.traceId === published.trace_id);
      const on = (service: string, predicate: (s: ReceivedSpan) => boolean) => inTrace.find((s) => s.resource['service.name'] === service && predicate(s));
      const publish = on('ws-a', (s) => s.name === 'ws.message publish');
      const producer = on('ws-a', (s) => s.kind === SPAN_KIND_PRODUCER);
      const consumerA = on('ws-a', (s) => s.kind === SPAN_KIND_CONSUMER);
      const consumerB = on('ws-b', (s) => s.kind === SPAN_KIND_CONSUMER);
      return publish && producer && consumerA && consumerB ? { publish, producer, consumerA, consumerB } : undefined;
    }, 15_000, 'the publish, PRODUCER and both CONSUMER spans');
    assert.equal(spans.publish.kind, SPAN_KIND_SERVER);
    assert.equal(spans.publish.parentSpanId, published.span_id);
    assert.equal(spans.producer.parentSpanId, spans.publish.spanId);
    assert.equal(spans.producer.name, 'send python');
    assert.equal(spans.consumerB.name, 'process python');
    assert.equal(spans.consumerB.parentSpanId, spans.producer.spanId, "B's delivery is a child of A's PRODUCER span");
    assert.equal(spans.consumerB.spanId, onB.span_id);
    assert.equal(spans.consumerA.parentSpanId, spans.producer.spanId);
    assert.equal(spans.consumerA.spanId, onA.span_id);
    const handshake = otlp.spans.find((s) => s.name === 'GET /ws');
    assert.match(String(handshake?.attributes['user_agent.original']), /websockets\//);

    // The recovery ran on A, for a subscriber that had been on B.
    const resubscribed = steps.find((s) => s.step === 'recover_resubscribe')!;
    assert.deepEqual([steps.find((s) => s.step === 'recover_receive')!.url, resubscribed.url], [b.wsUrl, a.wsUrl]);
    assert.deepEqual(steps.find((s) => s.step === 'recover_replay')!.seqs, [4, 5, 6, 7]);
    const afterRun = await recoveries(a);
    assert.deepEqual(afterRun, { recovered: before.recovered + 1, replayed: before.replayed + 4 });
  });

  it('the token as a header is admitted as well; a wrong token exits 1 on a 401, counted', async () => {
    const outcome = await runClient([b.wsUrl, a.wsUrl], ['--token', TOKEN, '--auth', 'header']);
    assert.equal(outcome.code, 0, failure(outcome));
    assert.deepEqual(outcome.steps.map((s) => [s.step, s.ok]), TWO_INSTANCE_STEPS);
    const refusedBefore = sampleValue(await scrape(a.baseUrl), 'rejected_upgrades_total', { reason: 'unauthorized' });
    const wrong = await runClient([a.wsUrl], ['--token', `${TOKEN}x`]);
    assert.equal(wrong.code, 1);
    assert.deepEqual(wrong.steps, [{ step: 'connect', ok: false, url: a.wsUrl, role: 'publisher', status: 401 }]);
    assert.equal(sampleValue(await scrape(a.baseUrl), 'rejected_upgrades_total', { reason: 'unauthorized' }), refusedBefore + 1);
  });
});

type Fault = 'none' | 'pong_id' | 'foreign_trace' | 'not_recovered' | 'replay_gap' | 'switch_duplicate';

const standIns: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of standIns.splice(0)) await close();
});

/**
 * A server that speaks the protocol, positions and recovery included, except for one fault, so
 * the client's checks are shown to catch it (an in-test stand-in for a broken service; it never
 * replaces the real one above).
 */
async function faultyServer(fault: Fault): Promise<string> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => PROTOCOL });
  await once(wss, 'listening');
  const epoch = 'e1';
  const channels = new Map<string, { offset: number; history: { offset: number; data: unknown }[]; subscribers: Set<WebSocket> }>();
  const channelOf = (name: string) => {
    if (!channels.has(name)) channels.set(name, { offset: 0, history: [], subscribers: new Set() });
    return channels.get(name)!;
  };
  wss.on('connection', (ws) => {
    const send = (frame: Record<string, unknown>): void => ws.send(JSON.stringify(frame));
    ws.on('close', () => {
      for (const c of channels.values()) c.subscribers.delete(ws);
    });
    ws.on('message', (raw) => {
      const m = JSON.parse(String(raw)) as Record<string, unknown> & { channel: string; since?: { offset: number } };
      if (m.type === 'ping') send({ type: 'pong', id: fault === 'pong_id' ? 'another' : m.id });
      else if (m.type === 'echo') send({ type: 'echo', id: m.id, data: m.data });
      else if (m.type === 'subscribe') {
        const c = channelOf(m.channel);
        c.subscribers.add(ws);
        if (m.since === undefined) {
          send({ type: 'subscribed', id: m.id, channel: m.channel, epoch, offset: c.offset });
          return;
        }
        const missed = c.history.filter((h) => h.offset > m.since!.offset);
        const recovered = fault !== 'not_recovered';
        send({ type: 'subscribed', id: m.id, channel: m.channel, epoch, offset: c.offset, recovered, replayed: missed.length });
        if (!recovered) return;
        let replay = fault === 'replay_gap' ? missed.filter((_, i) => i !== 1) : missed;
        if (fault === 'switch_duplicate') replay = [...missed, missed[missed.length - 1]];
        for (const h of replay) send({ type: 'message', channel: m.channel, data: h.data, epoch, offset: h.offset });
      } else if (m.type === 'unsubscribe') {
        channelOf(m.channel).subscribers.delete(ws);
        send({ type: 'unsubscribed', id: m.id, channel: m.channel });
      } else if (m.type === 'publish') {
        const c = channelOf(m.channel);
        const offset = ++c.offset;
        c.history.push({ offset, data: m.data });
        const traceparent = fault === 'foreign_trace' ? `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01` : m.traceparent;
        for (const s of c.subscribers) s.send(JSON.stringify({ type: 'message', channel: m.channel, data: m.data, epoch, offset, traceparent }));
        send({ type: 'published', id: m.id, channel: m.channel, epoch, offset });
      } else send({ type: 'error', id: m.id, code: 'unknown_type', message: 'unknown' });
    });
  });
  standIns.push(async () => {
    for (const ws of wss.clients) ws.terminate();
    await new Promise((resolve) => wss.close(resolve));
  });
  return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/ws`;
}

describe('a service that breaks the protocol', () => {
  it('with no fault the stand-in passes every step (so each fault below is what fails the run)', async () => {
    const fine = await runClient([await faultyServer('none')]);
    assert.equal(fine.code, 0, failure(fine));
  });

  it('a reply or a delivery that is not what the protocol says exits 1, naming the step, what was expected and what came', async () => {
    const pong = await runClient([await faultyServer('pong_id')]);
    assert.equal(pong.code, 1);
    const last = pong.steps.at(-1)!;
    assert.deepEqual([last.step, last.ok, last.got], ['ping', false, { type: 'pong', id: 'another' }]);

    const trace = await runClient([await faultyServer('foreign_trace')]);
    assert.equal(trace.code, 1);
    assert.deepEqual([trace.steps.at(-1)!.step, trace.steps.at(-1)!.ok], ['deliver', false]);
    assert.ok(trace.steps.some((s) => s.step === 'publish' && s.ok), 'it got as far as the delivery');
  });

  it('a recovery that is refused, skips a publication or repeats one at the switch to live exits 1 at that step', async () => {
    const expected: Record<string, string> = { not_recovered: 'recover_resubscribe', replay_gap: 'recover_replay', switch_duplicate: 'recover_live' };
    for (const [fault, step] of Object.entries(expected)) {
      const outcome = await runClient([await faultyServer(fault as Fault)]);
      assert.equal(outcome.code, 1, `${fault}: ${JSON.stringify(outcome.steps)}`);
      assert.deepEqual([outcome.steps.at(-1)!.step, outcome.steps.at(-1)!.ok], [step, false], `${fault}: ${JSON.stringify(outcome.steps.at(-1))}`);
      assert.ok(outcome.steps.some((s) => s.step === 'recover_publish' && s.ok), `${fault}: it got as far as the reconnect`);
    }
    // What the gap looks like: the replay's second message, expected, and the third in its place.
    const gap = (await runClient([await faultyServer('replay_gap')])).steps.at(-1)!;
    const [wanted, got] = [gap.expected, gap.got] as { data: unknown; offset: number }[];
    assert.deepEqual([wanted.data, wanted.offset, got.data, got.offset], [{ seq: 5 }, 5, { seq: 6 }, 6]);
  });
});
