// Process CPU time and RSS from /proc/<pid>/stat (Linux), so the server and
// the load generator are measured the same way whatever they are written in.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const PAGE = Number(execFileSync('getconf', ['PAGESIZE']).toString().trim()) || 4096;

function stat(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)"; comm may contain spaces.
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime+stime in seconds (field 14 and 15 of stat; index 11 and 12 after the comm). */
export function cpuSeconds(pid: number): number {
  const f = stat(pid);
  return f ? (Number(f[11]) + Number(f[12])) / CLK_TCK : 0;
}

/**
 * CPU seconds of a process's main thread only (its task whose id is the
 * PID): for Node, the event loop that handles every stanza, without the
 * threads that work beside it (LevelDB's, the garbage collector's, libuv's).
 */
export function mainThreadCpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Resident set size in bytes (field 24). */
export function rssBytes(pid: number): number {
  const f = stat(pid);
  return f ? Number(f[21]) * PAGE : 0;
}

export interface Snapshot {
  at: number;
  cpu: number[];
  machine: number;
}

export function procSnapshot(pids: number[]): Snapshot {
  return { at: performance.now(), cpu: pids.map(cpuSeconds), machine: machineBusySeconds() };
}

/** CPU used by every other process on the machine between two snapshots, in % of one core. */
export function otherPercent(a: Snapshot, b: Snapshot): number {
  const wall = (b.at - a.at) / 1000;
  const ours = b.cpu.reduce((s, c, i) => s + (c - a.cpu[i]!), 0);
  return wall > 0 ? Math.max(0, ((b.machine - a.machine - ours) / wall) * 100) : 0;
}

/** CPU use of each process between two snapshots, in % of one core. */
export function cpuPercent(a: Snapshot, b: Snapshot): number[] {
  const wall = (b.at - a.at) / 1000;
  return a.cpu.map((c, i) => (wall > 0 ? ((b.cpu[i]! - c) / wall) * 100 : 0));
}

/** CPU seconds the whole machine spent busy (all cores; /proc/stat minus idle and iowait). */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return (user + nice + system + irq + softirq + (steal ?? 0)) / CLK_TCK;
}
