/**
 * CPU accounting from Linux procfs: a process's own utime + stime (every thread, read without
 * touching the process) and the whole machine's busy time. The harness needs procfs to measure.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}
const TICKS_PER_SECOND = clockTicks();

/** utime + stime of process `pid` (all its threads, live and exited), seconds. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name, which may itself hold spaces: state is [0].
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/**
 * utime + stime of process `pid` to the nanosecond: the sum of its live threads' run time from
 * /proc/<pid>/task/<tid>/schedstat. /proc/<pid>/stat counts in clock ticks (10 ms), too coarse
 * for a fan-out round at a fixed rate, which may cost a server a few tenths of a second; what
 * threads that already exited ran is not in it (a server's threads live as long as it does).
 */
export function processCpuSecondsExact(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return ns / 1e9;
}

/** CPU time every process on the machine spent, seconds: all but idle and iowait. */
export function machineBusySeconds(): number {
  const stat = readFileSync('/proc/stat', 'utf8');
  const [user, nice, system, , , irq, softirq, steal] = stat.slice(0, stat.indexOf('\n')).trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
}

/** A `kB` field of /proc/<pid>/status (VmRSS, VmHWM…), in bytes; NaN when absent. */
export function statusBytes(status: string, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
  return match === null ? Number.NaN : Number(match[1]) * 1024;
}

/**
 * Resident set now and its peak since the process started (VmHWM, kept by the kernel: no
 * sampling can miss a spike), bytes.
 */
export function processRss(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rss: statusBytes(status, 'VmRSS'), peak: statusBytes(status, 'VmHWM') };
}
