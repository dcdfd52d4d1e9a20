/**
 * Channels end to end: real sockets and the real service, once on the in-process engine and
 * once on a real redis-server: one behavioural suite, two engines.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import type { MemoryBroker } from '../src/channels/memory-broker.js';
import { Client, eventually, sampleValue, scrape, startHarness, type Harness } from './helpers.js';
import { RedisServer } from './redis-server.js';

for (const engine of ['memory', 'redis'] as const) channelSuite(engine);

function channelSuite(engine: 'memory' | 'redis'): void {
  let harness: Harness;
  let redis: RedisServer | undefined;
  const clients: Client[] = [];
  async function connect(): Promise<Client> {
    const client = await Client.connect(harness.wsUrl);
    clients.push(client);
    return client;
  }
  const messages = (client: Client, channel: string) => client.replies.filter((r) => r.type === 'message' && r.channel === channel);
  /** Listeners the engine holds for a channel: the memory broker's own count, or Redis's PUBSUB NUMSUB. */
  const brokerListeners = async (channel: string): Promise<number> =>
    redis === undefined ? (harness.service.broker as MemoryBroker).listenerCount(channel) : redis.numsub(`ws-service:${channel}`);

  describe(`channels (${engine} engine)`, () => {
    before(async () => {
      if (engine === 'redis') redis = await RedisServer.start();
      harness = await startHarness({
        env: {
          MAX_SUBSCRIPTIONS_PER_CONNECTION: '3',
          CHANNEL_NAMESPACES: 'chat',
          MAX_PUBLISH_BYTES: '16384',
          MAX_BUFFERED_BYTES: '200000',
          // The slow-subscriber test publishes 400 messages as fast as they are answered.
          RATE_LIMIT_MESSAGES_PER_SEC: '100000',
          RATE_LIMIT_BURST: '100000',
          RATE_LIMIT_BYTES_PER_SEC: '1073741824',
          RATE_LIMIT_BYTES_BURST: '1073741824',
          ...(redis === undefined ? {} : { REDIS_URL: redis.url }),
        },
      });
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await harness.stop();
      await redis?.stop();
    });

    it('subscribe is idempotent; publish is answered published and delivered to the publisher too', async () => {
      const a = await connect();
      const first = await a.request({ type: 'subscribe', id: 1, channel: 'chat:room-42' });
      assert.deepEqual(first, { type: 'subscribed', id: 1, channel: 'chat:room-42', epoch: first.epoch, offset: 0 });
      assert.match(String(first.epoch), /^[0-9a-f]{12}$/);
      assert.deepEqual(await a.request({ type: 'subscribe', id: 2, channel: 'chat:room-42' }), { type: 'subscribed', id: 2, channel: 'chat:room-42', epoch: first.epoch, offset: 0 });
      a.send({ type: 'publish', id: 3, channel: 'chat:room-42', data: { text: 'hi' } });
      await a.waitForReplies(4);
      assert.deepEqual(a.replies.find((r) => r.id === 3), { type: 'published', id: 3, channel: 'chat:room-42', epoch: first.epoch, offset: 1 });
      const delivered = await eventually(() => messages(a, 'chat:room-42')[0]);
      assert.deepEqual(delivered.data, { text: 'hi' });
      assert.deepEqual([delivered.epoch, delivered.offset], [first.epoch, 1]);
      assert.match(String(delivered.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
      assert.equal(messages(a, 'chat:room-42').length, 1, 'one subscription however often subscribed');
      assert.deepEqual(await a.request({ type: 'unsubscribe', id: 4, channel: 'chat:room-42' }), { type: 'unsubscribed', id: 4, channel: 'chat:room-42' });
      await a.close();
    });

    it('N subscribers each get every message once, in order per publisher', async () => {
      const subs = await Promise.all(Array.from({ length: 5 }, () => connect()));
      for (const s of subs) await s.request({ type: 'subscribe', id: 's', channel: 'chat:fan' });
      const publishers = await Promise.all([connect(), connect()]);
      const N = 30;
      for (let i = 0; i < N; i++) for (const [p, pub] of publishers.entries()) pub.send({ type: 'publish', id: i, channel: 'chat:fan', data: { p, i } });
      for (const s of subs) {
        await eventually(() => (messages(s, 'chat:fan').length >= 2 * N ? true : undefined), 5000, 'all deliveries');
        const got = messages(s, 'chat:fan').map((m) => m.data as { p: number; i: number });
        assert.equal(got.length, 2 * N);
        for (const p of [0, 1]) assert.deepEqual(got.filter((d) => d.p === p).map((d) => d.i), Array.from({ length: N }, (_, i) => i));
      }
      await Promise.all([...subs, ...publishers].map((c) => c.close()));
    });

    it('bad names and too many subscriptions get stable codes, the connection stays open, counted', async () => {
      const c = await connect();
      const before = await scrape(harness.baseUrl);
      for (const channel of ['nocolon', ':x', 'a:b c', 'a:' + 'x'.repeat(200), 42, undefined]) {
        const reply = await c.request({ type: 'subscribe', id: 9, channel });
        assert.equal(reply.code, 'bad_channel', String(channel));
      }
      assert.equal((await c.request({ type: 'publish', id: 10, channel: 'bad', data: 1 })).code, 'bad_channel');
      for (let i = 0; i < 3; i++) assert.equal((await c.request({ type: 'subscribe', id: i, channel: `chat:${i}` })).type, 'subscribed');
      const refused = await c.request({ type: 'subscribe', id: 11, channel: 'chat:3' });
      assert.equal(refused.code, 'too_many_subscriptions');
      assert.equal(refused.type, 'error');
      assert.deepEqual(await c.request({ type: 'ping', id: 12 }), { type: 'pong', id: 12 });
      const after = await scrape(harness.baseUrl);
      const delta = (reason: string) =>
        sampleValue(after, 'channel_requests_rejected_total', { reason }) - sampleValue(before, 'channel_requests_rejected_total', { reason });
      assert.equal(delta('bad_channel'), 7);
      assert.equal(delta('too_many_subscriptions'), 1);
      await c.close();
    });

    it('an abrupt close drops the subscriptions: gauges back to the truth, no broker listener left', async () => {
      await eventually(async () => (sampleValue(await scrape(harness.baseUrl), 'channel_subscriptions') === 0 ? true : undefined), 3000, 'no subscriptions');
      const c = await connect();
      const d = await connect();
      await c.request({ type: 'subscribe', id: 1, channel: 'chat:gone' });
      await c.request({ type: 'subscribe', id: 2, channel: 'game:x' });
      await d.request({ type: 'subscribe', id: 3, channel: 'chat:gone' });
      let samples = await scrape(harness.baseUrl);
      assert.equal(sampleValue(samples, 'channel_subscriptions'), 3);
      assert.equal(sampleValue(samples, 'channels'), 2);
      c.ws.terminate();
      await eventually(() => (harness.service.subscriptions.subscriptionCount === 1 ? true : undefined), 3000, 'subscriptions dropped');
      samples = await scrape(harness.baseUrl);
      assert.equal(sampleValue(samples, 'channel_subscriptions'), 1);
      assert.equal(sampleValue(samples, 'channels'), 1);
      await eventually(async () => ((await brokerListeners('game:x')) === 0 ? true : undefined), 3000, 'game:x released on the broker');
      assert.equal(await brokerListeners('chat:gone'), 1);
      d.ws.terminate();
      await eventually(async () => ((await brokerListeners('chat:gone')) === 0 ? true : undefined), 3000, 'no broker listener');
      samples = await scrape(harness.baseUrl);
      assert.equal(sampleValue(samples, 'channel_subscriptions'), 0);
      assert.equal(sampleValue(samples, 'channels'), 0);
      // The namespace label is folded: `game` is not configured, so it counts as `other`.
      assert.ok(sampleValue(samples, 'channel_messages_published_total', { namespace: 'other', outcome: 'ok' }) >= 0);
    });

    it('PRODUCER and CONSUMER share the trace; the frame names the CONSUMER span', async () => {
      const a = await connect();
      await a.request({ type: 'subscribe', id: 1, channel: 'chat:traced' });
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      a.send({ type: 'publish', id: 2, channel: 'chat:traced', data: 'x', traceparent });
      const frame = await eventually(() => messages(a, 'chat:traced')[0]);
      const spans = await eventually(() => {
        const finished = harness.spans.getFinishedSpans();
        const producer = finished.find((s) => s.kind === SpanKind.PRODUCER && s.attributes['messaging.destination.name'] === 'chat:traced');
        const consumer = finished.find((s) => s.kind === SpanKind.CONSUMER && s.attributes['messaging.destination.name'] === 'chat:traced');
        return producer && consumer ? { producer, consumer } : undefined;
      });
      const { producer, consumer } = spans;
      assert.equal(producer.name, 'send chat');
      assert.equal(consumer.name, 'process chat');
      assert.equal(producer.attributes['messaging.operation.type'], 'send');
      assert.equal(consumer.attributes['messaging.operation.type'], 'process');
      assert.equal(consumer.attributes['ws.channel.fanout'], 1);
      assert.equal(producer.spanContext().traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
      assert.equal(consumer.spanContext().traceId, producer.spanContext().traceId);
      assert.equal(consumer.parentSpanContext?.spanId, producer.spanContext().spanId);
      assert.equal(frame.traceparent, `00-${consumer.spanContext().traceId}-${consumer.spanContext().spanId}-01`);
      const samples = await scrape(harness.baseUrl);
      assert.ok(sampleValue(samples, 'channel_messages_delivered_total', { namespace: 'chat' }) >= 1);
      assert.ok(sampleValue(samples, 'channel_delivery_lag_seconds_count', { namespace: 'chat' }) >= 1);
      await a.close();
    });

    it('a publish past MAX_PUBLISH_BYTES gets message_too_large; the connection stays open; counted', async () => {
      const c = await connect();
      await c.request({ type: 'subscribe', id: 1, channel: 'chat:big' });
      const before = await scrape(harness.baseUrl);
      const refused = await c.request({ type: 'publish', id: 2, channel: 'chat:big', data: 'x'.repeat(16_383) });
      assert.equal(refused.code, 'message_too_large');
      // UTF-8 bytes of the JSON text count: 8192 two-byte characters and two quotes are 16386.
      assert.equal((await c.request({ type: 'publish', id: 3, channel: 'chat:big', data: 'é'.repeat(8192) })).code, 'message_too_large', 'bytes, not characters');
      // 16382 characters plus the two quotes fit exactly.
      c.send({ type: 'publish', id: 4, channel: 'chat:big', data: 'x'.repeat(16_382) });
      assert.equal((await eventually(() => c.replies.find((r) => r.id === 4))).type, 'published');
      await eventually(() => messages(c, 'chat:big')[0]);
      assert.equal(messages(c, 'chat:big').length, 1, 'only the publish that fit was delivered');
      const after = await scrape(harness.baseUrl);
      assert.equal(
        sampleValue(after, 'channel_requests_rejected_total', { reason: 'message_too_large' }) - sampleValue(before, 'channel_requests_rejected_total', { reason: 'message_too_large' }),
        2,
      );
      await c.close();
    });

    it('a subscriber that does not read is closed as a slow reader, counted; the others get every message', async () => {
      const before = await scrape(harness.baseUrl);
      const slow = await connect();
      const fast = await connect();
      await slow.request({ type: 'subscribe', id: 1, channel: 'chat:slow' });
      await fast.request({ type: 'subscribe', id: 1, channel: 'chat:slow' });
      slow.ws.pause();
      const publisher = await connect();
      // Enough to fill the loopback socket buffers first: only then does the server's own backlog grow.
      const N = 800;
      const data = 'y'.repeat(15_000);
      for (let i = 0; i < N; i++) {
        publisher.send({ type: 'publish', id: i, channel: 'chat:slow', data: `${i}:${data}` });
        if (i % 50 === 49) await publisher.waitForReplies(i + 1);
      }
      await eventually(() => (messages(fast, 'chat:slow').length === N ? true : undefined), 10_000, 'every delivery to the reading subscriber');
      assert.deepEqual(
        messages(fast, 'chat:slow').map((m) => Number(String(m.data).split(':')[0])),
        Array.from({ length: N }, (_, i) => i),
      );
      const after = await eventually(async () => {
        const samples = await scrape(harness.baseUrl);
        return sampleValue(samples, 'connections_closed_by_server_total', { reason: 'slow_reader' }) > sampleValue(before, 'connections_closed_by_server_total', { reason: 'slow_reader' })
          ? samples
          : undefined;
      }, 10_000, 'the slow subscriber closed');
      assert.ok(
        sampleValue(after, 'channel_deliveries_dropped_total', { namespace: 'chat', reason: 'slow_subscriber' }) >
          sampleValue(before, 'channel_deliveries_dropped_total', { namespace: 'chat', reason: 'slow_subscriber' }),
        'the delivery that passed its bound is counted as dropped',
      );
      assert.ok(sampleValue(after, 'channel_fanout_duration_seconds_count', { namespace: 'chat' }) >= N);
      slow.ws.terminate();
      await publisher.close();
      await fast.close();
    });
  
    it('a subscriber that reconnects with its last position gets every publication once, in order, while publishes race its subscribe', async () => {
      const publisher = await connect();
      const first = await connect();
      const joined = await first.request({ type: 'subscribe', id: 1, channel: 'chat:recover' });
      const N = 300;
      const sent = (async () => {
        for (let i = 0; i < N; i++) {
          publisher.send({ type: 'publish', id: i, channel: 'chat:recover', data: i });
          if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await eventually(() => (messages(first, 'chat:recover').length >= 40 ? true : undefined), 5000, 'some deliveries');
      first.ws.terminate();
      const before = messages(first, 'chat:recover');
      const last = before[before.length - 1];
      const second = await connect();
      const reply = await second.request({ type: 'subscribe', id: 2, channel: 'chat:recover', since: { epoch: last.epoch, offset: last.offset } });
      assert.equal(reply.type, 'subscribed');
      assert.equal(reply.recovered, true);
      assert.equal(reply.epoch, joined.epoch);
      const replyIndex = second.replies.indexOf(reply);
      assert.equal(second.replies.slice(0, replyIndex).filter((r) => r.type === 'message').length, 0, 'subscribed comes before any replayed message');
      await sent;
      await eventually(() => (before.length + messages(second, 'chat:recover').length >= N ? true : undefined), 10_000, 'the rest');
      await new Promise((r) => setTimeout(r, 50));
      const all = [...before, ...messages(second, 'chat:recover')];
      assert.deepEqual(all.map((m) => m.data), Array.from({ length: N }, (_, i) => i), 'no gap, no duplicate, in order');
      assert.deepEqual(all.map((m) => m.offset), Array.from({ length: N }, (_, i) => i + 1));
      const replayed = Number(reply.replayed);
      assert.ok(replayed >= 0 && replayed <= N - before.length);
      const samples = await scrape(harness.baseUrl);
      assert.ok(sampleValue(samples, 'channel_recoveries_total', { namespace: 'chat', outcome: 'recovered', reason: 'none' }) >= 1);
      assert.ok(sampleValue(samples, 'channel_publications_replayed_total', { namespace: 'chat' }) >= replayed);
      await publisher.close();
      await second.close();
    });

    it('many subscribers recovering from one position at once, while publishes continue: each gets every publication once, in order', async () => {
      const publisher = await connect();
      const first = await connect();
      await first.request({ type: 'subscribe', id: 1, channel: 'chat:herd' });
      publisher.send({ type: 'publish', id: 0, channel: 'chat:herd', data: 0 });
      const [from] = await eventually(() => (messages(first, 'chat:herd').length === 1 ? messages(first, 'chat:herd') : undefined));
      await first.close();
      const N = 200;
      const sent = (async () => {
        for (let i = 1; i <= N; i++) {
          publisher.send({ type: 'publish', id: i, channel: 'chat:herd', data: i });
          if (i % 10 === 0) await new Promise((r) => setTimeout(r, 2));
        }
      })();
      // Twenty come back at staggered moments during the stream: some share a read, some wait for the next.
      const herd = await Promise.all(
        Array.from({ length: 20 }, async (_, k) => {
          await new Promise((r) => setTimeout(r, k * 3));
          const client = await connect();
          const reply = await client.request({ type: 'subscribe', id: 2, channel: 'chat:herd', since: { epoch: from.epoch, offset: from.offset } });
          assert.equal(reply.recovered, true, JSON.stringify(reply));
          return client;
        }),
      );
      await sent;
      for (const client of herd) {
        const got = await eventually(() => (messages(client, 'chat:herd').length >= N ? messages(client, 'chat:herd') : undefined), 10_000, 'every publication');
        await new Promise((r) => setTimeout(r, 20));
        assert.deepEqual(messages(client, 'chat:herd').map((m) => m.data), Array.from({ length: N }, (_, i) => i + 1), 'no gap, no duplicate, in order');
        assert.equal(got[0].offset, Number(from.offset) + 1);
        await client.close();
      }
      await publisher.close();
    });

    it('recovery that cannot be done says so and why; a malformed position is a bad_request; counted', async () => {
      const c = await connect();
      const joined = await c.request({ type: 'subscribe', id: 1, channel: 'chat:norec' });
      await c.request({ type: 'unsubscribe', id: 2, channel: 'chat:norec' });
      const before = await scrape(harness.baseUrl);
      const wrongEpoch = await c.request({ type: 'subscribe', id: 3, channel: 'chat:norec', since: { epoch: 'abcdef', offset: 0 } });
      assert.deepEqual([wrongEpoch.type, wrongEpoch.recovered, wrongEpoch.replayed], ['subscribed', false, 0]);
      await c.request({ type: 'unsubscribe', id: 4, channel: 'chat:norec' });
      const future = await c.request({ type: 'subscribe', id: 5, channel: 'chat:norec', since: { epoch: joined.epoch, offset: 99 } });
      assert.equal(future.recovered, false);
      for (const since of [{ epoch: 'xyz!', offset: 1 }, { epoch: joined.epoch, offset: -1 }, 'x', { epoch: joined.epoch }]) {
        assert.equal((await c.request({ type: 'subscribe', id: 6, channel: 'chat:bad', since })).code, 'bad_request', JSON.stringify(since));
      }
      const after = await scrape(harness.baseUrl);
      const delta = (reason: string): number =>
        sampleValue(after, 'channel_recoveries_total', { namespace: 'chat', outcome: 'not_recovered', reason }) -
        sampleValue(before, 'channel_recoveries_total', { namespace: 'chat', outcome: 'not_recovered', reason });
      assert.equal(delta('epoch_changed'), 1);
      assert.equal(delta('unknown_position'), 1);
      await c.close();
    });

    it('a replay larger than one send batch arrives whole and in order; the subscriber is not taken for a slow reader', async () => {
      const pub = await connect();
      const sub = await connect();
      const joined = await sub.request({ type: 'subscribe', id: 1, channel: 'chat:batch' });
      await sub.request({ type: 'unsubscribe', id: 2, channel: 'chat:batch' });
      // 60 × 2.5 KB: the replay crosses the 64 KiB batch flush twice, under MAX_BUFFERED_BYTES.
      const filler = 'y'.repeat(2500);
      for (let i = 0; i < 60; i++) pub.send({ type: 'publish', id: 10 + i, channel: 'chat:batch', data: `${i}:${filler}` });
      await eventually(() => (pub.replies.filter((r) => r.type === 'published').length >= 60 ? true : undefined));
      const reply = await sub.request({ type: 'subscribe', id: 3, channel: 'chat:batch', since: { epoch: joined.epoch, offset: 0 } });
      assert.deepEqual([reply.recovered, reply.replayed], [true, 60]);
      const got = await eventually(() => (messages(sub, 'chat:batch').length >= 60 ? messages(sub, 'chat:batch') : undefined));
      assert.deepEqual(got.map((m) => Number(String(m.data).split(':')[0])), Array.from({ length: 60 }, (_, i) => i));
      assert.deepEqual(got.map((m) => m.offset), Array.from({ length: 60 }, (_, i) => i + 1));
      assert.equal((await sub.request({ type: 'ping', id: 4 })).type, 'pong', 'still open');
      await pub.close();
      await sub.close();
    });

    it('recovery is traced: the subscribe span names the position, outcome and count; each replay is a CONSUMER span under its original publish', async () => {
      const pub = await connect();
      const sub = await connect();
      const joined = await sub.request({ type: 'subscribe', id: 1, channel: 'chat:replay' });
      await sub.request({ type: 'unsubscribe', id: 2, channel: 'chat:replay' });
      const traceId = '6bf92f3577b34da6a3ce929d0e0e4736';
      pub.send({ type: 'publish', id: 3, channel: 'chat:replay', data: 'missed', traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
      await eventually(() => pub.replies.find((r) => r.id === 3));
      const reply = await sub.request({ type: 'subscribe', id: 4, channel: 'chat:replay', since: { epoch: joined.epoch, offset: 0 } });
      assert.deepEqual([reply.recovered, reply.replayed], [true, 1]);
      const frame = await eventually(() => messages(sub, 'chat:replay')[0]);
      assert.equal(frame.data, 'missed');
      const { producer, replay, subscribe } = await eventually(() => {
        const finished = harness.spans.getFinishedSpans();
        const producer = finished.find((s) => s.kind === SpanKind.PRODUCER && s.spanContext().traceId === traceId);
        const replay = finished.find((s) => s.kind === SpanKind.CONSUMER && s.attributes['ws.channel.replayed'] === true && s.spanContext().traceId === traceId);
        const subscribe = finished.find((s) => s.attributes['ws.recovery.outcome'] !== undefined && s.attributes['ws.recovery.since.epoch'] === joined.epoch);
        return producer && replay && subscribe ? { producer, replay, subscribe } : undefined;
      });
      assert.equal(replay.parentSpanContext?.spanId, producer.spanContext().spanId, 'parent: the original creation context');
      assert.equal(replay.links[0]?.context.spanId, subscribe.spanContext().spanId, 'link: the subscribe that asked for it');
      assert.equal(frame.traceparent, `00-${traceId}-${replay.spanContext().spanId}-01`);
      assert.equal(subscribe.attributes['ws.recovery.since.offset'], 0);
      assert.equal(subscribe.attributes['ws.recovery.outcome'], 'recovered');
      assert.equal(subscribe.attributes['ws.recovery.replayed'], 1);
      await pub.close();
      await sub.close();
    });
  });
}

