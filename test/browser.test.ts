import assert from 'node:assert/strict';
import { after, afterEach, test } from 'node:test';
import { bearerOffer } from '../src/ws/subprotocol.js';
import { eventually, killChildren, sampleValue, scrape, startChild, withTimeout, type RunningService } from './helpers.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './otlp-receiver.js';
import { closeBrowser, ExamplePage, serveExample, type Site } from './browser-page.js';

// A real browser (Debian's chromium, headless) on the example page, served by the dev script,
// against main.js on loopback: what a browser sends and accepts is what is tested, not what
// the ws client library does.

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_PRODUCER = 4;
const SPAN_KIND_CONSUMER = 5;

const TOKEN = 'browser-token/0123456789+abc=';

/** Export quickly, so the spans of a short test arrive without waiting for the SDK's defaults. */
const FAST_EXPORT = {
  OTEL_BSP_SCHEDULE_DELAY: '100',
  OTEL_BLRP_SCHEDULE_DELAY: '100',
  SHUTDOWN_DRAIN_DELAY_MS: '0',
  SHUTDOWN_TIMEOUT_MS: '5000',
};

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await killChildren();
});
after(() => closeBrowser());

async function receiver(): Promise<OtlpReceiver> {
  const r = await startOtlpReceiver();
  cleanups.push(() => r.close());
  return r;
}

async function site(): Promise<Site> {
  const s = await serveExample();
  cleanups.push(() => s.stop());
  return s;
}

async function page(at: Site): Promise<ExamplePage> {
  const p = await ExamplePage.open(at);
  cleanups.push(() => p.close());
  return p;
}

async function service(otlp: OtlpReceiver, env: Record<string, string> = {}): Promise<RunningService> {
  return startChild({ ...FAST_EXPORT, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, ...env });
}

function oneSpan(spans: ReceivedSpan[], name: string, traceId: string): ReceivedSpan | undefined {
  const found = spans.filter((s) => s.name === name && s.traceId === traceId);
  return found.length === 1 ? found[0] : undefined;
}

test('the page connects, subscribes, publishes and sees its own delivery, in the trace it started', async () => {
  const otlp = await receiver();
  const svc = await service(otlp);
  const browserPage = await page(await site());

  assert.deepEqual(await browserPage.connect(svc.wsUrl), { state: 'open', text: 'connected (ws-service.v1)' });
  assert.equal((await browserPage.ping()).reply, 'pong');
  assert.equal((await browserPage.subscribe('chat:browser')).reply, 'subscribed');
  const published = await browserPage.publish('hello from chromium');
  assert.equal(published.reply, 'published', published.replyText);
  assert.match(published.traceId, /^[0-9a-f]{32}$/);

  const delivery = await browserPage.delivery(published.traceId);
  assert.deepEqual(delivery, { channel: 'chat:browser', data: '"hello from chromium"', traceId: published.traceId, mine: true });

  // The server's spans for the publish are in the trace the page started, under its span id.
  const spans = await eventually(() => {
    const publish = oneSpan(otlp.spans, 'ws.message publish', published.traceId);
    const send = oneSpan(otlp.spans, 'send chat', published.traceId);
    const process = oneSpan(otlp.spans, 'process chat', published.traceId);
    return publish && send && process ? { publish, send, process } : undefined;
  }, 15_000, 'the publish, send and process spans');
  assert.equal(spans.publish.kind, SPAN_KIND_SERVER);
  assert.equal(spans.publish.parentSpanId, published.spanId, 'the page\'s traceparent is the parent');
  assert.equal(spans.send.kind, SPAN_KIND_PRODUCER);
  assert.equal(spans.send.parentSpanId, spans.publish.spanId);
  assert.equal(spans.process.kind, SPAN_KIND_CONSUMER);
  assert.equal(spans.process.parentSpanId, spans.send.spanId);
  assert.equal(spans.process.attributes['messaging.destination.name'], 'chat:browser');

  // The handshake came from the browser itself.
  const handshake = otlp.spans.find((s) => s.name === 'GET /ws');
  assert.match(String(handshake?.attributes['user_agent.original']), /HeadlessChrome\//);
  assert.deepEqual(browserPage.errors, []);
});

test('with AUTH_TOKEN and ALLOWED_ORIGINS: the page connects with the subprotocol token; a wrong token is 401, another origin 403', async () => {
  const otlp = await receiver();
  const home = await site();
  const elsewhere = await site();
  const svc = await service(otlp, { AUTH_TOKEN: TOKEN, ALLOWED_ORIGINS: home.origin, LOG_LEVEL: 'debug' });
  const refusals = async (): Promise<Record<string, number>> => {
    const samples = await scrape(svc.baseUrl);
    return Object.fromEntries(
      ['unauthorized', 'forbidden_origin'].map((reason) => [reason, sampleValue(samples, 'rejected_upgrades_total', { reason })]),
    );
  };
  assert.deepEqual(await refusals(), { unauthorized: 0, forbidden_origin: 0 });

  // One page, as a user would retry: the right token, then a wrong one, then none.
  const user = await page(home);
  assert.deepEqual(await user.connect(svc.wsUrl, TOKEN), { state: 'open', text: 'connected (ws-service.v1)' });
  assert.equal((await user.ping()).reply, 'pong');
  assert.deepEqual(await user.disconnect(), { state: 'closed', text: 'closed (1000)' });
  assert.equal((await user.connect(svc.wsUrl, `${TOKEN.slice(0, -2)}x=`)).state, 'closed');
  assert.equal((await user.connect(svc.wsUrl)).state, 'closed');
  assert.deepEqual(await refusals(), { unauthorized: 2, forbidden_origin: 0 });
  assert.deepEqual(user.errors, []);

  // The right token from a page of another origin: the origin check refuses it.
  const foreign = await page(elsewhere);
  assert.equal((await foreign.connect(svc.wsUrl, TOKEN)).state, 'closed');
  assert.deepEqual(await refusals(), { unauthorized: 2, forbidden_origin: 1 });
  const refused = svc.lines.filter((l) => l.message === 'WebSocket upgrade refused');
  assert.deepEqual(refused.map((l) => [l.reason, l.status]), [['unauthorized', 401], ['unauthorized', 401], ['forbidden_origin', 403]]);

  // What chromium sent, the token among it, reached no log line or span.
  svc.child.kill('SIGTERM');
  assert.equal((await withTimeout(svc.exited, 15_000, 'exit')).code, 0);
  assert.ok(otlp.spans.filter((s) => s.name === 'GET /ws').length >= 4, 'the handshakes were exported');
  const bigints = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? value.toString() : value);
  const places = { stdout: JSON.stringify(svc.lines), spans: JSON.stringify(otlp.spans, bigints), logs: JSON.stringify(otlp.logs, bigints) };
  for (const [place, text] of Object.entries(places)) {
    for (const secret of [TOKEN, bearerOffer(TOKEN), Buffer.from(TOKEN).toString('base64url')]) {
      assert.ok(!text.includes(secret), `${place} holds ${secret}`);
    }
  }
});
