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

export type BrokerListener = (envelope: Envelope) => void;

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
   * Resolves once the engine has accepted the envelope (not once it is delivered); rejects with
   * BrokerUnavailableError when it cannot, so the client never sees `published` for a lost message.
   */
  publish(channel: string, envelope: Envelope): Promise<void>;
  close(): Promise<void>;
}

export class BrokerUnavailableError extends Error {
  override readonly name = 'BrokerUnavailableError';
}
