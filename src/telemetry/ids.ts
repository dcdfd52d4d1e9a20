/**
 * The service's one source of random W3C trace and span ids, for the spans it makes without the
 * SDK (src/telemetry/tracer.ts) and the ids its log lines carry when nothing is recorded.
 *
 * Ids are cut from a pooled hex string: one randomFillSync and one hex conversion per 2 KiB of
 * randomness, then a substring each (V8 shares the pool's characters instead of copying them).
 * A message path that asks for an id should not pay a system call for it.
 */
import { randomFillSync } from 'node:crypto';
import { TraceFlags, type SpanContext } from '@opentelemetry/api';

const INVALID_SPAN_ID = '0000000000000000';
const INVALID_TRACE_ID = '00000000000000000000000000000000';

export class RandomIds {
  readonly #bytes = Buffer.allocUnsafe(2048);
  #pool = '';
  #offset = 0;

  #hex(chars: number): string {
    if (this.#offset + chars > this.#pool.length) {
      randomFillSync(this.#bytes);
      this.#pool = this.#bytes.toString('hex');
      this.#offset = 0;
    }
    const id = this.#pool.slice(this.#offset, this.#offset + chars);
    this.#offset += chars;
    return id;
  }

  /** 16 hex digits, never all zeros (the W3C invalid id). */
  spanId(): string {
    const id = this.#hex(16);
    return id === INVALID_SPAN_ID ? this.spanId() : id;
  }

  /** 32 hex digits, never all zeros (the W3C invalid id). */
  traceId(): string {
    const id = this.#hex(32);
    return id === INVALID_TRACE_ID ? this.traceId() : id;
  }
}

/** Shared by every caller: one pool for the process. */
export const randomIds = new RandomIds();

/** Fresh W3C ids, unsampled: enough for a log line's request_id when nothing is recorded. */
export function randomSpanContext(traceId?: string): SpanContext {
  return { traceId: traceId ?? randomIds.traceId(), spanId: randomIds.spanId(), traceFlags: TraceFlags.NONE };
}
