/**
 * Refusals on the plain HTTP side, before any route runs: requests that carry a body (no route
 * takes one), and what Node's parser reports through 'clientError' (headers or request too
 * slow, headers too large, bytes that are not HTTP — such as garbage sent where an upgrade was
 * expected). Each is answered in the service's JSON shape, counted by reason in
 * rejected_http_requests, and logged once under a request_id.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { context, isSpanContextValid, propagation, ROOT_CONTEXT, trace, type Context } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { rejectUpgrade, sendJson } from './responses.js';
import type { Instruments } from '../telemetry/instruments.js';
import type { HttpRejectReason } from '../telemetry/semconv.js';
import { randomSpanContext } from '../telemetry/ids.js';
import { bounded } from '../telemetry/bounded.js';

export interface HttpGuardDeps {
  readonly instruments: Instruments;
  readonly logger: Logger;
}

/**
 * The context a refused request's log line runs in: the caller's trace when it sent a
 * `traceparent`, a fresh random one otherwise. Nothing is recorded; the ids are for the log.
 */
function refusalContext(headers: IncomingMessage['headers'] | undefined): Context {
  const parent = headers === undefined ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, headers);
  const caller = trace.getSpanContext(parent);
  return trace.setSpanContext(parent, randomSpanContext(caller !== undefined && isSpanContextValid(caller) ? caller.traceId : undefined));
}

function logRefusal(
  deps: HttpGuardDeps,
  headers: IncomingMessage['headers'] | undefined,
  fields: { reason: HttpRejectReason; status?: number; client_address: string | undefined; path?: string },
): void {
  deps.instruments.countRejectedHttpRequest(fields.reason);
  context.with(refusalContext(headers), () => deps.logger.warn(fields, 'HTTP request refused'));
}

/** A request body is declared by a non-zero Content-Length or any Transfer-Encoding. */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) !== 0);
}

/**
 * No route takes a body, so the limit is zero bytes: a request declaring one gets 413 before
 * any of it is read, and the connection is closed rather than left to drain an unread body.
 */
export function refuseBody(req: IncomingMessage, res: ServerResponse, path: string, deps: HttpGuardDeps): void {
  logRefusal(deps, req.headers, { reason: 'body_not_allowed', status: 413, client_address: req.socket.remoteAddress, path: bounded(path) });
  sendJson(res, 413, { error: 'payload_too_large', message: 'requests to this service carry no body' }, { Connection: 'close' });
}

function classify(code: string | undefined): { status: number; reason: HttpRejectReason } | undefined {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, reason: 'request_timeout' };
  if (code === 'HPE_HEADER_OVERFLOW') return { status: 431, reason: 'headers_too_large' };
  if (code?.startsWith('HPE_')) return { status: 400, reason: 'malformed_request' };
  return undefined;
}

/**
 * The responses in progress on each socket: a keep-alive socket may carry a pipelined request
 * behind one still being answered. Node keeps this only in private socket state, so the
 * request handler records it here (trackResponse) for the 'clientError' listener to ask.
 */
const inProgress = new WeakMap<Duplex, Set<ServerResponse>>();

/** Records `res` as in progress on its socket until it finishes or its connection closes. */
export function trackResponse(req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket;
  let responses = inProgress.get(socket);
  if (responses === undefined) inProgress.set(socket, (responses = new Set()));
  responses.add(res);
  const done = (): void => {
    responses.delete(res);
  };
  res.once('finish', done).once('close', done);
}

/** Sockets already refused for their backlog: the rest of what they sent is dropped unlogged. */
const overflowed = new WeakSet<Duplex>();

/**
 * Bounds the requests one socket has unanswered. Node parses every request in a chunk and
 * emits each at once, whatever the peer reads: a client that pipelines thousands and never
 * reads would get thousands of routes run and their responses queued in memory. Responses must
 * go out in order, so one cannot be refused ahead of those queued: the socket is destroyed,
 * which frees its queue. Returns false when the request must not be routed.
 */
export function admitPipelined(req: IncomingMessage, maxOutstanding: number, path: string, deps: HttpGuardDeps): boolean {
  const socket = req.socket;
  if (overflowed.has(socket)) return false;
  if (socket.destroyed) return false;
  if ((inProgress.get(socket)?.size ?? 0) <= maxOutstanding) return true;
  overflowed.add(socket);
  logRefusal(deps, req.headers, { reason: 'pipeline_limit', client_address: socket.remoteAddress, path: bounded(path) });
  socket.destroy();
  return false;
}

/** Whether a response on `socket` has begun: a refusal written after it would corrupt it. */
function responseStarted(socket: Duplex): boolean {
  for (const res of inProgress.get(socket) ?? []) if (res.headersSent) return true;
  return false;
}

/** The server's 'clientError' listener: without one Node answers in plain text and counts nothing. */
export function createClientErrorHandler(deps: HttpGuardDeps) {
  return (err: Error & { code?: string }, socket: Duplex): void => {
    const refusal = classify(err.code);
    // A reset or a broken pipe is the peer leaving, not a request to refuse.
    if (refusal === undefined || !socket.writable || responseStarted(socket)) {
      socket.destroy();
      return;
    }
    const remote = (socket as Duplex & { remoteAddress?: string }).remoteAddress;
    logRefusal(deps, undefined, { ...refusal, client_address: remote });
    const message =
      refusal.reason === 'request_timeout'
        ? 'request not received in time'
        : refusal.reason === 'headers_too_large'
          ? 'request headers too large'
          : 'malformed HTTP request';
    rejectUpgrade(socket, refusal.status, refusal.reason, message);
  };
}
