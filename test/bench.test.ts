/**
 * The benchmark harness in its tiny mode: proves `npm run bench` works end to end (every
 * variant's server, the load generator, the OTLP sink, every echo scenario, every attack of the
 * abuse scenario against A and C) and writes well-formed results; the fan-out scenarios are
 * bench-fanout.test.ts's. It asserts no timing: the
 * numbers of a tiny run on a shared machine mean nothing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ABUSE_DEFAULT_VARIANTS } from '../bench/abuse.js';
import { ATTACKS } from '../bench/abuse-protocol.js';
import type { Results } from '../bench/run.js';
import { SCENARIO_NAMES } from '../bench/scenarios.js';
import { VARIANT_NAMES } from '../bench/variants.js';
import { runBench } from './bench-run.js';
import { withTimeout } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ws-service-bench-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Every number anywhere under `value`, with its path. */
function numbers(value: unknown, path = ''): [string, number][] {
  if (typeof value === 'number') return [[path, value]];
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => numbers(v, `${path}.${k}`));
}

/** Per-round measurements that cannot be zero or negative in any run that worked, by where the rounds are. */
const POSITIVE: Record<string, { rounds: keyof Results['settings']['rounds']; paths: string[] }> = {
  echo_64: { rounds: 'echo', paths: ['count', 'cpuSeconds', 'perCpuSecond', 'windowRate', 'window.latencyUs.p50', 'window.latencyUs.p99'] },
  echo_1k: { rounds: 'echo', paths: ['count', 'cpuSeconds', 'perCpuSecond', 'windowRate'] },
  latency_half_load: { rounds: 'latency', paths: ['count', 'window.sent', 'window.latencyUs.p50', 'window.latencyUs.p99', 'window.latencyUs.p999'] },
  churn: { rounds: 'churn', paths: ['count', 'perCpuSecond', 'windowRate', 'window.latencyUs.p99'] },
  idle_memory: { rounds: 'idle', paths: ['connections', 'heapBytesPerConnection'] },
};

test('tiny mode runs every variant and scenario and writes well-formed results', async () => {
  const out = join(dir, 'tiny.json');
  // The fan-out scenarios have a test of their own (bench-fanout.test.ts).
  const { code, stdout, stderr } = await runBench(['--tiny', '--only', SCENARIO_NAMES.join(','), '--out', out], 170_000, 'the tiny benchmark run');
  assert.equal(code, 0, stderr);

  const results = JSON.parse(readFileSync(out, 'utf8')) as Results;
  assert.equal(results.mode, 'tiny');
  assert.deepEqual(results.variants.map((v) => v.name), [...VARIANT_NAMES]);
  assert.ok(Number.isFinite(results.latencyRate) && results.latencyRate > 0);
  assert.ok(results.machine.cores >= 1 && results.machine.node === process.version);
  assert.equal(results.schema, 3);
  assert.equal(results.fanout, undefined, 'no fan-out scenario ran');

  for (const variant of VARIANT_NAMES) {
    const v = results.variants.find((x) => x.name === variant)!;
    // Without --variants, the abuse scenario takes A and C only.
    const expected = SCENARIO_NAMES.filter((s) => s !== 'abuse' || ABUSE_DEFAULT_VARIANTS.includes(variant));
    assert.deepEqual(Object.keys(v.scenarios).sort(), [...expected].sort(), `${variant} has every scenario`);
    for (const [path, n] of numbers(v.scenarios)) assert.ok(Number.isFinite(n), `${variant}${path} = ${n}`);
    for (const [where, { rounds: kind, paths }] of Object.entries(POSITIVE)) {
      const rounds = (v.scenarios as Record<string, unknown[]>)[where];
      assert.equal(rounds.length, results.settings.rounds[kind], `${variant} ${where} rounds`);
      for (const round of rounds) {
        const all = new Map(numbers(round).map(([path, n]) => [path.slice(1), n]));
        for (const path of paths) assert.ok((all.get(path) ?? 0) > 0, `${variant}.${where}.${path} = ${all.get(path)}`);
      }
    }
    for (const scrape of v.scenarios.metrics_scrape!) {
      if (variant === 'A' || variant === 'B') assert.equal(scrape.applicable, false, `${variant} has no /metrics to scrape`);
      else assert.ok(scrape.applicable && scrape.p50Ms > 0 && scrape.bytes > 0, `${variant} scraped /metrics`);
    }
    // D samples everything, so its spans fill export batches at once; E's 10% may not in so short a run.
    const exported = variant === 'D' ? ['traces', 'logs'] : variant === 'E' ? ['logs'] : [];
    for (const signal of exported) assert.ok((v.sink?.[signal]?.items ?? 0) > 0, `${variant} exported ${signal} to the sink`);
  }

  const abuse = results.settings.abuse;
  for (const variant of ABUSE_DEFAULT_VARIANTS) {
    const runs = results.variants.find((x) => x.name === variant)!.scenarios.abuse!;
    assert.deepEqual(runs.map((r) => r.attack), [...ATTACKS], `${variant} met every attack in order`);
    for (const run of runs) {
      const where = `${variant} ${run.attack}`;
      assert.equal(run.serverExited, undefined, `${where}: the server survived`);
      assert.ok(run.rssBefore > 0 && run.rssPeak >= run.rssBefore, `${where}: RSS ${run.rssBefore} → ${run.rssPeak}`);
      const { pings, healthz, connects } = run.calm;
      assert.ok(pings.sent > 0 && pings.answered + pings.unanswered === pings.sent, `${where}: pings ${JSON.stringify(pings)}`);
      assert.ok(pings.answered > 0 && pings.latencyUs.p50 > 0 && pings.latencyUs.p99 >= pings.latencyUs.p50, `${where}: ping latency`);
      assert.ok(healthz.ok > 0 && healthz.latencyUs.p99 > 0, `${where}: /healthz answered (the bare server's too)`);
      assert.ok(connects.tried > 0 && connects.opened + connects.refused + connects.failed <= connects.tried, `${where}: fresh connects`);
      const a = run.attacker;
      assert.equal(a.kind, run.attack);
      if (run.attack === 'pipelined_metrics') {
        assert.equal(a.opened, abuse.pipelined.sockets, where);
        assert.equal(a.sent, abuse.pipelined.sockets * abuse.pipelined.requests, where);
        if (variant === 'A') {
          // The bare server has no /metrics: it answers every request 404.
          assert.ok((a.answers['404'] ?? 0) > 0, `${where}: answers ${JSON.stringify(a.answers)}`);
        } else {
          // What the service's attacker reads back depends on its pipelining bound (answered, or
          // the socket ended unread): only that whatever it read was an HTTP status is certain.
          for (const status of Object.keys(a.answers)) assert.match(status, /^[1-5]\d\d$/, `${where}: answers ${JSON.stringify(a.answers)}`);
        }
      }
      if (run.attack === 'costly_json') {
        // Echoed, refused with an error code, or closed for size: the server answered somehow.
        const answered = Object.values(a.answers).reduce((sum, n) => sum + n, 0);
        assert.ok(a.sent > 0 && (answered > 0 || a.closedByServer > 0), `${where}: ${JSON.stringify(a)}`);
      }
      if (run.attack === 'slow_readers') assert.ok(a.opened === abuse.slow.connections && a.bytesSent > 0, `${where}: ${JSON.stringify(a)}`);
      if (run.attack === 'hoarding') assert.equal(a.opened, abuse.hoard.connections, where);
    }
  }
  assert.deepEqual(
    results.summary.abuse.map((r) => `${r.attack} ${r.variant}`),
    ATTACKS.flatMap((attack) => ABUSE_DEFAULT_VARIANTS.map((v) => `${attack} ${v}`)),
  );
  assert.ok(stdout.includes('Abuse: one hostile client at a time'), 'the abuse table is on stdout');

  for (const variant of ['B', 'C', 'D', 'E'] as const) {
    const ratios = results.summary.ratios[variant]!;
    for (const [name, ratio] of Object.entries(ratios)) {
      // RSS can shrink across a GC: in a run this small its sign is not guaranteed.
      const positive = !name.startsWith('memory');
      assert.ok(Number.isFinite(ratio.value.median) && (!positive || ratio.value.median > 0), `${variant} ${name}`);
      assert.equal(typeof ratio.met, 'boolean');
    }
  }

  // The table on stdout names every variant and every ratio against A.
  assert.match(stdout, /^\s+A\s+B\s+C\s+D\s+E$/m);
  for (const label of ['throughput vs A, 64 B', 'p99 at half load vs A', 'RSS per idle connection vs A']) assert.ok(stdout.includes(label), label);
  assert.ok(existsSync(out.replace(/\.json$/, '.md')), 'the Markdown table is written beside the JSON');
});

test('the export off-loading measurement runs and prints both costs and their ratio', async () => {
  const script = fileURLToPath(new URL('../bench/offload.js', import.meta.url));
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const code = await withTimeout(new Promise<number | null>((resolve) => child.once('exit', resolve)), 120_000, 'bench/offload.js to finish');
  assert.equal(code, 0, stderr);
  // Well-formed, positive numbers only: the values themselves are the machine's.
  const bytes = Number(/\((\d+) bytes of OTLP protobuf\)/.exec(stdout)?.[1]);
  assert.ok(bytes > 512 * 50, `a batch of 512 spans serialises to more than 50 bytes a span: ${stdout}`);
  for (const label of ['OTLP protobuf serialisation, per span:', 'hand-off to a worker (flatten + V8 serialise), per span:']) {
    const value = Number(new RegExp(`${label.replace(/[()+]/g, '\\$&')}\\s+([\\d.]+) µs`).exec(stdout)?.[1]);
    assert.ok(value > 0, `${label} ${stdout}`);
  }
  assert.match(stdout, /hand-off \/ protobuf: \d+\.\d\d \(\d+\.\d\d–\d+\.\d\d\)/);
});
