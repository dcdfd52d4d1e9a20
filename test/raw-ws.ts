/**
 * A WebSocket peer written by hand over node:net, for what a well-behaved client library
 * cannot send: unmasked or malformed frames, truncated frames, silence instead of pongs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

export interface FrameOptions {
  readonly fin?: boolean;
  /** RSV1..3 bits, already shifted (0x40, 0x20, 0x10). */
  readonly rsv?: number;
  readonly mask?: boolean;
  /** Declare this payload length instead of the real one (truncated or oversized frames). */
  readonly declaredLength?: number;
}

/** One client frame; masked unless told otherwise, as RFC 6455 requires of clients. */
export function frame(opcode: number, payload: Buffer | string = Buffer.alloc(0), options: FrameOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const { fin = true, rsv = 0, mask = true } = options;
  const length = options.declaredLength ?? data.length;
  const head: number[] = [(fin ? 0x80 : 0) | rsv | opcode];
  const maskBit = mask ? 0x80 : 0;
  if (length < 126) head.push(maskBit | length);
  else if (length < 65536) head.push(maskBit | 126, length >> 8, length & 0xff);
  else {
    head.push(maskBit | 127, 0, 0, 0, 0);
    head.push((length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), data]);
  const key = randomBytes(4);
  const masked = Buffer.from(data.map((byte, i) => byte ^ key[i % 4]));
  return Buffer.concat([Buffer.from(head), key, masked]);
}

export interface ServerFrame {
  readonly opcode: number;
  readonly payload: Buffer;
}

/** Splits what the server sent (unmasked frames) into frames; a trailing partial frame is ignored. */
export function parseServerFrames(bytes: Buffer): ServerFrame[] {
  const frames: ServerFrame[] = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at] & 0x0f;
    let length = bytes[at + 1] & 0x7f;
    let offset = at + 2;
    if (length === 126) {
      length = bytes.readUInt16BE(offset);
      offset += 2;
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(offset));
      offset += 8;
    }
    if (offset + length > bytes.length) break;
    frames.push({ opcode, payload: bytes.subarray(offset, offset + length) });
    at = offset + length;
  }
  return frames;
}

/** A handshaken raw connection that records every byte the server sends after the 101. */
export class RawPeer {
  #received: Buffer[] = [];
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket, rest: Buffer) {
    if (rest.length > 0) this.#received.push(rest);
    socket.on('data', (chunk: Buffer) => this.#received.push(chunk));
    socket.on('error', () => {});
    this.closed = once(socket, 'close').then(() => undefined);
  }

  /** @param stubborn keep the socket open after the server's FIN (allowHalfOpen), as a peer that ignores the close would */
  static async connect(port: number, options: { headers?: Record<string, string>; stubborn?: boolean } = {}): Promise<RawPeer> {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: options.stubborn === true });
    const headers = options.headers ?? {};
    const path = '/ws';
    await once(socket, 'connect');
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n${extra}\r\n`,
    );
    let head = Buffer.alloc(0);
    while (!head.includes('\r\n\r\n')) {
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      head = Buffer.concat([head, chunk]);
    }
    const end = head.indexOf('\r\n\r\n') + 4;
    assert.match(head.subarray(0, end).toString(), /^HTTP\/1\.1 101 /);
    return new RawPeer(socket, head.subarray(end));
  }

  get bytes(): Buffer {
    return Buffer.concat(this.#received);
  }

  frames(): ServerFrame[] {
    return parseServerFrames(this.bytes);
  }

  /** The status code of the server's close frame, if one has arrived. */
  closeCode(): number | undefined {
    const close = this.frames().find((f) => f.opcode === 0x8);
    return close === undefined || close.payload.length < 2 ? undefined : close.payload.readUInt16BE(0);
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }
}

/** Sends raw bytes on a fresh TCP connection and resolves with everything received until the server closes it. */
export async function rawExchange(port: number, bytes: Buffer | string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(bytes);
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('latin1');
}
