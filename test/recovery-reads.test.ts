import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Position, Recovery } from '../src/channels/broker.js';
import { RecoveryReads } from '../src/channels/recovery-reads.js';

/** A broker whose reads the test answers by hand, in the order they were made. */
function manualBroker(): { recover: (channel: string, since?: Position) => Promise<Recovery>; calls: { channel: string; since?: Position; answer: (r: Recovery | Error) => void }[] } {
  const calls: { channel: string; since?: Position; answer: (r: Recovery | Error) => void }[] = [];
  return {
    calls,
    recover: (channel, since) =>
      new Promise<Recovery>((resolve, reject) => {
        calls.push({ channel, since, answer: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
      }),
  };
}

const recovery = (offset: number): Recovery => ({ top: { epoch: 'e', offset }, publications: [], recovered: true });
const since = { epoch: 'e', offset: 5 };

test('requests made while a read is in flight share the next read, issued when it ends; none gets a read made before it asked', async () => {
  const broker = manualBroker();
  const reads = new RecoveryReads(broker);
  const first = reads.read('c', since);
  const second = reads.read('c', since);
  const third = reads.read('c', since);
  assert.equal(broker.calls.length, 1, 'one read in flight');
  broker.calls[0].answer(recovery(10));
  assert.deepEqual((await first).top.offset, 10);
  await new Promise((r) => setImmediate(r));
  assert.equal(broker.calls.length, 2, 'the waiting requests read again, once');
  broker.calls[1].answer(recovery(11));
  assert.deepEqual([(await second).top.offset, (await third).top.offset], [11, 11]);
  await new Promise((r) => setImmediate(r));
  assert.equal(broker.calls.length, 2);
  assert.equal(reads.pending, 0, 'nothing kept once idle');
});

test('different channels and different positions are read apart; a failed read fails every request it answers, and the next read still happens', async () => {
  const broker = manualBroker();
  const reads = new RecoveryReads(broker);
  const a = reads.read('c', since);
  const b = reads.read('c', { epoch: 'e', offset: 6 });
  const c = reads.read('d', since);
  const d = reads.read('c', undefined);
  assert.deepEqual(
    broker.calls.map((x) => [x.channel, x.since?.offset]),
    [['c', 5], ['c', 6], ['d', 5], ['c', undefined]],
  );
  const waiting = reads.read('c', since);
  broker.calls[0].answer(new Error('broker down'));
  await assert.rejects(a, /broker down/);
  await new Promise((r) => setImmediate(r));
  assert.equal(broker.calls.length, 5, 'the request that waited gets its own read');
  broker.calls[4].answer(recovery(7));
  assert.equal((await waiting).top.offset, 7);
  for (const call of broker.calls.slice(1, 4)) call.answer(recovery(1));
  await Promise.all([b, c, d]);
  await new Promise((r) => setImmediate(r));
  assert.equal(reads.pending, 0);
});
