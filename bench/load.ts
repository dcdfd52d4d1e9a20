/**
 * The load generator: its own process (pinned to the load core), driven by the orchestrator
 * over IPC, one job at a time. It is built to cost less per message than the cheapest server:
 * replies are never parsed (their order per connection is the order of the requests, so a FIFO
 * of send times gives each latency), frames are built once, masking uses a zero key (which ws
 * skips), and UTF-8 validation of replies is off.
 */
import WebSocket from 'ws';
import { echoFrame } from './frames.js';
import type {
  ChurnJob,
  ChurnResult,
  ConformanceJob,
  ConformanceResult,
  GeneratorEvent,
  JobRequest,
  MessageResult,
  OpenIdleJob,
  OpenIdleResult,
  RateJob,
  SaturateJob,
} from './load-protocol.js';
import { percentiles } from './stats.js';

const CLIENT_OPTIONS: WebSocket.ClientOptions = {
  perMessageDeflate: false,
  skipUTF8Validation: true,
  handshakeTimeout: 15_000,
  generateMask: (mask: Buffer) => mask.fill(0),
};
const SEND_TEXT = { binary: false } as const;
/** Latency samples kept per window; beyond it only counts go on. */
const SAMPLE_CAPACITY = 1 << 22;
/** Open loop: if this many requests await replies, the server is not keeping up; stop sending rather than queue forever. */
const MAX_OUTSTANDING = 200_000;

function emit(event: GeneratorEvent): void {
  process.send?.(event);
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Send times of one connection's outstanding requests, oldest first. */
class SendTimes {
  #buf = new Float64Array(16);
  #head = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(t: number): void {
    if (this.#size === this.#buf.length) {
      const grown = new Float64Array(this.#buf.length * 2);
      for (let i = 0; i < this.#size; i++) grown[i] = this.#buf[(this.#head + i) % this.#buf.length];
      this.#buf = grown;
      this.#head = 0;
    }
    this.#buf[(this.#head + this.#size) % this.#buf.length] = t;
    this.#size++;
  }

  shift(): number {
    const t = this.#buf[this.#head];
    this.#head = (this.#head + 1) % this.#buf.length;
    this.#size--;
    return t;
  }
}

/** Counts and latency samples of one measurement window. */
class Window {
  measuring = false;
  received = 0;
  sent = 0;
  #samples = new Float64Array(SAMPLE_CAPACITY);
  #count = 0;
  #started = 0;
  #cpu: NodeJS.CpuUsage = process.cpuUsage();
  #seconds = 0;
  #cpuSeconds = 0;

  constructor(readonly id: number) {}

  record(us: number): void {
    this.received++;
    if (this.#count < SAMPLE_CAPACITY) this.#samples[this.#count++] = us;
  }

  start(): void {
    this.received = 0;
    this.sent = 0;
    this.#count = 0;
    this.#cpu = process.cpuUsage();
    this.#started = performance.now();
    this.measuring = true;
    emit({ kind: 'mark', id: this.id, phase: 'start' });
  }

  end(): void {
    this.measuring = false;
    this.#seconds = (performance.now() - this.#started) / 1000;
    this.#cpuSeconds = cpuSeconds(this.#cpu);
    emit({ kind: 'mark', id: this.id, phase: 'end' });
  }

  result(open: boolean): MessageResult {
    return {
      messages: this.received,
      seconds: this.#seconds,
      latencyUs: percentiles(this.#samples, this.#count),
      generatorCpuSeconds: this.#cpuSeconds,
      ...(open ? { sent: this.sent } : {}),
    };
  }
}

function connect(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, CLIENT_OPTIONS);
    const fail = (err: Error): void => {
      ws.off('open', opened);
      reject(err);
    };
    const opened = (): void => {
      ws.off('error', fail);
      // A socket error after the open ends that connection; the job notices the missing replies.
      ws.on('error', () => undefined);
      resolve(ws);
    };
    ws.once('open', opened);
    ws.once('error', fail);
  });
}

/** Opens `count` connections, at most `concurrency` handshakes at a time. */
async function connectMany(url: string, count: number, concurrency: number): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      sockets.push(await connect(url));
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  } catch (err) {
    for (const ws of sockets) ws.terminate();
    throw err;
  }
  return sockets;
}

/** Closes with 1000 and waits for each close handshake; stragglers are terminated. */
async function closeAll(sockets: readonly WebSocket[], ms = 10_000): Promise<void> {
  const closed = sockets.map((ws) =>
    ws.readyState === WebSocket.CLOSED ? Promise.resolve() : new Promise<void>((resolve) => ws.once('close', () => resolve())),
  );
  for (const ws of sockets) if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  const timer = setTimeout(() => {
    for (const ws of sockets) ws.terminate();
  }, ms);
  await Promise.all(closed);
  clearTimeout(timer);
}

/** Waits until every connection has its replies (or `ms` pass), so nothing is cut mid-flight. */
async function drain(queues: readonly SendTimes[], ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (queues.some((q) => q.size > 0) && Date.now() < until) await sleep(10);
}

async function saturate(job: SaturateJob, window: Window): Promise<MessageResult> {
  const sockets = await connectMany(job.url, job.connections, 64);
  let running = true;
  const queues = sockets.map((ws, i) => {
    const frame = echoFrame(i, job.payloadBytes);
    const times = new SendTimes();
    ws.on('message', () => {
      const now = performance.now();
      const sentAt = times.shift();
      if (window.measuring) window.record((now - sentAt) * 1000);
      if (!running) return;
      times.push(now);
      ws.send(frame, SEND_TEXT);
    });
    return { ws, frame, times };
  });
  for (const { ws, frame, times } of queues) {
    for (let k = 0; k < job.inflight; k++) {
      times.push(performance.now());
      ws.send(frame, SEND_TEXT);
    }
  }
  await sleep(job.warmupMs);
  window.start();
  await sleep(job.measureMs);
  window.end();
  running = false;
  await drain(queues.map((q) => q.times), 5000);
  await closeAll(sockets);
  return window.result(false);
}

async function openLoop(job: RateJob, window: Window): Promise<MessageResult> {
  const sockets = await connectMany(job.url, job.connections, 64);
  const conns = sockets.map((ws, i) => {
    const times = new SendTimes();
    ws.on('message', () => {
      const now = performance.now();
      const sentAt = times.shift();
      if (window.measuring) window.record((now - sentAt) * 1000);
    });
    return { ws, frame: echoFrame(i, job.payloadBytes), times };
  });
  // One tick per millisecond sends what the schedule says is due, round robin over the
  // connections: arrivals do not wait for replies, so a slow server cannot slow the load.
  let sent = 0;
  let outstanding = 0;
  let overloaded = false;
  let cursor = 0;
  const began = performance.now();
  const tick = (): void => {
    const now = performance.now();
    const due = Math.floor(((now - began) * job.rate) / 1000) - sent;
    outstanding = 0;
    for (const c of conns) outstanding += c.times.size;
    if (outstanding > MAX_OUTSTANDING) {
      overloaded = true;
      return;
    }
    for (let k = 0; k < due; k++) {
      const c = conns[cursor];
      cursor = (cursor + 1) % conns.length;
      c.times.push(now);
      c.ws.send(c.frame, SEND_TEXT);
    }
    sent += due;
    if (window.measuring) window.sent += due;
  };
  const timer = setInterval(tick, 1);
  await sleep(job.warmupMs);
  window.start();
  await sleep(job.measureMs);
  window.end();
  clearInterval(timer);
  await drain(conns.map((c) => c.times), 5000);
  await closeAll(sockets);
  return { ...window.result(true), overloaded };
}

async function churn(job: ChurnJob, window: Window): Promise<ChurnResult> {
  let running = true;
  let handshakes = 0;
  let failures = 0;
  const samples = new Float64Array(SAMPLE_CAPACITY);
  let count = 0;
  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const started = performance.now();
      const ws = new WebSocket(job.url, CLIENT_OPTIONS);
      ws.once('open', () => {
        if (window.measuring) {
          handshakes++;
          if (count < SAMPLE_CAPACITY) samples[count++] = (performance.now() - started) * 1000;
        }
        ws.close(1000);
      });
      ws.once('error', () => {
        if (window.measuring) failures++;
      });
      ws.once('close', () => resolve());
    });
  const worker = async (): Promise<void> => {
    while (running) await once();
  };
  const workers = Promise.all(Array.from({ length: job.concurrency }, worker));
  await sleep(job.warmupMs);
  window.start();
  handshakes = 0;
  failures = 0;
  count = 0;
  await sleep(job.measureMs);
  window.end();
  running = false;
  const { seconds, generatorCpuSeconds } = window.result(false);
  await workers;
  return { handshakes, seconds, failures, handshakeUs: percentiles(samples, count), generatorCpuSeconds };
}

let idle: WebSocket[] = [];

async function openIdle(job: OpenIdleJob): Promise<OpenIdleResult> {
  const started = performance.now();
  idle = await connectMany(job.url, job.count, job.concurrency);
  return { open: idle.filter((ws) => ws.readyState === WebSocket.OPEN).length, seconds: (performance.now() - started) / 1000 };
}

async function closeIdle(): Promise<{ closed: number }> {
  const sockets = idle;
  idle = [];
  await closeAll(sockets, 20_000);
  return { closed: sockets.length };
}

async function conformance(job: ConformanceJob): Promise<ConformanceResult> {
  const [ws] = await connectMany(job.url, 1, 1);
  const replies: string[] = [];
  const all = new Promise<void>((resolve) => {
    ws.on('message', (data: Buffer) => {
      replies.push(data.toString('utf8'));
      if (replies.length === job.frames.length) resolve();
    });
  });
  for (const frame of job.frames) ws.send(frame);
  await Promise.race([all, sleep(5000)]);
  await closeAll([ws]);
  return { replies };
}

function run(request: JobRequest): Promise<unknown> {
  const window = new Window(request.id);
  switch (request.op) {
    case 'saturate':
      return saturate(request, window);
    case 'rate':
      return openLoop(request, window);
    case 'churn':
      return churn(request, window);
    case 'open-idle':
      return openIdle(request);
    case 'close-idle':
      return closeIdle();
    case 'conformance':
      return conformance(request);
  }
}

process.on('message', (request: JobRequest) => {
  run(request).then(
    (result) => emit({ kind: 'result', id: request.id, result }),
    (err: unknown) => emit({ kind: 'error', id: request.id, message: err instanceof Error ? err.message : String(err) }),
  );
});
// The orchestrator going away (even killed) must not leave a generator behind.
process.on('disconnect', () => process.exit(0));
emit({ kind: 'ready' });
