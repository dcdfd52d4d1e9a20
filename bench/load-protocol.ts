/**
 * What the orchestrator asks of the load generator over the IPC channel, and what it answers.
 *
 * The measuring job is `interleave`: the generator takes every server in turn, round after
 * round, and reads each server's CPU accounting (/proc/<pid>/stat) itself, at the instants its
 * windows open and close. A round of a server is accounted from the start of its window to the
 * start of its next one (after the last round, to the end of a settle period): every message it
 * answered and every CPU-second it spent, deferred work such as batched exports included, lands
 * in exactly one round.
 *
 * With `pairWith`, each other server is loaded at the same time as that one (both pinned to the
 * same core): the two are measured in the same window, so they meet the same machine, and a
 * round is that window alone.
 */
import type { Percentiles } from './stats.js';

export interface Target {
  readonly name: string;
  readonly url: string;
  readonly pid: number;
}

export type InterleaveKind = 'saturate' | 'rate' | 'churn';

export interface InterleaveJob {
  readonly op: 'interleave';
  readonly kind: InterleaveKind;
  readonly targets: readonly Target[];
  readonly rounds: number;
  /** Load before each window opens, so the window sees a server already at it. */
  readonly warmupMs: number;
  readonly measureMs: number;
  /** After the last round, how long each server's CPU is still counted (its deferred work). */
  readonly settleMs: number;
  /** saturate, rate: connections per server, opened once. */
  readonly connections: number;
  /** saturate: requests each connection keeps outstanding; a reply triggers the next send. */
  readonly inflight: number;
  readonly payloadBytes: number;
  /** rate: messages per second on a fixed schedule, whatever the replies do (open loop). */
  readonly rate: number;
  /** churn: connections opened and closed at once, each one after the other. */
  readonly concurrency: number;
  /** Load every other target at the same time as this one, in turn (see above). */
  readonly pairWith?: string;
}

export interface OpenIdleJob {
  readonly op: 'open-idle';
  readonly url: string;
  readonly count: number;
  readonly concurrency: number;
}

export interface CloseIdleJob {
  readonly op: 'close-idle';
}

export interface ConformanceJob {
  readonly op: 'conformance';
  readonly url: string;
  readonly frames: readonly string[];
}

export type Job = InterleaveJob | OpenIdleJob | CloseIdleJob | ConformanceJob;
export type JobRequest = Job & { readonly id: number };

/** One server's window of one round: what happened while it was measured. */
export interface Window {
  readonly seconds: number;
  /** Replies (saturate, rate) or completed handshakes (churn) inside the window. */
  readonly count: number;
  readonly serverCpuSeconds: number;
  readonly generatorCpuSeconds: number;
  /** CPU the rest of the machine used meanwhile: noise from other processes on a shared machine. */
  readonly otherCpuSeconds: number;
  /** Send to reply (saturate, rate) or connect to open (churn), microseconds. */
  readonly latencyUs: Percentiles;
  /** rate: requests sent in the window. */
  readonly sent: number;
  /** rate: sending paused because too many requests were unanswered. */
  readonly overloaded: boolean;
  /** churn: connections that failed. */
  readonly failures: number;
  /** CLOCK_MONOTONIC, µs (the clock of V8's CPU profiles). */
  readonly startUs: number;
  readonly endUs: number;
}

export interface Round {
  readonly round: number;
  /** With pairWith: the server loaded at the same time. */
  readonly partner?: string;
  /** Replies or handshakes from this round's window start to the next's. */
  readonly count: number;
  /** The server's CPU over the same interval. */
  readonly cpuSeconds: number;
  readonly window: Window;
}

/** Rounds by target name. */
export type InterleaveResult = Record<string, Round[]>;

export interface OpenIdleResult {
  readonly open: number;
  readonly seconds: number;
}

export interface ConformanceResult {
  readonly replies: readonly string[];
}

export type GeneratorEvent =
  | { readonly kind: 'ready' }
  | { readonly kind: 'progress'; readonly id: number; readonly text: string }
  | { readonly kind: 'result'; readonly id: number; readonly result: unknown }
  | { readonly kind: 'error'; readonly id: number; readonly message: string };
