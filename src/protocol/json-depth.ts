/**
 * A nesting-depth bound checked on the raw bytes before JSON.parse. V8 parses deep nesting
 * without trouble, but a 10 kB message of brackets then overflows the stack in JSON.stringify
 * (an echo reply) or any recursive walk; refusing it up front keeps every later step safe. One
 * linear pass with no allocation; its cost is bounded by MAX_MESSAGE_BYTES like JSON.parse's.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * True when `data`, read as JSON, nests objects and arrays deeper than `maxDepth`. Bytes inside
 * strings are skipped (escapes included). UTF-8 continuation bytes are all ≥ 0x80, so scanning
 * bytes instead of characters cannot mistake them for brackets or quotes. Malformed input is
 * judged the same way and then left for JSON.parse to refuse.
 */
export function nestsDeeperThan(data: Uint8Array, maxDepth: number): boolean {
  // Nesting deeper than maxDepth takes more than maxDepth opening brackets. Counting them with
  // the native indexOf (a memchr) settles nearly every message without the byte loop, which is
  // far slower per byte (docs/benchmarks.md has the profile).
  if (opensAtMost(data, maxDepth)) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < data.length; i++) {
    const byte = data[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      if (++depth > maxDepth) return true;
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}

/** True when `data` holds at most `limit` bytes that are `{` or `[` (inside strings or not). */
function opensAtMost(data: Uint8Array, limit: number): boolean {
  let count = 0;
  for (const open of [OPEN_BRACE, OPEN_BRACKET]) {
    for (let at = data.indexOf(open); at !== -1; at = data.indexOf(open, at + 1)) {
      if (++count > limit) return false;
    }
  }
  return true;
}
