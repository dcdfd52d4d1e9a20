/**
 * One WebSocket connection: message → span → handler → reply → metrics, and the close.
 * `ws` runs 'message' listeners in the root context, so each message's work is entered into
 * its own span's context explicitly; no span stays open for the connection's life.
 *
 * Read top to bottom: the listeners, the message path (#onMessage → #dispatch → #finish →
 * #send), the closes the server starts, then the socket's other events.
 */
import { context, SpanKind, SpanStatusCode, trace, type Context, type Link, type Span } from '@opentelemetry/api';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import type { HandlerRegistry, MessageHandler } from '../protocol/handlers/index.js';
import type { RateLimitConfig } from '../config/config.js';
import type { Instruments } from '../telemetry/instruments.js';
import { AFTER_REPLY, ClientError, errorReply, parseMessage, type MessageId, type ParseResult, type Reply } from '../protocol/messages.js';
import { MessageRateLimiter, type Verdict } from './rate-limit.js';
import { withSpan } from '../telemetry/context.js';
import type { ServiceTracer } from '../telemetry/tracer.js';
import { ATTR_ERROR_TYPE } from '@opentelemetry/semantic-conventions';
import {
  ATTR_WS_ERROR_CODE,
  ATTR_WS_MESSAGE_SIZE,
  ATTR_WS_MESSAGE_TYPE,
  MESSAGE_TYPE_INVALID,
  MESSAGE_TYPE_UNKNOWN,
  type Outcome,
  type ServerCloseReason,
} from '../telemetry/semconv.js';
import { isProtocolViolation, violationClose, type ServerClose } from './close-codes.js';
import { recordClose, type Peer } from './close-record.js';
import { InflightTracker } from './inflight.js';
import type { SendAccount, SendBudget } from './send-budget.js';
import { remoteParent } from './trace-parent.js';
import type { Subscriber } from '../channels/subscriptions.js';

export type { Peer } from './close-record.js';

/** The per-connection limits from LimitsConfig that Connection enforces. */
export interface ConnectionLimits {
  readonly maxBufferedBytes: number;
  readonly maxJsonDepth: number;
  readonly maxJsonEntries: number;
  readonly rateLimit: RateLimitConfig | undefined;
}

export interface ConnectionDeps {
  readonly tracer: ServiceTracer;
  readonly instruments: Instruments;
  readonly logger: Logger;
  readonly handlers: HandlerRegistry;
  readonly limits: ConnectionLimits;
  /** The process-wide total of unsent bytes, which every send reports its change to. */
  readonly sendBudget: SendBudget;
  /** Called once, after the connection's close has been recorded: the service forgets it. */
  readonly closed: (connection: Connection) => void;
}

/**
 * After the server closes a connection for cause (or ws does, for a protocol violation), how
 * long the peer has to answer the close before its socket is destroyed. A slow reader may
 * never read the close frame; waiting ws's 30 s default would keep its buffers that long.
 */
export const CLOSE_GRACE_MS = 1000;

/** A shared delivery's UTF-8 goes out as text, written as is: ws copies neither it nor its frame. */
const TEXT_FRAME = { binary: false } as const;

/**
 * A batch of sends is flushed to the kernel each time this much has been corked (a quarter of
 * MAX_BUFFERED_BYTES if that is less, so corked bytes alone never make a slow reader).
 */
const BATCH_FLUSH_BYTES = 64 * 1024;

/** Pongs queued but not yet written; past this the peer is not reading (it floods pings). */
const MAX_PENDING_PONGS = 60;

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === 'function';
}

/** Where a socket keeps its Connection, so one set of listeners serves every socket. */
const OWNER = Symbol('ws-service connection');
type OwnedSocket = WebSocket & { [OWNER]: Connection };
type OwnedStream = Socket & { [OWNER]: Connection };

export class Connection implements SendAccount, Subscriber {
  /**
   * ws calls a listener with the socket as `this`. Shared listeners that find their Connection
   * there cost nothing per connection; a closure per event per connection cost an idle
   * connection about as much heap as all its other state.
   */
  static readonly #listeners = {
    message: function (this: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
      (this as OwnedSocket)[OWNER].#onMessage(data, isBinary);
    },
    error: function (this: WebSocket, err: Error & { code?: string }): void {
      (this as OwnedSocket)[OWNER].#onError(err);
    },
    ping: function (this: WebSocket, data: Buffer): void {
      (this as OwnedSocket)[OWNER].#onPing(data);
    },
    pong: function (this: WebSocket): void {
      (this as OwnedSocket)[OWNER].#alive = true;
    },
    close: function (this: WebSocket, code: number): void {
      (this as OwnedSocket)[OWNER].#onClose(code);
    },
    /**
     * On the TCP socket: its write backlog has been flushed to the kernel. Without this a
     * reader that caught up would stay counted at its backlog until its next reply.
     */
    drain: function (this: Socket): void {
      (this as OwnedStream)[OWNER].#track();
    },
  };

  /** This connection's async handlers still running; a drain waits for them before closing. */
  readonly inflight = new InflightTracker();
  readonly #openedAt = performance.now();
  /**
   * Why the server closed, if it closed first, and the code of the close frame it sent. ws
   * reports 1006 when the peer's answer never arrives (it stops reading after a violation;
   * terminate() skips it), yet the close that happened is the server's, with this code. The
   * first reason wins and is counted once, when the socket has closed.
   */
  #serverClose: ServerClose | undefined;
  readonly #limiter: MessageRateLimiter | undefined;
  /**
   * Whether a message's arrival time is used: by the duration histogram, the rate limit or a
   * debug line. With the SDK disabled and neither of the others, the clock is not read. Fixed
   * per connection: the log level is LOG_LEVEL's, set at start.
   */
  readonly #timed: boolean;
  readonly #debug: boolean;
  /** Cleared by each ping, set by the pong: false at the next ping means the peer is gone. */
  #alive = true;
  #closed = false;
  /**
   * The socket's unsent bytes when last read, this connection's share of the SendBudget's
   * total. Read after each send and on drain; released (0 for good) on close or shedding.
   */
  #unsent = 0;
  #released = false;
  /** The TCP socket under ws, corked while a batch of sends is made (see batch). */
  readonly #socket: Socket | undefined;
  /** Bytes sent since the socket was last corked for a batch; undefined outside a batch. */
  #batched: number | undefined;
  #pendingPongs = 0;
  #graceTimer: NodeJS.Timeout | undefined;
  #received = 0;
  #answered = 0;
  #late = 0;

  /**
   * @param ws the accepted socket
   * @param handshake the context holding the (ended) handshake span: every message without
   *   its own traceparent, and the close, belong to this trace, so its trace id is the
   *   connection's request_id
   * @param peer the client's address and port, for the close log line
   * @param socket the TCP socket under `ws` (the upgrade request's), whose 'drain' refreshes
   *   this connection's unsent bytes
   */
  constructor(
    readonly ws: WebSocket,
    readonly handshake: Context,
    private readonly deps: ConnectionDeps,
    private readonly peer: Peer = { address: undefined, port: undefined },
    socket?: Socket,
  ) {
    const rate = deps.limits.rateLimit;
    this.#limiter = rate === undefined ? undefined : new MessageRateLimiter(rate, this.#openedAt);
    this.#debug = deps.logger.isLevelEnabled('debug');
    this.#timed = deps.instruments.recordsDurations || this.#limiter !== undefined || this.#debug;
    (ws as OwnedSocket)[OWNER] = this;
    const listeners = Connection.#listeners;
    // Unbound on purpose: ws calls each with the socket as `this`, which they are written for.
    /* eslint-disable @typescript-eslint/unbound-method */
    ws.on('message', listeners.message);
    ws.on('error', listeners.error);
    ws.on('ping', listeners.ping);
    ws.on('pong', listeners.pong);
    // ws emits 'close' exactly once.
    ws.on('close', listeners.close);
    this.#socket = socket;
    if (socket !== undefined) {
      (socket as OwnedStream)[OWNER] = this;
      socket.on('drain', listeners.drain);
    }
    /* eslint-enable @typescript-eslint/unbound-method */
  }

  // ── The message path ──────────────────────────────────────────────────────────────────────

  #onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    this.deps.instruments.totalMessages.add(1);
    this.#received++;
    // After its close frame the server may send nothing (RFC 6455 §5.5.1), so a message that
    // arrives now could never be answered: it is not processed at all, only counted.
    if (this.ws.readyState !== WebSocket.OPEN) {
      this.#late++;
      this.deps.instruments.lateMessages.add(1);
      return;
    }
    const started = this.#timed ? performance.now() : 0;
    // binaryType is 'nodebuffer': single and fragmented messages both arrive as one Buffer.
    const buffer = data as Buffer;
    if (this.#limiter !== undefined) {
      const verdict = this.#limiter.admit(started, buffer.length);
      if (verdict !== 'accept') return this.#refuse(verdict, this.#limiter.refusedInStreak);
    }
    const parsed = parseMessage(buffer, isBinary, this.deps.limits);
    const handler = parsed.ok ? this.deps.handlers.get(parsed.message.type) : undefined;
    const type = handler ? handler.type : parsed.ok ? MESSAGE_TYPE_UNKNOWN : MESSAGE_TYPE_INVALID;
    const remote = parsed.ok ? remoteParent(parsed.message) : undefined;
    const parent = remote ?? this.handshake;
    // Most message spans are not recorded (no exporter, or an unsampled trace): the tracer says
    // so up front, and the name and attributes of a recorded span are built only for one that is.
    const span = this.deps.tracer.unrecordedSpan(parent) ?? this.#recordedSpan(type, buffer.length, parent, remote !== undefined);
    // With the SDK disabled the tracer hands back the parent's own span: its context is the parent.
    const active = span === trace.getSpan(parent) ? parent : withSpan(parent, span);
    context.with(active, Connection.#dispatch, undefined, this, parsed, handler, span, type, started);
  }

  get #link(): Link {
    return { context: trace.getSpanContext(this.handshake)! };
  }

  #recordedSpan(type: string, size: number, parent: Context, remote: boolean): Span {
    return this.deps.tracer.sdkSpan(
      `ws.message ${type}`,
      {
        kind: SpanKind.SERVER,
        attributes: { [ATTR_WS_MESSAGE_TYPE]: type, [ATTR_WS_MESSAGE_SIZE]: size },
        links: remote ? [this.#link] : undefined,
      },
      parent,
    );
  }

  /**
   * A message over the rate limit: answered `rate_limited` without being parsed or traced, so a
   * flood costs as little as possible. Logged once per streak, not per message.
   */
  #refuse(verdict: Exclude<Verdict, 'accept'>, streak: number): void {
    const rate = this.deps.limits.rateLimit!;
    const bytes = this.#limiter!.exhausted === 'bytes';
    this.deps.instruments.rateLimitedMessages.add(1);
    if (streak === 1) {
      context.with(this.handshake, () => {
        this.deps.logger.warn(
          bytes
            ? { limit: 'bytes', limit_per_sec: rate.bytesPerSec, burst: rate.bytesBurst, close_after: rate.closeAfter }
            : { limit: 'messages', limit_per_sec: rate.messagesPerSec, burst: rate.burst, close_after: rate.closeAfter },
          'rate limit exceeded: refusing messages',
        );
      });
    }
    const text = bytes ? `more than ${rate.bytesPerSec} bytes per second; slow down` : `more than ${rate.messagesPerSec} messages per second; slow down`;
    this.#send(errorReply(null, 'rate_limited', text));
    if (verdict === 'close') {
      this.#forceClose('rate_limited', 1008, 'rate limit exceeded', { refused_messages: streak });
    }
  }

  /** Static, so that entering the message's context needs no function bound to this connection. */
  static #dispatch(
    connection: Connection,
    parsed: ParseResult,
    handler: MessageHandler | undefined,
    span: Span,
    type: string,
    started: number,
  ): void {
    if (!parsed.ok) return connection.#finish(parsed.error, 'client_error', span, type, started);
    const { message } = parsed;
    if (handler === undefined) {
      const reply = errorReply(message.id, 'unknown_type', `unknown message type; known: ${[...connection.deps.handlers.keys()].join(', ')}`);
      return connection.#finish(reply, 'client_error', span, type, started);
    }
    let result: Reply | Promise<Reply>;
    try {
      // The connection itself is the handler's client: nothing is allocated per message for it.
      result = handler.handle(message, connection);
    } catch (err) {
      return connection.#fail(err, message.id, span, type, started);
    }
    if (!isPromise(result)) return connection.#finish(result, 'ok', span, type, started);
    connection.inflight.begin();
    result
      .then(
        (reply) => connection.#finish(reply, 'ok', span, type, started),
        (err: unknown) => connection.#fail(err, message.id, span, type, started),
      )
      .finally(() => connection.inflight.end());
  }

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
    let payload: string;
    try {
      payload = JSON.stringify(reply);
    } catch (err) {
      // A reply that cannot be serialised (a cycle, a BigInt) is the handler's bug, not the client's.
      return this.#fail(err, reply.id ?? null, span, type, started);
    }
    this.#send(reply, payload);
    reply[AFTER_REPLY]?.();
    if (outcome !== 'ok') span.setAttribute(ATTR_WS_ERROR_CODE, String(reply.code));
    span.end();
    if (!this.#timed) return;
    const seconds = (performance.now() - started) / 1000;
    this.deps.instruments.recordMessage(type, outcome, seconds);
    if (this.#debug) {
      this.deps.logger.debug({ message_type: type, outcome, duration_ms: seconds * 1000 }, 'message processed');
    }
  }

  #send(reply: Reply, payload = JSON.stringify(reply)): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      this.deps.logger.warn({ reply_type: reply.type }, 'reply not sent: connection already closing');
      return;
    }
    this.#answered++;
    this.send(payload);
  }

  /** Whether a send may be made now; a channel delivery to a closing socket is dropped instead. */
  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * The one way anything is sent to this client (replies now; pushed deliveries later), so
   * that every send is accounted: this socket's unsent bytes, and the process-wide total.
   * The caller has checked that the socket is open.
   */
  send(payload: string | Buffer): void {
    if (typeof payload === 'string') this.ws.send(payload);
    else this.ws.send(payload, TEXT_FRAME);
    if (this.#batched !== undefined && (this.#batched += payload.length) >= Math.min(BATCH_FLUSH_BYTES, this.deps.limits.maxBufferedBytes >> 2)) {
      // Corked bytes count as unsent: flushing every so often keeps a long replay from looking
      // like a slow reader, and the process-wide total honest.
      this.#socket!.uncork();
      this.#socket!.cork();
      this.#batched = 0;
    }
    // Unsent bytes grow only when the peer reads slower than it makes us write; past the bound
    // the socket is closed instead of letting its buffer take the process's memory.
    const buffered = this.#track();
    if (buffered > this.deps.limits.maxBufferedBytes) {
      this.#forceClose('slow_reader', 1013, 'reading too slowly; try again later', { buffered_bytes: buffered });
    }
  }

  /**
   * Makes the sends inside `sends` leave together: the socket is corked meanwhile, so a replay
   * of a hundred frames is one write to the kernel, not a hundred.
   */
  batch(sends: () => void): void {
    const socket = this.#socket;
    if (socket === undefined || this.#batched !== undefined) return sends();
    this.#batched = 0;
    socket.cork();
    try {
      sends();
    } finally {
      this.#batched = undefined;
      socket.uncork();
    }
  }

  /**
   * A live channel delivery. The socket stays corked until the end of this event-loop turn, so
   * every message this subscriber gets in the turn (several publications read from the broker
   * at once) leaves in one write to the kernel: on a busy instance, a system call saved per
   * message per subscriber.
   */
  deliver(frame: Buffer): void {
    const socket = this.#socket;
    if (socket !== undefined && this.#batched === undefined) {
      this.#batched = 0;
      socket.cork();
      Connection.#corked.push(this);
      if (Connection.#corked.length === 1) setImmediate(Connection.#endTurn);
    }
    this.send(frame);
  }

  /** Connections corked by deliver() this turn. */
  static readonly #corked: Connection[] = [];

  static #endTurn(this: void): void {
    const corked = Connection.#corked.splice(0);
    for (const connection of corked) {
      connection.#batched = undefined;
      connection.#socket!.uncork();
      // What the uncork handed to the kernel is no longer unsent.
      connection.#track();
    }
  }

  /** Reports the change in this socket's unsent bytes since last read to the SendBudget. */
  #track(): number {
    if (this.#released) return 0;
    const buffered = this.ws.bufferedAmount;
    const delta = buffered - this.#unsent;
    // A reader that keeps up leaves nothing unsent: no change, nothing to report.
    if (delta !== 0) {
      this.#unsent = buffered;
      this.deps.sendBudget.change(delta);
    }
    return buffered;
  }

  /** SendAccount: this socket's unsent bytes, read now; the budget sums them itself. */
  recount(): number {
    if (this.#released) return 0;
    return (this.#unsent = this.ws.bufferedAmount);
  }

  /**
   * SendAccount: the process holds too many unsent bytes and this socket holds the most. It is
   * terminated, not closed: a close frame would queue behind the backlog that must be freed.
   */
  shed(): void {
    const unsent = this.#release();
    // One already closing for cause (a slow reader in its grace second) keeps its reason; its
    // socket is only dropped sooner.
    if (this.#serverClose === undefined) {
      this.#serverClose = { code: 1006, reason: 'memory_pressure' };
      this.#log('memory_pressure', 1006, { buffered_bytes: unsent, total_buffered_bytes: this.deps.sendBudget.total + unsent });
    }
    this.ws.terminate();
  }

  /** Takes this connection's share out of the total, once; returns what it was. */
  #release(): number {
    if (this.#released) return 0;
    this.#released = true;
    const unsent = this.#unsent;
    this.#unsent = 0;
    if (unsent !== 0) this.deps.sendBudget.change(-unsent);
    return unsent;
  }

  // ── Closes the server starts ──────────────────────────────────────────────────────────────

  /**
   * The drain's close: waits for this connection's in-flight handlers, then sends the close
   * frame in the same microtask chain as their last reply, so no message can be accepted in
   * between. Every message accepted before the close frame has then been answered.
   */
  async drain(code: number, reason: string): Promise<void> {
    await this.inflight.idle();
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.#serverClose ??= { code, reason: 'shutdown' };
    this.ws.close(code, reason);
  }

  /** Drops the socket without waiting for the close handshake (a drain's deadline passed). */
  terminate(): void {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    // A drain's close that went unanswered ends as a timeout; a close for cause keeps its reason.
    if (this.#serverClose === undefined || this.#serverClose.reason === 'shutdown') {
      this.#serverClose = { code: this.#serverClose?.code ?? 1006, reason: 'shutdown_timeout' };
    }
    this.ws.terminate();
  }

  /** One heartbeat tick: terminate a peer that did not answer the previous ping, else ping it. */
  heartbeat(): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (!this.#alive) {
      this.#serverClose ??= { code: 1006, reason: 'heartbeat_timeout' };
      this.#log('heartbeat_timeout', 1006, {});
      this.ws.terminate();
      return;
    }
    this.#alive = false;
    this.ws.ping();
  }

  #log(reason: ServerCloseReason, code: number, fields: Record<string, unknown>): void {
    context.with(this.handshake, () => {
      this.deps.logger.warn({ reason, close_code: code, ...fields }, 'server closing connection');
    });
  }

  /** Closes for cause: logged once, the socket destroyed if the peer does not answer in time. */
  #forceClose(reason: ServerCloseReason, code: number, text: string, fields: Record<string, unknown>): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.#serverClose ??= { code, reason };
    this.#log(reason, code, fields);
    this.ws.close(code, text);
    this.#armGrace();
  }

  #armGrace(): void {
    this.#graceTimer ??= setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  // ── The socket's other events ─────────────────────────────────────────────────────────────

  /** Pings are answered here, not by ws, so a peer that floods pings without reading is caught. */
  #onPing(data: Buffer): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (this.#pendingPongs >= MAX_PENDING_PONGS) {
      this.#serverClose ??= { code: 1006, reason: 'slow_reader' };
      this.#log('slow_reader', 1006, { pending_pongs: this.#pendingPongs });
      this.ws.terminate();
      return;
    }
    this.#pendingPongs++;
    this.ws.pong(data, false, () => this.#pendingPongs--);
  }

  #onError(err: Error & { code?: string }): void {
    // ws reports peer protocol violations here (codes WS_ERR_*) and closes the socket itself
    // with the matching close code: a handled client fault, not an unhandled error.
    context.with(this.handshake, () => {
      if (isProtocolViolation(err.code)) {
        const close = violationClose(err.code);
        this.#serverClose ??= close;
        this.deps.logger.warn({ error_code: err.code, reason: err.message, close_code: close.code }, 'WebSocket protocol violation; closing connection');
        // ws stops reading after a violation, so the peer's answer to the close is never seen.
        this.#armGrace();
        return;
      }
      this.deps.instruments.countError('socket');
      this.deps.logger.error({ err }, 'WebSocket error');
    });
  }

  /**
   * Recorded once: ws emits 'close' once, and a second would count the connection twice. The
   * service forgets the connection even if recording throws, or the gauge would never come down.
   */
  #onClose(peerCode: number): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      clearTimeout(this.#graceTimer);
      this.#release();
      recordClose(this.deps, this.handshake, {
        peerCode,
        serverClose: this.#serverClose,
        durationSeconds: (performance.now() - this.#openedAt) / 1000,
        peer: this.peer,
        received: this.#received,
        answered: this.#answered,
        late: this.#late,
      });
    } finally {
      this.deps.closed(this);
    }
  }
}
