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
