/**
 * Variant S of the fan-out scenarios: the peer. Socket.IO with @socket.io/redis-adapter, over
 * the same Redis client the service uses; rooms are the channels. WebSocket transport only (the
 * load speaks engine.io's WebSocket frames directly), no compression, nothing added.
 *
 *   emit('subscribe', channel, ack)      joins the room, acks
 *   emit('publish', channel, data, ack)  io.to(channel).emit('message', { channel, data }), acks
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from '@redis/client';
import { createAdapter } from '@socket.io/redis-adapter';
import { Server } from 'socket.io';

const pub = createClient({ url: process.env.REDIS_URL });
const sub = pub.duplicate();
pub.on('error', () => undefined);
sub.on('error', () => undefined);
await Promise.all([pub.connect(), sub.connect()]);

const http = createServer((_req, res) => res.writeHead(404).end());
const io = new Server(http, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
  adapter: createAdapter(pub, sub, { key: process.env.REDIS_CHANNEL_PREFIX ?? 'socket.io' }),
});

type Ack = (...args: unknown[]) => void;

io.on('connection', (socket) => {
  socket.on('subscribe', (channel: unknown, ack?: Ack) => {
    if (typeof channel === 'string') void socket.join(channel);
    if (typeof ack === 'function') ack();
  });
  socket.on('publish', (channel: unknown, data: unknown, ack?: Ack) => {
    if (typeof channel === 'string') io.to(channel).emit('message', { channel, data });
    if (typeof ack === 'function') ack();
  });
});

http.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { port } = http.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ message: 'fanout-socketio listening', port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
