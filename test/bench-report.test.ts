/**
 * The benchmark's arithmetic on hand-made rounds with known answers: the statistics helpers,
 * the ratios against A, paired round by round as the targets are judged, and the abuse table.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AbuseRun, AbuseSettings } from '../bench/abuse.js';
import { manyKeysFrame, statusLines } from '../bench/abuse-load.js';
import type { AttackResult } from '../bench/abuse-protocol.js';
import { statusBytes } from '../bench/proc.js';
import type { FanoutRound, FanoutVariantResults } from '../bench/fanout.js';
import { summariseFanout } from '../bench/fanout-report.js';
import { abuseRow, describeAttacker, markdownReport, summarise, textReport, type VariantResults } from '../bench/report.js';
import type { ScenarioRound, Settings } from '../bench/scenarios.js';
import { percentile, spread, type Percentiles } from '../bench/stats.js';

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

test('statusBytes: kB fields of /proc/<pid>/status in bytes, NaN when absent', () => {
  const status = 'Name:\tnode\nVmPeak:\t 1200000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t11\n';
  assert.equal(statusBytes(status, 'VmRSS'), 100 * 1024 * 1024);
  assert.equal(statusBytes(status, 'VmHWM'), 200 * 1024 * 1024);
  assert.ok(Number.isNaN(statusBytes(status, 'VmSwap')));
  // A field name that is a prefix of another is not mistaken for it.
  assert.ok(Number.isNaN(statusBytes('VmRSSx:\t 1 kB\n', 'VmRSS')));
});

test('manyKeysFrame: a valid echo request of many short keys, no longer than asked', () => {
  const frame = manyKeysFrame(1_000_000);
  assert.ok(frame.length <= 1_000_000 && frame.length > 999_980, `${frame.length} bytes`);
  const parsed = JSON.parse(frame.toString('latin1')) as { type: string; id: number; data: Record<string, number> };
  assert.equal(parsed.type, 'echo');
  const keys = Object.keys(parsed.data).length;
  assert.ok(keys > 85_000 && keys < 95_000, `${keys} keys`);
  assert.ok(frame.length < 1_048_576, "under the service's default MAX_MESSAGE_BYTES");
});

test('statusLines: every status line counted once, however the responses are split into chunks', () => {
  const stream = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 404 Not Found\r\n\r\nHTTP/1.1 200 OK\r\n\r\n';
  for (let size = 1; size <= stream.length; size++) {
    const seen: string[] = [];
    let carry = '';
    for (let at = 0; at < stream.length; at += size) {
      const { statuses, rest } = statusLines(carry + stream.slice(at, at + size));
      seen.push(...statuses);
      carry = rest;
    }
    assert.deepEqual(seen, ['200', '404', '200'], `chunks of ${size}`);
  }
});

const ABUSE: AbuseSettings = {
  durationMs: 6000,
  graceMs: 2000,
  calm: { connections: 4, rate: 200, healthzEveryMs: 100, connectEveryMs: 200 },
  pipelined: { sockets: 20, requests: 2200 },
  drainMs: 1000,
  costly: { rate: 5, bytes: 1_000_000 },
  slow: { connections: 500, rate: 50, payloadBytes: 16_384 },
  hoard: { connections: 2000, concurrency: 100 },
};

const pct = (p50: number, p99: number, samples = 100): Percentiles => ({ p50, p99, p999: p99, max: p99, samples });
const NONE: Percentiles = { p50: Number.NaN, p99: Number.NaN, p999: Number.NaN, max: Number.NaN, samples: 0 };

function attackResult(over: Partial<AttackResult>): AttackResult {
  return { kind: 'none', opened: 0, refused: {}, failed: 0, closedByServer: 0, closeCodes: {}, sent: 0, bytesSent: 0, answers: {}, cpuSeconds: 0, ...over };
}

function abuseRun(over: Partial<AbuseRun>): AbuseRun {
  return {
    attack: 'none',
    seconds: 8,
    rssBefore: 60 * 2 ** 20,
    rssPeak: 90 * 2 ** 20,
    serverCpu: 0.25,
    otherCpu: 0.05,
    calm: {
      cpuSeconds: 0.1,
      pings: { sent: 1200, answered: 1190, unanswered: 10, latencyUs: pct(800, 25_500) },
      closed: 0,
      healthz: { sent: 60, ok: 58, failed: 2, latencyUs: pct(1500, 40_000, 58) },
      connects: { tried: 30, opened: 27, refused: 2, failed: 1, latencyUs: pct(2000, 9000, 27) },
    },
    attacker: attackResult({}),
    ...over,
  };
}

test('abuseRow: µs to ms, bytes to MiB, CPU to percent; missing figures are null, not NaN', () => {
  const row = abuseRow('C', abuseRun({ attack: 'hoarding' }), ABUSE);
  assert.equal(row.label, '2000 idle connections hoarded');
  assert.equal(row.calmP50Ms, 0.8);
  assert.equal(row.calmP99Ms, 25.5);
  assert.equal(row.calmUnanswered, 10);
  assert.equal(row.healthzP99Ms, 40);
  assert.equal(row.healthzFailed, 2);
  assert.deepEqual([row.connectsTried, row.connectsRefused, row.connectsFailed], [30, 2, 1]);
  assert.equal(row.rssBeforeMiB, 60);
  assert.equal(row.rssPeakMiB, 90);
  assert.equal(row.serverCpuPercent, 25);
  assert.equal(row.serverExited, null);
  assert.equal(row.otherCpuPercent, 5);

  // A server that died mid-attack: no peak, no CPU, no answers; the row says so.
  const dead = abuseRun({ rssPeak: Number.NaN, serverCpu: Number.NaN, serverExited: 'exited with SIGKILL' });
  const calm = { ...dead.calm, pings: { sent: 1200, answered: 0, unanswered: 1200, latencyUs: NONE }, healthz: { sent: 10, ok: 0, failed: 10, latencyUs: NONE } };
  const row2 = abuseRow('A', { ...dead, calm }, ABUSE);
  assert.deepEqual([row2.calmP50Ms, row2.calmP99Ms, row2.healthzP99Ms, row2.rssPeakMiB, row2.serverCpuPercent], [null, null, null, null, null]);
  assert.equal(row2.serverExited, 'exited with SIGKILL');
  assert.doesNotThrow(() => JSON.stringify(row2));
});

test('describeAttacker: what was opened and sent, what came back, what the server closed', () => {
  assert.equal(describeAttacker(attackResult({})), '–');
  assert.equal(
    describeAttacker(attackResult({ kind: 'pipelined_metrics', opened: 20, sent: 44_000, bytesSent: 1_496_000, answers: { '200': 300, '404': 2 }, closedByServer: 3 })),
    '20 open; 44000 requests sent (1.5 MB); answers read after: 200 ×300, 404 ×2; 3 closed by the server; attacker CPU 0.0 s',
  );
  assert.equal(
    describeAttacker(attackResult({ kind: 'pipelined_metrics', opened: 2, sent: 40, bytesSent: 1360 })),
    '2 open; 40 requests sent (1.4 kB); answers read after: none; 0 closed by the server; attacker CPU 0.0 s',
  );
  assert.equal(
    describeAttacker(attackResult({ kind: 'costly_json', opened: 1, sent: 1, bytesSent: 999_999, closedByServer: 1, closeCodes: { '1009': 1 } })),
    '1 open; 1 messages sent (1000.0 kB); 1 closed by the server (1009 ×1); attacker CPU 0.0 s',
  );
  assert.equal(
    describeAttacker(attackResult({ kind: 'hoarding', opened: 1500, refused: { '503': 500 }, failed: 3 })),
    '1500 open, 500 refused (503 ×500), 3 failed; 0 closed by the server; attacker CPU 0.0 s',
  );
  assert.equal(
    describeAttacker(attackResult({ kind: 'slow_readers', opened: 500, sent: 150_000, bytesSent: 2_457_600_000, closedByServer: 480, closeCodes: { '1006': 470, '1013': 10 }, cpuSeconds: 7.46 })),
    '500 open; 150000 messages sent (2.46 GB); 480 closed by the server (1006 ×470, 1013 ×10); attacker CPU 7.5 s',
  );
});

test('the abuse table: rows attack by attack, servers in order, in the text and Markdown reports', () => {
  const settings = {
    rounds: { echo: 1, latency: 1, churn: 1, idle: 1 },
    cycles: { echo: 1, latency: 1, churn: 1 },
    sliceMs: 100,
    echo: { connections: 1, inflight: 1 },
    latency: { connections: 1, payloadBytes: 64 },
    churn: { concurrency: 1 },
    idle: { connections: 4 },
    abuse: ABUSE,
  } as unknown as Settings;
  const runs = [abuseRun({}), abuseRun({ attack: 'slow_readers', attacker: attackResult({ kind: 'slow_readers', opened: 500 }) })];
  const results: VariantResults[] = (['A', 'C'] as const).map((name) => ({ name, title: name, logBytes: 0, scenarios: { abuse: runs } }));
  const summary = summarise(results, settings, 1000);
  assert.deepEqual(
    summary.abuse.map((r) => `${r.attack} ${r.variant}`),
    ['none A', 'none C', 'slow_readers A', 'slow_readers C'],
  );
  const machine = { cores: 2, cpuModel: 'cpu', node: 'v20', os: 'Linux', memoryGiB: 1, fdLimit: 1024, pinning: null, loadAverage: 0 };
  const input = { summary, machine, settings, durationSeconds: 1 };
  const md = markdownReport(input);
  assert.match(md, /^\| \*\*500 slow readers, 16 KiB echoes at 50\/s each\*\* \|/m);
  assert.match(md, /^\| C \| 0\.80 \| 25\.50 \| 10 of 1200 \| 40\.00 \(2 of 60 failed\) \| 2 \/ 1 of 30 \| 60 → 90 \| 25% \| 5% \| 500 open; 0 closed by the server; attacker CPU 0\.0 s \|$/m);
  const text = textReport(input);
  assert.ok(text.includes('-- no attack'), text);
  assert.ok(text.includes('calm p99 (ms)'));
  // Without abuse runs, no abuse table.
  const none = summarise([{ name: 'A', title: 'A', logBytes: 0, scenarios: {} }], settings, 1000);
  assert.deepEqual(none.abuse, []);
  assert.ok(!textReport({ ...input, summary: none }).includes('calm p99'));
});

test('fan-out ratios are paired round by round against F, FC and S, judged only where issue 13 sets a target', () => {
  const rounds = (perCpu: number[], p99: number[]): FanoutRound[] =>
    perCpu.map((perCpuSecond, i) => ({ round: i + 1, perCpuSecond, lost: 0, expected: 10, latencyUs: { p50: 1, p99: p99[i], p999: p99[i], max: p99[i], samples: 10 } }) as unknown as FanoutRound);
  const variant = (name: FanoutVariantResults['name'], perCpu: number[], p99: number[]): FanoutVariantResults => ({
    name,
    title: name,
    env: {},
    logBytes: 0,
    scenarios: { fanout_broadcast_500: { rounds: rounds(perCpu, p99), idleServerCores: 0.01, idleRedisCores: 0, openSeconds: 1, subscribeSeconds: 1 } },
  });
  // Round by round C/F is 0.9, 0.5, 0.95: median 0.9, met; the ratio of the medians (95/100) would not be the judged one.
  const summary = summariseFanout(
    [variant('F', [100, 200, 100], [10, 10, 10]), variant('FC', [120, 240, 120], [5, 5, 5]), variant('S', [60, 60, 60], [20, 20, 20]), variant('C', [90, 100, 95], [12, 14, 30]), variant('D', [80, 90, 100], [1, 1, 1])],
    ['fanout_broadcast_100', 'fanout_broadcast_500'],
  );
  assert.deepEqual(summary.scenarios, ['fanout_broadcast_500'], 'a scenario no variant ran is left out');
  const r = summary.ratios.fanout_broadcast_500!;
  assert.deepEqual(r['C/F'], { value: { median: 0.9, min: 0.5, max: 0.95 }, target: '≥ 0.9', met: true });
  assert.equal(r['C/FC'].met, false);
  assert.deepEqual(r['p99 C/F'].value, { median: 1.4, min: 1.2, max: 3 });
  assert.equal(r['p99 C/F'].met, false);
  // D/S per round: 1.33, 1.5, 1.67.
  assert.equal(r['D/S'].met, true);
  assert.deepEqual(r['S/F'].target, null);
  assert.equal(r['S/F'].met, null);
  // E did not run: no E ratio rather than a wrong one.
  assert.equal(r['E/F'], undefined);
  assert.equal(summary.metrics.fanout_broadcast_500!.server_idle_cpu.byVariant.C?.median, 1);
});
