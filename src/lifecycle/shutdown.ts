/**
 * The shutdown sequence for blue-green deploys, step by step:
 *  1. draining: /readyz answers 503 for the drain delay while the load balancer notices;
 *     upgrades are still accepted.
 *  2. closing: upgrades refused (503); the heartbeat stops.
 *  3. every connection closed with 1001 in waves over the close window, each once its in-flight
 *     messages are answered;
 *  4. connections still open when the sockets' share of the budget is spent are terminated;
 *  5. the HTTP server closed with every connection it still holds;
 *  6. the channel broker closed (its Redis connections, when it has them);
 *  7. shutdown_duration recorded;
 *  8. the telemetry SDK flushed and stopped, in what is left of the budget but the log flush's share.
 * Every step is logged; the caller runs this inside one span so the lines share a request_id.
 */
import type { Span } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Instruments } from '../telemetry/instruments.js';
import type { Telemetry } from '../telemetry/sdk.js';
import { delay, withDeadline } from '../util/deadline.js';
import type { ConnectionRegistry } from '../ws/registry.js';
import { telemetryShutdownMs, type ShutdownBudget } from './budget.js';
import { closeInWaves, waveCount } from './close-waves.js';

export interface ShutdownResult {
  /** True when something had to be cut off by a deadline: sockets terminated or telemetry not flushed. */
  readonly forced: boolean;
  readonly durationSeconds: number;
  readonly terminatedSockets: number;
  readonly telemetry: TelemetryOutcome;
  /** Epoch ms by which the process must be gone; the log flush gets what is left. */
  readonly deadline: number;
}

export type TelemetryOutcome = 'flushed' | 'failed' | 'timeout';

/** The states the sequence moves the service through; the state machine itself is the service's. */
export type ShutdownState = 'draining' | 'closing' | 'closed';

export interface ShutdownDeps {
  readonly budget: ShutdownBudget;
  readonly logger: Logger;
  readonly connections: ConnectionRegistry;
  readonly instruments: Pick<Instruments, 'shutdownDuration'>;
  readonly telemetry: Pick<Telemetry, 'shutdown'>;
  readonly enter: (state: ShutdownState) => void;
  /** Closes the WebSocket server; from 'closing' on the upgrade handler refuses upgrades itself. */
  readonly closeWsServer: () => void;
  /** Closes the HTTP server and every connection it still holds. */
  readonly closeHttp: () => Promise<void>;
  /** Closes the channel broker's connections: no subscriber is left to deliver to. */
  readonly closeBroker: () => Promise<void>;
}

/** The last line of the sequence tells how the telemetry shutdown went: only a flush is good news. */
const TELEMETRY_MESSAGES: Readonly<Record<TelemetryOutcome, string>> = {
  flushed: 'shutdown: telemetry SDK flushed and stopped',
  failed: 'shutdown: telemetry SDK shutdown failed',
  timeout: 'shutdown: telemetry SDK shutdown timed out',
};

/**
 * Runs the sequence once. `span` is the shutdown's own span: it ends once the connections are
 * closed, so the telemetry flush that follows exports it.
 */
export async function runShutdown(deps: ShutdownDeps, trigger: string, span: Span): Promise<ShutdownResult> {
  const { budget, logger } = deps;
  const startedAt = performance.now();
  deps.enter('draining');
  logger.info({ trigger, drain_delay_ms: budget.drainDelayMs }, 'shutdown: draining, /readyz now reports 503');
  await delay(budget.drainDelayMs);

  deps.enter('closing');
  const deadline = Date.now() + budget.timeoutMs;
  deps.connections.stopHeartbeat();
  deps.closeWsServer();
  logger.info({}, 'shutdown: refusing new upgrades');
  const terminatedSockets = await closeConnections(deps, budget.socketCloseMs);
  await deps.closeHttp();
  await deps.closeBroker();

  const durationSeconds = (performance.now() - startedAt) / 1000;
  deps.instruments.shutdownDuration.record(durationSeconds);
  logger.info({ duration_s: durationSeconds, terminated_sockets: terminatedSockets }, 'shutdown: connections closed, shutdown_duration recorded');
  span.end();

  const outcome = await deps.telemetry.shutdown(telemetryShutdownMs(budget, deadline, Date.now()));
  if (outcome === 'flushed') logger.info({ outcome }, TELEMETRY_MESSAGES[outcome]);
  else logger.warn({ outcome }, TELEMETRY_MESSAGES[outcome]);
  deps.enter('closed');
  return {
    forced: terminatedSockets > 0 || outcome !== 'flushed',
    durationSeconds,
    terminatedSockets,
    telemetry: outcome,
    deadline,
  };
}

/**
 * Closes every connection with 1001 in waves over the close window. Each connection closes once
 * its own in-flight messages are answered; what has not closed within `budgetMs` is terminated.
 * Resolves with the number terminated.
 */
async function closeConnections(deps: ShutdownDeps, budgetMs: number): Promise<number> {
  const { connections, logger } = deps;
  const deadline = Date.now() + budgetMs;
  const targets = connections.snapshot();
  const windowMs = deps.budget.closeWindowMs;
  logger.info(
    { connections: targets.length, waves: waveCount(targets.length, windowMs), window_ms: windowMs },
    'shutdown: closing connections with 1001 Going Away',
  );
  const closing = closeInWaves(
    targets,
    windowMs,
    (connection) => void connection.drain(1001, 'server shutting down'),
    () => connections.size === 0,
  );
  const closed = await withDeadline(
    closing.then(() => connections.whenEmpty()),
    deadline - Date.now(),
  );
  if (closed !== 'timeout') return 0;
  const stragglers = connections.snapshot();
  logger.warn({ connections: stragglers.length, in_flight: connections.inFlight() }, 'shutdown: terminating connections that did not close in time');
  for (const connection of stragglers) connection.terminate();
  await withDeadline(connections.whenEmpty(), 1000);
  return stragglers.length;
}

/**
 * Shutdown before the service ever listened: nothing to drain, only the telemetry to stop,
 * with the whole timeout.
 */
export async function shutdownUnstarted(telemetry: Pick<Telemetry, 'shutdown'>, timeoutMs: number): Promise<ShutdownResult> {
  const outcome = await telemetry.shutdown(timeoutMs);
  return {
    forced: outcome !== 'flushed',
    durationSeconds: 0,
    terminatedSockets: 0,
    telemetry: outcome,
    deadline: Date.now() + timeoutMs,
  };
}
