/**
 * The engine behind channels: the in-process one (memory-broker.ts) serves a single instance;
 * a cross-instance engine (Redis, issue 11) is one more module behind the same interface.
 */

/** What travels through the broker for one publish: the payload and where its trace came from. */
export interface Envelope {
  readonly data: unknown;
  /** The PRODUCER span's W3C context, so the delivering instance's span can be its child. */
  readonly traceparent?: string;
  readonly tracestate?: string;
  /** Date.now() at publish: the delivery lag is measured against it (clocks across hosts may skew). */
  readonly publishedAt: number;
}

export type BrokerListener = (envelope: Envelope) => void;

export interface Broker {
  /** The `messaging.system` value of this engine's spans. */
  readonly system: string;
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
