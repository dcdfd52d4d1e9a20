/**
 * A log line for events that come in bursts (connections refused at a limit, failed accepts):
 * the first event of a burst is logged at once, the rest are only counted, and the count is
 * reported with the next line, at most once per window. Thousands of refusals must not become
 * thousands of log lines, yet the first one has to be visible when it happens.
 */
export interface BurstLog {
  /** Records one event; `emit` is called for the first of a burst with the events it stands for. */
  event(): void;
}

export function createBurstLog(windowMs: number, emit: (events: number, suppressed: number) => void, now = () => Date.now()): BurstLog {
  let lastLogged = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  return {
    event() {
      const t = now();
      if (t - lastLogged >= windowMs) {
        lastLogged = t;
        const earlier = suppressed;
        suppressed = 0;
        emit(earlier + 1, earlier);
      } else {
        suppressed++;
      }
    },
  };
}
