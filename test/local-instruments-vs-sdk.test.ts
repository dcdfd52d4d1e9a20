import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Meter } from '@opentelemetry/api';
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  MetricReader,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import { LocalInstruments } from '../src/telemetry/local-instruments.js';

/**
 * src/telemetry/local-instruments.ts stands in for the SDK's counters and histograms. These tests
 * play the same records through both, read them with one reader, and compare what it exports.
 */

class ManualReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** Both meters behind one reader: the SDK's own instruments and the local ones. */
function pair(temporality: AggregationTemporality) {
  const local = new LocalInstruments({ name: 'local' });
  const reader = new ManualReader({ aggregationTemporalitySelector: () => temporality, metricProducers: [local.producer(() => temporality)] });
  const provider = new MeterProvider({ readers: [reader] });
  const sdk = provider.getMeter('sdk');
  return {
    sdk,
    local: local.meter(provider.getMeter('unused')),
    /** One collection: the metrics of each side, normalised so that equal data compares equal. */
    async collect(): Promise<{ sdk: unknown[]; local: unknown[] }> {
      const { resourceMetrics, errors } = await reader.collect();
      assert.deepEqual(errors, []);
      const of = (scope: string) => resourceMetrics.scopeMetrics.filter((s) => s.scope.name === scope).flatMap((s) => s.metrics.map(normalise));
      return { sdk: of('sdk'), local: of('local') };
    },
    shutdown: () => provider.shutdown(),
  };
}

/** Everything a backend receives except timestamps, points in a stable order. */
function normalise(metric: MetricData): unknown {
  const points = metric.dataPoints
    .map((p) => ({ attributes: p.attributes, value: p.value }))
    .sort((a, b) => JSON.stringify(a.attributes).localeCompare(JSON.stringify(b.attributes)));
  const { name, description, unit, valueType } = metric.descriptor; // the fields MetricDescriptor declares
  return {
    descriptor: { name, description, unit, valueType },
    temporality: metric.aggregationTemporality,
    type: metric.dataPointType,
    monotonic: metric.dataPointType === DataPointType.SUM ? metric.isMonotonic : undefined,
    points,
  };
}

/** The service's kinds of instruments, created once per meter as the service creates them. */
function instruments(meter: Meter) {
  return {
    counter: meter.createCounter('total_messages', { description: 'messages', unit: '{message}' }),
    histogram: meter.createHistogram('message_processing_duration_seconds', { unit: 's', advice: { explicitBucketBoundaries: [0.001, 0.01, 0.1, 1] } }),
    // No advice: the SDK's default boundaries.
    defaultBuckets: meter.createHistogram('shutdown_duration'),
  };
}
type Instruments = ReturnType<typeof instruments>;

const FROZEN = Object.freeze({ 'ws.message.type': 'echo', 'ws.outcome': 'ok' });

/** A sequence in the shape the service records, with the values the SDK refuses mixed in. */
function firstRound({ counter, histogram, defaultBuckets }: Instruments): void {
  counter.add(0);
  counter.add(1, FROZEN);
  counter.add(2, { 'ws.outcome': 'ok', 'ws.message.type': 'echo' }); // the same set in another key order, not frozen
  counter.add(-1, FROZEN); // negative: dropped
  counter.add(3);
  for (const v of [0, 0.001, 0.0011, 0.01, 0.5, 1, 7]) histogram.record(v, FROZEN); // on, above and past the bounds
  histogram.record(-0.5, FROZEN); // negative: dropped
  histogram.record(Number.NaN, FROZEN); // NaN: dropped
  histogram.record(0.02, { 'ws.message.type': 'ping', 'ws.outcome': 'client_error' });
  defaultBuckets.record(12);
  defaultBuckets.record(0.2);
}

/** The next period: one set recorded again, one not at all. */
function secondRound({ counter, histogram }: Instruments): void {
  counter.add(5, FROZEN);
  histogram.record(0.003, FROZEN);
  histogram.record(2, FROZEN);
}

/** Runs two periods on both sides and returns each collection. */
async function twoPeriods(temporality: AggregationTemporality) {
  const p = pair(temporality);
  const sdk = instruments(p.sdk);
  const local = instruments(p.local);
  firstRound(sdk);
  firstRound(local);
  const first = await p.collect();
  secondRound(sdk);
  secondRound(local);
  const second = await p.collect();
  await p.shutdown();
  return { first, second };
}

test('cumulative: the local instruments export what the SDK instruments export, collection after collection', async () => {
  const { first, second } = await twoPeriods(AggregationTemporality.CUMULATIVE);
  assert.equal(first.sdk.length, 3);
  assert.deepEqual(first.local, first.sdk);
  assert.deepEqual(second.local, second.sdk);
});

test('delta: each period\'s sums, counts and buckets match the SDK\'s; min and max are left out', async () => {
  const { first, second } = await twoPeriods(AggregationTemporality.DELTA);
  assert.equal(first.sdk.length, 3);
  assert.deepEqual(withoutExtremes(first.local), withoutExtremes(first.sdk));
  // The SDK leaves out a set not recorded since the last collection; the local side sends it as 0.
  assert.deepEqual(withoutExtremes(withoutZeroPoints(second.local)), withoutExtremes(second.sdk));
});

/** Local delta histograms omit min/max (a period's own are not kept); everything else must match. */
function withoutExtremes(metrics: unknown[]): unknown[] {
  return JSON.parse(JSON.stringify(metrics, (key, value: unknown) => (key === 'min' || key === 'max' ? undefined : value))) as unknown[];
}

function withoutZeroPoints(metrics: unknown[]): unknown[] {
  return (metrics as { points: { value: number | { count: number } }[] }[])
    .map((m) => ({ ...m, points: m.points.filter((pt) => (typeof pt.value === 'number' ? pt.value !== 0 : pt.value.count !== 0)) }))
    .filter((m) => m.points.length > 0);
}
