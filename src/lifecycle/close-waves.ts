/**
 * Spreading the drain's closes over a window, so the instances that take the clients over see
 * them reconnect over that window rather than all in the same millisecond.
 */
import { delay } from '../util/deadline.js';

/** Closes within one period leave together; the period bounds the number of timers too. */
export const WAVE_PERIOD_MS = 100;

/** One wave per WAVE_PERIOD_MS of the window, never more waves than connections. */
export function waveCount(connections: number, windowMs: number): number {
  if (connections === 0) return 0;
  return Math.max(1, Math.min(connections, Math.ceil(windowMs / WAVE_PERIOD_MS)));
}

/**
 * Calls `close` on every item in `waveCount` equal slices; slice i starts at i × windowMs / waves
 * (the first at once, the last one period before the window ends). Stops early once `done()`
 * says nothing is left to close.
 */
export async function closeInWaves<T>(
  items: readonly T[],
  windowMs: number,
  close: (item: T) => void,
  done: () => boolean,
): Promise<void> {
  const waves = waveCount(items.length, windowMs);
  const started = performance.now();
  for (let i = 0; i < waves; i++) {
    const wait = started + (i * windowMs) / waves - performance.now();
    if (wait > 0) await delay(wait);
    if (done()) break;
    const from = Math.floor((i * items.length) / waves);
    const to = Math.floor(((i + 1) * items.length) / waves);
    for (let j = from; j < to; j++) close(items[j]);
  }
}
