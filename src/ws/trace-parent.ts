/**
 * A message may carry its own W3C `traceparent` (and `tracestate`) fields: its span then belongs
 * to the sender's trace instead of the connection's.
 */
import { propagation, ROOT_CONTEXT, trace, type Context } from '@opentelemetry/api';

/** The sender's context from a message's own trace fields; undefined when absent or invalid. */
export function remoteParent(message: { traceparent?: unknown; tracestate?: unknown }): Context | undefined {
  if (typeof message.traceparent !== 'string') return undefined;
  const carrier: Record<string, string> = { traceparent: message.traceparent };
  if (typeof message.tracestate === 'string') carrier.tracestate = message.tracestate;
  const extracted = propagation.extract(ROOT_CONTEXT, carrier);
  return trace.getSpanContext(extracted) === undefined ? undefined : extracted;
}
