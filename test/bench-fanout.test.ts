/**
 * The fan-out scenarios of the benchmark (issue 13) in tiny mode: every scenario against every
 * variant (the two floors, Socket.IO with its Redis adapter, ws-service B–E), two instances each
 * on a redis-server the bench starts itself. Asserts that every publication reached every
 * subscriber exactly once and that the results are well formed; no timing is asserted, as the
 * numbers of a tiny run on a shared machine mean nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FANOUT_SCENARIO_NAMES } from '../bench/fanout.js';
import { FANOUT_TARGETS } from '../bench/fanout-report.js';
import { FANOUT_VARIANT_NAMES } from '../bench/fanout-variants.js';
import type { Results } from '../bench/run.js';
import { runBench } from './bench-run.js';
import { requireBinary } from './stack-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ws-service-bench-fanout-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('tiny mode runs every fan-out scenario against every variant with no delivery lost', async (t) => {
  requireBinary('redis-server');
  const out = join(dir, 'tiny.json');
  const started = performance.now();
  const { code, stdout, stderr } = await runBench(['--tiny', '--only', FANOUT_SCENARIO_NAMES.join(','), '--out', out], 150_000, 'the tiny fan-out benchmark run');
  t.diagnostic(`the tiny fan-out run took ${((performance.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(code, 0, stderr);

  const results = JSON.parse(readFileSync(out, 'utf8')) as Results;
  assert.equal(results.schema, 3);
  assert.equal(results.mode, 'tiny');
  assert.deepEqual(results.variants, [], 'no echo scenario ran');
  const fanout = results.fanout!;
  assert.ok(fanout !== undefined, 'the fan-out results are in the JSON');
  assert.match(fanout.redisVersion, /^\d+\.\d+/);
  assert.deepEqual(fanout.variants.map((v) => v.name), [...FANOUT_VARIANT_NAMES]);

  for (const v of fanout.variants) {
    assert.deepEqual(Object.keys(v.scenarios).sort(), [...FANOUT_SCENARIO_NAMES].sort(), `${v.name} ran every scenario`);
    assert.equal(v.env.REDIS_CHANNEL_PREFIX, `bench-${v.name}:`, `${v.name} has a Redis prefix of its own`);
    for (const scenario of FANOUT_SCENARIO_NAMES) {
      const run = v.scenarios[scenario]!;
      const s = fanout.settings.scenarios[scenario];
      const where = `${v.name} ${scenario}`;
      assert.equal(run.rounds.length, fanout.settings.rounds, `${where} rounds`);
      assert.ok(Number.isFinite(run.idleServerCores) && run.idleServerCores >= 0, `${where} idle rate ${run.idleServerCores}`);
      for (const r of run.rounds) {
        const at = `${where} round ${r.round}`;
        assert.ok(r.published > 0, `${at}: published ${r.published}`);
        assert.equal(r.accepted, r.published, `${at}: every publish accepted`);
        assert.equal(r.refused + r.unanswered, 0, `${at}: none refused or unanswered`);
        assert.equal(r.lost, 0, `${at}: ${r.lost} of ${r.expected} deliveries lost`);
        assert.equal(r.duplicated, 0, `${at}: duplicated deliveries`);
        assert.equal(r.late, 0, `${at}: late deliveries`);
        assert.equal(r.delivered, r.expected, `${at}: delivered`);
        // Broadcast: one channel, every subscriber on it. Many channels: each publication goes to
        // its channel's subscribers alone.
        if (s.channels === 1) assert.equal(r.expected, r.accepted * s.subscribers, `${at}: expected deliveries`);
        else assert.ok(r.expected > 0 && r.expected < r.accepted * s.subscribers, `${at}: expected ${r.expected}`);
        for (const key of ['perCpuSecond', 'deliveryRate', 'serverCpuSeconds', 'chargedCpuSeconds', 'windowSeconds', 'roundSeconds'] as const) {
          assert.ok(Number.isFinite(r[key]) && r[key] > 0, `${at}: ${key} = ${r[key]}`);
        }
        assert.ok(r.chargedCpuSeconds >= r.serverCpuInWindow, `${at}: charged CPU covers the window's`);
        assert.ok(r.latencyUs.samples === r.delivered && r.latencyUs.p50 > 0 && r.latencyUs.p99 >= r.latencyUs.p50 && r.latencyUs.p999 >= r.latencyUs.p99, `${at}: latency ${JSON.stringify(r.latencyUs)}`);
        assert.ok(Number.isFinite(r.redisUsPerPublish) && r.redisUsPerPublish >= 0, `${at}: Redis µs per publish`);
      }
      if (s.memory) {
        const m = run.memory!;
        assert.equal(m.subscriptions, s.subscribers * s.perSubscriber, `${where}: subscriptions`);
        assert.equal(m.samples.length, 5, `${where}: none, then each quarter`);
        for (const key of ['rssBytesPerSubscription', 'heapBytesPerSubscription', 'rssBytesPerSubscriptionFromZero'] as const) {
          assert.ok(Number.isFinite(m[key]), `${where}: ${key} = ${m[key]}`);
        }
      } else assert.equal(run.memory, undefined, `${where}: memory is the many-channel scenario's`);
    }
  }

  const { summary } = fanout;
  assert.deepEqual(summary.scenarios, [...FANOUT_SCENARIO_NAMES]);
  for (const scenario of FANOUT_SCENARIO_NAMES) {
    assert.deepEqual(Object.values(summary.metrics[scenario]!.lost.byVariant).map((s) => s?.median), FANOUT_VARIANT_NAMES.map(() => 0), `${scenario}: 0 lost in the summary`);
    const ratios = summary.ratios[scenario]!;
    assert.deepEqual(Object.keys(ratios), FANOUT_TARGETS.map((d) => d.key), `${scenario}: every ratio`);
    for (const def of FANOUT_TARGETS) {
      const ratio = ratios[def.key];
      assert.ok(Number.isFinite(ratio.value.median) && ratio.value.median > 0, `${scenario} ${def.key}`);
      assert.equal(ratio.met === null, def.bound === undefined, `${scenario} ${def.key} is judged only against a target`);
    }
  }
  assert.ok(stdout.includes('Fan-out: '), 'the fan-out table is on stdout');
  for (const label of ['C / F, deliveries per server CPU-s', 'D / S, deliveries per server CPU-s', 'C / FC, delivery latency p99', 'deliveries lost, all rounds (must be 0)']) {
    assert.ok(stdout.includes(label), label);
  }
  assert.match(stdout, /^\s+F\s+FC\s+S\s+B\s+C\s+D\s+E$/m);
  assert.ok(existsSync(out.replace(/\.json$/, '.md')), 'the Markdown tables are written beside the JSON');
});
