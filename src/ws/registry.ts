/**
 * The live connections: the source of the active_connections gauge and the connection limit,
 * what the heartbeat pings, and what a drain closes and waits on.
 */
import { Waiters } from '../util/waiters.js';
import type { Connection } from './connection.js';

export class ConnectionRegistry {
  readonly #live = new Set<Connection>();
  readonly #emptied = new Waiters();
  #heartbeat: NodeJS.Timeout | undefined;

  get size(): number {
    return this.#live.size;
  }

  add(connection: Connection): void {
    this.#live.add(connection);
  }

  /** Forgets a closed connection; the last one out wakes whoever waits for none to be left. */
  delete(connection: Connection): void {
    this.#live.delete(connection);
    if (this.#live.size === 0) this.#emptied.wake();
  }

  /** The connections live now, as a list later adds and deletes do not change. */
  snapshot(): Connection[] {
    return [...this.#live];
  }

  /** Resolves once no connection is left: at once if none is. */
  whenEmpty(): Promise<void> {
    return this.#live.size === 0 ? Promise.resolve() : this.#emptied.wait();
  }

  /** The live connections, iterated in place: for walks that neither add nor delete. */
  values(): IterableIterator<Connection> {
    return this.#live.values();
  }

  /** Handler work still running, over all live connections. */
  inFlight(): number {
    let sum = 0;
    for (const connection of this.#live) sum += connection.inflight.count;
    return sum;
  }

  /** Every `intervalMs`, each connection's heartbeat tick; 0 turns the heartbeat off. */
  startHeartbeat(intervalMs: number): void {
    if (intervalMs <= 0) return;
    this.#heartbeat = setInterval(() => {
      for (const connection of this.#live) connection.heartbeat();
    }, intervalMs);
  }

  stopHeartbeat(): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }
}
