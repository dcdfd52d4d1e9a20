/**
 * The servers of the fan-out scenarios (issue 13): two floors, the peer and the ws-service
 * variants of issue 5. Each variant runs as two instances on the bench's redis-server, under a
 * Redis prefix of its own, so no variant hears another's publications.
 */
import { fileURLToPath } from 'node:url';
import type { FanoutProtocol } from './fanout-protocol.js';
import { VARIANTS } from './variants.js';

export const FANOUT_VARIANT_NAMES = ['F', 'FC', 'S', 'B', 'C', 'D', 'E'] as const;
export type FanoutVariantName = (typeof FANOUT_VARIANT_NAMES)[number];

export interface FanoutVariant {
  readonly name: FanoutVariantName;
  readonly title: string;
  readonly script: string;
  readonly protocol: FanoutProtocol;
  /** The WebSocket endpoint on the instance's port. */
  readonly path: string;
  /** Environment on top of HOST=127.0.0.1 and PORT=0. */
  readonly env: (sink: string, redisUrl: string) => Record<string, string>;
  /** Whether the variant exports to the OTLP sink. */
  readonly exports: boolean;
}

const FLOOR = fileURLToPath(new URL('./fanout-floor.js', import.meta.url));
const SOCKET_IO = fileURLToPath(new URL('./fanout-socketio.js', import.meta.url));

const redis = (name: FanoutVariantName, url: string): Record<string, string> => ({ REDIS_URL: url, REDIS_CHANNEL_PREFIX: `bench-${name}:` });

/** A ws-service variant as issue 5 runs it (the load's limits lifted), on the bench's Redis. */
function service(name: 'B' | 'C' | 'D' | 'E'): FanoutVariant {
  return {
    name,
    title: VARIANTS[name].title,
    script: VARIANTS[name].script,
    protocol: 'ws-service',
    path: '/ws',
    env: (sink, url) => ({ ...VARIANTS[name].env(sink), ...redis(name, url) }),
    exports: VARIANTS[name].exports,
  };
}

export const FANOUT_VARIANTS: Readonly<Record<FanoutVariantName, FanoutVariant>> = {
  F: {
    name: 'F',
    title: 'floor: bare ws + @redis/client, one ws.send of the frame text per subscriber per message',
    script: FLOOR,
    protocol: 'ws-service',
    path: '/ws',
    env: (_sink, url) => ({ ...redis('F', url), FLOOR_WRITES: 'naive' }),
    exports: false,
  },
  FC: {
    name: 'FC',
    title: 'smarter floor: the WebSocket frame built once per message as a Buffer, one write per socket per event-loop turn',
    script: FLOOR,
    protocol: 'ws-service',
    path: '/ws',
    env: (_sink, url) => ({ ...redis('FC', url), FLOOR_WRITES: 'coalesced' }),
    exports: false,
  },
  S: {
    name: 'S',
    title: 'Socket.IO 4.8 + @socket.io/redis-adapter 8.3, rooms as channels, WebSocket transport only',
    script: SOCKET_IO,
    protocol: 'socket.io',
    path: '/socket.io/?EIO=4&transport=websocket',
    env: (_sink, url) => ({ ...redis('S', url) }),
    exports: false,
  },
  B: service('B'),
  C: service('C'),
  D: service('D'),
  E: service('E'),
};
