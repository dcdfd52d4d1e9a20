/**
 * The wire protocol: JSON text frames in, JSON text frames out. Parsing never throws; a bad
 * frame becomes an error reply with a stable code and the connection stays open.
 */
import { shapeExcess } from './json-depth.js';

export type MessageId = string | number | null;

/**
 * The parsed object itself, not a copy: parseMessage checks `type` and `id` in place and sets
 * an absent `id` to null, so these fields hold what they say and every other field is as sent.
 */
export interface IncomingMessage {
  readonly type: string;
  readonly id: MessageId;
  readonly traceparent?: unknown;
  readonly tracestate?: unknown;
  readonly [field: string]: unknown;
}

export const AFTER_REPLY: unique symbol = Symbol('afterReply');

export interface Reply {
  readonly type: string;
  readonly id?: MessageId;
  readonly [field: string]: unknown;
  /** Runs right after the reply is handed to the socket (not serialised): what must follow it, such as a recovery's replay. */
  readonly [AFTER_REPLY]?: () => void;
}

/** Stable error codes a client can switch on; asserted exactly in tests. */
export const ERROR_CODES = {
  bad_request: 'bad_request',
  unknown_type: 'unknown_type',
  unsupported_data: 'unsupported_data',
  internal_error: 'internal_error',
  rate_limited: 'rate_limited',
  bad_channel: 'bad_channel',
  too_many_subscriptions: 'too_many_subscriptions',
  message_too_large: 'message_too_large',
  unavailable: 'unavailable',
} as const;
export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorReply extends Reply {
  readonly type: 'error';
  readonly id: MessageId;
  readonly code: ErrorCode;
  readonly message: string;
}

/** A client mistake a handler detects: answered with its code, not counted as an unhandled error. */
export class ClientError extends Error {
  override readonly name = 'ClientError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type ParseResult =
  | { readonly ok: true; readonly message: IncomingMessage }
  | { readonly ok: false; readonly error: ErrorReply };

export function errorReply(id: MessageId, code: ErrorCode, message: string): ErrorReply {
  return { type: 'error', id, code, message };
}

function readId(value: unknown): MessageId {
  return typeof value === 'string' || typeof value === 'number' ? value : null;
}

/** The shape bounds checked before parsing (LimitsConfig's MAX_JSON_DEPTH and MAX_JSON_ENTRIES). */
export interface ShapeLimits {
  readonly maxJsonDepth: number;
  readonly maxJsonEntries: number;
}

export function parseMessage(data: Buffer, isBinary: boolean, limits: ShapeLimits): ParseResult {
  if (isBinary) {
    return { ok: false, error: errorReply(null, 'unsupported_data', 'binary frames are not supported; send JSON text') };
  }
  const excess = shapeExcess(data, limits.maxJsonDepth, limits.maxJsonEntries);
  if (excess === 'depth') {
    return { ok: false, error: errorReply(null, 'bad_request', `message nests deeper than ${limits.maxJsonDepth} levels`) };
  }
  if (excess === 'entries') {
    return { ok: false, error: errorReply(null, 'bad_request', `message holds more than ${limits.maxJsonEntries} members and elements`) };
  }
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    return { ok: false, error: errorReply(null, 'bad_request', 'message is not valid JSON') };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, error: errorReply(null, 'bad_request', 'message must be a JSON object') };
  }
  // Checked and completed in place: a copy of a message with many fields cost more than parsing it.
  const fields = value as { type?: unknown; id?: unknown };
  const id = readId(fields.id);
  if (fields.id !== undefined && id === null && fields.id !== null) {
    return { ok: false, error: errorReply(null, 'bad_request', 'id must be a string or a number') };
  }
  if (typeof fields.type !== 'string' || fields.type === '') {
    return { ok: false, error: errorReply(id, 'bad_request', 'type must be a non-empty string') };
  }
  if (fields.id === undefined) fields.id = null;
  return { ok: true, message: fields as IncomingMessage };
}
