/**
 * `db.query.text` for the Redis engine's commands. The instrumentation's default prints every
 * argument of EVAL/EVALSHA, and a publish script's arguments carry the message itself: here a
 * script is named by its hash and keys only, any other command by its name and first argument
 * (the key or channel), so no payload reaches a span.
 */
export function redisStatement(command: string, args: readonly (string | Buffer)[]): string {
  const text = (a: string | Buffer | undefined): string => (a === undefined ? '' : typeof a === 'string' ? a : a.toString('utf8'));
  const upper = command.toUpperCase();
  let shown: string[];
  if ((upper === 'EVALSHA' || upper === 'EVAL') && args.length >= 2) {
    const keys = Math.max(0, Number(text(args[1])) || 0);
    // EVAL's first argument is the script source: named by its length, not printed.
    const script = upper === 'EVAL' ? `<script ${text(args[0]).length} chars>` : text(args[0]);
    shown = [script, text(args[1]), ...args.slice(2, 2 + keys).map(text)];
  } else {
    shown = args.slice(0, 1).map(text);
  }
  const hidden = args.length - shown.length;
  return [command, ...shown, ...(hidden > 0 ? [`[${hidden} other arguments]`] : [])].join(' ');
}
