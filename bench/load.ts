/**
 * The load generator: its own process (pinned to the load core), driven by the orchestrator
 * over IPC, one job at a time. It is built to cost less per message than the cheapest server:
 * replies are never parsed (their order per connection is the order of the requests, so a FIFO
 * of send times gives each latency), frames are built once, masking uses a zero key (which ws
 * skips), and UTF-8 validation of replies is off.
 *
 * The measuring job takes every server in turn, in short slices, round after round: this
 * machine's CPUs change speed from one second to the next (a shared host), and only slices
 * that alternate faster than that let every variant meet the same machine.
 */
import WebSocket from 'ws';
import { attack, calm } from './abuse-load.js';
import { fanout } from './fanout-load.js';
import { echoFrame } from './frames.js';
import type {
  ConformanceJob,
  ConformanceResult,
  GeneratorEvent,
  InterleaveJob,
  InterleaveResult,
  JobRequest,
  OpenIdleJob,
  OpenIdleResult,
  Target,
  Window,
} from './load-protocol.js';
import { machineBusySeconds, processCpuSeconds } from './proc.js';
import { percentiles, shuffled } from './stats.js';

const CLIENT_OPTIONS: WebSocket.ClientOptions = {
  perMessageDeflate: false,
  skipUTF8Validation: true,
  handshakeTimeout: 15_000,
  generateMask: (mask: Buffer) => mask.fill(0),
};
const SEND_TEXT = { binary: false } as const;
/** Latency samples kept per window; beyond it only counts go on. */
const SAMPLE_CAPACITY = 1 << 20;
/** Open loop: if this many requests await replies, the server is not keeping up; stop sending rather than queue forever. */
const MAX_OUTSTANDING = 200_000;

function emit(event: GeneratorEvent): void {
  process.send?.(event);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

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

/** What one server does inside its window. */
class WindowStats {
  measuring = false;
  count = 0;
  sent = 0;
  failures = 0;
  overloaded = false;
  readonly #samples = new Float64Array(SAMPLE_CAPACITY);
  #n = 0;

  begin(): void {
    this.count = 0;
    this.sent = 0;
    this.failures = 0;
    this.overloaded = false;
    this.#n = 0;
    this.measuring = true;
  }

  record(us: number): void {
    this.count++;
    if (this.#n < SAMPLE_CAPACITY) this.#samples[this.#n++] = us;
  }

  end() {
    this.measuring = false;
    return percentiles(this.#samples, this.#n);
  }
}

/** Drives load at one server: started and stopped once per slice; `count` never resets. */
interface Driver {
  count: number;
  readonly stats: WindowStats;
  start(): void;
  /** Stops the load and waits for what is in flight. */
  stop(): Promise<void>;
  close(): Promise<void>;
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

/** Waits until every connection has its replies (or `ms` pass), so no load spills into the next slice. */
async function drain(queues: readonly SendTimes[], ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (queues.some((q) => q.size > 0) && Date.now() < until) await sleep(2);
}

/**
 * Keeps the event loop polling instead of sleeping until `stop()`, running `each` once per turn:
 * the open loop's schedule is then kept to a few microseconds, so requests arrive a few at a
 * time rather than in millisecond bursts.
 */
function spin(each: () => void): { stop: () => void } {
  let running = true;
  const turn = (): void => {
    if (!running) return;
    each();
    setImmediate(turn);
  };
  setImmediate(turn);
  return {
    stop: () => {
      running = false;
    },
  };
}

/** Closed loop: each connection keeps `inflight` requests outstanding while started. */
async function saturateDriver(job: InterleaveJob, target: Target): Promise<Driver> {
  const sockets = await connectMany(target.url, job.connections, 64);
  let active = false;
  const conns = sockets.map((ws, i) => ({ ws, frame: echoFrame(i, job.payloadBytes), times: new SendTimes() }));
  const stats = new WindowStats();
  const driver: Driver = {
    count: 0,
    stats,
    start() {
      active = true;
      for (const { ws, frame, times } of conns) {
        for (let k = 0; k < job.inflight; k++) {
          times.push(performance.now());
          ws.send(frame, SEND_TEXT);
        }
      }
    },
    async stop() {
      active = false;
      await drain(conns.map((c) => c.times), 10_000);
    },
    close: () => closeAll(sockets),
  };
  for (const { ws, frame, times } of conns) {
    ws.on('message', () => {
      const now = performance.now();
      const sentAt = times.shift();
      driver.count++;
      if (stats.measuring) stats.record((now - sentAt) * 1000);
      if (!active) return;
      times.push(now);
      ws.send(frame, SEND_TEXT);
    });
  }
  return driver;
}

/** Open loop: `rate` requests a second on schedule, round robin over the connections. */
async function rateDriver(job: InterleaveJob, target: Target): Promise<Driver> {
  const sockets = await connectMany(target.url, job.connections, 64);
  const conns = sockets.map((ws, i) => ({ ws, frame: echoFrame(i, job.payloadBytes), times: new SendTimes() }));
  let ticking: { stop: () => void } | undefined;
  const stats = new WindowStats();
  const driver: Driver = {
    count: 0,
    stats,
    start() {
      const began = performance.now();
      let sent = 0;
      let cursor = 0;
      ticking = spin(() => {
        const now = performance.now();
        const due = Math.floor(((now - began) * job.rate) / 1000) - sent;
        if (due <= 0) return;
        let outstanding = 0;
        for (const c of conns) outstanding += c.times.size;
        if (outstanding > MAX_OUTSTANDING) {
          if (stats.measuring) stats.overloaded = true;
          return;
        }
        for (let k = 0; k < due; k++) {
          const c = conns[cursor];
          cursor = (cursor + 1) % conns.length;
          c.times.push(now);
          c.ws.send(c.frame, SEND_TEXT);
        }
        sent += due;
        if (stats.measuring) stats.sent += due;
      });
    },
    async stop() {
      ticking?.stop();
      await drain(conns.map((c) => c.times), 10_000);
    },
    close: () => closeAll(sockets),
  };
  for (const { ws, times } of conns) {
    ws.on('message', () => {
      const now = performance.now();
      const sentAt = times.shift();
      driver.count++;
      if (stats.measuring) stats.record((now - sentAt) * 1000);
    });
  }
  return driver;
}

/** Handshake churn: `concurrency` workers each open a connection, close it with 1000, repeat. */
function churnDriver(job: InterleaveJob, target: Target): Driver {
  let running = false;
  // Workers of an earlier slice may still be finishing a handshake when the next slice starts.
  let generation = 0;
  const stats = new WindowStats();
  let workers: Promise<void[]> = Promise.resolve([]);
  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const started = performance.now();
      const ws = new WebSocket(target.url, CLIENT_OPTIONS);
      ws.once('open', () => {
        driver.count++;
        if (stats.measuring) stats.record((performance.now() - started) * 1000);
        ws.close(1000);
      });
      ws.once('error', () => {
        if (stats.measuring) stats.failures++;
      });
      ws.once('close', () => resolve());
    });
  const driver: Driver = {
    count: 0,
    stats,
    start() {
      running = true;
      const mine = ++generation;
      const worker = async (): Promise<void> => {
        while (running && generation === mine) await once();
      };
      workers = Promise.all(Array.from({ length: job.concurrency }, worker));
    },
    async stop() {
      running = false;
      await workers;
    },
    close: () => Promise.resolve(),
  };
  return driver;
}

/**
 * Alternates the load between the servers every `sliceMs`, `cycles` times per round, `rounds`
 * rounds: each server is alone on its core while loaded, and over a round each has met the
 * machine in the same moments as the others (its speed changes more slowly than the slices).
 * A round of a server is everything it did between the round's edges: every reply and every
 * CPU-second, the tail of its last slice and its deferred work (batched exports) included.
 */
async function interleave(job: InterleaveJob, id: number): Promise<InterleaveResult> {
  const drivers: Driver[] = [];
  try {
    for (const target of job.targets) {
      drivers.push(job.kind === 'saturate' ? await saturateDriver(job, target) : job.kind === 'rate' ? await rateDriver(job, target) : churnDriver(job, target));
    }
    const rounds: InterleaveResult = {};
    // Before the next server's slice, this one's requests in flight are answered: a backlog
    // worked off on the shared core would otherwise land in the next server's latency. Work a
    // server defers past that (a batch of spans flushed by a timer) still lands in whoever is
    // next: the order is shuffled every cycle so that lands on every variant alike.
    // How long each server had the load: its slices and the wait for its replies in flight after
    // each, which the replies counted in its window include.
    const loadedMs = new Map<Driver, number>();
    const slices = async (cycles: number): Promise<void> => {
      for (let c = 0; c < cycles; c++) {
        for (const d of shuffled(drivers)) {
          const began = performance.now();
          d.start();
          await sleep(job.sliceMs);
          await d.stop();
          loadedMs.set(d, (loadedMs.get(d) ?? 0) + performance.now() - began);
        }
      }
    };
    await slices(job.warmupCycles);
    for (let r = 1; r <= job.rounds; r++) {
      const cpu = job.targets.map((t) => processCpuSeconds(t.pid));
      const counts = drivers.map((d) => d.count);
      loadedMs.clear();
      const machine = machineBusySeconds();
      const generator = process.cpuUsage();
      const startUs = monotonicUs();
      for (const d of drivers) d.stats.begin();
      await slices(job.cycles);
      const latencies = drivers.map((d) => d.stats.end());
      const endUs = monotonicUs();
      const serverCpu = job.targets.map((t, i) => processCpuSeconds(t.pid) - cpu[i]);
      const used = process.cpuUsage(generator);
      const generatorCpuSeconds = (used.user + used.system) / 1e6;
      const otherCpuSeconds = Math.max(0, machineBusySeconds() - machine - serverCpu.reduce((a, b) => a + b, 0) - generatorCpuSeconds);
      for (const [i, target] of job.targets.entries()) {
        const d = drivers[i];
        // Each server had the core for its slices and their drains: that is its window.
        const seconds = loadedMs.get(d)! / 1000;
        const share = seconds / ((endUs - startUs) / 1e6);
        const window: Window = {
          seconds,
          count: d.count - counts[i],
          serverCpuSeconds: serverCpu[i],
          generatorCpuSeconds: generatorCpuSeconds * share,
          otherCpuSeconds: otherCpuSeconds * share,
          latencyUs: latencies[i],
          sent: d.stats.sent,
          overloaded: d.stats.overloaded,
          failures: d.stats.failures,
          startUs,
          endUs,
        };
        (rounds[target.name] ??= []).push({ round: r, count: window.count, cpuSeconds: serverCpu[i], window });
      }
      const summary = job.targets.map((t, i) => `${t.name} ${Math.round(rounds[t.name][r - 1].count / serverCpu[i])}`).join(' ');
      emit({ kind: 'progress', id, text: `${job.kind} round ${r}/${job.rounds}, per server CPU-second: ${summary}` });
    }
    // Work a server defers (a batch of spans exported later) still belongs to its last round.
    const ended = job.targets.map((t) => processCpuSeconds(t.pid));
    await sleep(job.settleMs);
    for (const [i, target] of job.targets.entries()) {
      const all = rounds[target.name];
      const last = all[all.length - 1];
      all[all.length - 1] = { ...last, cpuSeconds: last.cpuSeconds + processCpuSeconds(target.pid) - ended[i] };
    }
    return rounds;
  } finally {
    await Promise.all(drivers.map((d) => d.stop()));
    await Promise.all(drivers.map((d) => d.close()));
  }
}

let idle: WebSocket[] = [];

/** Opens `count` more idle connections; they stay open until close-idle. */
async function openIdle(job: OpenIdleJob): Promise<OpenIdleResult> {
  const started = performance.now();
  idle = [...idle, ...(await connectMany(job.url, job.count, job.concurrency))];
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
  switch (request.op) {
    case 'interleave':
      return interleave(request, request.id);
    case 'open-idle':
      return openIdle(request);
    case 'close-idle':
      return closeIdle();
    case 'conformance':
      return conformance(request);
    case 'calm':
      return calm(request, () => emit({ kind: 'progress', id: request.id, text: 'connected' }));
    case 'attack':
      return attack(request);
    case 'fanout-open':
    case 'fanout-subscribe':
    case 'fanout-slice':
    case 'fanout-latency':
    case 'fanout-close':
      return fanout(request);
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
