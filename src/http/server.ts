/**
 * The service's Node HTTP servers (the main port, and the metrics port when METRICS_PORT is
 * set): their timeouts and connection bound, listening, and closing each with every connection
 * it still holds (idle keep-alive sockets would otherwise keep close() waiting).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { HttpConfig } from '../config/config.js';

export interface HttpHandlers {
  readonly request: (req: IncomingMessage, res: ServerResponse) => void;
  /** Absent on the metrics port: an upgrade there is then answered as a plain request. */
  readonly upgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  readonly clientError: (err: Error, socket: Duplex) => void;
  /** A connection Node closed as accepted because `maxConnections` were open. */
  readonly drop: () => void;
}

/**
 * `maxConnections` is the bound actually applied (MAX_HTTP_CONNECTIONS fitted to the open-file
 * limit). Node counts every open socket against it, upgraded ones included, until it closes.
 */
export function createHttpServer(timeouts: HttpConfig, maxConnections: number, handlers: HttpHandlers): Server {
  const { headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs } = timeouts;
  const server = createServer(
    {
      headersTimeout: headersTimeoutMs,
      requestTimeout: requestTimeoutMs,
      // Node enforces both timeouts only when it sweeps its connections (every 30 s by
      // default); sweeping at a fraction of the timeout makes the bound what it says.
      connectionsCheckingInterval: Math.min(1000, Math.max(25, Math.floor(headersTimeoutMs / 4))),
    },
    handlers.request,
  );
  server.keepAliveTimeout = keepAliveTimeoutMs;
  server.maxConnections = maxConnections;
  if (handlers.upgrade !== undefined) server.on('upgrade', handlers.upgrade);
  server.on('clientError', handlers.clientError);
  server.on('drop', handlers.drop);
  return server;
}

/** Resolves with the bound address once listening; rejects if the port cannot be bound. */
export async function listen(server: Server, port: number, host: string | undefined): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}

/** Stops listening and drops every connection still open, idle or not; resolves once closed. */
export async function closeHttpServer(server: Server | undefined): Promise<void> {
  if (server === undefined || !server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
