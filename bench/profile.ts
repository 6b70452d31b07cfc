// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and
// per source file, heaviest first, so hot spots can be read in a terminal.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function shortUrl(url: string): string {
  if (!url) return '(native)';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) return path.slice(nm + 14);
  const src = path.indexOf('/src/');
  if (src >= 0) return path.slice(src + 1);
  if (path.startsWith('node:')) return path;
  return path.split('/').slice(-2).join('/');
}

/**
 * `windows` ([start, end] in microseconds of CLOCK_MONOTONIC, the clock of
 * process.hrtime and of V8's profile timestamps) keeps only the samples taken
 * inside them, e.g. the measured message loads without start-up and logins.
 */
export function summarizeProfile(file: string, windows: Array<[number, number]> = [], top = 30): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let total = 0;
  let t = p.startTime;
  const inside = (at: number) => windows.length === 0 || windows.some(([a, b]) => at >= a && at <= b);
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (!inside(t)) continue;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
    total += dt;
  }
  const fns = new Map<string, number>();
  const files = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const name = n.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') {
      idle += us;
      continue;
    }
    const where = shortUrl(n.callFrame.url);
    // Line numbers of tsx-transpiled sources are not the .ts lines: name the file only.
    const line = n.callFrame.url && !where.endsWith('.ts') ? `:${n.callFrame.lineNumber + 1}` : '';
    const key = `${name}  ${where}${line}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    const fileKey = n.callFrame.url ? where : name.startsWith('(') ? name : `(native) ${name}`;
    files.set(fileKey, (files.get(fileKey) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number) => `${((us / busy) * 100).toFixed(1).padStart(5)}%`;
  const lines = [
    `${windows.length ? `${windows.length} measured interval(s), ` : ''}sampled ${(total / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(1)} s (${((busy / total) * 100).toFixed(0)}%); shares below are of busy time`,
    '',
    'top functions (self time):',
  ];
  for (const [k, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${k}`);
  lines.push('', 'by file (self time):');
  for (const [k, us] of [...files].sort((a, b) => b[1] - a[1]).slice(0, 20)) lines.push(`  ${pct(us)}  ${k}`);
  return lines.join('\n');
}

// `tsx bench/profile.ts FILE.cpuprofile` prints the summary of an existing profile.
if (process.argv[1]?.endsWith('profile.ts') && process.argv[2]) {
  console.log(summarizeProfile(process.argv[2]));
}
