/**
 * The behaviour every channel engine must have, as one suite taking a broker factory: the
 * in-process engine runs it now (memory-broker.test.ts), a networked engine runs the same later.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BrokerUnavailableError, type Broker, type Envelope, type Position, type Publication } from '../src/channels/broker.js';
import { eventually } from './helpers.js';

export interface SuiteOptions {
  /** The CHANNEL_HISTORY_SIZE the factory's brokers were made with (at least 3). */
  readonly historySize: number;
}

export function brokerSuite(name: string, create: () => Promise<Broker>, options: SuiteOptions): void {
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
      const { json, traceparent, publishedAt } = got[0];
      assert.deepEqual({ json, traceparent, publishedAt }, sent);
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
  
    it('gives each publication the next offset in one epoch; deliveries carry the same positions', async () => {
      const broker = await create();
      const got: Publication[] = [];
      await broker.subscribe('t:pos', (p) => got.push(p));
      const positions: Position[] = [];
      for (let i = 0; i < 3; i++) positions.push(await broker.publish('t:pos', envelope(i)));
      assert.deepEqual(positions.map((p) => p.offset), [1, 2, 3]);
      assert.ok(positions.every((p) => p.epoch === positions[0].epoch && /^[0-9a-f]+$/.test(p.epoch)));
      await eventually(() => (got.length === 3 ? true : undefined), 2000, 'deliveries');
      assert.deepEqual(got.map((p) => ({ epoch: p.epoch, offset: p.offset })), positions);
      await broker.close();
    });

    it('recovers exactly what was published after a position history still holds, and says when it cannot', async () => {
      const broker = await create();
      const fresh = await broker.recover('t:rec');
      assert.deepEqual(fresh.publications, []);
      assert.equal(fresh.recovered, undefined);
      assert.equal(fresh.top.offset, 0);
      const { epoch } = fresh.top;
      for (let i = 1; i <= options.historySize + 2; i++) assert.equal((await broker.publish('t:rec', envelope(i))).epoch, epoch, 'the epoch read before the first publish is kept');
      const top = options.historySize + 2;

      const recent = await broker.recover('t:rec', { epoch, offset: top - 2 });
      assert.equal(recent.recovered, true);
      assert.deepEqual(recent.top, { epoch, offset: top });
      assert.deepEqual(recent.publications.map((p): [number, unknown] => [p.offset, JSON.parse(p.json)]), [[top - 1, top - 1], [top, top]]);
      assert.ok(recent.publications.every((p) => p.epoch === epoch && p.traceparent === envelope(0).traceparent));

      assert.deepEqual(await broker.recover('t:rec', { epoch, offset: top }), { top: { epoch, offset: top }, publications: [], recovered: true });
      const oldest = await broker.recover('t:rec', { epoch, offset: top - options.historySize });
      assert.equal(oldest.recovered, true, 'the whole of history');
      assert.equal(oldest.publications.length, options.historySize);
      const trimmed = await broker.recover('t:rec', { epoch, offset: top - options.historySize - 1 });
      assert.deepEqual([trimmed.recovered, trimmed.reason, trimmed.publications.length], [false, 'expired', 0], 'one publication past what history holds');
      const otherEpoch = await broker.recover('t:rec', { epoch: 'abc123', offset: 1 });
      assert.deepEqual([otherEpoch.recovered, otherEpoch.reason], [false, 'epoch_changed']);
      const future = await broker.recover('t:rec', { epoch, offset: top + 1 });
      assert.deepEqual([future.recovered, future.reason], [false, 'unknown_position']);
      await broker.close();
    });

    it('reports publications its size bound pushes out of history', async () => {
      const broker = await create();
      let trimmed = 0;
      broker.observe({ error: () => undefined, changed: () => undefined, trimmed: (_c, n) => void (trimmed += n) });
      for (let i = 0; i < options.historySize + 3; i++) await broker.publish('t:trim', envelope(i));
      assert.equal(trimmed, 3);
      await broker.close();
    });
  });
}

