/**
 * The fan-out scenarios inside a load process (one per variant): its subscribers and publishers,
 * each slice's publications on a fixed schedule, and the count of what arrived.
 *
 * It must cost less per delivery than the servers it measures, so a delivery is never parsed:
 * the publisher writes a fixed-width send time and sequence number at the start of its data,
 * and the receiver reads them after the frame's first '#' (no channel name, frame field or
 * Socket.IO packet id can hold one). Only the first delivery of each slice is parsed whole, to
 * check that the frame is the one the protocol promises.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import type {
  FanoutJob,
  FanoutLatencyResult,
  FanoutOpenJob,
  FanoutOpenResult,
  FanoutProtocol,
  FanoutSliceJob,
  FanoutSliceResult,
  FanoutSubscribeJob,
  FanoutSubscribeResult,
} from './fanout-protocol.js';
import { percentiles } from './stats.js';

const CLIENT_OPTIONS: WebSocket.ClientOptions = {
  perMessageDeflate: false,
  skipUTF8Validation: true,
  handshakeTimeout: 15_000,
  generateMask: (mask: Buffer) => mask.fill(0),
};
const MARK = 0x23;
const TS_DIGITS = 13;
const SEQ_DIGITS = 9;
/** Latency samples kept per round; beyond it only counts go on. */
const SAMPLE_CAPACITY = 1 << 20;
const REPLY_TIMEOUT_MS = 30_000;

const STATUS_SENT = 0;
const STATUS_ACCEPTED = 1;
const STATUS_REFUSED = 2;

type Role = 'subscriber' | 'publisher';

interface Conn {
  readonly ws: WebSocket;
  readonly role: Role;
  /** Subscribe replies awaited, by id: called with the error code, or undefined when subscribed. */
  readonly awaiting: Map<number, (error?: string) => void>;
}

/** A small deterministic generator, so every variant's subscribers join the same channels. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** For each subscriber, the indexes of the `per` distinct channels it joins. */
export function subscriptionPlan(subscribers: number, channels: number, per: number): number[][] {
  if (per > channels) throw new RangeError(`${per} subscriptions per connection from ${channels} channels`);
  const random = mulberry32(13);
  const plan: number[][] = [];
  for (let i = 0; i < subscribers; i++) {
    if (per === channels) {
      plan.push(Array.from({ length: channels }, (_, c) => c));
      continue;
    }
    const mine = new Set<number>();
    while (mine.size < per) mine.add(Math.floor(random() * channels));
    plan.push([...mine]);
  }
  return plan;
}

function readDigits(buf: Buffer, at: number, n: number): number {
  let value = 0;
  for (let i = 0; i < n; i++) {
    const d = buf[at + i] - 48;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

class FanoutSet {
  readonly #protocol: FanoutProtocol;
  readonly #channels: readonly string[];
  readonly #channelJson: readonly string[];
  readonly #plan: number[][];
  /** Subscribers of each channel, counted as their subscriptions are confirmed. */
  readonly #counts: Uint32Array;
  readonly subscribers: Conn[] = [];
  readonly publishers: Conn[] = [];
  #confirmed = 0;
  #nextSubscribeId = 1;

  // Per publication, by sequence number.
  #expected = new Uint32Array(1024);
  #got = new Uint32Array(1024);
  #status = new Uint8Array(1024);
  #nextSeq = 0;
  #padding = '';

  // The open slice: publications from #sliceFirst on are its own.
  #sliceOpen = false;
  #sliceFirst = 0;
  #sliceExpected = 0;
  #sliceGot = 0;
  #pendingReplies = 0;
  #late = 0;
  #checkNext = false;
  #measuring = false;
  #drained: (() => void) | undefined;
  #protocolError: string | undefined;

  readonly #samples = new Float64Array(SAMPLE_CAPACITY);
  #n = 0;

  constructor(job: FanoutOpenJob) {
    this.#protocol = job.protocol;
    this.#channels = job.channels;
    this.#channelJson = job.channels.map((c) => JSON.stringify(c));
    this.#plan = subscriptionPlan(job.subscribers, job.channels.length, job.perSubscriber);
    this.#counts = new Uint32Array(job.channels.length);
  }

  get confirmed(): number {
    return this.#confirmed;
  }

  async open(job: FanoutOpenJob): Promise<void> {
    const plan: { role: Role; url: string }[] = [
      ...Array.from({ length: job.subscribers }, (_, i) => ({ role: 'subscriber' as const, url: job.urls[i % job.urls.length] })),
      ...Array.from({ length: job.publishers }, (_, i) => ({ role: 'publisher' as const, url: job.urls[i % job.urls.length] })),
    ];
    const conns: Conn[] = new Array<Conn>(plan.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < plan.length) {
        const i = next++;
        conns[i] = await this.#connect(plan[i].url, plan[i].role);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(job.concurrency, plan.length) }, worker));
    } catch (err) {
      for (const c of conns) c?.ws.terminate();
      throw err;
    }
    this.subscribers.push(...conns.slice(0, job.subscribers));
    this.publishers.push(...conns.slice(job.subscribers));
  }

  /** Opens one connection; for Socket.IO, through the engine.io open and the namespace connect. */
  #connect(url: string, role: Role): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, CLIENT_OPTIONS);
      const conn: Conn = { ws, role, awaiting: new Map() };
      const fail = (err: Error): void => {
        ws.terminate();
        reject(err);
      };
      ws.once('error', fail);
      const ready = (): void => {
        ws.off('error', fail);
        // A socket error later ends that connection; the slice notices the missing deliveries.
        ws.on('error', () => undefined);
        ws.removeAllListeners('message');
        ws.on('message', role === 'subscriber' ? (data: Buffer) => this.#onSubscriberFrame(conn, data) : (data: Buffer) => this.#onControl(conn, data));
        resolve(conn);
      };
      if (this.#protocol === 'ws-service') {
        ws.once('open', ready);
        return;
      }
      // engine.io speaks first ("0{sid…}"), then the client joins the main namespace ("40").
      ws.on('message', (data: Buffer) => {
        const text = data.toString('utf8');
        if (text.startsWith('0{')) ws.send('40');
        else if (text.startsWith('40')) ready();
        else if (text.startsWith('44')) fail(new Error(`Socket.IO refused the connection: ${text.slice(0, 200)}`));
      });
    });
  }

  /** Subscribes subscribers [from, to): each sends all its subscribes at once, then awaits the replies. */
  async subscribe(job: FanoutSubscribeJob): Promise<void> {
    let next = job.from;
    const worker = async (): Promise<void> => {
      while (next < job.to) {
        const i = next++;
        const conn = this.subscribers[i];
        await Promise.all(
          this.#plan[i].map((channel) => {
            const id = this.#nextSubscribeId++;
            const reply = new Promise<void>((resolve, reject) => {
              conn.awaiting.set(id, (error) => {
                conn.awaiting.delete(id);
                if (error === undefined) {
                  this.#counts[channel]++;
                  this.#confirmed++;
                  resolve();
                } else reject(new Error(`subscribe to ${this.#channels[channel]} refused: ${error}`));
              });
            });
            conn.ws.send(
              this.#protocol === 'ws-service'
                ? `{"type":"subscribe","id":${id},"channel":${this.#channelJson[channel]}}`
                : `42${id}["subscribe",${this.#channelJson[channel]}]`,
            );
            return withTimeout(reply, REPLY_TIMEOUT_MS, `subscribe ${id}`);
          }),
        );
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(job.inflight, job.to - job.from)) }, worker));
  }

  #onSubscriberFrame(conn: Conn, data: Buffer): void {
    const at = data.indexOf(MARK);
    if (at < 0) {
      this.#onControl(conn, data);
      return;
    }
    const now = performance.now() * 1000;
    const ts = readDigits(data, at + 1, TS_DIGITS);
    const seq = readDigits(data, at + 1 + TS_DIGITS, SEQ_DIGITS);
    if (ts < 0 || seq < 0 || seq >= this.#nextSeq) {
      this.#protocolError ??= `a delivery the load did not publish: ${data.toString('utf8', 0, 200)}`;
      return;
    }
    this.#got[seq]++;
    if (!this.#sliceOpen || seq < this.#sliceFirst) {
      this.#late++;
      return;
    }
    this.#sliceGot++;
    if (this.#measuring && this.#n < SAMPLE_CAPACITY) this.#samples[this.#n++] = now - ts;
    if (this.#checkNext) {
      this.#checkNext = false;
      this.#check(data, seq, ts);
    }
    if (this.#drained !== undefined) this.#maybeDrained();
  }

  /** The frame as a client would parse it: a message of the publication's channel with its data intact. */
  #check(data: Buffer, seq: number, ts: number): void {
    const text = data.toString('utf8');
    const channel = this.#channels[seq % this.#channels.length];
    const expected = this.#data(ts, seq);
    let ok = false;
    try {
      if (this.#protocol === 'ws-service') {
        const frame = JSON.parse(text) as { type?: unknown; channel?: unknown; data?: unknown };
        ok = frame.type === 'message' && frame.channel === channel && frame.data === expected;
      } else if (text.startsWith('42')) {
        const [event, body] = JSON.parse(text.slice(2)) as [unknown, { channel?: unknown; data?: unknown } | undefined];
        ok = event === 'message' && body?.channel === channel && body.data === expected;
      }
    } catch {
      ok = false;
    }
    if (!ok) this.#protocolError ??= `publication ${seq} on ${channel} was delivered as ${text.slice(0, 300)}`;
  }

  #onControl(conn: Conn, data: Buffer): void {
    const text = data.toString('utf8');
    if (this.#protocol === 'socket.io') {
      if (text === '2') {
        conn.ws.send('3');
        return;
      }
      if (!text.startsWith('43')) return;
      const id = Number.parseInt(text.slice(2), 10);
      if (conn.role === 'publisher') this.#onReply(id, true);
      else conn.awaiting.get(id)?.();
      return;
    }
    let frame: { type?: unknown; id?: unknown; code?: unknown };
    try {
      frame = JSON.parse(text) as typeof frame;
    } catch {
      this.#protocolError ??= `a frame that is not JSON: ${text.slice(0, 200)}`;
      return;
    }
    if (typeof frame.id !== 'number') return;
    if (conn.role === 'publisher') {
      if (frame.type === 'published') this.#onReply(frame.id, true);
      else if (frame.type === 'error') this.#onReply(frame.id, false);
    } else if (frame.type === 'subscribed') conn.awaiting.get(frame.id)?.();
    else if (frame.type === 'error') conn.awaiting.get(frame.id)?.(String(frame.code));
  }

  #onReply(seq: number, accepted: boolean): void {
    if (!(seq >= 0 && seq < this.#nextSeq) || this.#status[seq] !== STATUS_SENT) return;
    this.#status[seq] = accepted ? STATUS_ACCEPTED : STATUS_REFUSED;
    if (!this.#sliceOpen || seq < this.#sliceFirst) return;
    this.#pendingReplies--;
    if (!accepted) this.#sliceExpected -= this.#expected[seq];
    if (this.#drained !== undefined) this.#maybeDrained();
  }

  #maybeDrained(): void {
    if (this.#pendingReplies === 0 && this.#sliceGot >= this.#sliceExpected) this.#drained?.();
  }

  #data(ts: number, seq: number): string {
    return `#${String(ts).padStart(TS_DIGITS, '0')}${String(seq).padStart(SEQ_DIGITS, '0')}${this.#padding}`;
  }

  #grow(seq: number): void {
    if (seq < this.#expected.length) return;
    const size = Math.max(seq + 1, this.#expected.length * 2);
    for (const key of ['expected', 'got'] as const) {
      const grown = new Uint32Array(size);
      grown.set(key === 'expected' ? this.#expected : this.#got);
      if (key === 'expected') this.#expected = grown;
      else this.#got = grown;
    }
    const status = new Uint8Array(size);
    status.set(this.#status);
    this.#status = status;
  }

  #publish(): void {
    const seq = this.#nextSeq++;
    this.#grow(seq);
    const channel = seq % this.#channels.length;
    const expected = this.#counts[channel];
    this.#expected[seq] = expected;
    this.#sliceExpected += expected;
    this.#pendingReplies++;
    const data = this.#data(Math.floor(performance.now() * 1000), seq);
    const frame =
      this.#protocol === 'ws-service'
        ? `{"type":"publish","id":${seq},"channel":${this.#channelJson[channel]},"data":"${data}"}`
        : `42${seq}["publish",${this.#channelJson[channel]},"${data}"]`;
    this.publishers[seq % this.publishers.length].ws.send(frame);
  }

  async slice(job: FanoutSliceJob): Promise<FanoutSliceResult> {
    // The data's JSON text is exactly payloadBytes: two quotes, the mark, the digits, the padding.
    const pad = job.payloadBytes - 3 - TS_DIGITS - SEQ_DIGITS;
    if (pad < 0) throw new RangeError(`a payload of ${job.payloadBytes} bytes cannot hold the send time and sequence`);
    if (this.#padding.length !== pad) this.#padding = 'x'.repeat(pad);
    const first = this.#nextSeq;
    this.#sliceOpen = true;
    this.#sliceFirst = first;
    this.#sliceExpected = 0;
    this.#sliceGot = 0;
    this.#pendingReplies = 0;
    this.#late = 0;
    this.#checkNext = true;
    this.#measuring = job.measured;
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const began = performance.now();
    let maxLag = 0;
    await new Promise<void>((resolve) => {
      let sent = 0;
      const due = (n: number): number => began + (n * 1000) / job.rate;
      const tick = (): void => {
        const now = performance.now();
        while (sent < job.publishes && due(sent) <= now) {
          maxLag = Math.max(maxLag, now - due(sent));
          this.#publish();
          sent++;
        }
        if (sent === job.publishes) resolve();
        else setTimeout(tick, Math.max(0, due(sent) - performance.now()));
      };
      tick();
    });
    const lastSent = performance.now();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, job.drainMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#drained = done;
      this.#maybeDrained();
    });
    this.#drained = undefined;
    const ended = performance.now();
    this.#sliceOpen = false;
    loop.disable();

    let accepted = 0;
    let refused = 0;
    let unanswered = 0;
    let expected = 0;
    let lost = 0;
    let duplicated = 0;
    for (let seq = first; seq < this.#nextSeq; seq++) {
      const got = this.#got[seq];
      const exp = this.#expected[seq];
      const status = this.#status[seq];
      if (status === STATUS_REFUSED) {
        refused++;
        duplicated += got;
        continue;
      }
      // Not answered, yet delivered: the broker took it; only its reply is missing.
      if (status === STATUS_SENT && got === 0) {
        unanswered++;
        continue;
      }
      if (status === STATUS_ACCEPTED) accepted++;
      else unanswered++;
      expected += exp;
      lost += Math.max(0, exp - got);
      duplicated += Math.max(0, got - exp);
    }
    if (this.#protocolError !== undefined) throw new Error(this.#protocolError);
    return {
      seconds: (ended - began) / 1000,
      drainSeconds: (ended - lastSent) / 1000,
      published: this.#nextSeq - first,
      accepted,
      refused,
      unanswered,
      expected,
      delivered: this.#sliceGot,
      lost,
      duplicated,
      late: this.#late,
      maxPublishLagMs: maxLag,
      loopDelayP99Ms: loop.percentile(99) / 1e6,
      loopDelayMaxMs: loop.max / 1e6,
    };
  }

  latency(): FanoutLatencyResult {
    const result = percentiles(this.#samples, this.#n);
    this.#n = 0;
    return result;
  }

  async close(): Promise<void> {
    const sockets = [...this.subscribers, ...this.publishers].map((c) => c.ws);
    const closed = sockets.map((ws) =>
      ws.readyState === WebSocket.CLOSED ? Promise.resolve() : new Promise<void>((resolve) => ws.once('close', () => resolve())),
    );
    for (const ws of sockets) if (ws.readyState === WebSocket.OPEN) ws.close(1000);
    const timer = setTimeout(() => {
      for (const ws of sockets) ws.terminate();
    }, 10_000);
    await Promise.all(closed);
    clearTimeout(timer);
  }
}

let current: FanoutSet | undefined;

function need(): FanoutSet {
  if (current === undefined) throw new Error('no fan-out connections open');
  return current;
}

/** Runs one fan-out job in this load process; the connections live from fanout-open to fanout-close. */
export async function fanout(job: FanoutJob): Promise<unknown> {
  switch (job.op) {
    case 'fanout-open': {
      if (current !== undefined) throw new Error('fan-out connections already open');
      const started = performance.now();
      const set = new FanoutSet(job);
      await set.open(job);
      current = set;
      return { open: set.subscribers.length + set.publishers.length, seconds: (performance.now() - started) / 1000 } satisfies FanoutOpenResult;
    }
    case 'fanout-subscribe': {
      const started = performance.now();
      await need().subscribe(job);
      return { subscriptions: need().confirmed, seconds: (performance.now() - started) / 1000 } satisfies FanoutSubscribeResult;
    }
    case 'fanout-slice':
      return need().slice(job);
    case 'fanout-latency':
      return need().latency();
    case 'fanout-close': {
      const set = current;
      current = undefined;
      await set?.close();
      // Let the servers see the closes before the next scenario's connections arrive.
      await sleep(50);
      return { closed: true };
    }
  }
}
