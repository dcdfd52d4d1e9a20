/**
 * Subscribes that ask a channel for the same thing (its position, or what followed the same
 * position) share one broker read. When an instance closes, its subscribers all come back at
 * once to the others, most of them from the same position: one history read per batch instead
 * of one per subscriber, on Redis one round trip and one reply to decode.
 *
 * A shared read must be issued after every subscriber it answers has joined the live stream
 * (subscriptions.ts), or a publication made between the read and a late joiner's joining would
 * be in neither. So a read already in flight is never shared with a newcomer: newcomers wait
 * for it to finish and share the next one, issued at once.
 */
import type { Broker, Position, Recovery } from './broker.js';

interface Batch {
  readonly settled: Promise<Recovery>;
  settle(read: Promise<Recovery>): void;
}

interface Queue {
  inFlight: boolean;
  /** Requests made while a read was in flight: they share the next one. */
  next: Batch | undefined;
}

function batch(): Batch {
  let settle: (read: Promise<Recovery>) => void = () => undefined;
  const settled = new Promise<Recovery>((resolve) => (settle = resolve));
  return { settled, settle };
}

export class RecoveryReads {
  readonly #queues = new Map<string, Queue>();

  constructor(private readonly broker: Pick<Broker, 'recover'>) {}

  /** Reads in flight or waiting: how many keys have a queue (nothing is kept once idle). */
  get pending(): number {
    return this.#queues.size;
  }

  /** The broker's answer to `recover(channel, since)`, read after this call was made. */
  read(channel: string, since: Position | undefined): Promise<Recovery> {
    const key = since === undefined ? channel : `${channel}\n${since.epoch}\n${since.offset}`;
    let queue = this.#queues.get(key);
    if (queue === undefined) {
      queue = { inFlight: false, next: undefined };
      this.#queues.set(key, queue);
    }
    queue.next ??= batch();
    const { settled } = queue.next;
    if (!queue.inFlight) this.#issue(key, queue, channel, since);
    return settled;
  }

  #issue(key: string, queue: Queue, channel: string, since: Position | undefined): void {
    const waiting = queue.next!;
    queue.next = undefined;
    queue.inFlight = true;
    const read = this.broker.recover(channel, since);
    waiting.settle(read);
    const done = (): void => {
      queue.inFlight = false;
      if (queue.next !== undefined) this.#issue(key, queue, channel, since);
      else this.#queues.delete(key);
    };
    read.then(done, done);
  }
}
