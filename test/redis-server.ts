/**
 * A real redis-server owned by one test: on a free loopback port, no persistence, killed with
 * SIGKILL and restarted on the same port when the test says so.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createClient, type RedisClientType } from '@redis/client';
import { freePort, requireBinary } from './stack-helpers.js';
import { eventually } from './helpers.js';

const running = new Set<RedisServer>();

export class RedisServer {
  #child: ChildProcess | undefined;
  #admin: RedisClientType | undefined;

  private constructor(
    readonly port: number,
    private readonly extraArgs: readonly string[],
  ) {}

  /** Stops every server a test left running (one whose assertions failed before its own stop). */
  static async stopAll(): Promise<void> {
    await Promise.all([...running].map((server) => server.stop()));
  }

  /** Starts redis-server; `extraArgs` are redis.conf directives as `--name value` arguments. */
  static async start(extraArgs: readonly string[] = []): Promise<RedisServer> {
    requireBinary('redis-server');
    const server = new RedisServer(await freePort(), extraArgs);
    await server.restart();
    return server;
  }

  /** Starts redis-server on a port the test chose (one a service was already told to use). */
  static async startOn(port: number, extraArgs: readonly string[] = []): Promise<RedisServer> {
    requireBinary('redis-server');
    const server = new RedisServer(port, extraArgs);
    await server.restart();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts it again on the same port (after kill9 or stop); resolves once it answers PING. */
  async restart(): Promise<void> {
    const child = spawn(
      requireBinary('redis-server'),
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', ...this.extraArgs],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    running.add(this);
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${output}`);
        return (await this.command('PING').catch(() => undefined)) === 'PONG' ? true : undefined;
      },
      10_000,
      `redis-server on port ${this.port}`,
    );
  }

  /** SIGKILL, as a crash or an OOM kill would end it: no goodbye to its clients. */
  async kill9(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    await this.#closeAdmin();
    if (child === undefined || child.exitCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    running.delete(this);
    await this.kill9();
  }

  /** Runs one command on a connection of the test's own (not the service's). */
  async command(...args: string[]): Promise<unknown> {
    if (this.#admin === undefined || !this.#admin.isReady) {
      await this.#closeAdmin();
      const admin = createClient({ url: this.url, socket: { reconnectStrategy: false, connectTimeout: 1000 } }) as RedisClientType;
      admin.on('error', () => undefined);
      await admin.connect();
      this.#admin = admin;
    }
    return this.#admin.sendCommand(args);
  }

  /** Subscribers Redis counts on a channel (PUBSUB NUMSUB). */
  async numsub(channel: string): Promise<number> {
    const reply = (await this.command('PUBSUB', 'NUMSUB', channel)) as unknown[] | Record<string, number>;
    if (Array.isArray(reply)) return Number(reply[1]);
    return Number(Object.values(reply)[0]);
  }

  async #closeAdmin(): Promise<void> {
    const admin = this.#admin;
    this.#admin = undefined;
    if (admin?.isOpen) admin.destroy();
  }
}
