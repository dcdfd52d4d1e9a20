/**
 * The process-wide bound on unsent bytes. Each connection bounds its own backlog
 * (MAX_BUFFERED_BYTES), but many slow readers each under that bound can still hold, together,
 * more memory than the process has. Every send path reports its socket's change in unsent
 * bytes here, so the total is a running sum of deltas: nothing is iterated per message.
 *
 * The sum can only run high, never low: a socket that drains without emitting 'drain' (its
 * backlog stayed under the stream's high-water mark) is still counted at its last-seen figure
 * until its next send, drain or close. So when the running sum passes the bound, the total is
 * first recounted exactly; only a total that is really over sheds connections, largest first.
 */

/** One socket's share of the total, as the budget needs to see it (a Connection). */
export interface SendAccount {
  /** Re-reads the socket's unsent bytes, records them as last seen, and returns them. */
  recount(): number;
  /** Drops the socket to free its backlog now; from then on it holds nothing in the total. */
  shed(): void;
}

export class SendBudget {
  #total = 0;
  #shedding = false;

  /**
   * @param max MAX_TOTAL_BUFFERED_BYTES
   * @param accounts the live connections, read only when the bound is passed or the total is observed
   */
  constructor(
    readonly max: number,
    private readonly accounts: () => Iterable<SendAccount>,
  ) {}

  /** The running total: exact or high, never low (see the module comment). */
  get total(): number {
    return this.#total;
  }

  /** One account's unsent bytes changed by `delta` (positive after a send, negative after a drain or close). */
  change(delta: number): void {
    this.#total += delta;
    if (this.#total > this.max && delta > 0 && !this.#shedding) this.#enforce();
  }

  /** The exact total, re-read from every account; corrects the running one. */
  recount(): number {
    let sum = 0;
    for (const account of this.accounts()) sum += account.recount();
    this.#total = sum;
    return sum;
  }

  #enforce(): void {
    const held: { account: SendAccount; bytes: number }[] = [];
    let sum = 0;
    for (const account of this.accounts()) {
      const bytes = account.recount();
      sum += bytes;
      if (bytes > 0) held.push({ account, bytes });
    }
    this.#total = sum;
    if (sum <= this.max) return;
    held.sort((a, b) => b.bytes - a.bytes);
    // A shed account reports its release through change(); it must not start another round.
    this.#shedding = true;
    try {
      for (const { account } of held) {
        if (this.#total <= this.max) break;
        account.shed();
      }
    } finally {
      this.#shedding = false;
    }
  }
}
