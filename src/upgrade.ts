/**
 * The WebSocket handshake: route and admission checks, then a short server span around the
 * upgrade. The HTTP instrumentation makes no span for upgrade requests, so a `traceparent`
 * header is extracted here and the connection joins the caller's trace.
 */
import type { IncomingMessage } from 'node:http';
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
import { rejectUpgrade } from './http-responses.js';
import { withValidIds } from './spans.js';
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
} from './semconv.js';

export interface UpgradeDeps {
  readonly wss: WebSocketServer;
  readonly wsPath: string;
  readonly tracer: Tracer;
  readonly logger: Logger;
  /** False once shutdown has passed its drain delay: new upgrades get 503. */
  readonly accepting: () => boolean;
  /** Called inside the handshake span's context once the socket is open. */
  readonly onConnection: (ws: WebSocket, handshake: Context, req: IncomingMessage) => void;
}

type FinishHandshake = (status: number, error?: string) => void;

/**
 * A socket's error listener lives as long as the socket. As a closure in the upgrade handler it
 * would share that call's scope, and keep the request, its head buffer and the handshake span
 * alive for the whole connection.
 */
function destroySocket(this: Duplex): void {
  this.destroy();
}

function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const query = raw.indexOf('?');
  return query === -1 ? raw : raw.slice(0, query);
}

function startHandshakeSpan(tracer: Tracer, req: IncomingMessage, route: string, parent: Context): Span {
  const userAgent = req.headers['user-agent'];
  const span = tracer.startSpan(
    `${req.method ?? 'GET'} ${route}`,
    {
      kind: SpanKind.SERVER,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: req.method ?? 'GET',
        [ATTR_HTTP_ROUTE]: route,
        [ATTR_URL_PATH]: route,
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
  const pending = new WeakMap<IncomingMessage, FinishHandshake>();

  // ws reports malformed handshakes here when a listener exists; answer them in our JSON shape.
  deps.wss.on('wsClientError', (err: Error, socket: Duplex, req: IncomingMessage) => {
    const status = err.message === 'Invalid HTTP method' ? 405 : 400;
    const extra: Record<string, string> = err.message.includes('Sec-WebSocket-Version')
      ? { 'Sec-WebSocket-Version': '13, 8' }
      : {};
    pending.get(req)?.(status, 'bad_handshake');
    rejectUpgrade(socket, status, 'bad_handshake', err.message, extra);
  });

  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Network faults before the handshake are the client's; without a listener they would crash.
    socket.on('error', destroySocket);
    const path = pathOf(req.url);
    if (path !== deps.wsPath) {
      rejectUpgrade(socket, 404, 'not_found', `no WebSocket endpoint at ${path}; use ${deps.wsPath}`);
      return;
    }
    if (!deps.accepting()) {
      rejectUpgrade(socket, 503, 'shutting_down', 'server is shutting down; reconnect to another instance', {
        'Retry-After': '1',
      });
      return;
    }

    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const span = startHandshakeSpan(deps.tracer, req, deps.wsPath, parent);
    const handshake = trace.setSpan(parent, span);
    let finished = false;
    const finish: FinishHandshake = (status, error) => {
      if (finished) return;
      finished = true;
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      if (error !== undefined) span.setAttribute(ATTR_ERROR_TYPE, error);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      span.end();
      pending.delete(req);
    };
    const abandoned = (): void => finish(499, 'client_closed');
    pending.set(req, finish);
    socket.once('close', abandoned);

    context.with(handshake, () => {
      deps.wss.handleUpgrade(req, socket, head, (ws) => {
        socket.off('close', abandoned);
        finish(101);
        // The connection keeps the handshake's ids, not the ended span and all it holds.
        const connected = trace.setSpan(parent, trace.wrapSpanContext(span.spanContext()));
        context.with(connected, () => deps.onConnection(ws, connected, req));
      });
    });
  };
}
