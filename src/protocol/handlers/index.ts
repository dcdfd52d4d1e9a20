/** The one place message types are registered: a new type is a new file and one line here. */
import { echo } from './echo.js';
import { ping } from './ping.js';
import type { MessageHandler } from './types.js';

export type { MessageHandler } from './types.js';
export type HandlerRegistry = ReadonlyMap<string, MessageHandler>;

export function createRegistry(handlers: readonly MessageHandler[]): HandlerRegistry {
  const registry = new Map<string, MessageHandler>();
  for (const handler of handlers) {
    if (registry.has(handler.type)) throw new TypeError(`message type ${handler.type} registered twice`);
    registry.set(handler.type, handler);
  }
  return registry;
}

export const defaultHandlers: HandlerRegistry = createRegistry([ping, echo]);
