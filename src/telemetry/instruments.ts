/**
 * Every metric instrument the service records, created once. Names are the exact Prometheus
 * names of the original specification (`active_connections`, `total_messages`, `error_count`, `shutdown_duration`)
 * plus operator extras named in the same style; the exporter adds `_total` to counters.
 */
import type { Attributes, Counter, Histogram, Meter } from '@opentelemetry/api';
import { BROKER_ERROR_KINDS, type BrokerErrorKind } from '../channels/broker.js';
import {
  ATTR_KIND,
  ATTR_NAMESPACE,
  ATTR_OUTCOME,
  CHANNEL_REJECT_REASONS,
  DELIVERY_DROP_REASONS,
  PUBLISH_OUTCOMES,
  RECOVERY_RESULTS,
  type RecoveryOutcome,
  type ChannelRejectReason,
  type DeliveryDropReason,
  type PublishOutcome,
  ATTR_ERROR_SOURCE,
  ATTR_WS_CLOSE_REASON,
  ATTR_WS_MESSAGE_TYPE,
  ATTR_WS_OUTCOME,
  ATTR_REASON,
  ERROR_SOURCES,
  HTTP_REJECT_REASONS,
  SERVER_CLOSE_REASONS,
  UPGRADE_REJECT_REASONS,
  type ErrorSource,
  type Outcome,
  type HttpRejectReason,
  type ServerCloseReason,
  type UpgradeRejectReason,
} from './semconv.js';

/** Seconds. Shutdown is drain delay (default 5 s) plus closing and flushing, bounded by the timeout. */
export const SHUTDOWN_BUCKETS_S = [0.1, 0.25, 0.5, 1, 2.5, 5, 7.5, 10, 15, 20, 30, 60, 120];
/** Seconds. Handlers answer in microseconds to milliseconds; the tail shows event-loop stalls. */
export const MESSAGE_BUCKETS_S = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];
/** Seconds. Connections live from a failed handshake retry to a day-long session. */
export const CONNECTION_BUCKETS_S = [0.1, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400];

/** Seconds from publish to delivery; the tail shows event-loop stalls and broker backlogs. */
export const DELIVERY_LAG_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds to send one broker message to every local subscriber: microseconds for a few, milliseconds for thousands. */
export const FANOUT_BUCKETS_S = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

/** Channel metrics; `namespace` is always a folded label (channels/names.ts), never a channel. */
export interface ChannelInstruments {
  countPublished(namespace: string, outcome: PublishOutcome): void;
  countDelivered(namespace: string, count: number): void;
  countDropped(namespace: string, reason: DeliveryDropReason, count: number): void;
  recordLag(namespace: string, seconds: number): void;
  recordFanout(namespace: string, seconds: number): void;
  countRejected(reason: ChannelRejectReason): void;
  countBrokerError(kind: BrokerErrorKind): void;
  countRecovery(namespace: string, outcome: RecoveryOutcome, reason: string): void;
  countReplayed(namespace: string, count: number): void;
  countTrimmed(namespace: string, count: number): void;
  countGap(namespace: string, outcome: 'filled' | 'unfilled'): void;
}

export interface Instruments {
  readonly channels: ChannelInstruments;
  readonly totalMessages: Counter;
  readonly errorCount: Counter<{ [ATTR_ERROR_SOURCE]: ErrorSource }>;
  readonly shutdownDuration: Histogram;
  /**
   * False when nothing reads durations (the SDK disabled: a no-op meter), so the message path
   * can skip reading the clock for them.
   */
  readonly recordsDurations: boolean;
  /** One message's processing time, by type (a registered handler's, or unknown/invalid) and outcome. */
  recordMessage(type: string, outcome: Outcome, seconds: number): void;
  /** One closed connection's lifetime, by close reason. */
  recordConnection(reason: string, seconds: number): void;
  /** Messages refused by the per-connection rate limit (answered `rate_limited`). */
  readonly rateLimitedMessages: Counter;
  /** Messages that arrived after the server sent its close frame: not processed, not answered. */
  readonly lateMessages: Counter;
  /** Counts one unhandled error; the single place error_count is incremented. */
  countError(source: ErrorSource): void;
  /** Refusals and server-side closes are handled outcomes, counted here and never in error_count. */
  countRejectedUpgrade(reason: UpgradeRejectReason): void;
  countRejectedHttpRequest(reason: HttpRejectReason): void;
  countServerClose(reason: ServerCloseReason): void;
}

export interface InstrumentSources {
  /** The live socket count, read at collection time so the gauge cannot drift from the truth. */
  readonly liveConnections: () => number;
  /** MAX_CONNECTIONS, exported so `active_connections / max_connections` can be alerted on. */
  readonly maxConnections: number;
  /** Unsent bytes over all sockets, read exactly at collection time (SendBudget.recount). */
  readonly bufferedBytes: () => number;
  /** Whether the meter records anything (false with OTEL_SDK_DISABLED=true). */
  readonly recording: boolean;
  /** Every namespace label value (configured ones and `other`), pre-registered at 0. */
  readonly namespaces: readonly string[];
  /** Live subscriptions and channels, read at collection time like active_connections. */
  readonly liveSubscriptions: () => number;
  readonly liveChannels: () => number;
  /** 1 while the channel broker's connections are up, read at collection time. */
  readonly brokerUp: () => boolean;
}

type ByOutcome = Readonly<Record<Outcome, Attributes>>;

/**
 * Frozen attribute sets, built once per label combination and found by plain property and map
 * lookups: the metric instruments key their aggregation on the set's identity (see
 * src/telemetry/local-instruments.ts), so a message never builds or hashes one.
 */
function messageAttributes(): (type: string, outcome: Outcome) => Attributes {
  const byType = new Map<string, ByOutcome>();
  const build = (type: string): ByOutcome => {
    const of = (outcome: Outcome) => Object.freeze({ [ATTR_WS_MESSAGE_TYPE]: type, [ATTR_WS_OUTCOME]: outcome });
    const sets = Object.freeze({ ok: of('ok'), client_error: of('client_error'), internal_error: of('internal_error') });
    byType.set(type, sets);
    return sets;
  };
  return (type, outcome) => (byType.get(type) ?? build(type))[outcome];
}

/** A counter by `reason` whose every value exists at 0 from the first scrape, for rate() and alerts. */
function reasonCounter<R extends string>(meter: Meter, name: string, description: string, reasons: readonly R[]): (reason: R) => void {
  const counter = meter.createCounter(name, { description });
  const byReason = new Map<R, Attributes>();
  for (const reason of reasons) {
    const attrs = Object.freeze({ [ATTR_REASON]: reason });
    byReason.set(reason, attrs);
    counter.add(0, attrs);
  }
  return (reason) => counter.add(1, byReason.get(reason));
}

function createChannelInstruments(meter: Meter, sources: InstrumentSources): ChannelInstruments {
  meter
    .createObservableUpDownCounter('channel_subscriptions', { description: 'Live channel subscriptions of the connections on this instance' })
    .addCallback((result) => result.observe(sources.liveSubscriptions()));
  meter
    .createObservableUpDownCounter('channels', { description: 'Channels with at least one subscriber on this instance' })
    .addCallback((result) => result.observe(sources.liveChannels()));
  const published = meter.createCounter('channel_messages_published', {
    description: 'Publishes by namespace and outcome (ok: the broker accepted it; unavailable: it did not, the client got an error)',
  });
  const delivered = meter.createCounter('channel_messages_delivered', { description: 'Channel messages sent to subscribers, by namespace' });
  const dropped = meter.createCounter('channel_deliveries_dropped', { description: 'Channel messages not sent to a subscriber, by namespace and reason' });
  const lag = meter.createHistogram('channel_delivery_lag_seconds', {
    description: 'Time from publish (the publishing instance clock) to delivery on this instance, by namespace',
    unit: 's',
    advice: { explicitBucketBoundaries: DELIVERY_LAG_BUCKETS_S },
  });
  const fanout = meter.createHistogram('channel_fanout_duration_seconds', {
    description: 'Time to send one broker message to every local subscriber of its channel, by namespace',
    unit: 's',
    advice: { explicitBucketBoundaries: FANOUT_BUCKETS_S },
  });
  const countRejected = reasonCounter(meter, 'channel_requests_rejected', 'Channel requests answered with an error code, by reason', CHANNEL_REJECT_REASONS);
  meter
    .createObservableGauge('channel_broker_up', { description: 'Whether the channel broker connections are up (1) or not (0); the in-process broker is always up' })
    .addCallback((result) => result.observe(sources.brokerUp() ? 1 : 0));
  const brokerErrors = meter.createCounter('channel_broker_errors', {
    description: 'Channel broker failures by kind: connection_lost (once per outage), subscriber_dropped, publish_failed, subscribe_failed, bad_envelope',
  });
  const recoveries = meter.createCounter('channel_recoveries', {
    description: 'Subscribes that asked to recover from a position, by namespace, outcome and reason (not_recovered: epoch_changed, expired, unknown_position)',
  });
  const replayed = meter.createCounter('channel_publications_replayed', { description: 'Publications replayed from history to recovering subscribers, by namespace' });
  const trimmed = meter.createCounter('channel_history_trimmed', {
    description: 'Publications pushed out of a channel history by CHANNEL_HISTORY_SIZE on this instance\'s publishes, by namespace',
  });
  const gaps = meter.createCounter('channel_delivery_gaps', {
    description: 'Gaps in a channel live stream on this instance (its broker subscription was interrupted), by namespace and outcome: filled from history or unfilled',
  });
  const gaps_ = new Map<string, Attributes>();
  const recoveries_ = new Map<string, Attributes>();
  const byKind = new Map<BrokerErrorKind, Attributes>();
  for (const kind of BROKER_ERROR_KINDS) {
    const attrs = Object.freeze({ [ATTR_KIND]: kind });
    byKind.set(kind, attrs);
    brokerErrors.add(0, attrs);
  }

  const byNamespace = new Map<string, Attributes>();
  const published_ = new Map<string, Attributes>();
  const dropped_ = new Map<string, Attributes>();
  for (const namespace of sources.namespaces) {
    const ns = Object.freeze({ [ATTR_NAMESPACE]: namespace });
    byNamespace.set(namespace, ns);
    delivered.add(0, ns);
    for (const outcome of PUBLISH_OUTCOMES) {
      const attrs = Object.freeze({ [ATTR_NAMESPACE]: namespace, [ATTR_OUTCOME]: outcome });
      published_.set(`${namespace}\0${outcome}`, attrs);
      published.add(0, attrs);
    }
    replayed.add(0, ns);
    for (const outcome of ['filled', 'unfilled']) {
      const attrs = Object.freeze({ [ATTR_NAMESPACE]: namespace, [ATTR_OUTCOME]: outcome });
      gaps_.set(`${namespace}\0${outcome}`, attrs);
      gaps.add(0, attrs);
    }
    trimmed.add(0, ns);
    for (const [outcome, reason] of RECOVERY_RESULTS) {
      const attrs = Object.freeze({ [ATTR_NAMESPACE]: namespace, [ATTR_OUTCOME]: outcome, [ATTR_REASON]: reason });
      recoveries_.set(`${namespace}\0${outcome}\0${reason}`, attrs);
      recoveries.add(0, attrs);
    }
    for (const reason of DELIVERY_DROP_REASONS) {
      const attrs = Object.freeze({ [ATTR_NAMESPACE]: namespace, [ATTR_REASON]: reason });
      dropped_.set(`${namespace}\0${reason}`, attrs);
      dropped.add(0, attrs);
    }
  }
  return {
    countPublished: (namespace, outcome) => published.add(1, published_.get(`${namespace}\0${outcome}`)),
    countDelivered: (namespace, count) => delivered.add(count, byNamespace.get(namespace)),
    countDropped: (namespace, reason, count) => dropped.add(count, dropped_.get(`${namespace}\0${reason}`)),
    recordLag: (namespace, seconds) => lag.record(seconds, byNamespace.get(namespace)),
    recordFanout: (namespace, seconds) => fanout.record(seconds, byNamespace.get(namespace)),
    countRejected,
    countBrokerError: (kind) => brokerErrors.add(1, byKind.get(kind)),
    countRecovery: (namespace, outcome, reason) => recoveries.add(1, recoveries_.get(`${namespace}\0${outcome}\0${reason}`)),
    countReplayed: (namespace, count) => replayed.add(count, byNamespace.get(namespace)),
    countTrimmed: (namespace, count) => trimmed.add(count, byNamespace.get(namespace)),
    countGap: (namespace, outcome) => gaps.add(1, gaps_.get(`${namespace}\0${outcome}`)),
  };
}

export function createInstruments(meter: Meter, sources: InstrumentSources): Instruments {
  meter
    .createObservableUpDownCounter('active_connections', {
      description: 'Number of live WebSocket connections',
    })
    .addCallback((result) => result.observe(sources.liveConnections()));
  meter
    .createObservableGauge('max_connections', {
      description: 'Configured limit on live WebSocket connections (MAX_CONNECTIONS); upgrades beyond it get 503',
    })
    .addCallback((result) => result.observe(sources.maxConnections));
  meter
    .createObservableGauge('ws_buffered_bytes', {
      description: 'Bytes written to WebSocket connections and not yet taken by the kernel, over all connections (bounded by MAX_TOTAL_BUFFERED_BYTES)',
      unit: 'By',
    })
    .addCallback((result) => result.observe(sources.bufferedBytes()));

  const totalMessages = meter.createCounter('total_messages', {
    description: 'Total messages received across all connections',
  });
  const errorCount = meter.createCounter<{ [ATTR_ERROR_SOURCE]: ErrorSource }>('error_count', {
    description: 'Number of unhandled errors/exceptions, by where they surfaced',
  });
  const shutdownDuration = meter.createHistogram('shutdown_duration', {
    description: 'Time taken during graceful shutdown',
    unit: 's',
    advice: { explicitBucketBoundaries: SHUTDOWN_BUCKETS_S },
  });
  const messageDuration = meter.createHistogram('message_processing_duration_seconds', {
    description: 'Time from a message arriving to its reply being handed to the socket, by message type and outcome',
    unit: 's',
    advice: { explicitBucketBoundaries: MESSAGE_BUCKETS_S },
  });
  const connectionDuration = meter.createHistogram('connection_duration_seconds', {
    description: 'Lifetime of closed WebSocket connections, by close reason',
    unit: 's',
    advice: { explicitBucketBoundaries: CONNECTION_BUCKETS_S },
  });

  const rateLimitedMessages = meter.createCounter('rate_limited_messages', {
    description: 'Messages refused by the per-connection rate limit and answered with rate_limited',
  });
  const lateMessages = meter.createCounter('late_messages', {
    description: 'Messages that arrived after the server had sent its close frame; not processed and not answered',
  });
  const countRejectedUpgrade = reasonCounter(
    meter,
    'rejected_upgrades',
    'WebSocket upgrades refused before the handshake, by reason',
    UPGRADE_REJECT_REASONS,
  );
  const countRejectedHttpRequest = reasonCounter(
    meter,
    'rejected_http_requests',
    'HTTP requests and connections refused before reaching a route (body, timeout, oversized or malformed headers, pipelined backlog, connection cap), by reason',
    HTTP_REJECT_REASONS,
  );
  const countServerClose = reasonCounter(
    meter,
    'connections_closed_by_server',
    'WebSocket connections the server closed or terminated, by reason',
    SERVER_CLOSE_REASONS,
  );

  // Series that exist from the first scrape: rate() and `== 0` alerts need a starting point.
  totalMessages.add(0);
  rateLimitedMessages.add(0);
  lateMessages.add(0);
  const bySource = new Map<ErrorSource, { [ATTR_ERROR_SOURCE]: ErrorSource }>();
  for (const source of ERROR_SOURCES) {
    const attrs = Object.freeze({ [ATTR_ERROR_SOURCE]: source });
    bySource.set(source, attrs);
    errorCount.add(0, attrs);
  }

  const attributesOf = messageAttributes();
  const byReason = new Map<string, Attributes>();
  const reasonAttributes = (reason: string): Attributes => {
    let attrs = byReason.get(reason);
    if (attrs === undefined) byReason.set(reason, (attrs = Object.freeze({ [ATTR_WS_CLOSE_REASON]: reason })));
    return attrs;
  };

  return {
    channels: createChannelInstruments(meter, sources),
    totalMessages,
    errorCount,
    shutdownDuration,
    recordsDurations: sources.recording,
    recordMessage(type, outcome, seconds) {
      messageDuration.record(seconds, attributesOf(type, outcome));
    },
    recordConnection(reason, seconds) {
      connectionDuration.record(seconds, reasonAttributes(reason));
    },
    rateLimitedMessages,
    lateMessages,
    countError(source) {
      errorCount.add(1, bySource.get(source));
    },
    countRejectedUpgrade,
    countRejectedHttpRequest,
    countServerClose,
  };
}
