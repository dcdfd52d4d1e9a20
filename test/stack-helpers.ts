/**
 * Fixtures for the tests of what ships beside the service (otel/, Dockerfile, compose, smoke):
 * running the real binaries (promtool, prometheus, docker-compose) with a clear failure when
 * one is missing, reading the project's YAML, and free loopback ports.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/** The repository root (tests run from dist/test/). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function repoPath(relative: string): string {
  return `${ROOT}${relative}`;
}

export function readRepoFile(relative: string): string {
  return readFileSync(repoPath(relative), 'utf8');
}

export function readYaml<T = Record<string, unknown>>(relative: string): T {
  return parse(readRepoFile(relative)) as T;
}

/** Which Debian package brings each binary the tests run; .ci/run installs them. */
const PACKAGES: Record<string, string> = {
  promtool: 'prometheus',
  prometheus: 'prometheus',
  'docker-compose': 'docker-compose',
  'redis-server': 'redis-server',
};

/** The one message for a binary the tests need that is not on the PATH. */
export function notFoundMessage(command: string, debianPackage: string | undefined = PACKAGES[command]): string {
  return `${command} not found on PATH${debianPackage ? `: install Debian's ${debianPackage} package (.ci/run does)` : ''}`;
}

/**
 * Throws at once, with {@link notFoundMessage}, unless `command` is an executable on the PATH.
 * For tests that spawn a long-lived binary or poll for it, so a missing one fails the test in
 * milliseconds rather than after a readiness deadline; a failure, never a skip.
 */
export function requireBinary(command: string, debianPackage: string | undefined = PACKAGES[command]): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here: the next PATH entry
    }
  }
  throw new Error(notFoundMessage(command, debianPackage));
}

/**
 * Like {@link requireBinary}, for a binary the tests must take from one place rather than the
 * PATH (Debian's chromium and python3, not a browser or interpreter some tool put first).
 */
export function requireExecutable(path: string, debianPackage: string): string {
  try {
    accessSync(path, constants.X_OK);
    return path;
  } catch {
    throw new Error(`${path} not found: install Debian's ${debianPackage} package (.ci/run does)`);
  }
}

export interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command to completion (killed after `timeoutMs`). A missing binary is a test failure
 * that says what to install, never a skip.
 */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? ROOT,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT') {
        reject(new Error(notFoundMessage(command)));
      } else {
        reject(err);
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** A loopback port nobody listens on at the moment of asking. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Compose/Go-style durations ("20s", "1m30s", "500ms") in milliseconds. */
export function durationMs(text: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 };
  let total = 0;
  let rest = text.trim();
  if (rest === '') throw new Error('empty duration');
  while (rest !== '') {
    const match = /^(\d+(?:\.\d+)?)(ms|us|h|m|s)/.exec(rest);
    if (!match) throw new Error(`unparseable duration ${JSON.stringify(text)}`);
    total += Number(match[1]) * units[match[2]];
    rest = rest.slice(match[0].length);
  }
  return total;
}

