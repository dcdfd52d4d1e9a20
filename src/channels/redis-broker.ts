/**
 * The Redis engine: Redis pub/sub across a fleet of instances, through node-redis (@redis/client).
 *
 * Two connections: one for commands (PUBLISH) and one in subscriber mode, which node-redis
 * restores (it re-sends SUBSCRIBE for every channel with a listener) before it reports ready
 * again after a reconnect. Commands never wait in an offline queue: a publish while Redis is
 * unreachable fails at once, so the client is told `unavailable`, never `published`.
 *
 * The instance is subscribed on Redis to a channel only while it has a local listener.
 */
import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import { createClient, type RedisClientType } from '@redis/client';
import {
  BrokerUnavailableError,
  type Broker,
  type BrokerErrorKind,
  type BrokerListener,
  type BrokerObserver,
  type BrokerStatus,
  type Envelope,
  type Position,
  type Publication,
  type Recovery,
} from './broker.js';
import { decodePublication, encodeBody } from './envelope-codec.js';
import { decideRecovery, historyEnabled, newEpoch, type HistoryLimits } from './history.js';
import { PUBLISH_SCRIPT, RECOVER_SCRIPT, type RedisScript } from './redis-scripts.js';

export interface RedisBrokerOptions {
  /** REDIS_URL */
  readonly url: string;
  /** REDIS_CHANNEL_PREFIX: put before every channel name on Redis, so deployments sharing a Redis stay apart. */
  readonly prefix: string;
  /** REDIS_COMMAND_TIMEOUT_MS: a command not answered by then fails (a publish is refused). */
  readonly commandTimeoutMs: number;
  /** The longest wait between reconnect attempts; they start at 50 ms and double up to it. */
  readonly maxReconnectDelayMs: number;
  readonly history: HistoryLimits;
}

/**
 * How long a channel's epoch and offset outlive its last publication or subscribe: a channel
 * quiet for longer starts a new epoch (its history has expired long before).
 */
const META_TTL_MS = 24 * 60 * 60 * 1000;

type Role = 'commands' | 'subscriber';

interface ChannelEntry {
  readonly listeners: Set<BrokerListener>;
  /** The SUBSCRIBE on Redis; a listener that joins meanwhile waits on it too. */
  readonly ready: Promise<void>;
}

const NO_OBSERVER: BrokerObserver = { error() {}, changed() {}, trimmed() {} };

export class RedisBroker implements Broker {
  readonly system = 'redis';
  readonly #options: RedisBrokerOptions;
  readonly #commands: RedisClientType;
  readonly #subscriber: RedisClientType;
  readonly #channels = new Map<string, ChannelEntry>();
  #observer = NO_OBSERVER;
  #up = false;
  #closed = false;
  /** Set at the first failure of an outage so one outage is counted once, however many retries. */
  #outage = false;
  #lastError: string | undefined = 'connecting';
  readonly #history: HistoryLimits;

  constructor(options: RedisBrokerOptions) {
    this.#options = options;
    this.#history = historyEnabled(options.history) ? options.history : { size: 0, ttlMs: 0 };
    this.#commands = createClient({
      url: options.url,
      disableOfflineQueue: true,
      commandOptions: { timeout: options.commandTimeoutMs },
      socket: {
        connectTimeout: options.commandTimeoutMs,
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 16), options.maxReconnectDelayMs),
      },
    });
    this.#subscriber = this.#commands.duplicate();
    this.#watch(this.#commands, 'commands');
    this.#watch(this.#subscriber, 'subscriber');
  }

  connect(): Promise<void> {
    const open = (client: RedisClientType): Promise<unknown> =>
      client.isOpen ? Promise.resolve() : client.connect().catch((err: unknown) => {
        // Only a closed client stops retrying; its close() is what ends the wait.
        if (!this.#closed) throw err;
      });
    return Promise.all([open(this.#commands), open(this.#subscriber)]).then(() => undefined);
  }

  status(): BrokerStatus {
    return this.#up ? { up: true } : { up: false, detail: this.#closed ? 'closed' : `redis: ${this.#lastError ?? 'not connected'}` };
  }

  observe(observer: BrokerObserver): void {
    this.#observer = observer;
  }

  async subscribe(channel: string, listener: BrokerListener): Promise<void> {
    const existing = this.#channels.get(channel);
    if (existing !== undefined) {
      existing.listeners.add(listener);
      return existing.ready;
    }
    // node-redis would queue a SUBSCRIBE until the next reconnect; a client is better told now.
    if (this.#closed || !this.#subscriber.isReady) {
      const err = new BrokerUnavailableError(`cannot subscribe: ${this.status().detail ?? 'redis not ready'}`);
      this.#report('subscribe_failed', err);
      throw err;
    }
    const ready = this.#subscriber.subscribe(this.#options.prefix + channel, this.#onMessage);
    const entry: ChannelEntry = { listeners: new Set([listener]), ready };
    this.#channels.set(channel, entry);
    try {
      await ready;
    } catch (err) {
      if (this.#channels.get(channel) === entry) this.#channels.delete(channel);
      this.#report('subscribe_failed', err);
      throw new BrokerUnavailableError(`cannot subscribe: ${message(err)}`);
    }
  }

  async unsubscribe(channel: string, listener: BrokerListener): Promise<void> {
    const entry = this.#channels.get(channel);
    if (entry === undefined || !entry.listeners.delete(listener) || entry.listeners.size > 0) return;
    this.#channels.delete(channel);
    if (this.#closed) return;
    // Removes the channel from what node-redis restores on reconnect even while Redis is away.
    await this.#subscriber.unsubscribe(this.#options.prefix + channel, this.#onMessage);
  }

  async publish(channel: string, envelope: Envelope): Promise<Position> {
    if (this.#closed) throw new BrokerUnavailableError('broker closed');
    const { size, ttlMs } = this.#history;
    let reply: unknown;
    try {
      reply = await this.#run(PUBLISH_SCRIPT, channel, [
        newEpoch(),
        this.#options.prefix + channel,
        encodeBody(envelope),
        String(size),
        String(Math.max(1, ttlMs)),
        String(META_TTL_MS),
      ]);
    } catch (err) {
      this.#report('publish_failed', err);
      throw new BrokerUnavailableError(`redis did not accept the publish: ${message(err)}`);
    }
    const [epoch, offset, trimmed] = reply as [string, number, number];
    if (trimmed > 0) this.#observer.trimmed(channel, Number(trimmed));
    return { epoch: String(epoch), offset: Number(offset) };
  }

  async recover(channel: string, since?: Position): Promise<Recovery> {
    if (this.#closed) throw new BrokerUnavailableError('broker closed');
    let reply: unknown;
    try {
      reply = await this.#run(RECOVER_SCRIPT, channel, [
        newEpoch(),
        since?.epoch ?? '',
        String(since?.offset ?? 0),
        String(META_TTL_MS),
        String(Math.max(1, this.#history.size)),
      ]);
    } catch (err) {
      this.#report('subscribe_failed', err);
      throw new BrokerUnavailableError(`redis did not answer the history read: ${message(err)}`);
    }
    const [epoch, top, entries] = reply as [string, number, [string, string[]][]];
    const after: Publication[] = [];
    for (const [, fields] of entries) {
      const publication = decodePublication(String(fields[1]));
      if (publication !== undefined) after.push(publication);
    }
    return decideRecovery(since, { epoch: String(epoch), offset: Number(top) }, after, Date.now(), this.#history.ttlMs);
  }

  #loadScripts(): void {
    for (const script of [PUBLISH_SCRIPT, RECOVER_SCRIPT]) {
      this.#commands.sendCommand(['SCRIPT', 'LOAD', script.source]).catch((err: unknown) => this.#report('publish_failed', err));
    }
  }

  /**
   * EVALSHA; EVAL when Redis lost the script anyway (SCRIPT FLUSH on a live connection): that
   * one publish may then be ordered after later ones, which #loadScripts otherwise prevents.
   */
  async #run(script: RedisScript, channel: string, args: string[]): Promise<unknown> {
    const keys = [`${this.#options.prefix}{${channel}}:meta`, `${this.#options.prefix}{${channel}}:history`];
    try {
      return await this.#commands.sendCommand(['EVALSHA', script.sha1, '2', ...keys, ...args]);
    } catch (err) {
      if (!message(err).startsWith('NOSCRIPT')) throw err;
      return this.#commands.sendCommand(['EVAL', script.source, '2', ...keys, ...args]);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#channels.clear();
    this.#update();
    const CLOSE_WAIT_MS = 1000;
    await Promise.all(
      [this.#commands, this.#subscriber].map(async (client) => {
        if (!client.isOpen) return;
        const timer = setTimeout(() => client.destroy(), CLOSE_WAIT_MS);
        try {
          await client.close();
        } catch {
          client.destroy();
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  }

  /** Channels this instance is subscribed to on Redis (a test's view of leaks). */
  get channelCount(): number {
    return this.#channels.size;
  }

  // One function for every channel, so node-redis keeps one listener per channel and the
  // channel comes back prefixed: that prefix is cut off here.
  readonly #onMessage = (text: string, redisChannel: string): void => {
    const entry = this.#channels.get(redisChannel.slice(this.#options.prefix.length));
    if (entry === undefined) return;
    const publication = decodePublication(text);
    if (publication === undefined) {
      this.#report('bad_envelope', new Error(`a message on ${redisChannel} is not a ws-service envelope`));
      return;
    }
    // Redis pushes are nobody's request: the delivery's context comes from the envelope alone.
    context.with(ROOT_CONTEXT, () => {
      for (const listener of entry.listeners) listener(publication);
    });
  };

  #watch(client: RedisClientType, role: Role): void {
    // Without an 'error' listener node-redis would throw it: an outage must never end the process.
    client.on('error', (err: unknown) => {
      this.#lastError = `${role} connection: ${message(err)}`;
      this.#lost(role, err);
    });
    client.on('ready', () => {
      // Loaded before any publish can be queued behind it on this connection: a publish that met
      // NOSCRIPT and retried with EVAL would land after publishes sent later (the cache is empty
      // after every Redis restart), breaking one publisher's order.
      if (role === 'commands') this.#loadScripts();
      this.#update();
    });
    client.on('end', () => this.#update());
  }

  /**
   * The first failure of an outage is counted once. A subscriber connection lost while the
   * command connection still answers is Redis closing it (client-output-buffer-limit pubsub,
   * CLIENT KILL), not Redis going away: a PING on the other connection tells them apart.
   */
  #lost(role: Role, err: unknown): void {
    const wasUp = this.#up;
    this.#update();
    if (this.#closed || this.#outage) return;
    this.#outage = true;
    if (role === 'subscriber' && wasUp) {
      this.#commands.ping().then(
        () => this.#report('subscriber_dropped', err),
        () => this.#report('connection_lost', err),
      );
      return;
    }
    this.#report('connection_lost', err);
  }

  #update(): void {
    const up = !this.#closed && this.#commands.isReady && this.#subscriber.isReady;
    if (up) {
      this.#outage = false;
      this.#lastError = undefined;
    }
    if (up === this.#up) return;
    this.#up = up;
    this.#observer.changed(this.status());
  }

  #report(kind: BrokerErrorKind, err: unknown): void {
    this.#observer.error(kind, err);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
