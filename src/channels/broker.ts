/**
 * The engine behind channels: the in-process one (memory-broker.ts) serves a single instance,
 * the Redis one (redis-broker.ts) a fleet; another engine is one more module behind this interface.
 */

/** What travels through the broker for one publish: the payload and where its trace came from. */
export interface Envelope {
  /** The publish's `data` as JSON text, serialised once by the publisher and never re-parsed. */
  readonly json: string;
  /** The PRODUCER span's W3C context, so the delivering instance's span can be its child. */
  readonly traceparent?: string;
  readonly tracestate?: string;
  /** Date.now() at publish: the delivery lag is measured against it (clocks across hosts may skew). */
  readonly publishedAt: number;
}

/** Where a publication sits in its channel: `offset` grows by one per publication within an `epoch`. */
export interface Position {
  /** Changes whenever the channel's history is lost (Redis flushed or restarted without persistence, a new process). */
  readonly epoch: string;
  readonly offset: number;
}

/** An envelope as the broker delivers it: with the position the broker gave it. */
export interface Publication extends Envelope, Position {}

export type BrokerListener = (publication: Publication) => void;

export type RecoveryFailure = 'epoch_changed' | 'expired' | 'unknown_position';

/**
 * A channel's position now and, when asked from a position, what was published after it.
 * `recovered` is undefined when no position was asked from.
 */
export interface Recovery {
  readonly top: Position;
  /** Every publication after the position asked from, in offset order (empty unless recovered). */
  readonly publications: readonly Publication[];
  readonly recovered?: boolean;
  readonly reason?: RecoveryFailure;
}

/** Counted in channel_broker_errors_total by `kind`. */
export const BROKER_ERROR_KINDS = ['connection_lost', 'subscriber_dropped', 'publish_failed', 'subscribe_failed', 'bad_envelope'] as const;
export type BrokerErrorKind = (typeof BROKER_ERROR_KINDS)[number];

export interface BrokerStatus {
  /** Every connection the engine needs is up: publishes and subscribes can succeed now. */
  readonly up: boolean;
  readonly detail?: string;
}

/** What the service learns from an engine: its errors (counted, logged) and its state changes. */
export interface BrokerObserver {
  error(kind: BrokerErrorKind, err: unknown): void;
  /** Called on every change of `status().up`. */
  changed(status: BrokerStatus): void;
  /** A publish of this instance pushed `count` publications out of the channel's history (its size bound). */
  trimmed(channel: string, count: number): void;
}

export interface Broker {
  /** The `messaging.system` value of this engine's spans. */
  readonly system: string;
  /** Resolves once the engine is up; a networked engine keeps retrying until then (or close). */
  connect(): Promise<void>;
  status(): BrokerStatus;
  observe(observer: BrokerObserver): void;
  /** Resolves once the engine will deliver this channel's messages to the listener. */
  subscribe(channel: string, listener: BrokerListener): Promise<void>;
  unsubscribe(channel: string, listener: BrokerListener): Promise<void>;
  /**
   * Resolves with the publication's position once the engine has stored it in the channel's
   * history and handed it to delivery (not once it is delivered); rejects with
   * BrokerUnavailableError when it cannot, so the client never sees `published` for a lost message.
   */
  publish(channel: string, envelope: Envelope): Promise<Position>;
  /** The channel's position, and the publications after `since` if history still holds them all. */
  recover(channel: string, since?: Position): Promise<Recovery>;
  close(): Promise<void>;
}

export class BrokerUnavailableError extends Error {
  override readonly name = 'BrokerUnavailableError';
}
