import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { sampleValue, scrape, startChild, withTimeout } from './helpers.js';

const FAULTS = fileURLToPath(new URL('./fixtures/faults.js', import.meta.url));

test('unhandledRejection is counted and logged, the service runs on; uncaughtException shuts down with exit 1', async () => {
  const svc = await startChild({ SHUTDOWN_DRAIN_DELAY_MS: '0' }, ['--import', FAULTS]);

  svc.child.kill('SIGUSR2');
  const rejection = await svc.waitForLog((l) => l.message === 'unhandled promise rejection');
  assert.equal(rejection.level, 'ERROR');
  assert.match((rejection.err as { stack: string }).stack, /^TypeError: nobody awaited me\n\s+at /);
  const samples = await scrape(svc.baseUrl);
  assert.equal(sampleValue(samples, 'error_count_total', { error_source: 'unhandled_rejection' }), 1);
  assert.equal(sampleValue(samples, 'error_count_total', { error_source: 'uncaught_exception' }), 0);
  assert.equal((await fetch(`${svc.baseUrl}/readyz`)).status, 200, 'a rejection does not take the service down');

  svc.child.kill('SIGUSR2');
  const fatal = await svc.waitForLog((l) => l.message === 'uncaught exception; shutting down');
  assert.equal(fatal.level, 'FATAL');
  assert.match((fatal.err as { stack: string }).stack, /^Error: escaped to the loop\n\s+at /);
  const { code } = await withTimeout(svc.exited, 5000, 'exit');
  assert.equal(code, 1);
  const complete = svc.lines.find((l) => l.message === 'shutdown complete')!;
  assert.equal(complete.exit_code, 1);
  assert.equal(svc.lines.filter((l) => l.message === 'uncaught exception; shutting down').length, 1);
});
