import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closeInWaves, waveCount, WAVE_PERIOD_MS } from '../src/lifecycle/close-waves.js';

/**
 * The closes made in one synchronous run form one wave. Waves are told apart by the run they
 * happen in, not by a clock, so a slow machine cannot make this test fail or pass wrongly.
 */
function recorder<T>(): { close: (item: T) => void; waves: T[][] } {
  const waves: T[][] = [];
  let open = false;
  return {
    waves,
    close(item) {
      if (!open) {
        open = true;
        waves.push([]);
        queueMicrotask(() => (open = false));
      }
      waves.at(-1)!.push(item);
    },
  };
}

test('waveCount: one wave per period of the window, at least one, never more than connections', () => {
  assert.equal(waveCount(0, 1000), 0);
  assert.equal(waveCount(20, 1000), 1000 / WAVE_PERIOD_MS);
  assert.equal(waveCount(3, 1000), 3);
  assert.equal(waveCount(20, 0), 1);
  assert.equal(waveCount(20, 150), 2);
});

test('closeInWaves: every item closed once, in order, in equal waves that are separate runs', async () => {
  const items = Array.from({ length: 20 }, (_, i) => i);
  const { close, waves } = recorder<number>();
  await closeInWaves(items, 1000, close, () => false);
  assert.equal(waves.length, 10);
  assert.deepEqual(waves, Array.from({ length: 10 }, (_, w) => [2 * w, 2 * w + 1]));

  const uneven = recorder<number>();
  await closeInWaves(items.slice(0, 7), 300, uneven.close, () => false);
  assert.deepEqual(uneven.waves.flat(), [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(uneven.waves.map((w) => w.length), [2, 2, 3]);
});

test('closeInWaves: a window of 0 closes everything at once; done() stops the waves left', async () => {
  const items = Array.from({ length: 5 }, (_, i) => i);
  const now = recorder<number>();
  await closeInWaves(items, 0, now.close, () => false);
  assert.deepEqual(now.waves, [[0, 1, 2, 3, 4]]);

  const early = recorder<number>();
  await closeInWaves(items, 500, early.close, () => early.waves.length === 2);
  assert.deepEqual(early.waves, [[0], [1]]);
});
