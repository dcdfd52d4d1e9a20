/** IPC between the orchestrator and the OTLP sink. */

/** Per variant and signal (`D/traces`, `D/metrics`, `D/logs`): export requests, body bytes, items (spans, log records, metrics). */
export type SinkCounts = Record<string, { requests: number; bytes: number; items: number }>;

export type SinkRequest = { readonly op: 'counts'; readonly id: number } | { readonly op: 'reset'; readonly id: number };

export type SinkReply =
  | { readonly op: 'listening'; readonly port: number }
  | { readonly op: 'counts'; readonly id: number; readonly counts: SinkCounts }
  | { readonly op: 'reset'; readonly id: number };
