/**
 * Every child process the harness starts goes through here, so all of them are killed however
 * the run ends: normal exit, a thrown error, a signal. Children are pinned to a core with
 * `taskset` when the machine has it and at least two cores.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { availableParallelism } from 'node:os';

const live = new Set<ChildProcess>();

function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
}

process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
  });
}

/** Core assignment: the server alone on one core, everything else on the other. */
export interface Pinning {
  readonly server: string;
  readonly load: string;
}

export function detectPinning(): Pinning | null {
  if (availableParallelism() < 2) return null;
  const probe = spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
  if (probe.error !== undefined || probe.status !== 0) return null;
  return { server: '0', load: '1' };
}

/** Moves this process (all its threads) onto `core`, so the orchestrator stays off the server's core. */
export function pinSelf(core: string): void {
  spawnSync('taskset', ['-a', '-p', '-c', core, String(process.pid)], { stdio: 'ignore' });
}

/** Spawns `command args…` (pinned to `core` if given) and tracks it for cleanup. */
export function spawnPinned(command: string, args: readonly string[], core: string | undefined, options: SpawnOptions): ChildProcess {
  // taskset execs the command, so the child's pid is the command's own: /proc/<pid>/stat is its accounting.
  const child = core === undefined ? spawn(command, args, options) : spawn('taskset', ['-c', core, command, ...args], options);
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** Spawns `node args…` (pinned to `core` if given) and tracks it for cleanup. */
export function spawnNode(args: readonly string[], core: string | undefined, options: SpawnOptions): ChildProcess {
  return spawnPinned(process.execPath, args, core, options);
}

/** Resolves when the child has exited; SIGKILLs it if `signal` did not end it within `ms`. */
export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL', ms = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}
