/**
 * Picks the channel engine from the configuration. The Redis client is loaded only when
 * REDIS_URL is set, and only here, after the telemetry SDK has started: its instrumentation
 * patches the client as it loads.
 */
import type { ChannelsConfig } from '../config/config.js';
import type { Broker } from './broker.js';
import { MemoryBroker } from './memory-broker.js';

/** The longest wait between reconnect attempts to Redis. */
const MAX_RECONNECT_DELAY_MS = 2_000;

export async function createBroker(config: ChannelsConfig): Promise<Broker> {
  if (config.redis === undefined) return new MemoryBroker(config.history);
  const { RedisBroker } = await import('./redis-broker.js');
  return new RedisBroker({ ...config.redis, maxReconnectDelayMs: MAX_RECONNECT_DELAY_MS, history: config.history });
}
