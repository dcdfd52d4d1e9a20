/**
 * The abuse scenario inside a load process: the calm client and the attacks. Every attack is
 * bounded in connections, requests and time, and tears down all it opened when its window ends.
 */
import { request } from 'node:http';
import { connect as tcpConnect, type Socket } from 'node:net';
import WebSocket from 'ws';
import type { AttackJob, AttackResult, CalmJob, CalmResult } from './abuse-protocol.js';
import { echoFrame } from './frames.js';
import { percentiles } from './stats.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const OPTIONS: WebSocket.ClientOptions = { perMessageDeflate: false, handshakeTimeout: 10_000 };
/** Beyond this many bytes queued in its own socket, a slow reader waits: its own memory is not the attack. */
const ATTACKER_BUFFER_CAP = 1 << 20;
/** The frames are Buffers; without this ws would send them binary, which the protocol refuses cheaply. */
const TEXT = { binary: false } as const;

/** Latencies in µs, as many as come. */
class Samples {
  #values = new Float64Array(1024);
  #n = 0;

  add(us: number): void {
    if (this.#n === this.#values.length) {
      const grown = new Float64Array(this.#values.length * 2);
      grown.set(this.#values);
      this.#values = grown;
    }
    this.#values[this.#n++] = us;
  }

  get percentiles() {
    return percentiles(this.#values, this.#n);
  }
}

type Outcome = { kind: 'open'; ws: WebSocket } | { kind: 'refused'; status: number } | { kind: 'failed' };

/** One WebSocket handshake: open, refused with an HTTP status, or failed. */
function handshake(url: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, OPTIONS);
    ws.once('open', () => {
      ws.removeAllListeners('error');
      ws.on('error', () => undefined);
      resolve({ kind: 'open', ws });
    });
    ws.once('unexpected-response', (req, res) => {
      req.destroy();
      res.destroy();
      resolve({ kind: 'refused', status: res.statusCode ?? 0 });
    });
    // `on`, not `once`: a refused handshake's request can still fail after it was answered.
    ws.on('error', () => resolve({ kind: 'failed' }));
  });
}

function getStatus(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.once('error', () => resolve(0));
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(0));
    req.end();
  });
}

/** `connected` is called once the calm connections are open, before the window begins. */
export async function calm(job: CalmJob, connected: () => void): Promise<CalmResult> {
  const cpu = process.cpuUsage();
  const pending = new Map<number, number>();
  const rtt = new Samples();
  let closed = 0;
  let stopping = false;
  const sockets: WebSocket[] = [];
  for (let i = 0; i < job.connections; i++) {
    const outcome = await handshake(job.wsUrl);
    if (outcome.kind !== 'open') throw new Error(`calm client: connection ${i} ${outcome.kind}`);
    const ws = outcome.ws;
    ws.on('message', (data: Buffer) => {
      const id = (JSON.parse(data.toString('utf8')) as { id?: unknown }).id;
      const sentAt = typeof id === 'number' ? pending.get(id) : undefined;
      if (sentAt === undefined) return;
      pending.delete(id as number);
      rtt.add((performance.now() - sentAt) * 1000);
    });
    ws.once('close', () => {
      if (!stopping) closed++;
    });
    sockets.push(ws);
  }

  connected();
  const began = performance.now();
  const until = began + job.durationMs;
  let sent = 0;
  let skipped = 0;
  // A timer rather than a busy loop: the load core is shared with the attacker.
  const ticker = setInterval(() => {
    const now = performance.now();
    const due = Math.floor(((Math.min(now, until) - began) * job.rate) / 1000) - sent;
    for (let k = 0; k < due; k++) {
      const ws = sockets[sent % sockets.length];
      const id = ++sent;
      if (ws.readyState !== WebSocket.OPEN) {
        skipped++;
        continue;
      }
      pending.set(id, performance.now());
      ws.send(`{"type":"ping","id":${id}}`);
    }
  }, 5);

  const health = new Samples();
  let healthSent = 0;
  let healthOk = 0;
  const healthz = (async () => {
    while (performance.now() < until) {
      const started = performance.now();
      healthSent++;
      const status = await getStatus(`${job.baseUrl}/healthz`, 5000);
      if (status === 200) {
        healthOk++;
        health.add((performance.now() - started) * 1000);
      }
      await sleep(Math.max(0, job.healthzEveryMs - (performance.now() - started)));
    }
  })();

  const connectTimes = new Samples();
  const connects = { tried: 0, opened: 0, refused: 0, failed: 0 };
  const attempts: Promise<void>[] = [];
  const connector = setInterval(() => {
    if (performance.now() >= until) return;
    connects.tried++;
    const started = performance.now();
    attempts.push(
      handshake(job.wsUrl).then((outcome) => {
        if (outcome.kind === 'open') {
          connects.opened++;
          connectTimes.add((performance.now() - started) * 1000);
          outcome.ws.close(1000);
        } else connects[outcome.kind]++;
      }),
    );
  }, job.connectEveryMs);

  await sleep(job.durationMs);
  clearInterval(ticker);
  clearInterval(connector);
  const graceUntil = performance.now() + job.graceMs;
  while (pending.size > 0 && performance.now() < graceUntil) await sleep(10);
  await Promise.race([Promise.all([healthz, ...attempts]), sleep(Math.max(0, graceUntil - performance.now()))]);
  stopping = true;
  for (const ws of sockets) ws.terminate();
  // A ping due on a connection the server had closed was never sent: unanswered too.
  const answered = sent - pending.size - skipped;
  const used = process.cpuUsage(cpu);
  return {
    cpuSeconds: (used.user + used.system) / 1e6,
    pings: { sent, answered, unanswered: sent - answered, latencyUs: rtt.percentiles },
    closed,
    healthz: { sent: healthSent, ok: healthOk, failed: healthSent - healthOk, latencyUs: health.percentiles },
    connects: { ...connects, latencyUs: connectTimes.percentiles },
  };
}

/** The counters every attack fills in. */
class Tally {
  opened = 0;
  failed = 0;
  closedByServer = 0;
  sent = 0;
  bytesSent = 0;
  readonly refused: Record<string, number> = {};
  readonly closeCodes: Record<string, number> = {};
  readonly answers: Record<string, number> = {};

  static bump(into: Record<string, number>, key: string, by = 1): void {
    into[key] = (into[key] ?? 0) + by;
  }
}

/** Opens `count` WebSockets, `concurrency` handshakes at a time, counting refusals and failures. */
async function openMany(url: string, count: number, concurrency: number, tally: Tally, deadline: number): Promise<WebSocket[]> {
  const open: WebSocket[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() < deadline) {
      next++;
      const outcome = await handshake(url);
      if (outcome.kind === 'open') open.push(outcome.ws);
      else if (outcome.kind === 'refused') Tally.bump(tally.refused, String(outcome.status));
      else tally.failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  tally.opened = Math.max(tally.opened, open.length);
  return open;
}

/** Counts a server-side close during the window (and its code when a close frame was read). */
function watchClose(ws: WebSocket, tally: Tally, during: () => boolean): void {
  ws.once('close', (code: number) => {
    if (!during()) return;
    tally.closedByServer++;
    Tally.bump(tally.closeCodes, String(code));
  });
}

/**
 * The HTTP statuses of the response status lines in `text`, and the tail to prepend to the next
 * chunk: a status line split across chunks is counted once, with the chunk that completes it.
 */
export function statusLines(text: string): { statuses: string[]; rest: string } {
  const statuses: string[] = [];
  let counted = 0;
  for (const match of text.matchAll(/HTTP\/1\.1 (\d{3}) /g)) {
    statuses.push(match[1]);
    counted = match.index + match[0].length;
  }
  return { statuses, rest: text.slice(Math.max(counted, text.length - 16)) };
}

async function pipelinedMetrics(job: AttackJob, tally: Tally, until: number): Promise<void> {
  const payload = Buffer.from('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(job.pipelined.requests), 'latin1');
  let during = true;
  const sockets = await Promise.all(
    Array.from(
      { length: job.pipelined.sockets },
      () =>
        new Promise<Socket | null>((resolve) => {
          const socket = tcpConnect(job.port, job.host);
          socket.once('connect', () => {
            // Nothing is read during the window: what the server answers piles up on its side.
            socket.pause();
            socket.once('close', () => {
              if (during) tally.closedByServer++;
            });
            socket.write(payload, (err) => {
              if (err !== undefined && err !== null) return;
              tally.sent += job.pipelined.requests;
              tally.bytesSent += payload.length;
            });
            resolve(socket);
          });
          socket.once('error', () => {
            tally.failed++;
            resolve(null);
          });
        }),
    ),
  );
  const open = sockets.filter((s): s is Socket => s !== null);
  tally.opened = open.length;
  await sleep(Math.max(0, until - performance.now()));
  during = false;
  // After the window (not measured): read for a moment to see what the server had answered.
  await Promise.all(
    open.map(
      (socket) =>
        new Promise<void>((resolve) => {
          let carry = '';
          socket.on('data', (chunk: Buffer) => {
            const { statuses, rest } = statusLines(carry + chunk.toString('latin1'));
            for (const status of statuses) Tally.bump(tally.answers, status);
            carry = rest;
          });
          socket.on('error', () => undefined);
          socket.resume();
          setTimeout(() => {
            socket.destroy();
            resolve();
          }, job.drainMs);
        }),
    ),
  );
}

/** An echo request of an object with as many short keys as fit in `bytes`. */
export function manyKeysFrame(bytes: number): Buffer {
  const head = '{"type":"echo","id":1,"data":{';
  const parts: string[] = [];
  let length = head.length + 2;
  for (let i = 0; ; i++) {
    const part = `"k${String(i).padStart(5, '0')}":1`;
    if (length + part.length + 1 > bytes) break;
    parts.push(part);
    length += part.length + 1;
  }
  return Buffer.from(`${head}${parts.join(',')}}}`, 'latin1');
}

async function costlyJson(job: AttackJob, tally: Tally, until: number): Promise<void> {
  const frame = manyKeysFrame(job.costly.bytes);
  const [ws] = await openMany(job.wsUrl, 1, 1, tally, until);
  if (ws === undefined) return;
  let during = true;
  watchClose(ws, tally, () => during);
  ws.on('message', (data: Buffer) => {
    // The reply's head tells echo from error without parsing a megabyte.
    const head = data.subarray(0, 200).toString('latin1');
    const code = /"code":"([a-z_]+)"/.exec(head)?.[1];
    Tally.bump(tally.answers, code ?? /"type":"([a-z_]+)"/.exec(head)?.[1] ?? 'other');
  });
  const began = performance.now();
  while (performance.now() < until && ws.readyState === WebSocket.OPEN) {
    ws.send(frame, TEXT);
    tally.sent++;
    tally.bytesSent += frame.length;
    await sleep(Math.max(0, began + (tally.sent * 1000) / job.costly.rate - performance.now()));
  }
  await sleep(Math.max(0, until - performance.now()));
  during = false;
  ws.terminate();
}

async function slowReaders(job: AttackJob, tally: Tally, until: number): Promise<void> {
  const { connections, rate, payloadBytes } = job.slow;
  const sockets = await openMany(job.wsUrl, connections, 50, tally, until);
  let during = true;
  for (const ws of sockets) {
    // Never read: the echoes pile up in the server's send buffers and the kernel's.
    ws.pause();
    watchClose(ws, tally, () => during);
  }
  const frames = sockets.map((_, i) => echoFrame(i, payloadBytes));
  const sentBy = new Array<number>(sockets.length).fill(0);
  const began = performance.now();
  while (performance.now() < until) {
    const due = Math.floor(((performance.now() - began) * rate) / 1000);
    sockets.forEach((ws, i) => {
      while (sentBy[i] < due && ws.readyState === WebSocket.OPEN && ws.bufferedAmount < ATTACKER_BUFFER_CAP) {
        ws.send(frames[i], TEXT);
        sentBy[i]++;
        tally.sent++;
        tally.bytesSent += payloadBytes;
      }
    });
    await sleep(20);
  }
  during = false;
  for (const ws of sockets) ws.terminate();
}

async function hoarding(job: AttackJob, tally: Tally, until: number): Promise<void> {
  const sockets = await openMany(job.wsUrl, job.hoard.connections, job.hoard.concurrency, tally, until);
  let during = true;
  for (const ws of sockets) watchClose(ws, tally, () => during);
  await sleep(Math.max(0, until - performance.now()));
  during = false;
  for (const ws of sockets) ws.terminate();
}

export async function attack(job: AttackJob): Promise<AttackResult> {
  const tally = new Tally();
  const cpu = process.cpuUsage();
  const until = performance.now() + job.durationMs;
  switch (job.kind) {
    case 'none':
      await sleep(job.durationMs);
      break;
    case 'pipelined_metrics':
      await pipelinedMetrics(job, tally, until);
      break;
    case 'costly_json':
      await costlyJson(job, tally, until);
      break;
    case 'slow_readers':
      await slowReaders(job, tally, until);
      break;
    case 'hoarding':
      await hoarding(job, tally, until);
      break;
  }
  const used = process.cpuUsage(cpu);
  return {
    kind: job.kind,
    opened: tally.opened,
    refused: tally.refused,
    failed: tally.failed,
    closedByServer: tally.closedByServer,
    closeCodes: tally.closeCodes,
    sent: tally.sent,
    bytesSent: tally.bytesSent,
    answers: tally.answers,
    cpuSeconds: (used.user + used.system) / 1e6,
  };
}
