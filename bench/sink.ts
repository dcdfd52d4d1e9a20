/**
 * The OTLP sink for variants D and E: accepts every OTLP/HTTP export on 127.0.0.1, reads and
 * drops the body, and answers 200 with an empty body of the request's content type (an empty
 * protobuf message is a valid Export*ServiceResponse; `{}` for JSON). Counts requests, bytes and
 * items (spans, log records, metrics) per variant and signal (`D/traces`), so the report can
 * show the exports happened and whether spans were dropped on the way. Runs in its own process.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { countItems } from './otlp-count.js';
import type { SinkCounts, SinkRequest } from './sink-protocol.js';

const counts: SinkCounts = {};

const server = createServer((req, res) => {
  // Each exporting variant gets its own endpoint path (http://…/D): its exports arrive as /D/v1/traces.
  const path = (req.url ?? '/').replace(/\?.*$/, '');
  const signal = path.replace(/^\/([^/]+)\/v1\//, '$1/') || 'unknown';
  const entry = (counts[signal] ??= { requests: 0, bytes: 0, items: 0 });
  entry.requests++;
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => {
    entry.bytes += chunk.length;
    chunks.push(chunk);
  });
  req.on('end', () => {
    const json = (req.headers['content-type'] ?? '').includes('json');
    if (!json && req.headers['content-encoding'] === undefined) {
      try {
        entry.items += countItems(Buffer.concat(chunks));
      } catch {
        entry.items = Number.NaN;
      }
    }
    const body = json ? '{}' : '';
    res.writeHead(200, { 'Content-Type': json ? 'application/json' : 'application/x-protobuf', 'Content-Length': body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;

process.on('message', (request: SinkRequest) => {
  if (request.op === 'counts') process.send?.({ op: 'counts', id: request.id, counts });
  if (request.op === 'reset') {
    for (const key of Object.keys(counts)) delete counts[key];
    process.send?.({ op: 'reset', id: request.id });
  }
});
process.on('disconnect', () => process.exit(0));

server.listen(0, '127.0.0.1', () => {
  process.send?.({ op: 'listening', port: (server.address() as AddressInfo).port });
});
