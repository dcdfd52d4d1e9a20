import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { eventually, killChildren, startChild, withTimeout, type RunningService } from './helpers.js';
import { freePort, repoPath, run } from './stack-helpers.js';

// scripts/client.mjs, the README's quick-start client (`npm run client`), against main.js as an
// operator runs it: it prints each reply, closes, and exits by itself with a meaningful code.
const CLIENT = repoPath('scripts/client.mjs');

let svc: RunningService;
before(async () => {
  svc = await startChild({ SHUTDOWN_DRAIN_DELAY_MS: '0', SHUTDOWN_TIMEOUT_MS: '2000' });
});
const clients = new Set<ChildProcess>();
after(async () => {
  for (const client of clients) if (client.exitCode === null && client.signalCode === null) client.kill('SIGKILL');
  await killChildren();
});

/** The client left running (-i), stdin open, its output collected as it comes. */
function startClient(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): { child: ChildProcess; stdout: () => string; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLIENT, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env });
  clients.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** A reply's identity, whatever position fields (epoch, offset) channel replies carry beside it. */
const core = (r: Record<string, unknown>) => ({ type: r.type, id: r.id, channel: r.channel });
const lines = (text: string) => text.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

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

test('subscribe and publish on one connection: both replies printed, exit 0 (a pushed message answers nothing)', async () => {
  // The delivery to the publisher itself usually comes before `published`.
  const { code, stdout, stderr } = await run(
    process.execPath,
    [CLIENT, svc.wsUrl, '{"type":"subscribe","id":"s","channel":"chat:self"}', '{"type":"publish","id":"p","channel":"chat:self","data":1}'],
    { timeoutMs: 15_000 },
  );
  assert.equal(code, 0, stderr);
  const replies = lines(stdout);
  assert.deepEqual(replies.filter((r) => r.type !== 'message').map(core).sort((a, b) => String(a.id).localeCompare(String(b.id))), [
    { type: 'published', id: 'p', channel: 'chat:self' },
    { type: 'subscribed', id: 's', channel: 'chat:self' },
  ]);
});

test('-i: a subscriber stays connected and prints what another client publishes; it sends stdin lines and exits 0 when stdin ends', async () => {
  const subscriber = startClient(['-i', svc.wsUrl, '{"type":"subscribe","id":"1","channel":"chat:room-42"}']);
  await eventually(() => (lines(subscriber.stdout()).some((r) => r.type === 'subscribed') ? true : undefined), 10_000, 'subscribed');

  const publisher = await run(process.execPath, [CLIENT, '-i', svc.wsUrl], {
    input: '{"type":"publish","id":"2","channel":"chat:room-42","data":{"text":"hello"}}\n\n{"type":"ping","id":"3"}\n',
    timeoutMs: 15_000,
  });
  assert.equal(publisher.code, 0, publisher.stderr);
  // A publish is answered once the broker has it, a ping at once: the replies may come in either order.
  assert.deepEqual(lines(publisher.stdout).map(core).sort((a, b) => String(a.id).localeCompare(String(b.id))), [
    { type: 'published', id: '2', channel: 'chat:room-42' },
    { type: 'pong', id: '3', channel: undefined },
  ]);

  const delivered = await eventually(() => lines(subscriber.stdout()).find((r) => r.type === 'message'), 10_000, 'the delivery');
  assert.deepEqual(delivered.data, { text: 'hello' });
  assert.equal(subscriber.child.exitCode, null, 'still connected after a delivery');

  subscriber.child.stdin!.end('{"type":"ping","id":"4"}\n');
  assert.equal(await withTimeout(subscriber.exited, 10_000, 'the subscriber to exit'), 0, subscriber.stderr());
  assert.deepEqual(lines(subscriber.stdout()).at(-1), { type: 'pong', id: '4' }, 'answered before closing');
  assert.equal(subscriber.stderr(), '');
});

test('-i: Ctrl-C closes with 1000 and exits 0; the server closing the connection first exits 1 with its code', async () => {
  const quitter = startClient(['-i', svc.wsUrl, '{"type":"ping","id":"1"}']);
  await eventually(() => (quitter.stdout().includes('pong') ? true : undefined), 10_000, 'pong');
  quitter.child.kill('SIGINT');
  assert.equal(await withTimeout(quitter.exited, 10_000, 'the client to exit on SIGINT'), 0, quitter.stderr());

  // Over MAX_MESSAGE_BYTES (64 KiB): the server closes the connection with 1009.
  const closed = startClient(['-i', svc.wsUrl]);
  closed.child.stdin!.write(`{"type":"echo","id":"big","data":"${'x'.repeat(70_000)}"}\n`);
  assert.equal(await withTimeout(closed.exited, 10_000, 'the client to exit after the server closed'), 1);
  assert.match(closed.stderr(), /^client: closed by the server with 1009/);
});

test('--wait: stays connected that long after the last answer, printing deliveries, then closes and exits 0 by itself', async () => {
  // The wait outlasts CLIENT_TIMEOUT_MS: that timeout is for unanswered messages, not for pushes.
  const subscriber = startClient(['--wait', '4', svc.wsUrl, '{"type":"subscribe","id":"1","channel":"chat:wait"}'], { ...process.env, CLIENT_TIMEOUT_MS: '1000' });
  subscriber.child.stdin!.end();
  await eventually(() => (lines(subscriber.stdout()).some((r) => r.type === 'subscribed') ? true : undefined), 10_000, 'subscribed');
  const answeredAt = performance.now();
  const publisher = await run(process.execPath, [CLIENT, svc.wsUrl, '{"type":"publish","id":"2","channel":"chat:wait","data":"later"}'], { timeoutMs: 15_000 });
  assert.equal(publisher.code, 0, publisher.stderr);

  assert.equal(await withTimeout(subscriber.exited, 20_000, 'the subscriber to exit after its wait'), 0, subscriber.stderr());
  assert.ok(performance.now() - answeredAt > 3000, 'it stayed for the wait');
  assert.deepEqual(lines(subscriber.stdout()).find((r) => r.type === 'message')?.data, 'later');
  assert.equal(subscriber.stderr(), '');

  for (const bad of [['--wait'], ['--wait', 'soon'], ['--wait=-1']]) {
    const refused = await run(process.execPath, [CLIENT, ...bad, svc.wsUrl], { timeoutMs: 15_000 });
    assert.equal(refused.code, 2, bad.join(' '));
    assert.match(refused.stderr, /--wait takes a number of seconds[\s\S]*usage: npm run client/);
  }
});
