/** Channel names (`namespace:name`) and the bounded namespace label metrics carry. */

export const MAX_CHANNEL_LENGTH = 128;
/** The label of every namespace not listed in CHANNEL_NAMESPACES. */
export const OTHER_NAMESPACE = 'other';

const CHANNEL = /^([A-Za-z0-9_.-]+):[A-Za-z0-9_.:-]+$/;

export interface ChannelName {
  readonly channel: string;
  readonly namespace: string;
}

/** The channel and its namespace, or undefined for anything that is not a valid name. */
export function parseChannel(value: unknown): ChannelName | undefined {
  if (typeof value !== 'string' || value.length > MAX_CHANNEL_LENGTH) return undefined;
  const match = CHANNEL.exec(value);
  return match === null ? undefined : { channel: value, namespace: match[1] };
}

/**
 * Namespaces come from clients, so only the configured ones keep their own label: the series
 * count is then bounded by configuration, not by traffic.
 */
export class NamespaceLabels {
  readonly #known: ReadonlySet<string>;

  constructor(known: readonly string[]) {
    this.#known = new Set(known);
  }

  /** Every label value, for pre-registering series at 0. */
  get values(): readonly string[] {
    return [...this.#known, OTHER_NAMESPACE];
  }

  of(namespace: string): string {
    return this.#known.has(namespace) ? namespace : OTHER_NAMESPACE;
  }
}
