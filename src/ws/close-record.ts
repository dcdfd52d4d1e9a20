/**
 * What is recorded when a connection has closed: its duration and close reason in the metrics,
 * the server's reason for a close it started, a `ws.close` span in the connection's trace and
 * one 'WebSocket closed' log line with the message counts.
 */
import { context, SpanKind, type Context } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Instruments } from '../telemetry/instruments.js';
import { withSpan } from '../telemetry/context.js';
import type { ServiceTracer } from '../telemetry/tracer.js';
import {
  ATTR_WS_CLOSE_CODE,
  ATTR_WS_CLOSE_INITIATOR,
  ATTR_WS_CLOSE_REASON,
  ATTR_WS_CONNECTION_DURATION,
  closeReason,
} from '../telemetry/semconv.js';
import type { ServerClose } from './close-codes.js';

export interface Peer {
  readonly address: string | undefined;
  readonly port: number | undefined;
}

export interface ClosedConnection {
  /** The code ws reported for the close (1006 when the peer's answer never arrived). */
  readonly peerCode: number;
  /** Set when the server closed first: its code then wins over the one ws reported. */
  readonly serverClose: ServerClose | undefined;
  readonly durationSeconds: number;
  readonly peer: Peer;
  readonly received: number;
  readonly answered: number;
  readonly late: number;
}

export interface CloseRecordDeps {
  readonly tracer: ServiceTracer;
  readonly instruments: Instruments;
  readonly logger: Logger;
}

/** @param handshake the connection's context: the close span and log line join its trace */
export function recordClose(deps: CloseRecordDeps, handshake: Context, closed: ClosedConnection): void {
  const { serverClose, durationSeconds: seconds } = closed;
  const code = serverClose?.code ?? closed.peerCode;
  const reason = closeReason(code);
  const initiator = serverClose === undefined ? 'client' : 'server';
  if (serverClose !== undefined) deps.instruments.countServerClose(serverClose.reason);
  deps.instruments.recordConnection(reason, seconds);
  const span = deps.tracer.startSpan(
    'ws.close',
    {
      kind: SpanKind.INTERNAL,
      attributes: {
        [ATTR_WS_CLOSE_CODE]: code,
        [ATTR_WS_CLOSE_REASON]: reason,
        [ATTR_WS_CLOSE_INITIATOR]: initiator,
        [ATTR_WS_CONNECTION_DURATION]: seconds,
      },
    },
    handshake,
  );
  context.with(withSpan(handshake, span), () => {
    deps.logger.info(
      {
        close_code: code,
        close_reason: reason,
        initiator,
        duration_ms: Math.round(seconds * 1000),
        client_address: closed.peer.address,
        client_port: closed.peer.port,
        messages_received: closed.received,
        messages_answered: closed.answered,
        messages_late: closed.late,
      },
      'WebSocket closed',
    );
  });
  span.end();
}
