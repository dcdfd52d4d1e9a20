/** The orchestrator's questions to the probe inside a server under test, and its answers. */

export interface ProbeRequest {
  readonly op: 'sample';
  readonly id: number;
  /** Run a full GC before reading memory. */
  readonly gc: boolean;
}

export interface ProbeReply {
  readonly op: 'sample';
  readonly id: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** process.cpuUsage(), user + system, seconds since the process started. */
  readonly cpuSeconds: number;
}
