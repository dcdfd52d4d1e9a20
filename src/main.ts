/**
 * The process entry point: the only module that reads the environment, handles signals and
 * decides the exit code. Exit codes: 0 clean shutdown; 1 shutdown had to force something
 * (sockets terminated, telemetry not flushed) or an uncaught exception; 2 invalid
 * configuration; 128+signal when a second signal cut the shutdown short.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig, type Config } from './config/config.js';
import { createLogger, observeDroppedLogLines } from './telemetry/logger.js';
import { installProcessErrorHandlers } from './lifecycle/process-errors.js';
import { logExportTimeoutFor } from './lifecycle/budget.js';
import { createBroker } from './channels/engine.js';
import { createService } from './service.js';
import { startTelemetry } from './telemetry/sdk.js';

const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function readConfig(): Config {
  try {
    return loadConfig(process.env, packageVersion());
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`ws-service: ${err.message}\n`);
    process.exit(2);
  }
}

const config = readConfig();
const logExportTimeoutMs = logExportTimeoutFor(config.telemetry.logs.exportTimeoutMs, config.shutdownTimeoutMs);
const { logger, close: closeLogger, droppedLines } = createLogger({
  level: config.logLevel,
  bufferBytes: config.logBufferBytes,
  otlp: config.telemetry.logs.enabled
    ? { protocol: config.telemetry.logs.protocol, exportTimeoutMs: logExportTimeoutMs, batch: config.telemetry.logs.batch }
    : undefined,
  serviceName: config.telemetry.serviceName,
  serviceVersion: config.telemetry.serviceVersion,
  serviceInstanceId: config.telemetry.serviceInstanceId,
});
if (config.telemetry.logs.enabled && logExportTimeoutMs < config.telemetry.logs.exportTimeoutMs) {
  logger.info(
    { configured_ms: config.telemetry.logs.exportTimeoutMs, applied_ms: logExportTimeoutMs, shutdown_timeout_ms: config.shutdownTimeoutMs },
    'OTLP log export timeout lowered to fit the log flush in SHUTDOWN_TIMEOUT_MS',
  );
}
const telemetry = startTelemetry(config.telemetry, logger);
observeDroppedLogLines(telemetry.meter, droppedLines);
const service = createService({ config, telemetry, logger, broker: await createBroker(config.channels) });

let exitCode = 0;
async function stop(trigger: string): Promise<never> {
  const result = await service.shutdown(trigger);
  if (result.forced) exitCode = Math.max(exitCode, 1);
  logger.info({ exit_code: exitCode, forced: result.forced, telemetry: result.telemetry }, 'shutdown complete');
  await closeLogger(Math.max(50, result.deadline - Date.now()));
  process.exit(exitCode);
}

installProcessErrorHandlers({
  logger,
  instruments: service.instruments,
  onFatal() {
    exitCode = 1;
    void stop('uncaught_exception');
  },
});

/**
 * The same signal again this soon is one request delivered twice, not a second request: under
 * `npm start`, Ctrl-C (or a kill sent to the process group, as systemd does) reaches node
 * directly and once more through npm, which forwards SIGINT and SIGTERM to its child.
 */
const REPEATED_SIGNAL_MS = 250;
/** How long a second signal's exit waits for held log lines to reach stdout. */
const SECOND_SIGNAL_FLUSH_MS = 200;

let first: { readonly signal: NodeJS.Signals; readonly at: number } | undefined;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (first !== undefined) {
      if (signal === first.signal && performance.now() - first.at < REPEATED_SIGNAL_MS) {
        logger.debug({ signal }, 'same signal delivered twice: already shutting down');
        return;
      }
      logger.warn({ signal }, 'second signal during shutdown: exiting now');
      // At once, yet with what stdout still holds written if it drains within a moment.
      void closeLogger(SECOND_SIGNAL_FLUSH_MS).finally(() => process.exit(SIGNAL_EXIT_CODES[signal]));
      return;
    }
    first = { signal, at: performance.now() };
    logger.info({ signal }, 'signal received: starting graceful shutdown');
    void stop(signal);
  });
}

try {
  await service.start();
} catch (err) {
  logger.fatal({ err }, 'ws-service failed to start');
  await telemetry.shutdown(1000);
  await closeLogger(1000);
  process.exit(1);
}
