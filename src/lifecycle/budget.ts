/**
 * The shutdown budget, in one place. SHUTDOWN_DRAIN_DELAY_MS comes first (/readyz says 503, nothing
 * closes yet); then SHUTDOWN_TIMEOUT_MS, counted from the end of the delay, is shared out:
 *  - the close waves span SHUTDOWN_CLOSE_WINDOW_MS, at most CLOSE_WINDOW_MAX_SHARE (40 %) of it,
 *    so the last wave's close handshakes still fit in the sockets' share;
 *  - sockets still open at SOCKET_CLOSE_SHARE (50 %) are terminated;
 *  - the telemetry SDK's flush gets what is left, up to the log flush's share;
 *  - the last LOG_FLUSH_SHARE (20 %) is the log transport's final flush: its lines describe the
 *    rest of the shutdown, so it goes last.
 *
 * Plain numbers in, plain numbers out: config.ts validates SHUTDOWN_CLOSE_WINDOW_MS with these
 * constants, so this module imports nothing of the configuration's.
 */

/** Share of SHUTDOWN_TIMEOUT_MS the close waves may span (SHUTDOWN_CLOSE_WINDOW_MS's upper bound). */
export const CLOSE_WINDOW_MAX_SHARE = 0.4;
/** Share of SHUTDOWN_TIMEOUT_MS that sockets get to close before the rest are terminated. */
export const SOCKET_CLOSE_SHARE = 0.5;
/** Share of SHUTDOWN_TIMEOUT_MS kept for the log transport's last flush, after the SDK's. */
export const LOG_FLUSH_SHARE = 0.2;

export interface ShutdownBudget {
  /** SHUTDOWN_DRAIN_DELAY_MS: /readyz says 503 this long before anything closes. */
  readonly drainDelayMs: number;
  /** SHUTDOWN_TIMEOUT_MS: from the end of the drain delay to the process's exit. */
  readonly timeoutMs: number;
  /** SHUTDOWN_CLOSE_WINDOW_MS: the close waves spread over this long. */
  readonly closeWindowMs: number;
  /** How long sockets get to close before the ones still open are terminated. */
  readonly socketCloseMs: number;
  /** Kept at the end of the timeout for the log transport's last flush. */
  readonly logFlushMs: number;
}

export function shutdownBudget(times: { drainDelayMs: number; timeoutMs: number; closeWindowMs: number }): ShutdownBudget {
  return {
    drainDelayMs: times.drainDelayMs,
    timeoutMs: times.timeoutMs,
    closeWindowMs: times.closeWindowMs,
    socketCloseMs: times.timeoutMs * SOCKET_CLOSE_SHARE,
    logFlushMs: times.timeoutMs * LOG_FLUSH_SHARE,
  };
}

/**
 * What the telemetry SDK's shutdown gets: the time left before `deadline` (epoch ms), less the
 * log flush's share.
 */
export function telemetryShutdownMs(budget: ShutdownBudget, deadline: number, now: number): number {
  return deadline - now - budget.logFlushMs;
}

/**
 * The OTLP log export timeout to apply. Ending the log transport waits for its last export: both
 * attempts (the one in flight and the final one) must fit in the log flush's share.
 */
export function logExportTimeoutFor(configuredMs: number, shutdownTimeoutMs: number): number {
  return Math.min(configuredMs, Math.floor((shutdownTimeoutMs * LOG_FLUSH_SHARE) / 2));
}
