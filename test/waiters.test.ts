import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Waiters } from '../src/util/waiters.js';
import { InflightTracker } from '../src/ws/inflight.js';

/** Whether `promise` has settled once every queued microtask has run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

test('Waiters: every wait made before wake() resolves together; none before it', async () => {
  const waiters = new Waiters();
  const first = waiters.wait();
  const second = waiters.wait();
  assert.equal(waiters.waiting, 2);
  assert.equal(await settled(first), false);
  waiters.wake();
  assert.equal(waiters.waiting, 0);
  assert.equal(await settled(first), true);
  assert.equal(await settled(second), true);
});

test('Waiters: a wait made after wake() waits for the next one; waking nobody is harmless', async () => {
  const waiters = new Waiters();
  waiters.wake();
  const early = waiters.wait();
  waiters.wake();
  const late = waiters.wait();
  assert.equal(await settled(early), true);
  assert.equal(await settled(late), false);
  waiters.wake();
  assert.equal(await settled(late), true);
});

test('InflightTracker: idle() resolves at once with nothing running', async () => {
  const tracker = new InflightTracker();
  assert.equal(tracker.count, 0);
  assert.equal(await settled(tracker.idle()), true);
});

test('InflightTracker: idle() waits until the last running piece of work ends', async () => {
  const tracker = new InflightTracker();
  tracker.begin();
  tracker.begin();
  const idle = tracker.idle();
  const alsoIdle = tracker.idle();
  tracker.end();
  assert.equal(tracker.count, 1);
  assert.equal(await settled(idle), false, 'one still running');
  tracker.end();
  assert.equal(await settled(idle), true);
  assert.equal(await settled(alsoIdle), true, 'every waiter is woken');
});

test('InflightTracker: works again after going idle', async () => {
  const tracker = new InflightTracker();
  tracker.begin();
  tracker.end();
  tracker.begin();
  const idle = tracker.idle();
  assert.equal(await settled(idle), false);
  tracker.end();
  assert.equal(await settled(idle), true);
});
