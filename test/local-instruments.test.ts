import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type HistogramMetricData,
  type ResourceMetrics,
  type SumMetricData,
} from '@opentelemetry/sdk-metrics';
import { LocalInstruments } from '../src/telemetry/local-instruments.js';

/** A real SDK pipeline: a MeterProvider whose reader also collects the local instruments. */
function pipeline(temporality: AggregationTemporality) {
  const local = new LocalInstruments({ name: 'test' });
  const exporter = new InMemoryMetricExporter(temporality);
  const reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: 3_600_000,
    metricProducers: [local.producer(() => temporality)],
  });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = local.meter(provider.getMeter('test'));
  const collect = async (): Promise<ResourceMetrics> => {
    await reader.forceFlush();
    const all = exporter.getMetrics();
    exporter.reset();
    return all[all.length - 1];
  };
  const metric = (rm: ResourceMetrics, name: string) => rm.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
  return { meter, collect, metric, shutdown: () => provider.shutdown() };
}

test('histograms: inclusive upper bounds, sum, count, min, max, one point per attribute set', async () => {
  const p = pipeline(AggregationTemporality.CUMULATIVE);
  const h = p.meter.createHistogram('latency', { unit: 's', description: 'd', advice: { explicitBucketBoundaries: [1, 2, 5] } });
  const ok = Object.freeze({ outcome: 'ok' });
  for (const v of [0.5, 1, 1.5, 2, 7]) h.record(v, ok);
  h.record(3, { outcome: 'ok' }); // an unfrozen, equal set lands in the same point
  h.record(1, { outcome: 'error' });
  h.record(-1, ok); // dropped, as the SDK drops it
  h.record(Number.NaN, ok);
  const m = p.metric(await p.collect(), 'latency') as HistogramMetricData;
  assert.equal(m.dataPointType, DataPointType.HISTOGRAM);
  assert.equal(m.aggregationTemporality, AggregationTemporality.CUMULATIVE);
  assert.deepEqual({ unit: m.descriptor.unit, description: m.descriptor.description }, { unit: 's', description: 'd' });
  const [okPoint, errorPoint] = m.dataPoints;
  assert.deepEqual(okPoint.attributes, { outcome: 'ok' });
  assert.deepEqual(okPoint.value.buckets, { boundaries: [1, 2, 5], counts: [2, 2, 1, 1] });
  assert.deepEqual([okPoint.value.count, okPoint.value.sum, okPoint.value.min, okPoint.value.max], [6, 15, 0.5, 7]);
  assert.deepEqual(errorPoint.value.buckets.counts, [1, 0, 0, 0]);
  await p.shutdown();
});

test('counters: monotonic sums; pre-created series export 0; delta readers get differences', async () => {
  const p = pipeline(AggregationTemporality.DELTA);
  const c = p.meter.createCounter('total_messages');
  c.add(0);
  let m = p.metric(await p.collect(), 'total_messages') as SumMetricData;
  assert.equal(m.isMonotonic, true);
  assert.equal(m.dataPoints[0].value, 0);
  c.add(3);
  c.add(-5); // counters only go up
  c.add(2);
  m = p.metric(await p.collect(), 'total_messages') as SumMetricData;
  assert.equal(m.aggregationTemporality, AggregationTemporality.DELTA);
  assert.equal(m.dataPoints[0].value, 5);
  c.add(1);
  m = p.metric(await p.collect(), 'total_messages') as SumMetricData;
  assert.equal(m.dataPoints[0].value, 1, 'only what was added since the last collection');
  const h = p.meter.createHistogram('h', { advice: { explicitBucketBoundaries: [10] } });
  h.record(1);
  await p.collect();
  h.record(20);
  const hd = p.metric(await p.collect(), 'h') as HistogramMetricData;
  assert.deepEqual([hd.dataPoints[0].value.buckets.counts, hd.dataPoints[0].value.count, hd.dataPoints[0].value.sum], [[0, 1], 1, 20]);
  await p.shutdown();
});

test('every other instrument kind stays the SDK\'s', async () => {
  const p = pipeline(AggregationTemporality.CUMULATIVE);
  p.meter.createObservableGauge('live').addCallback((r) => r.observe(7));
  p.meter.createUpDownCounter('updown').add(-2);
  const rm = await p.collect();
  assert.equal((p.metric(rm, 'live') as { dataPoints: { value: number }[] }).dataPoints[0].value, 7);
  assert.equal((p.metric(rm, 'updown') as SumMetricData).dataPoints[0].value, -2);
  await p.shutdown();
});

test('sets recorded in turn, and an unfrozen set changed between records, each land in their own point', async () => {
  const p = pipeline(AggregationTemporality.CUMULATIVE);
  const c = p.meter.createCounter('by_type');
  const echo = Object.freeze({ type: 'echo' });
  const ping = Object.freeze({ type: 'ping' });
  for (const attrs of [echo, echo, ping, echo, ping, ping, ping]) c.add(1, attrs);
  const mutable: Record<string, string> = { type: 'echo' };
  c.add(10, mutable);
  mutable.type = 'other';
  c.add(100, mutable);
  c.add(1000);
  const m = p.metric(await p.collect(), 'by_type') as SumMetricData;
  const byType = Object.fromEntries(m.dataPoints.map((d) => [String(d.attributes.type), d.value]));
  assert.deepEqual(byType, { echo: 13, ping: 4, other: 100, undefined: 1000 });
  await p.shutdown();
});
