/**
 * The redis-server the fan-out scenarios share: started by the bench itself on a free loopback
 * port, without persistence (nothing of a run is worth keeping, and a fork for a snapshot would
 * land in the measurements), pinned like every other child and killed with them.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { connect, createServer, type AddressInfo } from 'node:net';
import { spawnPinned, stopChild } from './children.js';

const STARTUP_MS = 10_000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether a Redis on `port` answers PING. */
function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

export class RedisProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly version: string,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(core: string | undefined): Promise<RedisProcess> {
    const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
    if (probe.error !== undefined || probe.status !== 0) throw new Error('the fan-out scenarios need redis-server on PATH (Debian: apt-get install redis-server)');
    const version = /v=(\S+)/.exec(probe.stdout)?.[1] ?? probe.stdout.trim();
    const port = await freePort();
    const child = spawnPinned(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'warning'],
      core,
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2000)));
    child.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2000)));
    const until = Date.now() + STARTUP_MS;
    while (!(await pong(port))) {
      if (child.exitCode !== null || Date.now() > until) {
        child.kill('SIGKILL');
        throw new Error(`redis-server on port ${port} did not start: ${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return new RedisProcess(child, port, version);
  }

  stop(): Promise<void> {
    return stopChild(this.child, 'SIGKILL');
  }
}
