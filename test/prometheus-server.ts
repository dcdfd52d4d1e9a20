/**
 * Debian's real prometheus, owned by one test file: the config a test wrote into a directory of
 * its own, a free loopback port, stopped with SIGTERM (SIGKILL if it lingers).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { eventually, withTimeout } from './helpers.js';
import { freePort, notFoundMessage } from './stack-helpers.js';

export class PrometheusServer {
  #log = '';

  private constructor(
    readonly child: ChildProcess,
    /** The HTTP API's base URL. */
    readonly api: string,
  ) {
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (this.#log += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (this.#log += c));
  }

  /** What it printed so far, for a failure's message. */
  get log(): string {
    return this.#log;
  }

  /**
   * Starts it on `dir/prometheus.yml` with its data in `dir/data`; resolves once /-/ready says
   * 200. Startup on a busy two-core machine can take seconds, hence the deadline.
   */
  static async start(dir: string, readyWithinMs = 60_000): Promise<PrometheusServer> {
    const port = await freePort();
    const child = spawn(
      'prometheus',
      [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const server = new PrometheusServer(child, `http://127.0.0.1:${port}`);
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error(notFoundMessage('prometheus')) : err));
      child.once('exit', (code) => reject(new Error(`prometheus exited with ${code}:\n${server.log}`)));
    });
    failed.catch(() => {});
    try {
      await Promise.race([
        failed,
        eventually(
          async () => {
            try {
              return (await fetch(`${server.api}/-/ready`)).status === 200 ? true : undefined;
            } catch {
              return undefined;
            }
          },
          readyWithinMs,
          'prometheus /-/ready',
        ),
      ]);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  async stop(): Promise<void> {
    const { child } = this;
    // No pid: it never started (the binary is missing), so there is nothing to stop.
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    try {
      await withTimeout(exited, 10_000, 'prometheus to exit');
    } catch {
      child.kill('SIGKILL');
      await exited;
    }
  }
}
