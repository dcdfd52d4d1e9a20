/**
 * Channels across instances: two (or three) real service processes on one test-owned
 * redis-server, the OTLP they export decoded by a receiver the test runs, and the faults a fleet
 * meets: Redis unreachable at start, killed mid-stream and restarted, and Redis dropping a
 * subscriber connection that fell behind (client-output-buffer-limit pubsub).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { encodePublication } from '../src/channels/envelope-codec.js';
import { Client, eventually, killChildren, sampleValue, scrape, startChild, withTimeout, type RunningService } from './helpers.js';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.js';
import { RedisServer } from './redis-server.js';
import { freePort } from './stack-helpers.js';

const SPAN_KIND_PRODUCER = 4;
const SPAN_KIND_CONSUMER = 5;
const SPAN_KIND_CLIENT = 3;

const FLEET_ENV = {
  LOG_LEVEL: 'debug',
  CHANNEL_NAMESPACES: 'chat',
  SHUTDOWN_DRAIN_DELAY_MS: '0',
  SHUTDOWN_TIMEOUT_MS: '5000',
  OTEL_BSP_SCHEDULE_DELAY: '100',
  OTEL_METRIC_EXPORT_INTERVAL: '60000',
  REDIS_COMMAND_TIMEOUT_MS: '1000',
};

const clients: Client[] = [];
async function connect(svc: RunningService): Promise<Client> {
  const client = await Client.connect(svc.wsUrl);
  clients.push(client);
  return client;
}
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
});
after(async () => {
  await killChildren();
  await RedisServer.stopAll();
});

const messages = (client: Client, channel: string) => client.replies.filter((r) => r.type === 'message' && r.channel === channel);

async function metric(svc: RunningService, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sampleValue(await scrape(svc.baseUrl), name, labels);
}

async function readyz(svc: RunningService): Promise<{ status: number; body: { checks: Record<string, { status: string; detail?: string }> } }> {
  const res = await fetch(`${svc.baseUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as { checks: Record<string, { status: string; detail?: string }> } };
}

/** Publishes and returns the reply to this publish (deliveries may arrive before it). */
async function publish(client: Client, id: number | string, channel: string, data: unknown): Promise<Record<string, unknown>> {
  client.send({ type: 'publish', id, channel, data });
  return eventually(() => client.replies.find((r) => r.id === id && r.type !== 'message'), 5000, `the reply to publish ${id}`);
}

describe('two instances on one Redis', () => {
  let redis: RedisServer;
  let receiver: OtlpReceiver;
  let a: RunningService;
  let b: RunningService;

  before(async () => {
    redis = await RedisServer.start();
    receiver = await startOtlpReceiver();
    const env = { ...FLEET_ENV, REDIS_URL: redis.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
    [a, b] = await Promise.all([startChild({ ...env, OTEL_SERVICE_NAME: 'ws-a' }), startChild({ ...env, OTEL_SERVICE_NAME: 'ws-b' })]);
  });
  after(async () => {
    for (const svc of [a, b]) svc.child.kill('SIGTERM');
    await Promise.all([a.exited, b.exited]);
    await receiver.close();
    await redis.stop();
  });

  it('a subscriber on B gets what is published on A, in order per publisher; every subscriber on either gets each message once', async () => {
    const subs = [await connect(a), await connect(a), await connect(b), await connect(b), await connect(b)];
    for (const s of subs) assert.equal((await s.request({ type: 'subscribe', id: 's', channel: 'chat:fleet' })).type, 'subscribed');
    assert.equal(await redis.numsub('ws-service:chat:fleet'), 2, 'one Redis subscription per instance, however many subscribers');
    const pubA = await connect(a);
    const pubB = await connect(b);
    const N = 40;
    for (let i = 0; i < N; i++) {
      pubA.send({ type: 'publish', id: `a${i}`, channel: 'chat:fleet', data: { p: 'a', i } });
      pubB.send({ type: 'publish', id: `b${i}`, channel: 'chat:fleet', data: { p: 'b', i } });
    }
    for (const s of subs) {
      await eventually(() => (messages(s, 'chat:fleet').length >= 2 * N ? true : undefined), 10_000, 'every delivery');
      await new Promise((r) => setTimeout(r, 50));
      const got = messages(s, 'chat:fleet').map((m) => m.data as { p: string; i: number });
      assert.equal(got.length, 2 * N, 'each message once');
      for (const p of ['a', 'b']) assert.deepEqual(got.filter((d) => d.p === p).map((d) => d.i), Array.from({ length: N }, (_, i) => i));
    }
    assert.equal(pubA.replies.filter((r) => r.type === 'published').length, N);
    for (const s of subs) await s.close();
    await eventually(async () => ((await redis.numsub('ws-service:chat:fleet')) === 0 ? true : undefined), 3000, 'both instances unsubscribed on Redis');
    assert.equal(await metric(a, 'channel_subscriptions'), 0);
    assert.equal(await metric(b, 'channels'), 0);
  });

  it('one trace: PRODUCER on A, CONSUMER on B with A\'s span as parent, B\'s log lines under that request_id, the frame naming B\'s span', async () => {
    const sub = await connect(b);
    await sub.request({ type: 'subscribe', id: 1, channel: 'chat:traced' });
    const pub = await connect(a);
    const traceId = '5bf92f3577b34da6a3ce929d0e0e4736';
    pub.send({ type: 'publish', id: 2, channel: 'chat:traced', data: 'hello', traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
    const frame = await eventually(() => messages(sub, 'chat:traced')[0], 5000, 'the delivery');

    const { producer, consumer, publishCommand } = await eventually(() => {
      const inTrace = receiver.spans.filter((s) => s.traceId === traceId);
      const producer = inTrace.find((s) => s.kind === SPAN_KIND_PRODUCER);
      const consumer = inTrace.find((s) => s.kind === SPAN_KIND_CONSUMER);
      const publishCommand = inTrace.find((s) => s.kind === SPAN_KIND_CLIENT && s.name.toUpperCase().includes('EVAL'));
      return producer && consumer && publishCommand ? { producer, consumer, publishCommand } : undefined;
    }, 10_000, 'the PRODUCER, CONSUMER and Redis script spans');
    assert.equal(producer.resource['service.name'], 'ws-a');
    assert.equal(consumer.resource['service.name'], 'ws-b');
    assert.equal(producer.name, 'send chat');
    assert.equal(consumer.name, 'process chat');
    assert.equal(producer.attributes['messaging.system'], 'redis');
    assert.equal(producer.attributes['messaging.destination.name'], 'chat:traced');
    assert.equal(consumer.attributes['messaging.operation.type'], 'process');
    assert.equal(consumer.attributes['ws.channel.fanout'], 1);
    assert.equal(consumer.parentSpanId, producer.spanId, "B's span is a child of A's creation context");
    assert.equal(publishCommand.parentSpanId, producer.spanId, 'the Redis publish script is traced under the PRODUCER span');
    assert.match(String(publishCommand.attributes['db.query.text']), /^EVALSHA [0-9a-f]{40} 2 ws-service:\{chat:traced\}:meta ws-service:\{chat:traced\}:history \[6 other arguments\]$/);
    assert.equal(publishCommand.resource['service.name'], 'ws-a');
    assert.doesNotMatch(JSON.stringify(publishCommand.attributes), /hello/, 'the payload stays out of the db statement');
    assert.equal(frame.traceparent, `00-${traceId}-${consumer.spanId}-01`);

    const delivered = await b.waitForLog((l) => l.message === 'channel message delivered' && l.request_id === traceId);
    assert.equal(delivered.fanout, 1);
    assert.equal(delivered.namespace, 'chat');
    const published = a.lines.filter((l) => l.request_id === traceId);
    assert.ok(published.length > 0, 'A logs the publish under the same request_id');
  });
});

describe('faults', () => {
  it('Redis killed mid-stream and restarted: publishes refused meanwhile, subscriptions restored without the client, /metrics exact', async () => {
    const redis = await RedisServer.start();
    const env = { ...FLEET_ENV, REDIS_URL: redis.url };
    const [a, b] = await Promise.all([startChild(env), startChild(env)]);
    const sub = await connect(b);
    await sub.request({ type: 'subscribe', id: 1, channel: 'chat:outage' });
    const pub = await connect(a);
    assert.equal((await publish(pub, 'before', 'chat:outage', 'before')).type, 'published');
    await eventually(() => messages(sub, 'chat:outage')[0], 5000, 'the first delivery');

    await redis.kill9();
    const outageStarted = Date.now();
    await eventually(async () => ((await metric(a, 'channel_broker_up')) === 0 ? true : undefined), 5000, 'A sees Redis down');
    const ready = await readyz(a);
    assert.equal(ready.status, 200, 'a broker outage does not take the instance out of rotation');
    assert.equal(ready.body.checks.channel_broker.status, 'degraded');
    assert.equal((await pub.request({ type: 'ping', id: 'p' })).type, 'pong', 'ping still answered');
    let refused = 0;
    for (let i = 0; i < 10; i++) {
      const reply = await publish(pub, `during${i}`, 'chat:outage', `during${i}`);
      assert.equal(reply.type, 'error');
      assert.equal(reply.code, 'unavailable');
      refused++;
    }
    const lateSub = await connect(b);
    assert.equal((await lateSub.request({ type: 'subscribe', id: 1, channel: 'chat:late' })).code, 'unavailable');

    await redis.restart();
    const restarted = Date.now();
    await eventually(async () => ((await metric(b, 'channel_broker_up')) === 1 && (await metric(a, 'channel_broker_up')) === 1 ? true : undefined), 10_000, 'both reconnected');
    const reconnectedMs = Date.now() - restarted;
    // The subscriber did nothing: B restored its Redis subscription by itself.
    assert.equal(await redis.numsub('ws-service:chat:outage'), 1);
    assert.equal(await redis.numsub('ws-service:chat:late'), 0, 'a refused subscribe leaves nothing on Redis');
    assert.equal((await publish(pub, 'after', 'chat:outage', 'after')).type, 'published');
    await eventually(() => (messages(sub, 'chat:outage').length === 2 ? true : undefined), 5000, 'the delivery after the restart');
    assert.deepEqual(messages(sub, 'chat:outage').map((m) => m.data), ['before', 'after'], 'nothing refused was delivered');

    const samplesA = await scrape(a.baseUrl);
    assert.equal(sampleValue(samplesA, 'channel_messages_published_total', { namespace: 'chat', outcome: 'ok' }), 2);
    assert.equal(sampleValue(samplesA, 'channel_messages_published_total', { namespace: 'chat', outcome: 'unavailable' }), refused);
    assert.equal(sampleValue(samplesA, 'channel_broker_errors_total', { kind: 'connection_lost' }), 1, 'one outage, counted once');
    assert.equal(sampleValue(samplesA, 'channel_broker_errors_total', { kind: 'publish_failed' }), refused);
    const samplesB = await scrape(b.baseUrl);
    assert.equal(sampleValue(samplesB, 'channel_broker_errors_total', { kind: 'connection_lost' }), 1);
    assert.equal(sampleValue(samplesB, 'channel_broker_errors_total', { kind: 'subscribe_failed' }), 1);
    assert.equal(sampleValue(samplesB, 'channel_requests_rejected_total', { reason: 'unavailable' }), 1);
    assert.equal(sampleValue(samplesB, 'channel_subscriptions'), 1);
    assert.equal(sampleValue(samplesB, 'channels'), 1);
    assert.equal(sampleValue(samplesB, 'channel_messages_delivered_total', { namespace: 'chat' }), 2);
    assert.equal((await readyz(b)).body.checks.channel_broker.status, 'ok');
    await b.waitForLog((l) => l.message.startsWith('channel broker connected'));
    console.log(`outage ${restarted - outageStarted} ms, ${refused} publishes refused, both instances back ${reconnectedMs} ms after Redis restarted`);

    for (const svc of [a, b]) svc.child.kill('SIGTERM');
    const exits = await Promise.all([a.exited, b.exited]);
    assert.deepEqual(exits.map((e) => e.code), [0, 0]);
    const sequence = b.lines.map((l) => l.message);
    const brokerClosed = sequence.indexOf('shutdown: channel broker closed');
    assert.ok(brokerClosed > sequence.indexOf('shutdown: closing connections with 1001 Going Away'), 'the broker closes after the subscribers');
    assert.ok(brokerClosed < sequence.indexOf('shutdown complete'));
    await redis.stop();
  });

  it('Redis unreachable at start: the instance starts and serves, reports the broker, and takes channels up when Redis comes', async () => {
    const port = await freePort();
    const svc = await startChild({ ...FLEET_ENV, REDIS_URL: `redis://127.0.0.1:${port}` });
    assert.ok(svc.lines.some((l) => l.message.startsWith('channel broker not reachable yet')));
    const ready = await readyz(svc);
    assert.equal(ready.status, 200);
    assert.equal(ready.body.checks.channel_broker.status, 'degraded');
    assert.match(String(ready.body.checks.channel_broker.detail), /ECONNREFUSED/);
    assert.equal(await metric(svc, 'channel_broker_up'), 0);
    const c = await connect(svc);
    assert.deepEqual(await c.request({ type: 'echo', id: 1, data: 'x' }), { type: 'echo', id: 1, data: 'x' });
    assert.equal((await c.request({ type: 'subscribe', id: 2, channel: 'chat:x' })).code, 'unavailable');
    assert.equal((await publish(c, 3, 'chat:x', 1)).code, 'unavailable');
    assert.equal(await metric(svc, 'channel_subscriptions'), 0, 'a refused subscribe is not counted live');

    const redis = await RedisServer.startOn(port);
    await eventually(async () => ((await metric(svc, 'channel_broker_up')) === 1 ? true : undefined), 10_000, 'connected once Redis is there');
    assert.equal((await c.request({ type: 'subscribe', id: 4, channel: 'chat:x' })).type, 'subscribed');
    assert.equal((await publish(c, 5, 'chat:x', 'now')).type, 'published');
    await eventually(() => messages(c, 'chat:x')[0], 5000, 'the delivery');
    assert.equal(await metric(svc, 'channel_broker_errors_total', { kind: 'connection_lost' }), 1);
    svc.child.kill('SIGTERM');
    assert.equal((await withTimeout(svc.exited, 10_000, 'exit')).code, 0);
    await redis.stop();
  });

  it('Redis drops a subscriber connection that fell behind (client-output-buffer-limit pubsub): detected, counted, restored', async () => {
    const redis = await RedisServer.start(['--client-output-buffer-limit', 'pubsub 256kb 128kb 1']);
    const svc = await startChild({ ...FLEET_ENV, REDIS_URL: redis.url });
    const c = await connect(svc);
    await c.request({ type: 'subscribe', id: 1, channel: 'chat:flood' });
    // The instance stops reading (as under a long event-loop stall) while Redis keeps pushing:
    // past the kernel's socket buffers, Redis's own output buffer for it passes the hard limit.
    svc.child.kill('SIGSTOP');
    try {
      const payload = encodePublication({ epoch: 'f100d', offset: 1, json: JSON.stringify('z'.repeat(64 * 1024)), publishedAt: Date.now() });
      await eventually(
        async () => {
          for (let i = 0; i < 20; i++) await redis.command('PUBLISH', 'ws-service:chat:flood', payload);
          const stats = String(await redis.command('INFO', 'stats'));
          return /client_output_buffer_limit_disconnections:[1-9]/.test(stats) || (await redis.numsub('ws-service:chat:flood')) === 0 ? true : undefined;
        },
        20_000,
        'Redis to drop the subscriber',
      );
    } finally {
      svc.child.kill('SIGCONT');
    }
    await eventually(async () => ((await metric(svc, 'channel_broker_errors_total', { kind: 'subscriber_dropped' })) === 1 ? true : undefined), 10_000, 'the drop counted');
    assert.equal(await metric(svc, 'channel_broker_errors_total', { kind: 'connection_lost' }), 0, 'told apart from Redis going away');
    await svc.waitForLog((l) => l.level === 'WARN' && String(l.message).includes('closed the subscriber connection'));
    await eventually(async () => ((await metric(svc, 'channel_broker_up')) === 1 ? true : undefined), 10_000, 'reconnected');
    assert.equal(await redis.numsub('ws-service:chat:flood'), 1, 'resubscribed without the client');
    const before = messages(c, 'chat:flood').length;
    assert.equal((await publish(c, 2, 'chat:flood', 'after')).type, 'published');
    await eventually(() => (messages(c, 'chat:flood').some((m) => m.data === 'after') ? true : undefined), 5000, 'delivery after the drop');
    assert.ok(messages(c, 'chat:flood').length > before);
    svc.child.kill('SIGTERM');
    await svc.exited;
    await redis.stop();
  });

  it('a subscriber connection dropped while Redis keeps running: the gap in the live stream is filled from history, in order', async () => {
    const redis = await RedisServer.start();
    const env = { ...FLEET_ENV, REDIS_URL: redis.url };
    const [a, b] = await Promise.all([startChild(env), startChild(env)]);
    const sub = await connect(b);
    await sub.request({ type: 'subscribe', id: 1, channel: 'chat:gap' });
    const pub = await connect(a);
    assert.equal((await publish(pub, 0, 'chat:gap', 0)).type, 'published');
    await eventually(() => messages(sub, 'chat:gap')[0], 5000, 'the first delivery');
    // B is held still while Redis closes every pub/sub connection (B's subscriber; A has no
    // subscription) and A publishes: B cannot resubscribe before those publications are made.
    const N = 30;
    b.child.kill('SIGSTOP');
    try {
      await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
      for (let i = 1; i <= N; i++) pub.send({ type: 'publish', id: i, channel: 'chat:gap', data: i });
      await eventually(() => (pub.replies.filter((r) => r.type === 'published').length === N + 1 ? true : undefined), 5000, 'every publish accepted');
    } finally {
      b.child.kill('SIGCONT');
    }
    await eventually(async () => ((await redis.numsub('ws-service:chat:gap')) === 1 ? true : undefined), 5000, 'B resubscribed');
    assert.equal((await publish(pub, N + 1, 'chat:gap', N + 1)).type, 'published');
    await eventually(() => (messages(sub, 'chat:gap').length >= N + 2 ? true : undefined), 5000, 'every delivery');
    await new Promise((r) => setTimeout(r, 100));
    const got = messages(sub, 'chat:gap');
    assert.deepEqual(got.map((m) => m.data), Array.from({ length: N + 2 }, (_, i) => i), 'no gap, no duplicate, in order');
    assert.deepEqual(got.map((m) => m.offset), Array.from({ length: N + 2 }, (_, i) => i + 1));
    const samples = await scrape(b.baseUrl);
    assert.equal(sampleValue(samples, 'channel_broker_errors_total', { kind: 'subscriber_dropped' }), 1);
    assert.equal(sampleValue(samples, 'channel_delivery_gaps_total', { namespace: 'chat', outcome: 'filled' }), 1, 'the publications made while B was away came from history');
    await b.waitForLog((l) => l.message === 'channel gap: missed publications delivered from history');
    for (const svc of [a, b]) svc.child.kill('SIGTERM');
    await Promise.all([a.exited, b.exited]);
    await redis.stop();
  });
});
