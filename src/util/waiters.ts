/**
 * Callers waiting for one condition, woken together when their owner sees it come true. The
 * owner checks the condition before waiting (a condition already true needs no waiter) and calls
 * wake() each time it becomes true.
 */
export class Waiters {
  readonly #pending: (() => void)[] = [];

  /** How many callers are waiting. */
  get waiting(): number {
    return this.#pending.length;
  }

  /** Resolves at the next wake(). */
  wait(): Promise<void> {
    return new Promise((resolve) => this.#pending.push(resolve));
  }

  /** Resolves every wait made so far; a wait made after this one waits for the next. */
  wake(): void {
    if (this.#pending.length === 0) return;
    for (const resolve of this.#pending.splice(0)) resolve();
  }
}
