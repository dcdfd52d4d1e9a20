import type { MessageHandler } from './types.js';

export const ping: MessageHandler = {
  type: 'ping',
  handle: (message) => ({ type: 'pong', id: message.id }),
};
