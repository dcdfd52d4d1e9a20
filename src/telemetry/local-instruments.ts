/**
 * Counters and histograms that aggregate where they are recorded and reach every metric reader
 * through a MetricProducer, in place of the SDK's synchronous instruments.
 *
 * Why: on every add/record the SDK hashes the attribute set (keys sorted, JSON.stringify) once
 * per reader before it finds the accumulation, which the benchmark found to be the largest
 * telemetry cost on the message path (docs/benchmarks.md). The SDK has no public way to record
 * against a pre-bound attribute set. Here a record with a frozen attribute set (the service
 * builds one per label combination, once) is a WeakMap lookup, a bucket search and a few
 * additions; the aggregation is read only when a reader collects.
 *
 * SDK behaviour mirrored (test/local-instruments-vs-sdk.test.ts plays the same records here
 * and through the SDK's own instruments and compares what one reader exports): monotonic sums;
 * explicit-bucket histograms with the advised boundaries or the SDK's default ones, inclusive
 * upper bounds, sum, count, min and max; one point per attribute set, whatever its key order;
 * cumulative from the first record, or delta per reader when its exporter prefers delta.
 * Negative values and a histogram's NaN are dropped, as the SDK drops them.
 *
 * Where it differs, on purpose: views do not apply; delta histograms carry no min and max (a
 * period's own are not kept), and a set not recorded in a delta period is sent as 0 where the
 * SDK leaves it out; a counter drops NaN and infinite values, which the SDK would add to its sum,
 * and a counter's dropped value still makes its attribute set's point (at 0).
 */
import {
  ValueType,
  type Attributes,
  type Counter,
  type Histogram,
  type HrTime,
  type Meter,
  type MetricOptions,
} from '@opentelemetry/api';
import { hrTime, type InstrumentationScope } from '@opentelemetry/core';
import {
  AggregationTemporality,
  DataPointType,
  InstrumentType,
  type CollectionResult,
  type MetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import { emptyResource } from '@opentelemetry/resources';

/** The SDK's default explicit buckets, for a histogram created without advice. */
const DEFAULT_BOUNDARIES = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

export type TemporalitySelector = (type: InstrumentType) => AggregationTemporality;

/** One attribute set's running totals; never reset (delta readers subtract their last view). */
class Cell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  min = Infinity;
  max = -Infinity;

  constructor(
    readonly attributes: Attributes,
    readonly startTime: HrTime,
    buckets: number,
  ) {
    this.counts = new Float64Array(buckets);
  }
}

/** Canonical, key-order independent identity of an attribute set (the SDK's own scheme). */
function attributesKey(attributes: Attributes): string {
  const keys = Object.keys(attributes);
  if (keys.length === 0) return '';
  keys.sort();
  return JSON.stringify(keys.map((k) => [k, attributes[k]]));
}

const NO_ATTRIBUTES: Attributes = Object.freeze({});

abstract class Instrument {
  readonly #byIdentity = new WeakMap<Attributes, Cell>();
  readonly #byKey = new Map<string, Cell>();

  constructor(
    readonly name: string,
    readonly options: MetricOptions,
    readonly type: InstrumentType,
    readonly buckets: number,
  ) {}

  /** The set recorded last and its cell: a hot path records the same set over and over. */
  #last: Attributes | undefined;
  #lastCell: Cell | undefined;

  /** The cell for an attribute set; frozen sets are looked up by identity, others by content. */
  protected cell(attributes: Attributes = NO_ATTRIBUTES): Cell {
    if (attributes === this.#last) return this.#lastCell!;
    const frozen = Object.isFrozen(attributes);
    if (frozen) {
      const known = this.#byIdentity.get(attributes);
      if (known !== undefined) return this.#remember(attributes, known);
    }
    const key = attributesKey(attributes);
    let cell = this.#byKey.get(key);
    if (cell === undefined) {
      cell = new Cell(Object.freeze({ ...attributes }), hrTime(), this.buckets);
      this.#byKey.set(key, cell);
    }
    if (!frozen) return cell;
    this.#byIdentity.set(attributes, cell);
    return this.#remember(attributes, cell);
  }

  /** Only a frozen set is remembered: an unfrozen one could change before it is recorded again. */
  #remember(attributes: Attributes, cell: Cell): Cell {
    this.#last = attributes;
    this.#lastCell = cell;
    return cell;
  }

  cells(): IterableIterator<Cell> {
    return this.#byKey.values();
  }
}

class LocalCounter extends Instrument implements Counter {
  constructor(name: string, options: MetricOptions) {
    super(name, options, InstrumentType.COUNTER, 0);
  }

  add(value: number, attributes?: Attributes): void {
    const cell = this.cell(attributes);
    if (value >= 0 && value !== Infinity) cell.sum += value;
  }
}

class LocalHistogram extends Instrument implements Histogram {
  readonly boundaries: readonly number[];

  constructor(name: string, options: MetricOptions) {
    const boundaries = options.advice?.explicitBucketBoundaries ?? DEFAULT_BOUNDARIES;
    super(name, options, InstrumentType.HISTOGRAM, boundaries.length + 1);
    this.boundaries = Object.freeze([...boundaries]);
  }

  record(value: number, attributes?: Attributes): void {
    if (!(value >= 0) || value === Infinity) return;
    const cell = this.cell(attributes);
    // Few boundaries and mostly small values: a linear scan from the bottom beats a binary search.
    const b = this.boundaries;
    let i = 0;
    while (i < b.length && value > b[i]) i++;
    cell.counts[i]++;
    cell.sum += value;
    cell.count++;
    if (value < cell.min) cell.min = value;
    if (value > cell.max) cell.max = value;
  }
}

/** What a delta reader saw of a cell at its last collection. */
interface Seen {
  readonly time: HrTime;
  readonly sum: number;
  readonly count: number;
  readonly counts: Float64Array;
}

class LocalProducer implements MetricProducer {
  readonly #seen = new WeakMap<Cell, Seen>();

  constructor(
    private readonly instruments: LocalInstruments,
    private readonly temporality: TemporalitySelector,
  ) {}

  collect(): Promise<CollectionResult> {
    const now = hrTime();
    const metrics: MetricData[] = [];
    for (const instrument of this.instruments.all()) {
      const temporality = this.temporality(instrument.type);
      const delta = temporality === AggregationTemporality.DELTA;
      const descriptor = {
        name: instrument.name,
        description: instrument.options.description ?? '',
        unit: instrument.options.unit ?? '',
        valueType: instrument.options.valueType ?? ValueType.DOUBLE,
      };
      const points = [...instrument.cells()].map((cell) => {
        const seen = delta ? this.#seen.get(cell) : undefined;
        if (delta) this.#seen.set(cell, { time: now, sum: cell.sum, count: cell.count, counts: cell.counts.slice() });
        return { cell, seen, startTime: seen?.time ?? cell.startTime };
      });
      if (instrument instanceof LocalHistogram) {
        metrics.push({
          descriptor,
          aggregationTemporality: temporality,
          dataPointType: DataPointType.HISTOGRAM,
          dataPoints: points.map(({ cell, seen, startTime }) => ({
            attributes: cell.attributes,
            startTime,
            endTime: now,
            value: {
              buckets: {
                boundaries: [...instrument.boundaries],
                counts: Array.from(cell.counts, (n, i) => n - (seen?.counts[i] ?? 0)),
              },
              sum: cell.sum - (seen?.sum ?? 0),
              count: cell.count - (seen?.count ?? 0),
              // Extremes since the start only: a delta period's own are not kept.
              ...(delta || cell.count === 0 ? {} : { min: cell.min, max: cell.max }),
            },
          })),
        });
      } else {
        metrics.push({
          descriptor,
          aggregationTemporality: temporality,
          dataPointType: DataPointType.SUM,
          isMonotonic: true,
          dataPoints: points.map(({ cell, seen, startTime }) => ({
            attributes: cell.attributes,
            startTime,
            endTime: now,
            value: cell.sum - (seen?.sum ?? 0),
          })),
        });
      }
    }
    return Promise.resolve({
      // The reader keeps the SDK's resource and adds these scope metrics to it.
      resourceMetrics: { resource: emptyResource(), scopeMetrics: [{ scope: this.instruments.scope, metrics }] },
      errors: [],
    });
  }
}

export class LocalInstruments {
  readonly #instruments: Instrument[] = [];

  constructor(readonly scope: InstrumentationScope) {}

  all(): readonly Instrument[] {
    return this.#instruments;
  }

  createCounter(name: string, options: MetricOptions = {}): Counter {
    const counter = new LocalCounter(name, options);
    this.#instruments.push(counter);
    return counter;
  }

  createHistogram(name: string, options: MetricOptions = {}): Histogram {
    const histogram = new LocalHistogram(name, options);
    this.#instruments.push(histogram);
    return histogram;
  }

  /** A producer for one reader; `temporality` is that reader's (its exporter's) preference. */
  producer(temporality: TemporalitySelector = () => AggregationTemporality.CUMULATIVE): MetricProducer {
    return new LocalProducer(this, temporality);
  }

  /** A Meter whose counters and histograms are these; every other instrument is `sdkMeter`'s. */
  meter(sdkMeter: Meter): Meter {
    return {
      createCounter: (name, options) => this.createCounter(name, options),
      createHistogram: (name, options) => this.createHistogram(name, options),
      createGauge: (name, options) => sdkMeter.createGauge(name, options),
      createUpDownCounter: (name, options) => sdkMeter.createUpDownCounter(name, options),
      createObservableGauge: (name, options) => sdkMeter.createObservableGauge(name, options),
      createObservableCounter: (name, options) => sdkMeter.createObservableCounter(name, options),
      createObservableUpDownCounter: (name, options) => sdkMeter.createObservableUpDownCounter(name, options),
      addBatchObservableCallback: (callback, observables) => sdkMeter.addBatchObservableCallback(callback, observables),
      removeBatchObservableCallback: (callback, observables) => sdkMeter.removeBatchObservableCallback(callback, observables),
    };
  }
}
