/**
 * Live WebSocket connections per client address (MAX_CONNECTIONS_PER_CLIENT), so one client
 * cannot take every slot of MAX_CONNECTIONS. A slot is taken before the handshake and given back
 * when the socket closes, whatever closed it: the raw socket's 'close' is the one event every
 * path ends in (clean close, reset, failed handshake, termination, shutdown).
 */
import type { Duplex } from 'node:stream';

export class ClientLimit {
  readonly #counts = new Map<string, number>();

  /** `max` 0 means no limit: slots are still counted, so the count can be observed. */
  constructor(readonly max: number) {}

  /** Takes a slot for `address` until `socket` closes; false (nothing taken) when it has none left. */
  acquire(address: string, socket: Duplex): boolean {
    const count = this.#counts.get(address) ?? 0;
    if (this.max !== 0 && count >= this.max) return false;
    if (socket.destroyed) return true; // closed already: 'close' may have been emitted, take nothing
    this.#counts.set(address, count + 1);
    socket.once('close', () => this.#release(address));
    return true;
  }

  /** Connections counted for `address`. */
  count(address: string): number {
    return this.#counts.get(address) ?? 0;
  }

  /** Addresses holding at least one slot; the map never keeps an address at 0. */
  get addresses(): number {
    return this.#counts.size;
  }

  #release(address: string): void {
    const count = (this.#counts.get(address) ?? 1) - 1;
    if (count <= 0) this.#counts.delete(address);
    else this.#counts.set(address, count);
  }
}
