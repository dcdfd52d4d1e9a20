/**
 * One collection at a time, shared by every caller that arrives while it runs. /metrics is
 * unauthenticated and would otherwise run a full collection per request: a burst (pipelined on
 * one socket or spread over many) costs one collection, not one per request.
 */
export function singleFlight<T>(work: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () => {
    if (running === undefined) {
      // Only callers that arrive during a run share it; once it settles the next caller starts
      // afresh, so no answer is older than the collection running when its request arrived.
      const current: Promise<T> = Promise.resolve()
        .then(work)
        .finally(() => {
          if (running === current) running = undefined;
        });
      running = current;
    }
    return running;
  };
}
