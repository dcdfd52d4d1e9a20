import type { IncomingMessage, Reply } from '../messages.js';

/**
 * One message type. `handle` runs inside the message's span; it returns the reply, or throws
 * ClientError for a client mistake. Anything else it throws or rejects with is an unhandled
 * error: the client gets `internal_error` and keeps its connection.
 */
export interface MessageHandler {
  readonly type: string;
  handle(message: IncomingMessage): Reply | Promise<Reply>;
}
