/** The in-process broker: one instance, no network; what runs when no other engine is configured. */
import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import {
  BrokerUnavailableError,
  type Broker,
  type BrokerListener,
  type BrokerObserver,
  type BrokerStatus,
  type Envelope,
  type Position,
  type Publication,
  type Recovery,
} from './broker.js';
import { decideRecovery, historyEnabled, newEpoch, PublicationRing, type HistoryLimits } from './history.js';

interface ChannelState {
  readonly listeners: Set<BrokerListener>;
  readonly ring: PublicationRing;
  /** The last subscribe, unsubscribe, publish or recover: what keeps a quiet channel's epoch. */
  touchedAt: number;
}

/** How often idle channels (see forgetIdle) are forgotten. */
const SWEEP_INTERVAL_MS = 1_000;

export class MemoryBroker implements Broker {
  readonly system = 'ws-service.memory';
  readonly #channels = new Map<string, ChannelState>();
  readonly #limits: HistoryLimits;
  readonly #sweeper: NodeJS.Timeout;
  #closed = false;
  #observer: BrokerObserver = { error: () => undefined, changed: () => undefined, trimmed: () => undefined };

  constructor(limits: HistoryLimits = { size: 0, ttlMs: 0 }) {
    this.#limits = historyEnabled(limits) ? limits : { size: 0, ttlMs: 0 };
    this.#sweeper = setInterval(() => this.forgetIdle(Date.now()), SWEEP_INTERVAL_MS).unref();
  }

  connect(): Promise<void> {
    return Promise.resolve();
  }

  status(): BrokerStatus {
    return this.#closed ? { up: false, detail: 'closed' } : { up: true };
  }

  /** Nothing fails in process: only trimmed history is ever reported. */
  observe(observer: BrokerObserver): void {
    this.#observer = observer;
  }

  subscribe(channel: string, listener: BrokerListener): Promise<void> {
    if (this.#closed) return Promise.reject(new BrokerUnavailableError('broker closed'));
    this.#state(channel).listeners.add(listener);
    return Promise.resolve();
  }

  unsubscribe(channel: string, listener: BrokerListener): Promise<void> {
    const state = this.#channels.get(channel);
    if (state !== undefined) {
      state.listeners.delete(listener);
      state.touchedAt = Date.now();
    }
    return Promise.resolve();
  }

  publish(channel: string, envelope: Envelope): Promise<Position> {
    if (this.#closed) return Promise.reject(new BrokerUnavailableError('broker closed'));
    const state = this.#state(channel);
    const { publication, trimmed } = state.ring.append((position): Publication => ({ ...envelope, ...position }));
    if (trimmed > 0) this.#observer.trimmed(channel, trimmed);
    if (state.listeners.size > 0) {
      // Delivered after publish() returns and outside the publisher's context, as a networked
      // engine would: the delivery's trace link is the envelope's, never an inherited context.
      const listeners = [...state.listeners];
      queueMicrotask(() => {
        context.with(ROOT_CONTEXT, () => {
          for (const listener of listeners) listener(publication);
        });
      });
    }
    return Promise.resolve({ epoch: publication.epoch, offset: publication.offset });
  }

  recover(channel: string, since?: Position): Promise<Recovery> {
    if (this.#closed) return Promise.reject(new BrokerUnavailableError('broker closed'));
    const { ring } = this.#state(channel);
    const after = since === undefined || since.epoch !== ring.epoch ? [] : ring.after(since.offset);
    return Promise.resolve(decideRecovery(since, ring.top, after, Date.now(), this.#limits.ttlMs));
  }

  close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#channels.clear();
    return Promise.resolve();
  }

  /** Channels with a listener: what a test checks to prove no broker subscription leaked. */
  get channelCount(): number {
    let count = 0;
    for (const state of this.#channels.values()) if (state.listeners.size > 0) count++;
    return count;
  }

  listenerCount(channel: string): number {
    return this.#channels.get(channel)?.listeners.size ?? 0;
  }

  /** Every call that names a channel touches it. */
  #state(channel: string): ChannelState {
    const now = Date.now();
    let state = this.#channels.get(channel);
    if (state === undefined) {
      state = { listeners: new Set(), ring: new PublicationRing(newEpoch(), this.#limits.size), touchedAt: now };
      this.#channels.set(channel, state);
    }
    state.touchedAt = now;
    return state;
  }

  /**
   * Forgets each channel nobody listens to and nobody has touched for the history TTL: its
   * history has expired, so its next use starts a new epoch. A quiet channel is kept that long
   * even with nothing published, so a subscriber that left at offset 0 and comes back within it
   * still recovers (an empty replay), not a spurious epoch change.
   */
  forgetIdle(now: number): void {
    const oldest = now - this.#limits.ttlMs;
    for (const [channel, state] of this.#channels) {
      if (state.listeners.size === 0 && state.touchedAt < oldest) this.#channels.delete(channel);
    }
  }
}
