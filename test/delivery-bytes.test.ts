/**
 * A delivery costs no copy of the payload in the process: every subscriber's socket is handed
 * the very same bytes, encoded once per publication. Observed where the bytes leave ws, at the
 * TCP socket's public write(), on the real service.
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
