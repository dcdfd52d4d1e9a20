/**
 * The scenarios of issue 5, each against one running server: what the generator does, which
 * window the server's CPU is read over, and the numbers kept.
 */
import { request } from 'node:http';
import { CONFORMANCE } from './frames.js';
import type { Generator } from './generator.js';
import type { ChurnResult, ConformanceResult, MessageResult, OpenIdleResult } from './load-protocol.js';
import { machineBusySeconds, type ServerProcess } from './server-process.js';
import type { Percentiles } from './stats.js';

export interface Settings {
  readonly rounds: number;
  /** Tries at a scenario whose measurement is not valid (server not saturated, machine busy). */
  readonly attempts: number;
  readonly echo: { readonly connections: number; readonly inflight: number; readonly warmupMs: number; readonly measureMs: number };
  readonly latency: { readonly connections: number; readonly warmupMs: number; readonly measureMs: number; readonly payloadBytes: number };
  readonly churn: { readonly concurrency: number; readonly warmupMs: number; readonly measureMs: number };
  readonly idle: { readonly connections: number; readonly concurrency: number; readonly settleMs: number; readonly scrapes: number };
}

export interface EchoResult {
  readonly payloadBytes: number;
  readonly connections: number;
  readonly inflight: number;
  readonly messages: number;
  readonly seconds: number;
  readonly msgsPerSecond: number;
  readonly serverCpuSeconds: number;
  /** The headline: messages answered per second of server CPU. */
  readonly msgsPerCpuSecond: number;
  /** Server CPU-seconds per wall second: near 1 means the server, not the generator, was the limit. */
  readonly serverCpuUtilization: number;
  readonly generatorCpuUtilization: number;
  /** CPU-seconds other processes on the machine used during the window (a shared machine's noise). */
  readonly otherCpuSeconds: number;
  /** Closed loop: send to reply with `inflight` requests outstanding per connection. */
  readonly latencyUs: Percentiles;
}

export interface LatencyResult {
  readonly rate: number;
  readonly connections: number;
  readonly payloadBytes: number;
  readonly sent: number;
  readonly messages: number;
  readonly seconds: number;
  readonly serverCpuUtilization: number;
  readonly otherCpuSeconds: number;
  /** Sending stopped because too many requests went unanswered: the server (or a starved generator) fell behind. */
  readonly overloaded: boolean;
  readonly latencyUs: Percentiles;
}

export interface ChurnScenarioResult {
  readonly concurrency: number;
  readonly handshakes: number;
  readonly failures: number;
  readonly seconds: number;
  readonly handshakesPerSecond: number;
  readonly serverCpuSeconds: number;
  readonly handshakesPerCpuSecond: number;
  readonly serverCpuUtilization: number;
  readonly otherCpuSeconds: number;
  readonly handshakeUs: Percentiles;
}

export interface MemoryResult {
  readonly connections: number;
  readonly openSeconds: number;
  /** Growth of the resident set per idle connection, after a full GC. */
  readonly rssBytesPerConnection: number;
  /** Growth of the JS heap (used) plus memory held outside it (Buffers), per idle connection, after a full GC. */
  readonly heapBytesPerConnection: number;
  readonly before: { readonly rss: number; readonly heapUsed: number; readonly external: number };
  readonly after: { readonly rss: number; readonly heapUsed: number; readonly external: number };
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

export interface Scenarios {
  readonly echo_64: EchoResult;
  readonly echo_1k: EchoResult;
  readonly latency_half_load: LatencyResult;
  readonly idle_memory: MemoryResult;
  readonly churn: ChurnScenarioResult;
  readonly metrics_scrape: ScrapeResult | NotApplicable;
}

export const SCENARIO_NAMES = ['echo_64', 'echo_1k', 'latency_half_load', 'idle_memory', 'churn', 'metrics_scrape'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Generous bound for a job: its own length plus time to connect, drain and close. */
const bound = (ms: number) => ms + 60_000;

/**
 * Runs a windowed job, reading the server's CPU as the generator opens and closes the window,
 * and the whole machine's: what neither the server nor the generator used is other load on a
 * shared machine, which can starve the generator (reported, never subtracted).
 */
async function windowed<T extends { generatorCpuSeconds: number }>(
  server: ServerProcess,
  generator: Generator,
  job: Parameters<Generator['run']>[0],
  ms: number,
): Promise<{ result: T; cpuSeconds: number; otherCpuSeconds: number }> {
  let start: Promise<number> | undefined;
  let end: Promise<number> | undefined;
  let machineStart: number | undefined;
  let machineEnd: number | undefined;
  const result = await Promise.race([
    generator.run<T>(job, bound(ms), (phase) => {
      if (phase === 'start') {
        start = server.cpuSeconds();
        machineStart = machineBusySeconds();
      } else {
        end = server.cpuSeconds();
        machineEnd = machineBusySeconds();
      }
    }),
    server.exited.then((how) => Promise.reject(new Error(`server ${how} during ${job.op}\n${server.tail}`))),
  ]);
  if (start === undefined || end === undefined) throw new Error(`${job.op}: the measurement window never opened and closed`);
  const cpuSeconds = (await end) - (await start);
  const machine = machineStart === undefined || machineEnd === undefined ? Number.NaN : machineEnd - machineStart;
  return { result, cpuSeconds, otherCpuSeconds: Math.max(0, machine - cpuSeconds - result.generatorCpuSeconds) };
}

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

export async function echo(server: ServerProcess, generator: Generator, settings: Settings, payloadBytes: number): Promise<EchoResult> {
  const { connections, inflight, warmupMs, measureMs } = settings.echo;
  const { result, cpuSeconds, otherCpuSeconds } = await windowed<MessageResult>(
    server,
    generator,
    { op: 'saturate', url: server.wsUrl, connections, inflight, payloadBytes, warmupMs, measureMs },
    warmupMs + measureMs,
  );
  if (result.messages === 0) throw new Error(`echo ${payloadBytes} B: no replies in the window`);
  return {
    payloadBytes,
    connections,
    inflight,
    messages: result.messages,
    seconds: result.seconds,
    msgsPerSecond: result.messages / result.seconds,
    serverCpuSeconds: cpuSeconds,
    msgsPerCpuSecond: result.messages / cpuSeconds,
    serverCpuUtilization: cpuSeconds / result.seconds,
    generatorCpuUtilization: result.generatorCpuSeconds / result.seconds,
    otherCpuSeconds,
    latencyUs: result.latencyUs,
  };
}

export async function latency(server: ServerProcess, generator: Generator, settings: Settings, rate: number): Promise<LatencyResult> {
  const { connections, warmupMs, measureMs, payloadBytes } = settings.latency;
  const { result, cpuSeconds, otherCpuSeconds } = await windowed<MessageResult>(
    server,
    generator,
    { op: 'rate', url: server.wsUrl, connections, rate, payloadBytes, warmupMs, measureMs },
    warmupMs + measureMs,
  );
  return {
    rate,
    connections,
    payloadBytes,
    sent: result.sent ?? 0,
    messages: result.messages,
    seconds: result.seconds,
    serverCpuUtilization: cpuSeconds / result.seconds,
    otherCpuSeconds,
    overloaded: result.overloaded ?? false,
    latencyUs: result.latencyUs,
  };
}

export async function churn(server: ServerProcess, generator: Generator, settings: Settings): Promise<ChurnScenarioResult> {
  const { concurrency, warmupMs, measureMs } = settings.churn;
  const { result, cpuSeconds, otherCpuSeconds } = await windowed<ChurnResult>(
    server,
    generator,
    { op: 'churn', url: server.wsUrl, concurrency, warmupMs, measureMs },
    warmupMs + measureMs,
  );
  if (result.handshakes === 0) throw new Error('churn: no handshake completed in the window');
  return {
    concurrency,
    handshakes: result.handshakes,
    failures: result.failures,
    seconds: result.seconds,
    handshakesPerSecond: result.handshakes / result.seconds,
    serverCpuSeconds: cpuSeconds,
    handshakesPerCpuSecond: result.handshakes / cpuSeconds,
    serverCpuUtilization: cpuSeconds / result.seconds,
    otherCpuSeconds,
    handshakeUs: result.handshakeUs,
  };
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

/** total_messages_total as the server's /metrics reports it. */
export async function messagesHandled(server: ServerProcess): Promise<number | undefined> {
  const { status, body } = await get(`${server.baseUrl}/metrics`);
  const match = /^total_messages_total (\S+)/m.exec(body);
  return status === 200 && match !== null ? Number(match[1]) : undefined;
}

/** Idle memory per connection at `connections` open, then /metrics scrapes while they stay open. */
export async function idleAndScrape(
  server: ServerProcess,
  generator: Generator,
  settings: Settings,
  noMetrics: string | undefined,
): Promise<{ memory: MemoryResult; scrape: ScrapeResult | NotApplicable }> {
  const { connections, concurrency, settleMs, scrapes } = settings.idle;
  const before = await server.sample(true);
  const opened = await generator.run<OpenIdleResult>(
    { op: 'open-idle', url: server.wsUrl, count: connections, concurrency },
    bound(connections * 20),
  );
  if (opened.open !== connections) throw new Error(`idle: ${opened.open} of ${connections} connections open`);
  // Let the handshakes' logs, spans and timers settle before the heap is read.
  await sleep(settleMs);
  const after = await server.sample(true);
  const scrape: ScrapeResult | NotApplicable =
    noMetrics === undefined ? await scrapeAll(server, connections, scrapes) : { applicable: false, reason: noMetrics };
  await generator.run({ op: 'close-idle' }, bound(connections * 10));
  return {
    memory: {
      connections,
      openSeconds: opened.seconds,
      rssBytesPerConnection: (after.rss - before.rss) / connections,
      heapBytesPerConnection: (after.heapUsed + after.external - before.heapUsed - before.external) / connections,
      before: { rss: before.rss, heapUsed: before.heapUsed, external: before.external },
      after: { rss: after.rss, heapUsed: after.heapUsed, external: after.external },
    },
    scrape,
  };
}
