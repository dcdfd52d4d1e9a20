import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nestsDeeperThan } from '../src/protocol/json-depth.js';
import { MessageRateLimiter, type Verdict } from '../src/ws/rate-limit.js';

// The rules themselves, with time passed in: exact, no sockets needed.
const config = { messagesPerSec: 10, burst: 5, closeAfter: 4 };

function run(limiter: MessageRateLimiter, times: number[]): Verdict[] {
  return times.map((t) => limiter.admit(t));
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
