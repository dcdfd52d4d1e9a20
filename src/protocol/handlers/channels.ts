/** subscribe, unsubscribe and publish: thin over Subscriptions, which owns the state and telemetry. */
import { parseChannel, MAX_CHANNEL_LENGTH, type ChannelName } from '../../channels/names.js';
import type { Subscriptions } from '../../channels/subscriptions.js';
import type { ChannelInstruments } from '../../telemetry/instruments.js';
import type { Position } from '../../channels/broker.js';
import { AFTER_REPLY, ClientError, type IncomingMessage } from '../messages.js';
import type { MessageHandler } from './types.js';

export function channelHandlers(subscriptions: Subscriptions, instruments: ChannelInstruments): MessageHandler[] {
  const channelOf = (message: IncomingMessage): ChannelName => {
    const name = parseChannel(message.channel);
    if (name === undefined) {
      instruments.countRejected('bad_channel');
      throw new ClientError('bad_channel', `channel must be namespace:name, at most ${MAX_CHANNEL_LENGTH} characters from A-Z a-z 0-9 _ - . :`);
    }
    return name;
  };
  return [
    {
      type: 'subscribe',
      async handle(message, client) {
        const name = channelOf(message);
        const since = positionOf(message.since);
        const result = await subscriptions.subscribe(client, name, since);
        const { epoch, offset } = result.position;
        return {
          type: 'subscribed',
          id: message.id,
          channel: name.channel,
          epoch,
          offset,
          ...(result.recovered === undefined ? {} : { recovered: result.recovered, replayed: result.replayed }),
          [AFTER_REPLY]: result.flush,
        };
      },
    },
    {
      type: 'unsubscribe',
      handle(message, client) {
        const name = channelOf(message);
        subscriptions.unsubscribe(client, name.channel);
        return { type: 'unsubscribed', id: message.id, channel: name.channel };
      },
    },
    {
      type: 'publish',
      async handle(message) {
        const name = channelOf(message);
        if (!('data' in message)) throw new ClientError('bad_request', 'publish needs a data field');
        const { epoch, offset } = await subscriptions.publish(name, message.data);
        return { type: 'published', id: message.id, channel: name.channel, epoch, offset };
      },
    },
  ];
}

/** `since` is optional; when present it must be a position the service could have given. */
function positionOf(since: unknown): Position | undefined {
  if (since === undefined) return undefined;
  if (
    typeof since === 'object' &&
    since !== null &&
    typeof (since as Position).epoch === 'string' &&
    /^[0-9a-f]{1,32}$/.test((since as Position).epoch) &&
    Number.isSafeInteger((since as Position).offset) &&
    (since as Position).offset >= 0
  ) {
    return { epoch: (since as Position).epoch, offset: (since as Position).offset };
  }
  throw new ClientError('bad_request', 'since must be {"epoch": <epoch string from the service>, "offset": <integer ≥ 0>}');
}
