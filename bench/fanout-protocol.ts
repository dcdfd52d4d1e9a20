/**
 * What the orchestrator asks a fan-out load process (fanout-load.ts) and what it answers. Each
 * variant has a load process of its own holding that variant's subscribers and publishers, so
 * one process's open-file limit never bounds how many connections the variants hold at once.
 */
import type { Percentiles } from './stats.js';

/**
 * How a load process speaks to its servers: ws-service's JSON text frames (the floors speak the
 * same), or Socket.IO's packets over raw engine.io WebSocket frames.
 */
export type FanoutProtocol = 'ws-service' | 'socket.io';

export interface FanoutOpenJob {
  readonly op: 'fanout-open';
  readonly protocol: FanoutProtocol;
  /** One WebSocket URL per server instance; subscribers and publishers alternate between them. */
  readonly urls: readonly string[];
  readonly subscribers: number;
  readonly publishers: number;
  /** Channel names; publication n goes to channels[n % channels.length]. */
  readonly channels: readonly string[];
  /** Distinct channels each subscriber joins, drawn from a fixed seed: the same plan for every variant. */
  readonly perSubscriber: number;
  /** Handshakes at a time. */
  readonly concurrency: number;
}

export interface FanoutOpenResult {
  readonly open: number;
  readonly seconds: number;
}

/** Subscribes subscribers [from, to) to their channels, `inflight` connections at a time. */
export interface FanoutSubscribeJob {
  readonly op: 'fanout-subscribe';
  readonly from: number;
  readonly to: number;
  readonly inflight: number;
}

export interface FanoutSubscribeResult {
  /** Subscriptions confirmed so far, all subscribers. */
  readonly subscriptions: number;
  readonly seconds: number;
}

/** One slice: `publishes` publications evenly spaced at `rate` per second, then the drain. */
export interface FanoutSliceJob {
  readonly op: 'fanout-slice';
  readonly publishes: number;
  readonly rate: number;
  /** Bytes of each publication's `data` as JSON text. */
  readonly payloadBytes: number;
  /** The longest wait after the last publish for every reply and every delivery. */
  readonly drainMs: number;
  /** Whether the slice's deliveries count in the round's latency (warm-up slices do not). */
  readonly measured: boolean;
}

export interface FanoutSliceResult {
  /** First publish to the end of the drain. */
  readonly seconds: number;
  /** After the last publish until every reply and delivery arrived (or the drain gave up). */
  readonly drainSeconds: number;
  readonly published: number;
  /** Answered `published` (an ack for Socket.IO). */
  readonly accepted: number;
  /** Answered with an error: not published. */
  readonly refused: number;
  /** Not answered by the end of the drain (and nothing delivered for them). */
  readonly unanswered: number;
  /** Accepted publications × their channel's subscribers. */
  readonly expected: number;
  /** Deliveries of this slice's publications. */
  readonly delivered: number;
  /** Expected deliveries that had not arrived by the end of the drain. */
  readonly lost: number;
  /** Deliveries beyond one per subscriber per publication, or of a refused one. */
  readonly duplicated: number;
  /** Deliveries of an earlier slice's publications that arrived after its drain gave up on them. */
  readonly late: number;
  /** How far behind its schedule the latest publish went out, ms: the load process's own lag. */
  readonly maxPublishLagMs: number;
  /** The load process's event-loop delay during the slice, ms. */
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
}

/** Delivery latencies of the measured slices since the last reset (which this job also does). */
export interface FanoutLatencyJob {
  readonly op: 'fanout-latency';
}

export interface FanoutCloseJob {
  readonly op: 'fanout-close';
}

export type FanoutJob = FanoutOpenJob | FanoutSubscribeJob | FanoutSliceJob | FanoutLatencyJob | FanoutCloseJob;

export type FanoutLatencyResult = Percentiles;
