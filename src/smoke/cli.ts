/**
 * Blue-green smoke test, for pipelines: `npm run smoke -- <base-url>` (or
 * `node dist/src/smoke/cli.js <base-url>` where npm is absent). Prints each check with ok/FAIL and
 * exits 0 when all pass, 1 when any fails or the instance cannot be reached, 2 on a bad
 * argument. Needs only production dependencies, so it runs inside the service's image.
 */
import { parseArgs } from 'node:util';
import { runSmoke, type CheckResult } from './checks.js';

const USAGE = 'usage: npm run smoke -- <base-url> [--ws-path /ws] [--timeout-ms 10000]';
const DEFAULT_TIMEOUT_MS = 10_000;

interface Arguments {
  readonly baseUrl: URL;
  readonly wsPath: string;
  readonly timeoutMs: number;
}

class UsageError extends Error {}

function parse(argv: string[]): Arguments {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { 'ws-path': { type: 'string' }, 'timeout-ms': { type: 'string' } },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { positionals, values } = parsed;
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'missing <base-url>' : `expected one <base-url>, got ${positionals.length}`);
  }
  let baseUrl: URL;
  try {
    baseUrl = new URL(positionals[0]);
  } catch {
    throw new UsageError(`<base-url> ${JSON.stringify(positionals[0])} is not a URL (e.g. http://10.0.0.5:8080)`);
  }
  if (baseUrl.protocol !== 'http:' && baseUrl.protocol !== 'https:') {
    throw new UsageError(`<base-url> must start with http:// or https:// (e.g. http://10.0.0.5:8080), got ${JSON.stringify(positionals[0])}`);
  }
  const wsPath = values['ws-path'] ?? '/ws';
  if (!wsPath.startsWith('/')) throw new UsageError(`--ws-path must start with /, got ${JSON.stringify(wsPath)}`);
  const timeoutText = values['timeout-ms'] ?? String(DEFAULT_TIMEOUT_MS);
  const timeoutMs = Number(timeoutText);
  if (!/^\d+$/.test(timeoutText) || timeoutMs < 100 || timeoutMs > 600_000) {
    throw new UsageError(`--timeout-ms must be an integer from 100 to 600000, got ${JSON.stringify(timeoutText)}`);
  }
  return { baseUrl, wsPath, timeoutMs };
}

function print(result: CheckResult): void {
  process.stdout.write(`${result.ok ? 'ok  ' : 'FAIL'}  ${result.name}: ${result.detail}\n`);
}

let args: Arguments;
try {
  args = parse(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`smoke: ${err.message}\n${USAGE}\n`);
  process.exit(2);
}

const target = args.baseUrl.href;
// A last guard: every step already honours the deadline, this catches whatever might not.
const guard = setTimeout(() => {
  process.stdout.write(`FAIL  smoke test timed out after ${args.timeoutMs} ms against ${target}\n`);
  process.exit(1);
}, args.timeoutMs + 1000);

const outcome = await runSmoke({ baseUrl: args.baseUrl, wsPath: args.wsPath, deadline: Date.now() + args.timeoutMs }, print);
clearTimeout(guard);
const failed = outcome.results.filter((r) => !r.ok).length;
if (outcome.unreachable !== undefined) {
  process.stdout.write(`smoke test FAILED: ${target} is unreachable\n`);
} else if (failed > 0) {
  process.stdout.write(`smoke test FAILED: ${failed} of ${outcome.results.length} checks against ${target}\n`);
} else {
  process.stdout.write(`smoke test passed: ${outcome.results.length} checks against ${target}\n`);
}
process.exit(failed > 0 ? 1 : 0);
