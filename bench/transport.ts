// Figure 5: messages through the MSN transport (placeholder until written).
import { existsSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import type { Sample } from './types.ts';

const here = (p: string) => new URL(p, import.meta.url);

/** true, or why the transport figure cannot run. */
export function transportAvailable(): true | string {
  if (!existsSync(here('../src/gateway/msn/index.ts'))) return 'src/gateway/msn missing';
  if (!existsSync(here('../test/msn-sim/simulator.ts'))) return 'test/msn-sim missing';
  return 'bench not written yet';
}

export async function runTransport(_o: {
  root: string;
  cert: { crt: string; key: string };
  runs: number;
  quick: boolean;
  workers: ChildProcess[];
  log: (m: string) => void;
}): Promise<{ rate: Sample[]; p99: Sample[] }> {
  throw new Error('not written yet');
}
