import assert from 'node:assert/strict';
import { it } from 'node:test';
import { MemoryBroker } from '../src/channels/memory-broker.js';
import { brokerSuite } from './broker-suite.js';

brokerSuite('memory', () => Promise.resolve(new MemoryBroker({ size: 5, ttlMs: 60_000 })), { historySize: 5 });

it('memory broker forgets a channel with no listener left', async () => {
  const broker = new MemoryBroker();
  const listener = (): void => {};
  await broker.subscribe('t:1', listener);
  assert.equal(broker.channelCount, 1);
  await broker.unsubscribe('t:1', listener);
  assert.equal(broker.channelCount, 0);
});
