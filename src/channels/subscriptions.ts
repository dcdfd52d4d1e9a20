/**
 * This process's subscriptions: channel → local subscribers, subscriber → its channels. The
 * broker is subscribed to a channel only while it has a local subscriber, and one broker
 * delivery fans out here to every local subscriber under one CONSUMER span.
 */
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { ClientError } from '../protocol/messages.js';
import type { ChannelInstruments } from '../telemetry/instruments.js';
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_DESTINATION_TEMPLATE,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  ATTR_WS_CHANNEL_FANOUT,
} from '../telemetry/semconv.js';
import type { ServiceTracer } from '../telemetry/tracer.js';
import { remoteParent } from '../ws/trace-parent.js';
import type { Broker, BrokerListener, Envelope } from './broker.js';
import type { ChannelName, NamespaceLabels } from './names.js';

/** What a subscriber must offer: Connection's accounted send and whether its socket is open. */
export interface Subscriber {
  readonly isOpen: boolean;
  send(payload: string): void;
}

interface Channel {
  readonly name: string;
  readonly namespace: string;
  /** The folded metric label. */
  readonly label: string;
  readonly members: Set<Subscriber>;
  /** The pushed frame up to its data: built once per channel, so a delivery only concatenates. */
  readonly framePrefix: string;
  readonly listener: BrokerListener;
  /** The broker's subscription: every member that joins waits on it, so none is told
   * `subscribed` for a channel the broker refused. */
  ready: Promise<void>;
}

export interface SubscriptionsDeps {
  readonly broker: Broker;
  readonly tracer: ServiceTracer;
  readonly instruments: ChannelInstruments;
  readonly logger: Logger;
  readonly labels: NamespaceLabels;
  readonly maxPerConnection: number;
  /** MAX_PUBLISH_BYTES: the most a publish's `data` may take as JSON text. */
  readonly maxPublishBytes: number;
}

export class Subscriptions {
  readonly #channels = new Map<string, Channel>();
  readonly #bySubscriber = new Map<Subscriber, Set<string>>();
  #count = 0;

  constructor(private readonly deps: SubscriptionsDeps) {}

  get subscriptionCount(): number {
    return this.#count;
  }

  get channelCount(): number {
    return this.#channels.size;
  }

  /**
   * Registered before the broker answers, so a second subscribe (from this or another
   * connection) sees it at once and never subscribes the broker twice.
   */
  async subscribe(subscriber: Subscriber, name: ChannelName): Promise<void> {
    let mine = this.#bySubscriber.get(subscriber);
    if (mine?.has(name.channel)) return;
    if ((mine?.size ?? 0) >= this.deps.maxPerConnection) {
      this.deps.instruments.countRejected('too_many_subscriptions');
      throw new ClientError('too_many_subscriptions', `at most ${this.deps.maxPerConnection} subscriptions per connection`);
    }
    if (mine === undefined) this.#bySubscriber.set(subscriber, (mine = new Set()));
    mine.add(name.channel);
    this.#count++;
    let channel = this.#channels.get(name.channel);
    if (channel === undefined) {
      channel = this.#open(name);
      channel.ready = this.deps.broker.subscribe(channel.name, channel.listener);
    }
    channel.members.add(subscriber);
    try {
      await channel.ready;
    } catch (err) {
      this.#leave(subscriber, channel.name);
      this.deps.instruments.countRejected('unavailable');
      this.deps.logger.warn({ err, namespace: channel.label }, 'broker subscribe failed');
      throw new ClientError('unavailable', 'the channel broker is unavailable; try again');
    }
  }

  unsubscribe(subscriber: Subscriber, channel: string): void {
    this.#leave(subscriber, channel);
  }

  /** Every close path ends here (service.ts's `closed`): no subscriber or broker listener outlives it. */
  dropAll(subscriber: Subscriber): void {
    const mine = this.#bySubscriber.get(subscriber);
    if (mine === undefined) return;
    for (const channel of [...mine]) this.#leave(subscriber, channel);
  }

  /**
   * Publishes under a PRODUCER span, a child of the publish message's span (the active context),
   * whose context travels in the envelope. Resolves once the broker has accepted it. The data is
   * serialised here once; every instance splices that text into its frame unparsed.
   */
  async publish(name: ChannelName, data: unknown): Promise<void> {
    const json = JSON.stringify(data);
    // A UTF-16 unit takes at most 3 bytes in UTF-8: short text is not measured byte by byte.
    if (json.length * 3 > this.deps.maxPublishBytes && Buffer.byteLength(json) > this.deps.maxPublishBytes) {
      this.deps.instruments.countRejected('message_too_large');
      throw new ClientError('message_too_large', `publish data takes at most ${this.deps.maxPublishBytes} bytes as JSON`);
    }
    const label = this.deps.labels.of(name.namespace);
    const parent = context.active();
    const span = this.deps.tracer.startSpan(
      `send ${name.namespace}`,
      { kind: SpanKind.PRODUCER, attributes: this.#attributes('send', 'publish', name) },
      parent,
    );
    const carrier: { traceparent?: string; tracestate?: string } = {};
    propagation.inject(trace.setSpan(parent, span), carrier);
    const envelope: Envelope = { json, traceparent: carrier.traceparent, tracestate: carrier.tracestate, publishedAt: Date.now() };
    try {
      // The engine's own spans (a Redis PUBLISH) are children of the PRODUCER span.
      await context.with(trace.setSpan(parent, span), () => this.deps.broker.publish(name.channel, envelope));
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      span.end();
      this.deps.instruments.countPublished(label, 'unavailable');
      this.deps.instruments.countRejected('unavailable');
      throw new ClientError('unavailable', 'the channel broker did not accept the message; it was not published');
    }
    span.end();
    this.deps.instruments.countPublished(label, 'ok');
  }

  #attributes(type: string, operation: string, name: ChannelName): Record<string, string> {
    return {
      [ATTR_MESSAGING_SYSTEM]: this.deps.broker.system,
      [ATTR_MESSAGING_OPERATION_TYPE]: type,
      [ATTR_MESSAGING_OPERATION_NAME]: operation,
      [ATTR_MESSAGING_DESTINATION_NAME]: name.channel,
      [ATTR_MESSAGING_DESTINATION_TEMPLATE]: name.namespace,
    };
  }

  #open(name: ChannelName): Channel {
    const channel: Channel = {
      name: name.channel,
      namespace: name.namespace,
      label: this.deps.labels.of(name.namespace),
      members: new Set(),
      framePrefix: `{"type":"message","channel":${JSON.stringify(name.channel)},"data":`,
      listener: (envelope) => this.#deliver(channel, envelope),
      ready: Promise.resolve(),
    };
    this.#channels.set(name.channel, channel);
    return channel;
  }

  #leave(subscriber: Subscriber, name: string): void {
    const mine = this.#bySubscriber.get(subscriber);
    if (mine === undefined || !mine.delete(name)) return;
    this.#count--;
    if (mine.size === 0) this.#bySubscriber.delete(subscriber);
    const channel = this.#channels.get(name);
    if (channel === undefined) return;
    channel.members.delete(subscriber);
    if (channel.members.size > 0) return;
    this.#channels.delete(name);
    this.deps.broker.unsubscribe(name, channel.listener).catch((err: unknown) => {
      this.deps.logger.warn({ err, namespace: channel.label }, 'broker unsubscribe failed');
    });
  }

  /**
   * One CONSUMER span per message on this instance, however many subscribers: its parent is the
   * PRODUCER's context from the envelope (a parent, not a link, because each delivery has exactly
   * one creation context), and the pushed frame names it so a client can continue the trace.
   */
  #deliver(channel: Channel, envelope: Envelope): void {
    const started = performance.now();
    const parent: Context = remoteParent(envelope) ?? ROOT_CONTEXT;
    const span = this.deps.tracer.startSpan(
      `process ${channel.namespace}`,
      { kind: SpanKind.CONSUMER, attributes: this.#attributes('process', 'process', { channel: channel.name, namespace: channel.namespace }) },
      parent,
    );
    const active = trace.setSpan(parent, span);
    const carrier: { traceparent?: string } = {};
    propagation.inject(active, carrier);
    const payload =
      carrier.traceparent === undefined
        ? `${channel.framePrefix}${envelope.json}}`
        : `${channel.framePrefix}${envelope.json},"traceparent":"${carrier.traceparent}"}`;
    let delivered = 0;
    let closing = 0;
    let slow = 0;
    context.with(active, () => {
      for (const member of channel.members) {
        if (!member.isOpen) {
          closing++;
          continue;
        }
        member.send(payload);
        // This send passed the subscriber's unsent-bytes bound: it is being closed as a slow
        // reader and will not read this message. The others are not held back by it.
        if (member.isOpen) delivered++;
        else slow++;
      }
      // Inside the CONSUMER span: its request_id is the publisher's trace id, on every instance.
      this.deps.logger.debug(
        { namespace: channel.label, fanout: delivered, dropped_closing: closing, dropped_slow: slow, lag_ms: Date.now() - envelope.publishedAt },
        'channel message delivered',
      );
    });
    span.setAttribute(ATTR_WS_CHANNEL_FANOUT, delivered);
    span.end();
    const { instruments } = this.deps;
    instruments.countDelivered(channel.label, delivered);
    if (closing > 0) instruments.countDropped(channel.label, 'not_open', closing);
    if (slow > 0) instruments.countDropped(channel.label, 'slow_subscriber', slow);
    instruments.recordLag(channel.label, Math.max(0, Date.now() - envelope.publishedAt) / 1000);
    instruments.recordFanout(channel.label, (performance.now() - started) / 1000);
  }
}
