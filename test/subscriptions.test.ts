import assert from 'node:assert/strict';
import { test } from 'node:test';
import { trace } from '@opentelemetry/api';
import pino from 'pino';
import type { Broker, BrokerListener, Position, Publication, Recovery } from '../src/channels/broker.js';
import { MemoryBroker } from '../src/channels/memory-broker.js';
import { NamespaceLabels, parseChannel } from '../src/channels/names.js';
import { Subscriptions, type SubscriptionsDeps } from '../src/channels/subscriptions.js';
import type { ChannelInstruments } from '../src/telemetry/instruments.js';
import { UnsampledShortcutTracer } from '../src/telemetry/tracer.js';

/** A broker whose subscribe the test settles by hand, as a networked engine's would settle later. */
function pendingBroker(): { broker: Broker; fail: (err: Error) => void; listeners: () => number } {
  let reject: (err: Error) => void = () => undefined;
  const subscribed = new Set<BrokerListener>();
  const broker: Broker = {
    system: 'test',
    connect: () => Promise.resolve(),
    status: () => ({ up: true }),
    observe: () => undefined,
    subscribe: (_channel, listener) =>
      new Promise<void>((_resolve, rej) => {
        subscribed.add(listener);
        reject = (err) => {
          subscribed.delete(listener);
          rej(err);
        };
      }),
    unsubscribe: (_channel, listener) => {
      subscribed.delete(listener);
      return Promise.resolve();
    },
    publish: () => Promise.resolve({ epoch: 'e', offset: 1 }),
    recover: () => Promise.resolve({ top: { epoch: 'e', offset: 0 }, publications: [] }),
    close: () => Promise.resolve(),
  };
  return { broker, fail: (err) => reject(err), listeners: () => subscribed.size };
}

/** Subscriptions on `broker` with no telemetry: instruments that do nothing, spans never recorded. */
function quietHub(broker: Broker): Subscriptions {
  return new Subscriptions({
    broker,
    instruments: new Proxy({}, { get: () => () => undefined }) as ChannelInstruments,
    logger: pino({ level: 'silent' }),
    labels: new NamespaceLabels([]),
    maxPublishBytes: 1024,
    maxPerConnection: 10,
    tracer: new UnsampledShortcutTracer(trace.getTracer('test'), 'disabled'),
  });
}

test('a subscriber that joins while the broker subscription is pending is refused with the first when the broker fails; nothing is left counted', async () => {
  const { broker, fail, listeners } = pendingBroker();
  const rejected: string[] = [];
  const instruments = { countRejected: (reason: string) => rejected.push(reason) } as unknown as ChannelInstruments;
  const hub = new Subscriptions({
    broker,
    instruments,
    logger: pino({ level: 'silent' }),
    labels: new NamespaceLabels([]),
    maxPublishBytes: 1024,
    maxPerConnection: 10,
    tracer: undefined as unknown as SubscriptionsDeps['tracer'],
  });
  const member = () => ({ isOpen: true, send: () => undefined, deliver: () => undefined, batch: (sends: () => void) => sends() });
  const channel = parseChannel('chat:room-1')!;
  const first = hub.subscribe(member(), channel);
  const second = hub.subscribe(member(), channel);
  assert.equal(hub.subscriptionCount, 2);
  fail(new Error('broker down'));
  const outcomes = await Promise.allSettled([first, second]);
  assert.deepEqual(
    outcomes.map((o) => (o.status === 'rejected' ? (o.reason as { code: string }).code : 'subscribed')),
    ['unavailable', 'unavailable'],
  );
  assert.deepEqual(rejected, ['unavailable', 'unavailable']);
  assert.equal(hub.subscriptionCount, 0);
  assert.equal(hub.channelCount, 0);
  assert.equal(listeners(), 0);
});

test('a publication reaches every local subscriber as one shared Buffer: serialised once per instance, copied for none', async () => {
  const broker = new MemoryBroker({ size: 10, ttlMs: 60_000 });
  const hub = quietHub(broker);
  const channel = parseChannel('chat:room-2')!;
  const received: (string | Buffer)[][] = [];
  for (let i = 0; i < 5; i++) {
    const got: (string | Buffer)[] = [];
    received.push(got);
    (await hub.subscribe({ isOpen: true, send: (payload) => got.push(payload), deliver: (frame) => got.push(frame), batch: (sends) => sends() }, channel)).flush();
  }
  await hub.publish(channel, { text: 'héllo' });
  await new Promise((resolve) => setImmediate(resolve));
  const first = received[0][0];
  assert.ok(Buffer.isBuffer(first));
  for (const got of received) {
    assert.equal(got.length, 1);
    assert.equal(got[0], first, 'the very same Buffer for every subscriber');
  }
  const frame = JSON.parse(first.toString('utf8')) as Record<string, unknown>;
  assert.deepEqual(frame.data, { text: 'héllo' });
  assert.equal(frame.type, 'message');
  await broker.close();
});

test('a subscriber that joins while another\'s recovery read is in flight is not answered by that read: a publication delivered in between reaches it', async () => {
  let listener: BrokerListener = () => undefined;
  const reads: { since?: Position; answer: (r: Recovery) => void }[] = [];
  const broker: Broker = {
    system: 'test',
    connect: () => Promise.resolve(),
    status: () => ({ up: true }),
    observe: () => undefined,
    subscribe: (_channel, l) => {
      listener = l;
      return Promise.resolve();
    },
    unsubscribe: () => Promise.resolve(),
    publish: () => Promise.reject(new Error('not used')),
    recover: (_channel, since) => new Promise<Recovery>((resolve) => reads.push({ since, answer: resolve })),
    close: () => Promise.resolve(),
  };
  const hub = quietHub(broker);
  const channel = parseChannel('chat:race')!;
  const publication = (offset: number): Publication => ({ epoch: 'e', offset, json: String(offset), traceparent: undefined, tracestate: undefined, publishedAt: Date.now() });
  const offsets = (got: (string | Buffer)[]): number[] => got.map((p) => (JSON.parse(p.toString()) as { offset: number }).offset);
  const since = { epoch: 'e', offset: 3 };
  const a: (string | Buffer)[] = [];
  const b: (string | Buffer)[] = [];
  const subscriber = (got: (string | Buffer)[]) => ({ isOpen: true, send: (p: string | Buffer) => got.push(p), deliver: (p: Buffer) => got.push(p), batch: (sends: () => void) => sends() });

  const first = hub.subscribe(subscriber(a), channel, since);
  await new Promise((r) => setImmediate(r));
  assert.equal(reads.length, 1);
  // Redis ran the first read (top 5), then offset 6 was published and reached this instance live.
  listener(publication(6));
  const second = hub.subscribe(subscriber(b), channel, since);
  await new Promise((r) => setImmediate(r));
  reads[0].answer({ top: { epoch: 'e', offset: 5 }, publications: [publication(4), publication(5)], recovered: true });
  (await first).flush();
  await new Promise((r) => setImmediate(r));
  assert.equal(reads.length, 2, 'the second subscriber got a read of its own, made after it joined');
  reads[1].answer({ top: { epoch: 'e', offset: 6 }, publications: [publication(4), publication(5), publication(6)], recovered: true });
  (await second).flush();
  assert.deepEqual(offsets(a), [4, 5, 6]);
  assert.deepEqual(offsets(b), [4, 5, 6]);
});
