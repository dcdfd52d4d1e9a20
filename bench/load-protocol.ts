/**
 * What the orchestrator asks of the load generator over the IPC channel, and what it answers.
 *
 * The measuring job is `interleave`: the generator alternates the load between the servers in
 * short slices and reads each server's CPU accounting (/proc/<pid>/stat) itself at the edges
 * of each round (load.ts says why).
 */
import type { AttackJob, CalmJob } from './abuse-protocol.js';
import type { FanoutJob } from './fanout-protocol.js';
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
  /** How long each server has the load at a time. */
  readonly sliceMs: number;
  /** Slices per server per round. */
  readonly cycles: number;
  /** Cycles of load before the first round, not measured. */
  readonly warmupCycles: number;
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

export type Job = InterleaveJob | OpenIdleJob | CloseIdleJob | ConformanceJob | CalmJob | AttackJob | FanoutJob;
export type JobRequest = Job & { readonly id: number };

/** One server's share of one round: what happened while it had the load. */
export interface Window {
  /** Time this server had the load in the round: its slices and the wait for their replies. */
  readonly seconds: number;
  /** Replies (saturate, rate) or completed handshakes (churn) in the window. */
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
  /** The round's edges, CLOCK_MONOTONIC, µs (the clock of V8's CPU profiles). */
  readonly startUs: number;
  readonly endUs: number;
}

export interface Round {
  readonly round: number;
  /** Replies or handshakes in the round. */
  readonly count: number;
  /** The server's CPU in the round (the last round also through the settle period). */
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
