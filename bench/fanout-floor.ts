/**
 * Variants F and FC of the fan-out scenarios: the floor. A bare `ws` server and the Redis client
 * the service uses (@redis/client), doing only subscribe, publish and fan-out in ws-service's
 * frames (`subscribed`, `published`, `message`), so the same load drives it. No telemetry, no
 * limits, no history, no logs.
 *
 * FLOOR_WRITES=naive (F): one `ws.send` of the frame text per subscriber per message, as most
 * code does it. FLOOR_WRITES=coalesced (FC): the WebSocket frame (header and payload) is built
 * once per message as a Buffer straight from Redis's bytes, and each socket gets one write per
 * event-loop turn however many messages it has in it.
 */
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createClient } from '@redis/client';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

const COALESCED = process.env.FLOOR_WRITES === 'coalesced';
const PREFIX = process.env.REDIS_CHANNEL_PREFIX ?? 'fanout-floor:';
const CHANNEL = /^[A-Za-z0-9_.-]+:[A-Za-z0-9_.:-]+$/;

interface Client {
  readonly ws: WebSocket;
  /** The TCP socket under `ws`, written to directly by FC. */
  readonly socket: Socket;
  readonly channels: Set<string>;
  /** FC: frames waiting for this turn's write. */
  pending: Buffer[] | undefined;
}

interface Channel {
  readonly members: Set<Client>;
  readonly ready: Promise<void>;
  /** `{"type":"message","channel":"…","data":` as bytes, for FC's frames. */
  readonly prefix: Buffer;
}

const commands = createClient({ url: process.env.REDIS_URL });
const subscriber = commands.duplicate();
commands.on('error', () => undefined);
subscriber.on('error', () => undefined);
await Promise.all([commands.connect(), subscriber.connect()]);

const channels = new Map<string, Channel>();

function prefixOf(channel: string): string {
  return `{"type":"message","channel":${JSON.stringify(channel)},"data":`;
}

function naiveListener(channel: string): (message: string) => void {
  const prefix = prefixOf(channel);
  return (message) => {
    const members = channels.get(channel)?.members;
    if (members === undefined) return;
    const frame = `${prefix}${message}}`;
    for (const client of members) client.ws.send(frame);
  };
}

/**
 * A server's frames are not masked, so the bytes on the wire are the same for every subscriber:
 * an unfragmented text frame, header and payload in one Buffer.
 */
function textFrame(prefix: Buffer, data: Buffer): Buffer {
  const length = prefix.length + data.length + 1;
  const head = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + length);
  frame[0] = 0x81;
  if (length < 126) frame[1] = length;
  else if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(0, 2);
    frame.writeUInt32BE(length, 6);
  }
  prefix.copy(frame, head);
  data.copy(frame, head + prefix.length);
  frame[head + length - 1] = 0x7d;
  return frame;
}

const dirty: Client[] = [];
let flushScheduled = false;

/** One write per socket per turn: several frames go out corked, as one writev. */
function flush(): void {
  flushScheduled = false;
  for (const client of dirty) {
    const frames = client.pending!;
    client.pending = undefined;
    const { socket } = client;
    if (!socket.writable) continue;
    if (frames.length === 1) {
      socket.write(frames[0]);
      continue;
    }
    socket.cork();
    for (const frame of frames) socket.write(frame);
    socket.uncork();
  }
  dirty.length = 0;
}

function coalescedListener(channel: string): (message: Buffer) => void {
  return (message) => {
    const entry = channels.get(channel);
    if (entry === undefined) return;
    const frame = textFrame(entry.prefix, message);
    for (const client of entry.members) {
      if (client.pending === undefined) {
        client.pending = [frame];
        dirty.push(client);
      } else client.pending.push(frame);
    }
    if (!flushScheduled && dirty.length > 0) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };
}

function join(client: Client, channel: string): Promise<void> {
  let entry = channels.get(channel);
  if (entry === undefined) {
    const ready = COALESCED
      ? subscriber.subscribe(PREFIX + channel, coalescedListener(channel), true)
      : subscriber.subscribe(PREFIX + channel, naiveListener(channel));
    entry = { members: new Set(), ready, prefix: Buffer.from(prefixOf(channel)) };
    channels.set(channel, entry);
  }
  entry.members.add(client);
  client.channels.add(channel);
  return entry.ready;
}

function leave(client: Client, channel: string): void {
  client.channels.delete(channel);
  const entry = channels.get(channel);
  if (entry === undefined || !entry.members.delete(client) || entry.members.size > 0) return;
  channels.delete(channel);
  subscriber.unsubscribe(PREFIX + channel).catch(() => undefined);
}

type Id = string | number | null;

const error = (id: Id, code: string): string => JSON.stringify({ type: 'error', id, code, message: code });

async function handle(client: Client, data: RawData): Promise<string> {
  let message: { type?: unknown; id?: unknown; channel?: unknown; data?: unknown };
  try {
    message = JSON.parse((data as Buffer).toString('utf8')) as typeof message;
  } catch {
    return error(null, 'bad_request');
  }
  if (message === null || typeof message !== 'object') return error(null, 'bad_request');
  const id = typeof message.id === 'string' || typeof message.id === 'number' ? message.id : null;
  const channel = message.channel;
  if (typeof channel !== 'string' || channel.length > 128 || !CHANNEL.test(channel)) return error(id, 'bad_channel');
  switch (message.type) {
    case 'subscribe':
      try {
        await join(client, channel);
      } catch {
        leave(client, channel);
        return error(id, 'unavailable');
      }
      return JSON.stringify({ type: 'subscribed', id, channel });
    case 'unsubscribe':
      leave(client, channel);
      return JSON.stringify({ type: 'unsubscribed', id, channel });
    case 'publish':
      if (!('data' in message)) return error(id, 'bad_request');
      try {
        await commands.publish(PREFIX + channel, JSON.stringify(message.data));
      } catch {
        return error(id, 'unavailable');
      }
      return JSON.stringify({ type: 'published', id, channel });
    default:
      return error(id, 'unknown_type');
  }
}

const wss = new WebSocketServer({ noServer: true, clientTracking: false, maxPayload: 1_048_576, perMessageDeflate: false });
const server = createServer((_req, res) => res.writeHead(404).end());
function destroySocket(this: Duplex): void {
  this.destroy();
}
server.on('upgrade', (req, socket, head) => {
  socket.on('error', destroySocket);
  wss.handleUpgrade(req, socket, head, (ws) => {
    const client: Client = { ws, socket: socket as Socket, channels: new Set(), pending: undefined };
    ws.on('message', (data) => {
      void handle(client, data).then((reply) => {
        if (ws.readyState === ws.OPEN) ws.send(reply);
      });
    });
    ws.on('error', () => undefined);
    ws.on('close', () => {
      for (const channel of [...client.channels]) leave(client, channel);
    });
  });
});
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ message: `fanout-floor (${COALESCED ? 'coalesced' : 'naive'}) listening`, port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
