/**
 * `npm run bench`: issue 5's benchmark. Variants A–E run alternately, round after round, each
 * server in its own process on its own core with the load generator on the other; the table
 * goes to stdout, progress to stderr, the full results to bench/results/latest.json (and .md).
 *
 *   node dist/bench/run.js                 full run (3 rounds, about 12 minutes on 2 cores)
 *   node dist/bench/run.js --tiny          seconds: proves the harness works, measures nothing
 *   node dist/bench/run.js --rounds 5 --variants A,C,D --only echo_64 --out /tmp/r.json
 *   node dist/bench/run.js --profile C,D   --cpu-prof of each server at 64 B saturation
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { detectPinning, pinSelf, type Pinning } from './children.js';
import { Generator, Sink } from './generator.js';
import { describeMachine, type Machine } from './machine.js';
import { profileVariants } from './profile.js';
import { markdownReport, summarise, textReport, TARGETS, type RunRecord, type Summary } from './report.js';
import { checkConformance, churn, echo, idleAndScrape, latency, messagesHandled, SCENARIO_NAMES, type EchoResult, type LatencyResult, type ScenarioName, type Scenarios, type Settings } from './scenarios.js';
import { machineBusySeconds, ServerProcess } from './server-process.js';
import { VARIANT_NAMES, VARIANTS, type VariantName } from './variants.js';

const FULL: Settings = {
  rounds: 3,
  attempts: 3,
  echo: { connections: 64, inflight: 8, warmupMs: 2000, measureMs: 5000 },
  latency: { connections: 64, warmupMs: 1000, measureMs: 6000, payloadBytes: 64 },
  churn: { concurrency: 16, warmupMs: 1000, measureMs: 4000 },
  idle: { connections: 10_000, concurrency: 200, settleMs: 1000, scrapes: 20 },
};

const TINY: Settings = {
  rounds: 1,
  attempts: 1,
  echo: { connections: 8, inflight: 4, warmupMs: 200, measureMs: 400 },
  latency: { connections: 8, warmupMs: 100, measureMs: 400, payloadBytes: 64 },
  churn: { concurrency: 4, warmupMs: 100, measureMs: 400 },
  idle: { connections: 500, concurrency: 50, settleMs: 100, scrapes: 3 },
};

/** File descriptors a process needs beyond the idle connections it holds. */
const FD_HEADROOM = 256;

export interface Results {
  readonly schema: 1;
  readonly mode: 'full' | 'tiny' | 'custom';
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly machine: Machine;
  readonly settings: Settings;
  /** Open-loop rate of the latency scenario: half of A's 64 B saturation msgs/s in round 1. */
  readonly latencyRate: number;
  readonly variants: readonly { readonly name: VariantName; readonly title: string; readonly env: Record<string, string> }[];
  readonly scenarios: readonly string[];
  readonly targets: typeof TARGETS;
  readonly warnings: readonly string[];
  readonly runs: readonly RunRecord[];
  readonly summary: Summary;
}

/** Other processes may use this much of one core before a variant's run waits for them. */
const QUIET_CORES = 0.3;

/**
 * On a shared machine, waits (within what is left of `budget`) until other processes leave the
 * cores mostly idle, so a burst of someone else's work does not land in a measurement. Returns
 * the cores busy when the run starts.
 */
async function waitForQuiet(budget: { ms: number }): Promise<number> {
  for (;;) {
    const before = machineBusySeconds();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const after = machineBusySeconds();
    if (before === undefined || after === undefined) return Number.NaN;
    const busy = after - before;
    if (busy <= QUIET_CORES || budget.ms <= 0) return busy;
    progress(`  machine busy (${busy.toFixed(2)} cores in use by others); waiting`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    budget.ms -= 3000;
  }
}

/** A saturation window where the server used less of its core than this was limited by something else. */
const SATURATED = 0.9;
/** Other processes using more than this share of a core during a latency window disturb it. */
const DISTURBED = 0.25;
/** Runs a scenario again (after waiting for quiet) while `valid` says its measurement is not. */
async function attempt<T>(what: string, run: () => Promise<T>, valid: (r: T) => string | undefined, quiet: { ms: number }, attempts: number): Promise<T> {
  for (let i = 1; ; i++) {
    const result = await run();
    const why = valid(result);
    if (why === undefined || i >= attempts) {
      if (why !== undefined) progress(`  ${what}: kept after ${i} attempts although ${why}`);
      return result;
    }
    progress(`  ${what}: ${why}; again`);
    await waitForQuiet(quiet);
  }
}

const saturated = (r: EchoResult): string | undefined =>
  r.serverCpuUtilization >= SATURATED ? undefined : `server not saturated (${(r.serverCpuUtilization * 100).toFixed(0)}% CPU; others used ${((r.otherCpuSeconds / r.seconds) * 100).toFixed(0)}%)`;

const undisturbed = (r: LatencyResult): string | undefined =>
  r.otherCpuSeconds / r.seconds <= DISTURBED && !r.overloaded ? undefined : `other processes used ${((r.otherCpuSeconds / r.seconds) * 100).toFixed(0)}% of a core${r.overloaded ? ', requests piled up' : ''}`;

const progress = (line: string): void => {
  process.stderr.write(`[bench] ${line}\n`);
};

async function runVariant(
  name: VariantName,
  round: number,
  settings: Settings,
  pinning: Pinning | null,
  sink: Sink,
  rate: { value?: number },
  only: ReadonlySet<ScenarioName>,
  quiet: { ms: number },
): Promise<RunRecord> {
  const variant = VARIANTS[name];
  const busyAtStart = await waitForQuiet(quiet);
  const started = performance.now();
  const generator = await Generator.start(pinning?.load);
  let server: ServerProcess | undefined;
  try {
    server = await ServerProcess.start({ script: variant.script, env: variant.env(sink.endpoint) }, pinning?.server);
    await checkConformance(server, generator);
    if (variant.exports) await sink.reset();

    const scenarios: { -readonly [K in ScenarioName]?: Scenarios[K] } = {};
    if (only.has('idle_memory') || only.has('metrics_scrape')) {
      const { memory, scrape } = await idleAndScrape(server, generator, settings, variant.noMetrics);
      if (only.has('idle_memory')) scenarios.idle_memory = memory;
      if (only.has('metrics_scrape')) scenarios.metrics_scrape = scrape;
      progress(`  ${name}: ${(memory.rssBytesPerConnection / 1024).toFixed(2)} KiB RSS per idle connection`);
    }
    if (only.has('churn')) {
      scenarios.churn = await churn(server, generator, settings);
      progress(`  ${name}: ${scenarios.churn.handshakesPerSecond.toFixed(0)} handshakes/s`);
    }
    if (only.has('echo_64')) {
      const r = (scenarios.echo_64 = await attempt(`${name} echo 64 B`, () => echo(server!, generator, settings, 64), saturated, quiet, settings.attempts));
      progress(`  ${name}: 64 B ${r.msgsPerCpuSecond.toFixed(0)} msgs per CPU-s, ${r.msgsPerSecond.toFixed(0)} msgs/s, server CPU ${(r.serverCpuUtilization * 100).toFixed(0)}%`);
      // The latency scenario's rate is fixed once, from A's first saturation, for every variant and round.
      rate.value ??= Math.max(1, Math.round(r.msgsPerSecond / 2));
    }
    if (only.has('latency_half_load')) {
      const r = (scenarios.latency_half_load = await attempt(`${name} latency`, () => latency(server!, generator, settings, rate.value!), undisturbed, quiet, settings.attempts));
      progress(`  ${name}: at ${rate.value} msg/s p50 ${r.latencyUs.p50.toFixed(0)} µs, p99 ${r.latencyUs.p99.toFixed(0)} µs`);
    }
    if (only.has('echo_1k')) {
      const r = (scenarios.echo_1k = await attempt(`${name} echo 1 KiB`, () => echo(server!, generator, settings, 1024), saturated, quiet, settings.attempts));
      progress(`  ${name}: 1 KiB ${r.msgsPerCpuSecond.toFixed(0)} msgs per CPU-s`);
    }
    return {
      round,
      variant: name,
      seconds: (performance.now() - started) / 1000,
      busyCoresAtStart: busyAtStart,
      scenarios,
      logBytes: server.logBytes,
      ...(variant.noMetrics === undefined ? { messagesHandled: await messagesHandled(server) } : {}),
      ...(variant.exports ? { sink: await sink.counts() } : {}),
    };
  } finally {
    await server?.stop();
    await generator.stop();
  }
}

function variantList(raw: string | undefined): VariantName[] {
  if (raw === undefined) return [...VARIANT_NAMES];
  const names = raw.split(',').map((s) => s.trim().toUpperCase());
  for (const n of names) if (!(VARIANT_NAMES as readonly string[]).includes(n)) throw new Error(`unknown variant ${n}; known: ${VARIANT_NAMES.join(', ')}`);
  return VARIANT_NAMES.filter((v) => names.includes(v));
}

function scenarioList(raw: string | undefined): Set<ScenarioName> {
  if (raw === undefined) return new Set(SCENARIO_NAMES);
  const names = raw.split(',').map((s) => s.trim());
  for (const n of names) if (!(SCENARIO_NAMES as readonly string[]).includes(n)) throw new Error(`unknown scenario ${n}; known: ${SCENARIO_NAMES.join(', ')}`);
  return new Set(names as ScenarioName[]);
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
      'max-minutes': { type: 'string' },
    },
  });
  const started = Date.now();
  const maxMinutes = Number(values['max-minutes'] ?? (values.tiny ? 3 : 30));
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
    await profileVariants(variantList(values.profile), Number(values['profile-seconds']), pinning, resolve(resultsDir, 'profiles'));
    return;
  }

  const base = values.tiny ? TINY : FULL;
  const warnings: string[] = [];
  let idleConnections = base.idle.connections;
  if (machine.fdLimit < idleConnections + FD_HEADROOM) {
    idleConnections = Math.max(100, machine.fdLimit - FD_HEADROOM);
    warnings.push(`open-file limit ${machine.fdLimit} is too low for ${base.idle.connections} idle connections; measured ${idleConnections} (raise it with ulimit -n)`);
  }
  const settings: Settings = {
    ...base,
    rounds: values.rounds === undefined ? base.rounds : Math.max(1, Number(values.rounds)),
    idle: { ...base.idle, connections: idleConnections },
  };
  const variants = variantList(values.variants);
  const rate: { value?: number } = values.rate === undefined ? {} : { value: Number(values.rate) };
  const only = scenarioList(values.only);
  if (only.has('latency_half_load') && rate.value === undefined && (variants[0] !== 'A' || !only.has('echo_64'))) {
    throw new Error("the latency scenario's rate comes from A's echo_64 saturation: run both, or give --rate");
  }
  if (pinning === null) warnings.push('no taskset or a single core: server and load share the CPU');
  if (machine.loadAverage > 0.5) warnings.push(`load average ${machine.loadAverage} at start: the machine is not idle`);
  for (const w of warnings) progress(`warning: ${w}`);
  progress(`${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}; ${settings.rounds} round(s) of ${variants.join(' ')}`);

  const sink = await Sink.start(pinning?.load);
  const runs: RunRecord[] = [];
  // At most this long, over the whole run, waiting for other processes to quiet down.
  const quiet = { ms: values.tiny ? 0 : 180_000 };
  try {
    for (let round = 1; round <= settings.rounds; round++) {
      for (const name of variants) {
        progress(`round ${round}/${settings.rounds}, variant ${name}: ${VARIANTS[name].title}`);
        runs.push(await runVariant(name, round, settings, pinning, sink, rate, only, quiet));
      }
    }
  } finally {
    await sink.stop();
  }

  for (const r of runs) {
    for (const [scenario, result] of Object.entries(r.scenarios)) {
      if (result === undefined || !('otherCpuSeconds' in result)) continue;
      const share = result.otherCpuSeconds / result.seconds;
      if (share > 0.25) warnings.push(`round ${r.round} ${r.variant} ${scenario}: other processes used ${(share * 100).toFixed(0)}% of a core`);
      if ('overloaded' in result && result.overloaded) warnings.push(`round ${r.round} ${r.variant} ${scenario}: requests went unanswered faster than the rate`);
    }
  }
  for (const w of warnings) progress(`warning: ${w}`);
  const durationSeconds = (Date.now() - started) / 1000;
  const summary = summarise(runs, variants, settings, rate.value ?? Number.NaN);
  const results: Results = {
    schema: 1,
    mode: values.tiny ? 'tiny' : values.rounds || values.variants || values.only ? 'custom' : 'full',
    startedAt: new Date(started).toISOString(),
    durationSeconds,
    machine,
    settings,
    latencyRate: rate.value ?? Number.NaN,
    variants: variants.map((v) => ({ name: v, title: VARIANTS[v].title, env: VARIANTS[v].env('http://127.0.0.1:<sink>') })),
    scenarios: SCENARIO_NAMES,
    targets: TARGETS,
    warnings,
    runs,
    summary,
  };
  const report = { summary, variants, machine, rounds: settings.rounds, durationSeconds };
  process.stdout.write(textReport(report));
  const out = resolve(values.out ?? resolve(resultsDir, 'latest.json'));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(out.replace(/\.json$/, '') + '.md', markdownReport(report));
  progress(`results: ${out}; took ${Math.round(durationSeconds)} s`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
