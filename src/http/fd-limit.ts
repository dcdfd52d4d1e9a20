/**
 * The process's open-file limit, which bounds connections before any setting does: past it
 * libuv accepts and at once closes new connections (its EMFILE reserve) without telling Node, so
 * clients see resets and nothing is logged or counted. Keeping the connection bound below it
 * makes the refusal happen in Node, where it is counted and logged.
 */
import process from 'node:process';

/** Descriptors kept free for what is not a client connection: listeners, logs, exporters, files. */
export const FD_RESERVE = 64;

/** The soft RLIMIT_NOFILE, or undefined where the platform does not report it. */
export function openFileLimit(): number | undefined {
  try {
    const report = process.report?.getReport() as { userLimits?: { open_files?: { soft?: number | string } } } | undefined;
    const soft = report?.userLimits?.open_files?.soft;
    return typeof soft === 'number' && Number.isFinite(soft) && soft > 0 ? soft : undefined;
  } catch {
    return undefined;
  }
}

/** The connection bound that fits the open-file limit, at least 1 so the port still answers. */
export function fitToFileLimit(configured: number, limit: number | undefined): number {
  if (limit === undefined) return configured;
  return Math.max(1, Math.min(configured, limit - FD_RESERVE));
}

/** Connections the metrics port may hold: a scraper or two, never a share of the clients'. */
export const METRICS_PORT_CONNECTIONS = 64;

/** The connection bounds in force, after the open-file limit. */
export interface ConnectionCaps {
  /** The main port's TCP bound (MAX_HTTP_CONNECTIONS, fitted). */
  readonly http: number;
  /** The metrics port's TCP bound; 0 without METRICS_PORT. */
  readonly metrics: number;
  /** Live WebSockets (MAX_CONNECTIONS, fitted). */
  readonly websockets: number;
  /** Live WebSockets per client address (MAX_CONNECTIONS_PER_CLIENT, fitted); 0 = off. */
  readonly perClient: number;
  /** Whether the open-file limit lowered any of them. */
  readonly lowered: boolean;
}

/**
 * Every connection bound fitted into one descriptor budget. The metrics port takes a small fixed
 * share of it, and WebSockets stop FD_RESERVE short of the main port's bound whenever that bound
 * was lowered: a server full of WebSockets must still accept a /healthz probe and answer its own
 * 503s, rather than have every new connection closed as it is accepted.
 */
export function connectionCaps(
  configured: { readonly http: number; readonly websockets: number; readonly perClient: number; readonly metricsPort: boolean },
  limit: number | undefined,
): ConnectionCaps {
  const metrics = configured.metricsPort ? METRICS_PORT_CONNECTIONS : 0;
  const http = fitToFileLimit(configured.http, limit === undefined ? undefined : limit - metrics);
  const lowered = http < configured.http;
  const websockets = lowered ? Math.max(1, Math.min(configured.websockets, http - FD_RESERVE)) : configured.websockets;
  const perClient = configured.perClient === 0 ? 0 : Math.min(configured.perClient, websockets);
  return { http, metrics, websockets, perClient, lowered };
}
