/** The machine a run was measured on, for the JSON and docs/benchmarks.md. */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, release, totalmem, type as osType } from 'node:os';
import type { Pinning } from './children.js';

export interface Machine {
  readonly cores: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly os: string;
  readonly memoryGiB: number;
  /** Open files a process may hold (node raises its soft limit to the hard one at startup). */
  readonly fdLimit: number;
  readonly pinning: Pinning | null;
  /** 1-minute load average when the run began: the machine may be shared. */
  readonly loadAverage: number;
}

export function fdLimit(): number {
  const result = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' });
  const value = result.stdout?.trim();
  return value === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(value) || 1024;
}

export function describeMachine(pinning: Pinning | null): Machine {
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    os: `${osType()} ${release()}`,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    fdLimit: fdLimit(),
    pinning,
    loadAverage: Math.round(loadavg()[0] * 100) / 100,
  };
}
