/**
 * Variant A: the floor of this stack. A bare `ws` server speaking the service's echo protocol
 * with the same parsing, validation and replies as src/protocol/messages.ts and the ping/echo handlers
 * (the harness checks the replies are identical), and nothing else: no telemetry, no logs, no
 * routes but a constant /healthz. Configured like the service's WebSocketServer so the two differ
 * only in what the service adds.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

type Id = string | number | null;

function error(id: Id, code: string, message: string): string {
  return JSON.stringify({ type: 'error', id, code, message });
}

function reply(data: RawData, isBinary: boolean): string {
  if (isBinary) return error(null, 'unsupported_data', 'binary frames are not supported; send JSON text');
  let value: unknown;
  try {
    value = JSON.parse((data as Buffer).toString('utf8'));
  } catch {
    return error(null, 'bad_request', 'message is not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return error(null, 'bad_request', 'message must be a JSON object');
  }
  const fields = value as Record<string, unknown>;
  const id = typeof fields.id === 'string' || typeof fields.id === 'number' ? fields.id : null;
  if (fields.id !== undefined && fields.id !== null && id === null) {
    return error(null, 'bad_request', 'id must be a string or a number');
  }
  if (typeof fields.type !== 'string' || fields.type === '') {
    return error(id, 'bad_request', 'type must be a non-empty string');
  }
  switch (fields.type) {
    case 'ping':
      return JSON.stringify({ type: 'pong', id });
    case 'echo':
      if (!('data' in fields)) return error(id, 'bad_request', 'echo needs a data field');
      return JSON.stringify({ type: 'echo', id, data: fields.data });
    default:
      return error(id, 'unknown_type', 'unknown message type; known: ping, echo');
  }
}

const wss = new WebSocketServer({ noServer: true, clientTracking: false, maxPayload: 1_048_576, perMessageDeflate: false });
wss.on('connection', (ws: WebSocket) => {
  ws.on('message', (data, isBinary) => ws.send(reply(data, isBinary)));
  ws.on('error', () => undefined);
});

// /healthz is the one route: the abuse scenario times a liveness probe on every server, and this
// is the cheapest answer one can give, the floor for the service's.
const server = createServer((req, res) => {
  if (req.url === '/healthz') res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"ok"}');
  else res.writeHead(404).end();
});
// A module-level listener: a closure here would share the upgrade handler's scope and keep
// each request alive for its connection's life (the service avoids that too).
function destroySocket(this: Duplex): void {
  this.destroy();
}

server.on('upgrade', (req, socket, head) => {
  socket.on('error', destroySocket);
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ message: 'bare-server listening', port })}\n`);
});
// A normal exit on SIGTERM lets --cpu-prof write its profile.
process.on('SIGTERM', () => process.exit(0));
