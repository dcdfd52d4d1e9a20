import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CLOSE_WINDOW_MAX_SHARE,
  LOG_FLUSH_SHARE,
  logExportTimeoutFor,
  shutdownBudget,
  SOCKET_CLOSE_SHARE,
  telemetryShutdownMs,
} from '../src/lifecycle/budget.js';
import { ConfigError, loadConfig } from '../src/config/config.js';

test('the shares: waves within 40 %, sockets terminated at 50 %, the last 20 % for the log flush', () => {
  assert.equal(CLOSE_WINDOW_MAX_SHARE, 0.4);
  assert.equal(SOCKET_CLOSE_SHARE, 0.5);
  assert.equal(LOG_FLUSH_SHARE, 0.2);
  assert.ok(CLOSE_WINDOW_MAX_SHARE < SOCKET_CLOSE_SHARE, 'the last wave has time for its close handshakes');
  assert.ok(SOCKET_CLOSE_SHARE + LOG_FLUSH_SHARE < 1, 'the telemetry SDK gets a share too');
});

test('shutdownBudget: the drain delay and close window as given, the shares of the timeout', () => {
  assert.deepEqual(shutdownBudget({ drainDelayMs: 5000, timeoutMs: 10_000, closeWindowMs: 1000 }), {
    drainDelayMs: 5000,
    timeoutMs: 10_000,
    closeWindowMs: 1000,
    socketCloseMs: 5000,
    logFlushMs: 2000,
  });
  const odd = shutdownBudget({ drainDelayMs: 0, timeoutMs: 101, closeWindowMs: 0 });
  assert.equal(odd.socketCloseMs, 50.5, 'not rounded: a timer takes fractions');
  assert.equal(odd.logFlushMs, 101 * 0.2);
});

test('telemetryShutdownMs: what is left before the deadline, less the log flush', () => {
  const budget = shutdownBudget({ drainDelayMs: 0, timeoutMs: 10_000, closeWindowMs: 1000 });
  const deadline = 1_000_000 + 10_000;
  assert.equal(telemetryShutdownMs(budget, deadline, 1_000_000), 8000, 'nothing spent yet');
  assert.equal(telemetryShutdownMs(budget, deadline, 1_000_000 + 5000), 3000, 'after the sockets used their share');
  assert.ok(telemetryShutdownMs(budget, deadline, deadline) < 0, 'overspent: the SDK gets nothing');
});

test('logExportTimeoutFor: two export attempts fit in the log flush share', () => {
  assert.equal(logExportTimeoutFor(30_000, 10_000), 1000, 'lowered: 20 % of 10 s, halved');
  assert.equal(logExportTimeoutFor(500, 10_000), 500, 'a configured timeout that fits is kept');
  assert.equal(logExportTimeoutFor(30_000, 1005), 100, 'whole milliseconds, rounded down');
});

test('config: SHUTDOWN_CLOSE_WINDOW_MS is bounded by CLOSE_WINDOW_MAX_SHARE of SHUTDOWN_TIMEOUT_MS', () => {
  const max = Math.floor(2000 * CLOSE_WINDOW_MAX_SHARE);
  assert.equal(loadConfig({ SHUTDOWN_TIMEOUT_MS: '2000', SHUTDOWN_CLOSE_WINDOW_MS: String(max) }).shutdownCloseWindowMs, max);
  assert.throws(() => loadConfig({ SHUTDOWN_TIMEOUT_MS: '2000', SHUTDOWN_CLOSE_WINDOW_MS: String(max + 1) }), ConfigError);
});
