/**
 * The scenarios of issue 5. The message and handshake scenarios alternate the load between the
 * servers in 100 ms slices, round after round (load.ts); idle memory and the /metrics scrape
 * take one server at a time, round after round. The abuse scenario (one hostile client at a
 * time) is abuse.ts.
 */
import { request } from 'node:http';
import type { AbuseRun, AbuseSettings } from './abuse.js';
import { CONFORMANCE } from './frames.js';
import type { Generator } from './generator.js';
import type { ConformanceResult, InterleaveJob, InterleaveKind, InterleaveResult, OpenIdleResult, Round } from './load-protocol.js';
import type { ServerProcess } from './server-process.js';
import { slope } from './stats.js';

export const SCENARIO_NAMES = ['echo_64', 'echo_1k', 'latency_half_load', 'idle_memory', 'churn', 'metrics_scrape', 'abuse'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export interface Settings {
  readonly rounds: { readonly echo: number; readonly latency: number; readonly churn: number; readonly idle: number };
  /** How long a server has the load at a time. */
  readonly sliceMs: number;
  /** Slices per server per round. */
  readonly cycles: { readonly echo: number; readonly latency: number; readonly churn: number };
  /** Cycles of load before the first round, not measured. */
  readonly warmupCycles: number;
  /** After the last round, how long servers' deferred work (batched exports) is still counted. */
  readonly settleMs: number;
  readonly echo: { readonly connections: number; readonly inflight: number };
  readonly latency: { readonly connections: number; readonly payloadBytes: number };
  readonly churn: { readonly concurrency: number };
  readonly idle: { readonly connections: number; readonly concurrency: number; readonly settleMs: number; readonly scrapes: number };
  readonly abuse: AbuseSettings;
}

/** One round of an interleaved scenario for one server, with what the report reads from it. */
export interface ScenarioRound extends Round {
  /** The headline: messages (handshakes) per second of the server's CPU, over the whole round. */
  readonly perCpuSecond: number;
  /** Messages (handshakes) per second while the server had the load. */
  readonly windowRate: number;
  /** Server CPU-seconds per second it had the load: near 1 means the server was the limit. */
  readonly serverCpuUtilization: number;
  readonly generatorCpuUtilization: number;
  /** Share of a core other processes used in the window (a shared machine's noise). */
  readonly otherCpuShare: number;
}

export interface MemoryResult {
  readonly connections: number;
  readonly openSeconds: number;
  /**
   * Resident set per idle connection: the slope from a quarter to all of them, after a full GC
   * at each quarter. The first quarter absorbs one-off growth (a young generation widened by
   * the burst of handshakes, the export pipelines' buffers and the log transport worker's heap),
   * so this is what each further connection holds.
   */
  readonly rssBytesPerConnection: number;
  /** JS heap (used) plus memory held outside it (Buffers), per idle connection, measured the same way. */
  readonly heapBytesPerConnection: number;
  /** Resident set growth from none to all of them, per connection: one-off growth included. */
  readonly rssBytesPerConnectionFromZero: number;
  readonly heapBytesPerConnectionFromZero: number;
  readonly samples: { readonly at: number; readonly rss: number; readonly heapUsed: number; readonly external: number }[];
}

export interface ScrapeResult {
  readonly applicable: true;
  readonly connections: number;
  readonly scrapes: number;
  readonly bytes: number;
  readonly p50Ms: number;
  readonly maxMs: number;
  readonly serverCpuMsPerScrape: number;
}

export interface NotApplicable {
  readonly applicable: false;
  readonly reason: string;
}

/** Every round of every scenario for one variant. */
export interface Scenarios {
  readonly echo_64: readonly ScenarioRound[];
  readonly echo_1k: readonly ScenarioRound[];
  readonly latency_half_load: readonly ScenarioRound[];
  readonly churn: readonly ScenarioRound[];
  readonly idle_memory: readonly MemoryResult[];
  readonly metrics_scrape: readonly (ScrapeResult | NotApplicable)[];
  /** One run per attack, in ATTACKS order (abuse-protocol.ts). */
  readonly abuse: readonly AbuseRun[];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Every variant must answer the same requests with the same replies, or comparing them means nothing. */
export async function checkConformance(server: ServerProcess, generator: Generator): Promise<void> {
  const { replies } = await generator.run<ConformanceResult>(
    { op: 'conformance', url: server.wsUrl, frames: CONFORMANCE.map((c) => c.frame) },
    30_000,
  );
  CONFORMANCE.forEach((c, i) => {
    const got = replies[i];
    const ok =
      typeof c.reply === 'string'
        ? got === c.reply
        : got !== undefined && (JSON.parse(got) as { code?: unknown }).code === c.reply.code;
    if (!ok) throw new Error(`protocol mismatch: ${c.frame} answered ${got ?? '(nothing)'}, expected ${JSON.stringify(c.reply)}`);
  });
}

function derive(round: Round): ScenarioRound {
  const w = round.window;
  return {
    ...round,
    perCpuSecond: round.count / round.cpuSeconds,
    windowRate: w.count / w.seconds,
    serverCpuUtilization: w.serverCpuSeconds / w.seconds,
    generatorCpuUtilization: w.generatorCpuSeconds / w.seconds,
    otherCpuShare: w.otherCpuSeconds / w.seconds,
  };
}

export interface InterleaveOptions {
  readonly kind: InterleaveKind;
  readonly rounds: number;
  readonly cycles: number;
  readonly connections?: number;
  readonly inflight?: number;
  readonly payloadBytes?: number;
  readonly rate?: number;
  readonly concurrency?: number;
}

/** Runs one interleaved scenario over every server; rounds by variant name. */
export async function interleaved(
  servers: ReadonlyMap<string, ServerProcess>,
  generator: Generator,
  settings: Settings,
  options: InterleaveOptions,
  progress: (text: string) => void,
): Promise<Map<string, ScenarioRound[]>> {
  const job: InterleaveJob = {
    op: 'interleave',
    kind: options.kind,
    targets: [...servers].map(([name, server]) => ({ name, url: server.wsUrl, pid: server.pid })),
    rounds: options.rounds,
    sliceMs: settings.sliceMs,
    cycles: options.cycles,
    warmupCycles: settings.warmupCycles,
    settleMs: settings.settleMs,
    connections: options.connections ?? 0,
    inflight: options.inflight ?? 0,
    payloadBytes: options.payloadBytes ?? 64,
    rate: options.rate ?? 0,
    concurrency: options.concurrency ?? 0,
  };
  const budget = servers.size * settings.sliceMs * (options.rounds * options.cycles + settings.warmupCycles) * 2 + settings.settleMs + 120_000;
  const exited = [...servers].map(([name, s]) => s.exited.then((how) => Promise.reject(new Error(`server ${name} ${how} during ${options.kind}\n${s.tail}`))));
  const result = await Promise.race([generator.run<InterleaveResult>(job, budget, progress), ...exited]);
  const out = new Map<string, ScenarioRound[]>();
  for (const name of servers.keys()) {
    const rounds = result[name] ?? [];
    if (rounds.length !== options.rounds || rounds.some((r) => r.count === 0)) {
      throw new Error(`${options.kind}: server ${name} answered nothing in some round`);
    }
    out.set(name, rounds.map(derive));
  }
  return out;
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** total_messages_total as the server's /metrics reports it. */
export async function messagesHandled(server: ServerProcess): Promise<number | undefined> {
  const { status, body } = await get(`${server.baseUrl}/metrics`);
  const match = /^total_messages_total (\S+)/m.exec(body);
  return status === 200 && match !== null ? Number(match[1]) : undefined;
}

async function scrapeAll(server: ServerProcess, connections: number, scrapes: number): Promise<ScrapeResult> {
  const times: number[] = [];
  let bytes = 0;
  const cpuBefore = (await server.sample(false)).cpuSeconds;
  for (let i = 0; i < scrapes; i++) {
    const started = performance.now();
    const { status, body } = await get(`${server.baseUrl}/metrics`);
    times.push(performance.now() - started);
    if (status !== 200) throw new Error(`/metrics answered ${status}: ${body.slice(0, 200)}`);
    // The scrape must see the connections it is timed with.
    const gauge = /^active_connections (\d+)/m.exec(body);
    if (gauge === null || Number(gauge[1]) !== connections) {
      throw new Error(`/metrics reports active_connections ${gauge?.[1] ?? '(absent)'} with ${connections} open`);
    }
    bytes = Buffer.byteLength(body);
  }
  // The probe's process.cpuUsage(): microseconds, where a few milliseconds per scrape need them.
  const cpuAfter = (await server.sample(false)).cpuSeconds;
  times.sort((a, b) => a - b);
  return {
    applicable: true,
    connections,
    scrapes,
    bytes,
    p50Ms: times[Math.ceil(times.length / 2) - 1],
    maxMs: times[times.length - 1],
    serverCpuMsPerScrape: ((cpuAfter - cpuBefore) * 1000) / scrapes,
  };
}

/**
 * Idle memory per connection: samples after a full GC with none, a quarter, half, three
 * quarters and all of `connections` open; then /metrics scrapes while they stay open.
 */
export async function idleAndScrape(
  server: ServerProcess,
  generator: Generator,
  settings: Settings,
  noMetrics: string | undefined,
): Promise<{ memory: MemoryResult; scrape: ScrapeResult | NotApplicable }> {
  const { connections, concurrency, settleMs, scrapes } = settings.idle;
  const samples: MemoryResult['samples'][number][] = [];
  let openSeconds = 0;
  const openTo = async (total: number): Promise<void> => {
    const count = total - (samples.at(-1)?.at ?? 0);
    const opened = await generator.run<OpenIdleResult>({ op: 'open-idle', url: server.wsUrl, count, concurrency }, count * 20 + 60_000);
    if (opened.open !== total) throw new Error(`idle: ${opened.open} of ${total} connections open`);
    openSeconds += opened.seconds;
    // Let the handshakes' logs, spans and timers settle before the heap is read.
    await sleep(settleMs);
  };
  const sample = async (at: number): Promise<void> => {
    const m = await server.sample(true);
    samples.push({ at, rss: m.rss, heapUsed: m.heapUsed, external: m.external });
  };
  await sample(0);
  for (let quarter = 1; quarter <= 4; quarter++) {
    const at = Math.round((connections * quarter) / 4);
    await openTo(at);
    await sample(at);
  }
  const scrape: ScrapeResult | NotApplicable =
    noMetrics === undefined ? await scrapeAll(server, connections, scrapes) : { applicable: false, reason: noMetrics };
  await generator.run({ op: 'close-idle' }, connections * 10 + 60_000);
  const heap = (x: (typeof samples)[number]) => x.heapUsed + x.external;
  const [zero, ...rest] = samples;
  const full = samples[samples.length - 1];
  return {
    memory: {
      connections,
      openSeconds,
      rssBytesPerConnection: slope(rest.map((x) => [x.at, x.rss])),
      heapBytesPerConnection: slope(rest.map((x) => [x.at, heap(x)])),
      rssBytesPerConnectionFromZero: (full.rss - zero.rss) / connections,
      heapBytesPerConnectionFromZero: (heap(full) - heap(zero)) / connections,
      samples,
    },
    scrape,
  };
}
