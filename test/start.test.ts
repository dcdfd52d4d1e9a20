/**
 * `npm start` as a user runs it, stopped as a user stops it: the signal reaches the service,
 * which drains and exits 0, and nothing is left behind (no listener, no orphaned node). The
 * script's prestart builds first (tsc, some seconds), hence the long bounds. It runs in a copy of
 * the project, so that build does not empty the dist/ the rest of the suite is running from.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { after, test } from 'node:test';
import { eventually, withTimeout } from './helpers.js';
import { freePort, ROOT } from './stack-helpers.js';

const BUILD_AND_LISTEN_MS = 120_000;
const EXIT_MS = 15_000;

/** The pids whose parent is `pid`, from /proc. */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name, in parentheses, may hold spaces: the fields after it are split safely.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // The process ended while the list was read.
    }
  }
  return found;
}

function commandLine(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
}

/** Whether the process exists and has not exited (a zombie has exited). */
function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}`)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function healthy(port: number): Promise<true | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
    return res.status === 200 ? true : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves with the error code of a TCP connect to the port (ECONNREFUSED once nothing listens). */
function connectError(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** Every process below `pid`: children first, then theirs. */
function descendantsOf(pid: number): number[] {
  const found = childrenOf(pid);
  for (const child of [...found]) found.push(...descendantsOf(child));
  return found;
}

interface Started {
  readonly npm: ChildProcess;
  readonly port: number;
  /** npm's children once the service answered: only the service itself is expected. */
  readonly children: number[];
  /** The node process running dist/src/main.js, wherever it sits below npm. */
  readonly service: number | undefined;
  /** Everything below npm once the service answered: killed after the test if still alive. */
  readonly descendants: number[];
  readonly messages: () => string[];
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
}

/** The project's sources, scripts and installed packages, in a directory of its own. */
const project = mkdtempSync(join(tmpdir(), 'ws-service-start-'));
for (const entry of ['package.json', 'tsconfig.json', 'src', 'test', 'bench']) cpSync(join(ROOT, entry), join(project, entry), { recursive: true });
symlinkSync(join(ROOT, 'node_modules'), join(project, 'node_modules'));
after(() => rmSync(project, { recursive: true, force: true }));

async function npmStart(detached: boolean): Promise<Started> {
  const port = await freePort();
  const npm = spawn('npm', ['start'], {
    cwd: project,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', SHUTDOWN_DRAIN_DELAY_MS: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  });
  const exited = once(npm, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let stdout = '';
  let stderr = '';
  npm.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  npm.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const messages = (): string[] =>
    stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => (JSON.parse(line) as { message: string }).message);
  try {
    await eventually(() => healthy(port), BUILD_AND_LISTEN_MS, 'npm start answering /healthz');
  } catch (err) {
    stopAll(npm, descendantsOf(npm.pid!));
    throw new Error(`npm start did not answer /healthz; its stderr:\n${stderr}`, { cause: err });
  }
  const descendants = descendantsOf(npm.pid!);
  const service = descendants.find((pid) => /node .*dist\/src\/main\.js$/.test(commandLine(pid)));
  return { npm, port, children: childrenOf(npm.pid!), service, descendants, messages, exited };
}

/** Nothing the test started may outlive it, whatever failed. */
function stopAll(npm: ChildProcess, descendants: readonly number[]): void {
  for (const pid of descendants) {
    if (!alive(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL');
}

async function stopsCleanly(started: Started, stop: () => void): Promise<void> {
  try {
    assert.notEqual(started.service, undefined, 'a node process runs dist/src/main.js');
    assert.deepEqual(
      started.children.map(commandLine),
      [commandLine(started.service!)],
      'npm runs the service as its only child, with no shell in between to swallow the signal',
    );
    stop();
    const [code, signal] = await withTimeout(started.exited, EXIT_MS, 'npm exiting');
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, 'npm exits with the service status: a clean shutdown');
    const messages = started.messages();
    assert.ok(messages.includes('signal received: starting graceful shutdown'), messages.join('\n'));
    assert.ok(messages.includes('shutdown complete'), messages.join('\n'));
    assert.ok(!messages.includes('second signal during shutdown: exiting now'), 'one request, one graceful shutdown');
    assert.equal(alive(started.service!), false, `the service (pid ${started.service}) exited with npm, not orphaned`);
    assert.equal(await connectError(started.port), 'ECONNREFUSED', 'nothing listens on the port any more');
  } finally {
    stopAll(started.npm, started.descendants);
  }
}

test('SIGTERM to the npm process: the service shuts down gracefully, npm exits 0, nothing left behind', { timeout: BUILD_AND_LISTEN_MS + 30_000 }, async () => {
  const started = await npmStart(false);
  await stopsCleanly(started, () => started.npm.kill('SIGTERM'));
});

test('Ctrl-C (SIGINT to the whole process group) is one graceful shutdown, though node gets it twice', { timeout: BUILD_AND_LISTEN_MS + 30_000 }, async () => {
  // Its own process group, as a terminal gives a foreground job: the terminal signals the group.
  const started = await npmStart(true);
  await stopsCleanly(started, () => process.kill(-started.npm.pid!, 'SIGINT'));
});
