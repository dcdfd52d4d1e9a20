import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHarness } from './helpers.js';

// /readyz reads the SDK's state and the last collection's outcome; it never collects itself.

test('/readyz runs no collection; a failed /metrics collection fails it until one succeeds', async () => {
  const h = await startHarness({ env: { LOG_LEVEL: 'silent' } });
  try {
    const telemetry = h.telemetry as unknown as { scrape: () => Promise<string> };
    const original = telemetry.scrape.bind(telemetry);
    let collections = 0;
    let failing = false;
    telemetry.scrape = () => {
      collections++;
      return failing ? Promise.reject(new Error('reader broken')) : original();
    };
    const ready = async (): Promise<{ status: number; sdk: { status: string; detail?: string } }> => {
      const res = await fetch(`${h.baseUrl}/readyz`);
      const body = (await res.json()) as { checks: { telemetry_sdk: { status: string; detail?: string } } };
      return { status: res.status, sdk: body.checks.telemetry_sdk };
    };

    for (let i = 0; i < 10; i++) assert.equal((await ready()).status, 200);
    assert.equal(collections, 0, 'a probe resets nothing /metrics reports');

    failing = true;
    assert.equal((await fetch(`${h.baseUrl}/metrics`)).status, 503);
    assert.deepEqual(await ready(), { status: 503, sdk: { status: 'fail', detail: 'metric reader cannot collect: reader broken' } });

    failing = false;
    assert.equal((await fetch(`${h.baseUrl}/metrics`)).status, 200);
    assert.deepEqual(await ready(), { status: 200, sdk: { status: 'ok' } });
    assert.equal(collections, 2);
  } finally {
    await h.stop();
  }
});
