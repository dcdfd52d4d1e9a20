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

it('memory broker keeps a quiet channel\'s epoch for the history TTL after its last use, then forgets it', async () => {
  const broker = new MemoryBroker({ size: 5, ttlMs: 60_000 });
  try {
    const listener = (): void => {};
    await broker.subscribe('t:quiet', listener);
    const { top } = await broker.recover('t:quiet');
    await broker.unsubscribe('t:quiet', listener);
    broker.forgetIdle(Date.now() + 1_000);
    assert.deepEqual(await broker.recover('t:quiet', top), { top, publications: [], recovered: true }, 'nothing published, nothing missed');
    broker.forgetIdle(Date.now() + 60_001);
    const after = await broker.recover('t:quiet', top);
    assert.notEqual(after.top.epoch, top.epoch);
    assert.deepEqual([after.recovered, after.reason], [false, 'epoch_changed']);
  } finally {
    await broker.close();
  }
});
