import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createServer, type Socket } from 'node:net';
import { after, afterEach, test } from 'node:test';
import { killChildren, sampleValue, scrape, startChild, withTimeout } from './helpers.js';
import { freePort, run } from './stack-helpers.js';

// The blue-green smoke test as a pipeline runs it: the real CLI in a child process against a
// real main.js, its printed checks and its exit code.

const SMOKE = fileURLToPath(new URL('../src/smoke/cli.js', import.meta.url));

function smoke(args: string[], timeoutMs = 30_000) {
  return run(process.execPath, [SMOKE, ...args], { timeoutMs });
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

afterEach(killChildren);

test('npm run smoke passes against a ready service, prints every check, and /metrics counted its messages', async () => {
  const svc = await startChild();
  const { code, stdout, stderr } = await run('npm', ['run', '--silent', 'smoke', '--', svc.baseUrl]);
  assert.equal(code, 0, stdout + stderr);
  assert.deepEqual(lines(stdout), [
    'ok    GET /healthz: 200 {"status":"ok"}',
    'ok    GET /readyz: 200 ready',
    'ok    WebSocket ping: pong with the same id',
    'ok    WebSocket echo: the same data back',
    'ok    GET /metrics counted the round trip: total_messages_total 0 → 2 (+2, sent 2)',
    `smoke test passed: 5 checks against ${svc.baseUrl}/`,
  ]);
  assert.equal(sampleValue(await scrape(svc.baseUrl), 'total_messages_total'), 2);
  const connected = svc.lines.filter((l) => l.message === 'WebSocket connected');
  assert.equal(connected.length, 1, 'one connection for the round trip');
  await withTimeout(
    svc.waitForLog((l) => l.message === 'WebSocket closed'),
    5000,
    'the smoke connection to close',
  );
  assert.equal(svc.lines.find((l) => l.message === 'WebSocket closed')!.close_code, 1000, 'closed politely');
});

test('a draining instance fails the smoke test: /readyz 503 names the draining check, exit 1', async () => {
  const svc = await startChild({ SHUTDOWN_DRAIN_DELAY_MS: '30000', SHUTDOWN_TIMEOUT_MS: '1000' });
  svc.child.kill('SIGTERM');
  await svc.waitForLog((l) => l.message === 'shutdown: draining, /readyz now reports 503');
  const { code, stdout } = await smoke([svc.baseUrl]);
  assert.equal(code, 1, stdout);
  const out = lines(stdout);
  assert.equal(out[0], 'ok    GET /healthz: 200 {"status":"ok"}');
  assert.equal(out[1], 'FAIL  GET /readyz: 503 not_ready; draining: fail (shutting down)');
  assert.equal(out.at(-1), `smoke test FAILED: 1 of 5 checks against ${svc.baseUrl}/`);
  svc.child.kill('SIGTERM'); // a second signal ends the drain at once
  assert.deepEqual(await withTimeout(svc.exited, 5000, 'exit'), { code: 143, signal: null });
});

test('a service whose /metrics cannot count fails the metrics check, exit 1', async () => {
  const svc = await startChild({ OTEL_SDK_DISABLED: 'true' });
  const { code, stdout } = await smoke([svc.baseUrl]);
  assert.equal(code, 1, stdout);
  const out = lines(stdout);
  assert.equal(out[1], 'ok    GET /readyz: 200 ready; telemetry_sdk: disabled (OTEL_SDK_DISABLED=true)');
  assert.match(out[4], /^FAIL {2}GET \/metrics counted the round trip: cannot read total_messages_total: 503 \{"error":"metrics_unavailable"/);
  assert.equal(out.at(-1), `smoke test FAILED: 1 of 5 checks against ${svc.baseUrl}/`);
});

test('a WebSocket path that refuses the upgrade fails the round trip, and there is nothing to count', async () => {
  const svc = await startChild();
  const { code, stdout } = await smoke([svc.baseUrl, '--ws-path', '/not-ws']);
  assert.equal(code, 1, stdout);
  assert.deepEqual(lines(stdout).slice(2), [
    'FAIL  WebSocket ping: upgrade refused: HTTP 404',
    'FAIL  WebSocket echo: upgrade refused: HTTP 404',
    'FAIL  GET /metrics counted the round trip: no round trip to count',
    `smoke test FAILED: 3 of 5 checks against ${svc.baseUrl}/`,
  ]);
});

test('an unreachable URL: a clear message and exit 1', async () => {
  const port = await freePort();
  const { code, stdout } = await smoke([`http://127.0.0.1:${port}`]);
  assert.equal(code, 1, stdout);
  const out = lines(stdout);
  assert.equal(out.length, 2, stdout);
  assert.match(out[0], new RegExp(`^FAIL {2}GET /healthz: cannot reach http://127\\.0\\.0\\.1:${port}/healthz: ECONNREFUSED\\b`));
  assert.equal(out[1], `smoke test FAILED: http://127.0.0.1:${port}/ is unreachable`);
});

let silent: ReturnType<typeof createServer> | undefined;
const held: Socket[] = [];
after(() => {
  held.forEach((s) => s.destroy());
  silent?.close();
});

test('a server that accepts connections and never answers: bounded by --timeout-ms, exit 1', async () => {
  silent = createServer((socket) => held.push(socket));
  await new Promise<void>((resolve) => silent!.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as { port: number };
  const { code, stdout } = await smoke([`http://127.0.0.1:${port}`, '--timeout-ms', '500'], 15_000);
  assert.equal(code, 1, stdout);
  assert.deepEqual(lines(stdout), [
    `FAIL  GET /healthz: cannot reach http://127.0.0.1:${port}/healthz: timed out`,
    `smoke test FAILED: http://127.0.0.1:${port}/ is unreachable`,
  ]);
});

test('bad arguments: the reason and the usage on stderr, exit 2, no checks run', async () => {
  const usage = 'usage: npm run smoke -- <base-url> [--ws-path /ws] [--timeout-ms 10000]';
  const cases: [string[], string][] = [
    [[], 'smoke: missing <base-url>'],
    [['not a url'], 'smoke: <base-url> "not a url" is not a URL (e.g. http://10.0.0.5:8080)'],
    [['localhost:8080'], 'smoke: <base-url> must start with http:// or https:// (e.g. http://10.0.0.5:8080), got "localhost:8080"'],
    [['ftp://127.0.0.1'], 'smoke: <base-url> must start with http:// or https:// (e.g. http://10.0.0.5:8080), got "ftp://127.0.0.1"'],
    [['http://a', 'http://b'], 'smoke: expected one <base-url>, got 2'],
    [['http://127.0.0.1', '--timeout-ms', '5'], 'smoke: --timeout-ms must be an integer from 100 to 600000, got "5"'],
    [['http://127.0.0.1', '--ws-path', 'ws'], 'smoke: --ws-path must start with /, got "ws"'],
  ];
  for (const [args, message] of cases) {
    const { code, stdout, stderr } = await smoke(args);
    assert.equal(code, 2, `${args.join(' ')}: ${stdout}${stderr}`);
    assert.deepEqual(lines(stderr), [message, usage]);
    assert.equal(stdout, '');
  }
  const unknown = await smoke(['http://127.0.0.1', '--bogus']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^smoke: Unknown option '--bogus'/);
});
