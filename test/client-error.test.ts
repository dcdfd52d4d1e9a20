import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { rawExchange } from './raw-ws.js';
import { sampleValue, scrape, startHarness, type Harness } from './helpers.js';

// Node's parser reports bytes that are not HTTP through 'clientError'. The service answers them
// with a JSON 400, unless a response has already started on that socket: a refusal written
// after it would corrupt the answer the client is reading, so the socket is only closed.

let harness: Harness;
let port: number;
before(async () => {
  harness = await startHarness({ env: { LOG_LEVEL: 'info' } });
  port = Number(new URL(harness.baseUrl).port);
});
after(() => harness.stop());

const malformed = async (): Promise<number> => sampleValue(await scrape(harness.baseUrl), 'rejected_http_requests_total', { reason: 'malformed_request' });

test('garbage on a fresh connection gets a JSON 400, counted as malformed_request', async () => {
  const before = await malformed();
  const answer = await rawExchange(port, 'NOT HTTP AT ALL\r\n\r\n');
  assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.ok(answer.endsWith('{"error":"malformed_request","message":"malformed HTTP request"}'));
  assert.equal(await malformed(), before + 1);
});

test('garbage pipelined behind a request whose response has started: that response alone, then the socket closes', async () => {
  const before = await malformed();
  const answer = await rawExchange(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP AT ALL\r\n\r\n');
  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(answer.endsWith('{"status":"ok"}'), `nothing written after the started response: ${JSON.stringify(answer)}`);
  assert.equal(answer.match(/HTTP\/1\.1 /g)?.length, 1);
  assert.equal(await malformed(), before, 'not a refusal: the socket is closed without an answer');
  // The next connection is served as usual.
  assert.equal((await fetch(`${harness.baseUrl}/healthz`)).status, 200);
});
