/**
 * Protocol violations ws detects in a peer's frames (its errors coded WS_ERR_*), and the close
 * ws sends for each (RFC 6455 §7.4.1) with the reason label the server-side close is counted
 * under. ws closes the socket itself; the service only records why.
 */
import type { ServerCloseReason } from '../telemetry/semconv.js';

/** A close the server started: the code of the frame it sent and why. */
export interface ServerClose {
  readonly code: number;
  readonly reason: ServerCloseReason;
}

const INVALID_PAYLOAD: ServerClose = { code: 1007, reason: 'invalid_payload' };
const MESSAGE_TOO_BIG: ServerClose = { code: 1009, reason: 'message_too_big' };
const TOO_MANY_FRAGMENTS: ServerClose = { code: 1008, reason: 'too_many_fragments' };
const PROTOCOL_ERROR: ServerClose = { code: 1002, reason: 'protocol_error' };

/** True for a socket error that is the peer's protocol fault, not a network or server error. */
export function isProtocolViolation(errorCode: unknown): errorCode is string {
  return typeof errorCode === 'string' && errorCode.startsWith('WS_ERR_');
}

/** The close ws sends for the violation `errorCode`; any code without its own is a protocol error. */
export function violationClose(errorCode: string): ServerClose {
  switch (errorCode) {
    case 'WS_ERR_INVALID_UTF8':
      return INVALID_PAYLOAD;
    case 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH':
    case 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH':
      return MESSAGE_TOO_BIG;
    case 'WS_ERR_TOO_MANY_BUFFERED_PARTS':
      return TOO_MANY_FRAGMENTS;
    default:
      return PROTOCOL_ERROR;
  }
}
