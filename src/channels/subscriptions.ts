/**
 * This process's subscriptions: channel → local subscribers, subscriber → its channels. The
 * broker is subscribed to a channel only while it has a local subscriber, and one broker
 * delivery fans out here to every local subscriber under one CONSUMER span.
 *
 * A subscribe always joins the live stream first, then asks the broker for the channel's
 * position (and, with `since`, the publications after it); live deliveries meanwhile wait in
 * the subscriber's own buffer. Once the `subscribed` reply is sent, the replayed publications
 * go out, then the buffered ones past the position, then the live stream: no gap and no
 * duplicate at the switch.
 */
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type SpanContext } from '@opentelemetry/api';
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
  ATTR_WS_CHANNEL_OFFSET,
  ATTR_WS_CHANNEL_REPLAYED,
  ATTR_WS_RECOVERY_OUTCOME,
  ATTR_WS_RECOVERY_REASON,
  ATTR_WS_RECOVERY_REPLAYED,
  ATTR_WS_RECOVERY_SINCE_EPOCH,
  ATTR_WS_RECOVERY_SINCE_OFFSET,
} from '../telemetry/semconv.js';
import type { ServiceTracer } from '../telemetry/tracer.js';
import { remoteParent } from '../ws/trace-parent.js';
import type { Broker, BrokerListener, Envelope, Position, Publication, RecoveryFailure } from './broker.js';
import type { ChannelName, NamespaceLabels } from './names.js';
import { RecoveryReads } from './recovery-reads.js';

/**
 * What a subscriber must offer: Connection's accounted send and whether its socket is open. A
 * Buffer payload is sent as a text frame: it is the UTF-8 of a frame shared by many subscribers.
 */
export interface Subscriber {
  readonly isOpen: boolean;
  send(payload: string | Buffer): void;
  /** Sends a live delivery; it may leave with the others this subscriber gets in the same turn. */
  deliver(frame: Buffer): void;
  /** Runs `sends` so that what they send leaves together (a replay), not one write each. */
  batch(sends: () => void): void;
}

/** A live delivery held for a recovering subscriber: the publication and the frame the others got. */
interface Held {
  readonly publication: Publication;
  readonly payload: Buffer;
}

/**
 * A member that is not simply live: while its recovery is read, the live deliveries it has yet
 * to be sent (Held[]); after its replay, the position it was given, until the live stream passes
 * it. Live deliveries reach this instance on the broker's subscriber connection and the
 * recovery's answer on another, so a publication the recovery already returned may still arrive
 * live after it: it is skipped here, not sent twice.
 */
type MemberState = Held[] | Position | undefined;

/** What `subscribed` says; `flush` must run once it has been sent. */
export interface Subscribed {
  readonly position: Position;
  /** Only when the subscribe asked to recover from a position. */
  readonly recovered?: boolean;
  readonly replayed?: number;
  readonly flush: () => void;
}

interface Channel {
  readonly name: string;
  readonly namespace: string;
  /** The folded metric label. */
  readonly label: string;
  /** Each subscriber and its state: live (undefined), or recovering (see MemberState). */
  readonly members: Map<Subscriber, MemberState>;
  /** The last publication this instance received live on the channel. */
  last: Position | undefined;
  /** While a gap in the live stream is being filled from history: what arrived live meanwhile. */
  filling: Publication[] | undefined;
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
  readonly #reads: RecoveryReads;
  readonly #bySubscriber = new Map<Subscriber, Set<string>>();
  #count = 0;

  constructor(private readonly deps: SubscriptionsDeps) {
    this.#reads = new RecoveryReads(deps.broker);
  }

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
  async subscribe(subscriber: Subscriber, name: ChannelName, since?: Position): Promise<Subscribed> {
    let mine = this.#bySubscriber.get(subscriber);
    if (mine?.has(name.channel)) {
      // Already live: nothing to recover, nothing to hold.
      const top = await this.#recover(name.channel, undefined, undefined);
      return { position: top.top, flush: () => undefined };
    }
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
    channel.members.set(subscriber, []);
    try {
      await channel.ready;
    } catch (err) {
      this.#leave(subscriber, channel.name);
      this.deps.instruments.countRejected('unavailable');
      this.deps.logger.warn({ err, namespace: channel.label }, 'broker subscribe failed');
      throw new ClientError('unavailable', 'the channel broker is unavailable; try again');
    }
    const subscribeSpan = trace.getSpan(context.active());
    const recovery = await this.#recover(channel.name, since, subscriber);
    const { top, publications } = recovery;
    if (since !== undefined) {
      const outcome = recovery.recovered === true ? 'recovered' : 'not_recovered';
      this.deps.instruments.countRecovery(channel.label, outcome, recovery.reason ?? 'none');
      subscribeSpan?.setAttributes({
        [ATTR_WS_RECOVERY_SINCE_EPOCH]: since.epoch,
        [ATTR_WS_RECOVERY_SINCE_OFFSET]: since.offset,
        [ATTR_WS_RECOVERY_OUTCOME]: outcome,
        [ATTR_WS_RECOVERY_REPLAYED]: publications.length,
        ...(recovery.reason === undefined ? {} : { [ATTR_WS_RECOVERY_REASON]: recovery.reason }),
      });
    }
    const joined = channel;
    const flush = (): void => this.#flush(joined, subscriber, top, publications, subscribeSpan?.spanContext());
    return since === undefined ? { position: top, flush } : { position: top, recovered: recovery.recovered, replayed: publications.length, flush };
  }

  /** The broker's answer, or `unavailable` for the client (and `joining`'s subscription undone). */
  async #recover(channel: string, since: Position | undefined, joining: Subscriber | undefined): Promise<{ top: Position; publications: readonly Publication[]; recovered?: boolean; reason?: RecoveryFailure }> {
    try {
      return await this.#reads.read(channel, since);
    } catch (err) {
      if (joining !== undefined) this.#leave(joining, channel);
      this.deps.instruments.countRejected('unavailable');
      this.deps.logger.warn({ err }, 'broker history read failed');
      throw new ClientError('unavailable', 'the channel broker is unavailable; try again');
    }
  }

  /**
   * Sends what the subscriber missed, then what arrived live while it was recovering, past the
   * position it was given, and makes it live: all in one synchronous step, so no live delivery
   * can slip in between.
   */
  #flush(channel: Channel, subscriber: Subscriber, top: Position, replay: readonly Publication[], link: SpanContext | undefined): void {
    const held = channel.members.get(subscriber);
    if (!Array.isArray(held) || this.#channels.get(channel.name) !== channel) return;
    const { last } = channel;
    const caughtUp = last !== undefined && (last.epoch !== top.epoch || last.offset >= top.offset);
    channel.members.set(subscriber, caughtUp ? undefined : top);
    if (!subscriber.isOpen) return;
    let sent = 0;
    subscriber.batch(() => {
      for (const publication of replay) this.#replay(channel, subscriber, publication, link);
      for (const { publication, payload } of held) {
        if (publication.epoch === top.epoch && publication.offset <= top.offset) continue;
        if (!subscriber.isOpen) break;
        subscriber.send(payload);
        sent++;
      }
    });
    if (replay.length > 0) this.deps.instruments.countReplayed(channel.label, replay.length);
    if (replay.length + sent > 0) this.deps.instruments.countDelivered(channel.label, replay.length + sent);
  }

  /**
   * A replayed publication gets its own CONSUMER span whose parent is its original creation
   * context (the trace of the publish shows this late delivery too), linked to the subscribe
   * that asked for it.
   */
  #replay(channel: Channel, subscriber: Subscriber, publication: Publication, link: SpanContext | undefined): void {
    const parent: Context = remoteParent(publication) ?? ROOT_CONTEXT;
    const span = this.deps.tracer.startSpan(
      `process ${channel.namespace}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: { ...this.#attributes('process', 'process', { channel: channel.name, namespace: channel.namespace }), [ATTR_WS_CHANNEL_FANOUT]: 1, [ATTR_WS_CHANNEL_REPLAYED]: true },
        links: link === undefined ? [] : [{ context: link }],
      },
      parent,
    );
    subscriber.send(this.#frame(channel, publication, trace.setSpan(parent, span)));
    span.end();
  }

  /** The pushed frame: the channel's prefix, the data's JSON text as published, the position, the delivery's traceparent. */
  #frame(channel: Channel, publication: Publication, active: Context): string {
    const carrier: { traceparent?: string } = {};
    propagation.inject(active, carrier);
    const position = `,"epoch":"${publication.epoch}","offset":${publication.offset}`;
    return carrier.traceparent === undefined
      ? `${channel.framePrefix}${publication.json}${position}}`
      : `${channel.framePrefix}${publication.json}${position},"traceparent":"${carrier.traceparent}"}`;
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
  async publish(name: ChannelName, data: unknown): Promise<Position> {
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
    let position: Position;
    try {
      // The engine's own spans (a Redis script) are children of the PRODUCER span.
      position = await context.with(trace.setSpan(parent, span), () => this.deps.broker.publish(name.channel, envelope));
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      span.end();
      this.deps.instruments.countPublished(label, 'unavailable');
      this.deps.instruments.countRejected('unavailable');
      throw new ClientError('unavailable', 'the channel broker did not accept the message; it was not published');
    }
    span.setAttribute(ATTR_WS_CHANNEL_OFFSET, position.offset);
    span.end();
    this.deps.instruments.countPublished(label, 'ok');
    return position;
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
      members: new Map(),
      last: undefined,
      filling: undefined,
      framePrefix: `{"type":"message","channel":${JSON.stringify(name.channel)},"data":`,
      listener: (publication) => this.#receive(channel, publication),
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
  /**
   * A live publication whose offset skips past the last one this instance received means the
   * instance missed some (its subscriber connection to Redis was dropped and restored while
   * Redis kept its history): the missing ones are read from history and delivered first, in
   * order, while what arrives live waits. A new epoch is not a gap: that history is gone.
   */
  #receive(channel: Channel, publication: Publication): void {
    if (channel.filling !== undefined) {
      channel.filling.push(publication);
      return;
    }
    const { last } = channel;
    if (last === undefined || last.epoch !== publication.epoch || publication.offset <= last.offset + 1) {
      this.#deliver(channel, publication);
      return;
    }
    const held: Publication[] = [publication];
    channel.filling = held;
    const from = { epoch: last.epoch, offset: last.offset };
    this.deps.broker.recover(channel.name, from).then(
      (recovery) => this.#filled(channel, held, recovery.recovered === true ? recovery.publications : undefined),
      (err: unknown) => {
        this.deps.logger.warn({ err, namespace: channel.label }, 'channel gap: history read failed');
        this.#filled(channel, held, undefined);
      },
    );
  }

  #filled(channel: Channel, held: Publication[], missing: readonly Publication[] | undefined): void {
    channel.filling = undefined;
    const first = held[0];
    const gap = first.offset - (channel.last?.offset ?? 0) - 1;
    this.deps.instruments.countGap(channel.label, missing === undefined ? 'unfilled' : 'filled');
    context.with(ROOT_CONTEXT, () => this.deps.logger.warn({ namespace: channel.label, missed: gap, filled: missing !== undefined }, missing === undefined ? 'channel gap: publications missed and no longer in history' : 'channel gap: missed publications delivered from history'));
    if (this.#channels.get(channel.name) !== channel) return;
    for (const publication of missing ?? []) {
      if (publication.offset < first.offset) this.#deliver(channel, publication);
    }
    for (const publication of held) this.#receive(channel, publication);
  }

  #deliver(channel: Channel, publication: Publication): void {
    const started = performance.now();
    channel.last = publication;
    const parent: Context = remoteParent(publication) ?? ROOT_CONTEXT;
    const span = this.deps.tracer.startSpan(
      `process ${channel.namespace}`,
      { kind: SpanKind.CONSUMER, attributes: this.#attributes('process', 'process', { channel: channel.name, namespace: channel.namespace }) },
      parent,
    );
    const active = trace.setSpan(parent, span);
    // Encoded once here: a string would be encoded again, and copied, for every subscriber.
    const payload = Buffer.from(this.#frame(channel, publication, active));
    let delivered = 0;
    let closing = 0;
    let slow = 0;
    let held = 0;
    context.with(active, () => {
      for (const [member, state] of channel.members) {
        if (state !== undefined) {
          if (Array.isArray(state)) {
            state.push({ publication, payload });
            held++;
            continue;
          }
          if (publication.epoch === state.epoch && publication.offset <= state.offset) continue;
          // Past the position it was given: live from here (replacing a value keeps Map order).
          channel.members.set(member, undefined);
        }
        if (!member.isOpen) {
          closing++;
          continue;
        }
        member.deliver(payload);
        // This send passed the subscriber's unsent-bytes bound: it is being closed as a slow
        // reader and will not read this message. The others are not held back by it.
        if (member.isOpen) delivered++;
        else slow++;
      }
      // Inside the CONSUMER span: its request_id is the publisher's trace id, on every instance.
      this.deps.logger.debug(
        { namespace: channel.label, offset: publication.offset, fanout: delivered, held, dropped_closing: closing, dropped_slow: slow, lag_ms: Date.now() - publication.publishedAt },
        'channel message delivered',
      );
    });
    span.setAttributes({ [ATTR_WS_CHANNEL_FANOUT]: delivered, [ATTR_WS_CHANNEL_OFFSET]: publication.offset });
    span.end();
    const { instruments } = this.deps;
    instruments.countDelivered(channel.label, delivered);
    if (closing > 0) instruments.countDropped(channel.label, 'not_open', closing);
    if (slow > 0) instruments.countDropped(channel.label, 'slow_subscriber', slow);
    instruments.recordLag(channel.label, Math.max(0, Date.now() - publication.publishedAt) / 1000);
    instruments.recordFanout(channel.label, (performance.now() - started) / 1000);
  }
}
