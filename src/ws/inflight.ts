/** Counts a connection's handler work still running, so a drain can let in-flight messages finish. */
import { Waiters } from '../util/waiters.js';

export class InflightTracker {
  #count = 0;
  /** Made by the first wait that has to wait (a drain), not with every connection. */
  #idle: Waiters | undefined;

  get count(): number {
    return this.#count;
  }

  begin(): void {
    this.#count++;
  }

  end(): void {
    this.#count--;
    if (this.#count === 0) this.#idle?.wake();
  }

  /** Resolves once no handler work is running: at once if none is. */
  idle(): Promise<void> {
    return this.#count === 0 ? Promise.resolve() : (this.#idle ??= new Waiters()).wait();
  }
}
