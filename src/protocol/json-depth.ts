/**
 * Bounds on a message's shape, checked on the raw bytes before JSON.parse.
 *
 * Depth: V8 parses deep nesting without trouble, but a 10 kB message of brackets then overflows
 * the stack in JSON.stringify (an echo reply) or any recursive walk; refusing it up front keeps
 * every later step safe.
 *
 * Entries: what JSON.parse costs per byte depends on what the bytes are. A long string is
 * copied at memory speed, while an object with thousands of keys is built key by key, many
 * times slower per byte (docs/benchmarks.md), and an echo serialises it again. Bounding the
 * number of members and elements bounds that cost per message, whatever the byte size.
 *
 * One linear pass with no allocation, and usually not even that (see shapeExcess); its cost is
 * bounded by MAX_MESSAGE_BYTES like JSON.parse's.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

/** Which bound a message breaks: nesting deeper than allowed, or more entries than allowed. */
export type ShapeExcess = 'depth' | 'entries';

/**
 * Whether `data`, read as JSON, nests objects and arrays deeper than `maxDepth`, or holds more
 * than `maxEntries` object members and array elements, counted as the `,` and `:` outside
 * strings (a member counts two, an element one). Bytes inside strings are skipped (escapes
 * included). UTF-8 continuation bytes are all ≥ 0x80, so scanning bytes instead of characters
 * cannot mistake them for structure. Malformed input is judged the same way and then left for
 * JSON.parse to refuse.
 */
export function shapeExcess(data: Uint8Array, maxDepth: number, maxEntries: number): ShapeExcess | undefined {
  // Counting each structural byte with the native indexOf (a memchr), strings included, gives
  // upper bounds that settle nearly every message without the byte loop, which is far slower
  // per byte (docs/benchmarks.md has the profile).
  if (countsAtMost(data, OPENERS, maxDepth) && countsAtMost(data, SEPARATORS, maxEntries)) return undefined;
  let depth = 0;
  let entries = 0;
  let inString = false;
  for (let i = 0; i < data.length; i++) {
    const byte = data[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === COMMA || byte === COLON) {
      if (++entries > maxEntries) return 'entries';
    } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      if (++depth > maxDepth) return 'depth';
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
      depth--;
    }
  }
  return undefined;
}

/** True when `data`, read as JSON, nests objects and arrays deeper than `maxDepth`. */
export function nestsDeeperThan(data: Uint8Array, maxDepth: number): boolean {
  return shapeExcess(data, maxDepth, Infinity) === 'depth';
}

const OPENERS: readonly number[] = [OPEN_BRACE, OPEN_BRACKET];
const SEPARATORS: readonly number[] = [COMMA, COLON];

/** True when `data` holds at most `limit` bytes that are one of `bytes` (inside strings or not). */
function countsAtMost(data: Uint8Array, bytes: readonly number[], limit: number): boolean {
  if (limit === Infinity) return true;
  let count = 0;
  for (const byte of bytes) {
    for (let at = data.indexOf(byte); at !== -1; at = data.indexOf(byte, at + 1)) {
      if (++count > limit) return false;
    }
  }
  return true;
}
