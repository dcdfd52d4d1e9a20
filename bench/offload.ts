/**
 * `node dist/bench/offload.js`: would moving OTLP span serialisation off the event loop help?
 * A worker thread can only take spans the main thread has copied to it, and postMessage copies
 * with V8's serializer on the sending thread. This measures, per span and on one thread, the
 * protobuf serialisation the exporter does today against the cheapest hand-off to a worker
 * (flattening each span to plain data, then V8-serialising the batch, as postMessage would), for
 * batches of message spans shaped like the service's. Medians over repeats; no network.
 */
import { serialize } from 'node:v8';
import { ROOT_CONTEXT, SpanKind, trace, TraceFlags } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { spread } from './stats.js';

const BATCH = 512;
const REPEATS = 15;
const ITERATIONS = 40;

function messageSpans(count: number): ReadableSpan[] {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'ws-service', 'service.version': '0.1.0', 'service.instance.id': '5f0c0c8e-3c1e-4a53-9d43-4d1c2b7d6f10' }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('ws-service', '0.1.0');
  const parent = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7',
    traceFlags: TraceFlags.SAMPLED,
  });
  for (let i = 0; i < count; i++) {
    tracer.startSpan('ws.message echo', { kind: SpanKind.SERVER, attributes: { 'ws.message.type': 'echo', 'ws.message.size': 64 } }, parent).end();
  }
  return exporter.getFinishedSpans();
}

/** The least a worker needs to rebuild a span: ids, names, times, attributes, status. */
function flatten(span: ReadableSpan): Record<string, unknown> {
  const sc = span.spanContext();
  return {
    traceId: sc.traceId,
    spanId: sc.spanId,
    parentSpanId: span.parentSpanContext?.spanId,
    flags: sc.traceFlags,
    name: span.name,
    kind: span.kind,
    start: span.startTime,
    end: span.endTime,
    attributes: span.attributes,
    status: span.status,
    links: span.links.length === 0 ? undefined : span.links,
    events: span.events.length === 0 ? undefined : span.events,
  };
}

function perSpanUs(work: () => unknown): number {
  const started = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) work();
  return Number(process.hrtime.bigint() - started) / 1000 / (ITERATIONS * BATCH);
}

const spans = messageSpans(BATCH);
let bytes = 0;
const protobuf = (): void => {
  bytes = ProtobufTraceSerializer.serializeRequest(spans)?.length ?? 0;
};
const handOff = (): void => {
  serialize(spans.map(flatten));
};
// Warm both paths up before measuring, then alternate them so the machine's speed changes hit both.
for (let i = 0; i < 5; i++) {
  perSpanUs(protobuf);
  perSpanUs(handOff);
}
const rounds = { protobuf: [] as number[], handOff: [] as number[] };
for (let r = 0; r < REPEATS; r++) {
  rounds.protobuf.push(perSpanUs(protobuf));
  rounds.handOff.push(perSpanUs(handOff));
}
const p = spread(rounds.protobuf);
const h = spread(rounds.handOff);
const ratios = spread(rounds.handOff.map((x, i) => x / rounds.protobuf[i]));
const fmt = (s: { median: number; min: number; max: number }): string => `${s.median.toFixed(2)} µs (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;
process.stdout.write(
  [
    `batches of ${BATCH} message spans (${bytes} bytes of OTLP protobuf), ${REPEATS} repeats of ${ITERATIONS} batches, Node ${process.version}`,
    `OTLP protobuf serialisation, per span:               ${fmt(p)}`,
    `hand-off to a worker (flatten + V8 serialise), per span: ${fmt(h)}`,
    `hand-off / protobuf: ${ratios.median.toFixed(2)} (${ratios.min.toFixed(2)}–${ratios.max.toFixed(2)})`,
    '',
  ].join('\n'),
);
