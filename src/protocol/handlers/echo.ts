import { ClientError } from '../messages.js';
import type { MessageHandler } from './types.js';

export const echo: MessageHandler = {
  type: 'echo',
  handle(message) {
    if (!('data' in message)) throw new ClientError('bad_request', 'echo needs a data field');
    return { type: 'echo', id: message.id, data: message.data };
  },
};
