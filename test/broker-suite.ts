/**
 * The behaviour every channel engine must have, as one suite taking a broker factory: the
 * in-process engine runs it now (memory-broker.test.ts), a networked engine runs the same later.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BrokerUnavailableError, type Broker, type Envelope } from '../src/channels/broker.js';
import { eventually } from './helpers.js';

export function brokerSuite(name: string, create: () => Promise<Broker>): void {
  describe(`broker behaviour: ${name}`, () => {
    const envelope = (data: unknown): Envelope => ({ json: JSON.stringify(data), publishedAt: Date.now(), traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });

    it('delivers each publish once to every listener of the channel, in publish order', async () => {
      const broker = await create();
      const a: unknown[] = [];
      const b: unknown[] = [];
      await broker.subscribe('t:1', (e) => a.push(JSON.parse(e.json)));
      await broker.subscribe('t:1', (e) => b.push(JSON.parse(e.json)));
      for (let i = 0; i < 20; i++) await broker.publish('t:1', envelope(i));
      const expected = Array.from({ length: 20 }, (_, i) => i);
      await eventually(() => (a.length === 20 && b.length === 20 ? true : undefined), 2000, 'deliveries');
      assert.deepEqual(a, expected);
      assert.deepEqual(b, expected);
      await broker.close();
    });

    it('carries the envelope unchanged and keeps channels apart', async () => {
      const broker = await create();
      const got: Envelope[] = [];
      await broker.subscribe('t:a', (e) => got.push(e));
      await broker.publish('t:b', envelope('other'));
      const sent = envelope({ x: [1, 2] });
      await broker.publish('t:a', sent);
      await eventually(() => (got.length === 1 ? true : undefined), 2000, 'delivery');
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(got.length, 1);
      assert.deepEqual(got[0], sent);
      await broker.close();
    });

    it('stops delivering after unsubscribe; publishing to a channel nobody hears is accepted', async () => {
      const broker = await create();
      const got: unknown[] = [];
      const listener = (e: Envelope): void => void got.push(JSON.parse(e.json));
      await broker.subscribe('t:u', listener);
      await broker.unsubscribe('t:u', listener);
      await broker.publish('t:u', envelope(1));
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(got, []);
      await broker.close();
    });

    it('rejects publishes with BrokerUnavailableError once it cannot accept them', async () => {
      const broker = await create();
      await broker.close();
      await assert.rejects(broker.publish('t:x', envelope(1)), BrokerUnavailableError);
    });
  });
}
