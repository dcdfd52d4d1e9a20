/**
 * Per-connection message rate limit: a token bucket, and the rule that turns excess into
 * "sustained abuse". Time is passed in (milliseconds, monotonic) so the rule is exact and cheap:
 * no timers, two numbers of state per connection.
 */
import type { RateLimitConfig } from '../config/config.js';

export type Verdict = 'accept' | 'refuse' | 'close';

export class MessageRateLimiter {
  readonly #ratePerMs: number;
  readonly #burst: number;
  readonly #closeAfter: number;
  #tokens: number;
  #last: number;
  /** Refusals since the bucket was last full: the client has not backed off since. */
  #refusedInStreak = 0;

  constructor(config: RateLimitConfig, now: number) {
    this.#ratePerMs = config.messagesPerSec / 1000;
    this.#burst = config.burst;
    this.#closeAfter = config.closeAfter;
    this.#tokens = config.burst;
    this.#last = now;
  }

  /** Refusals in the current streak; 1 right after the first refusal of a streak. */
  get refusedInStreak(): number {
    return this.#refusedInStreak;
  }

  /**
   * One message arrived at `now`. `accept` takes a token; `refuse` means no token was left;
   * `close` is the refusal that makes the streak reach RATE_LIMIT_CLOSE_AFTER.
   */
  admit(now: number): Verdict {
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * this.#ratePerMs);
    this.#last = now;
    // A full bucket means the client stayed under the rate long enough: its past excess is forgiven.
    if (this.#tokens >= this.#burst) this.#refusedInStreak = 0;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 'accept';
    }
    this.#refusedInStreak++;
    return this.#refusedInStreak >= this.#closeAfter ? 'close' : 'refuse';
  }
}
