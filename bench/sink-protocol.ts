/** IPC between the orchestrator and the OTLP sink. */

/** Per signal path (`traces`, `metrics`, `logs`): export requests received and body bytes. */
export type SinkCounts = Record<string, { requests: number; bytes: number }>;

export type SinkRequest = { readonly op: 'counts'; readonly id: number } | { readonly op: 'reset'; readonly id: number };

export type SinkReply =
  | { readonly op: 'listening'; readonly port: number }
  | { readonly op: 'counts'; readonly id: number; readonly counts: SinkCounts }
  | { readonly op: 'reset'; readonly id: number };
