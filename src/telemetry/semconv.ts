/**
 * The service's own attribute names and bounded attribute values, shared by spans and metrics:
 * `ws.*` and the few names the OTel semantic conventions do not cover. Names the conventions
 * define as stable (http.*, url.*, client.address, error.type, ...) are imported from
 * @opentelemetry/semantic-conventions where they are used, never redefined here. Metric
 * attribute values must come from the fixed sets below, never from user input or a connection id.
 */

export const ATTR_WS_MESSAGE_TYPE = 'ws.message.type';
export const ATTR_WS_MESSAGE_SIZE = 'ws.message.size';
export const ATTR_WS_OUTCOME = 'ws.outcome';
export const ATTR_WS_ERROR_CODE = 'ws.error.code';
export const ATTR_WS_CLOSE_CODE = 'ws.close.code';
export const ATTR_WS_CLOSE_REASON = 'ws.close.reason';
export const ATTR_WS_CLOSE_INITIATOR = 'ws.close.initiator';
export const ATTR_WS_CONNECTION_DURATION = 'ws.connection.duration';
export const ATTR_ERROR_SOURCE = 'error.source';
/** Why a request was refused or a connection closed by the server; values from the sets below. */
export const ATTR_REASON = 'reason';

/** How a message ended, for the processing-duration histogram. */
export type Outcome = 'ok' | 'client_error' | 'internal_error';

/** Where an unhandled error surfaced; every value is pre-registered at 0 in error_count. */
export const ERROR_SOURCES = [
  'handler',
  'socket',
  'server',
  'uncaught_exception',
  'unhandled_rejection',
  'accept',
] as const;
export type ErrorSource = (typeof ERROR_SOURCES)[number];

/** Why an upgrade was refused before the handshake; each pre-registered at 0 in rejected_upgrades. */
export const UPGRADE_REJECT_REASONS = [
  'not_found',
  'shutting_down',
  'max_connections',
  'unauthorized',
  'forbidden_origin',
  'bad_handshake',
  'max_connections_per_client',
  'unsupported_subprotocol',
] as const;
export type UpgradeRejectReason = (typeof UPGRADE_REJECT_REASONS)[number];

/** Why a plain HTTP request was refused; each pre-registered at 0 in rejected_http_requests. */
export const HTTP_REJECT_REASONS = [
  'body_not_allowed',
  'request_timeout',
  'headers_too_large',
  'malformed_request',
  'pipeline_limit',
  'max_http_connections',
] as const;
export type HttpRejectReason = (typeof HTTP_REJECT_REASONS)[number];

/** Why the server closed a connection; each pre-registered at 0 in connections_closed_by_server. */
export const SERVER_CLOSE_REASONS = [
  'rate_limited',
  'slow_reader',
  'memory_pressure',
  'heartbeat_timeout',
  'message_too_big',
  'invalid_payload',
  'too_many_fragments',
  'protocol_error',
  'shutdown',
  'shutdown_timeout',
] as const;
export type ServerCloseReason = (typeof SERVER_CLOSE_REASONS)[number];

/** Message types that are not a registered handler collapse into these, so the label set stays bounded. */
export const MESSAGE_TYPE_INVALID = 'invalid';
export const MESSAGE_TYPE_UNKNOWN = 'unknown';

/** Close codes (RFC 6455 §7.4.1) folded into a bounded reason label. */
export function closeReason(code: number): string {
  switch (code) {
    case 1000:
      return 'normal';
    case 1001:
      return 'going_away';
    case 1002:
      return 'protocol_error';
    case 1003:
      return 'unsupported_data';
    case 1005:
      return 'no_status';
    case 1006:
      return 'abnormal';
    case 1007:
      return 'invalid_payload';
    case 1008:
      return 'policy_violation';
    case 1009:
      return 'message_too_big';
    case 1011:
      return 'internal_error';
    case 1013:
      return 'try_again_later';
    default:
      return code >= 4000 && code <= 4999 ? 'application' : 'other';
  }
}

// ── Channels ────────────────────────────────────────────────────────────────────────────────
// OTel messaging semantic conventions (v1.40.0, still "development"): copied here rather than
// imported from the package's /incubating entry, whose names may change between releases.
export const ATTR_MESSAGING_SYSTEM = 'messaging.system';
export const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
export const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
export const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
/** The channel's namespace: the low-cardinality part of the destination. */
export const ATTR_MESSAGING_DESTINATION_TEMPLATE = 'messaging.destination.template';
/**
 * Subscribers on this instance one delivery was sent to. Not messaging.batch.message_count:
 * that counts messages in a batch, and a fan-out is one message to many receivers.
 */
export const ATTR_WS_CHANNEL_FANOUT = 'ws.channel.fanout';
/** The offset the broker gave a publication (PRODUCER and CONSUMER spans). */
export const ATTR_WS_CHANNEL_OFFSET = 'ws.channel.offset';
/** On a CONSUMER span that replayed a publication from history to one recovering subscriber. */
export const ATTR_WS_CHANNEL_REPLAYED = 'ws.channel.replayed';
/** On a `subscribe` span that asked to recover: the position asked from, the outcome, the count replayed. */
export const ATTR_WS_RECOVERY_SINCE_EPOCH = 'ws.recovery.since.epoch';
export const ATTR_WS_RECOVERY_SINCE_OFFSET = 'ws.recovery.since.offset';
export const ATTR_WS_RECOVERY_OUTCOME = 'ws.recovery.outcome';
export const ATTR_WS_RECOVERY_REASON = 'ws.recovery.reason';
export const ATTR_WS_RECOVERY_REPLAYED = 'ws.recovery.replayed';
/** The (folded) namespace label of the channel metrics. */
export const ATTR_NAMESPACE = 'namespace';
export const ATTR_OUTCOME = 'outcome';
/** The kind label of channel_broker_errors (channels/broker.ts lists the values). */
export const ATTR_KIND = 'kind';

export const PUBLISH_OUTCOMES = ['ok', 'unavailable'] as const;
/** channel_recoveries_total: `recovered` with reason `none`, or `not_recovered` with why. */
export const RECOVERY_RESULTS = [
  ['recovered', 'none'],
  ['not_recovered', 'epoch_changed'],
  ['not_recovered', 'expired'],
  ['not_recovered', 'unknown_position'],
] as const;
export type RecoveryOutcome = 'recovered' | 'not_recovered';
export type PublishOutcome = (typeof PUBLISH_OUTCOMES)[number];
/**
 * Why a delivery to one subscriber was lost: `not_open`, its socket was already closing;
 * `slow_subscriber`, this delivery passed its unsent-bytes bound and it was closed as a slow reader.
 */
export const DELIVERY_DROP_REASONS = ['not_open', 'slow_subscriber'] as const;
export type DeliveryDropReason = (typeof DELIVERY_DROP_REASONS)[number];
/** Channel requests answered with an error code; each pre-registered at 0 in channel_requests_rejected. */
export const CHANNEL_REJECT_REASONS = ['bad_channel', 'too_many_subscriptions', 'message_too_large', 'unavailable'] as const;
export type ChannelRejectReason = (typeof CHANNEL_REJECT_REASONS)[number];
