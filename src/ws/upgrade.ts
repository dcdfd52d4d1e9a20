/**
 * The WebSocket handshake: a short server span around the upgrade, and the checks made before
 * it completes (route, drain, origin, token, subprotocol, connection limit); each refusal is an
 * HTTP answer, counted by reason in rejected_upgrades and logged once under the handshake's
 * request_id. No header but User-Agent reaches the span or the log: the token may travel in
 * Authorization or Sec-WebSocket-Protocol.
 * The HTTP instrumentation makes no span for upgrade requests, so a `traceparent` header is
 * extracted here and the connection joins the caller's trace.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { WebSocket, WebSocketServer } from 'ws';
import type { AdmissionVerdict } from './admission.js';
import type { ClientLimit } from './client-limit.js';
import { offeredProtocols, unsupportedOffer } from './subprotocol.js';
import { rejectUpgrade } from '../http/responses.js';
import { pathOf } from '../http/path.js';
import type { Instruments } from '../telemetry/instruments.js';
import { withSpan, withValidIds } from '../telemetry/context.js';
import { bounded, boundedOptional } from '../telemetry/bounded.js';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { UpgradeRejectReason } from '../telemetry/semconv.js';

export interface UpgradeDeps {
  readonly wss: WebSocketServer;
  readonly wsPath: string;
  readonly tracer: Tracer;
  readonly logger: Logger;
  readonly instruments: Instruments;
  /** False once shutdown has passed its drain delay: new upgrades get 503. */
  readonly accepting: () => boolean;
  /** Origin and bearer-token checks (both optional). */
  readonly admit: (headers: IncomingHttpHeaders) => AdmissionVerdict;
  readonly liveConnections: () => number;
  /** MAX_CONNECTIONS: at this many live connections, upgrades get 503. */
  readonly maxConnections: number;
  /** MAX_CONNECTIONS_PER_CLIENT: live connections per client address; past it upgrades get 429. */
  readonly clientLimit: ClientLimit;
  /** The address the per-client limit counts (the peer, or a trusted proxy's X-Forwarded-For). */
  readonly clientAddress: (req: IncomingMessage) => string;
  /** Called inside the handshake span's context once the socket is open. */
  readonly onConnection: (ws: WebSocket, handshake: Context, req: IncomingMessage) => void;
}

type Refuse = (status: number, reason: UpgradeRejectReason, message: string, headers?: Record<string, string>) => void;

/** Refusals an operator expects in normal running (scanners, a drain) are info; the rest warn. */
const QUIET_REASONS: ReadonlySet<UpgradeRejectReason> = new Set(['not_found', 'shutting_down']);

/**
 * A socket's error listener lives as long as the socket. As a closure in the upgrade handler it
 * would share that call's scope, and keep the request, its head buffer and the handshake span
 * alive for the whole connection.
 */
function destroySocket(this: Duplex): void {
  this.destroy();
}

function startHandshakeSpan(tracer: Tracer, req: IncomingMessage, route: string | undefined, path: string, parent: Context): Span {
  const userAgent = boundedOptional(req.headers['user-agent']);
  const method = req.method ?? 'GET';
  const span = tracer.startSpan(
    route === undefined ? method : `${method} ${route}`,
    {
      kind: SpanKind.SERVER,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: method,
        ...(route === undefined ? {} : { [ATTR_HTTP_ROUTE]: route }),
        [ATTR_URL_PATH]: path,
        [ATTR_URL_SCHEME]: 'http',
        [ATTR_CLIENT_ADDRESS]: req.socket.remoteAddress ?? '',
        [ATTR_NETWORK_PEER_ADDRESS]: req.socket.remoteAddress ?? '',
        [ATTR_NETWORK_PEER_PORT]: req.socket.remotePort ?? 0,
        ...(userAgent === undefined ? {} : { [ATTR_USER_AGENT_ORIGINAL]: userAgent }),
      },
    },
    parent,
  );
  return withValidIds(span);
}

export function createUpgradeHandler(deps: UpgradeDeps) {
  const pending = new WeakMap<IncomingMessage, Refuse>();

  // ws reports malformed handshakes here when a listener exists; answer them in our JSON shape.
  deps.wss.on('wsClientError', (err: Error, socket: Duplex, req: IncomingMessage) => {
    const status = err.message === 'Invalid HTTP method' ? 405 : 400;
    const extra: Record<string, string> = err.message.includes('Sec-WebSocket-Version')
      ? { 'Sec-WebSocket-Version': '13, 8' }
      : {};
    const refuse = pending.get(req);
    if (refuse !== undefined) {
      refuse(status, 'bad_handshake', err.message, extra);
    } else {
      // ws 8 reports these synchronously inside handleUpgrade, after `pending` is set; this is
      // only a guard should it ever report one outside it: the socket still gets its answer.
      deps.instruments.countRejectedUpgrade('bad_handshake');
      rejectUpgrade(socket, status, 'bad_handshake', err.message, extra);
    }
  });

  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Network faults before the handshake are the client's; without a listener they would crash.
    socket.on('error', destroySocket);
    const fullPath = pathOf(req.url);
    const route = fullPath === deps.wsPath ? deps.wsPath : undefined;
    // Logs and spans get the bounded path; only the refusal body quotes it whole, to its sender.
    const path = bounded(fullPath);

    // The span starts before any check, so every refusal is logged under a request_id too.
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const span = startHandshakeSpan(deps.tracer, req, route, path, parent);
    const handshake = trace.setSpan(parent, span);
    let finished = false;
    const finish = (status: number, error?: string): void => {
      if (finished) return;
      finished = true;
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      if (error !== undefined) span.setAttribute(ATTR_ERROR_TYPE, error);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      span.end();
      pending.delete(req);
    };
    const refuse: Refuse = (status, reason, message, headers = {}) => {
      if (finished) return;
      finish(status, reason);
      deps.instruments.countRejectedUpgrade(reason);
      context.with(handshake, () => {
        const fields = { reason, status, client_address: req.socket.remoteAddress, path };
        if (QUIET_REASONS.has(reason)) deps.logger.info(fields, 'WebSocket upgrade refused');
        else deps.logger.warn(fields, 'WebSocket upgrade refused');
      });
      rejectUpgrade(socket, status, reason, message, headers);
    };

    if (route === undefined) {
      refuse(404, 'not_found', `no WebSocket endpoint at ${fullPath}; use ${deps.wsPath}`);
      return;
    }
    if (!deps.accepting()) {
      refuse(503, 'shutting_down', 'server is shutting down; reconnect to another instance', { 'Retry-After': '1' });
      return;
    }
    const verdict = deps.admit(req.headers);
    if (!verdict.ok) {
      const challenge: Record<string, string> = verdict.status === 401 ? { 'WWW-Authenticate': 'Bearer realm="ws-service"' } : {};
      refuse(verdict.status, verdict.reason, verdict.detail, challenge);
      return;
    }
    // After the token, so a client without one learns nothing of what the server speaks.
    const unsupported = unsupportedOffer(offeredProtocols(req.headers['sec-websocket-protocol']));
    if (unsupported !== undefined) {
      refuse(400, 'unsupported_subprotocol', unsupported);
      return;
    }
    if (deps.liveConnections() >= deps.maxConnections) {
      refuse(503, 'max_connections', 'server is at its connection limit; reconnect to another instance', { 'Retry-After': '1' });
      return;
    }
    // Last, so a slot is taken only by an upgrade that will be attempted.
    if (!deps.clientLimit.acquire(deps.clientAddress(req), socket)) {
      refuse(429, 'max_connections_per_client', 'too many connections from this client address', { 'Retry-After': '1' });
      return;
    }

    const abandoned = (): void => finish(499, 'client_closed');
    pending.set(req, refuse);
    socket.once('close', abandoned);

    context.with(handshake, () => {
      // ws completes the handshake synchronously (no verifyClient), so the live count checked
      // above cannot be overtaken by another upgrade before this one is counted.
      deps.wss.handleUpgrade(req, socket, head, (ws) => {
        socket.off('close', abandoned);
        finish(101);
        // The connection keeps the handshake's ids, not the ended span and all it holds.
        const connected = withSpan(parent, trace.wrapSpanContext(span.spanContext()));
        context.with(connected, () => deps.onConnection(ws, connected, req));
      });
    });
  };
}
