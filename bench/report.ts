/**
 * Turns the rounds into the summary (median and min–max per variant), the ratios against A
 * (paired round by round, so drift of a shared machine cancels) checked against issue 5's
 * targets, and the tables printed on stdout and written to Markdown.
 */
import type { Machine } from './machine.js';
import type { Scenarios, Settings } from './scenarios.js';
import type { SinkCounts } from './sink-protocol.js';
import { spread, type Spread } from './stats.js';
import type { VariantName } from './variants.js';

export interface RunRecord {
  readonly round: number;
  readonly variant: VariantName;
  readonly seconds: number;
  /** Cores other processes kept busy just before the run began (it waits for them, within a budget). */
  readonly busyCoresAtStart: number;
  /** Every scenario, unless the run was limited with --only. */
  readonly scenarios: Partial<Scenarios>;
  /** Bytes of log lines the server wrote to stdout during its run. */
  readonly logBytes: number;
  /** What the OTLP sink received during the variant's run (D and E). */
  readonly sink?: SinkCounts;
  /** total_messages_total from /metrics at the end of the run (variants with /metrics). */
  readonly messagesHandled?: number;
}

interface MetricDef {
  readonly key: string;
  readonly section: string;
  readonly label: string;
  readonly unit: string;
  /** Significant decimals in the table. */
  readonly digits: number;
  readonly get: (r: RunRecord) => number | undefined;
}

const pct = (x: number | undefined) => (x === undefined ? undefined : x * 100);
const kib = (x: number | undefined) => (x === undefined ? undefined : x / 1024);

function metricDefs(settings: Settings, latencyRate: number): MetricDef[] {
  const echo = (key: 'echo_64' | 'echo_1k', title: string): MetricDef[] => [
    { key: `${key}.msgs_per_cpu_s`, section: title, label: 'msgs per server CPU-second', unit: '', digits: 0, get: ({ scenarios: s }) => s[key]?.msgsPerCpuSecond },
    { key: `${key}.msgs_per_s`, section: title, label: 'msgs per second', unit: '', digits: 0, get: ({ scenarios: s }) => s[key]?.msgsPerSecond },
    { key: `${key}.server_cpu`, section: title, label: 'server CPU use', unit: '%', digits: 0, get: ({ scenarios: s }) => pct(s[key]?.serverCpuUtilization) },
    { key: `${key}.generator_cpu`, section: title, label: 'generator CPU use', unit: '%', digits: 0, get: ({ scenarios: s }) => pct(s[key]?.generatorCpuUtilization) },
    { key: `${key}.other_cpu`, section: title, label: "other processes' CPU", unit: '%', digits: 0, get: ({ scenarios: s }) => (s[key] === undefined ? undefined : (s[key].otherCpuSeconds / s[key].seconds) * 100) },
    { key: `${key}.p50_us`, section: title, label: 'latency p50', unit: 'µs', digits: 0, get: ({ scenarios: s }) => s[key]?.latencyUs.p50 },
    { key: `${key}.p99_us`, section: title, label: 'latency p99', unit: 'µs', digits: 0, get: ({ scenarios: s }) => s[key]?.latencyUs.p99 },
  ];
  const { connections: echoConns, inflight } = settings.echo;
  const idle = settings.idle.connections;
  return [
    ...echo('echo_64', `echo 64 B at saturation (${echoConns} connections × ${inflight} in flight)`),
    ...echo('echo_1k', `echo 1 KiB at saturation (${echoConns} connections × ${inflight} in flight)`),
    ...(['p50', 'p99', 'p999'] as const).map(
      (p): MetricDef => ({
        key: `latency_half_load.${p}_us`,
        section: `open loop at ${latencyRate} msg/s (half of A's 64 B saturation), ${settings.latency.payloadBytes} B`,
        label: `latency ${p}`,
        unit: 'µs',
        digits: 0,
        get: ({ scenarios: s }) => s.latency_half_load?.latencyUs[p],
      }),
    ),
    {
      key: 'latency_half_load.server_cpu',
      section: `open loop at ${latencyRate} msg/s (half of A's 64 B saturation), ${settings.latency.payloadBytes} B`,
      label: 'server CPU use',
      unit: '%',
      digits: 0,
      get: ({ scenarios: s }) => pct(s.latency_half_load?.serverCpuUtilization),
    },
    {
      key: 'latency_half_load.other_cpu',
      section: `open loop at ${latencyRate} msg/s (half of A's 64 B saturation), ${settings.latency.payloadBytes} B`,
      label: "other processes' CPU",
      unit: '%',
      digits: 0,
      get: ({ scenarios: s }) => (s.latency_half_load === undefined ? undefined : (s.latency_half_load.otherCpuSeconds / s.latency_half_load.seconds) * 100),
    },
    { key: 'idle_memory.rss_per_conn', section: `${idle} idle connections, after GC`, label: 'RSS per connection', unit: 'KiB', digits: 2, get: ({ scenarios: s }) => kib(s.idle_memory?.rssBytesPerConnection) },
    { key: 'idle_memory.heap_per_conn', section: `${idle} idle connections, after GC`, label: 'heap + external per connection', unit: 'KiB', digits: 2, get: ({ scenarios: s }) => kib(s.idle_memory?.heapBytesPerConnection) },
    { key: 'churn.handshakes_per_s', section: `connection churn (${settings.churn.concurrency} at a time)`, label: 'handshakes per second', unit: '', digits: 0, get: ({ scenarios: s }) => s.churn?.handshakesPerSecond },
    { key: 'churn.handshakes_per_cpu_s', section: `connection churn (${settings.churn.concurrency} at a time)`, label: 'handshakes per server CPU-second', unit: '', digits: 0, get: ({ scenarios: s }) => s.churn?.handshakesPerCpuSecond },
    { key: 'churn.p99_ms', section: `connection churn (${settings.churn.concurrency} at a time)`, label: 'handshake p99', unit: 'ms', digits: 2, get: ({ scenarios: s }) => (s.churn === undefined ? undefined : s.churn.handshakeUs.p99 / 1000) },
    {
      key: 'export.spans_per_message',
      section: 'OTLP export over the whole run (every scenario)',
      label: 'spans received by the sink per message',
      unit: '',
      digits: 3,
      get: (r) => (r.sink?.traces === undefined || !r.messagesHandled ? undefined : r.sink.traces.items / r.messagesHandled),
    },
    {
      key: 'export.log_records',
      section: 'OTLP export over the whole run (every scenario)',
      label: 'log records received by the sink',
      unit: '',
      digits: 0,
      get: (r) => r.sink?.logs?.items,
    },
    { key: 'metrics_scrape.p50_ms', section: `GET /metrics with ${idle} connections open`, label: 'scrape p50', unit: 'ms', digits: 2, get: ({ scenarios: s }) => (s.metrics_scrape?.applicable ? s.metrics_scrape.p50Ms : undefined) },
    { key: 'metrics_scrape.max_ms', section: `GET /metrics with ${idle} connections open`, label: 'scrape max', unit: 'ms', digits: 2, get: ({ scenarios: s }) => (s.metrics_scrape?.applicable ? s.metrics_scrape.maxMs : undefined) },
    { key: 'metrics_scrape.cpu_ms', section: `GET /metrics with ${idle} connections open`, label: 'server CPU per scrape', unit: 'ms', digits: 2, get: ({ scenarios: s }) => (s.metrics_scrape?.applicable ? s.metrics_scrape.serverCpuMsPerScrape : undefined) },
  ];
}

/** Issue 5's targets, ratios against A in the same run. */
export const TARGETS: Readonly<Record<Exclude<VariantName, 'A'>, { throughput: number; p99: number; memory: number }>> = {
  B: { throughput: 0.95, p99: 1.1, memory: 1.1 },
  C: { throughput: 0.85, p99: 1.3, memory: 1.25 },
  D: { throughput: 0.65, p99: 1.5, memory: 1.25 },
  E: { throughput: 0.9, p99: 1.3, memory: 1.25 },
};

export interface Ratio {
  readonly value: Spread;
  readonly target: string;
  readonly met: boolean;
}

export type RatioName = 'throughput_64' | 'throughput_1k' | 'p99_half_load' | 'memory_per_idle_connection';

export interface Summary {
  readonly metrics: Record<string, { readonly section: string; readonly label: string; readonly unit: string; readonly digits: number; readonly byVariant: Partial<Record<VariantName, Spread | null>> }>;
  readonly ratios: Partial<Record<VariantName, Record<RatioName, Ratio>>>;
}

/**
 * Memory per idle connection is judged on RSS growth: it is what an operator pays for, and it
 * holds what the JS heap does not (socket handles, native buffers).
 */
const memoryOf = (s: Partial<Scenarios>) => s.idle_memory?.rssBytesPerConnection;

export function summarise(runs: readonly RunRecord[], variants: readonly VariantName[], settings: Settings, latencyRate: number): Summary {
  const metrics: Summary['metrics'] = {};
  for (const def of metricDefs(settings, latencyRate)) {
    const byVariant: Partial<Record<VariantName, Spread | null>> = {};
    for (const v of variants) {
      const values = runs.filter((r) => r.variant === v).map((r) => def.get(r));
      byVariant[v] = values.every((x) => x === undefined) ? null : spread(values.filter((x): x is number => x !== undefined));
    }
    metrics[def.key] = { section: def.section, label: def.label, unit: def.unit, digits: def.digits, byVariant };
  }

  const ratios: Summary['ratios'] = {};
  const baseline = new Map(runs.filter((r) => r.variant === 'A').map((r) => [r.round, r.scenarios]));
  for (const v of variants) {
    if (v === 'A') continue;
    const target = TARGETS[v];
    const paired = (f: (s: Partial<Scenarios>) => number | undefined): Spread =>
      spread(
        runs
          .filter((r) => r.variant === v && baseline.has(r.round))
          .map((r) => (f(r.scenarios) ?? Number.NaN) / (f(baseline.get(r.round)!) ?? Number.NaN)),
      );
    const atLeast = (value: Spread, min: number): Ratio => ({ value, target: `≥ ${min}`, met: value.median >= min });
    const atMost = (value: Spread, max: number): Ratio => ({ value, target: `≤ ${max}×`, met: value.median <= max });
    ratios[v] = {
      throughput_64: atLeast(paired((s) => s.echo_64?.msgsPerCpuSecond), target.throughput),
      throughput_1k: atLeast(paired((s) => s.echo_1k?.msgsPerCpuSecond), target.throughput),
      p99_half_load: atMost(paired((s) => s.latency_half_load?.latencyUs.p99), target.p99),
      memory_per_idle_connection: atMost(paired(memoryOf), target.memory),
    };
  }
  return { metrics, ratios };
}

function fmt(value: number, digits: number): string {
  if (!Number.isFinite(value)) return '–';
  if (Math.abs(value) >= 10_000) return `${(value / 1000).toFixed(1)}k`;
  return value.toFixed(digits);
}

function cell(s: Spread | null | undefined, digits: number): string {
  if (s === null || s === undefined) return 'n/a';
  if (s.min === s.max) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

const RATIO_LABELS: Record<RatioName, string> = {
  throughput_64: 'throughput vs A, 64 B (msgs per server CPU-s)',
  throughput_1k: 'throughput vs A, 1 KiB (msgs per server CPU-s)',
  p99_half_load: 'p99 at half load vs A',
  memory_per_idle_connection: 'RSS per idle connection vs A',
};

function ratioCell(r: Ratio | undefined): string {
  if (r === undefined || !Number.isFinite(r.value.median)) return 'n/a';
  return `${cell(r.value, 2)} ${r.target} ${r.met ? 'met' : 'NOT met'}`;
}

interface Table {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
  /** Row indexes that start a section, with its title. */
  readonly sections: ReadonlyMap<number, string>;
}

function metricsTable(summary: Summary, variants: readonly VariantName[]): Table {
  const rows: string[][] = [];
  const sections = new Map<number, string>();
  let section = '';
  for (const m of Object.values(summary.metrics)) {
    if (m.section !== section) {
      section = m.section;
      sections.set(rows.length, section);
    }
    rows.push([m.unit === '' ? m.label : `${m.label} (${m.unit})`, ...variants.map((v) => cell(m.byVariant[v], m.digits))]);
  }
  return { header: ['', ...variants], rows, sections };
}

function ratiosTable(summary: Summary, variants: readonly VariantName[]): Table {
  const others = variants.filter((v) => v !== 'A');
  const rows = (Object.keys(RATIO_LABELS) as RatioName[]).map((name) => [RATIO_LABELS[name], ...others.map((v) => ratioCell(summary.ratios[v]?.[name]))]);
  return { header: ['ratio (median, min–max over rounds)', ...others], rows, sections: new Map() };
}

function textTable(table: Table): string {
  const widths = table.header.map((h, i) => Math.max(h.length, ...table.rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [line(table.header)];
  table.rows.forEach((row, i) => {
    const title = table.sections.get(i);
    if (title !== undefined) out.push(`-- ${title}`);
    out.push(line(row));
  });
  return out.join('\n');
}

function markdownTable(table: Table): string {
  const out = [`| ${table.header.join(' | ')} |`, `| ${table.header.map(() => '---').join(' | ')} |`];
  table.rows.forEach((row, i) => {
    const title = table.sections.get(i);
    if (title !== undefined) out.push(`| **${title}** |${' |'.repeat(table.header.length - 1)}`);
    out.push(`| ${row.join(' | ')} |`);
  });
  return out.join('\n');
}

export interface ReportInput {
  readonly summary: Summary;
  readonly variants: readonly VariantName[];
  readonly machine: Machine;
  readonly rounds: number;
  readonly durationSeconds: number;
}

function heading(input: ReportInput): string {
  const m = input.machine;
  const pinning = m.pinning ? `server pinned to core ${m.pinning.server}, load to core ${m.pinning.load}` : 'no pinning (taskset missing or one core)';
  return `${m.cores} cores, ${m.cpuModel}, Node ${m.node}, ${m.os}; ${pinning}; ${input.rounds} round(s), ${Math.round(input.durationSeconds)} s`;
}

export function textReport(input: ReportInput): string {
  return [
    heading(input),
    '',
    textTable(metricsTable(input.summary, input.variants)),
    '',
    textTable(ratiosTable(input.summary, input.variants)),
    '',
  ].join('\n');
}

export function markdownReport(input: ReportInput): string {
  return [
    `_${heading(input)}_`,
    '',
    markdownTable(metricsTable(input.summary, input.variants)),
    '',
    markdownTable(ratiosTable(input.summary, input.variants)),
    '',
  ].join('\n');
}
