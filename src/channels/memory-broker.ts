/** The in-process broker: one instance, no network; what runs when no other engine is configured. */
import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import { BrokerUnavailableError, type Broker, type BrokerListener, type BrokerStatus, type Envelope } from './broker.js';

export class MemoryBroker implements Broker {
  readonly system = 'ws-service.memory';
  readonly #listeners = new Map<string, Set<BrokerListener>>();
  #closed = false;

  connect(): Promise<void> {
    return Promise.resolve();
  }

  status(): BrokerStatus {
    return this.#closed ? { up: false, detail: 'closed' } : { up: true };
  }

  /** Nothing fails in process: no error or state change is ever reported. */
  observe(): void {}

  subscribe(channel: string, listener: BrokerListener): Promise<void> {
    if (this.#closed) return Promise.reject(new BrokerUnavailableError('broker closed'));
    let set = this.#listeners.get(channel);
    if (set === undefined) this.#listeners.set(channel, (set = new Set()));
    set.add(listener);
    return Promise.resolve();
  }

  unsubscribe(channel: string, listener: BrokerListener): Promise<void> {
    const set = this.#listeners.get(channel);
    if (set !== undefined && set.delete(listener) && set.size === 0) this.#listeners.delete(channel);
    return Promise.resolve();
  }

  publish(channel: string, envelope: Envelope): Promise<void> {
    if (this.#closed) return Promise.reject(new BrokerUnavailableError('broker closed'));
    const set = this.#listeners.get(channel);
    if (set !== undefined) {
      // Delivered after publish() returns and outside the publisher's context, as a networked
      // engine would: the delivery's trace link is the envelope's, never an inherited context.
      const listeners = [...set];
      queueMicrotask(() => {
        context.with(ROOT_CONTEXT, () => {
          for (const listener of listeners) listener(envelope);
        });
      });
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    return Promise.resolve();
  }

  /** Channels with a listener: what a test checks to prove no broker subscription leaked. */
  get channelCount(): number {
    return this.#listeners.size;
  }

  listenerCount(channel: string): number {
    return this.#listeners.get(channel)?.size ?? 0;
  }
}
