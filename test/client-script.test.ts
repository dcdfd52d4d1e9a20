import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { killChildren, startChild, type RunningService } from './helpers.js';
import { freePort, repoPath, run } from './stack-helpers.js';

// scripts/client.mjs, the README's quick-start client (`npm run client`), against main.js as an
// operator runs it: it prints each reply, closes, and exits by itself with a meaningful code.
const CLIENT = repoPath('scripts/client.mjs');

let svc: RunningService;
before(async () => {
  svc = await startChild({ SHUTDOWN_DRAIN_DELAY_MS: '0', SHUTDOWN_TIMEOUT_MS: '2000' });
});
after(() => killChildren());

test('npm run client is the script', () => {
  const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.client, 'node scripts/client.mjs');
});

test('prints one reply per message, in order, and exits 0 once all are answered', async () => {
  const { code, stdout, stderr } = await run(
    process.execPath,
    [CLIENT, svc.wsUrl, '{"type":"ping","id":"1"}', '{"type":"echo","id":"2","data":{"a":[1,2]}}', 'not json'],
    { timeoutMs: 15_000 },
  );
  assert.equal(code, 0, stderr);
  const replies = stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(replies.slice(0, 2), [
    { type: 'pong', id: '1' },
    { type: 'echo', id: '2', data: { a: [1, 2] } },
  ]);
  assert.equal(replies.length, 3);
  assert.equal(replies[2].type, 'error');
  assert.equal(replies[2].code, 'bad_request');
  assert.equal(stderr, '');
});

test('with no message it sends one ping', async () => {
  const { code, stdout, stderr } = await run(process.execPath, [CLIENT, svc.wsUrl], { timeoutMs: 15_000 });
  assert.equal(code, 0, stderr);
  assert.deepEqual(JSON.parse(stdout), { type: 'pong', id: '1' });
});

test('nothing listening: exit 1 with the reason on stderr; a bad URL: exit 2 with the usage', async () => {
  const port = await freePort();
  const refused = await run(process.execPath, [CLIENT, `ws://127.0.0.1:${port}/ws`], { timeoutMs: 15_000 });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^client: .*ECONNREFUSED/);
  assert.equal(refused.stdout, '');

  const bad = await run(process.execPath, [CLIENT, 'localhost:8080'], { timeoutMs: 15_000 });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /usage: npm run client/);
});
