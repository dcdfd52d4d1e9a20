import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, test } from 'node:test';
import { Client, eventually, HEAP_FIXTURE, killChildren, measureHeap, sampleValue, scrape, startChild, withTimeout } from './helpers.js';

// Thousands of connections opened and dropped abruptly, in waves, against main.js in a child
// process (so its heap is the service's alone): active_connections returns exactly to the true
// count after every wave, and the heap returns near its baseline.
const WAVE = 500;
const WARM_UP_WAVES = 2;
const WAVES = 4;
const KEEPERS = 5;
/** Generous: a leak of 1 kB per connection over the 2000 measured would exceed it. */
const HEAP_GROWTH_BOUND = 2 * 1024 * 1024;

after(killChildren);

async function gaugeSettlesAt(baseUrl: string, expected: number): Promise<void> {
  await eventually(async () => {
    const value = sampleValue(await scrape(baseUrl), 'active_connections');
    return value === expected ? value : undefined;
  }, 20_000, `active_connections == ${expected}`);
}

function socketOf(client: Client): Socket {
  return (client.ws as unknown as { _socket: Socket })._socket;
}

/** Opens `count` connections at once; a third talk first, and all are dropped without a close frame. */
async function wave(wsUrl: string, count: number): Promise<void> {
  const clients = await Promise.all(Array.from({ length: count }, () => Client.connect(wsUrl)));
  await Promise.all(
    clients.map(async (client, i) => {
      switch (i % 3) {
        case 0: // TCP FIN, no close frame
          client.ws.terminate();
          break;
        case 1: // TCP RST
          socketOf(client).resetAndDestroy();
          break;
        default: // a message answered, another still in flight when the socket goes
          await client.request({ type: 'echo', id: i, data: 'x'.repeat(512) });
          client.send({ type: 'ping', id: i });
          client.ws.terminate();
      }
    }),
  );
}

test('churn: thousands of abrupt drops in waves; the gauge returns exactly, the heap near its baseline', { timeout: 120_000 }, async () => {
  const svc = await startChild({ SHUTDOWN_DRAIN_DELAY_MS: '0', LOG_LEVEL: 'info' }, ['--expose-gc', '--import', HEAP_FIXTURE]);
  try {
    const keepers = await Promise.all(Array.from({ length: KEEPERS }, () => Client.connect(svc.wsUrl)));
    // Waves first, so JIT code, pools and lazily built structures exist before the baseline.
    for (let w = 0; w < WARM_UP_WAVES; w++) {
      await wave(svc.wsUrl, WAVE);
      await gaugeSettlesAt(svc.baseUrl, KEEPERS);
    }
    const baseline = await measureHeap(svc);

    let peak = 0;
    const started = Date.now();
    for (let w = 0; w < WAVES; w++) {
      if (w === 0) {
        // Measure once with a wave open, to show the measurement sees what connections hold.
        const open = await Promise.all(Array.from({ length: WAVE }, () => Client.connect(svc.wsUrl)));
        await gaugeSettlesAt(svc.baseUrl, KEEPERS + WAVE);
        peak = await measureHeap(svc);
        open.forEach((c) => c.ws.terminate());
      } else {
        await wave(svc.wsUrl, WAVE);
      }
      await gaugeSettlesAt(svc.baseUrl, KEEPERS);
    }
    const churnMs = Date.now() - started;
    const after = await measureHeap(svc);

    const samples = await scrape(svc.baseUrl);
    assert.equal(sampleValue(samples, 'active_connections'), KEEPERS);
    for (const source of ['handler', 'socket', 'server']) {
      assert.equal(sampleValue(samples, 'error_count_total', { error_source: source }), 0, `no ${source} errors from abrupt drops`);
    }
    for (const [i, keeper] of keepers.entries()) {
      assert.deepEqual(await keeper.request({ type: 'ping', id: i }), { type: 'pong', id: i }, 'keepers unaffected');
    }
    const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(2);
    console.log(
      `churn: ${(WARM_UP_WAVES + WAVES) * WAVE} connections in ${WARM_UP_WAVES + WAVES} waves of ${WAVE} (+${KEEPERS} kept open), dropped by FIN, RST or mid-message; ` +
        `gauge back to exactly ${KEEPERS} after every wave; heap after GC: baseline ${mb(baseline)} MB, ` +
        `${WAVE} open ${mb(peak)} MB, after ${WAVES * WAVE} more ${mb(after)} MB (growth ${mb(after - baseline)} MB, bound ${mb(HEAP_GROWTH_BOUND)} MB); ` +
        `measured waves took ${churnMs} ms`,
    );
    assert.ok(peak - baseline > 1024 * 1024, 'the measurement is sensitive enough to see 500 open connections');
    assert.ok(after - baseline < HEAP_GROWTH_BOUND, `heap grew ${mb(after - baseline)} MB over ${WAVES * WAVE} connections`);
    await Promise.all(keepers.map((k) => k.close()));
    await gaugeSettlesAt(svc.baseUrl, 0);
  } finally {
    svc.child.kill('SIGTERM');
    await withTimeout(svc.exited, 15_000, 'the churn child to exit');
  }
});
