/**
 * The blue-green smoke test's checks, run in order against one instance before it takes
 * traffic: liveness, readiness, a WebSocket round trip (ping/pong and echo), and /metrics
 * counting that round trip. Every check reports ok or FAIL with what it saw; nothing throws,
 * and every network step is bounded by the one deadline.
 */
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';

export interface SmokeTarget {
  /** The instance's base URL (http or https), optionally with a path prefix. */
  readonly baseUrl: URL;
  /** Where the instance accepts WebSocket upgrades, relative to the base URL's path. */
  readonly wsPath: string;
  /** Epoch ms after which every remaining step fails as timed out. */
  readonly deadline: number;
}

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface SmokeOutcome {
  readonly results: readonly CheckResult[];
  /** Set when the instance could not be reached at all, so the remaining checks were not run. */
  readonly unreachable?: string;
}

/** The exposition name of the original specification's message counter, as /metrics serves it. */
const MESSAGES_COUNTER = 'total_messages_total';

function endpoint(target: SmokeTarget, path: string, protocol?: string): URL {
  const url = new URL(target.baseUrl);
  url.pathname = url.pathname.replace(/\/+$/, '') + path;
  url.search = '';
  url.hash = '';
  if (protocol !== undefined) url.protocol = protocol;
  return url;
}

function remaining(target: SmokeTarget): number {
  return target.deadline - Date.now();
}

/** A short, readable cause: `ECONNREFUSED`, `timed out`, or the message. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'timed out';
    const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code) return cause.message ? `${cause.code} (${cause.message})` : cause.code;
    if (cause?.message) return cause.message;
    return err.message;
  }
  return String(err);
}

interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

async function get(target: SmokeTarget, path: string): Promise<HttpAnswer> {
  const budget = remaining(target);
  if (budget <= 0) throw Object.assign(new Error('deadline passed'), { name: 'TimeoutError' });
  const res = await fetch(endpoint(target, path), { signal: AbortSignal.timeout(budget), redirect: 'manual' });
  return { status: res.status, body: await res.text() };
}

function jsonField(body: string, field: string): unknown {
  try {
    return (JSON.parse(body) as Record<string, unknown>)[field];
  } catch {
    return undefined;
  }
}

function oneLine(body: string, max = 120): string {
  const flat = body.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** Sum of the counter's samples in a Prometheus text exposition; undefined when absent. */
export function counterValue(exposition: string, name: string): number | undefined {
  let total: number | undefined;
  for (const line of exposition.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? (\S+)/.exec(line);
    if (match?.[1] === name) total = (total ?? 0) + Number(match[2]);
  }
  return total;
}

async function checkHealthz(target: SmokeTarget): Promise<CheckResult> {
  const name = 'GET /healthz';
  const { status, body } = await get(target, '/healthz');
  const ok = status === 200 && jsonField(body, 'status') === 'ok';
  return { name, ok, detail: `${status} ${oneLine(body)}` };
}

async function checkReadyz(target: SmokeTarget): Promise<CheckResult> {
  const name = 'GET /readyz';
  try {
    const { status, body } = await get(target, '/readyz');
    const checks = jsonField(body, 'checks') as Record<string, { status: string; detail?: string }> | undefined;
    const notOk = Object.entries(checks ?? {})
      .filter(([, c]) => c.status !== 'ok')
      .map(([check, c]) => `${check}: ${c.status}${c.detail ? ` (${c.detail})` : ''}`);
    const reported = jsonField(body, 'status');
    const state = typeof reported === 'string' ? reported : oneLine(body);
    const ok = status === 200 && state === 'ready';
    return { name, ok, detail: `${status} ${state}${notOk.length > 0 ? `; ${notOk.join(', ')}` : ''}` };
  } catch (err) {
    return { name, ok: false, detail: describeError(err) };
  }
}

async function messageCount(target: SmokeTarget): Promise<number> {
  const { status, body } = await get(target, '/metrics');
  if (status !== 200) throw new Error(`${status} ${oneLine(body)}`);
  const value = counterValue(body, MESSAGES_COUNTER);
  if (value === undefined) throw new Error(`no ${MESSAGES_COUNTER} in the exposition`);
  return value;
}

/** One connection, two requests; resolves with each reply or rejects with why it could not. */
async function roundTrip(target: SmokeTarget, requests: readonly Record<string, unknown>[]): Promise<unknown[]> {
  const budget = remaining(target);
  if (budget <= 0) throw Object.assign(new Error('deadline passed'), { name: 'TimeoutError' });
  const ws = new WebSocket(endpoint(target, target.wsPath, target.baseUrl.protocol === 'https:' ? 'wss:' : 'ws:'), {
    handshakeTimeout: budget,
  });
  try {
    return await new Promise<unknown[]>((resolve, reject) => {
      const replies: unknown[] = [];
      const timer = setTimeout(() => reject(Object.assign(new Error('no reply in time'), { name: 'TimeoutError' })), budget);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      ws.on('unexpected-response', (_req, res) => fail(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
      ws.on('error', fail);
      ws.on('close', (code) => fail(new Error(`closed by the server with ${code}`)));
      ws.on('open', () => {
        for (const request of requests) ws.send(JSON.stringify(request));
      });
      ws.on('message', (data) => {
        try {
          replies.push(JSON.parse((data as Buffer).toString('utf8')));
        } catch {
          replies.push((data as Buffer).toString('utf8'));
        }
        if (replies.length === requests.length) {
          clearTimeout(timer);
          resolve(replies);
        }
      });
    });
  } finally {
    ws.removeAllListeners();
    ws.on('error', () => {});
    if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'smoke test done');
    else ws.terminate();
  }
}

async function checkRoundTrip(target: SmokeTarget): Promise<{ results: CheckResult[]; sent: number }> {
  const nonce = randomUUID();
  const ping = { type: 'ping', id: `smoke-ping-${nonce}` };
  const echo = { type: 'echo', id: `smoke-echo-${nonce}`, data: { smoke: nonce, n: [1, 2, 3] } };
  const names = ['WebSocket ping', 'WebSocket echo'];
  let replies: unknown[];
  try {
    replies = await roundTrip(target, [ping, echo]);
  } catch (err) {
    const detail = describeError(err);
    return { results: names.map((name) => ({ name, ok: false, detail })), sent: 0 };
  }
  const [pong, echoed] = replies as Record<string, unknown>[];
  const pongOk = pong?.type === 'pong' && pong.id === ping.id;
  const echoOk = echoed?.type === 'echo' && echoed.id === echo.id && JSON.stringify(echoed.data) === JSON.stringify(echo.data);
  return {
    results: [
      { name: names[0], ok: pongOk, detail: pongOk ? 'pong with the same id' : `unexpected reply ${oneLine(JSON.stringify(pong))}` },
      { name: names[1], ok: echoOk, detail: echoOk ? 'the same data back' : `unexpected reply ${oneLine(JSON.stringify(echoed))}` },
    ],
    sent: 2,
  };
}

/** Runs every check in order, handing each result to `report` as it completes. */
export async function runSmoke(target: SmokeTarget, report: (result: CheckResult) => void): Promise<SmokeOutcome> {
  const results: CheckResult[] = [];
  const record = (result: CheckResult): void => {
    results.push(result);
    report(result);
  };

  try {
    record(await checkHealthz(target));
  } catch (err) {
    const detail = `cannot reach ${endpoint(target, '/healthz').href}: ${describeError(err)}`;
    record({ name: 'GET /healthz', ok: false, detail });
    return { results, unreachable: detail };
  }
  record(await checkReadyz(target));

  let before: number | undefined;
  let metricsError: string | undefined;
  try {
    before = await messageCount(target);
  } catch (err) {
    metricsError = describeError(err);
  }

  const trip = await checkRoundTrip(target);
  trip.results.forEach(record);

  const name = 'GET /metrics counted the round trip';
  if (before === undefined) {
    record({ name, ok: false, detail: `cannot read ${MESSAGES_COUNTER}: ${metricsError}` });
  } else if (trip.sent === 0) {
    record({ name, ok: false, detail: 'no round trip to count' });
  } else {
    try {
      const after = await messageCount(target);
      // Another client may add to the counter, never take from it: at least what was sent.
      const ok = after - before >= trip.sent;
      record({ name, ok, detail: `${MESSAGES_COUNTER} ${before} → ${after} (+${after - before}, sent ${trip.sent})` });
    } catch (err) {
      record({ name, ok: false, detail: `cannot read ${MESSAGES_COUNTER}: ${describeError(err)}` });
    }
  }
  return { results };
}
