/**
 * The abuse scenario's jobs for a load process: `calm` (the well-behaved client whose experience
 * is measured) and `attack` (one hostile client), run at the same time by two separate load
 * processes, so the attacker's own work does not sit in the calm client's event loop.
 */
import type { Percentiles } from './stats.js';

export const ATTACKS = ['none', 'pipelined_metrics', 'costly_json', 'slow_readers', 'hoarding'] as const;
export type AttackKind = (typeof ATTACKS)[number];

export interface CalmJob {
  readonly op: 'calm';
  readonly wsUrl: string;
  readonly baseUrl: string;
  readonly durationMs: number;
  /** After the window, how long replies still in flight are waited for before they count as unanswered. */
  readonly graceMs: number;
  readonly connections: number;
  /** Pings per second over all the calm connections, on a fixed schedule. */
  readonly rate: number;
  /** A GET /healthz every this many ms, one at a time, each on a fresh TCP connection. */
  readonly healthzEveryMs: number;
  /** A fresh WebSocket handshake (then a clean close) every this many ms. */
  readonly connectEveryMs: number;
}

export interface CalmResult {
  /** The calm client's own CPU over its run, seconds. */
  readonly cpuSeconds: number;
  readonly pings: { readonly sent: number; readonly answered: number; readonly unanswered: number; readonly latencyUs: Percentiles };
  /** Calm connections the server closed or lost during the window. */
  readonly closed: number;
  readonly healthz: { readonly sent: number; readonly ok: number; readonly failed: number; readonly latencyUs: Percentiles };
  readonly connects: {
    readonly tried: number;
    readonly opened: number;
    /** Answered with an HTTP status instead of 101 (503 at MAX_CONNECTIONS). */
    readonly refused: number;
    /** Reset, timed out or otherwise failed without an answer. */
    readonly failed: number;
    readonly latencyUs: Percentiles;
  };
}

export interface AttackJob {
  readonly op: 'attack';
  readonly kind: AttackKind;
  readonly wsUrl: string;
  readonly host: string;
  readonly port: number;
  readonly durationMs: number;
  /** pipelined_metrics: after the window the attacker reads for this long to see what was answered. */
  readonly drainMs: number;
  /** pipelined_metrics: sockets × requests written at once, never read during the window. */
  readonly pipelined: { readonly sockets: number; readonly requests: number };
  /** costly_json: one connection, `rate` echo requests a second of an object with many keys, about `bytes` long. */
  readonly costly: { readonly rate: number; readonly bytes: number };
  /** slow_readers: connections that send echo requests at `rate` per second each and never read. */
  readonly slow: { readonly connections: number; readonly rate: number; readonly payloadBytes: number };
  /** hoarding: idle connections opened `concurrency` at a time and held for the window. */
  readonly hoard: { readonly connections: number; readonly concurrency: number };
}

/** What the attacker saw. Counts that do not apply to an attack stay 0. */
export interface AttackResult {
  readonly kind: AttackKind;
  /** Connections (TCP or WebSocket) the attacker had open at once at most. */
  readonly opened: number;
  /** WebSocket upgrades answered with an HTTP status instead of 101, by status. */
  readonly refused: Readonly<Record<string, number>>;
  /** Connections that failed to open without an answer. */
  readonly failed: number;
  /** Connections the server closed (or reset) during the window. */
  readonly closedByServer: number;
  /** Close codes of those the attacker saw a close frame for (a paused socket sees none). */
  readonly closeCodes: Readonly<Record<string, number>>;
  /** Requests (HTTP requests or WebSocket messages) written. */
  readonly sent: number;
  readonly bytesSent: number;
  /** Answers read, by HTTP status or by reply type/error code. */
  readonly answers: Readonly<Record<string, number>>;
  /** The attacker process's CPU in the window: it shares the load core with the calm client. */
  readonly cpuSeconds: number;
}
