/**
 * The shutdown sequence on its own, with no connections and a stand-in telemetry SDK: the order
 * of its steps and the last line's honesty about the telemetry outcome. The sequence with real
 * clients is test/shutdown.test.ts and test/drain.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Span } from '@opentelemetry/api';
import { pino } from 'pino';
import { shutdownBudget } from '../src/lifecycle/budget.js';
import { runShutdown, shutdownUnstarted, type ShutdownDeps, type TelemetryOutcome } from '../src/lifecycle/shutdown.js';
import { ConnectionRegistry } from '../src/ws/registry.js';

interface Line {
  level: number;
  msg: string;
  outcome?: string;
}

function sequence(outcome: TelemetryOutcome) {
  const lines: Line[] = [];
  const steps: string[] = [];
  const telemetryBudgets: number[] = [];
  const deps: ShutdownDeps = {
    budget: shutdownBudget({ drainDelayMs: 0, timeoutMs: 10_000, closeWindowMs: 1000 }),
    logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) }),
    connections: new ConnectionRegistry(),
    instruments: { shutdownDuration: { record: () => void steps.push('shutdown_duration') } },
    telemetry: {
      shutdown: (budgetMs: number) => {
        steps.push('telemetry');
        telemetryBudgets.push(budgetMs);
        return Promise.resolve(outcome);
      },
    },
    enter: (state) => void steps.push(state),
    closeWsServer: () => void steps.push('close ws server'),
    closeHttp: () => {
      steps.push('close http');
      return Promise.resolve();
    },
    closeBroker: () => {
      steps.push('close broker');
      return Promise.resolve();
    },
  };
  const span = { end: () => void steps.push('span ended') } as unknown as Span;
  return { deps, span, lines, steps, telemetryBudgets };
}

test('the steps in order; the SDK gets the timeout less the log flush share', async () => {
  const { deps, span, steps, lines, telemetryBudgets } = sequence('flushed');
  const result = await runShutdown(deps, 'test', span);
  assert.deepEqual(steps, ['draining', 'closing', 'close ws server', 'close http', 'close broker', 'shutdown_duration', 'span ended', 'telemetry', 'closed']);
  assert.deepEqual(
    lines.map((l) => l.msg),
    [
      'shutdown: draining, /readyz now reports 503',
      'shutdown: refusing new upgrades',
      'shutdown: closing connections with 1001 Going Away',
      'shutdown: connections closed, shutdown_duration recorded',
      'shutdown: telemetry SDK flushed and stopped',
    ],
  );
  assert.ok(telemetryBudgets[0] <= 8000 && telemetryBudgets[0] > 7000, `SDK budget ${telemetryBudgets[0]}`);
  assert.equal(result.forced, false);
  assert.equal(result.terminatedSockets, 0);
  assert.equal(result.telemetry, 'flushed');
  assert.ok(result.deadline > Date.now() + 9000 && result.deadline <= Date.now() + 10_000);
});

for (const [outcome, message] of [
  ['failed', 'shutdown: telemetry SDK shutdown failed'],
  ['timeout', 'shutdown: telemetry SDK shutdown timed out'],
] as const) {
  test(`a telemetry shutdown that ${outcome === 'failed' ? 'failed' : 'timed out'} is logged as such, at WARN, and the shutdown is forced`, async () => {
    const { deps, span, lines } = sequence(outcome);
    const result = await runShutdown(deps, 'test', span);
    const last = lines.at(-1)!;
    assert.equal(last.msg, message);
    assert.equal(last.level, 40);
    assert.equal(last.outcome, outcome);
    assert.ok(!lines.some((l) => l.msg.includes('flushed and stopped')));
    assert.equal(result.forced, true);
    assert.equal(result.telemetry, outcome);
  });
}

test('shutdown before start: only the telemetry, with the whole timeout', async () => {
  const budgets: number[] = [];
  const result = await shutdownUnstarted({ shutdown: (ms) => (budgets.push(ms), Promise.resolve('flushed' as const)) }, 3000);
  assert.deepEqual(budgets, [3000]);
  assert.equal(result.forced, false);
  assert.equal(result.durationSeconds, 0);
});
