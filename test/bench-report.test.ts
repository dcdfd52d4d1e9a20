/**
 * The benchmark's arithmetic on hand-made rounds with known answers: the statistics helpers,
 * and the ratios against A, paired round by round as the targets are judged.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { summarise, type VariantResults } from '../bench/report.js';
import type { ScenarioRound, Settings } from '../bench/scenarios.js';
import { percentile, spread } from '../bench/stats.js';

test('spread: median of odd and even counts, min and max, non-finite values left out', () => {
  assert.deepEqual(spread([3, 1, 2]), { median: 2, min: 1, max: 3 });
  assert.deepEqual(spread([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4 });
  assert.deepEqual(spread([5, Number.NaN, Infinity, 1]), { median: 3, min: 1, max: 5 });
  assert.ok(Number.isNaN(spread([]).median));
});

test('percentile: nearest rank', () => {
  const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(sorted, 0.5), 50);
  assert.equal(percentile(sorted, 0.99), 99);
  assert.equal(percentile(sorted, 1), 100);
  assert.equal(percentile([7], 0.999), 7);
  assert.ok(Number.isNaN(percentile([], 0.5)));
});

function round(perCpuSecond: number, p99: number): ScenarioRound {
  return {
    perCpuSecond,
    windowRate: perCpuSecond,
    serverCpuUtilization: 1,
    generatorCpuUtilization: 0.5,
    otherCpuShare: 0,
    window: { latencyUs: { p50: p99 / 10, p99, p999: p99 * 2, max: p99 * 3, samples: 1000 } },
  } as unknown as ScenarioRound;
}

function variant(name: 'A' | 'B', echo: [number, number][], latencyP99: number[]): VariantResults {
  return {
    name,
    title: name,
    logBytes: 0,
    scenarios: { echo_64: echo.map(([cpu, p99]) => round(cpu, p99)), latency_half_load: latencyP99.map((p99) => round(1, p99)) },
  };
}

test('ratios against A are paired round by round, and judged on their median', () => {
  const settings = {
    echo: { connections: 1, inflight: 1 },
    latency: { connections: 1, payloadBytes: 64 },
    churn: { concurrency: 1 },
    idle: { connections: 4 },
  } as unknown as Settings;
  // Round by round B/A is 0.95, 0.5, 0.5: median 0.5. The ratio of the medians (95/100) would
  // read 0.95: pairing is what makes a slow moment of the machine cancel out.
  const a = variant('A', [[100, 0], [200, 0], [50, 0]], [1000, 2000, 4000]);
  const b = variant('B', [[95, 0], [100, 0], [25, 0]], [1100, 1000, 40_000]);
  const summary = summarise([a, b], settings, 1000);
  const ratios = summary.ratios.B!;
  assert.deepEqual(ratios.throughput_64.value, { median: 0.5, min: 0.5, max: 0.95 });
  assert.equal(ratios.throughput_64.target, '≥ 0.95');
  assert.equal(ratios.throughput_64.met, false);
  // p99: per round 1.1, 0.5, 10 -> median 1.1, met (≤ 1.1); medians 1100 / 2000 = 0.55.
  assert.deepEqual(ratios.p99_half_load.value, { median: 1.1, min: 0.5, max: 10 });
  assert.equal(ratios.p99_half_load.met, true);
  assert.equal(ratios.p99_half_load_of_medians.value.median, 0.55);
  // A scenario not run gives no ratio rather than a wrong one.
  assert.ok(Number.isNaN(ratios.throughput_1k.value.median));
  assert.equal(summary.ratios.A, undefined);
});
