/**
 * The recovery storm in its tiny mode (`npm run bench -- --tiny --only recovery_storm`): proves the harness runs end to end (two instances of each
 * variant on a real redis-server, every subscriber back at once from its position) and writes
 * well-formed results. It asserts what must hold in any run that worked, never a timing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { RECOVERY_STORM, STORM_TINY, STORM_VARIANTS } from '../bench/recovery-storm.js';
import type { Results } from '../bench/run.js';
import { runBench } from './bench-run.js';

const dir = mkdtempSync(join(tmpdir(), 'ws-service-storm-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('the recovery storm, tiny: every subscriber of every variant recovers exactly what it missed; results well formed', async () => {
  const out = join(dir, 'storm.json');
  const { code, stdout, stderr } = await runBench(['--tiny', '--only', RECOVERY_STORM, '--out', out], 90_000, 'the tiny storm');
  assert.equal(code, 0, stderr);

  const results = JSON.parse(readFileSync(out, 'utf8')) as Results;
  assert.equal(results.mode, 'tiny');
  assert.equal(results.fanout, undefined, 'only the storm ran');
  const storm = results.storm!;
  assert.deepEqual(storm.settings, STORM_TINY);
  assert.deepEqual(storm.variants.map((v) => v.name), [...STORM_VARIANTS]);
  for (const variant of storm.variants) {
    assert.equal(variant.rounds.length, STORM_TINY.rounds);
    for (const round of variant.rounds) {
      assert.deepEqual(round.failures, [], `${variant.name}: ${round.failures.join('; ')}`);
      assert.equal(round.failed, 0);
      assert.equal(round.recovered, STORM_TINY.subscribers);
      assert.equal(round.perSubscriberMs.samples, STORM_TINY.subscribers);
      assert.ok(round.allRecoveredMs > 0 && round.allRecoveredMs >= round.perSubscriberMs.max - 1);
      assert.ok(round.serverCpuSeconds > 0, `${variant.name} server CPU ${round.serverCpuSeconds}`);
      // At least one history read went to Redis, and never more than one per subscriber.
      assert.ok((round.redisCalls.evalsha ?? 0) >= 1, JSON.stringify(round.redisCalls));
      assert.ok(round.redisRoundTripsPerRecovery > 0 && round.redisRoundTripsPerRecovery <= 1.5, `${round.redisRoundTripsPerRecovery}`);
    }
  }
  for (const name of STORM_VARIANTS) assert.match(stdout, new RegExp(`^\\| ${name} \\| ${STORM_TINY.subscribers} × ${STORM_TINY.back} back \\|`, 'm'));
  assert.match(readFileSync(out.replace(/\.json$/, '.md'), 'utf8'), /^Recovery storm, 1 round$/m);
});
