/**
 * A server under test in its own process: started with `--expose-gc` and the probe, its port
 * read from its first "listening" log line, its stdout drained the way a log collector would
 * (read and dropped). Its CPU time comes from its own accounting, /proc/<pid>/stat (proc.ts).
 */
import type { ChildProcess } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { spawnNode, stopChild } from './children.js';
import type { ProbeReply, ProbeRequest } from './probe-protocol.js';

const PROBE = pathToFileURL(new URL('./probe.js', import.meta.url).pathname).href;
const STARTUP_MS = 20_000;
const TAIL_BYTES = 4096;

export interface ServerSpec {
  /** Script to run with node: dist/bench/bare-server.js or dist/src/main.js. */
  readonly script: string;
  readonly env: Readonly<Record<string, string>>;
  /** Extra node flags (--cpu-prof…). */
  readonly nodeArgs?: readonly string[];
}

export class ServerProcess {
  #nextId = 1;
  #pending = new Map<number, (reply: ProbeReply) => void>();
  #stdoutBytes = 0;
  #stderrTail = '';
  #stdoutTail = '';
  readonly exited: Promise<string>;

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve(`exited with ${signal ?? code}`));
    });
    child.on('message', (reply: ProbeReply) => {
      this.#pending.get(reply.id)?.(reply);
      this.#pending.delete(reply.id);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Bytes of log lines the server wrote to stdout so far. */
  get logBytes(): number {
    return this.#stdoutBytes;
  }

  /** What the server last wrote, for error messages. */
  get tail(): string {
    return `stdout: ${this.#stdoutTail.slice(-1000)}\nstderr: ${this.#stderrTail.slice(-1000)}`;
  }

  static async start(spec: ServerSpec, core: string | undefined): Promise<ServerProcess> {
    const env: Record<string, string> = {};
    // Only what node needs from the caller's environment: an OTEL_* or LOG_LEVEL set in the
    // shell must not leak into a variant.
    for (const key of ['PATH', 'HOME', 'LANG', 'TZ']) if (process.env[key] !== undefined) env[key] = process.env[key];
    Object.assign(env, { HOST: '127.0.0.1', PORT: '0' }, spec.env);
    const child = spawnNode(['--expose-gc', '--import', PROBE, ...(spec.nodeArgs ?? []), spec.script], core, {
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let stdoutTail = '';
    let stderrTail = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-TAIL_BYTES);
    });
    const port = await new Promise<number>((resolve, reject) => {
      let buffered = '';
      const timer = setTimeout(() => fail(`no "listening" line within ${STARTUP_MS} ms`), STARTUP_MS);
      const fail = (why: string): void => {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.kill('SIGKILL');
        reject(new Error(`${spec.script} did not start: ${why}\nstdout: ${buffered.slice(-1000)}\nstderr: ${stderrTail.slice(-1000)}`));
      };
      const onData = (chunk: Buffer): void => {
        buffered += chunk.toString('utf8');
        for (const line of buffered.split('\n')) {
          if (!line.includes('listening')) continue;
          try {
            const port = (JSON.parse(line) as { port?: unknown }).port;
            if (typeof port === 'number') {
              clearTimeout(timer);
              child.stdout!.off('data', onData);
              child.off('exit', onExit);
              stdoutTail = buffered;
              resolve(port);
              return;
            }
          } catch {
            // a partial line; the rest comes with the next chunk
          }
        }
      };
      const onExit = (code: number | null, signal: string | null): void => fail(`exited with ${signal ?? code}`);
      child.stdout!.on('data', onData);
      child.once('exit', onExit);
    });
    const server = new ServerProcess(child, port);
    server.#stdoutTail = stdoutTail;
    server.#stdoutBytes = Buffer.byteLength(stdoutTail);
    child.stderr!.removeAllListeners('data').on('data', (chunk: string) => {
      server.#stderrTail = (server.#stderrTail + chunk).slice(-TAIL_BYTES);
    });
    server.#stderrTail = stderrTail;
    child.stdout!.on('data', (chunk: Buffer) => {
      server.#stdoutBytes += chunk.length;
      server.#stdoutTail = (server.#stdoutTail + chunk.toString('utf8', Math.max(0, chunk.length - TAIL_BYTES))).slice(-TAIL_BYTES);
    });
    return server;
  }

  /** Memory and CPU as the server's own process reports them, after a full GC when `gc`. */
  sample(gc: boolean): Promise<ProbeReply> {
    const id = this.#nextId++;
    const request: ProbeRequest = { op: 'sample', id, gc };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`probe did not answer within 30 s\n${this.tail}`));
      }, 30_000);
      this.#pending.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.child.send(request);
    });
  }

  /** SIGKILL by default: nothing after the measurements matters. SIGTERM lets --cpu-prof write its file. */
  stop(signal: NodeJS.Signals = 'SIGKILL', ms = 15_000): Promise<void> {
    return stopChild(this.child, signal, ms);
  }
}
