/** The orchestrator's side of the load generator and of the OTLP sink: both child processes over IPC. */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { spawnNode, stopChild } from './children.js';
import type { GeneratorEvent, Job, JobRequest } from './load-protocol.js';
import type { SinkCounts, SinkReply, SinkRequest } from './sink-protocol.js';

const LOAD = fileURLToPath(new URL('./load.js', import.meta.url));
const SINK = fileURLToPath(new URL('./sink.js', import.meta.url));

interface Pending {
  readonly resolve: (result: unknown) => void;
  readonly reject: (err: Error) => void;
  readonly onProgress?: (text: string) => void;
}

export class Generator {
  #nextId = 1;
  #pending = new Map<number, Pending>();

  private constructor(readonly child: ChildProcess) {
    child.on('message', (event: GeneratorEvent) => {
      if (event.kind === 'ready') return;
      const pending = this.#pending.get(event.id);
      if (pending === undefined) return;
      if (event.kind === 'progress') return pending.onProgress?.(event.text);
      this.#pending.delete(event.id);
      if (event.kind === 'result') pending.resolve(event.result);
      else pending.reject(new Error(`load generator: ${event.message}`));
    });
    child.once('exit', (code, signal) => {
      for (const pending of this.#pending.values()) pending.reject(new Error(`load generator exited with ${signal ?? code}`));
      this.#pending.clear();
    });
  }

  static async start(core: string | undefined): Promise<Generator> {
    const child = spawnNode([LOAD], core, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const generator = new Generator(child);
    const [event] = (await Promise.race([once(child, 'message'), once(child, 'exit')])) as [GeneratorEvent | number];
    if (typeof event !== 'object' || event.kind !== 'ready') throw new Error('load generator did not start');
    return generator;
  }

  /** Runs one job, reporting its progress; fails after `timeoutMs` so a stuck job cannot hang the run. */
  run<T>(job: Job, timeoutMs: number, onProgress?: (text: string) => void): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`load generator: ${job.op} did not finish within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (result) => {
          clearTimeout(timer);
          resolve(result as T);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
        onProgress,
      });
      const request: JobRequest = { ...job, id };
      this.child.send(request);
    });
  }

  stop(): Promise<void> {
    return stopChild(this.child, 'SIGKILL');
  }
}

export class Sink {
  #nextId = 1;

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(core: string | undefined): Promise<Sink> {
    const child = spawnNode([SINK], core, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const [reply] = (await Promise.race([once(child, 'message'), once(child, 'exit')])) as [SinkReply | number];
    if (typeof reply !== 'object' || reply.op !== 'listening') throw new Error('OTLP sink did not start');
    return new Sink(child, reply.port);
  }

  #ask(op: SinkRequest['op']): Promise<SinkReply> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const listener = (reply: SinkReply): void => {
        if ('id' in reply && reply.id === id) {
          this.child.off('message', listener);
          resolve(reply);
        }
      };
      this.child.on('message', listener);
      const request: SinkRequest = { op, id };
      this.child.send(request);
    });
  }

  async counts(): Promise<SinkCounts> {
    const reply = await this.#ask('counts');
    return reply.op === 'counts' ? reply.counts : {};
  }

  async reset(): Promise<void> {
    await this.#ask('reset');
  }

  stop(): Promise<void> {
    return stopChild(this.child, 'SIGKILL');
  }
}
