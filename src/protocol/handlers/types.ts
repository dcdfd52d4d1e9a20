import type { IncomingMessage, Reply } from '../messages.js';
import type { Subscriber } from '../../channels/subscriptions.js';

/** The connection a message came from: the channel handlers subscribe it; ping and echo ignore it. */
export type HandlerClient = Subscriber;

/**
 * One message type. `handle` runs inside the message's span; it returns the reply, or throws
 * ClientError for a client mistake. Anything else it throws or rejects with is an unhandled
 * error: the client gets `internal_error` and keeps its connection.
 */
export interface MessageHandler {
  readonly type: string;
  handle(message: IncomingMessage, client: HandlerClient): Reply | Promise<Reply>;
}
