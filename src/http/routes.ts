/**
 * The plain HTTP routes: /metrics, /healthz, /readyz, JSON 404/405/413. With METRICS_PORT set,
 * the main port serves all but /metrics and the metrics port serves /metrics alone.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Instruments } from '../telemetry/instruments.js';
import { admitPipelined, hasBody, refuseBody, trackResponse } from './guard.js';
import { pathOf } from './path.js';
import { sendJson } from './responses.js';
import { checkReadiness, type ReadinessSources } from './readiness.js';
import { PROMETHEUS_CONTENT_TYPE, type Telemetry } from '../telemetry/sdk.js';
import { bounded } from '../telemetry/bounded.js';

export interface RouteDeps extends ReadinessSources {
  readonly telemetry: Telemetry;
  readonly instruments: Instruments;
  readonly logger: Logger;
  readonly wsPath: string;
  /** The telemetry's scrape behind one shared collection (single-flight.ts). */
  readonly scrape: () => Promise<string>;
  /** HTTP_MAX_PIPELINED_REQUESTS: unanswered requests one socket may have before it is closed. */
  readonly maxPipelinedRequests: number;
}

export type RouteName = '/metrics' | '/healthz' | '/readyz';

type Route = (req: IncomingMessage, res: ServerResponse, deps: RouteDeps) => void | Promise<void>;

async function metrics(_req: IncomingMessage, res: ServerResponse, deps: RouteDeps): Promise<void> {
  let body: string;
  try {
    body = await deps.scrape();
  } catch (err) {
    // 503, not the exporter handler's 200-with-an-error-text: a failed scrape must look failed.
    sendJson(res, 503, { error: 'metrics_unavailable', message: (err as Error).message });
    return;
  }
  res.writeHead(200, {
    'Content-Type': PROMETHEUS_CONTENT_TYPE,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}

function healthz(_req: IncomingMessage, res: ServerResponse): void {
  sendJson(res, 200, { status: 'ok' });
}

function readyz(_req: IncomingMessage, res: ServerResponse, deps: RouteDeps): void {
  const readiness = checkReadiness(deps);
  sendJson(res, readiness.ready ? 200 : 503, {
    status: readiness.ready ? 'ready' : 'not_ready',
    checks: readiness.checks,
  });
}

const ALL_ROUTES: ReadonlyMap<RouteName, Route> = new Map<RouteName, Route>([
  ['/metrics', metrics],
  ['/healthz', healthz],
  ['/readyz', readyz],
]);

/** A handler serving `served` of the routes; any other path is 404 (or 426 at the WebSocket path). */
export function createRequestHandler(deps: RouteDeps, served: readonly RouteName[] = [...ALL_ROUTES.keys()]) {
  const routes = new Map<string, Route>([...ALL_ROUTES].filter(([name]) => served.includes(name)));
  return (req: IncomingMessage, res: ServerResponse): void => {
    trackResponse(req, res);
    const path = pathOf(req.url);
    if (!admitPipelined(req, deps.maxPipelinedRequests, path, deps)) return;
    if (hasBody(req)) {
      refuseBody(req, res, path, deps);
      return;
    }
    const route = routes.get(path);
    if (route === undefined) {
      if (path === deps.wsPath) {
        sendJson(res, 426, { error: 'upgrade_required', message: `${path} accepts WebSocket upgrades only` }, { Upgrade: 'websocket' });
      } else {
        sendJson(res, 404, { error: 'not_found', message: `no route for ${path}` });
      }
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { error: 'method_not_allowed', message: `${path} accepts GET and HEAD` }, { Allow: 'GET, HEAD' });
      return;
    }
    Promise.resolve(route(req, res, deps)).catch((err: unknown) => {
      deps.instruments.countError('server');
      deps.logger.error({ err, path: bounded(path) }, 'route failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal_error', message: 'internal error' });
      else res.destroy();
    });
  };
}
