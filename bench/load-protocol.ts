/**
 * What the orchestrator asks of the load generator over the IPC channel, and what it answers.
 * Jobs with a measurement window announce its start and end (`mark`), so the orchestrator reads
 * the server's CPU accounting at the same instants the generator starts and stops counting.
 */
import type { Percentiles } from './stats.js';

export interface SaturateJob {
  readonly op: 'saturate';
  readonly url: string;
  readonly connections: number;
  /** Messages each connection keeps outstanding: a reply triggers the next send. */
  readonly inflight: number;
  readonly payloadBytes: number;
  readonly warmupMs: number;
  readonly measureMs: number;
}

export interface RateJob {
  readonly op: 'rate';
  readonly url: string;
  readonly connections: number;
  /** Messages per second, sent on a fixed schedule whatever the replies do (open loop). */
  readonly rate: number;
  readonly payloadBytes: number;
  readonly warmupMs: number;
  readonly measureMs: number;
}

export interface ChurnJob {
  readonly op: 'churn';
  readonly url: string;
  /** Connections opened and closed at once, each one after the other. */
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly measureMs: number;
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

export type Job = SaturateJob | RateJob | ChurnJob | OpenIdleJob | CloseIdleJob | ConformanceJob;
export type JobRequest = Job & { readonly id: number };

export interface MessageResult {
  /** Replies received inside the measurement window. */
  readonly messages: number;
  readonly seconds: number;
  /** Send to reply, microseconds; in open loop, from the scheduled tick that sent the message. */
  readonly latencyUs: Percentiles;
  /** The generator's own CPU over the window, seconds: shows whether it could have been the bottleneck. */
  readonly generatorCpuSeconds: number;
  /** Open loop only: messages sent inside the window (equals rate × seconds unless the generator lagged). */
  readonly sent?: number;
  /** Open loop only: so many requests went unanswered that sending stopped; the latencies say how bad. */
  readonly overloaded?: boolean;
}

export interface ChurnResult {
  readonly handshakes: number;
  readonly seconds: number;
  readonly failures: number;
  /** Connect to open, microseconds. */
  readonly handshakeUs: Percentiles;
  readonly generatorCpuSeconds: number;
}

export interface OpenIdleResult {
  readonly open: number;
  readonly seconds: number;
}

export interface ConformanceResult {
  readonly replies: readonly string[];
}

export type GeneratorEvent =
  | { readonly kind: 'ready' }
  | { readonly kind: 'mark'; readonly id: number; readonly phase: 'start' | 'end' }
  | { readonly kind: 'result'; readonly id: number; readonly result: unknown }
  | { readonly kind: 'error'; readonly id: number; readonly message: string };
