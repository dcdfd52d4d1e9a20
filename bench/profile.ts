/**
 * `--profile C,D`: runs each variant's server with `--cpu-prof` under echo saturation (64 B, or `--profile-payload`),
 * then reads the profile back, keeps only the samples inside the measurement window, and says
 * where each microsecond per message goes: by function (self and inclusive) and by package.
 * The profile covers the main thread; the process CPU (every thread) is read as in the benchmark.
 */
import { readFileSync, readdirSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Pinning } from './children.js';
import { Generator, Sink } from './generator.js';
import type { InterleaveResult } from './load-protocol.js';
import { ServerProcess } from './server-process.js';
import { VARIANTS, type VariantName } from './variants.js';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Where a frame's code lives: a package, a service module, a node internal, or a VM state. */
function area(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') return functionName.startsWith('(') ? functionName : `(native) ${functionName}`;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/');
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  const src = url.indexOf('/dist/src/');
  if (src !== -1) return `ws-service ${url.slice(src + '/dist/src/'.length)}`;
  if (url.includes('/dist/bench/')) return 'bench';
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');
  return url;
}

function frameKey(frame: CallFrame): string {
  const name = frame.functionName || '(anonymous)';
  if (frame.url === '') return name;
  const file = frame.url.replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, '').replace(/^file:\/\//, '');
  return `${name} ${file}:${frame.lineNumber + 1}`;
}

export interface ProfileBreakdown {
  /** Main-thread time in the window, µs, idle included. */
  readonly windowUs: number;
  readonly idleUs: number;
  readonly selfByFunction: Map<string, number>;
  readonly totalByFunction: Map<string, number>;
  readonly selfByArea: Map<string, number>;
}

/** Attributes each sample inside [fromUs, toUs] (the profile's monotonic clock) to its stack. */
export function analyse(profile: CpuProfile, fromUs: number, toUs: number): ProfileBreakdown {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfByFunction = new Map<string, number>();
  const totalByFunction = new Map<string, number>();
  const selfByArea = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us);
  let t = profile.startTime;
  let windowUs = 0;
  let idleUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    // A sample stands for the time until the next one.
    const us = profile.timeDeltas[i + 1] ?? 0;
    if (t < fromUs || t > toUs) continue;
    const node = byId.get(profile.samples[i])!;
    windowUs += us;
    if (node.callFrame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    add(selfByFunction, frameKey(node.callFrame), us);
    add(selfByArea, area(node.callFrame), us);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const key = frameKey(byId.get(id)!.callFrame);
      if (seen.has(key)) continue;
      seen.add(key);
      add(totalByFunction, key, us);
    }
  }
  return { windowUs, idleUs, selfByFunction, totalByFunction, selfByArea };
}

function top(map: Map<string, number>, n: number, perMessage: (us: number) => number): string[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([key, us]) => `${perMessage(us).toFixed(3).padStart(8)} µs  ${key}`);
}

/** What the profiled server is given: echo at saturation, or handshake churn (16 at a time). */
export type ProfiledWork = { readonly kind: 'saturate'; readonly payloadBytes: number } | { readonly kind: 'churn' };

async function profileOne(name: VariantName, seconds: number, work: ProfiledWork, pinning: Pinning | null, dir: string): Promise<void> {
  const variant = VARIANTS[name];
  const sink = variant.exports ? await Sink.start(pinning?.load) : undefined;
  const generator = await Generator.start(pinning?.load);
  const file = `${name}.cpuprofile`;
  rmSync(join(dir, file), { force: true });
  let server: ServerProcess | undefined;
  try {
    server = await ServerProcess.start(
      {
        script: variant.script,
        // No drain delay: the server must exit promptly on SIGTERM for the profile to be written.
        env: { ...variant.env(sink?.endpoint ?? 'http://127.0.0.1:9'), SHUTDOWN_DRAIN_DELAY_MS: '0' },
        nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', file, '--cpu-prof-interval', '50'],
      },
      pinning?.server,
    );
    const rounds = await generator.run<InterleaveResult>(
      {
        op: 'interleave',
        kind: work.kind,
        targets: [{ name, url: server.wsUrl, pid: server.pid }],
        rounds: 1,
        sliceMs: 1000,
        cycles: seconds,
        warmupCycles: 3,
        settleMs: 0,
        connections: work.kind === 'saturate' ? 128 : 0,
        inflight: 4,
        payloadBytes: work.kind === 'saturate' ? work.payloadBytes : 0,
        rate: 0,
        concurrency: work.kind === 'churn' ? 16 : 0,
      },
      (seconds + 3) * 1000 + 60_000,
    );
    const { window } = rounds[name][0];
    await server.stop('SIGTERM', 20_000);
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    // V8's profile clock and the generator's hrtime are both CLOCK_MONOTONIC: the window maps directly.
    const b = analyse(profile, window.startUs, window.endUs);
    const result = { messages: window.count, seconds: window.seconds };
    const cpuSeconds = window.serverCpuSeconds;
    const per = (us: number) => us / result.messages;
    const unit = work.kind === 'saturate' ? 'message' : 'handshake';
    const lines = [
      `== ${name}: ${variant.title}, ${work.kind === 'saturate' ? `${work.payloadBytes} B echo` : 'connection churn, 16 at a time'}`,
      `${result.messages} ${unit}s in ${result.seconds.toFixed(1)} s; process CPU ${((cpuSeconds * 1e6) / result.messages).toFixed(2)} µs per ${unit} (all threads)`,
      `main thread busy ${per(b.windowUs - b.idleUs).toFixed(2)} µs per ${unit}, idle ${per(b.idleUs).toFixed(2)}`,
      `-- self time by package or module (µs per ${unit})`,
      ...top(b.selfByArea, 25, per),
      '-- self time by function',
      ...top(b.selfByFunction, 40, per),
      '-- inclusive time by function',
      ...top(b.totalByFunction, 60, per),
      `profile: ${join(dir, file)}`,
      '',
    ];
    process.stdout.write(lines.join('\n'));
  } finally {
    await server?.stop();
    await generator.stop();
    await sink?.stop();
  }
}

export async function profileVariants(names: readonly VariantName[], seconds: number, work: ProfiledWork, pinning: Pinning | null, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (const name of names) await profileOne(name, seconds, work, pinning, dir);
  const left = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  process.stderr.write(`[bench] profiles in ${dir}: ${left.join(', ')}\n`);
}
