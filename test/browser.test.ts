import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bearerOffer } from '../src/ws/subprotocol.js';
import { eventually, killChildren, sampleValue, scrape, startChild, withTimeout, type RunningService } from './helpers.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './otlp-receiver.js';
import { closeBrowser, ExamplePage, serveExample, type Sent, type Site } from './browser-page.js';
import { RedisServer } from './redis-server.js';

// A real browser (Debian's chromium, headless) on the example page, served by the dev script,
// against two main.js processes on one test-owned redis-server: what a browser sends and
// accepts is what is tested, not what the ws client library does. One browser, one Redis and
// one pair of instances for the file; each page gets a browser context of its own.

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_PRODUCER = 4;
const SPAN_KIND_CONSUMER = 5;

const TOKEN = 'browser-token/0123456789+abc=';
const CHANNEL = 'chat:browser';

/** Export quickly, so the spans of a short test arrive without waiting for the SDK's defaults. */
const FAST_EXPORT = {
  OTEL_BSP_SCHEDULE_DELAY: '100',
  OTEL_BLRP_SCHEDULE_DELAY: '100',
  OTEL_METRIC_EXPORT_INTERVAL: '60000',
  SHUTDOWN_DRAIN_DELAY_MS: '0',
  SHUTDOWN_TIMEOUT_MS: '5000',
};

describe('pages on two instances on one Redis, with AUTH_TOKEN and ALLOWED_ORIGINS', () => {
  let redis: RedisServer;
  let otlp: OtlpReceiver;
  /** The origin ALLOWED_ORIGINS lists, and one it does not (another port: another origin). */
  let home: Site;
  let elsewhere: Site;
  let a: RunningService;
  let b: RunningService;
  const pages: ExamplePage[] = [];

  async function page(at: Site): Promise<ExamplePage> {
    const p = await ExamplePage.open(at);
    pages.push(p);
    return p;
  }

  before(async () => {
    // One at a time, so that after() stops whatever started if one of them fails.
    redis = await RedisServer.start();
    otlp = await startOtlpReceiver();
    home = await serveExample();
    elsewhere = await serveExample();
    const env = {
      ...FAST_EXPORT,
      REDIS_URL: redis.url,
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      AUTH_TOKEN: TOKEN,
      ALLOWED_ORIGINS: home.origin,
      LOG_LEVEL: 'debug',
    };
    [a, b] = await Promise.all([startChild({ ...env, OTEL_SERVICE_NAME: 'ws-a' }), startChild({ ...env, OTEL_SERVICE_NAME: 'ws-b' })]);
  });

  after(async () => {
    for (const p of pages.splice(0)) await p.close().catch(() => undefined);
    await closeBrowser();
    await killChildren();
    await Promise.all([otlp?.close(), home?.stop(), elsewhere?.stop()]);
    await RedisServer.stopAll();
  });

  /** The one span of this name in this trace exported by this instance. */
  function spanOf(name: string, traceId: string, service: string): ReceivedSpan | undefined {
    const found = otlp.spans.filter((s) => s.name === name && s.traceId === traceId && s.resource['service.name'] === service);
    return found.length === 1 ? found[0] : undefined;
  }

  /**
   * The spans of one publish made by a page on `from`: the server span in the page's trace under
   * the page's span id, the PRODUCER under it on `from`, and a CONSUMER on each instance whose
   * parent is that PRODUCER span.
   */
  async function publishTrace(published: Sent, from: string, to: string): Promise<{ consumerThere: ReceivedSpan; consumerHere: ReceivedSpan }> {
    const spans = await eventually(() => {
      const publish = spanOf('ws.message publish', published.traceId, from);
      const producer = spanOf('send chat', published.traceId, from);
      const consumerHere = spanOf('process chat', published.traceId, from);
      const consumerThere = spanOf('process chat', published.traceId, to);
      return publish && producer && consumerHere && consumerThere ? { publish, producer, consumerHere, consumerThere } : undefined;
    }, 15_000, `the spans of the publish on ${from} in the page's trace ${published.traceId}`);
    assert.equal(spans.publish.kind, SPAN_KIND_SERVER);
    assert.equal(spans.publish.parentSpanId, published.spanId, "the page's traceparent is the parent");
    assert.equal(spans.producer.kind, SPAN_KIND_PRODUCER);
    assert.equal(spans.producer.parentSpanId, spans.publish.spanId);
    assert.equal(spans.producer.attributes['messaging.destination.name'], CHANNEL);
    for (const consumer of [spans.consumerHere, spans.consumerThere]) {
      assert.equal(consumer.kind, SPAN_KIND_CONSUMER);
      assert.equal(consumer.parentSpanId, spans.producer.spanId, `the delivery on ${String(consumer.resource['service.name'])} is a child of the PRODUCER on ${from}`);
      assert.equal(consumer.attributes['messaging.destination.name'], CHANNEL);
    }
    return spans;
  }

  it('two pages, each on its own instance, exchange messages both ways; each publish is one trace from the page to the other instance', async () => {
    const onA = await page(home);
    const onB = await page(home);
    for (const [p, svc] of [[onA, a], [onB, b]] as const) {
      assert.deepEqual(await p.connect(svc.wsUrl, TOKEN), { state: 'open', text: 'connected (ws-service.v1)' });
      assert.equal((await p.ping()).reply, 'pong');
    }
    const subscribed = [await onA.subscribe(CHANNEL), await onB.subscribe(CHANNEL)];
    for (const s of subscribed) assert.equal(s.reply, 'subscribed', s.replyText);
    assert.match(subscribed[0].epoch, /^[0-9a-f]+$/);
    assert.equal(subscribed[1].epoch, subscribed[0].epoch, 'one channel position on both instances');

    // A → B.
    const fromA = await onA.publish('hello from A');
    assert.equal(fromA.reply, 'published', fromA.replyText);
    assert.match(fromA.traceId, /^[0-9a-f]{32}$/);
    assert.equal(fromA.epoch, subscribed[0].epoch);
    const aOnB = await onB.delivery(fromA.traceId);
    const aOnA = await onA.delivery(fromA.traceId);
    const positionA = { epoch: fromA.epoch, offset: fromA.offset };
    assert.deepEqual({ ...aOnB, spanId: '' }, { channel: CHANNEL, data: '"hello from A"', ...positionA, traceId: fromA.traceId, spanId: '', mine: false });
    assert.deepEqual({ ...aOnA, spanId: '' }, { ...aOnB, spanId: '', mine: true }, 'the same publication, at the same position, on both instances');

    // B → A.
    const fromB = await onB.publish('hello from B');
    assert.equal(fromB.reply, 'published', fromB.replyText);
    assert.deepEqual([fromB.epoch, Number(fromB.offset)], [fromA.epoch, Number(fromA.offset) + 1], 'the next offset of the channel, whichever instance published');
    const bOnA = await onA.delivery(fromB.traceId);
    assert.deepEqual({ ...bOnA, spanId: '' }, { channel: CHANNEL, data: '"hello from B"', epoch: fromB.epoch, offset: fromB.offset, traceId: fromB.traceId, spanId: '', mine: false });
    assert.equal((await onB.delivery(fromB.traceId)).mine, true);

    // Each page shows each publication once, in offset order.
    for (const p of [onA, onB]) {
      const shown = await p.deliveries();
      assert.deepEqual(shown.map((d) => [d.data, d.epoch, d.offset]), [['"hello from A"', fromA.epoch, fromA.offset], ['"hello from B"', fromB.epoch, fromB.offset]]);
    }

    // The trace each page started runs through the other instance: the PRODUCER span on the
    // publishing instance, the CONSUMER span on the other parented on it, and the delivery's
    // traceparent, as the receiving page shows it, names that CONSUMER span.
    const ab = await publishTrace(fromA, 'ws-a', 'ws-b');
    assert.equal(aOnB.spanId, ab.consumerThere.spanId);
    assert.equal(aOnA.spanId, ab.consumerHere.spanId);
    const ba = await publishTrace(fromB, 'ws-b', 'ws-a');
    assert.equal(bOnA.spanId, ba.consumerThere.spanId);

    // The handshakes came from the browser itself.
    for (const service of ['ws-a', 'ws-b']) {
      const handshake = otlp.spans.find((s) => s.name === 'GET /ws' && s.resource['service.name'] === service);
      assert.match(String(handshake?.attributes['user_agent.original']), /HeadlessChrome\//, service);
    }
    assert.deepEqual([onA.errors, onB.errors], [[], []]);
  });

  it('a wrong or missing token is refused with 401, a page of an unlisted origin with 403, each counted and logged', async () => {
    const refusals = async (): Promise<Record<string, number>> => {
      const samples = await scrape(a.baseUrl);
      return Object.fromEntries(
        ['unauthorized', 'forbidden_origin'].map((reason) => [reason, sampleValue(samples, 'rejected_upgrades_total', { reason })]),
      );
    };
    const before = await refusals();
    const linesBefore = a.lines.length;

    // One page, as a user would retry: the right token, then a wrong one, then none.
    const user = await page(home);
    assert.deepEqual(await user.connect(a.wsUrl, TOKEN), { state: 'open', text: 'connected (ws-service.v1)' });
    assert.equal((await user.ping()).reply, 'pong');
    assert.deepEqual(await user.disconnect(), { state: 'closed', text: 'closed (1000)' });
    assert.equal((await user.connect(a.wsUrl, `${TOKEN.slice(0, -2)}x=`)).state, 'closed');
    assert.equal((await user.connect(a.wsUrl)).state, 'closed');
    assert.deepEqual(await refusals(), { unauthorized: before.unauthorized + 2, forbidden_origin: before.forbidden_origin });
    assert.deepEqual(user.errors, []);

    // The right token from a page of another origin: the origin check refuses it.
    const foreign = await page(elsewhere);
    assert.equal((await foreign.connect(a.wsUrl, TOKEN)).state, 'closed');
    assert.deepEqual(await refusals(), { unauthorized: before.unauthorized + 2, forbidden_origin: before.forbidden_origin + 1 });
    const refused = a.lines.slice(linesBefore).filter((l) => l.message === 'WebSocket upgrade refused');
    assert.deepEqual(refused.map((l) => [l.reason, l.status]), [['unauthorized', 401], ['unauthorized', 401], ['forbidden_origin', 403]]);
  });

  // Last: it stops both instances, so that every span and log line is exported.
  it('the token chromium sent on every upgrade reaches no log line or span, on either instance', async () => {
    for (const svc of [a, b]) svc.child.kill('SIGTERM');
    for (const svc of [a, b]) assert.equal((await withTimeout(svc.exited, 15_000, 'exit')).code, 0);
    assert.ok(otlp.spans.filter((s) => s.name === 'GET /ws').length >= 6, 'the handshakes were exported');
    const bigints = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? value.toString() : value);
    const places = {
      stdout: JSON.stringify([...a.lines, ...b.lines]),
      spans: JSON.stringify(otlp.spans, bigints),
      logs: JSON.stringify(otlp.logs, bigints),
    };
    assert.ok(otlp.logs.length > 0, 'the log lines were exported');
    for (const [place, text] of Object.entries(places)) {
      for (const secret of [TOKEN, bearerOffer(TOKEN), Buffer.from(TOKEN).toString('base64url')]) {
        assert.ok(!text.includes(secret), `${place} holds ${secret}`);
      }
    }
  });
});
