/**
 * The Redis engine's two scripts. Each runs atomically on Redis, so a publication's offset, its
 * place in the history stream and its pub/sub delivery happen as one step: offsets and delivery
 * order agree on every instance, and a reader of history sees a consistent top.
 *
 * Keys per channel (the `{…}` hash tag keeps both in one cluster slot):
 *   <prefix>{<channel>}:meta     hash: epoch, offset
 *   <prefix>{<channel>}:history  stream of the last CHANNEL_HISTORY_SIZE publications, id 0-<offset>
 * A channel whose meta is gone (flushed, Redis restarted without persistence, expired) starts
 * a new epoch, and its stale history is deleted with it.
 */
import { createHash } from 'node:crypto';

export interface RedisScript {
  readonly source: string;
  readonly sha1: string;
}

function script(source: string): RedisScript {
  return { source, sha1: createHash('sha1').update(source).digest('hex') };
}

const EPOCH = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('DEL', KEYS[2])
end
`;

/**
 * KEYS: meta, history. ARGV: epoch if new, pub/sub channel, body (envelope-codec.ts),
 * history size, history TTL ms, meta TTL ms. Returns { epoch, offset, trimmed }.
 */
export const PUBLISH_SCRIPT = script(`${EPOCH}
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local message = 'v1\\n' .. epoch .. '\\n' .. offset .. '\\n' .. ARGV[3]
local trimmed = 0
local size = tonumber(ARGV[4])
if size > 0 then
  redis.call('XADD', KEYS[2], '0-' .. offset, 'm', message)
  trimmed = redis.call('XTRIM', KEYS[2], 'MAXLEN', size)
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[2], message)
return { epoch, offset, trimmed }
`);

/**
 * KEYS: meta, history. ARGV: epoch if new, the epoch asked from ('' for none), the offset asked
 * from, meta TTL ms, history size. Returns { epoch, top offset, entries after the offset asked from }.
 */
export const RECOVER_SCRIPT = script(`${EPOCH}
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local top = tonumber(redis.call('HGET', KEYS[1], 'offset'))
local since = tonumber(ARGV[3])
local entries = {}
if ARGV[2] == epoch and since < top then
  entries = redis.call('XRANGE', KEYS[2], '0-' .. (since + 1), '+', 'COUNT', ARGV[5])
end
return { epoch, top, entries }
`);
