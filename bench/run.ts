/**
 * `npm run bench`: issue 5's benchmark and issue 13's fan-out scenarios (fanout.ts). Every
 * variant's server runs in its own process, all on one core, the load generator and the OTLP
 * sink on the other. Idle memory takes each server in turn; the message and handshake scenarios
 * take every server in turn in short slices, round after round, and so do the fan-out scenarios
 * (two instances per variant on a redis-server the bench starts). The tables go to stdout,
 * progress to stderr, the full results to bench/results/latest.json (and .md).
 *
 *   node dist/bench/run.js                 full run, about 11 minutes on 2 cores, 1.5 more for abuse, ~13 for fan-out
 *   node dist/bench/run.js --tiny          seconds: proves the harness works, measures nothing
 *   node dist/bench/run.js --rounds 5 --variants A,C,D --only echo_64 --out /tmp/r.json
 *   node dist/bench/run.js --only abuse --variants A,C   one hostile client at a time (abuse.ts); A and C unless --variants
 *   node dist/bench/run.js --only fanout_broadcast_500 --variants F,FC,S,C --rounds 3
 *                                          --variants names echo variants (A–E) and fan-out ones (F, FC, S, B–E) alike
 *   node dist/bench/run.js --only recovery_storm        2,000 subscribers back at once from 100 behind (recovery-storm.ts;
 *                                          --storm-subscribers N, --storm-back N)
 *   node dist/bench/run.js --profile C,D   --cpu-prof of each server at 64 B saturation (--profile-payload 1024,
 *                                          or --profile-churn: handshakes instead of messages)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ABUSE_DEFAULT_VARIANTS, abuseEnv, runAbuse, type AbuseSettings } from './abuse.js';
import { detectPinning, pinSelf } from './children.js';
import { FANOUT_SCENARIO_NAMES, runFanout, type FanoutScenarioName, type FanoutSettings, type FanoutVariantResults } from './fanout.js';
import { fanoutMarkdownReport, fanoutTextReport, FANOUT_TARGETS, summariseFanout, type FanoutSummary } from './fanout-report.js';
import { FANOUT_VARIANT_NAMES, type FanoutVariantName } from './fanout-variants.js';
import { Generator, Sink } from './generator.js';
import { describeMachine, type Machine } from './machine.js';
import { profileVariants } from './profile.js';
import { RECOVERY_STORM, runRecoveryStorm, STORM_FULL, STORM_TINY, stormTable, type StormSettings, type StormVariantResults } from './recovery-storm.js';
import { markdownReport, summarise, textReport, TARGETS, type Summary, type VariantResults } from './report.js';
import {
  checkConformance,
  idleAndScrape,
  interleaved,
  messagesHandled,
  SCENARIO_NAMES,
  type InterleaveOptions,
  type ScenarioName,
  type ScenarioRound,
  type Scenarios,
  type Settings,
} from './scenarios.js';
import { machineBusySeconds } from './proc.js';
import { ServerProcess } from './server-process.js';
import { spread } from './stats.js';
import { VARIANT_NAMES, VARIANTS, type VariantName } from './variants.js';

const FULL: Settings = {
  rounds: { echo: 12, latency: 8, churn: 6, idle: 3 },
  sliceMs: 100,
  cycles: { echo: 10, latency: 20, churn: 10 },
  warmupCycles: 3,
  settleMs: 6000,
  // 128 connections: E samples whole connections (parentbased on the handshake), 10% of 128 is
  // steadier than 10% of 64; 4 in flight keeps 512 requests outstanding.
  echo: { connections: 128, inflight: 4 },
  latency: { connections: 64, payloadBytes: 64 },
  churn: { concurrency: 16 },
  idle: { connections: 10_000, concurrency: 200, settleMs: 1000, scrapes: 20 },
  abuse: {
    durationMs: 6000,
    graceMs: 2000,
    calm: { connections: 4, rate: 200, healthzEveryMs: 100, connectEveryMs: 200 },
    pipelined: { sockets: 20, requests: 2200 },
    drainMs: 1000,
    costly: { rate: 5, bytes: 1_000_000 },
    // Under the default rate limit (100/s), so every echo is answered rather than refused: what
    // is tested is the buffering of replies nobody reads. 6 s of it asks 4.7 MiB a connection,
    // past MAX_BUFFERED_BYTES (4 MiB) if the attacker gets it all out.
    slow: { connections: 500, rate: 50, payloadBytes: 16_384 },
    hoard: { connections: 2000, concurrency: 100 },
  },
};

const TINY: Settings = {
  rounds: { echo: 2, latency: 2, churn: 2, idle: 1 },
  sliceMs: 200,
  cycles: { echo: 2, latency: 2, churn: 2 },
  warmupCycles: 1,
  settleMs: 200,
  echo: { connections: 8, inflight: 4 },
  latency: { connections: 8, payloadBytes: 64 },
  churn: { concurrency: 4 },
  idle: { connections: 500, concurrency: 50, settleMs: 100, scrapes: 3 },
  abuse: {
    durationMs: 600,
    graceMs: 500,
    calm: { connections: 2, rate: 50, healthzEveryMs: 100, connectEveryMs: 200 },
    pipelined: { sockets: 2, requests: 20 },
    drainMs: 100,
    costly: { rate: 5, bytes: 50_000 },
    slow: { connections: 5, rate: 10, payloadBytes: 16_384 },
    hoard: { connections: 50, concurrency: 25 },
  },
};

const broadcast = (subscribers: number, publishers: number, rate: number) => ({ subscribers, channels: 1, perSubscriber: 1, publishers, rate, memory: false });

const FULL_FANOUT: FanoutSettings = {
  rounds: 6,
  // At a fixed rate a slice needs enough publications to weigh: 50 at 100/s.
  sliceMs: 500,
  cycles: 4,
  warmupCycles: 2,
  drainMs: 10_000,
  // D and E export their spans in batches every 5 s.
  settleMs: 6000,
  // One period of ws-service's heartbeat (30 s), which pings every connection at once.
  baselineMs: 30_000,
  payloadBytes: 256,
  connectConcurrency: 100,
  subscribeInflight: 200,
  memorySettleMs: 1000,
  scenarios: {
    fanout_broadcast_100: broadcast(100, 4, 100),
    fanout_broadcast_500: broadcast(500, 4, 100),
    // 2,000 deliveries per publish: at 25/s Socket.IO's two instances took 90% of their core
    // and fell behind within slices; at 15/s every variant keeps well under it.
    fanout_broadcast_2000: broadcast(2000, 4, 15),
    // 25 deliveries per publish: at 400/s every variant's servers took 65–85% of their core
    // with others' work on the machine; at 200/s about half.
    fanout_many_channels: { subscribers: 5000, channels: 1000, perSubscriber: 5, publishers: 4, rate: 200, memory: true },
  },
};

const TINY_FANOUT: FanoutSettings = {
  rounds: 2,
  sliceMs: 100,
  cycles: 1,
  warmupCycles: 1,
  drainMs: 5000,
  settleMs: 100,
  baselineMs: 200,
  payloadBytes: 256,
  connectConcurrency: 50,
  subscribeInflight: 50,
  memorySettleMs: 0,
  scenarios: {
    fanout_broadcast_100: broadcast(6, 2, 100),
    fanout_broadcast_500: broadcast(10, 2, 100),
    fanout_broadcast_2000: broadcast(14, 2, 50),
    fanout_many_channels: { subscribers: 40, channels: 20, perSubscriber: 5, publishers: 2, rate: 100, memory: true },
  },
};

/** File descriptors a process needs beyond the idle connections it holds. */
const FD_HEADROOM = 256;
/** Other processes may use this much of one core before a phase waits for them. */
const QUIET_CORES = 0.3;

export interface Results {
  readonly schema: 3;
  readonly mode: 'full' | 'tiny' | 'custom';
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly machine: Machine;
  readonly settings: Settings;
  /** Open-loop rate of the latency scenario: half of A's 64 B saturation msgs/s (median of its windows). */
  readonly latencyRate: number;
  readonly variants: readonly (VariantResults & { readonly env: Record<string, string> })[];
  readonly scenarios: readonly string[];
  readonly targets: typeof TARGETS;
  readonly warnings: readonly string[];
  readonly summary: Summary;
  /** Issue 13's recovery storm (recovery-storm.ts); absent when it did not run. */
  readonly storm?: { readonly settings: StormSettings; readonly variants: readonly StormVariantResults[] };
  /** Issue 13's fan-out scenarios; absent when none ran. */
  readonly fanout?: {
    readonly settings: FanoutSettings;
    readonly redisVersion: string;
    readonly durationSeconds: number;
    readonly variants: readonly FanoutVariantResults[];
    readonly scenarios: readonly FanoutScenarioName[];
    readonly targets: typeof FANOUT_TARGETS;
    readonly summary: FanoutSummary;
  };
}

const progress = (line: string): void => {
  process.stderr.write(`[bench] ${line}\n`);
};

/**
 * On a shared machine, waits (within what is left of `budget`) until other processes leave the
 * cores mostly idle, so a burst of someone else's work does not land in a measurement.
 */
async function waitForQuiet(budget: { ms: number }): Promise<void> {
  for (;;) {
    const before = machineBusySeconds();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const busy = machineBusySeconds() - before;
    if (busy <= QUIET_CORES || budget.ms <= 0) return;
    progress(`machine busy (${busy.toFixed(2)} cores in use by others); waiting`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    budget.ms -= 3000;
  }
}

function variantList(raw: string | undefined): VariantName[] {
  if (raw === undefined) return [...VARIANT_NAMES];
  const names = raw.split(',').map((s) => s.trim().toUpperCase());
  const known = [...new Set<string>([...VARIANT_NAMES, ...FANOUT_VARIANT_NAMES])];
  for (const n of names) if (!known.includes(n)) throw new Error(`unknown variant ${n}; known: ${known.join(', ')}`);
  return VARIANT_NAMES.filter((v) => names.includes(v));
}

/** The fan-out variants among --variants (F, FC and S are fan-out's alone; B–E are in both). */
function fanoutVariantList(raw: string | undefined): FanoutVariantName[] {
  if (raw === undefined) return [...FANOUT_VARIANT_NAMES];
  const names = raw.split(',').map((s) => s.trim().toUpperCase());
  return FANOUT_VARIANT_NAMES.filter((v) => names.includes(v));
}

/** --rounds N: N rounds of everything (idle memory at most its default: it is stable and slow). */
function scaleRounds(base: Settings['rounds'], n: number): Settings['rounds'] {
  return { echo: n, latency: n, churn: n, idle: Math.min(base.idle, n) };
}

type AnyScenario = ScenarioName | FanoutScenarioName | typeof RECOVERY_STORM;

function scenarioList(raw: string | undefined): Set<AnyScenario> {
  const known: readonly AnyScenario[] = [...SCENARIO_NAMES, ...FANOUT_SCENARIO_NAMES, RECOVERY_STORM];
  if (raw === undefined) return new Set(known);
  const names = raw.split(',').map((s) => s.trim());
  for (const n of names) if (!(known as readonly string[]).includes(n)) throw new Error(`unknown scenario ${n}; known: ${known.join(', ')}`);
  return new Set(names as AnyScenario[]);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tiny: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      variants: { type: 'string' },
      out: { type: 'string' },
      rate: { type: 'string' },
      only: { type: 'string' },
      profile: { type: 'string' },
      'profile-seconds': { type: 'string', default: '10' },
      'profile-payload': { type: 'string', default: '64' },
      'profile-churn': { type: 'boolean', default: false },
      'max-minutes': { type: 'string' },
      'storm-subscribers': { type: 'string' },
      'storm-back': { type: 'string' },
    },
  });
  const started = Date.now();
  const maxMinutes = Number(values['max-minutes'] ?? (values.tiny ? 5 : 45));
  // However the run goes, it ends: children are killed by children.ts's exit hook.
  setTimeout(() => {
    progress(`run exceeded ${maxMinutes} minutes; stopping`);
    process.exit(1);
  }, maxMinutes * 60_000).unref();

  const pinning = detectPinning();
  const machine = describeMachine(pinning);
  if (pinning) pinSelf(pinning.load);
  const resultsDir = fileURLToPath(new URL('../../bench/results/', import.meta.url));

  if (values.profile !== undefined) {
    const work = values['profile-churn'] ? { kind: 'churn' as const } : { kind: 'saturate' as const, payloadBytes: Number(values['profile-payload']) };
    await profileVariants(variantList(values.profile), Number(values['profile-seconds']), work, pinning, resolve(resultsDir, 'profiles'));
    return;
  }

  const base = values.tiny ? TINY : FULL;
  const warnings: string[] = [];
  let idleConnections = base.idle.connections;
  if (machine.fdLimit < idleConnections + FD_HEADROOM) {
    idleConnections = Math.max(100, machine.fdLimit - FD_HEADROOM);
    warnings.push(`open-file limit ${machine.fdLimit} is too low for ${base.idle.connections} idle connections; measured ${idleConnections} (raise it with ulimit -n)`);
  }
  let hoard = base.abuse.hoard.connections;
  if (machine.fdLimit < hoard + FD_HEADROOM) {
    hoard = Math.max(100, machine.fdLimit - FD_HEADROOM);
    warnings.push(`open-file limit ${machine.fdLimit} is too low to hoard ${base.abuse.hoard.connections} connections; measured ${hoard}`);
  }
  const abuse: AbuseSettings = { ...base.abuse, hoard: { ...base.abuse.hoard, connections: hoard } };
  const settings: Settings = {
    ...base,
    rounds: values.rounds === undefined ? base.rounds : scaleRounds(base.rounds, Math.max(1, Number(values.rounds))),
    idle: { ...base.idle, connections: idleConnections },
    abuse,
  };
  const names = variantList(values.variants);
  const fanoutNames = fanoutVariantList(values.variants);
  const only = scenarioList(values.only);
  const echoWanted = SCENARIO_NAMES.some((s) => only.has(s));
  const fanoutScenarios = FANOUT_SCENARIO_NAMES.filter((s) => only.has(s));
  if (echoWanted && names.length === 0) throw new Error(`--variants names none of the echo variants (${VARIANT_NAMES.join(', ')})`);
  if (fanoutScenarios.length > 0 && fanoutNames.length === 0) throw new Error(`--variants names none of the fan-out variants (${FANOUT_VARIANT_NAMES.join(', ')})`);
  const fanoutBase = values.tiny ? TINY_FANOUT : FULL_FANOUT;
  const fanoutSettings: FanoutSettings = values.rounds === undefined ? fanoutBase : { ...fanoutBase, rounds: Math.max(1, Number(values.rounds)) };
  let rate = values.rate === undefined ? undefined : Number(values.rate);
  if (only.has('latency_half_load') && rate === undefined && (names[0] !== 'A' || !only.has('echo_64'))) {
    throw new Error("the latency scenario's rate comes from A's echo_64 saturation: run both, or give --rate");
  }
  if (pinning === null) warnings.push('no taskset or a single core: servers and load share the CPU');
  for (const w of warnings) progress(`warning: ${w}`);
  progress(`${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}; variants ${echoWanted ? names.join(' ') : '–'}${fanoutScenarios.length > 0 ? `; fan-out variants ${fanoutNames.join(' ')}` : ''}`);

  const quiet = { ms: values.tiny ? 0 : 180_000 };
  const sink = await Sink.start(pinning?.load);
  const generator = await Generator.start(pinning?.load);
  // A second load process, so an attack's own work stays out of the calm client's event loop.
  const attacker = only.has('abuse') ? await Generator.start(pinning?.load) : undefined;
  const servers = new Map<VariantName, ServerProcess>();
  const results: Results['variants'][number][] = [];
  let fanout: Results['fanout'];
  let storm: Results['storm'];
  const start = async (name: VariantName): Promise<ServerProcess> => {
    const server = await ServerProcess.start({ script: VARIANTS[name].script, env: VARIANTS[name].env(`${sink.endpoint}/${name}`) }, pinning?.server);
    // Also the warm-up: code compiled and lazily made state made before anything is measured.
    await checkConformance(server, generator);
    return server;
  };
  try {
    const scenarios = new Map<VariantName, { -readonly [K in keyof Scenarios]?: Scenarios[K] }>(names.map((n) => [n, {}]));

    if (only.has('idle_memory') || only.has('metrics_scrape')) {
      // A fresh process per round: after connections close, a process keeps their pages, and the
      // next round's growth would be hidden in them.
      for (let round = 1; round <= settings.rounds.idle; round++) {
        for (const name of names) {
          await waitForQuiet(quiet);
          const server = await start(name);
          try {
            const { memory, scrape } = await idleAndScrape(server, generator, settings, VARIANTS[name].noMetrics);
            const s = scenarios.get(name)!;
            if (only.has('idle_memory')) s.idle_memory = [...(s.idle_memory ?? []), memory];
            if (only.has('metrics_scrape')) s.metrics_scrape = [...(s.metrics_scrape ?? []), scrape];
            progress(`idle round ${round}/${settings.rounds.idle} ${name}: ${(memory.rssBytesPerConnection / 1024).toFixed(2)} KiB RSS, ${(memory.heapBytesPerConnection / 1024).toFixed(2)} KiB heap per connection`);
          } finally {
            await server.stop();
          }
        }
      }
    }
    // What the sink counts from here on is the long-lived servers' exports alone.
    await sink.reset();
    const interleavedWanted = (['churn', 'echo_64', 'latency_half_load', 'echo_1k'] as const).some((s) => only.has(s));
    if (interleavedWanted) for (const name of names) servers.set(name, await start(name));
    const run = async (scenario: 'echo_64' | 'echo_1k' | 'latency_half_load' | 'churn', options: InterleaveOptions): Promise<void> => {
      if (!only.has(scenario)) return;
      await waitForQuiet(quiet);
      progress(`${scenario}: ${options.rounds} rounds of ${names.join(' ')}`);
      const rounds = await interleaved(servers, generator, settings, options, (text) => progress(`  ${text}`));
      for (const [name, r] of rounds) scenarios.get(name as VariantName)![scenario] = r;
    };
    const { rounds: r, cycles: c } = settings;
    const echo = { kind: 'saturate', connections: settings.echo.connections, inflight: settings.echo.inflight } as const;
    await run('churn', { kind: 'churn', rounds: r.churn, cycles: c.churn, concurrency: settings.churn.concurrency });
    await run('echo_64', { ...echo, rounds: r.echo, cycles: c.echo, payloadBytes: 64 });
    // Half of A's saturation, fixed for every variant and round.
    rate ??= Math.round(spread(scenarios.get('A')?.echo_64?.map((x) => x.windowRate) ?? []).median / 2);
    await run('latency_half_load', { kind: 'rate', rounds: r.latency, cycles: c.latency, connections: settings.latency.connections, payloadBytes: settings.latency.payloadBytes, rate });
    await run('echo_1k', { ...echo, rounds: r.echo, cycles: c.echo, payloadBytes: 1024 });

    const counts = await sink.counts();
    for (const name of echoWanted ? names : []) {
      const server = servers.get(name);
      const variant = VARIANTS[name];
      const sinkCounts = Object.fromEntries(
        Object.entries(counts)
          .filter(([key]) => key.startsWith(`${name}/`))
          .map(([key, value]) => [key.slice(name.length + 1), value]),
      );
      results.push({
        name,
        title: variant.title,
        env: variant.env(`http://127.0.0.1:<sink>/${name}`),
        scenarios: scenarios.get(name)!,
        logBytes: server?.logBytes ?? 0,
        ...(variant.noMetrics === undefined && server !== undefined ? { messagesHandled: await messagesHandled(server) } : {}),
        ...(variant.exports ? { sink: sinkCounts } : {}),
      });
    }

    if (attacker !== undefined) {
      // Alone on the server core: the long-lived servers are done.
      await Promise.all([...servers.values()].map((s) => s.stop()));
      const targets = values.variants === undefined ? names.filter((n) => ABUSE_DEFAULT_VARIANTS.includes(n)) : names;
      progress(`abuse: ${settings.abuse.durationMs / 1000} s per attack against each of ${targets.join(' ')}, a fresh server each`);
      const startAbused = async (name: VariantName): Promise<ServerProcess> => {
        const server = await ServerProcess.start({ script: VARIANTS[name].script, env: abuseEnv(name, `${sink.endpoint}/${name}`) }, pinning?.server);
        await checkConformance(server, generator);
        return server;
      };
      const runs = await runAbuse(targets, settings.abuse, startAbused, generator, attacker, () => waitForQuiet(quiet), progress);
      for (const [name, r] of runs) scenarios.get(name)!.abuse = r;
    }

    if (fanoutScenarios.length > 0) {
      // The fan-out servers have the server core to themselves.
      await Promise.all([...servers.values()].map((s) => s.stop()));
      await sink.reset();
      const run = await runFanout({
        names: fanoutNames,
        scenarios: fanoutScenarios,
        settings: fanoutSettings,
        pinning,
        sink,
        progress,
        // A tiny run measures nothing: the second spent looking at the machine is not worth it there.
        waitForQuiet: values.tiny ? () => Promise.resolve() : () => waitForQuiet(quiet),
      });
      warnings.push(...run.warnings);
      fanout = {
        settings: fanoutSettings,
        redisVersion: run.redisVersion,
        durationSeconds: run.durationSeconds,
        variants: run.variants,
        scenarios: FANOUT_SCENARIO_NAMES,
        targets: FANOUT_TARGETS,
        summary: summariseFanout(run.variants, fanoutScenarios),
      };
    }

    if (only.has(RECOVERY_STORM)) {
      await Promise.all([...servers.values()].map((s) => s.stop()));
      const base = values.tiny ? STORM_TINY : STORM_FULL;
      const stormSettings: StormSettings = {
        ...base,
        ...(values.rounds === undefined ? {} : { rounds: Math.max(1, Number(values.rounds)) }),
        ...(values['storm-subscribers'] === undefined ? {} : { subscribers: Math.max(2, Number(values['storm-subscribers'])) }),
        ...(values['storm-back'] === undefined ? {} : { back: Math.max(1, Number(values['storm-back'])) }),
      };
      await waitForQuiet(quiet);
      progress(`recovery storm: ${stormSettings.subscribers} subscribers, ${stormSettings.back} back, ${stormSettings.rounds} rounds`);
      storm = { settings: stormSettings, variants: await runRecoveryStorm(stormSettings, pinning, (line) => progress(`  ${line}`)) };
    }
  } finally {
    await Promise.all([...servers.values()].map((s) => s.stop()));
    await attacker?.stop();
    await generator.stop();
    await sink.stop();
  }

  for (const v of results) {
    for (const [scenario, value] of Object.entries(v.scenarios)) {
      for (const [i, r] of (value as Partial<ScenarioRound>[]).entries()) {
        if (r.otherCpuShare !== undefined && r.otherCpuShare > 0.25) {
          warnings.push(`${v.name} ${scenario} round ${i + 1}: other processes used ${(r.otherCpuShare * 100).toFixed(0)}% of a core`);
        }
        if (r.window?.overloaded) warnings.push(`${v.name} ${scenario} round ${i + 1}: requests piled up faster than answered`);
        if (scenario.startsWith('echo') && r.serverCpuUtilization !== undefined && r.serverCpuUtilization < 0.9) {
          warnings.push(`${v.name} ${scenario} round ${i + 1}: server not saturated (${(r.serverCpuUtilization * 100).toFixed(0)}% CPU)`);
        }
        // The generator has a core of its own; near its capacity it, not the server, sets the pace.
        if (scenario.startsWith('echo') && r.generatorCpuUtilization !== undefined && r.generatorCpuUtilization > 0.9) {
          warnings.push(`${v.name} ${scenario} round ${i + 1}: load generator at ${(r.generatorCpuUtilization * 100).toFixed(0)}% of its core`);
        }
      }
    }
  }
  for (const v of results) {
    for (const run of v.scenarios.abuse ?? []) {
      if (run.otherCpu > 0.25) warnings.push(`${v.name} abuse ${run.attack}: other processes used ${(run.otherCpu * 100).toFixed(0)}% of a core`);
      if (run.serverExited !== undefined) warnings.push(`${v.name} abuse ${run.attack}: the server ${run.serverExited}`);
    }
  }
  for (const w of warnings.slice(0, 20)) progress(`warning: ${w}`);
  if (warnings.length > 20) progress(`… and ${warnings.length - 20} more warnings in the JSON`);

  const durationSeconds = (Date.now() - started) / 1000;
  const latencyRate = rate ?? Number.NaN;
  const summary = summarise(results, settings, latencyRate);
  const output: Results = {
    schema: 3,
    mode: values.tiny ? 'tiny' : values.rounds || values.variants || values.only || values['storm-subscribers'] || values['storm-back'] ? 'custom' : 'full',
    startedAt: new Date(started).toISOString(),
    durationSeconds,
    machine,
    settings,
    latencyRate,
    variants: results,
    scenarios: SCENARIO_NAMES,
    targets: TARGETS,
    warnings,
    summary,
    ...(fanout === undefined ? {} : { fanout }),
    ...(storm === undefined ? {} : { storm }),
  };
  const report = { summary, machine, settings, durationSeconds };
  const fanoutReport = fanout === undefined ? undefined : { summary: fanout.summary, settings: fanout.settings, machine, redisVersion: fanout.redisVersion, durationSeconds: fanout.durationSeconds };
  const stormReport = storm === undefined ? [] : [`Recovery storm, ${storm.settings.rounds === 1 ? '1 round' : `medians of ${storm.settings.rounds} rounds`}\n\n${stormTable(storm.variants)}\n`];
  const text = [...(echoWanted ? [textReport(report)] : []), ...(fanoutReport === undefined ? [] : [fanoutTextReport(fanoutReport)]), ...stormReport];
  const markdown = [...(echoWanted ? [markdownReport(report)] : []), ...(fanoutReport === undefined ? [] : [fanoutMarkdownReport(fanoutReport)]), ...stormReport];
  process.stdout.write(text.join('\n'));
  const out = resolve(values.out ?? resolve(resultsDir, 'latest.json'));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(output, null, 2)}\n`);
  writeFileSync(out.replace(/\.json$/, '') + '.md', markdown.join('\n'));
  progress(`results: ${out}; took ${Math.round(durationSeconds)} s`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
