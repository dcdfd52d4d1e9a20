/**
 * The fan-out scenarios' summary (median and min–max over rounds per variant), the ratios issue
 * 13 sets targets for (paired round by round: in a round every variant met the machine in the
 * same moments), against the naive floor F and the smarter floor FC alike, and their tables in
 * the style of report.ts.
 */
import type { FanoutMemory, FanoutRound, FanoutScenarioName, FanoutSettings, FanoutVariantResults } from './fanout.js';
import type { FanoutVariantName } from './fanout-variants.js';
import type { Machine } from './machine.js';
import { cell, markdownTable, textTable, type Table } from './report.js';
import { spread, type Spread } from './stats.js';

interface RatioDef {
  readonly key: string;
  readonly label: string;
  readonly of: FanoutVariantName;
  readonly against: FanoutVariantName;
  readonly measure: 'throughput' | 'p99';
  /** Issue 13's bound: at least (throughput) or at most (p99); absent: shown for the record. */
  readonly bound?: number;
}

/** Issue 13's targets, then the same against FC, then ratios it quotes without a target. */
export const FANOUT_TARGETS: readonly RatioDef[] = [
  { key: 'C/F', label: 'C / F, deliveries per server CPU-s', of: 'C', against: 'F', measure: 'throughput', bound: 0.9 },
  { key: 'E/F', label: 'E / F, deliveries per server CPU-s', of: 'E', against: 'F', measure: 'throughput', bound: 0.8 },
  { key: 'D/S', label: 'D / S, deliveries per server CPU-s', of: 'D', against: 'S', measure: 'throughput', bound: 1.5 },
  { key: 'p99 C/F', label: 'C / F, delivery latency p99', of: 'C', against: 'F', measure: 'p99', bound: 1.3 },
  { key: 'C/FC', label: 'C / FC, deliveries per server CPU-s', of: 'C', against: 'FC', measure: 'throughput', bound: 0.9 },
  { key: 'E/FC', label: 'E / FC, deliveries per server CPU-s', of: 'E', against: 'FC', measure: 'throughput', bound: 0.8 },
  { key: 'p99 C/FC', label: 'C / FC, delivery latency p99', of: 'C', against: 'FC', measure: 'p99', bound: 1.3 },
  { key: 'S/F', label: 'S / F, deliveries per server CPU-s (issue 13 measured 0.64)', of: 'S', against: 'F', measure: 'throughput' },
  { key: 'B/F', label: 'B / F, deliveries per server CPU-s', of: 'B', against: 'F', measure: 'throughput' },
  { key: 'D/F', label: 'D / F, deliveries per server CPU-s', of: 'D', against: 'F', measure: 'throughput' },
  { key: 'FC/F', label: 'FC / F, deliveries per server CPU-s', of: 'FC', against: 'F', measure: 'throughput' },
];

export interface FanoutRatio {
  readonly value: Spread;
  /** `≥ 0.9`, `≤ 1.3×`, or null when the ratio has no target. */
  readonly target: string | null;
  readonly met: boolean | null;
}

interface MetricRow {
  readonly label: string;
  readonly unit: string;
  readonly digits: number;
  readonly byVariant: Partial<Record<FanoutVariantName, Spread | null>>;
}

export interface FanoutSummary {
  readonly variants: readonly FanoutVariantName[];
  readonly scenarios: readonly FanoutScenarioName[];
  /** By scenario, then by metric key. */
  readonly metrics: Partial<Record<FanoutScenarioName, Record<string, MetricRow>>>;
  /** By scenario, then by ratio key (FANOUT_TARGETS); only ratios whose two variants ran. */
  readonly ratios: Partial<Record<FanoutScenarioName, Record<string, FanoutRatio>>>;
}

type Getter = (rounds: readonly FanoutRound[], memory: FanoutMemory | undefined, idle: number) => readonly number[] | undefined;

interface MetricDef {
  readonly key: string;
  readonly label: string;
  readonly unit: string;
  readonly digits: number;
  readonly get: Getter;
}

const each = (f: (r: FanoutRound) => number): Getter => (rounds) => rounds.map(f);
const total = (f: (r: FanoutRound) => number): Getter => (rounds) => [rounds.reduce((sum, r) => sum + f(r), 0)];
const mem = (f: (m: FanoutMemory) => number): Getter => (_rounds, memory) => (memory === undefined ? undefined : [f(memory)]);

const METRICS: readonly MetricDef[] = [
  { key: 'deliveries_per_cpu_s', label: 'deliveries per server CPU-second', unit: '', digits: 0, get: each((r) => r.perCpuSecond) },
  { key: 'deliveries_per_s', label: 'deliveries per second while loaded', unit: '', digits: 0, get: each((r) => r.deliveryRate) },
  { key: 'server_cpu', label: 'server CPU while loaded, both instances', unit: '% of a core', digits: 0, get: each((r) => r.serverCpuUtilization * 100) },
  { key: 'server_idle_cpu', label: 'server CPU idle, both instances (charged only while loaded)', unit: '% of a core', digits: 2, get: (_r, _m, idle) => [idle * 100] },
  { key: 'redis_us_per_publish', label: "Redis CPU per publish (its idle rate out)", unit: 'µs', digits: 0, get: each((r) => r.redisUsPerPublish) },
  { key: 'p50_ms', label: 'publish → delivery p50', unit: 'ms', digits: 2, get: each((r) => r.latencyUs.p50 / 1000) },
  { key: 'p99_ms', label: 'publish → delivery p99', unit: 'ms', digits: 2, get: each((r) => r.latencyUs.p99 / 1000) },
  { key: 'p999_ms', label: 'publish → delivery p999', unit: 'ms', digits: 2, get: each((r) => r.latencyUs.p999 / 1000) },
  { key: 'expected', label: 'deliveries expected, all rounds', unit: '', digits: 0, get: total((r) => r.expected) },
  { key: 'lost', label: 'deliveries lost, all rounds (must be 0)', unit: '', digits: 0, get: total((r) => r.lost) },
  { key: 'duplicated', label: 'deliveries duplicated or late, all rounds', unit: '', digits: 0, get: total((r) => r.duplicated + r.late) },
  { key: 'refused', label: 'publishes refused or unanswered, all rounds', unit: '', digits: 0, get: total((r) => r.refused + r.unanswered) },
  { key: 'load_cpu', label: 'load process CPU while loaded', unit: '% of a core', digits: 0, get: each((r) => r.generatorCpuUtilization * 100) },
  { key: 'other_cpu', label: "other processes' CPU", unit: '% of a core', digits: 0, get: each((r) => r.otherCpuShare * 100) },
  { key: 'rss_per_sub', label: 'RSS per subscription (slope, ¼ → all)', unit: 'B', digits: 0, get: mem((m) => m.rssBytesPerSubscription) },
  { key: 'heap_per_sub', label: 'heap + external per subscription (slope)', unit: 'B', digits: 0, get: mem((m) => m.heapBytesPerSubscription) },
  { key: 'rss_per_sub_from_zero', label: 'RSS per subscription, none → all (channels included)', unit: 'B', digits: 0, get: mem((m) => m.rssBytesPerSubscriptionFromZero) },
];

export function summariseFanout(variants: readonly FanoutVariantResults[], scenarioNames: readonly FanoutScenarioName[]): FanoutSummary {
  const names = variants.map((v) => v.name);
  const scenarios = scenarioNames.filter((s) => variants.some((v) => v.scenarios[s] !== undefined));
  const metrics: FanoutSummary['metrics'] = {};
  const ratios: FanoutSummary['ratios'] = {};
  for (const scenario of scenarios) {
    const rows: Record<string, MetricRow> = {};
    for (const def of METRICS) {
      const byVariant: MetricRow['byVariant'] = {};
      let any = false;
      for (const v of variants) {
        const run = v.scenarios[scenario];
        const values = run === undefined ? undefined : def.get(run.rounds, run.memory, run.idleServerCores);
        byVariant[v.name] = values === undefined ? null : spread(values);
        any ||= values !== undefined;
      }
      if (any) rows[def.key] = { label: def.label, unit: def.unit, digits: def.digits, byVariant };
    }
    metrics[scenario] = rows;
    const byRatio: Record<string, FanoutRatio> = {};
    for (const def of FANOUT_TARGETS) {
      const x = variants.find((v) => v.name === def.of)?.scenarios[scenario]?.rounds;
      const base = variants.find((v) => v.name === def.against)?.scenarios[scenario]?.rounds;
      if (x === undefined || base === undefined) continue;
      const f = def.measure === 'throughput' ? (r: FanoutRound) => r.perCpuSecond : (r: FanoutRound) => r.latencyUs.p99;
      const value = spread(x.map((r, i) => f(r) / f(base[i])));
      byRatio[def.key] =
        def.bound === undefined
          ? { value, target: null, met: null }
          : def.measure === 'throughput'
            ? { value, target: `≥ ${def.bound}`, met: value.median >= def.bound }
            : { value, target: `≤ ${def.bound}×`, met: value.median <= def.bound };
    }
    ratios[scenario] = byRatio;
  }
  return { variants: names, scenarios, metrics, ratios };
}

/** What each scenario is, in the settings' own numbers. */
export function scenarioTitle(scenario: FanoutScenarioName, settings: FanoutSettings): string {
  const s = settings.scenarios[scenario];
  const who =
    s.channels === 1
      ? `${s.subscribers} subscribers on one channel`
      : `${s.subscribers} connections × ${s.perSubscriber} of ${s.channels} channels`;
  return `${scenario}: ${who}, 2 instances, ${s.publishers} publishers, ${s.rate} publishes/s of ${settings.payloadBytes} B`;
}

function metricsTable(summary: FanoutSummary, settings: FanoutSettings): Table {
  const rows: string[][] = [];
  const sections = new Map<number, string>();
  for (const scenario of summary.scenarios) {
    sections.set(rows.length, scenarioTitle(scenario, settings));
    for (const m of Object.values(summary.metrics[scenario] ?? {})) {
      rows.push([m.unit === '' ? m.label : `${m.label} (${m.unit})`, ...summary.variants.map((v) => cell(m.byVariant[v], m.digits))]);
    }
  }
  return { header: ['', ...summary.variants], rows, sections };
}

function ratioCell(r: FanoutRatio | undefined): string {
  if (r === undefined || !Number.isFinite(r.value.median)) return 'n/a';
  return `${cell(r.value, 2)}${r.met === null ? '' : r.met ? ' met' : ' NOT met'}`;
}

function ratiosTable(summary: FanoutSummary): Table {
  const rows = FANOUT_TARGETS.filter((def) => summary.scenarios.some((s) => summary.ratios[s]?.[def.key] !== undefined)).map((def) => [
    def.label,
    def.bound === undefined ? '–' : def.measure === 'throughput' ? `≥ ${def.bound}` : `≤ ${def.bound}×`,
    ...summary.scenarios.map((s) => ratioCell(summary.ratios[s]?.[def.key])),
  ]);
  return { header: ['ratio (median, min–max over rounds)', 'target', ...summary.scenarios], rows, sections: new Map() };
}

export interface FanoutReportInput {
  readonly summary: FanoutSummary;
  readonly settings: FanoutSettings;
  readonly machine: Machine;
  readonly redisVersion: string;
  readonly durationSeconds: number;
}

function heading(input: FanoutReportInput): string {
  const m = input.machine;
  const s = input.settings;
  const pinning = m.pinning ? `servers pinned to core ${m.pinning.server}, load, redis-server and sink to core ${m.pinning.load}` : 'no pinning (taskset missing or one core)';
  return (
    `Fan-out: ${m.cores} cores, ${m.cpuModel}, Node ${m.node}, ${m.os}, load average ${m.loadAverage} at the start; ` +
    `two instances per variant on one redis-server ${input.redisVersion}; ${pinning}; ` +
    `load alternating between variants in ${s.sliceMs} ms slices, ${s.cycles} per variant per round, ${s.rounds} rounds; ` +
    `idle rates over ${s.baselineMs / 1000} s; ${Math.round(input.durationSeconds)} s`
  );
}

export function fanoutTextReport(input: FanoutReportInput): string {
  return [heading(input), '', textTable(metricsTable(input.summary, input.settings)), '', textTable(ratiosTable(input.summary)), ''].join('\n');
}

export function fanoutMarkdownReport(input: FanoutReportInput): string {
  return [`_${heading(input)}_`, '', markdownTable(metricsTable(input.summary, input.settings)), '', markdownTable(ratiosTable(input.summary)), ''].join('\n');
}
