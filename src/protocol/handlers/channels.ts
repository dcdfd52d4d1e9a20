/** subscribe, unsubscribe and publish: thin over Subscriptions, which owns the state and telemetry. */
import { parseChannel, MAX_CHANNEL_LENGTH, type ChannelName } from '../../channels/names.js';
import type { Subscriptions } from '../../channels/subscriptions.js';
import type { ChannelInstruments } from '../../telemetry/instruments.js';
import { ClientError, type IncomingMessage } from '../messages.js';
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
        await subscriptions.subscribe(client, name);
        return { type: 'subscribed', id: message.id, channel: name.channel };
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
        await subscriptions.publish(name, message.data);
        return { type: 'published', id: message.id, channel: name.channel };
      },
    },
  ];
}
