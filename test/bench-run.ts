/** `node dist/bench/run.js …` as the bench tests run it: to its exit, output kept, killed past a deadline. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { withTimeout } from './helpers.js';

const RUN = fileURLToPath(new URL('../bench/run.js', import.meta.url));

export interface BenchRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runBench(args: readonly string[], timeoutMs: number, what: string): Promise<BenchRun> {
  const child = spawn(process.execPath, [RUN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await withTimeout(
    new Promise<number | null>((resolve) => child.once('exit', resolve)),
    timeoutMs,
    what,
  ).finally(() => child.kill('SIGKILL'));
  return { code, stdout, stderr };
}
