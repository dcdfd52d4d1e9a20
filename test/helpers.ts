/**
 * Test fixtures: a real service on 127.0.0.1 port 0 with its logs captured as parsed JSON,
 * spans in memory, and the child-process runner for tests of main.ts itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { InMemoryMetricExporter, PeriodicExportingMetricReader, AggregationTemporality } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import type { Broker } from '../src/channels/broker.js';
import { createBroker } from '../src/channels/engine.js';
import { loadConfig, type Env } from '../src/config/config.js';
import type { HandlerRegistry } from '../src/protocol/handlers/index.js';
import { createLogger } from '../src/telemetry/logger.js';
import { createService, type Service } from '../src/service.js';
import { startTelemetry, type Telemetry } from '../src/telemetry/sdk.js';

export type LogLine = Record<string, unknown> & { level: string; message: string; timestamp: string };

export interface Harness {
  readonly service: Service;
  readonly telemetry: Telemetry;
  readonly logger: Logger;
  readonly logs: LogLine[];
  readonly spans: InMemorySpanExporter;
  /** Receives the SDK's final metric push at shutdown (and any forced collection). */
  readonly pushed: InMemoryMetricExporter;
  readonly baseUrl: string;
  readonly wsUrl: string;
  /** Shuts the service down (idempotent) and releases the OTel globals for the next test. */
  readonly stop: () => Promise<void>;
}

export interface HarnessOptions {
  readonly env?: Env;
  readonly handlers?: HandlerRegistry;
  /** The channel engine; by default the one the config names (REDIS_URL in `env`: Redis). */
  readonly broker?: Broker;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'debug',
    SHUTDOWN_DRAIN_DELAY_MS: '0',
    SHUTDOWN_TIMEOUT_MS: '2000',
    ...options.env,
  });
  const logs: LogLine[] = [];
  const destination = {
    write(line: string) {
      logs.push(JSON.parse(line) as LogLine);
    },
  };
  const { logger } = createLogger({
    level: config.logLevel,
    otlp: undefined,
    serviceName: config.telemetry.serviceName,
    serviceVersion: config.telemetry.serviceVersion,
  serviceInstanceId: config.telemetry.serviceInstanceId,
    destination,
  });
  const spans = new InMemorySpanExporter();
  const pushed = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const telemetry = startTelemetry(config.telemetry, logger, {
    spanProcessors: [new SimpleSpanProcessor(spans)],
    metricReaders: [(metricProducers) => new PeriodicExportingMetricReader({ exporter: pushed, exportIntervalMillis: 3_600_000, metricProducers })],
  });
  const broker = options.broker ?? (await createBroker(config.channels));
  const service = createService({ config, telemetry, logger, handlers: options.handlers, broker });
  const address = await service.start();
  let stopped: Promise<void> | undefined;
  return {
    service,
    telemetry,
    logger,
    logs,
    spans,
    pushed,
    baseUrl: `http://127.0.0.1:${address.port}`,
    wsUrl: `ws://127.0.0.1:${address.port}${config.wsPath}`,
    stop() {
      stopped ??= service.shutdown('test').then(() => telemetry.release());
      return stopped;
    },
  };
}

/** A connected client that collects every reply as parsed JSON. */
export class Client {
  readonly replies: Record<string, unknown>[] = [];
  #waiters: { count: number; resolve: () => void }[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.replies.push(JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown>);
      this.#waiters = this.#waiters.filter((w) => {
        if (this.replies.length < w.count) return true;
        w.resolve();
        return false;
      });
    });
  }

  static async connect(url: string, options: WebSocket.ClientOptions = {}, protocols: string[] = []): Promise<Client> {
    const ws = new WebSocket(url, protocols, options);
    await once(ws, 'open');
    return new Client(ws);
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Resolves once `count` replies in total have arrived, or rejects after `ms`. */
  async waitForReplies(count: number, ms = 5000): Promise<Record<string, unknown>[]> {
    if (this.replies.length < count) {
      await withTimeout(new Promise<void>((resolve) => this.#waiters.push({ count, resolve })), ms, `${count} replies`);
    }
    return this.replies;
  }

  /** Sends one message and resolves with its reply. */
  async request(message: unknown): Promise<Record<string, unknown>> {
    const before = this.replies.length;
    this.send(message);
    const replies = await this.waitForReplies(before + 1);
    return replies[before];
  }

  async close(code = 1000): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = once(this.ws, 'close');
    this.ws.close(code);
    await closed;
  }
}

export async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it returns a defined value or `ms` pass. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, ms = 5000, what = 'condition'): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses Prometheus text exposition into samples (enough of the format for these tests). */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2]!;
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

export async function scrape(baseUrl: string): Promise<Sample[]> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseExposition(await res.text());
}

/** The value of the one sample with this name and these labels; throws if absent. */
export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length !== 1) throw new Error(`expected one ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return found[0].value;
}

export const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

export interface ChildService {
  readonly child: ChildProcess;
  readonly lines: LogLine[];
  readonly stderr: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first log line matching, waiting up to `ms`. */
  readonly waitForLog: (predicate: (line: LogLine) => boolean, ms?: number) => Promise<LogLine>;
}

const children = new Set<ChildProcess>();

/** SIGKILLs every child spawnService started that is still running, and waits for each to exit. */
export async function killChildren(): Promise<void> {
  await Promise.all(
    [...children].map((child) => {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      return exited;
    }),
  );
}

/** Runs dist/src/main.js as an operator would, with the given environment added. */
export function spawnService(env: Env, nodeArgs: string[] = [], wrapper: string[] = []): ChildService {
  const [command, ...args] = [...wrapper, process.execPath, ...nodeArgs, MAIN];
  const child = spawn(command, args, {
    env: { ...process.env, HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const lines: LogLine[] = [];
  let stderr = '';
  let buffered = '';
  const listeners = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine);
    }
    for (const listener of listeners) listener();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    waitForLog(predicate, ms = 10_000) {
      const found = lines.find(predicate);
      if (found) return Promise.resolve(found);
      return withTimeout(
        new Promise<LogLine>((resolve) => {
          const listener = (): void => {
            const hit = lines.find(predicate);
            if (hit) {
              listeners.delete(listener);
              resolve(hit);
            }
          };
          listeners.add(listener);
        }),
        ms,
        'a log line',
      );
    },
  };
}

/** Starts main.js on an ephemeral port and resolves once it logs that it listens. */
export type RunningService = ChildService & { port: number; baseUrl: string; wsUrl: string };

export async function startChild(env: Env = {}, nodeArgs: string[] = []): Promise<RunningService> {
  const running = spawnService({ PORT: '0', ...env }, nodeArgs);
  const listening = await running.waitForLog((l) => l.message === 'ws-service listening').catch((err: unknown) => {
    // A child that never says it listens (crashed, or logging above info) must not outlive the test.
    running.child.kill('SIGKILL');
    throw err;
  });
  const port = listening.port as number;
  return { ...running, port, baseUrl: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/ws` };
}

/** Preload for main.js (with --expose-gc) that answers SIGUSR2 with a 'heap measured' line. */
export const HEAP_FIXTURE = fileURLToPath(new URL('./fixtures/heap.js', import.meta.url));

/** The child's heap in use after full garbage collection; it must run with HEAP_FIXTURE. */
export async function measureHeap(svc: ChildService): Promise<number> {
  const taken = svc.lines.filter((l) => l.message === 'heap measured').length;
  svc.child.kill('SIGUSR2');
  const line = await eventually(() => svc.lines.filter((l) => l.message === 'heap measured')[taken], 10_000, 'a heap measurement');
  return line.heap_used as number;
}
