/**
 * Process-level error policy, counted in error_count exactly once each:
 *  - unhandledRejection: logged with its stack and counted; the service keeps running, since a
 *    rejected promise nobody awaited leaves no shared state half-changed.
 *  - uncaughtException: logged with its stack and counted, then the graceful shutdown runs and
 *    the process exits 1: after a throw escaped to the event loop, state may be inconsistent.
 */
import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Instruments } from '../telemetry/instruments.js';

export interface ProcessErrorDeps {
  readonly logger: Logger;
  readonly instruments: Instruments;
  /** Starts the graceful shutdown after an uncaught exception. */
  readonly onFatal: (err: Error) => void;
}

/** Installs both handlers; returns a function that removes them. */
export function installProcessErrorHandlers(deps: ProcessErrorDeps): () => void {
  // The context active when these run is not the fault's: it is whatever the event loop last
  // entered. Logged in the root context, and the shutdown a fatal error starts runs there too,
  // so neither its lines nor its spans join some unrelated connection's trace.
  const onException = (err: Error, origin: string): void => {
    context.with(ROOT_CONTEXT, () => {
      deps.instruments.countError('uncaught_exception');
      deps.logger.fatal({ err, origin }, 'uncaught exception; shutting down');
      deps.onFatal(err);
    });
  };
  const onRejection = (reason: unknown): void => {
    context.with(ROOT_CONTEXT, () => {
      deps.instruments.countError('unhandled_rejection');
      const err = reason instanceof Error ? reason : new Error(`non-error rejection: ${String(reason)}`);
      deps.logger.error({ err }, 'unhandled promise rejection');
    });
  };
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return () => {
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  };
}
