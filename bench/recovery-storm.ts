/**
 * Issue 13's recovery storm: every subscriber of a channel comes back at once, as after a
 * deploy closes an instance, each with the position it last received, a fixed number of
 * publications behind. Two ws-service instances share one real redis-server; the subscribers
 * reconnect to the instance they were not on. Measured: the time until every one has been
 * told `recovered: true` and has received exactly the publications it missed, in order; the
 * servers' CPU and Redis's CPU over that time; the commands Redis ran per recovery.
 *
 * Only ws-service recovers (the floors and Socket.IO keep no history), so the variants are
 * ws-service's own: as `npm start` runs it (C) and with every span exported (D).
 *
 *   node dist/bench/run.js --only recovery_storm                  2,000 subscribers, 100 back, 3 rounds of C and D
 *   node dist/bench/run.js --only recovery_storm --tiny           seconds: proves the harness, measures nothing
 *   node dist/bench/run.js --only recovery_storm --storm-subscribers 500 --storm-back 50 --rounds 5
 */
import { createClient } from '@redis/client';
import WebSocket from 'ws';
import type { Pinning } from './children.js';
import { Sink } from './generator.js';
import { processCpuSecondsExact } from './proc.js';
import { RedisProcess } from './redis-process.js';
import { ServerProcess } from './server-process.js';
import { percentiles, spread, type Percentiles } from './stats.js';
import { VARIANTS, type VariantName } from './variants.js';

export interface StormSettings {
  readonly subscribers: number;
  /** Publications made while the subscribers are away: how far back each recovers from. */
  readonly back: number;
  readonly rounds: number;
  readonly payloadBytes: number;
  /** Connections opened at once while setting a round up (the storm itself opens all at once). */
  readonly setupConcurrency: number;
  /** A round that has not recovered everyone by then is reported with what it got. */
  readonly timeoutMs: number;
}

export const STORM_FULL: StormSettings = { subscribers: 2000, back: 100, rounds: 3, payloadBytes: 256, setupConcurrency: 200, timeoutMs: 60_000 };
export const STORM_TINY: StormSettings = { subscribers: 40, back: 10, rounds: 1, payloadBytes: 256, setupConcurrency: 40, timeoutMs: 20_000 };

/** Its name among `npm run bench`'s scenarios (--only). */
export const RECOVERY_STORM = 'recovery_storm';

export const STORM_VARIANTS = ['C', 'D'] as const satisfies readonly VariantName[];
type StormVariant = (typeof STORM_VARIANTS)[number];

export interface StormRound {
  readonly subscribers: number;
  readonly back: number;
  /** From the first reconnect to the last subscriber holding all it missed. */
  readonly allRecoveredMs: number;
  /** Each subscriber's own time from the storm's start to its last missed publication. */
  readonly perSubscriberMs: Percentiles;
  readonly recovered: number;
  /** Subscribers told `recovered: false`, refused, or whose replay had a gap, a duplicate or too few. */
  readonly failed: number;
  readonly failures: readonly string[];
  /** Both instances' CPU over the storm. */
  readonly serverCpuSeconds: number;
  readonly redisCpuSeconds: number;
  /**
   * Commands the instances sent Redis over the storm, per recovering subscriber: what costs a
   * network round trip. Commands a script runs inside Redis are not among them.
   */
  readonly redisRoundTripsPerRecovery: number;
  /** Calls by command (commandstats' names, those run inside scripts included), over the storm. */
  readonly redisCalls: Readonly<Record<string, number>>;
}

export interface StormVariantResults {
  readonly name: StormVariant;
  readonly title: string;
  readonly rounds: readonly StormRound[];
}

const CHANNEL_PREFIX = 'storm:';

/**
 * What the publish and recover scripts run inside Redis (redis-scripts.ts): commandstats counts
 * them as calls, but no client sent them.
 */
const SCRIPTED = new Set(['hget', 'hset', 'pexpire', 'xadd', 'xtrim', 'xrange', 'del', 'publish']);

interface Position {
  readonly epoch: string;
  readonly offset: number;
}

interface Frame {
  readonly type: string;
  readonly id?: number;
  readonly code?: string;
  readonly recovered?: boolean;
  readonly replayed?: number;
  readonly epoch?: string;
  readonly offset?: number;
}

/** One client socket speaking the protocol: requests by id, pushed messages to `onMessage`. */
class StormClient {
  #nextId = 1;
  readonly #pending = new Map<number, (frame: Frame) => void>();
  onMessage: (frame: Frame) => void = () => undefined;

  private constructor(readonly ws: WebSocket) {
    ws.once('close', () => {
      for (const settle of this.#pending.values()) settle({ type: 'closed' });
      this.#pending.clear();
    });
    ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString('utf8')) as Frame;
      if (frame.type === 'message') {
        this.onMessage(frame);
        return;
      }
      if (frame.id === undefined) return;
      this.#pending.get(frame.id)?.(frame);
      this.#pending.delete(frame.id);
    });
  }

  static open(url: string): Promise<StormClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.once('open', () => resolve(new StormClient(ws)));
      ws.once('error', reject);
    });
  }

  request(body: Record<string, unknown>): Promise<Frame> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.ws.send(JSON.stringify({ ...body, id }));
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Runs `work` over `items` with at most `limit` at a time. */
async function pooled<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]);
    }
  });
  await Promise.all(lanes);
  return out;
}

async function until<T>(probe: () => Promise<T | undefined> | T | undefined, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The bench's own connection to Redis, for INFO: its commands are set apart from the storm's. */
type Admin = ReturnType<typeof createClient>;

/** `calls` per command from INFO commandstats. */
async function commandCalls(admin: Admin): Promise<Map<string, number>> {
  const info = await admin.info('commandstats');
  const calls = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1], Number(match[2]));
  return calls;
}

async function activeConnections(server: ServerProcess): Promise<number> {
  const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
  const line = /^active_connections(?:\{[^}]*\})? (\S+)/m.exec(text);
  return line === null ? Number.NaN : Number(line[1]);
}

/** One storm against the instances of one variant: set up, take everyone away, bring everyone back. */
async function stormRound(
  instances: readonly [ServerProcess, ServerProcess],
  admin: Admin,
  redisPid: number,
  channel: string,
  settings: StormSettings,
): Promise<StormRound> {
  const data = 'x'.repeat(settings.payloadBytes);
  const publisher = await StormClient.open(instances[0].wsUrl);
  const publish = async (count: number): Promise<Position> => {
    const replies = await Promise.all(Array.from({ length: count }, () => publisher.request({ type: 'publish', channel, data })));
    const bad = replies.find((r) => r.type !== 'published');
    if (bad !== undefined) throw new Error(`publish answered ${JSON.stringify(bad)}`);
    const last = replies[replies.length - 1];
    return { epoch: last.epoch!, offset: last.offset! };
  };

  // Everyone subscribed and holding a real position: the last of a few publications.
  const slots = Array.from({ length: settings.subscribers }, (_, i) => i);
  const last: Position[] = [];
  const first = await pooled(slots, settings.setupConcurrency, async (i) => {
    const client = await StormClient.open(instances[i % 2].wsUrl);
    client.onMessage = (frame) => (last[i] = { epoch: frame.epoch!, offset: frame.offset! });
    const reply = await client.request({ type: 'subscribe', channel });
    if (reply.type !== 'subscribed') throw new Error(`subscribe answered ${JSON.stringify(reply)}`);
    return client;
  });
  const warm = await publish(3);
  await until(() => (slots.every((i) => last[i]?.offset === warm.offset) ? true : undefined), 30_000, 'every subscriber to have the warm-up publications');
  for (const client of first) client.close();
  await until(async () => ((await activeConnections(instances[0])) + (await activeConnections(instances[1])) === 1 ? true : undefined), 30_000, 'the subscribers to be gone');
  const top = await publish(settings.back);

  const cpuBefore = processCpuSecondsExact(instances[0].pid) + processCpuSecondsExact(instances[1].pid);
  const redisBefore = processCpuSecondsExact(redisPid);
  const callsBefore = await commandCalls(admin);
  const started = performance.now();
  const failures: string[] = [];
  const doneAt: number[] = [];
  const storm = slots.map(async (i) => {
    const since = last[i];
    const got: number[] = [];
    let resolveAll: () => void = () => undefined;
    const all = new Promise<void>((r) => (resolveAll = r));
    const client = await StormClient.open(instances[(i + 1) % 2].wsUrl);
    client.onMessage = (frame) => {
      got.push(frame.offset!);
      if (frame.offset! >= top.offset) resolveAll();
    };
    try {
      const reply = await client.request({ type: 'subscribe', channel, since });
      if (reply.type !== 'subscribed' || reply.recovered !== true) throw new Error(`subscribe answered ${JSON.stringify(reply)}`);
      if (got.length === 0 || got[got.length - 1] < top.offset) await all;
      doneAt[i] = performance.now() - started;
      const expected = Array.from({ length: top.offset - since.offset }, (_, k) => since.offset + 1 + k);
      if (got.length !== expected.length || got.some((offset, k) => offset !== expected[k])) {
        throw new Error(`replayed offsets ${got.slice(0, 5).join(',')}… (${got.length}), expected ${expected.length} from ${since.offset + 1}`);
      }
      return client;
    } catch (err) {
      client.close();
      throw err;
    }
  });
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), settings.timeoutMs).unref());
  const outcomes = await Promise.race([Promise.allSettled(storm), timeout]);
  const allRecoveredMs = performance.now() - started;
  const cpuAfter = processCpuSecondsExact(instances[0].pid) + processCpuSecondsExact(instances[1].pid);
  const redisAfter = processCpuSecondsExact(redisPid);
  const callsAfter = await commandCalls(admin);

  const clients: StormClient[] = [];
  if (outcomes === 'timeout') failures.push(`not every subscriber recovered within ${settings.timeoutMs} ms`);
  else {
    for (const outcome of outcomes) {
      if (outcome.status === 'fulfilled') clients.push(outcome.value);
      else failures.push(outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason));
    }
  }
  for (const client of clients) client.close();
  publisher.close();

  const redisCalls: Record<string, number> = {};
  let roundTrips = 0;
  for (const [command, n] of callsAfter) {
    // The INFO that read the first numbers is the harness's, not the storm's.
    const delta = n - (callsBefore.get(command) ?? 0) - (command === 'info' ? 1 : 0);
    if (delta <= 0) continue;
    redisCalls[command] = delta;
    if (!SCRIPTED.has(command)) roundTrips += delta;
  }
  const recovered = doneAt.filter((t) => t !== undefined).length;
  return {
    subscribers: settings.subscribers,
    back: settings.back,
    allRecoveredMs,
    perSubscriberMs: percentiles(Float64Array.from(doneAt.filter((t) => t !== undefined)), recovered),
    recovered,
    failed: settings.subscribers - clients.length,
    failures: [...new Set(failures)].slice(0, 10),
    serverCpuSeconds: cpuAfter - cpuBefore,
    redisCpuSeconds: redisAfter - redisBefore,
    redisRoundTripsPerRecovery: roundTrips / settings.subscribers,
    redisCalls,
  };
}

/** Every round of every variant, alternating variants within a round so both see the same machine. */
export async function runRecoveryStorm(
  settings: StormSettings,
  pinning: Pinning | null,
  progress: (line: string) => void,
): Promise<readonly StormVariantResults[]> {
  // Redis shares the load's core: the server core's CPU is the instances' alone.
  const redis = await RedisProcess.start(pinning?.load);
  const admin: Admin = createClient({ url: redis.url });
  admin.on('error', () => undefined);
  await admin.connect();
  const sink = await Sink.start(pinning?.load);
  const instances = new Map<StormVariant, [ServerProcess, ServerProcess]>();
  try {
    const redisPid = redis.pid;
    for (const name of STORM_VARIANTS) {
      const env = { ...VARIANTS[name].env(`${sink.endpoint}/${name}`), REDIS_URL: redis.url, REDIS_CHANNEL_PREFIX: `bench-${name}:` };
      const pair = await Promise.all([0, 1].map(() => ServerProcess.start({ script: VARIANTS[name].script, env }, pinning?.server)));
      instances.set(name, pair as [ServerProcess, ServerProcess]);
    }
    const rounds = new Map<StormVariant, StormRound[]>(STORM_VARIANTS.map((n) => [n, []]));
    for (let round = 1; round <= settings.rounds; round++) {
      for (const name of STORM_VARIANTS) {
        const result = await stormRound(instances.get(name)!, admin, redisPid, `${CHANNEL_PREFIX}round-${round}`, settings);
        rounds.get(name)!.push(result);
        progress(
          `storm round ${round}/${settings.rounds} ${name}: ${result.recovered}/${result.subscribers} recovered in ${Math.round(result.allRecoveredMs)} ms, ` +
            `${result.serverCpuSeconds.toFixed(2)} s server CPU, ${result.redisRoundTripsPerRecovery.toFixed(3)} Redis round trips per recovery` +
            (result.failed > 0 ? `; ${result.failed} failed: ${result.failures[0]}` : ''),
        );
      }
    }
    return STORM_VARIANTS.map((name) => ({ name, title: VARIANTS[name].title, rounds: rounds.get(name)! }));
  } finally {
    await Promise.all([...instances.values()].flat().map((s) => s.stop()));
    await sink.stop();
    admin.destroy();
    await redis.stop();
  }
}

const median = (values: readonly number[]): number => spread(values).median;

export function stormTable(variants: readonly StormVariantResults[]): string {
  const rows = variants.map(({ name, rounds }) => {
    const cells = [
      name,
      `${rounds[0]?.subscribers ?? 0} × ${rounds[0]?.back ?? 0} back`,
      `${Math.round(median(rounds.map((r) => r.allRecoveredMs)))}`,
      `${Math.round(median(rounds.map((r) => r.perSubscriberMs.p50)))}`,
      `${Math.round(median(rounds.map((r) => r.perSubscriberMs.p99)))}`,
      median(rounds.map((r) => r.serverCpuSeconds)).toFixed(2),
      `${Math.round((median(rounds.map((r) => r.serverCpuSeconds)) * 1e6) / (rounds[0]?.subscribers ?? 1))}`,
      median(rounds.map((r) => r.redisCpuSeconds)).toFixed(2),
      median(rounds.map((r) => r.redisRoundTripsPerRecovery)).toFixed(3),
      `${rounds.reduce((n, r) => n + r.failed, 0)}`,
    ];
    return `| ${cells.join(' | ')} |`;
  });
  return [
    '| variant | storm | all recovered, ms | per subscriber p50, ms | p99, ms | server CPU, s | server CPU per recovery, µs | Redis CPU, s | Redis round trips per recovery | failed |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}
