import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { BEARER_PREFIX, bearerOffer, PROTOCOL } from '../src/ws/subprotocol.js';
import { Client, eventually, killChildren, sampleValue, scrape, startChild, startHarness, withTimeout, type Harness } from './helpers.js';
import { startOtlpReceiver } from './otlp-receiver.js';
import { attemptUpgrade, isOpened, type Refused } from './upgrade-attempt.js';

// The browser's way to present AUTH_TOKEN: a subprotocol offer (browsers cannot set
// Authorization on an upgrade), beside the header services use. Real sockets, the ws client
// (which, like a browser, fails a 101 naming a protocol it did not offer).

// `/`, `+` and `=` are allowed in AUTH_TOKEN and are not token characters in an offer: only
// the base64url form can carry them.
const TOKEN = 'subproto/token+0123456789==';
const WRONG = 'subproto/token+0123456789a=';

let harness: Harness;
before(async () => {
  harness = await startHarness({ env: { AUTH_TOKEN: TOKEN, LOG_LEVEL: 'info' } });
});
after(() => harness.stop());

async function rejected(reason: string): Promise<number> {
  return sampleValue(await scrape(harness.baseUrl), 'rejected_upgrades_total', { reason });
}

test('the token offer is base64url, unpadded, made only of RFC 6455 token characters', () => {
  assert.equal(bearerOffer(TOKEN), `${BEARER_PREFIX}${Buffer.from(TOKEN).toString('base64url')}`);
  assert.match(bearerOffer(TOKEN), /^[A-Za-z0-9._-]+$/);
});

test('a browser-style offer is admitted; the server selects ws-service.v1, never the token entry, in either order', async () => {
  for (const protocols of [[PROTOCOL, bearerOffer(TOKEN)], [bearerOffer(TOKEN), PROTOCOL]]) {
    const result = await attemptUpgrade(harness.wsUrl, protocols);
    assert.ok(isOpened(result), `opened with ${protocols.join(', ')}: ${JSON.stringify(result)}`);
    assert.equal(result.protocol, PROTOCOL);
    assert.equal(result.protocolHeader, PROTOCOL, 'the 101 names only the real subprotocol');
  }
});

test('a missing or wrong token on the subprotocol path is 401, counted as unauthorized; every token presented must match', async () => {
  const before = await rejected('unauthorized');
  const cases: [string, string[], Record<string, string>, string][] = [
    ['no token offer', [PROTOCOL], {}, 'missing bearer token'],
    ['wrong token offer', [PROTOCOL, bearerOffer(WRONG)], {}, 'invalid bearer token'],
    ['the raw token after the prefix', [PROTOCOL, `${BEARER_PREFIX}${TOKEN.replace(/[/=+]/g, '')}`], {}, 'invalid bearer token'],
    ['right header, wrong offer', [PROTOCOL, bearerOffer(WRONG)], { Authorization: `Bearer ${TOKEN}` }, 'invalid bearer token'],
    ['wrong header, right offer', [PROTOCOL, bearerOffer(TOKEN)], { Authorization: `Bearer ${WRONG}` }, 'invalid bearer token'],
  ];
  for (const [what, protocols, headers, message] of cases) {
    const result = (await attemptUpgrade(harness.wsUrl, protocols, headers)) as Refused;
    assert.equal(result.status, 401, what);
    assert.equal(result.headers['www-authenticate'], 'Bearer realm="ws-service"', what);
    assert.deepEqual(result.body, { error: 'unauthorized', message }, what);
  }
  assert.equal(await rejected('unauthorized'), before + cases.length);
  const both = await attemptUpgrade(harness.wsUrl, [PROTOCOL, bearerOffer(TOKEN)], { Authorization: `Bearer ${TOKEN}` });
  assert.equal(both.status, 101, 'both paths carrying the right token');
});

test('the header path is unchanged: no offer, no protocol in the 101', async () => {
  const result = await attemptUpgrade(harness.wsUrl, [], { Authorization: `Bearer ${TOKEN}` });
  assert.ok(isOpened(result));
  assert.equal(result.protocol, '');
  assert.equal(result.protocolHeader, undefined);
});

test('offering subprotocols but not ws-service.v1 is 400 unsupported_subprotocol, after the token check', async () => {
  const auth = { Authorization: `Bearer ${TOKEN}` };
  const before = await rejected('unsupported_subprotocol');
  const other = (await attemptUpgrade(harness.wsUrl, ['chat'], auth)) as Refused;
  assert.equal(other.status, 400);
  assert.deepEqual(other.body, { error: 'unsupported_subprotocol', message: `no subprotocol this server speaks was offered; offer ${PROTOCOL}` });
  const tokenOnly = (await attemptUpgrade(harness.wsUrl, [bearerOffer(TOKEN)])) as Refused;
  assert.equal(tokenOnly.status, 400, 'the token offer alone is not a protocol: a browser would fail the 101');
  assert.equal(await rejected('unsupported_subprotocol'), before + 2);
  const unauthenticated = (await attemptUpgrade(harness.wsUrl, ['chat'])) as Refused;
  assert.equal(unauthenticated.status, 401, 'the token is checked first');
  const mixed = await attemptUpgrade(harness.wsUrl, ['chat', PROTOCOL], auth);
  assert.ok(isOpened(mixed));
  assert.equal(mixed.protocol, PROTOCOL);
  await eventually(() => (harness.service.connectionCount === 0 ? true : undefined), 5000, 'connections closed');
});

/** Writes one raw upgrade request and resolves with the status line of the answer. */
async function rawUpgrade(port: number, headerLines: string[]): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.write(
    ['GET /ws HTTP/1.1', `Host: 127.0.0.1:${port}`, 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', ...headerLines, '', ''].join('\r\n'),
  );
  let text = '';
  socket.setEncoding('utf8').on('data', (c: string) => (text += c));
  await withTimeout(new Promise((resolve) => socket.once('close', resolve)), 10_000, 'the refusal');
  return text.split('\r\n')[0];
}

test('the token, right or wrong, in any form, is in no stdout line, exported span or exported log', async () => {
  const receiver = await startOtlpReceiver();
  try {
    const svc = await startChild({
      AUTH_TOKEN: TOKEN,
      LOG_LEVEL: 'debug',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_BLRP_SCHEDULE_DELAY: '100',
      SHUTDOWN_DRAIN_DELAY_MS: '0',
      SHUTDOWN_TIMEOUT_MS: '5000',
    });
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    // Every way the token reaches the server, admitted and refused, and a malformed header
    // that holds it (refused by ws's own parser after admission).
    const admitted = [
      await attemptUpgrade(svc.wsUrl, [PROTOCOL, bearerOffer(TOKEN)], { traceparent }),
      await attemptUpgrade(svc.wsUrl, [], { Authorization: `Bearer ${TOKEN}` }),
    ];
    assert.deepEqual(admitted.map((r) => r.status), [101, 101]);
    const refused = [
      await attemptUpgrade(svc.wsUrl, [PROTOCOL, bearerOffer(WRONG)], { traceparent }),
      await attemptUpgrade(svc.wsUrl, [], { Authorization: `Bearer ${WRONG}` }),
      await attemptUpgrade(svc.wsUrl, [bearerOffer(TOKEN)]),
    ];
    assert.deepEqual(refused.map((r) => r.status), [401, 401, 400]);
    assert.match(await rawUpgrade(svc.port, [`Sec-WebSocket-Protocol: ${PROTOCOL}, ${bearerOffer(TOKEN)}, ,`]), /^HTTP\/1\.1 400 /);
    const client = await Client.connect(svc.wsUrl, {}, [PROTOCOL, bearerOffer(TOKEN)]);
    assert.deepEqual(await client.request({ type: 'ping', id: 1 }), { type: 'pong', id: 1 });
    await client.close();
    await svc.waitForLog((l) => l.message === 'WebSocket closed');
    svc.child.kill('SIGTERM');
    assert.equal((await withTimeout(svc.exited, 15_000, 'exit')).code, 0);

    // Not vacuous: the refusals and the admitted handshakes were logged and exported.
    const refusals = svc.lines.filter((l) => l.message === 'WebSocket upgrade refused');
    assert.deepEqual(refusals.map((l) => l.reason), ['unauthorized', 'unauthorized', 'unsupported_subprotocol', 'bad_handshake']);
    const handshakes = receiver.spans.filter((s) => s.name === 'GET /ws');
    assert.equal(handshakes.length, 7);
    assert.ok(receiver.logs.some((l) => l.body === 'WebSocket upgrade refused'));

    const secrets = [TOKEN, WRONG, bearerOffer(TOKEN), bearerOffer(WRONG)];
    secrets.push(...secrets.map((s) => Buffer.from(s).toString('base64url')), ...secrets.map((s) => encodeURIComponent(s)));
    const bigints = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? value.toString() : value);
    const places = {
      stdout: JSON.stringify(svc.lines),
      stderr: svc.stderr(),
      spans: JSON.stringify(receiver.spans, bigints),
      logs: JSON.stringify(receiver.logs, bigints),
    };
    for (const [place, text] of Object.entries(places)) {
      for (const secret of secrets) assert.ok(!text.includes(secret), `${place} holds ${secret}`);
    }
  } finally {
    await killChildren();
    await receiver.close();
  }
});
