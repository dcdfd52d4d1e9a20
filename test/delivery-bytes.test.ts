/**
 * What a delivery costs on the way out, observed on the real service where the bytes leave ws:
 * at the TCP socket's write() (the very same bytes for every subscriber, encoded once per
 * publication) and at its _write/_writev (the stream implementer's methods net.Socket defines:
 * one call is one hand-over to the kernel).
 */
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { Client, eventually, startHarness, type Harness } from './helpers.js';

let harness: Harness;
before(async () => {
  harness = await startHarness({ env: { LOG_LEVEL: 'info', MAX_PUBLISH_BYTES: '65536' } });
});
after(() => harness.stop());

test('one publication reaches every subscriber\'s socket as one shared Buffer: no per-subscriber encoding or copy of the payload', async () => {
  const subscribers = await Promise.all(Array.from({ length: 20 }, () => Client.connect(harness.wsUrl)));
  for (const s of subscribers) await s.request({ type: 'subscribe', id: 1, channel: 'bytes:one' });
  const publisher = await Client.connect(harness.wsUrl);
  const payload = 'p'.repeat(16_384);

  const written: unknown[] = [];
  // net.Socket inherits write() from Writable: an own property on Socket.prototype shadows it
  // for every socket, and deleting it puts the inherited one back.
  assert.equal(Object.hasOwn(Socket.prototype, 'write'), false);
  const write = Object.getOwnPropertyDescriptor(Writable.prototype, 'write')!.value as (this: Socket, ...args: unknown[]) => boolean;
  Object.defineProperty(Socket.prototype, 'write', {
    configurable: true,
    writable: true,
    value: function (this: Socket, chunk: unknown, ...rest: unknown[]): boolean {
      const size = typeof chunk === 'string' ? chunk.length : Buffer.isBuffer(chunk) ? chunk.length : 0;
      if (size >= payload.length) written.push(chunk);
      return write.call(this, chunk, ...rest);
    },
  });
  try {
    await publisher.request({ type: 'publish', id: 2, channel: 'bytes:one', data: payload });
    await eventually(() => (subscribers.every((s) => s.replies.some((r) => r.type === 'message')) ? true : undefined));
  } finally {
    delete (Socket.prototype as { write?: unknown }).write;
  }
  // The server's 20 deliveries, and the publisher's own frame from the client side of this process.
  const delivered = written.filter((chunk) => Buffer.isBuffer(chunk) && chunk.includes('"type":"message"'));
  assert.equal(delivered.length, 20, `${written.length} large writes, ${written.filter((c) => typeof c === 'string').length} of them strings`);
  assert.ok(delivered.every((chunk) => chunk === delivered[0]), 'the very same Buffer for every socket');
  assert.equal(written.filter((chunk) => typeof chunk === 'string').length, 0, 'no payload handed to a socket as a string to encode');
  for (const s of [...subscribers, publisher]) await s.close();
});

test('publications that reach a subscriber in one event-loop turn leave in one write to its socket', async () => {
  const subscribers = await Promise.all(Array.from({ length: 3 }, () => Client.connect(harness.wsUrl)));
  for (const s of subscribers) await s.request({ type: 'subscribe', id: 1, channel: 'bytes:turn' });
  const publisher = await Client.connect(harness.wsUrl);

  const handedOver = new Map<Socket, number>();
  const original = {
    writev: Object.getOwnPropertyDescriptor(Socket.prototype, '_writev')!,
    write: Object.getOwnPropertyDescriptor(Socket.prototype, '_write')!,
  };
  const writev = original.writev.value as (this: Socket, chunks: { chunk: unknown }[], cb: () => void) => void;
  const write = original.write.value as (this: Socket, chunk: unknown, encoding: string, cb: () => void) => void;
  /** One hand-over to the kernel: counted for the socket when it carries channel messages. */
  const count = (socket: Socket, chunks: unknown[]): void => {
    if (chunks.some((c) => Buffer.isBuffer(c) && c.includes('"type":"message"'))) handedOver.set(socket, (handedOver.get(socket) ?? 0) + 1);
  };
  Object.defineProperty(Socket.prototype, '_writev', {
    ...original.writev,
    value: function (this: Socket, chunks: { chunk: unknown }[], cb: () => void): void {
      count(this, chunks.map((c) => c.chunk));
      writev.call(this, chunks, cb);
    },
  });
  Object.defineProperty(Socket.prototype, '_write', {
    ...original.write,
    value: function (this: Socket, chunk: unknown, encoding: string, cb: () => void): void {
      count(this, [chunk]);
      write.call(this, chunk, encoding, cb);
    },
  });
  try {
    // Five publishes in one burst: the service reads them in one go and delivers all five in that turn.
    for (let i = 0; i < 5; i++) publisher.send({ type: 'publish', id: 10 + i, channel: 'bytes:turn', data: i });
    await eventually(() => (subscribers.every((s) => s.replies.filter((r) => r.type === 'message').length === 5) ? true : undefined));
  } finally {
    Object.defineProperty(Socket.prototype, '_writev', original.writev);
    Object.defineProperty(Socket.prototype, '_write', original.write);
  }
  for (const s of subscribers) assert.deepEqual(s.replies.filter((r) => r.type === 'message').map((r) => r.data), [0, 1, 2, 3, 4]);
  assert.deepEqual([...handedOver.values()], [1, 1, 1], 'one hand-over to the kernel per subscriber socket, all five messages in it');
  for (const s of [...subscribers, publisher]) await s.close();
});
