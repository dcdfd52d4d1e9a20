/**
 * Per-connection rate limit: two token buckets, one counting messages and one counting bytes,
 * and the rule that turns excess into "sustained abuse". A message's cost to the server grows
 * with its size, so a client under the message rate may still be refused for its bytes. Time
 * is passed in (milliseconds, monotonic) so the rule is exact and cheap: no timers, a few
 * numbers of state per connection.
 */
import type { RateLimitConfig } from '../config/config.js';

export type Verdict = 'accept' | 'refuse' | 'close';

/** Which bucket ran out, for the refusal's text. */
export type Exhausted = 'messages' | 'bytes';

export class MessageRateLimiter {
  // A bucket that is off is infinite: it refills to Infinity, always has a token, and is
  // always full, so both buckets run through the same arithmetic with no branch per limit.
  readonly #messagesPerMs: number;
  readonly #messageBurst: number;
  readonly #bytesPerMs: number;
  readonly #byteBurst: number;
  readonly #closeAfter: number;
  #messages: number;
  #bytes: number;
  #last: number;
  /** Refusals since both buckets were last full: the client has not backed off since. */
  #refusedInStreak = 0;
  #exhausted: Exhausted = 'messages';

  constructor(config: RateLimitConfig, now: number) {
    this.#messagesPerMs = config.messagesPerSec / 1000;
    this.#messageBurst = config.messagesPerSec === 0 ? Infinity : config.burst;
    this.#bytesPerMs = config.bytesPerSec / 1000;
    this.#byteBurst = config.bytesPerSec === 0 ? Infinity : config.bytesBurst;
    this.#closeAfter = config.closeAfter;
    this.#messages = this.#messageBurst;
    this.#bytes = this.#byteBurst;
    this.#last = now;
  }

  /** Refusals in the current streak; 1 right after the first refusal of a streak. */
  get refusedInStreak(): number {
    return this.#refusedInStreak;
  }

  /** The bucket that refused the last refused message. */
  get exhausted(): Exhausted {
    return this.#exhausted;
  }

  /**
   * One message of `size` bytes arrived at `now`. `accept` takes a token and `size` bytes;
   * `refuse` means either bucket had too little left (neither is charged); `close` is the
   * refusal that makes the streak reach RATE_LIMIT_CLOSE_AFTER.
   */
  admit(now: number, size: number): Verdict {
    const elapsed = now - this.#last;
    this.#last = now;
    this.#messages = Math.min(this.#messageBurst, this.#messages + elapsed * this.#messagesPerMs);
    this.#bytes = Math.min(this.#byteBurst, this.#bytes + elapsed * this.#bytesPerMs);
    // Full buckets mean the client stayed under the rates long enough: its past excess is forgiven.
    if (this.#messages >= this.#messageBurst && this.#bytes >= this.#byteBurst) this.#refusedInStreak = 0;
    if (this.#messages >= 1 && this.#bytes >= size) {
      this.#messages -= 1;
      this.#bytes -= size;
      return 'accept';
    }
    this.#exhausted = this.#messages >= 1 ? 'bytes' : 'messages';
    this.#refusedInStreak++;
    return this.#refusedInStreak >= this.#closeAfter ? 'close' : 'refuse';
  }
}
