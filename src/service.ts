/**
 * The service factory: one HTTP server on one port for routes and WebSocket upgrades (and a
 * second one for /metrics alone when METRICS_PORT is set), and the lifecycle state machine. main.ts owns the process (environment, signals, exit); everything
 * here receives its configuration and can run many times on port 0.
 *
 * Where things live: a socket's messages go through ws/upgrade.ts (the handshake) and
 * ws/connection.ts (message → span → handler → reply → metrics); the live connections are
 * ws/registry.ts; the shutdown sequence is lifecycle/shutdown.ts, its time budget
 * lifecycle/budget.ts; the HTTP server itself is http/server.ts.
 *
 * Lifecycle: idle → starting → running → draining → closing → closed.
 *  - running: routes answer, upgrades are accepted.
 *  - draining: /readyz answers 503 while the load balancer notices; upgrades still accepted.
 *  - closing: upgrades refused (503); connections closed; telemetry flushed.
 *  - closed: the shutdown sequence has finished (or the service never started).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { Config } from './config/config.js';
import { createBurstLog } from './http/burst-log.js';
import { createClientAddress } from './http/client-address.js';
import { connectionCaps, openFileLimit } from './http/fd-limit.js';
import { createClientErrorHandler } from './http/guard.js';
import { createRequestHandler, type RouteDeps } from './http/routes.js';
import { closeHttpServer, createHttpServer, listen, type HttpHandlers } from './http/server.js';
import { singleFlight } from './http/single-flight.js';
import { withDeadline } from './util/deadline.js';
import { shutdownBudget } from './lifecycle/budget.js';
import { runShutdown, shutdownUnstarted, type ShutdownResult } from './lifecycle/shutdown.js';
import { createRegistry, defaultHandlers, type HandlerRegistry } from './protocol/handlers/index.js';
import { channelHandlers } from './protocol/handlers/channels.js';
import type { Broker, BrokerStatus } from './channels/broker.js';
import { MemoryBroker } from './channels/memory-broker.js';
import { NamespaceLabels, parseChannel } from './channels/names.js';
import { Subscriptions } from './channels/subscriptions.js';
import { withValidIds } from './telemetry/context.js';
import { createInstruments, type Instruments } from './telemetry/instruments.js';
import type { Telemetry } from './telemetry/sdk.js';
import { createAdmission } from './ws/admission.js';
import { ClientLimit } from './ws/client-limit.js';
import { Connection, type ConnectionDeps } from './ws/connection.js';
import { ConnectionRegistry } from './ws/registry.js';
import { SendBudget } from './ws/send-budget.js';
import { selectProtocol } from './ws/subprotocol.js';
import { createUpgradeHandler } from './ws/upgrade.js';

export type { ShutdownResult } from './lifecycle/shutdown.js';

/** How long start() waits for the channel broker before listening without it. */
const BROKER_CONNECT_WAIT_MS = 3_000;

const BROKER_ERROR_MESSAGES = {
  connection_lost: 'connection lost or refused',
  subscriber_dropped: 'the broker closed the subscriber connection (for Redis: client-output-buffer-limit pubsub or CLIENT KILL); deliveries until it is restored are lost',
  publish_failed: 'publish refused',
  subscribe_failed: 'subscribe refused',
  bad_envelope: 'a message on a channel was not written by ws-service; ignored',
} as const;

export type LifecycleState = 'idle' | 'starting' | 'running' | 'draining' | 'closing' | 'closed';

export interface Service {
  start(): Promise<AddressInfo>;
  /** Runs the shutdown sequence once; later calls return the same promise. */
  shutdown(trigger: string): Promise<ShutdownResult>;
  readonly state: LifecycleState;
  readonly address: AddressInfo | undefined;
  /** The METRICS_PORT server's address; undefined when /metrics is served on the main port. */
  readonly metricsAddress: AddressInfo | undefined;
  readonly instruments: Instruments;
  /** Live connections, the source of the active_connections gauge. */
  readonly connectionCount: number;
  /** Unsent bytes over all connections as the SendBudget counts them (not recounted). */
  readonly bufferedBytes: number;
  /** This instance's channel subscriptions (the source of the channel gauges). */
  readonly subscriptions: Subscriptions;
  readonly broker: Broker;
}

export interface ServiceDeps {
  readonly config: Config;
  readonly telemetry: Telemetry;
  readonly logger: Logger;
  /** Replaces every handler, the channel ones included (tests of the message path). */
  readonly handlers?: HandlerRegistry;
  /** The channel engine (channels/engine.ts builds it from the config); the in-process one when absent. */
  readonly broker?: Broker;
}

export function createService(deps: ServiceDeps): Service {
  const { config, telemetry, logger } = deps;
  const fileLimit = openFileLimit();
  const caps = connectionCaps(
    {
      http: config.http.maxConnections,
      websockets: config.limits.maxConnections,
      perClient: config.limits.maxConnectionsPerClient,
      metricsPort: config.http.metricsPort !== undefined,
    },
    fileLimit,
  );
  const connections = new ConnectionRegistry();
  const sendBudget = new SendBudget(config.limits.maxTotalBufferedBytes, () => connections.values());
  const labels = new NamespaceLabels(config.channels.namespaces);
  // The gauges read `hub` (declared below, once the instruments exist) only at collection time.
  const instruments = createInstruments(telemetry.meter, {
    namespaces: labels.values,
    liveSubscriptions: () => hub.subscriptionCount,
    liveChannels: () => hub.channelCount,
    brokerUp: () => broker.status().up,
    liveConnections: () => connections.size,
    bufferedBytes: () => sendBudget.recount(),
    maxConnections: caps.websockets,
    recording: telemetry.state() !== 'disabled',
  });
  if (deps.broker === undefined && config.channels.redis !== undefined) {
    throw new Error('REDIS_URL is set: pass the broker channels/engine.ts builds from the config');
  }
  const broker = deps.broker ?? new MemoryBroker(config.channels.history);
  broker.observe({
    error(kind, err) {
      instruments.channels.countBrokerError(kind);
      // A publish or subscribe refused is already told to its client and counted; the
      // connection's own state changes are logged below.
      if (kind === 'connection_lost' || kind === 'subscriber_dropped' || kind === 'bad_envelope') {
        context.with(ROOT_CONTEXT, () => logger.warn({ err, kind }, `channel broker: ${BROKER_ERROR_MESSAGES[kind]}`));
      }
    },
    trimmed(channel, count) {
      const name = parseChannel(channel);
      if (name !== undefined) instruments.channels.countTrimmed(labels.of(name.namespace), count);
    },
    changed(status: BrokerStatus) {
      context.with(ROOT_CONTEXT, () => {
        if (status.up) logger.info({ system: broker.system }, 'channel broker connected: subscriptions restored, publishes accepted');
        else logger.warn({ system: broker.system, detail: status.detail }, 'channel broker down: publishes and new subscriptions get unavailable until it is back');
      });
    },
  });
  const hub = new Subscriptions({
    broker,
    tracer: telemetry.tracer,
    instruments: instruments.channels,
    logger,
    labels,
    maxPerConnection: config.channels.maxSubscriptionsPerConnection,
    maxPublishBytes: config.channels.maxPublishBytes,
  });
  let state: LifecycleState = 'idle';
  let server: Server | undefined;
  let address: AddressInfo | undefined;
  let metricsServer: Server | undefined;
  let metricsAddress: AddressInfo | undefined;
  let shuttingDown: Promise<ShutdownResult> | undefined;

  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: config.maxMessageBytes,
    perMessageDeflate: false,
    // Connection answers pings itself, so a peer that floods pings without reading is counted.
    autoPong: false,
    handleProtocols: selectProtocol,
  });
  wss.on('error', (err) => {
    instruments.countError('server');
    logger.error({ err }, 'WebSocket server error');
  });

  const connectionDeps: ConnectionDeps = {
    tracer: telemetry.tracer,
    instruments,
    logger,
    handlers: deps.handlers ?? createRegistry([...defaultHandlers.values(), ...channelHandlers(hub, instruments.channels)]),
    limits: config.limits,
    sendBudget,
    // Every close path (client close, terminate, shedding, shutdown) reaches this once.
    closed: (connection) => {
      connections.delete(connection);
      hub.dropAll(connection);
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
    maxConnections: caps.websockets,
    clientLimit: new ClientLimit(caps.perClient),
    clientAddress: createClientAddress(config.http.trustedProxies),
    onConnection(ws, handshake, req) {
      const connection = new Connection(
        ws,
        handshake,
        connectionDeps,
        { address: req.socket.remoteAddress, port: req.socket.remotePort },
        req.socket,
      );
      connections.add(connection);
      logger.info({ client_address: req.socket.remoteAddress, live_connections: connections.size }, 'WebSocket connected');
    },
  });

  // /readyz reports the last collection's failure instead of running one: a collection resets
  // the event-loop delay histogram, and an unauthenticated probe must not reset what Prometheus reads.
  let lastScrapeError: string | undefined;
  const routeDeps: RouteDeps = {
    telemetry,
    scrape: singleFlight(async () => {
      try {
        const body = await telemetry.scrape();
        lastScrapeError = undefined;
        return body;
      } catch (err) {
        lastScrapeError = err instanceof Error ? err.message : String(err);
        throw err;
      }
    }),
    lastScrapeError: () => lastScrapeError,
    instruments,
    logger,
    wsPath: config.wsPath,
    maxPipelinedRequests: config.http.maxPipelinedRequests,
    listening: () => server?.listening === true,
    draining: () => state !== 'running',
    broker: () => broker.status(),
  };
  const separateMetrics = config.http.metricsPort !== undefined;
  const onRequest = createRequestHandler(routeDeps, separateMetrics ? ['/healthz', '/readyz'] : undefined);

  // Refusals at the connection bound and failed accepts come in floods: logged once a burst.
  const BURST_WINDOW_MS = 10_000;
  const droppedLog = createBurstLog(BURST_WINDOW_MS, (connections, suppressed) =>
    logger.warn(
      { reason: 'max_http_connections', connections, suppressed, max_http_connections: caps.http },
      'TCP connections refused: MAX_HTTP_CONNECTIONS reached',
    ),
  );
  const acceptLog = createBurstLog(BURST_WINDOW_MS, (failures, suppressed) =>
    logger.error({ failures, suppressed }, 'accepting connections failed: out of file descriptors'),
  );
  const serverHandlers = (name: string): Pick<HttpHandlers, 'clientError' | 'drop'> & { error: (err: Error & { code?: string }) => void } => ({
    clientError: createClientErrorHandler({ instruments, logger }),
    drop() {
      instruments.countRejectedHttpRequest('max_http_connections');
      droppedLog.event();
    },
    error(err) {
      if (err.code === 'EMFILE' || err.code === 'ENFILE') {
        instruments.countError('accept');
        acceptLog.event();
        return;
      }
      instruments.countError('server');
      logger.error({ err, server: name }, 'HTTP server error');
    },
  });

  async function start(): Promise<AddressInfo> {
    if (state !== 'idle') throw new Error(`service cannot start from state ${state}`);
    state = 'starting';
    if (caps.lowered) {
      logger.warn(
        {
          configured: config.http.maxConnections,
          applied: caps.http,
          max_connections: caps.websockets,
          max_connections_per_client: caps.perClient,
          open_file_limit: fileLimit,
        },
        'MAX_HTTP_CONNECTIONS lowered to fit the open-file limit (ulimit -n)',
      );
    }
    // A broker that is down does not stop the start: the instance serves ping and echo, and
    // channels come back when the broker does (/readyz shows channel_broker degraded meanwhile).
    const connecting = await withDeadline(broker.connect(), BROKER_CONNECT_WAIT_MS);
    if (connecting !== 'timeout' && !connecting.ok) throw connecting.error;
    if (!broker.status().up) {
      logger.warn({ system: broker.system, waited_ms: BROKER_CONNECT_WAIT_MS, detail: broker.status().detail }, 'channel broker not reachable yet: starting without it, still trying');
    }
    const main = serverHandlers('main');
    const http = createHttpServer(config.http, caps.http, { request: onRequest, upgrade: onUpgrade, ...main });
    server = http;
    address = await listen(http, config.port, config.host);
    http.on('error', main.error);
    if (config.http.metricsPort !== undefined) {
      const metricsHandlers = serverHandlers('metrics');
      const metricsHttp = createHttpServer(config.http, caps.metrics, {
        // No WebSocket endpoint here: '' matches no request path.
        request: createRequestHandler({ ...routeDeps, wsPath: '' }, ['/metrics']),
        ...metricsHandlers,
      });
      try {
        metricsAddress = await listen(metricsHttp, config.http.metricsPort, config.http.metricsHost);
      } catch (err) {
        await closeHttpServer(http);
        throw err;
      }
      metricsServer = metricsHttp;
      metricsHttp.on('error', metricsHandlers.error);
    }
    state = 'running';
    connections.startHeartbeat(config.limits.heartbeatIntervalMs);
    logger.info(
      {
        address: address.address,
        port: address.port,
        ws_path: config.wsPath,
        ...(metricsAddress === undefined ? {} : { metrics_address: metricsAddress.address, metrics_port: metricsAddress.port }),
      },
      'ws-service listening',
    );
    return address;
  }

  function shutdown(trigger: string): Promise<ShutdownResult> {
    if (shuttingDown) return shuttingDown;
    if (state === 'idle' || state === 'starting') {
      state = 'closed';
      shuttingDown = broker.close().then(() => shutdownUnstarted(telemetry, config.shutdownTimeoutMs));
      return shuttingDown;
    }
    // One span around the whole sequence, so every shutdown log line shares a request_id.
    const span = withValidIds(
      telemetry.tracer.startSpan('ws-service shutdown', { kind: SpanKind.INTERNAL, attributes: { 'ws.shutdown.trigger': trigger } }, ROOT_CONTEXT),
    );
    const sequence = {
      budget: shutdownBudget({
        drainDelayMs: config.shutdownDrainDelayMs,
        timeoutMs: config.shutdownTimeoutMs,
        closeWindowMs: config.shutdownCloseWindowMs,
      }),
      logger,
      connections,
      instruments,
      telemetry,
      enter: (next: LifecycleState) => {
        state = next;
      },
      closeWsServer: () => wss.close(),
      // The metrics port closes with the main one, so Prometheus can scrape through the drain.
      closeHttp: async () => {
        await Promise.all([closeHttpServer(server), closeHttpServer(metricsServer)]);
      },
      closeBroker: async () => {
        await broker.close();
        logger.info({ system: broker.system }, 'shutdown: channel broker closed');
      },
    };
    shuttingDown = context.with(trace.setSpan(ROOT_CONTEXT, span), () => runShutdown(sequence, trigger, span));
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
    get metricsAddress() {
      return metricsAddress;
    },
    instruments,
    get connectionCount() {
      return connections.size;
    },
    get bufferedBytes() {
      return sendBudget.total;
    },
    subscriptions: hub,
    broker,
  };
}
