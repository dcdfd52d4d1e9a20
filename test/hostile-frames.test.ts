import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Client, eventually, sampleValue, scrape, startHarness, withTimeout, type Harness } from './helpers.js';
import { frame, RawPeer, rawExchange } from './raw-ws.js';

// Raw-TCP protocol abuse: each case breaks only its own connection, with the RFC 6455 close
// code, counted by reason; a well-behaved client beside it keeps being answered throughout.
let harness: Harness;
let port: number;
before(async () => {
  harness = await startHarness({ env: { MAX_MESSAGE_BYTES: '1024', LOG_LEVEL: 'info' } });
  port = Number(new URL(harness.baseUrl).port);
});
after(() => harness.stop());

const TEXT = 0x1;
const CLOSE = 0x8;
const PING = 0x9;

interface Case {
  readonly name: string;
  readonly bytes: () => Buffer;
  readonly code: number;
  readonly reason: string;
}

function closePayload(code: number): Buffer {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code);
  return payload;
}

const cases: Case[] = [
  { name: 'unmasked client frame', bytes: () => frame(TEXT, '{"type":"ping"}', { mask: false }), code: 1002, reason: 'protocol_error' },
  { name: 'reserved bit RSV1 without an extension', bytes: () => frame(TEXT, 'x', { rsv: 0x40 }), code: 1002, reason: 'protocol_error' },
  { name: 'reserved bits RSV2+RSV3', bytes: () => frame(TEXT, 'x', { rsv: 0x30 }), code: 1002, reason: 'protocol_error' },
  { name: 'reserved data opcode 0x3', bytes: () => frame(0x3, 'x'), code: 1002, reason: 'protocol_error' },
  { name: 'reserved control opcode 0xB', bytes: () => frame(0xb), code: 1002, reason: 'protocol_error' },
  { name: 'fragmented control frame (ping without FIN)', bytes: () => frame(PING, 'p', { fin: false }), code: 1002, reason: 'protocol_error' },
  { name: 'control frame over 125 bytes', bytes: () => frame(PING, Buffer.alloc(126)), code: 1002, reason: 'protocol_error' },
  { name: 'continuation frame with nothing to continue', bytes: () => frame(0x0, 'x'), code: 1002, reason: 'protocol_error' },
  { name: 'close frame with an invalid code', bytes: () => frame(CLOSE, closePayload(999)), code: 1002, reason: 'protocol_error' },
  { name: 'invalid UTF-8 in a text frame', bytes: () => frame(TEXT, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), code: 1007, reason: 'invalid_payload' },
  {
    name: 'frame declaring more than MAX_MESSAGE_BYTES',
    bytes: () => frame(TEXT, Buffer.alloc(16), { declaredLength: 1_000_000 }).subarray(0, 14),
    code: 1009,
    reason: 'message_too_big',
  },
  {
    name: 'fragments that add up to more than MAX_MESSAGE_BYTES',
    bytes: () => Buffer.concat([frame(TEXT, Buffer.alloc(600, 0x20), { fin: false }), frame(0x0, Buffer.alloc(600, 0x20), { fin: false })]),
    code: 1009,
    reason: 'message_too_big',
  },
  {
    name: 'more than 16384 empty fragments of one message',
    bytes: () => Buffer.concat([frame(TEXT, '', { fin: false }), ...Array.from({ length: 16_400 }, () => frame(0x0, '', { fin: false }))]),
    code: 1008,
    reason: 'too_many_fragments',
  },
];

test('each frame-level violation closes only its own connection, with its code, counted by reason', async () => {
  const good = await Client.connect(harness.wsUrl);
  let id = 0;
  const expected = new Map<string, number>();
  for (const c of cases) {
    const peer = await RawPeer.connect(port);
    peer.send(c.bytes());
    await eventually(() => peer.closeCode(), 5000, `a close frame for: ${c.name}`);
    assert.equal(peer.closeCode(), c.code, c.name);
    peer.socket.end(); // a compliant peer hangs up once it has the server's close
    await withTimeout(peer.closed, 5000, `socket close for: ${c.name}`);
    expected.set(c.reason, (expected.get(c.reason) ?? 0) + 1);
    assert.deepEqual(await good.request({ type: 'ping', id: ++id }), { type: 'pong', id }, `still answered after: ${c.name}`);
  }

  await eventually(() => (harness.service.connectionCount === 1 ? true : undefined), 5000, 'only the good client left');
  const samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'active_connections'), 1);
  for (const [reason, count] of expected) {
    assert.equal(sampleValue(samples, 'connections_closed_by_server_total', { reason }), count, reason);
  }
  assert.equal(sampleValue(samples, 'error_count_total', { error_source: 'socket' }), 0, 'violations are handled, not unhandled');
  const violations = harness.logs.filter((l) => l.message === 'WebSocket protocol violation; closing connection');
  assert.equal(violations.length, cases.length, 'each violation logged once');
  assert.ok(violations.every((l) => /^[0-9a-f]{32}$/.test(String(l.request_id))));
  await good.close();
});

test('a violator that never answers the close is cut off after the grace period', async () => {
  const before = (await scrape(harness.baseUrl)).find((s) => s.name === 'connections_closed_by_server_total' && s.labels.reason === 'protocol_error')!.value;
  const peer = await RawPeer.connect(port, { stubborn: true });
  peer.send(frame(TEXT, 'x', { mask: false }));
  await eventually(() => peer.closeCode(), 5000, 'the close frame');
  assert.equal(harness.service.connectionCount, 1, 'half-closed, waiting for the peer');
  // CLOSE_GRACE_MS (1 s) later the server destroys its side; the peer, half-open, never notices.
  await eventually(() => (harness.service.connectionCount === 0 ? true : undefined), 5000, 'the server to drop a silent violator');
  assert.equal(peer.closeCode(), 1002);
  peer.socket.destroy();
  const samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'connections_closed_by_server_total', { reason: 'protocol_error' }), before + 1);
  assert.equal(sampleValue(samples, 'active_connections'), 0);
});

test('truncated frames: a peer that hangs up mid-frame, or sends half a frame and waits, ends only itself', async () => {
  const good = await Client.connect(harness.wsUrl);
  const hangsUp = await RawPeer.connect(port);
  hangsUp.send(frame(TEXT, Buffer.alloc(100, 0x20)).subarray(0, 20));
  hangsUp.socket.end();
  await withTimeout(hangsUp.closed, 5000, 'close after a truncated frame');
  const waits = await RawPeer.connect(port);
  waits.send(frame(TEXT, Buffer.alloc(100, 0x20)).subarray(0, 20));
  assert.deepEqual(await good.request({ type: 'ping', id: 'beside-half-frame' }), { type: 'pong', id: 'beside-half-frame' });
  await eventually(() => (harness.service.connectionCount === 2 ? true : undefined), 5000, 'the half-frame peer and the good client');
  waits.socket.destroy();
  await eventually(() => (harness.service.connectionCount === 1 ? true : undefined), 5000, 'only the good client');
  assert.equal(sampleValue(await scrape(harness.baseUrl), 'active_connections'), 1);
  await good.close();
});

test('garbage instead of an HTTP request, or before the upgrade, gets a JSON 400 and a closed socket', async () => {
  const good = await Client.connect(harness.wsUrl);
  const tlsHello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]);
  const answers = [
    await rawExchange(port, tlsHello),
    await rawExchange(port, 'HELLO\r\n\r\n'),
    await rawExchange(port, '\x00\x01\x02GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
  ];
  for (const answer of answers) {
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.ok(answer.endsWith('{"error":"malformed_request","message":"malformed HTTP request"}'), answer);
  }
  assert.deepEqual(await good.request({ type: 'ping', id: 'after-garbage' }), { type: 'pong', id: 'after-garbage' });
  const samples = await scrape(harness.baseUrl);
  assert.equal(sampleValue(samples, 'rejected_http_requests_total', { reason: 'malformed_request' }), 3);
  assert.equal(sampleValue(samples, 'error_count_total', { error_source: 'server' }), 0);
  const refused = harness.logs.filter((l) => l.message === 'HTTP request refused' && l.reason === 'malformed_request');
  assert.equal(refused.length, 3);
  assert.ok(refused.every((l) => /^[0-9a-f]{32}$/.test(String(l.request_id))));
  await good.close();
});
