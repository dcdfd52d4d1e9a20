/**
 * An OTLP/HTTP receiver for tests: it accepts what a collector's OTLP receiver accepts
 * (`/v1/traces`, `/v1/metrics`, `/v1/logs`, as application/x-protobuf or application/json) and
 * decodes it from the wire, field number by field number, as a collector would — so a test sees
 * exactly what left the process, not what the SDK meant to send.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type AttributeValue = string | number | boolean | null | AttributeValue[] | { [key: string]: AttributeValue };
export type Attributes = Record<string, AttributeValue>;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Attributes;
  links: { traceId: string; spanId: string }[];
  events: { name: string; attributes: Attributes }[];
  status: { code: number; message: string };
  resource: Attributes;
}

export interface ReceivedLog {
  timeUnixNano: bigint;
  severityNumber: number;
  severityText: string;
  body: AttributeValue;
  attributes: Attributes;
  traceId: string;
  spanId: string;
  flags: number;
  resource: Attributes;
}

export interface ReceivedPoint {
  attributes: Attributes;
  value?: number;
  count?: number;
  sum?: number;
  bucketCounts?: number[];
  explicitBounds?: number[];
}

export interface ReceivedMetric {
  name: string;
  unit: string;
  kind: 'gauge' | 'sum' | 'histogram' | 'other';
  points: ReceivedPoint[];
  resource: Attributes;
}

export interface OtlpReceiver {
  readonly url: string;
  readonly spans: ReceivedSpan[];
  readonly logs: ReceivedLog[];
  /** Every metric of every export, in arrival order. */
  readonly metrics: ReceivedMetric[];
  /** Content types of the requests, per signal path. */
  readonly contentTypes: Map<string, Set<string>>;
  close(): Promise<void>;
}

// ---- protobuf wire format ----------------------------------------------------------------

type Field = { no: number; wire: number; varint?: bigint; bytes?: Buffer; fixed?: Buffer };

function readVarint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const byte = buf[pos++];
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
}

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, next] = readVarint(buf, pos);
    pos = next;
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      const [value, after] = readVarint(buf, pos);
      out.push({ no, wire, varint: value });
      pos = after;
    } else if (wire === 1) {
      out.push({ no, wire, fixed: buf.subarray(pos, pos + 8) });
      pos += 8;
    } else if (wire === 2) {
      const [length, after] = readVarint(buf, pos);
      const end = after + Number(length);
      if (end > buf.length) throw new Error('truncated length-delimited field');
      out.push({ no, wire, bytes: buf.subarray(after, end) });
      pos = end;
    } else if (wire === 5) {
      out.push({ no, wire, fixed: buf.subarray(pos, pos + 4) });
      pos += 4;
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
  }
  return out;
}

const all = (fs: Field[], no: number): Field[] => fs.filter((f) => f.no === no);
const first = (fs: Field[], no: number): Field | undefined => fs.find((f) => f.no === no);
const str = (fs: Field[], no: number): string => first(fs, no)?.bytes?.toString('utf8') ?? '';
const hex = (fs: Field[], no: number): string => first(fs, no)?.bytes?.toString('hex') ?? '';
const varint = (fs: Field[], no: number): number => Number(first(fs, no)?.varint ?? 0n);
const fixed64 = (fs: Field[], no: number): bigint => first(fs, no)?.fixed?.readBigUInt64LE() ?? 0n;
const fixed32 = (fs: Field[], no: number): number => first(fs, no)?.fixed?.readUInt32LE() ?? 0;
const double = (fs: Field[], no: number): number | undefined => first(fs, no)?.fixed?.readDoubleLE();

function packedFixed64(fs: Field[], no: number): number[] {
  return all(fs, no).flatMap((f) => {
    if (f.fixed) return [Number(f.fixed.readBigUInt64LE())];
    const values: number[] = [];
    for (let i = 0; i + 8 <= f.bytes!.length; i += 8) values.push(Number(f.bytes!.readBigUInt64LE(i)));
    return values;
  });
}

function packedDouble(fs: Field[], no: number): number[] {
  return all(fs, no).flatMap((f) => {
    if (f.fixed) return [f.fixed.readDoubleLE()];
    const values: number[] = [];
    for (let i = 0; i + 8 <= f.bytes!.length; i += 8) values.push(f.bytes!.readDoubleLE(i));
    return values;
  });
}

// AnyValue: 1 string, 2 bool, 3 int, 4 double, 5 array, 6 kvlist, 7 bytes
function anyValue(buf: Buffer): AttributeValue {
  const f = fields(buf)[0];
  if (f === undefined) return null;
  switch (f.no) {
    case 1:
      return f.bytes!.toString('utf8');
    case 2:
      return f.varint !== 0n;
    case 3:
      return Number(BigInt.asIntN(64, f.varint!));
    case 4:
      return f.fixed!.readDoubleLE();
    case 5:
      return all(fields(f.bytes!), 1).map((v) => anyValue(v.bytes!));
    case 6:
      return keyValues(all(fields(f.bytes!), 1));
    case 7:
      return f.bytes!.toString('hex');
    default:
      return null;
  }
}

// KeyValue: 1 key, 2 value
function keyValues(list: Field[]): Attributes {
  const out: Attributes = {};
  for (const kv of list) {
    const fs = fields(kv.bytes!);
    out[str(fs, 1)] = first(fs, 2) ? anyValue(first(fs, 2)!.bytes!) : null;
  }
  return out;
}

// Resource: 1 attributes
const resourceOf = (fs: Field[]): Attributes => (first(fs, 1) ? keyValues(all(fields(first(fs, 1)!.bytes!), 1)) : {});

function decodeTracesProto(body: Buffer): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of all(fields(body), 1)) {
    const rsf = fields(rs.bytes!);
    const resource = resourceOf(rsf);
    for (const ss of all(rsf, 2)) {
      for (const sp of all(fields(ss.bytes!), 2)) {
        const f = fields(sp.bytes!);
        const status = first(f, 15) ? fields(first(f, 15)!.bytes!) : [];
        spans.push({
          traceId: hex(f, 1),
          spanId: hex(f, 2),
          parentSpanId: hex(f, 4),
          name: str(f, 5),
          kind: varint(f, 6),
          startTimeUnixNano: fixed64(f, 7),
          endTimeUnixNano: fixed64(f, 8),
          attributes: keyValues(all(f, 9)),
          events: all(f, 11).map((e) => {
            const ef = fields(e.bytes!);
            return { name: str(ef, 2), attributes: keyValues(all(ef, 3)) };
          }),
          links: all(f, 13).map((l) => {
            const lf = fields(l.bytes!);
            return { traceId: hex(lf, 1), spanId: hex(lf, 2) };
          }),
          status: { code: varint(status, 3), message: str(status, 2) },
          resource,
        });
      }
    }
  }
  return spans;
}

function decodeLogsProto(body: Buffer): ReceivedLog[] {
  const logs: ReceivedLog[] = [];
  for (const rl of all(fields(body), 1)) {
    const rlf = fields(rl.bytes!);
    const resource = resourceOf(rlf);
    for (const sl of all(rlf, 2)) {
      for (const lr of all(fields(sl.bytes!), 2)) {
        const f = fields(lr.bytes!);
        logs.push({
          timeUnixNano: fixed64(f, 1),
          severityNumber: varint(f, 2),
          severityText: str(f, 3),
          body: first(f, 5) ? anyValue(first(f, 5)!.bytes!) : null,
          attributes: keyValues(all(f, 6)),
          flags: fixed32(f, 8),
          traceId: hex(f, 9),
          spanId: hex(f, 10),
          resource,
        });
      }
    }
  }
  return logs;
}

function numberPoint(f: Field[]): ReceivedPoint {
  const asInt = first(f, 6)?.fixed?.readBigInt64LE();
  return { attributes: keyValues(all(f, 7)), value: asInt === undefined ? double(f, 4) : Number(asInt) };
}

function histogramPoint(f: Field[]): ReceivedPoint {
  return {
    attributes: keyValues(all(f, 9)),
    count: Number(fixed64(f, 4)),
    sum: double(f, 5),
    bucketCounts: packedFixed64(f, 6),
    explicitBounds: packedDouble(f, 7),
  };
}

function decodeMetricsProto(body: Buffer): ReceivedMetric[] {
  const metrics: ReceivedMetric[] = [];
  for (const rm of all(fields(body), 1)) {
    const rmf = fields(rm.bytes!);
    const resource = resourceOf(rmf);
    for (const sm of all(rmf, 2)) {
      for (const m of all(fields(sm.bytes!), 2)) {
        const f = fields(m.bytes!);
        const base = { name: str(f, 1), unit: str(f, 3), resource };
        const gauge = first(f, 5);
        const sum = first(f, 7);
        const histogram = first(f, 9);
        if (gauge) metrics.push({ ...base, kind: 'gauge', points: all(fields(gauge.bytes!), 1).map((p) => numberPoint(fields(p.bytes!))) });
        else if (sum) metrics.push({ ...base, kind: 'sum', points: all(fields(sum.bytes!), 1).map((p) => numberPoint(fields(p.bytes!))) });
        else if (histogram) metrics.push({ ...base, kind: 'histogram', points: all(fields(histogram.bytes!), 1).map((p) => histogramPoint(fields(p.bytes!))) });
        else metrics.push({ ...base, kind: 'other', points: [] });
      }
    }
  }
  return metrics;
}

// ---- OTLP/JSON (camelCase fields, hex ids, 64-bit integers as strings) -------------------------

type Json = Record<string, unknown>;
const list = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);

function jsonAny(v: Json | undefined): AttributeValue {
  if (v === undefined) return null;
  if ('stringValue' in v) return v.stringValue as string;
  if ('boolValue' in v) return v.boolValue as boolean;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return Number(v.doubleValue);
  if ('arrayValue' in v) return list((v.arrayValue as Json).values).map(jsonAny);
  if ('kvlistValue' in v) return jsonAttrs((v.kvlistValue as Json).values);
  return null;
}

function jsonAttrs(v: unknown): Attributes {
  const out: Attributes = {};
  for (const kv of list(v)) out[kv.key as string] = jsonAny(kv.value as Json);
  return out;
}

function decodeTracesJson(body: Json): ReceivedSpan[] {
  return list(body.resourceSpans).flatMap((rs) => {
    const resource = jsonAttrs((rs.resource as Json | undefined)?.attributes);
    return list(rs.scopeSpans).flatMap((ss) =>
      list(ss.spans).map((s) => ({
        traceId: String(s.traceId ?? ''),
        spanId: String(s.spanId ?? ''),
        parentSpanId: String(s.parentSpanId ?? ''),
        name: String(s.name),
        kind: Number(s.kind ?? 0),
        startTimeUnixNano: BigInt(String(s.startTimeUnixNano ?? 0)),
        endTimeUnixNano: BigInt(String(s.endTimeUnixNano ?? 0)),
        attributes: jsonAttrs(s.attributes),
        events: list(s.events).map((e) => ({ name: String(e.name), attributes: jsonAttrs(e.attributes) })),
        links: list(s.links).map((l) => ({ traceId: String(l.traceId), spanId: String(l.spanId) })),
        status: { code: Number((s.status as Json | undefined)?.code ?? 0), message: String((s.status as Json | undefined)?.message ?? '') },
        resource,
      })),
    );
  });
}

function decodeLogsJson(body: Json): ReceivedLog[] {
  return list(body.resourceLogs).flatMap((rl) => {
    const resource = jsonAttrs((rl.resource as Json | undefined)?.attributes);
    return list(rl.scopeLogs).flatMap((sl) =>
      list(sl.logRecords).map((r) => ({
        timeUnixNano: BigInt(String(r.timeUnixNano ?? 0)),
        severityNumber: Number(r.severityNumber ?? 0),
        severityText: String(r.severityText ?? ''),
        body: jsonAny(r.body as Json | undefined),
        attributes: jsonAttrs(r.attributes),
        traceId: String(r.traceId ?? ''),
        spanId: String(r.spanId ?? ''),
        flags: Number(r.flags ?? 0),
        resource,
      })),
    );
  });
}

function decodeMetricsJson(body: Json): ReceivedMetric[] {
  return list(body.resourceMetrics).flatMap((rm) => {
    const resource = jsonAttrs((rm.resource as Json | undefined)?.attributes);
    return list(rm.scopeMetrics).flatMap((sm) =>
      list(sm.metrics).map((m): ReceivedMetric => {
        const base = { name: String(m.name), unit: String(m.unit ?? ''), resource };
        const numberPoints = (d: Json) =>
          list(d.dataPoints).map((p) => ({ attributes: jsonAttrs(p.attributes), value: Number(p.asInt ?? p.asDouble) }));
        if (m.gauge) return { ...base, kind: 'gauge', points: numberPoints(m.gauge as Json) };
        if (m.sum) return { ...base, kind: 'sum', points: numberPoints(m.sum as Json) };
        if (m.histogram) {
          return {
            ...base,
            kind: 'histogram',
            points: list((m.histogram as Json).dataPoints).map((p) => ({
              attributes: jsonAttrs(p.attributes),
              count: Number(p.count),
              sum: Number(p.sum),
              bucketCounts: list(p.bucketCounts).map(Number),
              explicitBounds: list(p.explicitBounds).map(Number),
            })),
          };
        }
        return { ...base, kind: 'other', points: [] };
      }),
    );
  });
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const logs: ReceivedLog[] = [];
  const metrics: ReceivedMetric[] = [];
  const contentTypes = new Map<string, Set<string>>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const type = (req.headers['content-type'] ?? '').split(';')[0].trim();
      const path = req.url ?? '';
      if (!contentTypes.has(path)) contentTypes.set(path, new Set());
      contentTypes.get(path)!.add(type);
      try {
        const json = type === 'application/json' ? (JSON.parse(body.toString('utf8')) as Json) : undefined;
        if (type !== 'application/json' && type !== 'application/x-protobuf') throw new Error(`unsupported content type ${type}`);
        if (path === '/v1/traces') spans.push(...(json ? decodeTracesJson(json) : decodeTracesProto(body)));
        else if (path === '/v1/logs') logs.push(...(json ? decodeLogsJson(json) : decodeLogsProto(body)));
        else if (path === '/v1/metrics') metrics.push(...(json ? decodeMetricsJson(json) : decodeMetricsProto(body)));
        else {
          res.writeHead(404).end();
          return;
        }
      } catch (err) {
        res.writeHead(400, { 'Content-Type': 'text/plain' }).end(String(err));
        return;
      }
      // An empty Export*ServiceResponse: full success.
      if (type === 'application/json') res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      else res.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    logs,
    metrics,
    contentTypes,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
