/**
 * The service's one Node HTTP server: its timeouts, listening, and closing it with every
 * connection it still holds (idle keep-alive sockets would otherwise keep close() waiting).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { HttpConfig } from '../config/config.js';

export interface HttpHandlers {
  readonly request: (req: IncomingMessage, res: ServerResponse) => void;
  readonly upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  readonly clientError: (err: Error, socket: Duplex) => void;
}

export function createHttpServer(timeouts: HttpConfig, handlers: HttpHandlers): Server {
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
  server.on('upgrade', handlers.upgrade);
  server.on('clientError', handlers.clientError);
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
