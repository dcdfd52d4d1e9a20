/**
 * Counts the items in an OTLP/HTTP protobuf export request without a protobuf library: spans in
 * ExportTraceServiceRequest, log records in ExportLogsServiceRequest, data points' metrics in
 * ExportMetricsServiceRequest. All three nest the same way: field 1 (resource_*) holds field 2
 * (scope_*), which holds the items as field 2.
 */

/** Length-delimited fields of `buf[start, end)` with the given number, as [start, end) ranges. */
function* lengthDelimited(buf: Buffer, start: number, end: number, field: number): Generator<[number, number]> {
  let at = start;
  const varint = (): number => {
    let value = 0;
    let shift = 0;
    for (;;) {
      const byte = buf[at++];
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
      shift += 7;
    }
  };
  while (at < end) {
    const key = varint();
    const wire = key & 7;
    if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const length = varint();
      if (key >>> 3 === field) yield [at, at + length];
      at += length;
    } else throw new Error(`unexpected protobuf wire type ${wire}`);
  }
}

export function countItems(body: Buffer): number {
  let items = 0;
  for (const [rs, re] of lengthDelimited(body, 0, body.length, 1)) {
    for (const [ss, se] of lengthDelimited(body, rs, re, 2)) {
      for (let it = lengthDelimited(body, ss, se, 2); !it.next().done; ) items++;
    }
  }
  return items;
}
