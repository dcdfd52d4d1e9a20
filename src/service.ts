/**
 * The service factory: one HTTP server on one port for routes and WebSocket upgrades, and the
 * lifecycle that drains it for blue-green deploys. main.ts owns the process (environment,
 * signals, exit); everything here receives its configuration and can run many times on port 0.
 *
 * Lifecycle: idle → starting → running → draining → closing → closed.
 *  - draining: /readyz answers 503 while the load balancer notices; upgrades still accepted.
 *  - closing: upgrades refused (503); connections closed with 1001 in waves over
 *    SHUTDOWN_CLOSE_WINDOW_MS, each once its in-flight messages are answered; stragglers
 *    terminated; shutdown_duration recorded; telemetry flushed.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, ROOT_CONTEXT, SpanKind, trace, type Context } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { createAdmission } from './ws/admission.js';
import { closeInWaves, waveCount } from './lifecycle/close-waves.js';
import type { Config } from './config/config.js';
import { Connection, type ConnectionDeps } from './ws/connection.js';
import { delay, withDeadline } from './util/deadline.js';
import { defaultHandlers, type HandlerRegistry } from './protocol/handlers/index.js';
import { createClientErrorHandler } from './http/guard.js';
import { createRequestHandler } from './http/routes.js';
import { createInstruments, type Instruments } from './telemetry/instruments.js';
import { withValidIds } from './telemetry/context.js';
import type { Telemetry } from './telemetry/sdk.js';
import { createUpgradeHandler } from './ws/upgrade.js';

export type LifecycleState = 'idle' | 'starting' | 'running' | 'draining' | 'closing' | 'closed';

export interface ShutdownResult {
  /** True when something had to be cut off by a deadline: sockets terminated or telemetry not flushed. */
  readonly forced: boolean;
  readonly durationSeconds: number;
  readonly terminatedSockets: number;
  readonly telemetry: 'flushed' | 'failed' | 'timeout';
  /** Epoch ms by which the process must be gone; the log flush gets what is left. */
  readonly deadline: number;
}

export interface Service {
  start(): Promise<AddressInfo>;
  /** Runs the shutdown sequence once; later calls return the same promise. */
  shutdown(trigger: string): Promise<ShutdownResult>;
  readonly state: LifecycleState;
  readonly address: AddressInfo | undefined;
  readonly instruments: Instruments;
  /** Live connections, the source of the active_connections gauge. */
  readonly connectionCount: number;
}

export interface ServiceDeps {
  readonly config: Config;
  readonly telemetry: Telemetry;
  readonly logger: Logger;
  readonly handlers?: HandlerRegistry;
}

/** Share of SHUTDOWN_TIMEOUT_MS kept for the log transport's last flush after the SDK's. */
export const LOG_FLUSH_SHARE = 0.2;
/**
 * Share of SHUTDOWN_TIMEOUT_MS that sockets get to close before they are terminated; the close
 * waves span at most CLOSE_WINDOW_MAX_SHARE of it (config.ts), leaving the rest for the last
 * wave's close handshakes.
 */
const SOCKET_CLOSE_SHARE = 0.5;

export function createService(deps: ServiceDeps): Service {
  const { config, telemetry, logger } = deps;
  const connections = new Set<Connection>();
  const instruments = createInstruments(telemetry.meter, {
    liveConnections: () => connections.size,
    maxConnections: config.limits.maxConnections,
    recording: telemetry.state() !== 'disabled',
  });
  let state: LifecycleState = 'idle';
  let server: Server | undefined;
  let address: AddressInfo | undefined;
  let shuttingDown: Promise<ShutdownResult> | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  const emptied: (() => void)[] = [];

  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: config.maxMessageBytes,
    perMessageDeflate: false,
    // Connection answers pings itself, so a peer that floods pings without reading is counted.
    autoPong: false,
  });
  wss.on('error', (err) => {
    instruments.countError('server');
    logger.error({ err }, 'WebSocket server error');
  });

  const connectionDeps: ConnectionDeps = {
    tracer: telemetry.tracer,
    instruments,
    logger,
    handlers: deps.handlers ?? defaultHandlers,
    limits: config.limits,
    closed(connection) {
      connections.delete(connection);
      if (connections.size === 0) for (const wake of emptied.splice(0)) wake();
    },
  };

  const onUpgrade = createUpgradeHandler({
    wss,
    wsPath: config.wsPath,
    tracer: telemetry.tracer,
    logger,
    instruments,
    accepting: () => state === 'running' || state === 'draining',
    admit: createAdmission(config.admission),
    liveConnections: () => connections.size,
    maxConnections: config.limits.maxConnections,
    onConnection(ws, handshake, req) {
      const connection = new Connection(ws, handshake, connectionDeps, {
        address: req.socket.remoteAddress,
        port: req.socket.remotePort,
      });
      connections.add(connection);
      logger.info({ client_address: req.socket.remoteAddress, live_connections: connections.size }, 'WebSocket connected');
    },
  });

  const onRequest = createRequestHandler({
    telemetry,
    instruments,
    logger,
    wsPath: config.wsPath,
    listening: () => server?.listening === true,
    draining: () => state !== 'running',
  });

  async function start(): Promise<AddressInfo> {
    if (state !== 'idle') throw new Error(`service cannot start from state ${state}`);
    state = 'starting';
    const { headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs } = config.http;
    const http = createServer(
      {
        headersTimeout: headersTimeoutMs,
        requestTimeout: requestTimeoutMs,
        // Node enforces both timeouts only when it sweeps its connections (every 30 s by
        // default); sweeping at a fraction of the timeout makes the bound what it says.
        connectionsCheckingInterval: Math.min(1000, Math.max(25, Math.floor(headersTimeoutMs / 4))),
      },
      onRequest,
    );
    http.keepAliveTimeout = keepAliveTimeoutMs;
    server = http;
    http.on('upgrade', onUpgrade);
    http.on('clientError', createClientErrorHandler({ instruments, logger }));
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(config.port, config.host, () => {
        http.off('error', reject);
        resolve();
      });
    });
    http.on('error', (err) => {
      instruments.countError('server');
      logger.error({ err }, 'HTTP server error');
    });
    address = http.address() as AddressInfo;
    state = 'running';
    if (config.limits.heartbeatIntervalMs > 0) {
      heartbeat = setInterval(() => {
        for (const connection of connections) connection.heartbeat();
      }, config.limits.heartbeatIntervalMs);
    }
    logger.info({ address: address.address, port: address.port, ws_path: config.wsPath }, 'ws-service listening');
    return address;
  }

  function waitForEmpty(): Promise<void> {
    if (connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => emptied.push(resolve));
  }

  /**
   * Closes every connection with 1001 in waves over SHUTDOWN_CLOSE_WINDOW_MS. Each connection
   * closes once its own in-flight messages are answered; what has not closed when the budget
   * runs out is terminated. Resolves with the number terminated.
   */
  async function closeConnections(budgetMs: number): Promise<number> {
    const deadline = Date.now() + budgetMs;
    const targets = [...connections];
    const windowMs = config.shutdownCloseWindowMs;
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
    const closed = await withDeadline(closing.then(waitForEmpty), deadline - Date.now());
    if (closed !== 'timeout') return 0;
    const stragglers = [...connections];
    const inFlight = stragglers.reduce((sum, connection) => sum + connection.inflight.count, 0);
    logger.warn({ connections: stragglers.length, in_flight: inFlight }, 'shutdown: terminating connections that did not close in time');
    for (const connection of stragglers) connection.terminate();
    await withDeadline(waitForEmpty(), 1000);
    return stragglers.length;
  }

  async function closeHttp(): Promise<void> {
    const http = server;
    if (http === undefined || !http.listening) return;
    const closed = new Promise<void>((resolve) => http.close(() => resolve()));
    http.closeAllConnections();
    await closed;
  }

  async function runShutdown(trigger: string, lifecycle: Context): Promise<ShutdownResult> {
    const startedAt = performance.now();
    state = 'draining';
    logger.info({ trigger, drain_delay_ms: config.shutdownDrainDelayMs }, 'shutdown: draining, /readyz now reports 503');
    await delay(config.shutdownDrainDelayMs);

    state = 'closing';
    const deadline = Date.now() + config.shutdownTimeoutMs;
    clearInterval(heartbeat);
    wss.close();
    logger.info({}, 'shutdown: refusing new upgrades');
    const terminatedSockets = await closeConnections(config.shutdownTimeoutMs * SOCKET_CLOSE_SHARE);
    await closeHttp();

    const durationSeconds = (performance.now() - startedAt) / 1000;
    instruments.shutdownDuration.record(durationSeconds);
    logger.info({ duration_s: durationSeconds, terminated_sockets: terminatedSockets }, 'shutdown: connections closed, shutdown_duration recorded');
    trace.getSpan(lifecycle)?.end();

    const telemetryBudget = deadline - Date.now() - config.shutdownTimeoutMs * LOG_FLUSH_SHARE;
    const flushed = await telemetry.shutdown(telemetryBudget);
    const log = flushed === 'flushed' ? logger.info.bind(logger) : logger.warn.bind(logger);
    log({ outcome: flushed }, 'shutdown: telemetry SDK flushed and stopped');
    state = 'closed';
    return {
      forced: terminatedSockets > 0 || flushed !== 'flushed',
      durationSeconds,
      terminatedSockets,
      telemetry: flushed,
      deadline,
    };
  }

  function shutdown(trigger: string): Promise<ShutdownResult> {
    if (shuttingDown) return shuttingDown;
    if (state === 'idle' || state === 'starting') {
      state = 'closed';
      shuttingDown = telemetry.shutdown(config.shutdownTimeoutMs).then((flushed) => ({
        forced: flushed !== 'flushed',
        durationSeconds: 0,
        terminatedSockets: 0,
        telemetry: flushed,
        deadline: Date.now() + config.shutdownTimeoutMs,
      }));
      return shuttingDown;
    }
    // One span around the whole sequence, so every shutdown log line shares a request_id.
    const span = withValidIds(
      telemetry.tracer.startSpan('ws-service shutdown', { kind: SpanKind.INTERNAL, attributes: { 'ws.shutdown.trigger': trigger } }, ROOT_CONTEXT),
    );
    const lifecycle = trace.setSpan(ROOT_CONTEXT, span);
    shuttingDown = context.with(lifecycle, () => runShutdown(trigger, lifecycle));
    return shuttingDown;
  }

  return {
    start,
    shutdown,
    get state() {
      return state;
    },
    get address() {
      return address;
    },
    instruments,
    get connectionCount() {
      return connections.size;
    },
  };
}
