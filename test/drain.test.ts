import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, afterEach, test } from 'node:test';
import WebSocket from 'ws';
import { createRegistry, defaultHandlers } from '../src/protocol/handlers/index.js';
import { Client, eventually, killChildren, startChild, startHarness, withTimeout, type Harness, type LogLine } from './helpers.js';

// The drain: closes spread over SHUTDOWN_CLOSE_WINDOW_MS, and under continuous load every
// message the server accepted before its close frame is answered.
let harness: Harness | undefined;
afterEach(() => harness?.stop());
after(killChildren);

function localPort(ws: WebSocket): number {
  return (ws as unknown as { _socket: { localPort: number } })._socket.localPort;
}

// How the waves split and order the closes is test/close-waves.test.ts, without a clock; here the
// service uses them: every client gets 1001 and the plan is logged.
test('closes are spread in waves over SHUTDOWN_CLOSE_WINDOW_MS, not sent in one instant', async () => {
  const WINDOW = 1000;
  harness = await startHarness({ env: { SHUTDOWN_TIMEOUT_MS: '4000', SHUTDOWN_CLOSE_WINDOW_MS: String(WINDOW), LOG_LEVEL: 'info' } });
  const clients = await Promise.all(Array.from({ length: 20 }, () => Client.connect(harness!.wsUrl)));
  const arrivals = clients.map((c) =>
    (once(c.ws, 'close') as Promise<[number, Buffer]>).then(([code]) => ({ code, at: performance.now() })),
  );
  await harness.stop();
  const closes = await Promise.all(arrivals);
  assert.ok(closes.every((c) => c.code === 1001));
  const times = closes.map((c) => c.at).sort((a, b) => a - b);
  const span = times.at(-1)! - times[0];
  const distinct = new Set(times.map((t) => Math.floor((t - times[0]) / 50))).size;
  console.log(`close waves: 20 connections, window ${WINDOW} ms: closes arrived over ${span.toFixed(0)} ms in ${distinct} distinct 50 ms slots`);
  const plan = harness.logs.find((l) => l.message === 'shutdown: closing connections with 1001 Going Away')!;
  assert.deepEqual([plan.connections, plan.waves, plan.window_ms], [20, 10, WINDOW]);
});

test('a connection closes only after its in-flight async replies are sent; it keeps answering while it waits', async () => {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const handlers = createRegistry([
    ...defaultHandlers.values(),
    { type: 'gated', handle: async (m) => { await gate; return { type: 'gated', id: m.id }; } },
  ]);
  harness = await startHarness({ handlers, env: { LOG_LEVEL: 'info' } });
  const client = await Client.connect(harness.wsUrl);
  const closed = once(client.ws, 'close') as Promise<[number, Buffer]>;
  for (const id of [1, 2, 3]) client.send({ type: 'gated', id });
  assert.deepEqual(await client.request({ type: 'ping', id: 'p1' }), { type: 'pong', id: 'p1' }); // the three are in flight

  const stopping = harness.stop();
  await eventually(() => harness!.logs.find((l) => l.message === 'shutdown: closing connections with 1001 Going Away'));
  // The close frame waits for the in-flight replies, so the connection is still open and serving.
  for (const id of [4, 5]) client.send({ type: 'gated', id });
  assert.deepEqual(await client.request({ type: 'ping', id: 'p2' }), { type: 'pong', id: 'p2' });
  assert.equal(client.ws.readyState, WebSocket.OPEN);
  open();

  const [code] = await withTimeout(closed, 5000, 'the close after the replies');
  assert.equal(code, 1001);
  await stopping;
  const gated = client.replies.filter((r) => r.type === 'gated').map((r) => r.id);
  assert.deepEqual(gated.sort(), [1, 2, 3, 4, 5], 'every accepted message answered before the close frame');
  const line = harness.logs.find((l) => l.message === 'WebSocket closed')!;
  assert.deepEqual([line.messages_received, line.messages_answered, line.messages_late], [7, 7, 0]);
});

/** A client that keeps `window` messages outstanding for as long as its socket is open. */
class LoadClient {
  sent = 0;
  answered = 0;
  outOfOrder = 0;
  port = 0;
  closeCode: number | undefined;
  closedAt = 0;
  readonly closed: Promise<void>;

  constructor(readonly ws: WebSocket, private readonly window: number) {
    ws.on('message', (data) => {
      const reply = JSON.parse((data as Buffer).toString('utf8')) as { id: number };
      if (reply.id !== this.answered) this.outOfOrder++;
      this.answered++;
      this.pump();
    });
    this.closed = new Promise((resolve) => {
      ws.once('close', (code) => {
        this.closeCode = code;
        this.closedAt = performance.now();
        resolve();
      });
    });
  }

  static async open(url: string, window: number): Promise<LoadClient> {
    const ws = new WebSocket(url);
    await once(ws, 'open');
    const client = new LoadClient(ws, window);
    client.port = localPort(ws);
    client.pump();
    return client;
  }

  /** Counts a message as sent only when the socket was open to take it. */
  pump(): void {
    while (this.ws.readyState === WebSocket.OPEN && this.sent - this.answered < this.window) {
      const id = this.sent++;
      this.ws.send(JSON.stringify(id % 2 ? { type: 'ping', id } : { type: 'echo', id, data: { n: id } }));
    }
  }
}

test('drain under load: SIGTERM while clients send continuously; every accepted message answered, exit 0 in time', { timeout: 60_000 }, async () => {
  const CONNECTIONS = 40;
  const WINDOW = 16;
  const DRAIN_DELAY = 500;
  const TIMEOUT = 6000;
  const CLOSE_WINDOW = 2000;
  const svc = await startChild({
    SHUTDOWN_DRAIN_DELAY_MS: String(DRAIN_DELAY),
    SHUTDOWN_TIMEOUT_MS: String(TIMEOUT),
    SHUTDOWN_CLOSE_WINDOW_MS: String(CLOSE_WINDOW),
    RATE_LIMIT_MESSAGES_PER_SEC: '0',
  });
  const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => LoadClient.open(svc.wsUrl, WINDOW)));
  await eventually(() => (clients.every((c) => c.answered >= 50) ? true : undefined), 20_000, 'load on every connection');

  const signalledAt = performance.now();
  svc.child.kill('SIGTERM');
  await withTimeout(Promise.all(clients.map((c) => c.closed)), DRAIN_DELAY + TIMEOUT + 2000, 'every client closed');
  const { code } = await withTimeout(svc.exited, DRAIN_DELAY + TIMEOUT + 5000, 'exit');
  const exitedAfter = performance.now() - signalledAt;
  assert.equal(code, 0);

  const closedLines = new Map<number, LogLine>();
  for (const line of svc.lines) if (line.message === 'WebSocket closed') closedLines.set(line.client_port as number, line);
  let sent = 0;
  let accepted = 0;
  let answered = 0;
  let late = 0;
  for (const client of clients) {
    const line = closedLines.get(client.port);
    assert.ok(line, `the server logged the close of :${client.port}`);
    assert.equal(client.closeCode, 1001);
    assert.equal(client.outOfOrder, 0, 'replies in order, none skipped');
    assert.equal(line.messages_received, client.sent, 'everything sent reached the server');
    const acceptedHere = line.messages_received - (line.messages_late as number);
    assert.equal(line.messages_answered, acceptedHere, 'the server answered everything it accepted');
    assert.equal(client.answered, acceptedHere, 'and every answer reached the client');
    sent += client.sent;
    accepted += acceptedHere;
    answered += client.answered;
    late += line.messages_late as number;
  }
  const lost = accepted - answered;
  assert.equal(lost, 0);
  assert.equal(svc.lines.filter((l) => l.message === 'reply not sent: connection already closing').length, 0, 'no reply was dropped');

  const steps = svc.lines.filter((l) => l.message.startsWith('shutdown') || l.message.startsWith('signal'));
  const plan = steps.find((l) => l.message === 'shutdown: closing connections with 1001 Going Away')!;
  assert.deepEqual([plan.connections, plan.waves, plan.window_ms], [CONNECTIONS, 20, CLOSE_WINDOW]);
  const recorded = steps.find((l) => l.message === 'shutdown: connections closed, shutdown_duration recorded')!;
  assert.equal(recorded.terminated_sockets, 0);
  assert.ok((recorded.duration_s as number) >= (DRAIN_DELAY + CLOSE_WINDOW / 2) / 1000, 'the drain delay and the close window are in it');
  assert.ok(steps.every((l) => l.message === 'shutdown complete' || l.message.startsWith('signal') || l.request_id === plan.request_id));
  const times = clients.map((c) => c.closedAt).sort((a, b) => a - b);
  const spread = times.at(-1)! - times[0];

  console.log(
    `drain under load: ${CONNECTIONS} connections, ${sent} messages sent, ${accepted} accepted before the close frame, ` +
      `${answered} answered, ${late} arrived after it (not processed), lost = ${lost}; closes spread over ${spread.toFixed(0)} ms ` +
      `(window ${CLOSE_WINDOW} ms, ${plan.waves as number} waves); shutdown_duration ${(recorded.duration_s as number).toFixed(3)} s ` +
      `(drain delay ${DRAIN_DELAY} ms); exit 0 after ${exitedAfter.toFixed(0)} ms (bound ${DRAIN_DELAY + TIMEOUT} ms)`,
  );
});
