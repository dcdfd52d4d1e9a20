/**
 * Channel history, as both engines keep it: what a subscriber asking to recover from a position
 * gets (decideRecovery, one rule for every engine), and the in-process engine's bounded store.
 */
import { randomBytes } from 'node:crypto';
import type { Position, Publication, Recovery } from './broker.js';

/** A fresh epoch: random, so a channel whose history was lost can never reuse an old one. */
export function newEpoch(): string {
  return randomBytes(6).toString('hex');
}

export interface HistoryLimits {
  /** CHANNEL_HISTORY_SIZE: publications kept per channel; 0 keeps none. */
  readonly size: number;
  /** CHANNEL_HISTORY_TTL_MS: how long a publication stays recoverable; 0 keeps none. */
  readonly ttlMs: number;
}

export function historyEnabled(limits: HistoryLimits): boolean {
  return limits.size > 0 && limits.ttlMs > 0;
}

/**
 * `after`: what the store holds with an offset above `since.offset`, in order, up to `top`.
 * Recovered only when that is every publication after `since`, none past the TTL: a client is
 * either given the whole gap or told it cannot be, never part of it.
 */
export function decideRecovery(since: Position | undefined, top: Position, after: readonly Publication[], now: number, ttlMs: number): Recovery {
  if (since === undefined) return { top, publications: [] };
  if (since.epoch !== top.epoch) return { top, publications: [], recovered: false, reason: 'epoch_changed' };
  if (since.offset > top.offset) return { top, publications: [], recovered: false, reason: 'unknown_position' };
  if (since.offset === top.offset) return { top, publications: [], recovered: true };
  const missing = top.offset - since.offset;
  if (after.length !== missing || after[0].offset !== since.offset + 1 || now - after[0].publishedAt > ttlMs) {
    return { top, publications: [], recovered: false, reason: 'expired' };
  }
  return { top, publications: after, recovered: true };
}

/** One channel's history in process: a ring of the last `size` publications. */
export class PublicationRing {
  readonly #slots: (Publication | undefined)[];
  /** Offset of the newest publication; the ring holds offsets (top - count, top]. */
  #top = 0;
  #count = 0;

  constructor(
    readonly epoch: string,
    size: number,
  ) {
    this.#slots = new Array<Publication | undefined>(size);
  }

  get top(): Position {
    return { epoch: this.epoch, offset: this.#top };
  }

  /** Gives the next offset; stores the publication when the ring has room for any. Returns how many it pushed out. */
  append(make: (position: Position) => Publication): { publication: Publication; trimmed: number } {
    this.#top++;
    const publication = make({ epoch: this.epoch, offset: this.#top });
    const size = this.#slots.length;
    if (size === 0) return { publication, trimmed: 0 };
    this.#slots[this.#top % size] = publication;
    if (this.#count < size) {
      this.#count++;
      return { publication, trimmed: 0 };
    }
    return { publication, trimmed: 1 };
  }

  /** Publications with an offset above `offset`, oldest first (those the ring still holds). */
  after(offset: number): Publication[] {
    const from = Math.max(offset + 1, this.#top - this.#count + 1);
    const out: Publication[] = [];
    for (let o = from; o <= this.#top; o++) out.push(this.#slots[o % this.#slots.length] as Publication);
    return out;
  }
}
