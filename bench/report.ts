/**
 * Turns the rounds into the summary (median and min–max per variant), the ratios against A
 * (paired round by round: a round of A and of the variant ran seconds apart) checked against
 * issue 5's targets, and the tables printed on stdout and written to Markdown.
 */
import type { AbuseRun, AbuseSettings } from './abuse.js';
import type { AttackKind, AttackResult } from './abuse-protocol.js';
import type { Machine } from './machine.js';
import type { MemoryResult, ScenarioRound, Scenarios, ScrapeResult, Settings } from './scenarios.js';
import type { SinkCounts } from './sink-protocol.js';
import { spread, type Spread } from './stats.js';
import type { VariantName } from './variants.js';

/** Everything measured of one variant. */
export interface VariantResults {
  readonly name: VariantName;
  readonly title: string;
  /** Every scenario, unless the run was limited with --only. */
  readonly scenarios: Partial<Scenarios>;
  /** Bytes of log lines the server wrote to stdout over the whole run. */
  readonly logBytes: number;
  /** total_messages_total from /metrics at the end of the run (variants with /metrics). */
  readonly messagesHandled?: number;
  /** What the OTLP sink received from this variant over the whole run (D and E), by signal. */
  readonly sink?: SinkCounts;
}

interface MetricDef {
  readonly key: string;
  readonly section: string;
  readonly label: string;
  readonly unit: string;
  /** Decimals in the table. */
  readonly digits: number;
  /** One value per round, or undefined when the scenario did not run or does not apply. */
  readonly get: (v: VariantResults) => readonly number[] | undefined;
}

type Interleaved = 'echo_64' | 'echo_1k' | 'latency_half_load' | 'churn';

function metricDefs(settings: Settings, latencyRate: number): MetricDef[] {
  const rounds = (key: Interleaved, f: (r: ScenarioRound) => number) => (v: VariantResults) => v.scenarios[key]?.map(f);
  const echo = (key: 'echo_64' | 'echo_1k', title: string): MetricDef[] => [
    { key: `${key}.msgs_per_cpu_s`, section: title, label: 'msgs per server CPU-second', unit: '', digits: 0, get: rounds(key, (r) => r.perCpuSecond) },
    { key: `${key}.msgs_per_s`, section: title, label: 'msgs per second', unit: '', digits: 0, get: rounds(key, (r) => r.windowRate) },
    { key: `${key}.server_cpu`, section: title, label: 'server CPU use', unit: '%', digits: 0, get: rounds(key, (r) => r.serverCpuUtilization * 100) },
    { key: `${key}.other_cpu`, section: title, label: "other processes' CPU", unit: '%', digits: 0, get: rounds(key, (r) => r.otherCpuShare * 100) },
    { key: `${key}.p50_us`, section: title, label: 'latency p50', unit: 'µs', digits: 0, get: rounds(key, (r) => r.window.latencyUs.p50) },
    { key: `${key}.p99_us`, section: title, label: 'latency p99', unit: 'µs', digits: 0, get: rounds(key, (r) => r.window.latencyUs.p99) },
  ];
  const { connections: echoConns, inflight } = settings.echo;
  const idle = settings.idle.connections;
  const lat = `open loop at ${latencyRate} msg/s (half of A's 64 B saturation), ${settings.latency.payloadBytes} B, ${settings.latency.connections} connections`;
  const churn = `connection churn (${settings.churn.concurrency} at a time)`;
  const mem = `${idle} idle connections, after GC`;
  const scrape = `GET /metrics with ${idle} connections open`;
  const exp = 'OTLP export over the whole run';
  const memory = (f: (m: MemoryResult) => number) => (v: VariantResults) => v.scenarios.idle_memory?.map(f);
  const scrapes = (f: (s: ScrapeResult) => number) => (v: VariantResults) => {
    const all = v.scenarios.metrics_scrape;
    return all === undefined || all.some((s) => !s.applicable) ? undefined : (all as ScrapeResult[]).map(f);
  };
  return [
    ...echo('echo_64', `echo 64 B at saturation (${echoConns} connections × ${inflight} in flight)`),
    ...echo('echo_1k', `echo 1 KiB at saturation (${echoConns} connections × ${inflight} in flight)`),
    { key: 'latency_half_load.msgs_per_s', section: lat, label: 'msgs per second', unit: '', digits: 0, get: rounds('latency_half_load', (r) => r.windowRate) },
    ...(['p50', 'p99', 'p999'] as const).map(
      (p): MetricDef => ({ key: `latency_half_load.${p}_us`, section: lat, label: `latency ${p}`, unit: 'µs', digits: 0, get: rounds('latency_half_load', (r) => r.window.latencyUs[p]) }),
    ),
    { key: 'latency_half_load.server_cpu', section: lat, label: 'server CPU use', unit: '%', digits: 0, get: rounds('latency_half_load', (r) => r.serverCpuUtilization * 100) },
    { key: 'latency_half_load.other_cpu', section: lat, label: "other processes' CPU", unit: '%', digits: 0, get: rounds('latency_half_load', (r) => r.otherCpuShare * 100) },
    { key: 'idle_memory.rss_per_conn', section: mem, label: `RSS per connection (slope ${settings.idle.connections / 4}→${settings.idle.connections})`, unit: 'KiB', digits: 2, get: memory((m) => m.rssBytesPerConnection / 1024) },
    { key: 'idle_memory.heap_per_conn', section: mem, label: `heap + external per connection (slope)`, unit: 'KiB', digits: 2, get: memory((m) => m.heapBytesPerConnection / 1024) },
    { key: 'idle_memory.rss_from_zero', section: mem, label: `RSS growth per connection, 0→${settings.idle.connections}`, unit: 'KiB', digits: 2, get: memory((m) => m.rssBytesPerConnectionFromZero / 1024) },
    { key: 'churn.handshakes_per_s', section: churn, label: 'handshakes per second', unit: '', digits: 0, get: rounds('churn', (r) => r.windowRate) },
    { key: 'churn.handshakes_per_cpu_s', section: churn, label: 'handshakes per server CPU-second', unit: '', digits: 0, get: rounds('churn', (r) => r.perCpuSecond) },
    { key: 'churn.server_cpu', section: churn, label: 'server CPU use', unit: '%', digits: 0, get: rounds('churn', (r) => r.serverCpuUtilization * 100) },
    { key: 'churn.p99_ms', section: churn, label: 'handshake p99', unit: 'ms', digits: 2, get: rounds('churn', (r) => r.window.latencyUs.p99 / 1000) },
    { key: 'metrics_scrape.p50_ms', section: scrape, label: 'scrape p50', unit: 'ms', digits: 2, get: scrapes((s) => s.p50Ms) },
    { key: 'metrics_scrape.max_ms', section: scrape, label: 'scrape max', unit: 'ms', digits: 2, get: scrapes((s) => s.maxMs) },
    { key: 'metrics_scrape.cpu_ms', section: scrape, label: 'server CPU per scrape', unit: 'ms', digits: 2, get: scrapes((s) => s.serverCpuMsPerScrape) },
    { key: 'metrics_scrape.bytes', section: scrape, label: 'exposition size', unit: 'bytes', digits: 0, get: scrapes((s) => s.bytes) },
    {
      key: 'export.spans_per_message',
      section: exp,
      label: 'spans received by the sink per message',
      unit: '',
      digits: 3,
      get: (v) => (v.sink?.traces === undefined || !v.messagesHandled ? undefined : [v.sink.traces.items / v.messagesHandled]),
    },
    { key: 'export.log_records', section: exp, label: 'log records received by the sink', unit: '', digits: 0, get: (v) => (v.sink?.logs === undefined ? undefined : [v.sink.logs.items]) },
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

export type RatioName =
  | 'throughput_64'
  | 'throughput_1k'
  | 'p99_half_load'
  | 'p99_half_load_of_medians'
  | 'memory_per_idle_connection'
  | 'memory_from_zero'
  | 'memory_heap';

/** One attack against one server, as the abuse table shows it. Times in ms, memory in MiB. */
export interface AbuseRow {
  readonly attack: AttackKind;
  readonly label: string;
  readonly variant: VariantName;
  readonly calmP50Ms: number | null;
  readonly calmP99Ms: number | null;
  readonly calmSent: number;
  readonly calmUnanswered: number;
  /** Calm connections the server closed during the attack. */
  readonly calmClosed: number;
  /** null: no /healthz answered 200. */
  readonly healthzP99Ms: number | null;
  readonly healthzFailed: number;
  readonly healthzSent: number;
  readonly connectsTried: number;
  readonly connectsRefused: number;
  readonly connectsFailed: number;
  readonly rssBeforeMiB: number;
  readonly rssPeakMiB: number | null;
  readonly serverCpuPercent: number | null;
  /** Other processes' CPU in the window, percent of one core. */
  readonly otherCpuPercent: number;
  readonly serverExited: string | null;
  readonly attacker: string;
}

export interface Summary {
  readonly variants: readonly VariantName[];
  readonly metrics: Record<string, { readonly section: string; readonly label: string; readonly unit: string; readonly digits: number; readonly byVariant: Partial<Record<VariantName, Spread | null>> }>;
  readonly ratios: Partial<Record<VariantName, Record<RatioName, Ratio>>>;
  /** Attack by attack, server by server; empty when the abuse scenario did not run. */
  readonly abuse: readonly AbuseRow[];
}

const MiB = 2 ** 20;
const finiteOrNull = (value: number): number | null => (Number.isFinite(value) ? value : null);

/** What each attack was, in the settings' own numbers. */
export function attackLabel(kind: AttackKind, s: AbuseSettings): string {
  switch (kind) {
    case 'none':
      return 'no attack';
    case 'pipelined_metrics':
      return `pipelined GET /metrics, ${s.pipelined.sockets} sockets × ${s.pipelined.requests}, never read`;
    case 'costly_json':
      return `${(s.costly.bytes / 1e6).toFixed(s.costly.bytes < 1e6 ? 2 : 1)} MB JSON echo of ~${Math.round((s.costly.bytes - 32) / 11 / 1000)}k keys, ${s.costly.rate}/s`;
    case 'slow_readers':
      return `${s.slow.connections} slow readers, ${s.slow.payloadBytes / 1024} KiB echoes at ${s.slow.rate}/s each`;
    case 'hoarding':
      return `${s.hoard.connections} idle connections hoarded`;
  }
}

function tallyText(counts: Readonly<Record<string, number>>): string {
  return Object.entries(counts)
    .sort(([, a], [, b]) => b - a)
    .map(([key, n]) => `${key} ×${n}`)
    .join(', ');
}

function bytesText(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;
}

/** What the attacker experienced, in words: what it opened and sent, what it got back. */
export function describeAttacker(a: AttackResult): string {
  if (a.kind === 'none') return '–';
  const parts: string[] = [];
  const refused = Object.values(a.refused).reduce((x, y) => x + y, 0);
  const unit = a.kind === 'pipelined_metrics' ? 'requests' : 'messages';
  parts.push(`${a.opened} open${refused > 0 ? `, ${refused} refused (${tallyText(a.refused)})` : ''}${a.failed > 0 ? `, ${a.failed} failed` : ''}`);
  if (a.sent > 0) parts.push(`${a.sent} ${unit} sent (${bytesText(a.bytesSent)})`);
  if (a.kind === 'pipelined_metrics') parts.push(`answers read after: ${tallyText(a.answers) || 'none'}`);
  else if (Object.keys(a.answers).length > 0) parts.push(`answers: ${tallyText(a.answers)}`);
  parts.push(`${a.closedByServer} closed by the server${Object.keys(a.closeCodes).length > 0 ? ` (${tallyText(a.closeCodes)})` : ''}`);
  // The attacker shares the load core with the calm client.
  parts.push(`attacker CPU ${a.cpuSeconds.toFixed(1)} s`);
  return parts.join('; ');
}

export function abuseRow(variant: VariantName, run: AbuseRun, settings: AbuseSettings): AbuseRow {
  const ms = (us: number): number | null => finiteOrNull(us / 1000);
  const { pings, healthz, connects } = run.calm;
  return {
    attack: run.attack,
    label: attackLabel(run.attack, settings),
    variant,
    calmP50Ms: ms(pings.latencyUs.p50),
    calmP99Ms: ms(pings.latencyUs.p99),
    calmSent: pings.sent,
    calmUnanswered: pings.unanswered,
    calmClosed: run.calm.closed,
    healthzP99Ms: healthz.ok === 0 ? null : ms(healthz.latencyUs.p99),
    healthzFailed: healthz.failed,
    healthzSent: healthz.sent,
    connectsTried: connects.tried,
    connectsRefused: connects.refused,
    connectsFailed: connects.failed,
    rssBeforeMiB: run.rssBefore / MiB,
    rssPeakMiB: finiteOrNull(run.rssPeak / MiB),
    serverCpuPercent: finiteOrNull(run.serverCpu * 100),
    otherCpuPercent: run.otherCpu * 100,
    serverExited: run.serverExited ?? null,
    attacker: describeAttacker(run.attacker),
  };
}

/** Attack by attack (in the order they ran), each server in the run's order. */
export function abuseRows(results: readonly VariantResults[], settings: AbuseSettings): AbuseRow[] {
  const rows: AbuseRow[] = [];
  const attacks = [...new Set(results.flatMap((v) => v.scenarios.abuse?.map((r) => r.attack) ?? []))];
  for (const attack of attacks) {
    for (const v of results) {
      const run = v.scenarios.abuse?.find((r) => r.attack === attack);
      if (run !== undefined) rows.push(abuseRow(v.name, run, settings));
    }
  }
  return rows;
}

/**
 * Memory per idle connection is judged on RSS, the slope from a quarter to all connections open:
 * RSS is what an operator pays for and holds what the JS heap does not (socket handles, native
 * buffers); the slope leaves out one-off growth with the first burst of handshakes. RSS after a
 * GC lags the JS heap (V8 keeps committed slack), so the heap ratio is shown beside it.
 */
const memoryOf = (m: MemoryResult): number => m.rssBytesPerConnection;

export function summarise(results: readonly VariantResults[], settings: Settings, latencyRate: number): Summary {
  const variants = results.map((v) => v.name);
  const metrics: Summary['metrics'] = {};
  for (const def of metricDefs(settings, latencyRate)) {
    const byVariant: Partial<Record<VariantName, Spread | null>> = {};
    for (const v of results) {
      const values = def.get(v);
      byVariant[v.name] = values === undefined ? null : spread(values);
    }
    metrics[def.key] = { section: def.section, label: def.label, unit: def.unit, digits: def.digits, byVariant };
  }

  const ratios: Summary['ratios'] = {};
  const a = results.find((v) => v.name === 'A');
  for (const v of results) {
    if (v.name === 'A' || a === undefined) continue;
    const target = TARGETS[v.name];
    // Paired round by round: within a round every server met the machine in the same moments.
    const paired = (f: (v: VariantResults) => readonly number[] | undefined): Spread => {
      const x = f(v);
      const base = f(a);
      if (x === undefined || base === undefined) return spread([]);
      return spread(x.map((value, i) => value / base[i]));
    };
    // A round's p99 near capacity is one stall amplified, which pairing does not cancel: the
    // ratio of the variants' medians over all rounds is shown beside the judged one.
    const ofMedians = (f: (v: VariantResults) => readonly number[] | undefined): Spread => {
      const x = f(v);
      const base = f(a);
      if (x === undefined || base === undefined) return spread([]);
      return spread([spread(x).median / spread(base).median]);
    };
    const atLeast = (value: Spread, min: number): Ratio => ({ value, target: `≥ ${min}`, met: value.median >= min });
    const atMost = (value: Spread, max: number): Ratio => ({ value, target: `≤ ${max}×`, met: value.median <= max });
    ratios[v.name] = {
      throughput_64: atLeast(paired((x) => x.scenarios.echo_64?.map((r) => r.perCpuSecond)), target.throughput),
      throughput_1k: atLeast(paired((x) => x.scenarios.echo_1k?.map((r) => r.perCpuSecond)), target.throughput),
      p99_half_load: atMost(paired((x) => x.scenarios.latency_half_load?.map((r) => r.window.latencyUs.p99)), target.p99),
      p99_half_load_of_medians: atMost(ofMedians((x) => x.scenarios.latency_half_load?.map((r) => r.window.latencyUs.p99)), target.p99),
      memory_per_idle_connection: atMost(paired((x) => x.scenarios.idle_memory?.map(memoryOf)), target.memory),
      memory_from_zero: atMost(paired((x) => x.scenarios.idle_memory?.map((m) => m.rssBytesPerConnectionFromZero)), target.memory),
      memory_heap: atMost(paired((x) => x.scenarios.idle_memory?.map((m) => m.heapBytesPerConnection)), target.memory),
    };
  }
  return { variants, metrics, ratios, abuse: settings.abuse === undefined ? [] : abuseRows(results, settings.abuse) };
}

export function fmt(value: number, digits: number): string {
  if (!Number.isFinite(value)) return '–';
  if (Math.abs(value) >= 10_000) return `${(value / 1000).toFixed(1)}k`;
  return value.toFixed(digits);
}

export function cell(s: Spread | null | undefined, digits: number): string {
  if (s === null || s === undefined) return 'n/a';
  if (s.min === s.max) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

const RATIO_LABELS: Record<RatioName, string> = {
  throughput_64: 'throughput vs A, 64 B (msgs per server CPU-s)',
  throughput_1k: 'throughput vs A, 1 KiB (msgs per server CPU-s)',
  p99_half_load: 'p99 at half load vs A',
  p99_half_load_of_medians: 'p99 at half load, ratio of the medians (not the target)',
  memory_per_idle_connection: 'RSS per idle connection vs A (slope)',
  memory_from_zero: 'RSS growth per connection vs A (0 to all; not the target)',
  memory_heap: 'heap + external per connection vs A (slope; not the target)',
};

function ratioCell(r: Ratio | undefined): string {
  if (r === undefined || !Number.isFinite(r.value.median)) return 'n/a';
  return `${cell(r.value, 2)} ${r.target} ${r.met ? 'met' : 'NOT met'}`;
}

export interface Table {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
  /** Row indexes that start a section, with its title. */
  readonly sections: ReadonlyMap<number, string>;
  /** In text, the last column is prose, read left to right. */
  readonly proseLast?: boolean;
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

const ABUSE_HEADER = [
  'server',
  'calm p50 (ms)',
  'calm p99 (ms)',
  'calm unanswered',
  '/healthz p99 (ms)',
  'fresh connects refused / failed',
  'RSS before → peak (MiB)',
  'server CPU',
  "others' CPU",
  'the attacker',
] as const;

function abuseTable(rows: readonly AbuseRow[]): Table {
  const sections = new Map<number, string>();
  let attack: string | undefined;
  const cells = rows.map((r, i) => {
    if (r.label !== attack) {
      attack = r.label;
      sections.set(i, r.label);
    }
    const num = (value: number | null, digits: number) => (value === null ? '–' : fmt(value, digits));
    return [
      r.variant,
      num(r.calmP50Ms, 2),
      num(r.calmP99Ms, 2),
      `${r.calmUnanswered} of ${r.calmSent}${r.calmClosed > 0 ? `, ${r.calmClosed} closed` : ''}`,
      `${num(r.healthzP99Ms, 2)}${r.healthzFailed > 0 ? ` (${r.healthzFailed} of ${r.healthzSent} failed)` : ''}`,
      `${r.connectsRefused} / ${r.connectsFailed} of ${r.connectsTried}`,
      `${fmt(r.rssBeforeMiB, 0)} → ${num(r.rssPeakMiB, 0)}`,
      r.serverExited === null ? `${num(r.serverCpuPercent, 0)}%` : `server ${r.serverExited}`,
      `${fmt(r.otherCpuPercent, 0)}%`,
      r.attacker,
    ];
  });
  return { header: ABUSE_HEADER, rows: cells, sections, proseLast: true };
}

export function textTable(table: Table): string {
  const widths = table.header.map((h, i) => Math.max(h.length, ...table.rows.map((r) => r[i].length)));
  const last = table.header.length - 1;
  const left = (i: number) => i === 0 || (i === last && table.proseLast === true);
  const line = (cells: readonly string[]) => cells.map((c, i) => (left(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  const out = [line(table.header)];
  table.rows.forEach((row, i) => {
    const title = table.sections.get(i);
    if (title !== undefined) out.push(`-- ${title}`);
    out.push(line(row));
  });
  return out.join('\n');
}

export function markdownTable(table: Table): string {
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
  readonly machine: Machine;
  readonly settings: Settings;
  readonly durationSeconds: number;
}

function heading(input: ReportInput, withRounds: boolean): string {
  const m = input.machine;
  const pinning = m.pinning ? `servers pinned to core ${m.pinning.server}, load to core ${m.pinning.load}` : 'no pinning (taskset missing or one core)';
  const r = input.settings.rounds;
  const c = input.settings.cycles;
  const slice = input.settings.sliceMs;
  const rounds = `load alternating between servers every ${slice} ms; rounds: echo ${r.echo} × ${c.echo} slices, latency ${r.latency} × ${c.latency}, churn ${r.churn} × ${c.churn}, idle ${r.idle}`;
  return `${m.cores} cores, ${m.cpuModel}, Node ${m.node}, ${m.os}; ${pinning}; ${withRounds ? `${rounds}; ` : ''}${Math.round(input.durationSeconds)} s`;
}

function abuseHeading(input: ReportInput): string {
  const a = input.settings.abuse;
  return `Abuse: one hostile client at a time, ${a.durationMs / 1000} s per attack, a fresh server each; calm client: ${a.calm.connections} connections, ${a.calm.rate} pings/s, GET /healthz every ${a.calm.healthzEveryMs} ms, a fresh connection every ${a.calm.connectEveryMs} ms`;
}

/** Whether any scenario but abuse ran (--only abuse leaves the other tables all n/a). */
function hasMetrics(summary: Summary): boolean {
  return Object.values(summary.metrics).some((m) => Object.values(m.byVariant).some((s) => s !== null && s !== undefined));
}

export function textReport(input: ReportInput): string {
  const abuse = input.summary.abuse ?? [];
  const tables = hasMetrics(input.summary) || abuse.length === 0;
  return [
    heading(input, tables),
    '',
    ...(tables ? [textTable(metricsTable(input.summary, input.summary.variants)), '', textTable(ratiosTable(input.summary, input.summary.variants)), ''] : []),
    ...(abuse.length === 0 ? [] : [abuseHeading(input), textTable(abuseTable(abuse)), '']),
  ].join('\n');
}

export function markdownReport(input: ReportInput): string {
  const abuse = input.summary.abuse ?? [];
  const tables = hasMetrics(input.summary) || abuse.length === 0;
  return [
    `_${heading(input, tables)}_`,
    '',
    ...(tables ? [markdownTable(metricsTable(input.summary, input.summary.variants)), '', markdownTable(ratiosTable(input.summary, input.summary.variants)), ''] : []),
    ...(abuse.length === 0 ? [] : [`_${abuseHeading(input)}_`, '', markdownTable(abuseTable(abuse)), '']),
  ].join('\n');
}
