/** The Redis engine against a real redis-server: the shared behaviour, then what only Redis has. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BrokerErrorKind, BrokerStatus, Envelope, Publication } from '../src/channels/broker.js';
import { BrokerUnavailableError } from '../src/channels/broker.js';
import { RedisBroker } from '../src/channels/redis-broker.js';
import { brokerSuite } from './broker-suite.js';
import { eventually } from './helpers.js';
import { RedisServer } from './redis-server.js';
import { freePort } from './stack-helpers.js';

let redis: RedisServer;
const brokers: RedisBroker[] = [];

async function connected(url = redis.url): Promise<RedisBroker> {
  const broker = new RedisBroker({ url, prefix: 'test:', commandTimeoutMs: 1000, maxReconnectDelayMs: 200, history: { size: 5, ttlMs: 60_000 } });
  brokers.push(broker);
  await broker.connect();
  return broker;
}

before(async () => {
  redis = await RedisServer.start();
});
after(async () => {
  await Promise.all(brokers.map((b) => b.close()));
  await redis.stop();
});

brokerSuite('redis', () => connected(), { historySize: 5 });

describe('redis engine', () => {
  const envelope: Envelope = { json: '"x"', publishedAt: Date.now() };

  it('is subscribed on Redis to a channel only while it has a listener', async () => {
    const broker = await connected();
    const a = (): void => undefined;
    const b = (): void => undefined;
    await broker.subscribe('t:only', a);
    await broker.subscribe('t:only', b);
    assert.equal(await redis.numsub('test:t:only'), 1, 'one Redis subscription per instance and channel');
    await broker.unsubscribe('t:only', a);
    assert.equal(await redis.numsub('test:t:only'), 1);
    await broker.unsubscribe('t:only', b);
    assert.equal(await redis.numsub('test:t:only'), 0);
    assert.equal(broker.channelCount, 0);
  });

  it('ignores and counts a message on its channel that it did not write', async () => {
    const broker = await connected();
    const errors: BrokerErrorKind[] = [];
    broker.observe({ error: (kind) => void errors.push(kind), changed: () => undefined, trimmed: () => undefined });
    const got: Publication[] = [];
    await broker.subscribe('t:foreign', (e) => got.push(e));
    await redis.command('PUBLISH', 'test:t:foreign', 'hello from redis-cli');
    await broker.publish('t:foreign', envelope);
    await eventually(() => (got.length === 1 ? true : undefined), 2000, 'the envelope');
    assert.deepEqual(errors, ['bad_envelope']);
    assert.equal(got[0].json, envelope.json);
    assert.equal(got[0].offset, 1);
  });

  it('unreachable: connect keeps trying, status says why, publish and subscribe refuse at once', async () => {
    const port = await freePort();
    const offline = new RedisBroker({ url: `redis://127.0.0.1:${port}`, prefix: 'test:', commandTimeoutMs: 500, maxReconnectDelayMs: 100, history: { size: 5, ttlMs: 60_000 } });
    brokers.push(offline);
    const errors: BrokerErrorKind[] = [];
    const changes: BrokerStatus[] = [];
    offline.observe({ error: (kind) => void errors.push(kind), changed: (s) => void changes.push(s), trimmed: () => undefined });
    void offline.connect();
    await eventually(() => (errors.includes('connection_lost') ? true : undefined), 3000, 'the failure reported');
    assert.equal(offline.status().up, false);
    assert.match(String(offline.status().detail), /ECONNREFUSED/);
    const started = Date.now();
    await assert.rejects(offline.publish('t:x', envelope), BrokerUnavailableError);
    await assert.rejects(offline.subscribe('t:x', () => undefined), BrokerUnavailableError);
    assert.ok(Date.now() - started < 400, 'refused without waiting for a timeout');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(errors.filter((k) => k === 'connection_lost').length, 1, 'one outage counted once, however many retries');
    assert.deepEqual(changes, [], 'never up, so no change');
  });
});
