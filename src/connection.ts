/**
 * One WebSocket connection: message → span → handler → reply → metrics, and the close.
 * `ws` runs 'message' listeners in the root context, so each message's work is entered into
 * its own span's context explicitly; no span stays open for the connection's life.
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import type { HandlerRegistry, MessageHandler } from './handlers/index.js';
import type { Instruments } from './instruments.js';
import { ClientError, errorReply, parseMessage, type MessageId, type ParseResult, type Reply } from './protocol.js';
import {
  ATTR_WS_CLOSE_CODE,
  ATTR_WS_CLOSE_INITIATOR,
  ATTR_WS_CLOSE_REASON,
  ATTR_WS_CONNECTION_DURATION,
  ATTR_WS_ERROR_CODE,
  ATTR_WS_MESSAGE_SIZE,
  ATTR_WS_MESSAGE_TYPE,
  ATTR_WS_OUTCOME,
  ATTR_ERROR_TYPE,
  closeReason,
  MESSAGE_TYPE_INVALID,
  MESSAGE_TYPE_UNKNOWN,
  type Outcome,
} from './semconv.js';

/** Counts handler work still running, so shutdown can let in-flight messages finish. */
export class InflightTracker {
  #count = 0;
  #waiters: (() => void)[] = [];

  get count(): number {
    return this.#count;
  }

  begin(): void {
    this.#count++;
  }

  end(): void {
    this.#count--;
    if (this.#count === 0) for (const wake of this.#waiters.splice(0)) wake();
  }

  idle(): Promise<void> {
    return this.#count === 0 ? Promise.resolve() : new Promise((resolve) => this.#waiters.push(resolve));
  }
}

export interface ConnectionDeps {
  readonly tracer: Tracer;
  readonly instruments: Instruments;
  readonly logger: Logger;
  readonly handlers: HandlerRegistry;
  readonly inflight: InflightTracker;
}

/** Metric attribute objects are built once per label combination, not per message. */
const attributeCache = new Map<string, Attributes>();
function cachedAttributes(key: string, build: () => Attributes): Attributes {
  let attrs = attributeCache.get(key);
  if (attrs === undefined) {
    attrs = Object.freeze(build());
    attributeCache.set(key, attrs);
  }
  return attrs;
}

function messageMetricAttributes(type: string, outcome: Outcome): Attributes {
  return cachedAttributes(`m\0${type}\0${outcome}`, () => ({ [ATTR_WS_MESSAGE_TYPE]: type, [ATTR_WS_OUTCOME]: outcome }));
}

function closeMetricAttributes(reason: string): Attributes {
  return cachedAttributes(`c\0${reason}`, () => ({ [ATTR_WS_CLOSE_REASON]: reason }));
}

/** A message's own `traceparent` puts its span in the sender's trace; an invalid one is ignored. */
function remoteParent(message: { traceparent?: unknown; tracestate?: unknown }): Context | undefined {
  if (typeof message.traceparent !== 'string') return undefined;
  const carrier: Record<string, string> = { traceparent: message.traceparent };
  if (typeof message.tracestate === 'string') carrier.tracestate = message.tracestate;
  const extracted = propagation.extract(ROOT_CONTEXT, carrier);
  return trace.getSpanContext(extracted) === undefined ? undefined : extracted;
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === 'function';
}

/** The close code ws sends for each peer protocol violation it detects (RFC 6455 §7.4.1). */
function closeCodeForViolation(code: string): number {
  switch (code) {
    case 'WS_ERR_INVALID_UTF8':
      return 1007;
    case 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH':
    case 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH':
      return 1009;
    default:
      return 1002;
  }
}

export class Connection {
  readonly #openedAt = performance.now();
  /**
   * The code of the close frame the server sent, if it closed first. ws reports 1006 when the
   * peer's answer never arrives (it stops reading after a violation; terminate() skips it),
   * yet the close that happened is the server's, with this code.
   */
  #serverCloseCode: number | undefined;

  /**
   * @param ws the accepted socket
   * @param handshake the context holding the (ended) handshake span: every message without
   *   its own traceparent, and the close, belong to this trace, so its trace id is the
   *   connection's request_id
   */
  constructor(
    readonly ws: WebSocket,
    readonly handshake: Context,
    private readonly deps: ConnectionDeps,
  ) {
    ws.on('message', this.#onMessage);
    ws.on('error', this.#onError);
    ws.once('close', this.#onClose);
  }

  /** Server-initiated close; the close log and span then say `initiator: server`. */
  close(code: number, reason: string): void {
    this.#serverCloseCode ??= code;
    this.ws.close(code, reason);
  }

  /** Drops the socket without waiting for the close handshake. */
  terminate(): void {
    this.#serverCloseCode ??= 1006;
    this.ws.terminate();
  }

  get #link(): Link {
    return { context: trace.getSpanContext(this.handshake)! };
  }

  #onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
    const started = performance.now();
    this.deps.instruments.totalMessages.add(1);
    // binaryType is 'nodebuffer': single and fragmented messages both arrive as one Buffer.
    const buffer = data as Buffer;
    const parsed = parseMessage(buffer, isBinary);
    const handler = parsed.ok ? this.deps.handlers.get(parsed.message.type) : undefined;
    const type = handler ? handler.type : parsed.ok ? MESSAGE_TYPE_UNKNOWN : MESSAGE_TYPE_INVALID;
    const remote = parsed.ok ? remoteParent(parsed.message) : undefined;
    const parent = remote ?? this.handshake;
    const span = this.deps.tracer.startSpan(
      `ws.message ${type}`,
      {
        kind: SpanKind.SERVER,
        attributes: { [ATTR_WS_MESSAGE_TYPE]: type, [ATTR_WS_MESSAGE_SIZE]: buffer.length },
        links: remote ? [this.#link] : undefined,
      },
      parent,
    );
    // With the SDK disabled the tracer hands back the parent's own span: its context is the parent.
    const active = span === trace.getSpan(parent) ? parent : trace.setSpan(parent, span);
    context.with(active, this.#dispatch, undefined, parsed, handler, span, type, started);
  };

  #dispatch = (
    parsed: ParseResult,
    handler: MessageHandler | undefined,
    span: Span,
    type: string,
    started: number,
  ): void => {
    if (!parsed.ok) return this.#finish(parsed.error, 'client_error', span, type, started);
    const { message } = parsed;
    if (handler === undefined) {
      const reply = errorReply(message.id, 'unknown_type', `unknown message type; known: ${[...this.deps.handlers.keys()].join(', ')}`);
      return this.#finish(reply, 'client_error', span, type, started);
    }
    let result: Reply | Promise<Reply>;
    try {
      result = handler.handle(message);
    } catch (err) {
      return this.#fail(err, message.id, span, type, started);
    }
    if (!isPromise(result)) return this.#finish(result, 'ok', span, type, started);
    this.deps.inflight.begin();
    result
      .then(
        (reply) => this.#finish(reply, 'ok', span, type, started),
        (err: unknown) => this.#fail(err, message.id, span, type, started),
      )
      .finally(() => this.deps.inflight.end());
  };

  #fail(err: unknown, id: MessageId, span: Span, type: string, started: number): void {
    if (err instanceof ClientError) {
      return this.#finish(errorReply(id, err.code, err.message), 'client_error', span, type, started);
    }
    const error = err instanceof Error ? err : new Error(String(err));
    this.deps.instruments.countError('handler');
    span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    span.setAttribute(ATTR_ERROR_TYPE, error.name);
    this.deps.logger.error({ err: error, message_type: type }, 'message handler failed');
    this.#finish(errorReply(id, 'internal_error', 'internal error'), 'internal_error', span, type, started);
  }

  #finish(reply: Reply, outcome: Outcome, span: Span, type: string, started: number): void {
    this.#send(reply);
    if (outcome !== 'ok') span.setAttribute(ATTR_WS_ERROR_CODE, String(reply.code));
    span.end();
    const seconds = (performance.now() - started) / 1000;
    this.deps.instruments.messageDuration.record(seconds, messageMetricAttributes(type, outcome));
    if (this.deps.logger.isLevelEnabled('debug')) {
      this.deps.logger.debug({ message_type: type, outcome, duration_ms: seconds * 1000 }, 'message processed');
    }
  }

  #send(reply: Reply): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      this.deps.logger.warn({ reply_type: reply.type }, 'reply not sent: connection already closing');
      return;
    }
    this.ws.send(JSON.stringify(reply));
  }

  #onError = (err: Error & { code?: string }): void => {
    // ws reports peer protocol violations here (codes WS_ERR_*) and closes the socket itself
    // with the matching close code: a handled client fault, not an unhandled error.
    context.with(this.handshake, () => {
      if (typeof err.code === 'string' && err.code.startsWith('WS_ERR_')) {
        this.#serverCloseCode ??= closeCodeForViolation(err.code);
        this.deps.logger.warn({ error_code: err.code, reason: err.message }, 'WebSocket protocol violation; closing connection');
        return;
      }
      this.deps.instruments.countError('socket');
      this.deps.logger.error({ err }, 'WebSocket error');
    });
  };

  #onClose = (peerCode: number): void => {
    const seconds = (performance.now() - this.#openedAt) / 1000;
    const code = this.#serverCloseCode ?? peerCode;
    const reason = closeReason(code);
    const initiator = this.#serverCloseCode === undefined ? 'client' : 'server';
    this.deps.instruments.connectionDuration.record(seconds, closeMetricAttributes(reason));
    const span = this.deps.tracer.startSpan(
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
      this.handshake,
    );
    context.with(trace.setSpan(this.handshake, span), () => {
      this.deps.logger.info(
        { close_code: code, close_reason: reason, initiator, duration_ms: Math.round(seconds * 1000) },
        'WebSocket closed',
      );
    });
    span.end();
  };
}
