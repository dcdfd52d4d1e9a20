/**
 * Loaded into every server under test with `--import` (and `--expose-gc`): answers the
 * orchestrator over the IPC channel with the process's own memory and CPU accounting, after a
 * full GC when asked. Idle until asked, so it adds nothing to the message path.
 */
import type { ProbeReply, ProbeRequest } from './probe-protocol.js';

const collect = (globalThis as { gc?: () => void }).gc;

if (typeof process.send === 'function') {
  process.on('message', (request: ProbeRequest) => {
    if (request.op !== 'sample') return;
    if (request.gc) {
      if (collect === undefined) throw new Error('the probe needs --expose-gc');
      // Twice: the first pass can leave objects whose finalisers free more on the second.
      collect();
      collect();
    }
    const memory = process.memoryUsage();
    const cpu = process.cpuUsage();
    const reply: ProbeReply = {
      op: 'sample',
      id: request.id,
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      heapTotal: memory.heapTotal,
      external: memory.external,
      arrayBuffers: memory.arrayBuffers,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
    process.send!(reply);
  });
  // Should the orchestrator die without cleaning up, its servers must not outlive it.
  process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
  // The channel must not keep a server alive that is otherwise done.
  process.channel?.unref();
}
