/**
 * The abuse scenario: one hostile client against one server at a time, a fresh server process
 * per attack (a process keeps the pages an attack made it take), while a calm client pings at a
 * modest fixed rate, probes /healthz and opens fresh connections. The calm client and the
 * attacker are two load processes on the load core; the server's resident set is read from
 * /proc/<pid>/status.
 *
 * Servers run with the service's default limits, not the load's lifted ones: what an attack
 * meets is what `npm start` would give it.
 */
import type { Generator } from './generator.js';
import { ATTACKS, type AttackJob, type AttackKind, type AttackResult, type CalmJob, type CalmResult } from './abuse-protocol.js';
import { machineBusySeconds, processCpuSeconds, processRss } from './proc.js';
import type { ServerProcess } from './server-process.js';
import { LOAD_LIMIT_KEYS, VARIANTS, type VariantName } from './variants.js';

export interface AbuseSettings {
  /** How long each attack runs against each server. */
  readonly durationMs: number;
  readonly graceMs: number;
  readonly calm: { readonly connections: number; readonly rate: number; readonly healthzEveryMs: number; readonly connectEveryMs: number };
  readonly pipelined: AttackJob['pipelined'];
  readonly drainMs: number;
  readonly costly: AttackJob['costly'];
  readonly slow: AttackJob['slow'];
  readonly hoard: AttackJob['hoard'];
}

export interface AbuseRun {
  readonly attack: AttackKind;
  readonly seconds: number;
  /** Resident set just before the attack and its peak until the calm client's grace ended, bytes. */
  readonly rssBefore: number;
  readonly rssPeak: number;
  /** Server CPU-seconds per second of the window (its one core: near 1 means saturated). */
  readonly serverCpu: number;
  /**
   * Cores' worth of CPU that neither the server, the calm client nor the attacker used in the
   * window: other processes on a shared machine, whose work lands in every latency measured.
   */
  readonly otherCpu: number;
  /** Set when the server did not survive the attack. */
  readonly serverExited?: string;
  readonly calm: CalmResult;
  readonly attacker: AttackResult;
}

/** B, D and E only when named with --variants: A and C are the comparison the issue asks for. */
export const ABUSE_DEFAULT_VARIANTS: readonly VariantName[] = ['A', 'C'];

/** The variant's environment with every limit the throughput load lifts back at its default. */
export function abuseEnv(name: VariantName, sink: string): Record<string, string> {
  const env = { ...VARIANTS[name].env(sink) };
  for (const key of LOAD_LIMIT_KEYS) delete env[key];
  return env;
}

export async function runAbuse(
  names: readonly VariantName[],
  settings: AbuseSettings,
  start: (name: VariantName) => Promise<ServerProcess>,
  calmClient: Generator,
  attacker: Generator,
  beforeEach: () => Promise<void>,
  progress: (text: string) => void,
): Promise<Map<VariantName, AbuseRun[]>> {
  const out = new Map<VariantName, AbuseRun[]>(names.map((n) => [n, []]));
  const budget = settings.durationMs + settings.graceMs + settings.drainMs + 120_000;
  for (const kind of ATTACKS) {
    for (const name of names) {
      await beforeEach();
      const server = await start(name);
      try {
        const calmJob: CalmJob = { op: 'calm', wsUrl: server.wsUrl, baseUrl: server.baseUrl, durationMs: settings.durationMs, graceMs: settings.graceMs, ...settings.calm };
        const attackJob: AttackJob = {
          op: 'attack',
          kind,
          wsUrl: server.wsUrl,
          host: '127.0.0.1',
          port: server.port,
          durationMs: settings.durationMs,
          drainMs: settings.drainMs,
          pipelined: settings.pipelined,
          costly: settings.costly,
          slow: settings.slow,
          hoard: settings.hoard,
        };
        let exited: string | undefined;
        void server.exited.then((how) => (exited = how));
        // The calm client was there first: its connections open before the attack starts, so a
        // stall shows as late or missing replies rather than as a calm client that never began.
        let connected: () => void = () => undefined;
        const ready = new Promise<void>((resolve) => (connected = resolve));
        const calmDone = calmClient.run<CalmResult>(calmJob, budget, () => connected());
        await Promise.race([ready, calmDone]);
        const before = processRss(server.pid).rss;
        const cpuBefore = processCpuSeconds(server.pid);
        const busyBefore = machineBusySeconds();
        const began = performance.now();
        const attackDone = attacker.run<AttackResult>(attackJob, budget);
        // The calm client's window and grace are the measurement; the pipelined attack reads
        // what it was answered after that, and the peak is taken before it does.
        const calm = await calmDone;
        const seconds = (performance.now() - began) / 1000;
        const alive = exited === undefined;
        // The kernel's RSS counters are kept per thread and summed lazily, so VmHWM can read a
        // little below a VmRSS taken earlier: the peak is at least what was seen before.
        const rssPeak = alive ? Math.max(processRss(server.pid).peak, before) : Number.NaN;
        const serverCpuSeconds = alive ? processCpuSeconds(server.pid) - cpuBefore : Number.NaN;
        const busy = machineBusySeconds() - busyBefore;
        const attackResult = await attackDone;
        // The attacker's CPU runs a moment past the window (the pipelined attack's read-back):
        // taking it whole makes the others' share, if anything, too small.
        const otherCpu = Math.max(0, busy - (alive ? serverCpuSeconds : 0) - calm.cpuSeconds - attackResult.cpuSeconds) / seconds;
        const run: AbuseRun = {
          attack: kind,
          seconds,
          rssBefore: before,
          rssPeak,
          serverCpu: serverCpuSeconds / seconds,
          otherCpu,
          ...(exited === undefined ? {} : { serverExited: exited }),
          calm,
          attacker: attackResult,
        };
        out.get(name)!.push(run);
        const p99 = calm.pings.latencyUs.p99 / 1000;
        progress(`abuse ${kind} ${name}: calm p99 ${p99.toFixed(2)} ms, ${calm.pings.unanswered} unanswered, peak RSS ${(rssPeak / 2 ** 20).toFixed(0)} MiB${exited === undefined ? '' : `, server ${exited}`}`);
      } finally {
        await server.stop();
      }
    }
  }
  return out;
}
