/**
 * /readyz: ready only when the telemetry SDK has started and the last collection did not fail,
 * the server is listening and it is not draining. OTLP export trouble and a channel broker
 * outage are reported as degraded checks that do not fail readiness: every instance shares the
 * collector and the broker, so failing on them would take the whole fleet out of rotation at
 * once and leave the load balancer nowhere to send clients. Alerts page for them instead.
 */
import type { BrokerStatus } from '../channels/broker.js';
import type { Telemetry } from '../telemetry/sdk.js';

export type CheckStatus = 'ok' | 'fail' | 'disabled' | 'degraded';

export interface Check {
  readonly status: CheckStatus;
  readonly detail?: string;
}

export interface Readiness {
  readonly ready: boolean;
  /** In order: the SDK first, then the server, the drain, OTLP export and the channel broker. */
  readonly checks: Readonly<Record<'telemetry_sdk' | 'server' | 'draining' | 'telemetry_export' | 'channel_broker', Check>>;
}

export interface ReadinessSources {
  readonly telemetry: Telemetry;
  /** The last /metrics collection's error, undefined once one succeeds. */
  readonly lastScrapeError: () => string | undefined;
  readonly listening: () => boolean;
  readonly draining: () => boolean;
  readonly broker: () => BrokerStatus;
}

/**
 * The SDK's state, and whether the last collection failed. No collection is run here: it would
 * cost a full one per probe, and the runtime instrumentation resets its event-loop delay
 * histogram at every collection, so probes would shorten the window /metrics reports.
 */
function sdkCheck(telemetry: Telemetry, lastScrapeError: string | undefined): Check {
  const state = telemetry.state();
  if (state === 'disabled') return { status: 'disabled', detail: 'OTEL_SDK_DISABLED=true' };
  if (state === 'stopped') return { status: 'fail', detail: 'SDK shut down' };
  if (lastScrapeError !== undefined) return { status: 'fail', detail: `metric reader cannot collect: ${lastScrapeError}` };
  return { status: 'ok' };
}

export function checkReadiness(sources: ReadinessSources): Readiness {
  const telemetrySdk = sdkCheck(sources.telemetry, sources.lastScrapeError());
  const server: Check = sources.listening() ? { status: 'ok' } : { status: 'fail', detail: 'not listening' };
  const draining: Check = sources.draining() ? { status: 'fail', detail: 'shutting down' } : { status: 'ok' };
  const exportStatus = sources.telemetry.exportStatus();
  const telemetryExport: Check =
    exportStatus.status === 'ok'
      ? { status: 'ok' }
      : {
          status: 'degraded',
          detail: Object.entries(exportStatus.failing)
            .map(([signal, f]) => `${signal} failing since ${f.since}: ${f.error}`)
            .join('; '),
        };
  const brokerStatus = sources.broker();
  const channelBroker: Check = brokerStatus.up ? { status: 'ok' } : { status: 'degraded', detail: brokerStatus.detail ?? 'down' };
  return {
    ready: telemetrySdk.status !== 'fail' && server.status === 'ok' && draining.status === 'ok',
    checks: { telemetry_sdk: telemetrySdk, server, draining, telemetry_export: telemetryExport, channel_broker: channelBroker },
  };
}
