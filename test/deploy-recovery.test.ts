/**
 * The proof that a blue-green deploy loses nothing: three instances on one test-owned
 * redis-server, a publisher sending numbered messages at a steady rate through one, subscribers
 * on the instance being deployed over, SIGTERM to that instance, and every subscriber running the
 * example client's reconnect-and-recover loop onto another. Then the same with Redis restarted
 * (no persistence) before the deploy: recovery must say it cannot, never hand out a wrong sequence.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Client, eventually, killChildren, sampleValue, scrape, startChild, withTimeout, type RunningService } from './helpers.js';
import { RedisServer } from './redis-server.js';
import { repoPath } from './stack-helpers.js';

type Event = Record<string, unknown> & { event: string };
interface Subscriber {
  start(): Promise<Record<string, unknown>>;
  stop(): void;
}
type SubscriberClass = new (urls: string[], channel: string, onEvent: (event: Event) => void) => Subscriber;

const { RecoveringSubscriber } = (await import(pathToFileURL(repoPath('examples/recovering-client.mjs')).href)) as { RecoveringSubscriber: SubscriberClass };

const ENV = {
  SHUTDOWN_DRAIN_DELAY_MS: '300',
  SHUTDOWN_TIMEOUT_MS: '5000',
  SHUTDOWN_CLOSE_WINDOW_MS: '200',
  CHANNEL_NAMESPACES: 'deploy',
  REDIS_COMMAND_TIMEOUT_MS: '1000',
};

after(async () => {
  await killChildren();
  await RedisServer.stopAll();
});

interface Accepted {
  readonly seq: number;
  readonly epoch: string;
  readonly offset: number;
}

/** Publishes seq 1, 2, … every `intervalMs` until stopped; a refused publish is retried, so every seq is accepted once. */
function steadyPublisher(client: Client, channel: string, intervalMs: number): { stop: () => Promise<Accepted[]>; count: () => number } {
  const accepted: Accepted[] = [];
  let stopped = false;
  let id = 0;
  const run = (async () => {
    for (let seq = 1; !stopped; ) {
      const myId = ++id;
      client.send({ type: 'publish', id: myId, channel, data: { seq } });
      const reply = await eventually(() => client.replies.find((r) => r.id === myId), 5000, `reply to publish ${myId}`);
      if (reply.type === 'published') {
        accepted.push({ seq, epoch: String(reply.epoch), offset: Number(reply.offset) });
        seq++;
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    count: () => accepted.length,
    async stop() {
      stopped = true;
      await run;
      return accepted;
    },
  };
}

async function fleet(redis: RedisServer, count: number): Promise<RunningService[]> {
  return Promise.all(Array.from({ length: count }, () => startChild({ ...ENV, REDIS_URL: redis.url })));
}

describe('a deploy loses nothing', () => {
  it('subscribers on the instance deployed over reconnect with their position: every message once, in order', async () => {
    const redis = await RedisServer.start();
    const [a, b, c] = await fleet(redis, 3);
    const SUBSCRIBERS = 10;
    const events: Event[][] = Array.from({ length: SUBSCRIBERS }, () => []);
    const subs = events.map((log) => new RecoveringSubscriber([c.wsUrl, b.wsUrl], 'deploy:feed', (e) => log.push(e)));
    await Promise.all(subs.map((s) => s.start()));
    const publisherClient = await Client.connect(a.wsUrl);
    const publisher = steadyPublisher(publisherClient, 'deploy:feed', 5);
    await eventually(() => (publisher.count() >= 100 ? true : undefined), 10_000, '100 publications before the deploy');

    const deployAt = Date.now();
    c.child.kill('SIGTERM');
    assert.equal((await withTimeout(c.exited, 10_000, 'C to exit')).code, 0);
    await eventually(() => (events.every((log) => log.some((e) => e.event === 'subscribed' && e.url === b.wsUrl)) ? true : undefined), 10_000, 'all resubscribed on B');
    const recoveredIn = Date.now() - deployAt;
    await eventually(() => (publisher.count() >= 300 ? true : undefined), 20_000, '300 publications');
    const accepted = await publisher.stop();
    await eventually(() => (events.every((log) => log.filter((e) => e.event === 'message').length >= accepted.length) ? true : undefined), 10_000, 'every delivery');
    await new Promise((r) => setTimeout(r, 100));

    const expected = accepted.map((p) => p.seq);
    let deliveries = 0;
    for (const log of events) {
      const seqs = log.filter((e) => e.event === 'message').map((e) => (e.data as { seq: number }).seq);
      deliveries += seqs.length;
      assert.deepEqual(seqs, expected, 'exactly the published sequence: no gap, no duplicate, in order');
      const resubscribed = log.filter((e) => e.event === 'subscribed' && e.url === b.wsUrl);
      assert.equal(resubscribed.length, 1);
      assert.equal(resubscribed[0].recovered, true);
      assert.ok(log.some((e) => e.event === 'closed' && e.code === 1001), 'closed by the deploy with 1001');
    }
    const samples = await scrape(b.baseUrl);
    assert.equal(sampleValue(samples, 'channel_recoveries_total', { namespace: 'deploy', outcome: 'recovered', reason: 'none' }), SUBSCRIBERS);
    const replayed = sampleValue(samples, 'channel_publications_replayed_total', { namespace: 'deploy' });
    console.log(
      `deploy: ${accepted.length} publications, ${SUBSCRIBERS} subscribers, ${deliveries} deliveries, 0 gaps, 0 duplicates; ` +
        `all resubscribed and recovered ${recoveredIn} ms after SIGTERM (drain ${ENV.SHUTDOWN_DRAIN_DELAY_MS} ms included), ${replayed} publications replayed`,
    );
    for (const s of subs) s.stop();
    await publisherClient.close();
    for (const svc of [a, b]) svc.child.kill('SIGTERM');
    await Promise.all([a.exited, b.exited]);
    await redis.stop();
  });

  it('Redis restarted without persistence before the deploy: recovery says it cannot (epoch changed), and what follows is exactly the new sequence', async () => {
    const redis = await RedisServer.start();
    const [a, b, c] = await fleet(redis, 3);
    const SUBSCRIBERS = 5;
    const events: Event[][] = Array.from({ length: SUBSCRIBERS }, () => []);
    const subs = events.map((log) => new RecoveringSubscriber([c.wsUrl, b.wsUrl], 'deploy:restart', (e) => log.push(e)));
    await Promise.all(subs.map((s) => s.start()));
    const publisherClient = await Client.connect(a.wsUrl);
    const publisher = steadyPublisher(publisherClient, 'deploy:restart', 5);
    await eventually(() => (publisher.count() >= 50 ? true : undefined), 10_000, '50 publications');
    await redis.kill9();
    const beforeRestart = publisher.count();
    c.child.kill('SIGTERM');
    await withTimeout(c.exited, 10_000, 'C to exit');
    await redis.restart();
    await eventually(() => (events.every((log) => log.some((e) => e.event === 'subscribed' && e.url === b.wsUrl)) ? true : undefined), 15_000, 'all resubscribed on B');
    await eventually(() => (publisher.count() >= beforeRestart + 100 ? true : undefined), 20_000, '100 publications after the restart');
    const accepted = await publisher.stop();
    const oldEpoch = accepted[0].epoch;
    const newEpoch = accepted[accepted.length - 1].epoch;
    assert.notEqual(newEpoch, oldEpoch, 'history lost: a new epoch');
    assert.equal(accepted.find((p) => p.epoch === newEpoch)?.offset, 1, 'offsets start again in the new epoch');
    await new Promise((r) => setTimeout(r, 300));

    for (const log of events) {
      const resub = log.find((e) => e.event === 'subscribed' && e.url === b.wsUrl);
      assert.ok(resub);
      assert.equal(resub.recovered, false, 'a position in a lost epoch cannot be recovered');
      assert.equal(resub.epoch, newEpoch);
      const at = log.indexOf(resub);
      const before = log.slice(0, at).filter((e) => e.event === 'message');
      const afterResub = log.slice(at).filter((e) => e.event === 'message');
      // Before: a prefix of the old epoch's sequence. After: exactly the new epoch's
      // publications past the position `subscribed` gave, in order. Nothing else, nothing twice.
      assert.deepEqual(before.map((e) => (e.data as { seq: number }).seq), accepted.slice(0, before.length).map((p) => p.seq));
      assert.ok(before.every((e) => e.epoch === oldEpoch));
      const expectedAfter = accepted.filter((p) => p.epoch === newEpoch && p.offset > Number(resub.offset));
      assert.deepEqual(afterResub.map((e) => [e.epoch, e.offset, (e.data as { seq: number }).seq]), expectedAfter.map((p) => [p.epoch, p.offset, p.seq]));
    }
    const samples = await scrape(b.baseUrl);
    assert.equal(sampleValue(samples, 'channel_recoveries_total', { namespace: 'deploy', outcome: 'not_recovered', reason: 'epoch_changed' }), SUBSCRIBERS);
    console.log(`redis restart: epoch ${oldEpoch} → ${newEpoch}; ${SUBSCRIBERS} subscribers told recovered:false (epoch_changed); ${accepted.length} publications accepted in all`);
    for (const s of subs) s.stop();
    await publisherClient.close();
    for (const svc of [a, b]) svc.child.kill('SIGTERM');
    await Promise.all([a.exited, b.exited]);
    await redis.stop();
  });
});
