import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nestsDeeperThan, shapeExcess } from '../src/protocol/json-depth.js';
import { MessageRateLimiter, type Verdict } from '../src/ws/rate-limit.js';

// The rules themselves, with time passed in: exact, no sockets needed.
const config = { messagesPerSec: 10, burst: 5, bytesPerSec: 0, bytesBurst: 0, closeAfter: 4 };

function run(limiter: MessageRateLimiter, times: number[]): Verdict[] {
  return times.map((t) => limiter.admit(t, 100));
}

test('token bucket: a full burst at once, then one message per 1/rate; the 4th refusal in a streak closes', () => {
  const limiter = new MessageRateLimiter(config, 0);
  assert.deepEqual(run(limiter, [0, 0, 0, 0, 0]), ['accept', 'accept', 'accept', 'accept', 'accept']);
  assert.deepEqual(run(limiter, [1, 2]), ['refuse', 'refuse']);
  assert.equal(limiter.refusedInStreak, 2);
  // 100 ms refills one token: accepted, but the streak goes on (the bucket was not full again).
  assert.deepEqual(run(limiter, [101, 102, 103]), ['accept', 'refuse', 'close']);
});

test('sustained means: refused again before the bucket was ever full; backing off until it refills forgives', () => {
  const limiter = new MessageRateLimiter(config, 0);
  run(limiter, [0, 0, 0, 0, 0]);
  assert.deepEqual(run(limiter, [1, 2, 3]), ['refuse', 'refuse', 'refuse']);
  // 500 ms of silence refills all 5 tokens: the streak ends.
  assert.deepEqual(run(limiter, [600, 600, 600, 600, 600, 601, 602, 603]), ['accept', 'accept', 'accept', 'accept', 'accept', 'refuse', 'refuse', 'refuse']);
  assert.equal(limiter.refusedInStreak, 3);
});

test('a client at exactly the rate is never refused; one slightly over it is closed in the end', () => {
  const steady = new MessageRateLimiter(config, 0);
  const atRate = Array.from({ length: 1000 }, (_, i) => i * 100);
  assert.ok(run(steady, atRate).every((v) => v === 'accept'));
  const over = new MessageRateLimiter(config, 0);
  const verdicts = run(over, Array.from({ length: 1000 }, (_, i) => i * 90)); // 11.1 per second
  const closedAt = verdicts.indexOf('close');
  assert.ok(closedAt > 0, 'closed');
  assert.equal(verdicts.slice(0, closedAt).filter((v) => v === 'refuse').length, 3);
});

test('nesting depth: counted on bytes, strings and escapes skipped, multi-byte UTF-8 harmless', () => {
  const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');
  assert.equal(nestsDeeperThan(bytes('{"a":[[1]]}'), 3), false);
  assert.equal(nestsDeeperThan(bytes('{"a":[[[1]]]}'), 3), true);
  assert.equal(nestsDeeperThan(bytes('[[],[],[],[]]'), 2), false, 'siblings do not add up');
  assert.equal(nestsDeeperThan(bytes('{"s":"[[[[[[\\"[[[["}'), 1), false, 'brackets in strings, an escaped quote');
  assert.equal(nestsDeeperThan(bytes('{"s":"\\\\"}[[['), 2), true, 'an escaped backslash, then the string ends');
  assert.equal(nestsDeeperThan(bytes('{"żółw🐢":["ą"]}'), 2), false);
  assert.equal(nestsDeeperThan(bytes('['.repeat(1_000_000)), 64), true);
});

test('byte bucket: a message is charged its size; big messages run it out under the message rate', () => {
  // 1000 bytes/s, burst 3000; the message bucket is generous so only bytes can refuse.
  const bytes = { messagesPerSec: 1000, burst: 1000, bytesPerSec: 1000, bytesBurst: 3000, closeAfter: 3 };
  const limiter = new MessageRateLimiter(bytes, 0);
  assert.deepEqual([limiter.admit(0, 1000), limiter.admit(0, 1000), limiter.admit(0, 1000)], ['accept', 'accept', 'accept']);
  assert.equal(limiter.admit(0, 1), 'refuse');
  assert.equal(limiter.exhausted, 'bytes');
  // Half a second refills 500 bytes: a 400-byte message fits, a 1000-byte one does not (and takes nothing).
  assert.equal(limiter.admit(500, 1000), 'refuse');
  assert.equal(limiter.admit(500, 400), 'accept');
  assert.equal(limiter.admit(500, 400), 'close', 'the third refusal since the buckets were full');
  // Both limits on: the message bucket still refuses by count.
  const both = new MessageRateLimiter({ ...config, bytesPerSec: 1_000_000, bytesBurst: 1_000_000 }, 0);
  assert.deepEqual(run(both, [0, 0, 0, 0, 0, 0]).at(-1), 'refuse');
  assert.equal(both.exhausted, 'messages');
  // Messages off, bytes on: only bytes count.
  const bytesOnly = new MessageRateLimiter({ ...bytes, messagesPerSec: 0 }, 0);
  assert.ok(Array.from({ length: 3000 }, () => bytesOnly.admit(0, 1)).every((v) => v === 'accept'));
  assert.equal(bytesOnly.admit(0, 1), 'refuse');
});

test('entries: , and : outside strings counted against the bound, before depth when it comes first', () => {
  const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');
  assert.equal(shapeExcess(bytes('{"a":1,"b":[1,2,3]}'), 64, 5), undefined, 'two colons and three commas: exactly 5');
  assert.equal(shapeExcess(bytes('{"a":1,"b":[1,2,3,4]}'), 64, 5), 'entries');
  assert.equal(shapeExcess(bytes(`{"s":"${',:'.repeat(10_000)}"}`), 64, 5), undefined, 'separators in a string are data');
  assert.equal(shapeExcess(bytes(`{"s":"\\\\",${'1,'.repeat(10)}1}`), 64, 5), 'entries', 'an escaped backslash, then the string ends');
  assert.equal(shapeExcess(bytes(`[${'['.repeat(100)}`), 64, 5), 'depth');
  const manyKeys = `{${Array.from({ length: 5000 }, (_, i) => `"k${i}":${i}`).join(',')}}`;
  assert.equal(shapeExcess(bytes(manyKeys), 64, 4096), 'entries');
});
