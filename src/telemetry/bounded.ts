/**
 * Client-controlled strings (request paths, User-Agent, Origin) are copied into log lines and
 * span attributes. Unbounded, one request can make every line and span it touches as large as
 * the HTTP parser allows; bounded, a long value still shows its start and how much was cut.
 */

/** The most characters of one client-controlled string kept in a log field or span attribute. */
export const CLIENT_STRING_MAX_CHARS = 256;

/**
 * `value` when it fits, else its first CLIENT_STRING_MAX_CHARS characters marked with how many
 * were cut. The mark is part of the value, so a reader sees it wherever the value is shown.
 */
export function bounded(value: string): string {
  if (value.length <= CLIENT_STRING_MAX_CHARS) return value;
  let end = CLIENT_STRING_MAX_CHARS;
  // Cutting between the halves of a surrogate pair would leave an unpaired half behind.
  const last = value.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${value.slice(0, end)}…[truncated ${value.length - end} chars]`;
}

/** `bounded` for optional values: headers may be absent. */
export function boundedOptional(value: string | undefined): string | undefined {
  return value === undefined ? undefined : bounded(value);
}
