/**
 * Issue 13's fan-out scenarios, measured the way issue 5's harness measures echo: every variant
 * runs at once (here as two instances on one redis-server the bench starts), all servers pinned
 * to the server core, the load on the other; the load alternates between the variants in short
 * slices, round after round, and ratios are paired per round.
 *
 * A slice is one variant's publishers publishing at the scenario's fixed rate while every
 * variant's subscribers stay connected, then a drain until every accepted publication reached
 * every subscriber of its channel (or the drain gives up: those are lost). The headline is
 * deliveries per second of server CPU, both instances' utime + stime, read exactly (proc.ts).
 *
 * A variant has the load for a seventh of a round. At a fixed rate its servers' idle cost
 * (timers, heartbeats, metric exports) over the other six sevenths would otherwise weigh six
 * times what it weighs for a server running alone at that rate. So a round charges each variant
 * its CPU over the whole round, deferred work included (spans exported after the slice), less
 * its idle rate (measured before the rounds, with nothing loaded) for the time it was not
 * loaded: what it would spend running alone at the rate.
 */
import type { Pinning } from './children.js';
import { Generator, type Sink } from './generator.js';
import { FANOUT_VARIANTS, type FanoutVariantName } from './fanout-variants.js';
import type { FanoutLatencyResult, FanoutOpenResult, FanoutSliceResult, FanoutSubscribeResult } from './fanout-protocol.js';
import { machineBusySeconds, processCpuSecondsExact } from './proc.js';
import { RedisProcess } from './redis-process.js';
import { ServerProcess } from './server-process.js';
import { shuffled, slope, type Percentiles } from './stats.js';

export const FANOUT_SCENARIO_NAMES = ['fanout_broadcast_100', 'fanout_broadcast_500', 'fanout_broadcast_2000', 'fanout_many_channels'] as const;
export type FanoutScenarioName = (typeof FANOUT_SCENARIO_NAMES)[number];

export interface FanoutScenarioSettings {
  /** Subscriber connections per variant, split evenly over its two instances. */
  readonly subscribers: number;
  readonly channels: number;
  /** Channels each subscriber joins. */
  readonly perSubscriber: number;
  /** Publisher connections per variant, alternating between the instances. */
  readonly publishers: number;
  /** Publications per second, all publishers together, while the variant has the load. */
  readonly rate: number;
  /** Measure memory per subscription (subscribing in quarters, a full GC and a sample after each). */
  readonly memory: boolean;
}

export interface FanoutSettings {
  readonly rounds: number;
  /** How long a variant's publishers publish at a time (its drain follows). */
  readonly sliceMs: number;
  /** Slices per variant per round. */
  readonly cycles: number;
  readonly warmupCycles: number;
  /** The longest a drain waits for a slice's replies and deliveries. */
  readonly drainMs: number;
  /** After subscribing and after the last round: deferred work (span exports) still counted. */
  readonly settleMs: number;
  /** How long the idle rate of every server and Redis is measured, nothing loaded. */
  readonly baselineMs: number;
  readonly payloadBytes: number;
  readonly connectConcurrency: number;
  readonly subscribeInflight: number;
  /** Before each memory sample: the subscribes' logs and spans settle. */
  readonly memorySettleMs: number;
  readonly scenarios: Readonly<Record<FanoutScenarioName, FanoutScenarioSettings>>;
}

/** One round of one scenario for one variant: its slices' counts summed, and what it cost. */
export interface FanoutRound
  extends Pick<FanoutSliceResult, 'published' | 'accepted' | 'refused' | 'unanswered' | 'expected' | 'delivered' | 'lost' | 'duplicated' | 'late'> {
  readonly round: number;
  /** Time this variant had the load: its slices and their drains. */
  readonly windowSeconds: number;
  readonly roundSeconds: number;
  /** Both instances' CPU over the round (the last round through the settle). */
  readonly serverCpuSeconds: number;
  /** Both instances' CPU while this variant had the load. */
  readonly serverCpuInWindow: number;
  /** What the round charges: serverCpuSeconds less the idle rate for the time not loaded (never below serverCpuInWindow). */
  readonly chargedCpuSeconds: number;
  /** The headline: deliveries per charged server CPU-second. */
  readonly perCpuSecond: number;
  /** Deliveries per second of the window. */
  readonly deliveryRate: number;
  /** Server CPU-seconds per second of the window: near 1, the server core was the limit. */
  readonly serverCpuUtilization: number;
  readonly redisCpuInWindow: number;
  /** Redis CPU per accepted publication, its idle rate taken out, µs. */
  readonly redisUsPerPublish: number;
  /** The variant's load process: CPU-seconds per second of the window. */
  readonly generatorCpuUtilization: number;
  /** Cores' worth of CPU that none of the bench's processes used over the round. */
  readonly otherCpuShare: number;
  readonly latencyUs: Percentiles;
  readonly maxPublishLagMs: number;
  readonly loopDelayP99Ms: number;
}

export interface MemorySample {
  readonly subscriptions: number;
  /** Both instances, after a full GC. */
  readonly rss: number;
  readonly heap: number;
}

export interface FanoutMemory {
  readonly connections: number;
  readonly subscriptions: number;
  /** Least-squares slope from a quarter of the subscriptions to all of them (both instances). */
  readonly rssBytesPerSubscription: number;
  /** JS heap used plus external (Buffers), the same slope. */
  readonly heapBytesPerSubscription: number;
  /** From none to all: per-channel state (the broker's subscription) included. */
  readonly rssBytesPerSubscriptionFromZero: number;
  readonly heapBytesPerSubscriptionFromZero: number;
  readonly samples: readonly MemorySample[];
}

export interface FanoutScenarioRun {
  readonly rounds: readonly FanoutRound[];
  /** Idle rates, cores: both instances, and Redis (shared, the same figure for every variant). */
  readonly idleServerCores: number;
  readonly idleRedisCores: number;
  readonly openSeconds: number;
  readonly subscribeSeconds: number;
  readonly memory?: FanoutMemory;
}

export interface FanoutVariantResults {
  readonly name: FanoutVariantName;
  readonly title: string;
  readonly env: Record<string, string>;
  readonly scenarios: Partial<Record<FanoutScenarioName, FanoutScenarioRun>>;
  /** Bytes both instances wrote to stdout over the fan-out run. */
  readonly logBytes: number;
}

export interface FanoutRun {
  readonly redisVersion: string;
  readonly variants: FanoutVariantResults[];
  readonly warnings: string[];
  readonly durationSeconds: number;
}

interface Member {
  readonly name: FanoutVariantName;
  readonly servers: readonly ServerProcess[];
  readonly load: Generator;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function channelNames(scenario: FanoutScenarioName, count: number): string[] {
  const tag = scenario.replace(/^fanout_/, '').replace(/_/g, '-');
  return count === 1 ? [`fanout:${tag}`] : Array.from({ length: count }, (_, i) => `fanout:${tag}-${String(i).padStart(4, '0')}`);
}

export interface FanoutOptions {
  readonly names: readonly FanoutVariantName[];
  readonly scenarios: readonly FanoutScenarioName[];
  readonly settings: FanoutSettings;
  readonly pinning: Pinning | null;
  readonly sink: Sink;
  readonly progress: (line: string) => void;
  readonly waitForQuiet: () => Promise<void>;
}

export async function runFanout(options: FanoutOptions): Promise<FanoutRun> {
  const { names, settings, pinning, sink, progress } = options;
  const started = Date.now();
  const warnings: string[] = [];
  const redis = await RedisProcess.start(pinning?.load);
  const members: Member[] = [];
  const results = new Map<FanoutVariantName, FanoutVariantResults>();
  progress(`fan-out: redis-server ${redis.version} on port ${redis.port}; starting two instances of each of ${names.join(' ')}`);
  try {
    // One variant at a time: its instances share the server core with each other only (more at
    // once were slower, and a busy core could keep all of them from starting in time); its load
    // process starts meanwhile on the other core.
    const startMember = async (name: FanoutVariantName): Promise<Member> => {
      const variant = FANOUT_VARIANTS[name];
      const env = variant.env(`${sink.endpoint}/fanout-${name}`, redis.url);
      const [servers, load] = await Promise.all([
        Promise.all([0, 1].map(() => ServerProcess.start({ script: variant.script, env }, pinning?.server))),
        Generator.start(pinning?.load),
      ]);
      return { name, servers, load };
    };
    for (const name of names) members.push(await startMember(name));
    for (const name of names) {
      results.set(name, {
        name,
        title: FANOUT_VARIANTS[name].title,
        env: FANOUT_VARIANTS[name].env(`http://127.0.0.1:<sink>/fanout-${name}`, 'redis://127.0.0.1:<port>'),
        scenarios: {},
        logBytes: 0,
      });
    }
    // Many channels first, on processes that have not yet held and released the broadcasts'
    // connections: a process keeps freed pages, which would hide the subscriptions' growth.
    const order = [...options.scenarios].sort((a, b) => Number(b === 'fanout_many_channels') - Number(a === 'fanout_many_channels'));
    for (const scenario of order) {
      await options.waitForQuiet();
      const runs = await runScenario(scenario, members, redis, sink, settings, progress);
      for (const [name, run] of runs) results.get(name)!.scenarios[scenario] = run;
    }
    for (const m of members) {
      const r = results.get(m.name)!;
      results.set(m.name, { ...r, logBytes: m.servers.reduce((sum, s) => sum + s.logBytes, 0) });
    }
  } finally {
    await Promise.all(members.flatMap((m) => [...m.servers.map((s) => s.stop()), m.load.stop()]));
    await redis.stop();
  }
  const variants = names.map((n) => results.get(n)!);
  for (const v of variants) {
    for (const [scenario, run] of Object.entries(v.scenarios)) {
      for (const r of run.rounds) {
        const where = `${v.name} ${scenario} round ${r.round}`;
        if (r.lost > 0) warnings.push(`${where}: ${r.lost} of ${r.expected} deliveries lost`);
        if (r.duplicated > 0) warnings.push(`${where}: ${r.duplicated} deliveries duplicated`);
        if (r.refused + r.unanswered > 0) warnings.push(`${where}: ${r.refused} publishes refused, ${r.unanswered} unanswered`);
        if (r.serverCpuUtilization > 0.9) warnings.push(`${where}: servers at ${(r.serverCpuUtilization * 100).toFixed(0)}% of their core: the rate is near what they sustain`);
        // The load process shares its core with Redis, the sink and the other load processes.
        if (r.generatorCpuUtilization > 0.8 || r.maxPublishLagMs > 50) {
          warnings.push(`${where}: load process at ${(r.generatorCpuUtilization * 100).toFixed(0)}% of its core, a publish ${r.maxPublishLagMs.toFixed(0)} ms behind schedule: it may not have kept up`);
        }
        if (r.otherCpuShare > 0.25) warnings.push(`${where}: other processes used ${(r.otherCpuShare * 100).toFixed(0)}% of a core`);
      }
    }
  }
  return { redisVersion: redis.version, variants, warnings, durationSeconds: (Date.now() - started) / 1000 };
}

interface Accumulated {
  windowSeconds: number;
  serverCpuInWindow: number;
  redisCpuInWindow: number;
  generatorCpuInWindow: number;
  published: number;
  accepted: number;
  refused: number;
  unanswered: number;
  expected: number;
  delivered: number;
  lost: number;
  duplicated: number;
  late: number;
  maxPublishLagMs: number;
  loopDelayP99Ms: number;
}

function fresh(): Accumulated {
  return {
    windowSeconds: 0,
    serverCpuInWindow: 0,
    redisCpuInWindow: 0,
    generatorCpuInWindow: 0,
    published: 0,
    accepted: 0,
    refused: 0,
    unanswered: 0,
    expected: 0,
    delivered: 0,
    lost: 0,
    duplicated: 0,
    late: 0,
    maxPublishLagMs: 0,
    loopDelayP99Ms: 0,
  };
}

async function runScenario(
  scenario: FanoutScenarioName,
  members: readonly Member[],
  redis: RedisProcess,
  sink: Sink,
  settings: FanoutSettings,
  progress: (line: string) => void,
): Promise<Map<FanoutVariantName, FanoutScenarioRun>> {
  const sc = settings.scenarios[scenario];
  const channels = channelNames(scenario, sc.channels);
  const subscriptions = sc.subscribers * sc.perSubscriber;
  const publishes = Math.max(1, Math.round((sc.rate * settings.sliceMs) / 1000));
  progress(
    `${scenario}: ${sc.subscribers} subscribers × ${sc.perSubscriber} of ${sc.channels} channel${sc.channels === 1 ? '' : 's'}, ${sc.publishers} publishers, ${sc.rate} publishes/s of ${settings.payloadBytes} B; ${settings.rounds} rounds of ${members.map((m) => m.name).join(' ')}`,
  );
  const serverCpu = (m: Member): number => m.servers.reduce((sum, s) => sum + processCpuSecondsExact(s.pid), 0);
  const exited = members.flatMap((m) => m.servers.map((s) => s.exited.then((how) => Promise.reject(new Error(`${m.name} instance ${how} during ${scenario}\n${s.tail}`)))));
  // Raced below; a server stopped after the scenario must not count as an unhandled rejection.
  for (const e of exited) e.catch(() => undefined);
  // A job of one variant's load process, failing at once if any server dies meanwhile.
  const run = <T>(m: Member, job: Parameters<Generator['run']>[0], ms: number): Promise<T> => Promise.race([m.load.run<T>(job, ms), ...exited]);
  const opened = new Map<FanoutVariantName, number>();
  const subscribed = new Map<FanoutVariantName, number>();
  const memory = new Map<FanoutVariantName, FanoutMemory>();
  const connections = sc.subscribers + sc.publishers;
  try {
    for (const m of members) {
      const variant = FANOUT_VARIANTS[m.name];
      const urls = m.servers.map((s) => `ws://127.0.0.1:${s.port}${variant.path}`);
      const result = await run<FanoutOpenResult>(
        m,
        { op: 'fanout-open', protocol: variant.protocol, urls, subscribers: sc.subscribers, publishers: sc.publishers, channels, perSubscriber: sc.perSubscriber, concurrency: settings.connectConcurrency },
        connections * 50 + 60_000,
      );
      if (result.open !== connections) throw new Error(`${scenario}: ${m.name} opened ${result.open} of ${connections} connections`);
      opened.set(m.name, result.seconds);
    }
    for (const m of members) {
      const started = performance.now();
      const subscribe = (from: number, to: number): Promise<FanoutSubscribeResult> =>
        run<FanoutSubscribeResult>(m, { op: 'fanout-subscribe', from, to, inflight: settings.subscribeInflight }, (to - from) * sc.perSubscriber * 20 + 60_000);
      let confirmed = 0;
      if (sc.memory) {
        const samples: MemorySample[] = [];
        const sample = async (): Promise<void> => {
          await sleep(settings.memorySettleMs);
          const all = await Promise.all(m.servers.map((s) => s.sample(true)));
          samples.push({ subscriptions: confirmed, rss: all.reduce((x, a) => x + a.rss, 0), heap: all.reduce((x, a) => x + a.heapUsed + a.external, 0) });
        };
        await sample();
        for (let quarter = 1; quarter <= 4; quarter++) {
          confirmed = (await subscribe(Math.round((sc.subscribers * (quarter - 1)) / 4), Math.round((sc.subscribers * quarter) / 4))).subscriptions;
          await sample();
        }
        const [zero, ...rest] = samples;
        const all = samples[samples.length - 1];
        memory.set(m.name, {
          connections: sc.subscribers,
          subscriptions: confirmed,
          rssBytesPerSubscription: slope(rest.map((x) => [x.subscriptions, x.rss])),
          heapBytesPerSubscription: slope(rest.map((x) => [x.subscriptions, x.heap])),
          rssBytesPerSubscriptionFromZero: (all.rss - zero.rss) / confirmed,
          heapBytesPerSubscriptionFromZero: (all.heap - zero.heap) / confirmed,
          samples,
        });
      } else {
        confirmed = (await subscribe(0, sc.subscribers)).subscriptions;
      }
      if (confirmed !== subscriptions) throw new Error(`${scenario}: ${m.name} confirmed ${confirmed} of ${subscriptions} subscriptions`);
      subscribed.set(m.name, (performance.now() - started) / 1000);
    }
    progress(`  ${members.length} variants connected and subscribed; idle rates for ${settings.baselineMs / 1000} s`);

    // The subscribes' own deferred work (spans, logs) goes out before the idle rates are read.
    await sleep(settings.settleMs);
    const idleBefore = new Map(members.map((m) => [m.name, serverCpu(m)]));
    const redisIdleBefore = processCpuSecondsExact(redis.pid);
    const idleStarted = performance.now();
    await sleep(settings.baselineMs);
    const idleSeconds = (performance.now() - idleStarted) / 1000;
    const idleServerCores = new Map(members.map((m) => [m.name, (serverCpu(m) - idleBefore.get(m.name)!) / idleSeconds]));
    const idleRedisCores = (processCpuSecondsExact(redis.pid) - redisIdleBefore) / idleSeconds;

    const slice = async (m: Member, measured: boolean, into: Accumulated | undefined): Promise<void> => {
      const t0 = performance.now();
      const s0 = serverCpu(m);
      const r0 = processCpuSecondsExact(redis.pid);
      const g0 = processCpuSecondsExact(m.load.child.pid!);
      const result = await run<FanoutSliceResult>(
        m,
        { op: 'fanout-slice', publishes, rate: sc.rate, payloadBytes: settings.payloadBytes, drainMs: settings.drainMs, measured },
        settings.sliceMs + settings.drainMs + 60_000,
      );
      if (into === undefined) return;
      into.windowSeconds += (performance.now() - t0) / 1000;
      into.serverCpuInWindow += serverCpu(m) - s0;
      into.redisCpuInWindow += processCpuSecondsExact(redis.pid) - r0;
      into.generatorCpuInWindow += processCpuSecondsExact(m.load.child.pid!) - g0;
      for (const key of ['published', 'accepted', 'refused', 'unanswered', 'expected', 'delivered', 'lost', 'duplicated', 'late'] as const) into[key] += result[key];
      into.maxPublishLagMs = Math.max(into.maxPublishLagMs, result.maxPublishLagMs);
      into.loopDelayP99Ms = Math.max(into.loopDelayP99Ms, result.loopDelayP99Ms);
    };

    for (let c = 0; c < settings.warmupCycles; c++) for (const m of shuffled(members)) await slice(m, false, undefined);
    const bench = [redis.pid, sink.child.pid!, ...members.map((m) => m.load.child.pid!)];
    const rounds = new Map<FanoutVariantName, FanoutRound[]>(members.map((m) => [m.name, []]));
    let lastEnded: { at: number; cpu: Map<FanoutVariantName, number> } | undefined;
    for (let r = 1; r <= settings.rounds; r++) {
      for (const m of members) await run<FanoutLatencyResult>(m, { op: 'fanout-latency' }, 30_000);
      const acc = new Map(members.map((m) => [m.name, fresh()]));
      const cpu0 = new Map(members.map((m) => [m.name, serverCpu(m)]));
      const others0 = bench.reduce((sum, pid) => sum + processCpuSecondsExact(pid), 0);
      const self0 = process.cpuUsage();
      const machine0 = machineBusySeconds();
      const t0 = performance.now();
      for (let c = 0; c < settings.cycles; c++) for (const m of shuffled(members)) await slice(m, true, acc.get(m.name));
      const roundSeconds = (performance.now() - t0) / 1000;
      const cpu = new Map(members.map((m) => [m.name, serverCpu(m) - cpu0.get(m.name)!]));
      const selfUsed = process.cpuUsage(self0);
      const benchCpu =
        bench.reduce((sum, pid) => sum + processCpuSecondsExact(pid), 0) - others0 + (selfUsed.user + selfUsed.system) / 1e6 + [...cpu.values()].reduce((a, b) => a + b, 0);
      const otherCpuShare = Math.max(0, machineBusySeconds() - machine0 - benchCpu) / roundSeconds;
      for (const m of members) {
        const a = acc.get(m.name)!;
        const latencyUs = await run<FanoutLatencyResult>(m, { op: 'fanout-latency' }, 30_000);
        const idle = idleServerCores.get(m.name)!;
        const serverCpuSeconds = cpu.get(m.name)!;
        const charged = Math.max(a.serverCpuInWindow, serverCpuSeconds - idle * (roundSeconds - a.windowSeconds));
        rounds.get(m.name)!.push({
          round: r,
          published: a.published,
          accepted: a.accepted,
          refused: a.refused,
          unanswered: a.unanswered,
          expected: a.expected,
          delivered: a.delivered,
          lost: a.lost,
          duplicated: a.duplicated,
          late: a.late,
          windowSeconds: a.windowSeconds,
          roundSeconds,
          serverCpuSeconds,
          serverCpuInWindow: a.serverCpuInWindow,
          chargedCpuSeconds: charged,
          perCpuSecond: a.delivered / charged,
          deliveryRate: a.delivered / a.windowSeconds,
          serverCpuUtilization: a.serverCpuInWindow / a.windowSeconds,
          redisCpuInWindow: a.redisCpuInWindow,
          redisUsPerPublish: (Math.max(0, a.redisCpuInWindow - idleRedisCores * a.windowSeconds) / Math.max(1, a.accepted)) * 1e6,
          generatorCpuUtilization: a.generatorCpuInWindow / a.windowSeconds,
          otherCpuShare,
          latencyUs,
          maxPublishLagMs: a.maxPublishLagMs,
          loopDelayP99Ms: a.loopDelayP99Ms,
        });
      }
      lastEnded = { at: performance.now(), cpu: new Map(members.map((m) => [m.name, serverCpu(m)])) };
      const summary = members.map((m) => `${m.name} ${Math.round(rounds.get(m.name)![r - 1].perCpuSecond)}`).join(' ');
      const lost = members.reduce((sum, m) => sum + rounds.get(m.name)![r - 1].lost, 0);
      progress(`  ${scenario} round ${r}/${settings.rounds}, deliveries per server CPU-second: ${summary}${lost > 0 ? `; ${lost} LOST` : ''}`);
    }
    // Work a variant deferred past its last slice (a batch of spans exported later) still
    // belongs to its last round; the settle is time it was not loaded.
    await sleep(settings.settleMs);
    if (lastEnded !== undefined) {
      const settled = (performance.now() - lastEnded.at) / 1000;
      for (const m of members) {
        const all = rounds.get(m.name)!;
        const last = all[all.length - 1];
        const serverCpuSeconds = last.serverCpuSeconds + serverCpu(m) - lastEnded.cpu.get(m.name)!;
        const charged = Math.max(last.serverCpuInWindow, serverCpuSeconds - idleServerCores.get(m.name)! * (last.roundSeconds + settled - last.windowSeconds));
        all[all.length - 1] = { ...last, serverCpuSeconds, chargedCpuSeconds: charged, perCpuSecond: last.delivered / charged };
      }
    }
    const out = new Map<FanoutVariantName, FanoutScenarioRun>();
    for (const m of members) {
      const mem = memory.get(m.name);
      out.set(m.name, {
        rounds: rounds.get(m.name)!,
        idleServerCores: idleServerCores.get(m.name)!,
        idleRedisCores,
        openSeconds: opened.get(m.name)!,
        subscribeSeconds: subscribed.get(m.name)!,
        ...(mem === undefined ? {} : { memory: mem }),
      });
    }
    return out;
  } finally {
    await Promise.all(members.map((m) => m.load.run({ op: 'fanout-close' }, 60_000).catch(() => undefined)));
  }
}
