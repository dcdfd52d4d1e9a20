/**
 * /readyz: ready only when the telemetry SDK has started and its metric reader can collect,
 * the server is listening and it is not draining. OTLP export trouble is reported as a
 * degraded check that does not fail readiness: a collector outage must not take a fleet out
 * of rotation.
 */
import type { Telemetry } from '../telemetry/sdk.js';

export type CheckStatus = 'ok' | 'fail' | 'disabled' | 'degraded';

export interface Check {
  readonly status: CheckStatus;
  readonly detail?: string;
}

export interface Readiness {
  readonly ready: boolean;
  /** In order: the SDK first, then the server, the drain, and OTLP export. */
  readonly checks: Readonly<Record<'telemetry_sdk' | 'server' | 'draining' | 'telemetry_export', Check>>;
}

export interface ReadinessSources {
  readonly telemetry: Telemetry;
  /** The telemetry's scrape behind one shared collection (single-flight.ts). */
  readonly scrape: () => Promise<string>;
  readonly listening: () => boolean;
  readonly draining: () => boolean;
}

async function sdkCheck(telemetry: Telemetry, scrape: () => Promise<string>): Promise<Check> {
  const state = telemetry.state();
  if (state === 'disabled') return { status: 'disabled', detail: 'OTEL_SDK_DISABLED=true' };
  if (state === 'stopped') return { status: 'fail', detail: 'SDK shut down' };
  try {
    await scrape();
    return { status: 'ok' };
  } catch (err) {
    return { status: 'fail', detail: `metric reader cannot collect: ${(err as Error).message}` };
  }
}

export async function checkReadiness(sources: ReadinessSources): Promise<Readiness> {
  const telemetrySdk = await sdkCheck(sources.telemetry, sources.scrape);
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
  return {
    ready: telemetrySdk.status !== 'fail' && server.status === 'ok' && draining.status === 'ok',
    checks: { telemetry_sdk: telemetrySdk, server, draining, telemetry_export: telemetryExport },
  };
}
